//! The f32 kernels: every product, fused epilogue and update the networks run.
//!
//! # Contract
//!
//! - **Layouts.** Every matrix is a row-major `&[f32]` with its dimensions passed explicitly, so
//!   one kernel serves every const size. A shape comment such as `w [OUT][IN]` means `OUT` rows
//!   of `IN` contiguous floats.
//! - **Activations are feature-major.** A batch of `B` samples with `F` features is `[F][B]`:
//!   row `f` holds feature `f` of every sample. Then each product of a training step is a plain
//!   `C = A·B` or `C = Aᵀ·B` whose inner loop is "broadcast one float of A, multiply a contiguous
//!   vector of B" (see [`gemm`]), the batch (64) is the vector dimension everywhere, and the
//!   10-wide output layer costs no masked lanes. Weights are `[OUT][IN]`, PyTorch's
//!   `nn.Linear.weight` order.
//! - **Tiles.** The microkernel keeps an `MR × NR` block of `C` in registers: [`MR`] rows by
//!   [`NR`] = two vectors of columns; 2·MR independent accumulators hide the FMA latency.
//! - **Tails.** Sizes need not be multiples of anything. Rows past the end of `C` reuse the last
//!   valid row of A and are never stored; columns past the end are read from a zero-padded copy
//!   of B and never stored. There is one tile function; the edge only changes where it reads.
//! - **Overwrite vs accumulate.** [`Mode::Overwrite`] writes `C` without reading it (it may hold
//!   NaN); [`Mode::Accumulate`] adds to it.
//! - **Shape errors are bugs**, not input errors: every kernel checks that each slice holds
//!   exactly as many elements as its dimensions say and panics with the names and numbers if
//!   not (one check per call, never per element). Aliasing cannot happen: outputs are `&mut`.
//! - **NaN policy.** NaN propagates through products, bias and ReLU (`relu(NaN) = NaN`, as in
//!   PyTorch); the ReLU mask keeps a gradient where the activation is `> 0` and zeroes it
//!   elsewhere (also where the activation is NaN). `relu(-0.0)` may be `-0.0`; compare with `==`.
//! - **Allocation.** None. Scratch space is a small array on the stack.
//!
//! - **Vector width.** `wide` picks its instructions from compile-time target features; the
//!   kernels use its widest float vector the build allows: `f32x16` when AVX-512F is enabled,
//!   `f32x8` otherwise (AVX2+FMA, or two SSE2 halves on the x86-64 baseline). [`LANES`] and
//!   [`NR`] follow; everything else is written once.
//!
//! Every kernel has a twin with the same name and signature in [`reference`]: plain loops that
//! define what the kernel computes. Tests compare the two on random shapes.
//!
//! `unsafe` appears in one place, the unchecked loads of [`tile`]'s inner loop; every other file
//! here forbids it.

mod dense;
mod gemm;
mod gemv;
mod layout;
mod peak;
pub mod reference;
mod softmax;
mod tile;
mod update;

pub use dense::{dense_backward_input, dense_backward_weights, dense_forward};
pub use gemm::{gemm_nn, gemm_tn};
pub use gemv::{dense_forward_one, gemv};
pub use layout::{load_u8_batch, transpose};
pub use peak::{fma_peak, fma_peak_f32x8, fma_peak_f32x8_flops, fma_peak_flops, stream};
pub use softmax::softmax_xent;
pub use update::{
    AdamStep, GRAD_FLUSH, STATE_FLUSH, SgdStep, adam_update, sgd_update, sum_squares,
};

/// The SIMD vector every kernel computes with.
#[cfg(target_feature = "avx512f")]
pub(crate) type V = wide::f32x16;
/// The SIMD vector every kernel computes with.
#[cfg(not(target_feature = "avx512f"))]
pub(crate) type V = wide::f32x8;

/// f32 lanes in one SIMD vector: 16 with AVX-512F, 8 otherwise.
pub const LANES: usize = core::mem::size_of::<V>() / 4;
/// Rows of C in one register tile: 16 accumulators of AVX-512's 32 vector registers.
#[cfg(target_feature = "avx512f")]
pub const MR: usize = 8;
/// Rows of C in one register tile: 12 accumulators, two B vectors and a broadcast fill 15 of
/// AVX2's 16 vector registers.
#[cfg(not(target_feature = "avx512f"))]
pub const MR: usize = 6;
/// Columns of C in one register tile (two vectors).
pub const NR: usize = 2 * LANES;

/// Whether a kernel replaces its output or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `C = result`; the old contents of C are never read.
    Overwrite,
    /// `C += result`.
    Accumulate,
}

/// The activation applied after a layer's product and bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `y = z`: the output layer's logits.
    Identity,
    /// `y = max(z, 0)`, NaN propagating.
    Relu,
}

/// How the input gradient of a layer passes back through the activation that produced the
/// layer's input.
#[derive(Clone, Copy, Debug)]
pub enum InputGrad<'a> {
    /// The input is the network's input: `dx = Wᵀ·dz`, no mask.
    Linear,
    /// The input is `x = relu(z_prev)·scale` (scale 1, or 1/(1−p) after dropout), x `[inp][batch]`:
    /// `dz_prev = scale·(Wᵀ·dz)` where `x > 0`, and 0 elsewhere.
    Relu {
        /// The layer's input, which masks the gradient.
        x: &'a [f32],
        /// The factor the forward pass applied after the ReLU.
        scale: f32,
    },
}

/// Which SIMD instruction set the kernels were compiled for.
///
/// `wide` chooses at compile time from the target features: `"avx512f+fma"` or `"avx2+fma"`
/// when built with `-C target-cpu=native` (the repository's `.cargo/config.toml`) on such a CPU,
/// `"sse2"` for the x86-64 baseline, `"scalar"` where `wide` has no vector path.
pub const fn simd_backend() -> &'static str {
    if cfg!(all(target_feature = "avx512f", target_feature = "fma")) {
        "avx512f+fma"
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "avx2+fma"
    } else if cfg!(target_feature = "avx") {
        "avx"
    } else if cfg!(target_feature = "sse2") {
        "sse2"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "neon"
    } else if cfg!(target_feature = "simd128") {
        "wasm-simd128"
    } else {
        "scalar"
    }
}

/// Panics with a readable message unless `slice_len == rows * cols`.
#[track_caller]
pub(crate) fn check_len(kernel: &str, name: &str, slice_len: usize, rows: usize, cols: usize) {
    assert!(
        Some(slice_len) == rows.checked_mul(cols),
        "{kernel}: `{name}` holds {slice_len} floats, its shape {rows}×{cols} needs {}",
        rows.saturating_mul(cols)
    );
}

/// A set of kernels a network can run on: [`Simd`] (the fast kernels) or [`Reference`] (the
/// scalar specification). Networks, layers and optimizers are generic over it, so one training
/// step can run through either path and the two can be compared.
pub trait Backend {
    /// See [`dense_forward`].
    #[allow(clippy::too_many_arguments)]
    fn dense_forward(
        out: usize,
        inp: usize,
        batch: usize,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        act: Activation,
    );
    /// See [`dense_backward_input`].
    fn dense_backward_input(
        out: usize,
        inp: usize,
        batch: usize,
        w: &[f32],
        dz: &[f32],
        grad: InputGrad<'_>,
        dx: &mut [f32],
    );
    /// See [`dense_backward_weights`].
    #[allow(clippy::too_many_arguments)]
    fn dense_backward_weights(
        out: usize,
        inp: usize,
        batch: usize,
        dz: &[f32],
        x_rows: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
        mode: Mode,
    );
    /// See [`dense_forward_one`].
    fn dense_forward_one(
        out: usize,
        inp: usize,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        act: Activation,
    );
    /// See [`transpose`].
    fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]);
    /// See [`load_u8_batch`].
    fn load_u8_batch<'a>(
        features: usize,
        batch: usize,
        images: impl Fn(usize) -> &'a [u8],
        rows: &mut [f32],
        cols: &mut [f32],
    );
    /// See [`softmax_xent`].
    fn softmax_xent(
        classes: usize,
        batch: usize,
        logits: &[f32],
        labels: &[u32],
        dlogits: &mut [f32],
    ) -> f32;
    /// See [`adam_update`].
    fn adam_update(
        params: &mut [f32],
        grads: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        s: &AdamStep,
    ) -> bool;
    /// See [`sgd_update`].
    fn sgd_update(params: &mut [f32], grads: &[f32], velocity: &mut [f32], s: &SgdStep) -> bool;
    /// See [`sum_squares`].
    fn sum_squares(x: &[f32]) -> f32;
}

/// The fast kernels of this module.
#[derive(Clone, Copy, Debug, Default)]
pub struct Simd;

/// The scalar kernels of [`reference`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

/// Implements [`Backend`] by forwarding every method to the module that defines the kernels.
macro_rules! backend {
    ($backend:ty => $($kernels:ident)::+) => {
        impl Backend for $backend {
            fn dense_forward(out: usize, inp: usize, batch: usize, w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], act: Activation) {
                $($kernels)::+::dense_forward(out, inp, batch, w, bias, x, y, act)
            }
            fn dense_backward_input(out: usize, inp: usize, batch: usize, w: &[f32], dz: &[f32], grad: InputGrad<'_>, dx: &mut [f32]) {
                $($kernels)::+::dense_backward_input(out, inp, batch, w, dz, grad, dx)
            }
            fn dense_backward_weights(out: usize, inp: usize, batch: usize, dz: &[f32], x_rows: &[f32], dw: &mut [f32], db: &mut [f32], mode: Mode) {
                $($kernels)::+::dense_backward_weights(out, inp, batch, dz, x_rows, dw, db, mode)
            }
            fn dense_forward_one(out: usize, inp: usize, w: &[f32], bias: &[f32], x: &[f32], y: &mut [f32], act: Activation) {
                $($kernels)::+::dense_forward_one(out, inp, w, bias, x, y, act)
            }
            fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
                $($kernels)::+::transpose(rows, cols, src, dst)
            }
            fn load_u8_batch<'a>(features: usize, batch: usize, images: impl Fn(usize) -> &'a [u8], rows: &mut [f32], cols: &mut [f32]) {
                $($kernels)::+::load_u8_batch(features, batch, images, rows, cols)
            }
            fn softmax_xent(classes: usize, batch: usize, logits: &[f32], labels: &[u32], dlogits: &mut [f32]) -> f32 {
                $($kernels)::+::softmax_xent(classes, batch, logits, labels, dlogits)
            }
            fn adam_update(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) -> bool {
                $($kernels)::+::adam_update(params, grads, m, v, s)
            }
            fn sgd_update(params: &mut [f32], grads: &[f32], velocity: &mut [f32], s: &SgdStep) -> bool {
                $($kernels)::+::sgd_update(params, grads, velocity, s)
            }
            fn sum_squares(x: &[f32]) -> f32 {
                $($kernels)::+::sum_squares(x)
            }
        }
    };
}

backend!(Simd => crate::kernels);
backend!(Reference => crate::kernels::reference);
