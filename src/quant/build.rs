//! Building quantized networks (alloc): the layer parameters as files store them
//! ([`LayerParams`], natural `[OUT][IN]` order), packed into a [`QuantModel`] the kernels run,
//! and post-training quantization of a f32 network ([`calibrate`], [`quantize`]).

use super::{INPUT_SCALE, INPUT_ZERO_POINT, QLayer, QuantError, QuantNet};
use crate::kernels::int8::{MAX_BIAS, Output, packed_index, packed_len, padded_rows};
use crate::model::Network;
use alloc::vec;
use alloc::vec::Vec;

/// One quantized layer in natural order: `weights` `[out][inp]`, the rest `[out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    /// Inputs.
    pub inp: usize,
    /// Outputs.
    pub out: usize,
    /// int8 weights, row-major `[out][inp]`.
    pub weights: Vec<i8>,
    /// TFLite's int32 bias.
    pub bias: Vec<i32>,
    /// Requantization multipliers.
    pub multiplier: Vec<i32>,
    /// Requantization shifts.
    pub shift: Vec<i32>,
    /// Per-row weight scales.
    pub weight_scale: Vec<f32>,
    /// Input scale.
    pub input_scale: f32,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output scale.
    pub output_scale: f32,
    /// What the layer writes.
    pub output: Output,
}

/// A layer in the kernels' layout, owned.
#[derive(Clone, Debug)]
struct Packed {
    weights: Vec<i8>,
    bias: Vec<i32>,
    kernel_bias: Vec<i32>,
    multiplier: Vec<i32>,
    shift: Vec<i32>,
    weight_scale: Vec<f32>,
}

/// A checked quantized network of `L` layers on the heap; [`QuantModel::view`] runs it.
#[derive(Clone, Debug)]
pub struct QuantModel<const L: usize> {
    params: Vec<LayerParams>,
    packed: Vec<Packed>,
}

/// The quantized reference network on the heap.
pub type QuantMnistModel = QuantModel<4>;

impl<const L: usize> QuantModel<L> {
    /// Packs and checks `params` against the widths `dims` (input first).
    pub fn from_params(params: Vec<LayerParams>, dims: &[usize]) -> Result<Self, QuantError> {
        if params.len() != L {
            return Err(QuantError::LayerCount {
                expected: L,
                found: params.len(),
            });
        }
        let packed = params
            .iter()
            .enumerate()
            .map(|(i, p)| pack(i, p))
            .collect::<Result<Vec<_>, _>>()?;
        let model = Self { params, packed };
        QuantNet::<L>::new(model.layers(), dims)?;
        Ok(model)
    }

    /// The layers as files store them.
    pub fn params(&self) -> &[LayerParams] {
        &self.params
    }

    fn layers(&self) -> [QLayer<'_>; L] {
        core::array::from_fn(|i| {
            let (p, k) = (&self.params[i], &self.packed[i]);
            QLayer {
                inp: p.inp,
                out: p.out,
                weights: &k.weights,
                bias: &k.bias,
                kernel_bias: &k.kernel_bias,
                multiplier: &k.multiplier,
                shift: &k.shift,
                weight_scale: &k.weight_scale,
                input_scale: p.input_scale,
                input_zero_point: p.input_zero_point,
                output_scale: p.output_scale,
                output: p.output,
            }
        })
    }

    /// The network, ready to run (checked when the model was built).
    pub fn view(&self) -> QuantNet<'_, L> {
        QuantNet {
            layers: self.layers(),
        }
    }
}

/// The kernels' layout of one layer; fails on lengths that do not match the shape.
fn pack(i: usize, p: &LayerParams) -> Result<Packed, QuantError> {
    let length = |tensor, expected, found| super::check::length(i, tensor, expected, found);
    if p.inp == 0 || p.out == 0 || p.inp > super::MAX_WIDTH || p.out > super::MAX_WIDTH {
        return Err(QuantError::TooWide { layer: i });
    }
    length("weights", p.out * p.inp, p.weights.len())?;
    length("bias", p.out, p.bias.len())?;
    length("multiplier", p.out, p.multiplier.len())?;
    length("shift", p.out, p.shift.len())?;
    length("weight scale", p.out, p.weight_scale.len())?;
    let rows = padded_rows(p.out);
    let mut weights = vec![0i8; packed_len(p.out, p.inp)];
    for (o, row) in p.weights.chunks_exact(p.inp).enumerate() {
        for (k, &w) in row.iter().enumerate() {
            weights[packed_index(o, k, p.inp)] = w;
        }
    }
    let pad = |v: &[i32], fill: i32| {
        let mut v = v.to_vec();
        v.resize(rows, fill);
        v
    };
    let zp = i64::from(p.input_zero_point) + 128;
    let kernel_bias: Vec<i32> = (0..rows)
        .map(|o| match o < p.out {
            true => {
                let sum: i64 = p.weights[o * p.inp..][..p.inp]
                    .iter()
                    .map(|&w| i64::from(w))
                    .sum();
                // Out of i32 only for a bias `check` rejects anyway.
                (i64::from(p.bias[o]) - zp * sum).clamp(i32::MIN.into(), i32::MAX.into()) as i32
            }
            false => 0,
        })
        .collect();
    let mut weight_scale = p.weight_scale.clone();
    weight_scale.resize(rows, 1.0);
    Ok(Packed {
        weights,
        bias: pad(&p.bias, 0),
        kernel_bias,
        multiplier: pad(&p.multiplier, 0),
        shift: pad(&p.shift, 0),
        weight_scale,
    })
}

/// The largest activation after each hidden layer (`N::LAYERS − 1` values) over the first
/// `count` images of `pixels` (`[count][N::INPUT]`), from a plain f32 forward pass: the ranges
/// the int8 activations must cover. A network with batch norms is folded first
/// ([`crate::model::fold_batch_norms`]): calling this on one does not compile.
pub fn calibrate<N: Network>(net: &N, pixels: &[u8], count: usize) -> Vec<f32> {
    const { assert!(N::BATCH_NORMS == 0, "calibrate: fold batch norms first") };
    let mut ranges = vec![0.0f32; N::LAYERS - 1];
    let widest = (0..N::LAYERS)
        .map(|l| N::layer_dims(l).1)
        .max()
        .unwrap_or(0);
    let mut a = vec![0.0f32; widest.max(N::INPUT)];
    let mut b = vec![0.0f32; widest.max(N::INPUT)];
    for image in pixels.chunks_exact(N::INPUT).take(count) {
        for (a, &p) in a.iter_mut().zip(image) {
            *a = f32::from(p) / 255.0;
        }
        for (l, range) in ranges.iter_mut().enumerate() {
            let (inp, out) = N::layer_dims(l);
            let (w, bias) = (net.tensor(2 * l), net.tensor(2 * l + 1));
            for o in 0..out {
                let z = dot(&w[o * inp..][..inp], &a[..inp]) + bias[o];
                b[o] = z.max(0.0);
                *range = range.max(b[o]);
            }
            core::mem::swap(&mut a, &mut b);
        }
    }
    ranges
}

/// A dot product with eight partial sums (calibration only needs it fast, not exact).
fn dot(w: &[f32], x: &[f32]) -> f32 {
    let mut s = [0.0f32; 8];
    let (wc, wt) = w.as_chunks::<8>();
    let (xc, xt) = x.as_chunks::<8>();
    for (w, x) in wc.iter().zip(xc) {
        for j in 0..8 {
            s[j] += w[j] * x[j];
        }
    }
    let tail: f32 = wt.iter().zip(xt).map(|(w, x)| w * x).sum();
    s.iter().sum::<f32>() + tail
}

/// Quantizes `net` post-training, given the activation ranges from [`calibrate`]: weights
/// per row to ±127, hidden activations to int8 over `[0, range]` (zero point −128: the ReLU
/// outputs use all 256 levels), bias to int32, multipliers and shifts from the scale ratios,
/// logits as i32 at the finest scale every row can reach with a multiplier below 1.
pub fn quantize<N: Network, const L: usize>(
    net: &N,
    ranges: &[f32],
) -> Result<QuantModel<L>, QuantError> {
    const { assert!(N::BATCH_NORMS == 0, "quantize: fold batch norms first") };
    assert_eq!(N::LAYERS, L, "quantize: the model has {} layers", N::LAYERS);
    assert_eq!(ranges.len(), L - 1, "quantize: one range per hidden layer");
    let mut params: Vec<LayerParams> = Vec::with_capacity(L);
    for l in 0..L {
        let (inp, out) = N::layer_dims(l);
        let (input_scale, input_zero_point) = match params.last() {
            Some(p) => (p.output_scale, -128),
            None => (INPUT_SCALE, INPUT_ZERO_POINT),
        };
        params.push(quantize_layer(
            (inp, out),
            (net.tensor(2 * l), net.tensor(2 * l + 1)),
            (input_scale, input_zero_point),
            ranges.get(l).copied(),
        ));
    }
    let mut dims = vec![N::INPUT];
    dims.extend((0..L).map(|l| N::layer_dims(l).1));
    QuantModel::from_params(params, &dims)
}

/// One layer of [`quantize`]: `range` is the calibrated output range of a hidden layer, `None`
/// for the logits.
fn quantize_layer(
    (inp, out): (usize, usize),
    (w, b): (&[f32], &[f32]),
    (input_scale, input_zero_point): (f32, i32),
    range: Option<f32>,
) -> LayerParams {
    let weight_scale: Vec<f32> = w
        .chunks_exact(inp)
        .map(|row| {
            let max = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            if max > 0.0 && max.is_finite() {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let weights: Vec<i8> = w
        .iter()
        .enumerate()
        .map(|(i, &w)| libm::roundf(w / weight_scale[i / inp]).clamp(-127.0, 127.0) as i8)
        .collect();
    let acc_scale = |o: usize| f64::from(input_scale) * f64::from(weight_scale[o]);
    let finest = (0..out).map(acc_scale).fold(0.0, f64::max);
    // A multiplier must stay below 1 (shift ≤ 0): the output scale is at least every row's
    // accumulator scale, with a margin for rounding.
    let output_scale = match range {
        None => (finest * 1.001) as f32,
        Some(range) => (f64::from(range) / 255.0).max(finest * 1.001) as f32,
    };
    let (multiplier, shift) = (0..out)
        .map(|o| quantize_multiplier(acc_scale(o) / f64::from(output_scale)))
        .unzip();
    let bias = b
        .iter()
        .enumerate()
        .map(|(o, &b)| {
            let q = libm::round(f64::from(b) / acc_scale(o));
            q.clamp(-f64::from(MAX_BIAS), f64::from(MAX_BIAS)) as i32
        })
        .collect();
    let output = match range {
        None => Output::Int32,
        Some(_) => Output::Int8 {
            zero_point: -128,
            relu: true,
        },
    };
    LayerParams {
        inp,
        out,
        weights,
        bias,
        multiplier,
        shift,
        weight_scale,
        input_scale,
        input_zero_point,
        output_scale,
        output,
    }
}

/// TFLite's `QuantizeMultiplier` for `real` in `[0, 1)`: `real ≈ multiplier · 2^shift / 2^31`
/// with `multiplier` in `[2^30, 2^31)` and `shift` in `-31..=0` (0, 0 below `2^-32`).
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (fraction, mut exp) = libm::frexp(real);
    let mut m = libm::round(fraction * (1u64 << 31) as f64) as i64;
    if m == 1 << 31 {
        m /= 2;
        exp += 1;
    }
    if exp < -31 {
        return (0, 0);
    }
    (m as i32, exp.min(0))
}
