//! RMSprop (`torch.optim.RMSprop` semantics: α, ε, momentum, centered, L2 weight decay).
//!
//! State, per parameter: `square_avg` always, the momentum buffer with momentum, `grad_avg`
//! when centered, each a block like the parameters, all starting at 0 as in PyTorch. The
//! formulas are [`RmsPropStep`]'s.
#![forbid(unsafe_code)]

use super::Optimizer;
use crate::kernels::{RmsPropStep, Rule, STATES};
use crate::params::Params;

/// RMSprop's hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[repr(C)]
pub struct RmsPropConfig {
    /// Smoothing constant α (PyTorch default 0.99).
    pub alpha: f32,
    /// Denominator ε (default 1e-8).
    pub eps: f32,
    /// L2 weight decay (default 0).
    pub weight_decay: f32,
    /// Momentum μ (default 0: no momentum buffer).
    pub momentum: f32,
    /// Divide by the centered second moment, an estimate of the variance (default off).
    pub centered: bool,
    /// Clip the gradients' global L2 norm to this before each update (0: no clipping).
    pub clip_grad_norm: f32,
}

impl RmsPropConfig {
    /// PyTorch's defaults: α 0.99, ε 1e-8, no weight decay, no momentum, not centered.
    pub const DEFAULT: Self = Self {
        alpha: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
        momentum: 0.0,
        centered: false,
        clip_grad_norm: 0.0,
    };
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// RMSprop with its state: three blocks (see the module docs) and the step count.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct RmsProp<P> {
    /// Hyperparameters; may change between steps (a block turned on later starts from 0).
    pub config: RmsPropConfig,
    t: u64,
    square_avg: P,
    momentum_buffer: P,
    grad_avg: P,
}

impl<P: Params> RmsProp<P> {
    /// Fresh state; see [`crate::optim::Adam::new`] on where to keep it.
    pub const fn new(config: RmsPropConfig) -> Self {
        Self {
            config,
            t: 0,
            square_avg: P::ZEROED,
            momentum_buffer: P::ZEROED,
            grad_avg: P::ZEROED,
        }
    }

    /// Fresh state on the heap, built without a stack temporary.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: RmsPropConfig) -> alloc::boxed::Box<Self> {
        let mut rmsprop = bytemuck::zeroed_box::<Self>();
        rmsprop.config = config;
        rmsprop
    }

    /// The state `(square_avg, momentum_buffer, grad_avg)`.
    pub fn averages(&self) -> (&P, &P, &P) {
        (&self.square_avg, &self.momentum_buffer, &self.grad_avg)
    }
}

impl<P: Params> Optimizer<P> for RmsProp<P> {
    fn clip_grad_norm(&self) -> f32 {
        self.config.clip_grad_norm
    }

    fn rule(&self, _t: u64, lr: f32, grad_scale: f32) -> Rule {
        let c = self.config;
        Rule::RmsProp(RmsPropStep {
            lr,
            alpha: c.alpha,
            eps: c.eps,
            weight_decay: c.weight_decay,
            momentum: c.momentum,
            centered: c.centered,
            grad_scale,
        })
    }

    /// Only the blocks the configuration uses; the others are empty (not in checkpoints).
    fn state_mut(&mut self) -> [&mut [f32]; STATES] {
        let c = self.config;
        [
            self.square_avg.flat_mut(),
            if c.momentum != 0.0 {
                self.momentum_buffer.flat_mut()
            } else {
                &mut []
            },
            if c.centered {
                self.grad_avg.flat_mut()
            } else {
                &mut []
            },
        ]
    }

    fn state(&self) -> [(&'static str, &[f32]); STATES] {
        let c = self.config;
        let unused: (&'static str, &[f32]) = ("", &[]);
        [
            ("rmsprop.square_avg", self.square_avg.flat()),
            if c.momentum != 0.0 {
                ("rmsprop.momentum_buffer", self.momentum_buffer.flat())
            } else {
                unused
            },
            if c.centered {
                ("rmsprop.grad_avg", self.grad_avg.flat())
            } else {
                unused
            },
        ]
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }

    fn set_steps_taken(&mut self, t: u64) {
        self.t = t;
    }
}

#[cfg(feature = "std")]
impl super::Hyperparameters for RmsPropConfig {
    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn clip_grad_norm(&self) -> f32 {
        self.clip_grad_norm
    }

    fn check(&self) -> Result<(), super::OutOfRange> {
        use super::choice::{fraction, non_negative, positive};
        fraction("alpha", self.alpha)?;
        fraction("momentum", self.momentum)?;
        positive("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)
    }

    fn describe(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let centered = if self.centered { "centered, " } else { "" };
        let (name, alpha, momentum, decay) =
            (self.name(), self.alpha, self.momentum, self.weight_decay);
        write!(
            f,
            "{name} (alpha {alpha}, {centered}momentum {momentum}, L2 {decay})"
        )
    }

    fn build<P: Params>(self) -> super::AnyOptimizer<P> {
        super::AnyOptimizer::RmsProp(RmsProp::new_boxed(self))
    }
}
