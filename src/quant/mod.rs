//! Post-training int8 quantization: the quantized network, its specification, its files.
//!
//! The arithmetic is TFLite's and CMSIS-NN's `fully_connected` (int8):
//!
//! - **weights** int8, symmetric (zero point 0, values in −127..=127), one scale per output
//!   row: `w ≈ weight_scale[o] · w_q`;
//! - **activations** int8, asymmetric, one scale and zero point per tensor:
//!   `x ≈ scale · (x_q − zero_point)`. The network's input is the image itself: pixel `p`
//!   (0..=255) is `x_q = p − 128` with scale 1/255 and zero point −128, i.e. `p / 255`, the
//!   f32 network's input;
//! - **bias** int32 at scale `input_scale · weight_scale[o]`, accumulation in int32:
//!   `acc = bias[o] + Σ_k w_q[o][k] · (x_q[k] − zp_in)`;
//! - **requantization** by a fixed-point multiplier and shift,
//!   `r = requantize(acc, multiplier[o], shift[o])` ≈ `acc · input_scale · weight_scale[o] /
//!   output_scale` ([`crate::kernels::int8::requantize`], exact integer arithmetic, the same on
//!   every platform);
//! - hidden layers output `clamp(r + zp_out, zp_out, 127)`: the ReLU is folded into the clamp;
//! - the last layer outputs `r` itself as i32 logits, at one scale for all classes (TFLite
//!   would clamp them to int8 too; i32 keeps the argmax as fine as the accumulators).
//!
//! [`mod@reference`] is that arithmetic as plain loops; [`QuantNet::forward_one`] and
//! [`QuantNet::forward_batch`] run [`crate::kernels::int8`]'s kernels, which must give the
//! same numbers bit for bit. [`QuantNet`] is a view (slices): of a raw blob in flash
//! ([`raw`], no_std, zero-copy) or of a [`QuantModel`] on the heap (alloc). Both are checked
//! by [`check`] before use, so the kernels' integer bounds hold.
//!
//! Nothing here allocates except [`QuantModel`] and [`quantize`] (alloc) and [`mod@file`] (std).
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
mod build;
mod check;
#[cfg(feature = "std")]
pub mod file;
pub mod raw;
pub mod reference;

#[cfg(feature = "alloc")]
pub use build::{
    LayerParams, QuantMnistModel, QuantModel, calibrate, quantize, quantize_multiplier,
};
pub use check::{QuantError, check};

use crate::kernels::int8::{self, Dst, Int8Path, Output, QDense, packed_index, stride};

/// The widest layer (inputs or outputs) a quantized network may have.
pub const MAX_WIDTH: usize = 1024;
/// The input scale of the first layer: pixels 0..=255 are `p / 255`.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;
/// The input zero point of the first layer: pixel `p` is `x_q = p − 128`.
pub const INPUT_ZERO_POINT: i32 = -128;

/// One quantized layer: the kernel's operands plus what the specification and the files need.
/// Per-row slices hold [`int8::padded_rows`]`(out)` values (the padding is ignored).
#[derive(Clone, Copy, Debug)]
pub struct QLayer<'a> {
    /// Inputs.
    pub inp: usize,
    /// Outputs.
    pub out: usize,
    /// int8 weights in the kernels' packed layout ([`int8::packed_index`]); zero padding.
    pub weights: &'a [i8],
    /// TFLite's int32 bias (scale `input_scale · weight_scale[o]`).
    pub bias: &'a [i32],
    /// The bias with the input zero point folded in (what the kernels add, see
    /// [`QDense::bias`]); [`check`] verifies it against `bias` and the weights.
    pub kernel_bias: &'a [i32],
    /// Requantization multipliers, `0..2^31`.
    pub multiplier: &'a [i32],
    /// Requantization shifts, `-31..=0`.
    pub shift: &'a [i32],
    /// The scale of each output row's weights.
    pub weight_scale: &'a [f32],
    /// The input's scale.
    pub input_scale: f32,
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's scale (of the i32 logits for the last layer).
    pub output_scale: f32,
    /// What the layer writes.
    pub output: Output,
}

impl QLayer<'_> {
    /// Weight `w_q[o][k]`.
    pub fn weight(&self, o: usize, k: usize) -> i8 {
        self.weights[packed_index(o, k, self.inp)]
    }

    /// The operands of [`int8::qdense`].
    pub fn kernel(&self) -> QDense<'_> {
        QDense {
            out: self.out,
            inp: self.inp,
            weights: self.weights,
            bias: self.kernel_bias,
            multiplier: self.multiplier,
            shift: self.shift,
            output: self.output,
        }
    }
}

/// A checked quantized network of `L` layers (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct QuantNet<'a, const L: usize> {
    layers: [QLayer<'a>; L],
}

/// The quantized reference network, 784→256→128→64→10.
pub type QuantMnist<'a> = QuantNet<'a, 4>;
/// The layer widths of [`QuantMnist`], [`crate::MnistMlp`]'s.
pub const MNIST_DIMS: [usize; 5] = [784, 256, 128, 64, 10];

impl<'a, const L: usize> QuantNet<'a, L> {
    /// Checks `layers` ([`check`]) against the widths `dims` (`L + 1` of them, input first).
    pub fn new(layers: [QLayer<'a>; L], dims: &[usize]) -> Result<Self, QuantError> {
        check(&layers, dims)?;
        Ok(Self { layers })
    }

    /// The layers.
    pub fn layers(&self) -> &[QLayer<'a>; L] {
        &self.layers
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers[0].inp
    }

    /// Classes (logits).
    pub fn classes(&self) -> usize {
        self.layers[L - 1].out
    }

    /// The scale of the i32 logits: logit ≈ `logit_scale · value`.
    pub fn logit_scale(&self) -> f32 {
        self.layers[L - 1].output_scale
    }

    /// Bytes of scratch [`QuantNet::forward_batch`] needs for `batch` samples.
    pub fn scratch_len(&self, batch: usize) -> usize {
        let widest = self
            .layers
            .iter()
            .map(|l| stride(l.out).max(stride(l.inp)))
            .max()
            .unwrap_or(0);
        2 * batch * widest
    }

    /// The logits of one image: `pixels` `[inputs]`, `logits` `[classes]`. Uses 2 KiB of stack.
    ///
    /// # Panics
    /// If a slice has the wrong length.
    pub fn forward_one(&self, path: Int8Path, pixels: &[u8], logits: &mut [i32]) {
        let mut scratch = [0u8; 2 * MAX_WIDTH];
        self.forward_batch(path, pixels, 1, &mut scratch, logits);
    }

    /// The logits of `batch` images: `pixels` `[batch][inputs]`, `logits` `[batch][classes]`;
    /// `scratch` holds the activations, at least [`QuantNet::scratch_len`] bytes.
    ///
    /// # Panics
    /// If a slice has the wrong length.
    pub fn forward_batch(
        &self,
        path: Int8Path,
        pixels: &[u8],
        batch: usize,
        scratch: &mut [u8],
        logits: &mut [i32],
    ) {
        assert_eq!(pixels.len(), batch * self.inputs(), "forward_batch: pixels");
        assert_eq!(
            logits.len(),
            batch * self.classes(),
            "forward_batch: logits"
        );
        let need = self.scratch_len(batch);
        assert!(
            scratch.len() >= need,
            "forward_batch: scratch < {need} bytes"
        );
        let (mut a, mut b) = scratch[..need].split_at_mut(need / 2);
        // The input's offset form is the pixel itself (x_q + 128 = p); rows are copied only
        // when their width is not a multiple of 4.
        let sx = stride(self.inputs());
        let direct = sx == self.inputs();
        if !direct {
            for (row, p) in a
                .chunks_exact_mut(sx)
                .zip(pixels.chunks_exact(self.inputs()))
            {
                row[..p.len()].copy_from_slice(p);
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let x: &[u8] = match (i, direct) {
                (0, true) => pixels,
                _ => &a[..batch * stride(layer.inp)],
            };
            if i + 1 == L {
                int8::qdense(path, &layer.kernel(), x, batch, Dst::I32(logits));
            } else {
                let y = &mut b[..batch * stride(layer.out)];
                int8::qdense(path, &layer.kernel(), x, batch, Dst::U8(y));
                core::mem::swap(&mut a, &mut b);
            }
        }
    }

    /// The digit in one image: the first index of the largest logit.
    pub fn classify(&self, path: Int8Path, pixels: &[u8]) -> usize {
        let mut logits = [0i32; MAX_WIDTH];
        let logits = &mut logits[..self.classes()];
        self.forward_one(path, pixels, logits);
        argmax(logits)
    }
}

/// The first index of the largest value (0 for an empty slice).
pub fn argmax(logits: &[i32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}
