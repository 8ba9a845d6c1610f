//! The properties the fuzz targets check, and the generator of their seed corpus.
//!
//! Shared by `fuzz/fuzz_targets/*.rs` (each a one-liner over a function here), by
//! `fuzz/seeds.rs` (writes the seed corpus) and by `tests/fuzz_regressions.rs`, which runs every
//! property on stable over the seeds and over each input a fuzzer ever found in
//! `fuzz/regressions/<target>/`. The property is always: no panic, no undefined behaviour, and
//! agreement where there is something to agree with.
#![allow(dead_code)]

use constnet::data::mnist::{GunzipError, gunzip};
use constnet::data::{check_pair, parse_images, parse_labels};
use constnet::format::{raw, safetensors};
use constnet::kernels::{
    self, Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward, Dims,
    InputGrad, Isa, Mode, Reference,
};
use constnet::{Init, Network, NetworkView, Params};

constnet::network! {
    /// A small network: model-file parsing is the same code at any size, and small inputs
    /// fuzz faster.
    pub struct Small { fc1: Dense<5, 4>, fc2: Dense<4, 3> }
}

/// A property over one fuzz input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: &[(&str, Check)] = &[
    ("idx", idx),
    ("idx_pair", idx_pair),
    ("safetensors", model_safetensors),
    ("raw", model_raw),
    ("checkpoint", checkpoint),
    ("checkpoint_header", checkpoint_header),
    ("gzip", gzip),
    ("image", image),
    ("dense", dense),
    ("int8", model_int8),
];

/// IDX parsing: either an error, or a header consistent with the bytes.
pub fn idx(data: &[u8]) {
    if let Ok(images) = parse_images(data) {
        assert_eq!(
            images.count * images.rows * images.cols,
            images.pixels.len()
        );
        assert_eq!(images.pixels.len() + 16, data.len());
    }
    if let Ok(labels) = parse_labels(data) {
        assert_eq!(labels.len() + 8, data.len());
    }
}

/// An image file and a label file (the first two bytes say where the split is): if the pair
/// checks out, counts agree and every label is a digit.
pub fn idx_pair(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_le_bytes([data[0], data[1]]))).min(data.len() - 2);
    let (images, labels) = data[2..].split_at(split);
    if let (Ok(images), Ok(labels)) = (parse_images(images), parse_labels(labels))
        && check_pair(&images, labels, images.rows * images.cols, 10).is_ok()
    {
        assert_eq!(images.count, labels.len());
        assert!(labels.iter().all(|&l| l < 10));
    }
}

/// A safetensors model file: either a clear error (and the parameters untouched), or a load
/// that survives a save/load round trip unchanged.
pub fn model_safetensors(data: &[u8]) {
    let mut net = Small::zeroed_box();
    let before = bits(&net);
    match safetensors::load_bytes_into(data, &mut *net) {
        Err(problem) => {
            assert_eq!(bits(&net), before, "a failed load changed the parameters");
            let _ = problem.to_string_lossy();
        }
        Ok(()) => {
            let bytes = safetensors::to_bytes(&*net).unwrap();
            let mut again = Small::zeroed_box();
            safetensors::load_bytes_into(&bytes, &mut *again).unwrap();
            assert_eq!(bits(&again), bits(&net));
        }
    }
}

/// A raw blob: zero-copy and copying readers agree, from an aligned and a misaligned start.
pub fn model_raw(data: &[u8]) {
    let mut aligned = vec![0u64; data.len().div_ceil(8) + 1];
    let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..data.len()];
    bytes.copy_from_slice(data);
    let mut copied = Small::zeroed_box();
    let copy = raw::load_into(bytes, &mut *copied);
    match raw::view::<Small>(bytes) {
        Ok(view) => {
            assert!(copy.is_ok(), "view accepted what load_into refused");
            for i in 0..Small::TENSORS {
                let (a, b) = (view.tensor(i), copied.tensor(i));
                assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
        Err(e) => assert_eq!(copy.is_ok(), matches!(e, raw::RawError::Misaligned { .. })),
    }
}

/// The widths of [`Small`], for its int8 form.
pub const SMALL_DIMS: [usize; 3] = [5, 4, 3];

/// An int8 model file (safetensors or raw blob): either a clear error, or a model that
/// survives a save/load round trip in both forms and runs on every int8 path exactly as the
/// reference does (so the loader's checks are what the kernels need).
pub fn model_int8(data: &[u8]) {
    use constnet::kernels::int8::Int8Path;
    use constnet::quant::{file, raw as qraw, reference};
    let model = match file::from_bytes::<2>(data, &SMALL_DIMS) {
        Err(problem) => {
            assert!(!problem.to_string().is_empty());
            return;
        }
        Ok(model) => model,
    };
    let again = file::from_bytes::<2>(&file::to_bytes(&model).unwrap(), &SMALL_DIMS).unwrap();
    assert_eq!(again.params(), model.params());
    let mut blob = Vec::new();
    qraw::write(&model.view(), |b| blob.extend_from_slice(b));
    let from_blob = file::from_bytes::<2>(&blob, &SMALL_DIMS).unwrap();
    assert_eq!(from_blob.params(), model.params());
    let q = model.view();
    for pixels in [[0u8; 5], [255; 5], [1, 80, 160, 240, 7]] {
        let mut want = [0i32; 3];
        reference::forward_one(&q, &pixels, &mut want);
        for path in Int8Path::supported() {
            let mut got = [0i32; 3];
            q.forward_one(path, &pixels, &mut got);
            assert_eq!(got, want, "{path}");
        }
    }
}

/// A training checkpoint: resuming either fails with a clear error or yields a run whose
/// position is consistent.
pub fn checkpoint(data: &[u8]) {
    match constnet::train::Run::<Small>::resume_bytes(data, 100) {
        Ok(run) => assert!(run.steps <= u64::from(run.config.epochs) * run.batches_per_epoch()),
        Err(problem) => {
            let _ = problem.to_string_lossy();
        }
    }
}

/// A checkpoint's header metadata as `key=value` lines (the fuzzer reaches the decoder
/// directly; inside a file it sits behind the header checksum): either an error, or a header
/// whose recipe validates, whose position fits, and which encodes back to itself.
pub fn checkpoint_header(data: &[u8]) {
    let meta = header_lines(data);
    match constnet::train::checkpoint::decode_header(&meta) {
        Err(problem) => {
            let _ = problem.to_string_lossy();
        }
        Ok(header) => {
            header
                .config
                .validate()
                .expect("a decoded recipe validates");
            let per_epoch = header.train_len.div_ceil(constnet::train::BATCH) as u64;
            assert!(header.steps <= u64::from(header.config.epochs) * per_epoch);
            let again = constnet::train::checkpoint::encode_header(&header);
            let decoded = constnet::train::checkpoint::decode_header(&again).unwrap();
            // By bits: NaN cannot get this far, but -0.0 and 0.0 must stay apart.
            assert_eq!(format!("{decoded:?}"), format!("{header:?}"));
        }
    }
}

/// `key=value` lines as a metadata map (lines without `=` are skipped).
pub fn header_lines(data: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `.gz` path: decompression (bounded) then IDX validation, as the cache does.
pub fn gzip(data: &[u8]) {
    let mut out = Vec::new();
    match gunzip(data, &mut out, 1 << 20) {
        Ok(n) => {
            assert_eq!(n as usize, out.len());
            idx(&out);
        }
        Err(GunzipError::Gzip(e)) => {
            let _ = e.to_string();
        }
        Err(GunzipError::Write(e)) => panic!("writing to a Vec failed: {e}"),
    }
}

/// A PGM or PNG file for `predict`: an error, or 28×28 pixels in [0, 1].
pub fn image(data: &[u8]) {
    if let Ok(digit) = constnet::image::decode(data, constnet::image::Polarity::Auto) {
        assert_eq!(digit.pixels.len(), 784);
        assert!(digit.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}

/// The fused kernels of every path this CPU supports against the reference on fuzzer-chosen
/// shapes and values.
pub fn dense(data: &[u8]) {
    for isa in kernels::supported() {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => dense_on::<kernels::Avx512>(data),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => dense_on::<kernels::Avx2>(data),
            #[cfg(target_arch = "x86_64")]
            Isa::Sse2 => dense_on::<kernels::Sse2>(data),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Portable => dense_on::<kernels::Portable>(data),
            _ => dense_on::<kernels::Scalar>(data),
        }
    }
}

fn dense_on<K: Backend>(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (out, inp, batch) = (
        1 + data[0] as usize % 40,
        1 + data[1] as usize % 40,
        1 + data[2] as usize % 40,
    );
    let mut values = data[3..]
        .iter()
        .map(|&b| (f32::from(b) - 128.0) / 16.0)
        .cycle();
    let mut take =
        |n: usize| -> Vec<f32> { (0..n).map(|_| values.next().unwrap_or(0.0)).collect() };
    let (w, bias, x, dz) = (
        take(out * inp),
        take(out),
        take(inp * batch),
        take(out * batch),
    );
    // Small integers over 16: every product and sum is exact, so the two must agree bit for bit.
    let (mut y1, mut y2) = (vec![0.0; out * batch], vec![0.0; out * batch]);
    let (dims, act) = (Dims { out, inp, batch }, Activation::Relu);
    K::run(DenseForward {
        dims,
        w: &w,
        bias: &bias,
        x: &x,
        y: &mut y1,
        act,
    });
    Reference::run(DenseForward {
        dims,
        w: &w,
        bias: &bias,
        x: &x,
        y: &mut y2,
        act,
    });
    assert_eq!(y1, y2, "dense_forward {out}x{inp}x{batch}");
    let (mut d1, mut d2) = (vec![0.0; inp * batch], vec![0.0; inp * batch]);
    let grad = InputGrad::Relu { x: &x, scale: 1.0 };
    K::run(DenseBackwardInput {
        dims,
        w: &w,
        dz: &dz,
        grad,
        dx: &mut d1,
    });
    Reference::run(DenseBackwardInput {
        dims,
        w: &w,
        dz: &dz,
        grad,
        dx: &mut d2,
    });
    assert_eq!(d1, d2, "dense_backward_input {out}x{inp}x{batch}");
    let x_rows = take(batch * inp);
    let (mut w1, mut b1, mut w2, mut b2) = (
        vec![0.0; out * inp],
        vec![0.0; out],
        vec![0.0; out * inp],
        vec![0.0; out],
    );
    let mode = Mode::Overwrite;
    let (dz, x_rows) = (&dz[..], &x_rows[..]);
    K::run(DenseBackwardWeights {
        dims,
        dz,
        x_rows,
        dw: &mut w1,
        db: &mut b1,
        mode,
    });
    Reference::run(DenseBackwardWeights {
        dims,
        dz,
        x_rows,
        dw: &mut w2,
        db: &mut b2,
        mode,
    });
    assert_eq!(
        (w1, b1),
        (w2, b2),
        "dense_backward_weights {out}x{inp}x{batch}"
    );
}

fn bits(net: &Small) -> Vec<u32> {
    (0..Small::TENSORS)
        .flat_map(|i| {
            net.tensor(i)
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Formats an error without caring what it says (the property is only that it exists).
trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl<T: std::fmt::Display> Lossy for T {
    fn to_string_lossy(&self) -> String {
        self.to_string()
    }
}

/// Seed inputs for `target`: valid files and near-valid variants (truncated, a byte flipped,
/// a field changed), generated here rather than copied from any dataset.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let images = idx_file(&[0, 0, 8, 3], &[3, 4, 5], 60);
    let labels = idx_file(&[0, 0, 8, 1], &[3], 3);
    let net = Small::new_boxed(Init::PyTorch, &mut constnet::data::derived_rng(1, 0, 0));
    let valid: Vec<Vec<u8>> = match target {
        "idx" => vec![
            images.clone(),
            labels.clone(),
            idx_file(&[0, 0, 8, 3], &[0, 28, 28], 0),
        ],
        "idx_pair" => vec![
            pair(&images, &labels),
            pair(&images, &idx_file(&[0, 0, 8, 1], &[2], 2)),
        ],
        "safetensors" => vec![safetensors::to_bytes(&*net).unwrap()],
        "raw" => {
            let mut blob = Vec::new();
            raw::write::<Small>(|i| net.tensor(i), |b| blob.extend_from_slice(b));
            vec![blob]
        }
        "checkpoint" => {
            let config = constnet::train::Config {
                epochs: 2,
                ..Default::default()
            };
            let run = constnet::train::Run::<Small>::new(config, 100).unwrap();
            vec![run.checkpoint_bytes().unwrap()]
        }
        "checkpoint_header" => {
            let header = |config, epoch, steps| constnet::train::checkpoint::Header {
                config,
                train_len: 100,
                epoch,
                steps,
                optimizer_steps: steps,
            };
            let sgd = constnet::train::Config {
                epochs: 3,
                optimizer: "sgd".parse().unwrap(),
                schedule: "step".parse().unwrap(),
                ..Default::default()
            };
            [
                header(Default::default(), 0, 0),
                header(sgd, 1, 3),
                header(sgd, 3, 6),
            ]
            .iter()
            .map(|h| {
                let meta = constnet::train::checkpoint::encode_header(h);
                let mut lines: Vec<String> = meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
                lines.sort();
                lines.join("\n").into_bytes()
            })
            .collect()
        }
        "gzip" => vec![gzip_bytes(&images), gzip_bytes(&labels)],
        "image" => {
            let mut pgm = b"P5\n28 28\n255\n".to_vec();
            pgm.extend((0..784).map(|i| (i % 256) as u8));
            let mut ascii = b"P2\n# a comment\n28 28\n15\n".to_vec();
            ascii.extend((0..784).flat_map(|i| format!("{} ", i % 16).into_bytes()));
            vec![pgm, ascii, png_bytes()]
        }
        "int8" => {
            let images: Vec<u8> = (0..50).map(|i| (i * 37 % 256) as u8).collect();
            let ranges = constnet::quant::calibrate(&*net, &images, 10);
            let model = constnet::quant::quantize::<Small, 2>(&net, &ranges).unwrap();
            let mut blob = Vec::new();
            constnet::quant::raw::write(&model.view(), |b| blob.extend_from_slice(b));
            // Damaged past the checksum (recomputed): what only the network checks catch.
            let resealed = |at: usize, value: &[u8]| {
                let mut b = blob.clone();
                b[at..at + value.len()].copy_from_slice(value);
                let crc = crc32fast::hash(&b[64..]);
                b[24..28].copy_from_slice(&crc.to_le_bytes());
                b
            };
            let first = |section: usize| {
                u32::from_le_bytes(blob[64 + 32 + 4 * section..][..4].try_into().unwrap()) as usize
            };
            vec![
                constnet::quant::file::to_bytes(&model).unwrap(),
                resealed(first(0), &[0x80]),
                resealed(first(4), &5i32.to_le_bytes()),
                resealed(first(3), &(-1i32).to_le_bytes()),
                blob,
            ]
        }
        "dense" => vec![
            vec![3, 5, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 100, 0, 255],
            vec![39, 39, 39, 128],
        ],
        _ => panic!("no target named {target}"),
    };
    let mut all = Vec::new();
    for v in valid {
        all.push(v[..v.len() / 2].to_vec());
        let mut flipped = v.clone();
        if !flipped.is_empty() {
            let at = flipped.len() * 2 / 3;
            flipped[at] ^= 0x20;
        }
        all.push(flipped);
        let mut header = v.clone();
        if header.len() > 8 {
            header[5] = header[5].wrapping_add(1);
        }
        all.push(header);
        all.push(v);
    }
    all
}

fn idx_file(magic: &[u8; 4], dims: &[u32], data: usize) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend((0..data).map(|i| (i % 10) as u8));
    bytes
}

fn pair(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut bytes = (images.len() as u16).to_le_bytes().to_vec();
    bytes.extend_from_slice(images);
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn png_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, 28, 28);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let pixels: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&pixels)
            .unwrap();
    }
    out
}
