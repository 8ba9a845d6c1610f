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
//!   vector of B" (see `gemm.rs`), the batch (64) is the vector dimension everywhere, and the
//!   10-wide output layer costs no masked lanes. Weights are `[OUT][IN]`, PyTorch's
//!   `nn.Linear.weight` order.
//! - **Tiles.** The microkernel keeps an `MR × NR` block of `C` in registers: `MR` rows by
//!   `NR` = two vectors of columns; 2·MR independent accumulators hide the FMA latency.
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
//! - **Paths.** Every kernel is written once over a vector of f32 lanes and compiled for each
//!   instruction set: AVX-512F (16 lanes, an 8×32 tile), AVX2+FMA (8 lanes, 6×16), SSE2 (4
//!   lanes, 6×8) on x86-64, `wide`'s portable vectors elsewhere, and one scalar lane
//!   everywhere ([`Isa`]). [`Simd`] runs the best path this CPU has, detected at run time
//!   ([`selected`]); [`Avx512`], [`Avx2`], [`Sse2`], [`Scalar`] run one path, so tests and
//!   benchmarks compare them in one build.
//!
//! Each kernel is a struct of its operands and dimensions ([`ops`]): its shapes are checked
//! once, in one place, then it runs on a [`Backend`]. [`mod@reference`] holds the same kernels as
//! plain loops that define what they compute; tests compare every path with it on random
//! shapes.
//!
//! `unsafe` appears in the unchecked loads of `tile`'s inner loop and in the x86 vector types
//! and prefetch; every other file here forbids it.

mod dense;
mod gemm;
mod gemv;
pub mod int8;
mod layout;
pub mod ops;
mod peak;
pub mod reference;
mod simd;
mod softmax;
mod tile;
mod update;
mod warp;

pub use ops::{
    DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne, Dims, FmaPeak, Gemm,
    Gemv, LoadU8Batch, MAX_SHARDS, Shard, SoftmaxXent, Stream, SumSquares, Transpose, Update,
    WARP_SIDE, Warp, WarpField, WeightGradients,
};
#[cfg(feature = "std")]
pub use simd::from_env;
#[cfg(not(target_arch = "x86_64"))]
pub use simd::portable::Portable;
pub use simd::scalar::Scalar;
#[cfg(target_arch = "x86_64")]
pub use simd::x86::{Avx2, Avx512, Sse2};
pub use simd::{
    Isa, MAX_LANES, MAX_NR, SelectError, assume_supported, best, select, selected, supported,
};
pub use update::{GRAD_FLUSH, STATE_FLUSH, STATES, Step, UpdateRule};
// For the optimizers' rules (`crate::optim`): their lanes run in this crate's update pass.
pub(crate) use simd::Vector;
pub(crate) use update::{Lanes, flush, flush_one, for_each_chunk, gradient_scale, scaled};
pub use warp::WarpScratch;

use simd::Path;

/// Asks the CPU to start loading `bytes` into its caches and returns at once: for data that
/// will be read soon from scattered places (the next batch's samples). A hint, nothing more:
/// it changes no value, and does nothing on other architectures.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    simd::x86::prefetch(bytes);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

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

/// The name of the path [`Simd`] runs (see [`selected`]): `"avx512"`, `"avx2"`, `"sse2"`,
/// `"portable"` or `"scalar"`.
pub fn simd_backend() -> &'static str {
    selected().name()
}

pub(crate) mod op {
    use super::simd::Vector;

    /// What every kernel struct implements (sealed: see [`super::Kernel`]).
    pub trait Op: Sized {
        /// What the kernel returns.
        type Output;
        /// Panics with the kernel's and the operand's names unless every slice holds exactly
        /// what the dimensions say.
        fn check(&self);
        /// The kernel on vectors `V`, after [`Op::check`].
        fn simd<V: Vector>(self) -> Self::Output;
        /// The scalar specification ([`super::reference`]), after [`Op::check`].
        fn reference(self) -> Self::Output;
    }
}

/// A kernel call: one of the structs of [`ops`], which hold the operands and dimensions. Run it
/// with [`Backend::run`].
pub trait Kernel: op::Op {}
impl<T: op::Op> Kernel for T {}

/// Where kernels run: [`Simd`] (the best path of this CPU, or the one selected), one fixed path
/// ([`Avx512`], [`Avx2`], [`Sse2`], [`Scalar`]; `Portable` off x86-64) or [`Reference`] (the
/// scalar specification). Layers, networks and optimizers are generic over it, so a whole
/// training step can run on any of them and the results can be compared.
pub trait Backend {
    /// The path this backend runs (`None` for the reference).
    fn isa() -> Option<Isa>;
    /// Checks `kernel`'s shapes (panicking on a mismatch, which is a bug in the caller), then
    /// runs it.
    fn run<K: Kernel>(kernel: K) -> K::Output;
}

/// The fast kernels on the path [`selected`] returns: the best this CPU supports unless
/// `CONSTNET_SIMD` or [`select`] chose another.
#[derive(Clone, Copy, Debug, Default)]
pub struct Simd;

/// The scalar kernels of [`mod@reference`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Backend for Reference {
    fn isa() -> Option<Isa> {
        None
    }
    fn run<K: Kernel>(kernel: K) -> K::Output {
        kernel.check();
        kernel.reference()
    }
}

impl Backend for Simd {
    fn isa() -> Option<Isa> {
        Some(selected())
    }
    #[inline]
    fn run<K: Kernel>(kernel: K) -> K::Output {
        kernel.check();
        // SAFETY: `selected` only returns a path that `Isa::is_supported` accepted.
        unsafe {
            match selected() {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => Avx512::enter(kernel),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => Avx2::enter(kernel),
                #[cfg(target_arch = "x86_64")]
                Isa::Sse2 => Sse2::enter(kernel),
                #[cfg(not(target_arch = "x86_64"))]
                Isa::Portable => Portable::enter(kernel),
                _ => Scalar::enter(kernel),
            }
        }
    }
}

impl<P: Path> Backend for P {
    fn isa() -> Option<Isa> {
        Some(P::ISA)
    }
    /// # Panics
    /// If this CPU cannot run the path (see [`Isa::is_supported`]).
    #[inline]
    fn run<K: Kernel>(kernel: K) -> K::Output {
        assert!(
            P::ISA.is_supported(),
            "the {} kernels need instructions this CPU lacks",
            P::ISA.name()
        );
        kernel.check();
        // SAFETY: the CPU supports the path (asserted).
        unsafe { P::enter(kernel) }
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
