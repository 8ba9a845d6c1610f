//! Adam and AdamW (`torch.optim.Adam` / `AdamW` semantics, bias-corrected).
#![forbid(unsafe_code)]

use super::Optimizer;
use crate::kernels::{AdamStep, Rule, STATES};
use crate::params::Params;

/// Adam's hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[repr(C)]
pub struct AdamConfig {
    /// First-moment decay β1 (PyTorch default 0.9).
    pub beta1: f32,
    /// Second-moment decay β2 (default 0.999).
    pub beta2: f32,
    /// Denominator ε (default 1e-8).
    pub eps: f32,
    /// Weight decay: an L2 term in the gradient, or decoupled when `decoupled` (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// Clip the gradients' global L2 norm to this before each update (0: no clipping).
    pub clip_grad_norm: f32,
}

impl AdamConfig {
    /// PyTorch's defaults: β1 0.9, β2 0.999, ε 1e-8, no weight decay.
    pub const DEFAULT: Self = Self {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        clip_grad_norm: 0.0,
    };

    /// AdamW with PyTorch's default decay of 0.01.
    pub const ADAMW: Self = Self {
        weight_decay: 0.01,
        decoupled: true,
        ..Self::DEFAULT
    };
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Adam with its state: first and second moments, one per parameter, and the step count.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct Adam<P> {
    /// Hyperparameters; may change between steps.
    pub config: AdamConfig,
    t: u64,
    m: P,
    v: P,
}

impl<P: Params> Adam<P> {
    /// Fresh state. The value holds two copies of the parameter block: use it to initialise a
    /// `static` (no_std), or call [`Adam::new_boxed`] to build it on the heap.
    pub const fn new(config: AdamConfig) -> Self {
        Self {
            config,
            t: 0,
            m: P::ZEROED,
            v: P::ZEROED,
        }
    }

    /// Fresh state on the heap, built without a stack temporary.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: AdamConfig) -> alloc::boxed::Box<Self> {
        let mut adam = bytemuck::zeroed_box::<Self>();
        adam.config = config;
        adam
    }

    /// The moments `(m, v)`.
    pub fn moments(&self) -> (&P, &P) {
        (&self.m, &self.v)
    }
}

impl<P: Params> Optimizer<P> for Adam<P> {
    fn clip_grad_norm(&self) -> f32 {
        self.config.clip_grad_norm
    }

    fn rule(&self, t: u64, lr: f32, grad_scale: f32) -> Rule {
        let c = self.config;
        let step = AdamStep::new(lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.decoupled, t);
        Rule::Adam(AdamStep { grad_scale, ..step })
    }

    fn state_mut(&mut self) -> [&mut [f32]; STATES] {
        [self.m.flat_mut(), self.v.flat_mut(), &mut []]
    }

    fn state(&self) -> [(&'static str, &[f32]); STATES] {
        [
            ("adam.m", self.m.flat()),
            ("adam.v", self.v.flat()),
            ("", &[]),
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
impl super::Hyperparameters for AdamConfig {
    fn name(&self) -> &'static str {
        if self.decoupled { "adamw" } else { "adam" }
    }

    fn clip_grad_norm(&self) -> f32 {
        self.clip_grad_norm
    }

    fn check(&self) -> Result<(), super::OutOfRange> {
        use super::choice::{fraction, non_negative, positive};
        fraction("beta1", self.beta1)?;
        fraction("beta2", self.beta2)?;
        positive("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)
    }

    fn describe(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (name, decay) = (self.name(), self.weight_decay);
        match decay {
            _ if self.decoupled => write!(f, "{name} (weight decay {decay})"),
            _ if decay > 0.0 => write!(f, "{name} (L2 {decay})"),
            _ => write!(f, "{name}"),
        }
    }

    fn build<P: Params>(self) -> super::AnyOptimizer<P> {
        super::AnyOptimizer::Adam(Adam::new_boxed(self))
    }
}
