//! Stochastic gradient descent with momentum (`torch.optim.SGD` semantics, dampening 0).
#![forbid(unsafe_code)]

use super::Optimizer;
use crate::kernels::{Rule, STATES, SgdStep};
use crate::params::Params;

/// SGD's hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Zeroable)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[repr(C)]
pub struct SgdConfig {
    /// Momentum μ; 0 for plain SGD.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Clip the gradients' global L2 norm to this before each update (0: no clipping).
    pub clip_grad_norm: f32,
}

/// SGD with its state: the momentum buffer and the step count.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct Sgd<P> {
    /// Hyperparameters; may change between steps.
    pub config: SgdConfig,
    t: u64,
    velocity: P,
}

impl<P: Params> Sgd<P> {
    /// Fresh state; see [`crate::optim::Adam::new`] on where to keep it.
    pub const fn new(config: SgdConfig) -> Self {
        Self {
            config,
            t: 0,
            velocity: P::ZEROED,
        }
    }

    /// Fresh state on the heap, built without a stack temporary.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: SgdConfig) -> alloc::boxed::Box<Self> {
        let mut sgd = bytemuck::zeroed_box::<Self>();
        sgd.config = config;
        sgd
    }

    /// The momentum buffer.
    pub fn velocity(&self) -> &P {
        &self.velocity
    }
}

impl<P: Params> Optimizer<P> for Sgd<P> {
    fn clip_grad_norm(&self) -> f32 {
        self.config.clip_grad_norm
    }

    fn rule(&self, t: u64, lr: f32, grad_scale: f32) -> Rule {
        let c = self.config;
        Rule::Sgd(SgdStep {
            lr,
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
            first: t == 1,
            grad_scale,
        })
    }

    fn state_mut(&mut self) -> [&mut [f32]; STATES] {
        [self.velocity.flat_mut(), &mut [], &mut []]
    }

    fn state(&self) -> [(&'static str, &[f32]); STATES] {
        [("sgd.velocity", self.velocity.flat()), ("", &[]), ("", &[])]
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }

    fn set_steps_taken(&mut self, t: u64) {
        self.t = t;
    }
}

#[cfg(feature = "std")]
impl super::Hyperparameters for SgdConfig {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn clip_grad_norm(&self) -> f32 {
        self.clip_grad_norm
    }

    fn check(&self) -> Result<(), super::OutOfRange> {
        super::choice::fraction("momentum", self.momentum)?;
        super::choice::non_negative("weight_decay", self.weight_decay)
    }

    fn describe(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let nesterov = if self.nesterov { "nesterov, " } else { "" };
        let (name, momentum, decay) = (self.name(), self.momentum, self.weight_decay);
        write!(
            f,
            "{name} (momentum {momentum}, {nesterov}weight decay {decay})"
        )
    }

    fn build<P: Params>(self) -> super::AnyOptimizer<P> {
        super::AnyOptimizer::Sgd(Sgd::new_boxed(self))
    }
}
