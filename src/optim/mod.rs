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
    fn step<K: Backend>(&mut self, params: &mut N, grads: &N, lr: f32) -> bool {
        let Some(grad_scale) = clip_scale::<N, K>(grads, self.clip_grad_norm()) else {
            return false;
        };
        self.begin_step();
        let update = PartUpdate {
            lr,
            grad_scale,
            part: 0,
            parts: 1,
        };
        self.update_part::<K>(params, grads, &update)
    }

    /// The global gradient norm gradients are clipped to before each update (0: none).
    fn clip_grad_norm(&self) -> f32;

    /// Counts a new step; its update then comes from [`Optimizer::update_part`] calls.
    fn begin_step(&mut self);

    /// One part of the current step's update (see [`PartUpdate`]). Parts are independent:
    /// threads can each apply one (to their own copy of the parameters and state). Returns
    /// whether those gradients were finite.
    fn update_part<K: Backend>(&mut self, params: &mut N, grads: &N, update: &PartUpdate) -> bool;

    /// How many updates have been applied.
    fn steps_taken(&self) -> u64;
}

/// What one [`Optimizer::update_part`] call applies.
#[derive(Clone, Copy, Debug)]
pub struct PartUpdate {
    /// The learning rate.
    pub lr: f32,
    /// Every gradient is multiplied by this first (gradient clipping; 1 for none).
    pub grad_scale: f32,
    /// Which part: the elements [`part_range`]`(len, part, parts)` of every tensor.
    pub part: usize,
    /// How many parts the update is split into.
    pub parts: usize,
}

impl PartUpdate {
    /// This part's elements of a tensor of `len` elements.
    pub fn range(&self, len: usize) -> core::ops::Range<usize> {
        part_range(len, self.part, self.parts)
    }
}

/// An optimizer chosen at run time, with its state on the heap.
#[cfg(feature = "alloc")]
pub enum AnyOptimizer<N> {
    /// SGD state.
    Sgd(alloc::boxed::Box<Sgd<N>>),
    /// Adam state.
    Adam(alloc::boxed::Box<Adam<N>>),
}

#[cfg(feature = "alloc")]
impl<N: Network> AnyOptimizer<N> {
    /// A fresh optimizer with the same kind and configuration.
    pub fn same_kind(&self) -> Self {
        match self {
            AnyOptimizer::Sgd(o) => AnyOptimizer::Sgd(Sgd::new_boxed(o.config)),
            AnyOptimizer::Adam(o) => AnyOptimizer::Adam(Adam::new_boxed(o.config)),
        }
    }

    /// Copies `from`'s step count and state (all of it, or part `part` of `parts` of every
    /// tensor). Both must be of the same kind.
    pub fn copy_state(&mut self, from: &Self, part: usize, parts: usize) {
        let copy = |dst: &mut N, src: &N| {
            for i in 0..N::TENSORS {
                let r = part_range(src.tensor(i).len(), part, parts);
                dst.tensor_mut(i)[r.clone()].copy_from_slice(&src.tensor(i)[r]);
            }
        };
        match (self, from) {
            (AnyOptimizer::Adam(dst), AnyOptimizer::Adam(src)) => {
                let (sm, sv) = src.moments();
                let (dm, dv, t) = dst.state_mut();
                copy(dm, sm);
                copy(dv, sv);
                *t = src.steps_taken();
            }
            (AnyOptimizer::Sgd(dst), AnyOptimizer::Sgd(src)) => {
                let (dvel, t) = dst.state_mut();
                copy(dvel, src.velocity());
                *t = src.steps_taken();
            }
            _ => panic!("copy_state between optimizers of different kinds"),
        }
    }
}

#[cfg(feature = "alloc")]
impl<N: Network> Optimizer<N> for AnyOptimizer<N> {
    fn clip_grad_norm(&self) -> f32 {
        match self {
            AnyOptimizer::Sgd(o) => o.clip_grad_norm(),
            AnyOptimizer::Adam(o) => o.clip_grad_norm(),
        }
    }
    fn begin_step(&mut self) {
        match self {
            AnyOptimizer::Sgd(o) => o.begin_step(),
            AnyOptimizer::Adam(o) => o.begin_step(),
        }
    }
    fn update_part<K: Backend>(&mut self, params: &mut N, grads: &N, update: &PartUpdate) -> bool {
        match self {
            AnyOptimizer::Sgd(o) => o.update_part::<K>(params, grads, update),
            AnyOptimizer::Adam(o) => o.update_part::<K>(params, grads, update),
        }
    }
    fn steps_taken(&self) -> u64 {
        match self {
            AnyOptimizer::Sgd(o) => o.steps_taken(),
            AnyOptimizer::Adam(o) => o.steps_taken(),
        }
    }
}

/// Part `part` of `parts` of `0..len`: the parts are contiguous, in order, and cover it.
pub fn part_range(len: usize, part: usize, parts: usize) -> core::ops::Range<usize> {
    part * len / parts..(part + 1) * len / parts
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
            .map(|i| K::run(crate::kernels::SumSquares(grads.tensor(i))))
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
