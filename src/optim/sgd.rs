//! Stochastic gradient descent with momentum (`torch.optim.SGD` semantics, dampening 0).
#![forbid(unsafe_code)]

use super::Optimizer;
use super::Rule;
use crate::kernels::{
    GRAD_FLUSH, Lanes, STATE_FLUSH, STATES, Step, Vector, flush, flush_one, for_each_chunk,
    gradient_scale, scaled,
};
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

impl SgdConfig {
    /// SGD with momentum 0.9 (what `--optimizer sgd` starts from).
    pub const MOMENTUM: Self = Self {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        clip_grad_norm: 0.0,
    };
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

// The rule: one step's constants, then its arithmetic on lanes and one float at a time.

/// One SGD step's constants (`torch.optim.SGD`, dampening 0). State tensor: `first` = the
/// momentum buffer (none without momentum).
///
/// ```text
/// g = grad·grad_scale       (gradient clipping; below GRAD_FLUSH taken as 0)
/// g = g + wd·p
/// b = g on the first step, else μ·b + g      (when μ ≠ 0)
/// g = g + μ·b (Nesterov) or b
/// p -= lr·g
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate for this step.
    pub lr: f32,
    /// Momentum μ (0 disables the buffer).
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// `true` on the first step: the momentum buffer starts as the gradient.
    pub first: bool,
    /// Factor applied to every gradient first (1, or the clipping factor).
    pub grad_scale: f32,
}

impl Step for SgdStep {
    fn state_tensors(&self) -> [bool; STATES] {
        [self.momentum != 0.0, false, false]
    }

    #[inline(always)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool {
        let lanes = SgdLanes::<V>::new(self);
        for_each_chunk(params, grads, state, self.state_tensors(), lanes)
    }

    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]) {
        let [velocity, _, _] = state;
        reference(params, grads, velocity, self)
    }
}

/// One SGD step's constants, splatted.
pub struct SgdLanes<V> {
    lr: V,
    mu: V,
    wd: V,
    scale: Option<V>,
    grad_flush: V,
    state_flush: V,
    decay: bool,
    momentum: bool,
    first: bool,
    nesterov: bool,
}

impl<V: Vector> SgdLanes<V> {
    #[inline(always)]
    fn new(s: &SgdStep) -> Self {
        Self {
            lr: V::splat(s.lr),
            mu: V::splat(s.momentum),
            wd: V::splat(s.weight_decay),
            scale: gradient_scale(s.grad_scale),
            grad_flush: V::splat(GRAD_FLUSH),
            state_flush: V::splat(STATE_FLUSH),
            decay: s.weight_decay != 0.0,
            momentum: s.momentum != 0.0,
            first: s.first,
            nesterov: s.nesterov,
        }
    }
}

impl<V: Vector> Lanes<V> for SgdLanes<V> {
    #[inline(always)]
    fn apply(&self, p: V, g: V, [b, _, _]: [V; STATES]) -> (V, [V; STATES]) {
        let g = flush(scaled(g, self.scale), self.grad_flush);
        let g = if self.decay { g + self.wd * p } else { g };
        if !self.momentum {
            return (p - self.lr * g, [V::zero(); STATES]);
        }
        let b = flush(
            if self.first { g } else { self.mu * b + g },
            self.state_flush,
        );
        let g = if self.nesterov { g + self.mu * b } else { b };
        (p - self.lr * g, [b, V::zero(), V::zero()])
    }
}

/// SGD (see [`SgdStep`] for the formulas).
fn reference(params: &mut [f32], grads: &[f32], velocity: &mut [f32], s: &SgdStep) {
    for i in 0..params.len() {
        let mut g = flush_one(grads[i] * s.grad_scale, GRAD_FLUSH);
        if s.weight_decay != 0.0 {
            g += s.weight_decay * params[i];
        }
        if s.momentum != 0.0 {
            velocity[i] = flush_one(
                if s.first {
                    g
                } else {
                    s.momentum * velocity[i] + g
                },
                STATE_FLUSH,
            );
            g = if s.nesterov {
                g + s.momentum * velocity[i]
            } else {
                velocity[i]
            };
        }
        params[i] -= s.lr * g;
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
        Sgd::new_boxed(self).into()
    }
}
