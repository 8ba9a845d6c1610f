//! The int8 network: every kernel path equals the specification (`quant::reference`) bit for
//! bit, on random layers of awkward shapes, on random networks and on the MNIST test set;
//! requantization equals exact rational rounding; quantization keeps the f32 model's answers.

mod common;

use common::{int, rng};
use constnet::kernels::int8::{self, Dst, Int8Path, Output, requantize, stride};
use constnet::quant::{self, LayerParams, QuantModel, reference};
use constnet::{Init, MnistMlp, Network, NetworkView};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::Rng;

/// Random bytes, one in four 0 or 255.
fn pixels(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| match r.next_u32() % 8 {
            0 => 0,
            1 => 255,
            _ => r.next_u32() as u8,
        })
        .collect()
}

/// A random layer: weights in −127..=127 (edges included), biases up to the bound, shifts
/// that keep outputs mostly unsaturated plus the extremes −31 and 0.
fn layer(
    r: &mut Xoshiro256PlusPlus,
    inp: usize,
    out: usize,
    last: bool,
    zp_in: i32,
) -> LayerParams {
    let weights = (0..inp * out)
        .map(|_| match r.next_u32() % 16 {
            0 => 127,
            1 => -127,
            _ => (int(r, 0, 254) as i32 - 127) as i8,
        })
        .collect();
    let bias = (0..out)
        .map(|_| match r.next_u32() % 16 {
            0 => int8::MAX_BIAS,
            1 => -int8::MAX_BIAS,
            _ => int(r, 0, 200_000) as i32 - 100_000,
        })
        .collect();
    let multiplier = (0..out)
        .map(|_| match r.next_u32() % 16 {
            0 => 0,
            1 => i32::MAX,
            _ => (1 << 30) + int(r, 0, (1 << 30) - 1) as i32,
        })
        .collect();
    let shift = (0..out)
        .map(|_| match r.next_u32() % 16 {
            0 => -31,
            1 => 0,
            _ => -(int(r, 8, 16) as i32),
        })
        .collect();
    LayerParams {
        inp,
        out,
        weights,
        bias,
        multiplier,
        shift,
        weight_scale: vec![0.01; out],
        input_scale: 0.25,
        input_zero_point: zp_in,
        output_scale: 0.25,
        output: if last {
            Output::Int32
        } else {
            Output::Int8 {
                zero_point: int(r, 0, 255) as i32 - 128,
                relu: true,
            }
        },
    }
}

/// A random network of these widths whose layers chain (scales and zero points agree).
fn network<const L: usize>(r: &mut Xoshiro256PlusPlus, dims: &[usize]) -> QuantModel<L> {
    let mut params: Vec<LayerParams> = Vec::new();
    for l in 0..L {
        let zp_in = match params.last() {
            None => quant::INPUT_ZERO_POINT,
            Some(p) => match p.output {
                Output::Int8 { zero_point, .. } => zero_point,
                Output::Int32 => unreachable!(),
            },
        };
        let mut p = layer(r, dims[l], dims[l + 1], l + 1 == L, zp_in);
        if l == 0 {
            p.input_scale = quant::INPUT_SCALE;
        }
        params.push(p);
    }
    QuantModel::from_params(params, dims).unwrap()
}

const SHAPES: [[usize; 5]; 7] = [
    [37, 5, 9, 3, 2],
    [784, 256, 128, 64, 10],
    [1, 1, 1, 1, 1],
    [13, 7, 33, 17, 5],
    [5, 16, 15, 31, 3],
    [64, 49, 65, 129, 11],
    [3, 48, 80, 1, 2],
];

#[test]
fn every_path_equals_the_specification_on_random_networks() {
    let mut r = rng(80);
    for dims in SHAPES {
        let model = network::<4>(&mut r, &dims);
        let net = model.view();
        let (inp, classes) = (dims[0], dims[4]);
        for batch in [1, 2, 7, 8, 9, 17] {
            let x = pixels(&mut r, batch * inp);
            let mut want = vec![0i32; batch * classes];
            for (x, want) in x.chunks_exact(inp).zip(want.chunks_exact_mut(classes)) {
                reference::forward_one(&net, x, want);
            }
            for path in Int8Path::supported() {
                let mut got = vec![i32::MIN; batch * classes];
                let mut scratch = vec![0xa5u8; net.scratch_len(batch)];
                net.forward_batch(path, &x, batch, &mut scratch, &mut got);
                assert_eq!(got, want, "{path}: {dims:?}, batch {batch}");
                if batch == 1 {
                    let mut one = vec![i32::MIN; classes];
                    net.forward_one(path, &x, &mut one);
                    assert_eq!(one, want, "{path}: forward_one {dims:?}");
                }
            }
        }
    }
    report_paths();
}

#[test]
fn every_path_equals_the_specification_on_single_int8_layers() {
    let mut r = rng(81);
    for (inp, out) in [
        (1, 1),
        (3, 15),
        (4, 16),
        (5, 17),
        (33, 31),
        (64, 48),
        (100, 130),
        (784, 10),
    ] {
        let zp_in = int(&mut r, 0, 255) as i32 - 128;
        let params = layer(&mut r, inp, out, false, zp_in);
        let model = QuantModel::<1>::from_params(vec![params], &[inp, out]);
        // A one-layer network must end in logits, so build the layer's view by hand.
        assert!(model.is_err());
        let packed = packed_layer(&mut r, inp, out, zp_in);
        let l = packed.view();
        for batch in [1, 3, 8, 9, 16, 17] {
            let x_q: Vec<i8> = (0..batch * inp).map(|_| r.next_u32() as i8).collect();
            let mut want = vec![0i8; batch * out];
            for (x, y) in x_q.chunks_exact(inp).zip(want.chunks_exact_mut(out)) {
                reference::layer(&l, x, reference::Out::Int8(y));
            }
            let mut distinct = want.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                want.len() < 128 || distinct.len() > 8,
                "the random layer {out}×{inp} saturates: {distinct:?}"
            );
            let sx = stride(inp);
            let mut x = vec![0x5au8; batch * sx];
            for (row, q) in x.chunks_exact_mut(sx).zip(x_q.chunks_exact(inp)) {
                for (a, &q) in row.iter_mut().zip(q) {
                    *a = (i32::from(q) + 128) as u8;
                }
            }
            for path in Int8Path::supported() {
                let sy = stride(out);
                let mut y = vec![0x77u8; batch * sy];
                int8::qdense(path, &l.kernel(), &x, batch, Dst::U8(&mut y));
                for s in 0..batch {
                    for o in 0..out {
                        let got = (i32::from(y[s * sy + o]) - 128) as i8;
                        assert_eq!(
                            got,
                            want[s * out + o],
                            "{path}: {out}×{inp}, batch {batch}, sample {s}, row {o}"
                        );
                    }
                }
            }
        }
    }
}

/// A hidden layer packed the way `QuantModel` packs, owned by the caller.
struct Packed {
    inp: usize,
    out: usize,
    weights: Vec<i8>,
    bias: Vec<i32>,
    kernel_bias: Vec<i32>,
    multiplier: Vec<i32>,
    shift: Vec<i32>,
    scale: Vec<f32>,
    zp_in: i32,
    output: Output,
}

impl Packed {
    fn view(&self) -> quant::QLayer<'_> {
        quant::QLayer {
            inp: self.inp,
            out: self.out,
            weights: &self.weights,
            bias: &self.bias,
            kernel_bias: &self.kernel_bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            weight_scale: &self.scale,
            input_scale: 1.0,
            input_zero_point: self.zp_in,
            output_scale: 1.0,
            output: self.output,
        }
    }
}

fn packed_layer(r: &mut Xoshiro256PlusPlus, inp: usize, out: usize, zp_in: i32) -> Packed {
    let p = layer(r, inp, out, false, zp_in);
    let rows = int8::padded_rows(out);
    let mut weights = vec![0i8; int8::packed_len(out, inp)];
    for o in 0..out {
        for k in 0..inp {
            weights[int8::packed_index(o, k, inp)] = p.weights[o * inp + k];
        }
    }
    let pad = |v: &[i32]| {
        let mut v = v.to_vec();
        v.resize(rows, 0);
        v
    };
    let kernel_bias = (0..rows)
        .map(|o| {
            if o >= out {
                return 0;
            }
            let sum: i32 = p.weights[o * inp..][..inp]
                .iter()
                .map(|&w| i32::from(w))
                .sum();
            p.bias[o] - (zp_in + 128) * sum
        })
        .collect();
    Packed {
        inp,
        out,
        weights,
        bias: pad(&p.bias),
        kernel_bias,
        multiplier: pad(&p.multiplier),
        shift: pad(&p.shift),
        scale: vec![1.0; rows],
        zp_in,
        output: p.output,
    }
}

/// Says which int8 paths this CPU lacks, so a run on a smaller CPU shows what it skipped.
fn report_paths() {
    for path in Int8Path::ALL {
        if !path.is_supported() {
            eprintln!("not run: the {path} int8 path (this CPU lacks it)");
        }
    }
}

#[test]
fn requantize_is_rounding_half_up_of_the_exact_product() {
    let mut r = rng(82);
    for i in 0..200_000 {
        let acc = match i % 4 {
            0 => (r.next_u32() as i32) >> 3,
            1 => (r.next_u32() as i32) >> 12,
            2 => int(&mut r, 0, 40) as i32 - 20,
            _ => i32::from(r.next_u32() as i16),
        };
        let m = (1 << 30) + (r.next_u32() >> 2) as i32;
        let shift = -(int(&mut r, 0, 31) as i32);
        let exact = i128::from(acc) * i128::from(m);
        let denominator = 1i128 << (31 - shift);
        // floor(exact / d + 1/2)
        let want = (2 * exact + denominator).div_euclid(2 * denominator);
        assert_eq!(
            i128::from(requantize(acc, m, shift)),
            want,
            "acc {acc}, m {m}, shift {shift}"
        );
    }
}

#[test]
fn quantize_multiplier_represents_the_real_multiplier() {
    for real in [1e-12, 1e-6, 0.001, 0.25, 0.3, 0.5, 0.75, 0.999_999] {
        let (m, shift) = quant::quantize_multiplier(real);
        let back = f64::from(m) * 2f64.powi(shift) / 2f64.powi(31);
        if real < 2f64.powi(-32) {
            assert_eq!((m, shift), (0, 0));
        } else {
            assert!((1 << 30..=i32::MAX).contains(&m), "{real}: {m}");
            assert!((back - real).abs() <= real * 1e-9, "{real}: {back}");
        }
    }
}

#[test]
fn quantized_model_classifies_like_the_f32_model_and_every_path_agrees_on_mnist() {
    use constnet::data::mnist::{Mnist, OpenOptions};
    let mnist = Mnist::open(&common::mnist_dir(), OpenOptions::default()).unwrap();
    let mut r = rng(83);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let ranges = quant::calibrate(&*net, mnist.train.pixels(), 500);
    let model = quant::quantize::<MnistMlp, 4>(&net, &ranges).unwrap();
    let q = model.view();
    let test = &mnist.test;
    let n = test.count;
    let mut want = vec![0i32; n * 10];
    for (x, y) in test
        .pixels()
        .chunks_exact(784)
        .zip(want.chunks_exact_mut(10))
    {
        reference::forward_one(&q, x, y);
    }
    for path in Int8Path::supported() {
        let mut got = vec![0i32; n * 10];
        let batch = 256;
        let mut scratch = vec![0u8; q.scratch_len(batch)];
        for (x, y) in test
            .pixels()
            .chunks(batch * 784)
            .zip(got.chunks_mut(batch * 10))
        {
            q.forward_batch(path, x, x.len() / 784, &mut scratch, y);
        }
        assert!(got == want, "{path}: the test set's logits differ");
    }
    // An untrained network is a harsh case (small logit gaps); the quantized one must still
    // mostly agree with its f32 original.
    let view = net.view();
    let mut logits = [0.0f32; 10];
    let mut agree = 0;
    for (x, q_logits) in test.pixels().chunks_exact(784).zip(want.chunks_exact(10)) {
        let xf: Vec<f32> = x.iter().map(|&p| f32::from(p) / 255.0).collect();
        view.forward_one::<constnet::Reference>(&xf, &mut logits);
        let f32_digit = (0..10).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        agree += usize::from(f32_digit == quant::argmax(q_logits));
    }
    assert!(
        agree * 100 >= n * 95,
        "only {agree} of {n} predictions agree"
    );
}

#[test]
fn int8_files_round_trip_and_bad_ones_are_named_and_explained() {
    let dir = common::TempDir::new("int8-files");
    let mut r = rng(84);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut r);
    let images: Vec<u8> = (0..20 * 784).map(|i| (i * 13 % 256) as u8).collect();
    let ranges = quant::calibrate(&*net, &images, 20);
    let model = quant::quantize::<MnistMlp, 4>(&net, &ranges).unwrap();
    let (st, blob) = (dir.path("q.safetensors"), dir.path("q.cnet"));
    quant::file::save(&st, &model).unwrap();
    quant::file::save_raw(&blob, &model).unwrap();
    for path in [&st, &blob] {
        assert!(quant::file::is_int8(path));
        let back = quant::file::load::<4>(path, &quant::MNIST_DIMS).unwrap();
        assert_eq!(back.params(), model.params(), "{}", path.display());
    }
    let bytes = std::fs::read(&blob).unwrap();
    assert_eq!(bytes.len(), quant::raw::blob_len::<4>(&quant::MNIST_DIMS));

    let bad = dir.path("bad.cnet");
    let cases: [(Vec<u8>, &str); 4] = [
        (bytes[..100].to_vec(), "truncated"),
        (
            {
                let mut b = bytes.clone();
                b[5000] ^= 1;
                b
            },
            "checksum",
        ),
        (
            {
                let mut b = bytes.clone();
                b[8] = 9;
                b
            },
            "version 9",
        ),
        (std::fs::read(&st).unwrap()[..300].to_vec(), "bad.cnet"),
    ];
    for (content, needle) in cases {
        std::fs::write(&bad, &content).unwrap();
        let e = quant::file::load::<4>(&bad, &quant::MNIST_DIMS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.cnet") && e.contains(needle), "{e}");
    }
    // Right file, wrong network.
    let e = quant::file::load::<4>(&st, &[784, 256, 128, 32, 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("q.safetensors") && e.contains("shape"), "{e}");
    // A f32 model file is not an int8 one.
    let f32_file = dir.path("f.safetensors");
    constnet::format::save(&f32_file, &*net).unwrap();
    assert!(!quant::file::is_int8(&f32_file));
    let e = quant::file::load::<4>(&f32_file, &quant::MNIST_DIMS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an int8 model file"), "{e}");
}
