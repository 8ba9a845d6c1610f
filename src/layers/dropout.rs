//! Inverted dropout on hidden activations during training: each activation is kept with
//! probability `1 − p` and scaled by `1/(1 − p)`, or zeroed; inference applies nothing.
//!
//! The backward pass needs no stored mask: a dropped activation is 0, which the ReLU mask
//! (`y > 0`) already zeroes, and a kept one is scaled, which
//! [`InputGrad::Relu`](crate::kernels::InputGrad)'s `scale` undoes.
#![forbid(unsafe_code)]

use crate::Rng;
use rand_xoshiro::rand_core::Rng as _;

/// Dropout with probability `p` drawing its masks from `rng`.
pub struct Dropout<'r> {
    p: f32,
    rng: &'r mut Rng,
}

/// A dropout probability outside `[0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BadProbability(pub f32);

impl core::fmt::Display for BadProbability {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "dropout probability {} is not in [0, 1)", self.0)
    }
}

impl core::error::Error for BadProbability {}

impl<'r> Dropout<'r> {
    /// Dropout with probability `p` (in `[0, 1)`; 1 would drop everything and scale by ∞).
    pub fn new(p: f32, rng: &'r mut Rng) -> Result<Self, BadProbability> {
        if (0.0..1.0).contains(&p) {
            Ok(Self { p, rng })
        } else {
            Err(BadProbability(p))
        }
    }

    /// The probability of dropping an activation.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// The factor kept activations are multiplied by.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// Masks and scales `y` in one pass.
    pub fn apply(&mut self, y: &mut [f32]) {
        // Keep when a 32-bit draw is at or above p·2^32.
        let threshold = (self.p as f64 * 4294967296.0) as u64;
        let scale = self.scale();
        for v in y {
            *v = if u64::from(self.rng.next_u32()) >= threshold {
                *v * scale
            } else {
                0.0
            };
        }
    }
}
