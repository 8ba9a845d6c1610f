//! Layers: their parameters (views into a network's flat block), forward and backward passes
//! side by side, per-batch buffers, initialisation and dropout.
//!
//! - [`dense`]: `Dense<IN, OUT>`, a fully connected layer.
//! - [`batchnorm`]: `BatchNorm<N>`, batch normalization (PyTorch's `BatchNorm1d`) and ReLU.
//! - [`dropout`]: inverted dropout on hidden activations.
//!
//! Activations are feature-major, `[features][batch]` (see [`crate::kernels`]).
#![forbid(unsafe_code)]

pub mod batchnorm;
pub mod dense;
pub mod dropout;

pub use batchnorm::{BatchNorm, BatchNormRef, BatchNormWork};
pub use dense::{Dense, DenseMut, DenseRef, DenseWork};
pub use dropout::Dropout;

use rand_xoshiro::rand_core::Rng;

/// How a layer's parameters are initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: weights and bias uniform in ±1/√IN.
    #[default]
    PyTorch,
    /// He (Kaiming) uniform for ReLU: weights uniform in ±√(6/IN), bias 0.
    He,
    /// Xavier (Glorot) uniform: weights uniform in ±√(6/(IN+OUT)), bias 0.
    Xavier,
    /// He (Kaiming) normal for ReLU, PyTorch's `kaiming_normal_` (fan in): weights
    /// N(0, 2/IN), bias 0.
    HeNormal,
    /// Gaussian: weights N(0, std²), bias 0.
    Normal {
        /// The weights' standard deviation.
        std: f32,
    },
}

impl Init {
    /// The standard deviation `normal` has unless given one (`--init-std`).
    pub const NORMAL_STD: f32 = 0.01;

    /// Every initialisation, in the order the CLI lists them (`normal` with
    /// [`Init::NORMAL_STD`]).
    pub const ALL: [Init; 5] = [
        Init::PyTorch,
        Init::He,
        Init::Xavier,
        Init::HeNormal,
        Init::Normal {
            std: Self::NORMAL_STD,
        },
    ];

    /// The lowercase name `Display` writes and `FromStr` reads (`--init`, checkpoints); the
    /// name of `normal` leaves out its standard deviation.
    pub const fn name(self) -> &'static str {
        match self {
            Init::PyTorch => "pytorch",
            Init::He => "he",
            Init::Xavier => "xavier",
            Init::HeNormal => "he-normal",
            Init::Normal { .. } => "normal",
        }
    }
}

crate::names::text_by_name!(Init, ParseInitError, "initialisation");

/// Uniform in `[-bound, bound)` from the top 24 bits of one draw.
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, bound: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    (2.0 * unit - 1.0) * bound
}

/// N(0, std²) by Box–Muller from one 64-bit draw: two 32-bit uniforms, `u1` in (0, 1] (so the
/// logarithm is finite) and `u2` in [0, 1); `√(−2 ln u1)·cos(2π u2)`. In f64, so the tails
/// reach about ±6.7σ (the smallest `u1` is 2^-32). One draw per value keeps the sequence a
/// plain function of the generator's (no cached second value).
pub fn normal<R: Rng + ?Sized>(rng: &mut R, std: f32) -> f32 {
    let bits = rng.next_u64();
    let scale = 1.0 / 4_294_967_296.0;
    let u1 = ((bits >> 32) as f64 + 1.0) * scale;
    let u2 = (bits & 0xffff_ffff) as f64 * scale;
    let z = libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2);
    (z * std as f64) as f32
}
