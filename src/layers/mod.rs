//! Layers: their parameters (views into a network's flat block), forward and backward passes
//! side by side, per-batch buffers, initialisation and dropout.
//!
//! - [`dense`]: `Dense<IN, OUT>`, a fully connected layer.
//! - [`dropout`]: inverted dropout on hidden activations.
//!
//! Activations are feature-major, `[features][batch]` (see [`crate::kernels`]).
#![forbid(unsafe_code)]

pub mod dense;
pub mod dropout;

pub use dense::{Dense, DenseMut, DenseRef, DenseWork};
pub use dropout::Dropout;

use rand_xoshiro::rand_core::Rng;

/// How a layer's parameters are initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: weights and bias uniform in ±1/√IN.
    #[default]
    PyTorch,
    /// He (Kaiming) uniform for ReLU: weights uniform in ±√(6/IN), bias 0.
    He,
    /// Xavier (Glorot) uniform: weights uniform in ±√(6/(IN+OUT)), bias 0.
    Xavier,
}

impl Init {
    /// Every initialisation, in the order the CLI lists them.
    pub const ALL: [Init; 3] = [Init::PyTorch, Init::He, Init::Xavier];

    /// The lowercase name `Display` writes and `FromStr` reads (`--init`, checkpoints).
    pub const fn name(self) -> &'static str {
        match self {
            Init::PyTorch => "pytorch",
            Init::He => "he",
            Init::Xavier => "xavier",
        }
    }
}

impl core::fmt::Display for Init {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Init {
    type Err = ParseInitError;

    /// The initialisation named `name` (exactly as [`Init::name`] writes it).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Init::ALL
            .into_iter()
            .find(|init| init.name() == name)
            .ok_or(ParseInitError)
    }
}

/// The name given to [`Init`]'s `FromStr` is none of [`Init::ALL`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseInitError;

impl core::fmt::Display for ParseInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown initialisation, expected one of")?;
        for (i, init) in Init::ALL.iter().enumerate() {
            write!(f, "{}{init}", if i == 0 { " " } else { ", " })?;
        }
        Ok(())
    }
}

impl core::error::Error for ParseInitError {}

/// Uniform in `[-bound, bound)` from the top 24 bits of one draw.
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, bound: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    (2.0 * unit - 1.0) * bound
}
