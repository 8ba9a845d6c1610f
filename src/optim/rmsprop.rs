//! RMSprop (`torch.optim.RMSprop` semantics: α, ε, momentum, centered, L2 weight decay).
//!
//! State, per parameter: `square_avg` always, the momentum buffer with momentum, `grad_avg`
//! when centered, each a block like the parameters, all starting at 0 as in PyTorch. The
//! formulas are [`RmsPropStep`]'s.
#![forbid(unsafe_code)]

use super::Optimizer;
use super::Rule;
use crate::kernels::{
    GRAD_FLUSH, Lanes, STATE_FLUSH, STATES, Step, Vector, flush, flush_one, for_each_chunk,
    gradient_scale, scaled,
};
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

// The rule: one step's constants, then its arithmetic on lanes and one float at a time.

/// One RMSprop step's constants (`torch.optim.RMSprop`; its state starts at 0). State
/// tensors: `first` = square_avg, `second` = the momentum buffer (with momentum), `third` =
/// grad_avg (when centered).
///
/// ```text
/// g   = grad·grad_scale     (gradient clipping; below GRAD_FLUSH taken as 0)
/// g   = g + wd·p
/// sq  = α·sq + (1 − α)·g²                        (square_avg)
/// ga  = α·ga + (1 − α)·g                         (grad_avg, when centered)
/// avg = √(sq − ga²) + ε   (centered; a negative difference, only ever a rounding of 0, as 0)
/// avg = √sq + ε           (otherwise)
/// b   = μ·b + g / avg;  p -= lr·b               (momentum_buffer, when μ ≠ 0)
/// p  -= lr·(g / avg)                              (otherwise)
/// ```
///
/// (sq, ga and b below STATE_FLUSH are stored as 0.) PyTorch updates `grad_avg` with `lerp_`,
/// which rounds differently in the last bit; the formula is the same.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropStep {
    /// Learning rate for this step.
    pub lr: f32,
    /// Smoothing constant α of the averages (PyTorch default 0.99).
    pub alpha: f32,
    /// ε added to the denominator (default 1e-8).
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Momentum μ (0: no momentum buffer).
    pub momentum: f32,
    /// Normalise by the centered second moment (keeps `grad_avg`).
    pub centered: bool,
    /// Factor applied to every gradient first (1, or the clipping factor).
    pub grad_scale: f32,
}

impl Step for RmsPropStep {
    fn state_tensors(&self) -> [bool; STATES] {
        [true, self.momentum != 0.0, self.centered]
    }

    #[inline(always)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool {
        let lanes = RmsPropLanes::<V>::new(self);
        for_each_chunk(params, grads, state, self.state_tensors(), lanes)
    }

    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]) {
        reference(params, grads, state, self)
    }
}

/// One RMSprop step's constants, splatted.
pub struct RmsPropLanes<V> {
    lr: V,
    alpha: V,
    one_alpha: V,
    eps: V,
    wd: V,
    mu: V,
    scale: Option<V>,
    grad_flush: V,
    state_flush: V,
    decay: bool,
    momentum: bool,
    centered: bool,
}

impl<V: Vector> RmsPropLanes<V> {
    #[inline(always)]
    fn new(s: &RmsPropStep) -> Self {
        Self {
            lr: V::splat(s.lr),
            alpha: V::splat(s.alpha),
            one_alpha: V::splat(1.0 - s.alpha),
            eps: V::splat(s.eps),
            wd: V::splat(s.weight_decay),
            mu: V::splat(s.momentum),
            scale: gradient_scale(s.grad_scale),
            grad_flush: V::splat(GRAD_FLUSH),
            state_flush: V::splat(STATE_FLUSH),
            decay: s.weight_decay != 0.0,
            momentum: s.momentum != 0.0,
            centered: s.centered,
        }
    }
}

impl<V: Vector> Lanes<V> for RmsPropLanes<V> {
    #[inline(always)]
    fn apply(&self, p: V, g: V, [sq, b, ga]: [V; STATES]) -> (V, [V; STATES]) {
        let g = flush(scaled(g, self.scale), self.grad_flush);
        let g = if self.decay { g + self.wd * p } else { g };
        let sq = flush(self.alpha * sq + self.one_alpha * (g * g), self.state_flush);
        let (avg, ga) = if self.centered {
            let ga = flush(self.alpha * ga + self.one_alpha * g, self.state_flush);
            let var = sq - ga * ga;
            (var.zero_where_below(var, V::zero()).sqrt() + self.eps, ga)
        } else {
            (sq.sqrt() + self.eps, V::zero())
        };
        if self.momentum {
            let b = flush(self.mu * b + g / avg, self.state_flush);
            (p - self.lr * b, [sq, b, ga])
        } else {
            (p - self.lr * (g / avg), [sq, V::zero(), ga])
        }
    }
}

/// RMSprop (see [`RmsPropStep`] for the formulas). `state` is square_avg, the momentum buffer
/// (read only with momentum) and grad_avg (read only when centered).
fn reference(params: &mut [f32], grads: &[f32], state: [&mut [f32]; 3], s: &RmsPropStep) {
    let [sq, buf, ga] = state;
    for i in 0..params.len() {
        let mut g = flush_one(grads[i] * s.grad_scale, GRAD_FLUSH);
        if s.weight_decay != 0.0 {
            g += s.weight_decay * params[i];
        }
        sq[i] = flush_one(s.alpha * sq[i] + (1.0 - s.alpha) * (g * g), STATE_FLUSH);
        let avg = if s.centered {
            ga[i] = flush_one(s.alpha * ga[i] + (1.0 - s.alpha) * g, STATE_FLUSH);
            let var = sq[i] - ga[i] * ga[i];
            libm::sqrtf(if var < 0.0 { 0.0 } else { var }) + s.eps
        } else {
            libm::sqrtf(sq[i]) + s.eps
        };
        if s.momentum != 0.0 {
            buf[i] = flush_one(s.momentum * buf[i] + g / avg, STATE_FLUSH);
            params[i] -= s.lr * buf[i];
        } else {
            params[i] -= s.lr * (g / avg);
        }
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
        RmsProp::new_boxed(self).into()
    }
}
