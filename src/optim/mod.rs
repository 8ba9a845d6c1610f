//! Optimizers over a network's parameter tensors, and learning-rate schedules.
//!
//! An optimizer owns its state (Adam's moments, SGD's velocity) as networks of the same type as
//! the parameters, so every state tensor lines up with its parameter tensor and the update is
//! one fused pass per tensor through [`crate::kernels::adam_update`] or
//! [`crate::kernels::sgd_update`]. The learning rate comes in with each step, from a
//! [`Schedule`].
#![forbid(unsafe_code)]

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::kernels::Backend;
use crate::model::Network;

/// Something that updates parameters from gradients.
pub trait Optimizer<N: Network> {
    /// Applies one update with learning rate `lr`. Returns `false` if a gradient was NaN or
    /// infinite: then the parameters are untouched when gradient clipping is on (the norm is
    /// checked first) and poisoned otherwise (the check is fused into the update); either way
    /// the run must stop.
    fn step<K: Backend>(&mut self, params: &mut N, grads: &N, lr: f32) -> bool;
    /// How many updates have been applied.
    fn steps_taken(&self) -> u64;
}

/// The factor that brings the gradients' global L2 norm down to `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)`, capped at 1); 1 when `max_norm` is 0 (off);
/// `None` when the norm is not finite.
pub(crate) fn clip_scale<N: Network, K: Backend>(grads: &N, max_norm: f32) -> Option<f32> {
    if max_norm <= 0.0 {
        return Some(1.0);
    }
    let norm = libm::sqrtf(
        (0..N::TENSORS)
            .map(|i| K::sum_squares(grads.tensor(i)))
            .sum::<f32>(),
    );
    norm.is_finite()
        .then(|| (max_norm / (norm + 1e-6)).min(1.0))
}

/// A learning-rate schedule, evaluated per optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// The base rate times `gamma` for every `every` steps completed (PyTorch's `StepLR`).
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// Cosine decay from the base rate to 0 over `total` steps (PyTorch's `CosineAnnealingLR`
    /// with `T_max = total`, `eta_min = 0`, stepped after every batch).
    Cosine {
        /// Steps over which the rate falls to 0.
        total: u64,
    },
}

impl Schedule {
    /// The rate for step `step` (0 for the first update).
    pub fn lr(&self, base: f32, step: u64) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                let decays = step.checked_div(every).unwrap_or(0);
                (base as f64 * libm::pow(gamma as f64, decays as f64)) as f32
            }
            Schedule::Cosine { total } => {
                if total == 0 {
                    return base;
                }
                let progress = step.min(total) as f64 / total as f64;
                (base as f64 * 0.5 * (1.0 + libm::cos(core::f64::consts::PI * progress))) as f32
            }
        }
    }
}
