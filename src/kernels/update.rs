//! Optimizer updates over flat parameter slices: SGD with momentum, Adam/AdamW and RMSprop.
//!
//! Each update reads a parameter, its gradient and its optimizer state once and writes the
//! parameter and state back: one pass, `LANES` elements per step. The arithmetic is the
//! reference's, operation for operation, with no fused multiply-add, so every path's update is
//! bit-identical to [`super::reference::adam_update`] (IEEE `+ − × ÷ √` round the same in every
//! lane). A tail shorter than a vector is copied into zero-padded lanes and copied back.
//!
//! Subnormals: arithmetic on subnormal floats costs ~100 cycles per operation on many x86 cores,
//! and Rust forbids the usual cure (setting FTZ/DAZ in MXCSR is undefined behaviour). Momentum
//! buffers decay geometrically when a gradient stays 0, so without care they all pass through
//! the subnormal range. The updates therefore treat gradients below [`GRAD_FLUSH`] and moments
//! below [`STATE_FLUSH`] as 0: every value they then compute stays normal, and the change to a
//! step is below 1e-9 of the learning rate.
#![forbid(unsafe_code)]

use super::ops::{ParamsAndState, Update};
use super::simd::Vector;

/// Gradients smaller in magnitude enter the updates as 0: then `(1 − β2)·g²` (≥ 1e-37) and
/// `0.1·g` stay normal.
pub const GRAD_FLUSH: f32 = 1e-17;
/// Moments (and SGD's velocity) smaller in magnitude are stored as 0, so their geometric decay
/// never reaches the subnormal range (below 1.2e-38).
pub const STATE_FLUSH: f32 = 1e-30;

/// `x`, or 0 where `|x| < limit`; NaN passes through.
#[inline(always)]
fn flush<V: Vector>(x: V, limit: V) -> V {
    x.zero_where_below(x.abs(), limit)
}
/// One Adam step's constants, with the bias corrections for step `t` folded in.
///
/// Semantics are `torch.optim.Adam` (and `AdamW` when `decoupled`):
///
/// ```text
/// g  = grad·grad_scale      (gradient clipping; below GRAD_FLUSH taken as 0)
/// g  = g + wd·p             (Adam: L2 penalty in the gradient)
/// p  = p·(1 − lr·wd)        (AdamW instead: decoupled decay)
/// m  = β1·m + (1 − β1)·g
/// v  = β2·v + (1 − β2)·g²
/// p -= step_size · (m / (√v / √(1 − β2^t) + ε)),   step_size = lr / (1 − β1^t)
/// ```
///
/// (m and v below STATE_FLUSH are stored as 0.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate for this step.
    pub lr: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// ε added to the denominator.
    pub eps: f32,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f32,
    /// `true` for AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// `lr / (1 − β1^t)`.
    pub step_size: f32,
    /// `√(1 − β2^t)`.
    pub bias_correction2_sqrt: f32,
    /// Factor applied to every gradient first (1, or the clipping factor).
    pub grad_scale: f32,
}

impl AdamStep {
    /// The constants for step `t` (1-based), computing `β^t` in f64 as PyTorch does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
        decoupled: bool,
        t: u64,
    ) -> Self {
        let t = t.max(1) as f64;
        let bc1 = 1.0 - libm::pow(beta1 as f64, t);
        let bc2 = 1.0 - libm::pow(beta2 as f64, t);
        Self {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            step_size: (lr as f64 / bc1) as f32,
            bias_correction2_sqrt: libm::sqrt(bc2) as f32,
            grad_scale: 1.0,
        }
    }
}

/// One SGD step's constants (`torch.optim.SGD`, dampening 0):
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

/// One RMSprop step's constants (`torch.optim.RMSprop`; its state starts at 0):
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

/// What one step of an optimizer does to each parameter: its constants for this step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Adam or AdamW; state: m, v.
    Adam(AdamStep),
    /// SGD with optional momentum; state: the momentum buffer (none without momentum).
    Sgd(SgdStep),
    /// RMSprop; state: square_avg, the momentum buffer (with momentum), grad_avg (centered).
    RmsProp(RmsPropStep),
}

/// The most state tensors an optimizer keeps per parameter (RMSprop, centered with momentum).
pub const STATES: usize = 3;

impl Rule {
    /// Which of the [`STATES`] state tensors the rule uses.
    pub fn state_tensors(&self) -> [bool; STATES] {
        match self {
            Rule::Adam(_) => [true, true, false],
            Rule::Sgd(s) => [s.momentum != 0.0, false, false],
            Rule::RmsProp(s) => [true, s.momentum != 0.0, s.centered],
        }
    }
}

/// One optimizer update (see [`Update`]).
#[inline(always)]
pub(crate) fn update<V: Vector>(op: Update<'_>) -> bool {
    let Update {
        rule,
        params,
        grads,
        first,
        second,
        third,
    } = op;
    // Only the state tensors the rule uses are read and written.
    let [u1, u2, u3] = rule.state_tensors();
    let state = [used(first, u1), used(second, u2), used(third, u3)];
    match rule {
        Rule::Adam(step) => for_each_chunk(params, grads, state, AdamLanes::<V>::new(step)),
        Rule::Sgd(step) => for_each_chunk(params, grads, state, SgdLanes::<V>::new(step)),
        Rule::RmsProp(step) => for_each_chunk(params, grads, state, RmsPropLanes::<V>::new(step)),
    }
}

/// `p` with each state slice `rule` does not use emptied (so it is neither read nor written).
#[inline(always)]
pub(crate) fn used_state<'a>(rule: &Rule, p: ParamsAndState<'a>) -> ParamsAndState<'a> {
    let [u1, u2, u3] = rule.state_tensors();
    ParamsAndState {
        params: p.params,
        first: used(p.first, u1),
        second: used(p.second, u2),
        third: used(p.third, u3),
    }
}

/// `s` if the rule uses it, else empty (not read, not written).
#[inline(always)]
fn used(s: &mut [f32], used: bool) -> &mut [f32] {
    if used { s } else { &mut [] }
}

/// An update of LANES parameters at once: `(p, g, state) → (p, state)`. A trait, not a
/// closure, so it is always inlined into the kernel's entry point (see [`super::tile`]).
pub(crate) trait Lanes<V> {
    fn apply(&self, p: V, g: V, s: [V; STATES]) -> (V, [V; STATES]);
}

/// One Adam step's constants, splatted.
pub(crate) struct AdamLanes<V> {
    b1: V,
    b2: V,
    one_b1: V,
    one_b2: V,
    eps: V,
    wd: V,
    decay: V,
    step_size: V,
    bc2: V,
    scale: V,
    grad_flush: V,
    state_flush: V,
    l2: bool,
    decoupled: bool,
}

impl<V: Vector> AdamLanes<V> {
    #[inline(always)]
    pub(crate) fn new(s: &AdamStep) -> Self {
        Self {
            b1: V::splat(s.beta1),
            b2: V::splat(s.beta2),
            one_b1: V::splat(1.0 - s.beta1),
            one_b2: V::splat(1.0 - s.beta2),
            eps: V::splat(s.eps),
            wd: V::splat(s.weight_decay),
            decay: V::splat(1.0 - s.lr * s.weight_decay),
            step_size: V::splat(s.step_size),
            bc2: V::splat(s.bias_correction2_sqrt),
            scale: V::splat(s.grad_scale),
            grad_flush: V::splat(GRAD_FLUSH),
            state_flush: V::splat(STATE_FLUSH),
            l2: s.weight_decay != 0.0 && !s.decoupled,
            decoupled: s.weight_decay != 0.0 && s.decoupled,
        }
    }
}

impl<V: Vector> Lanes<V> for AdamLanes<V> {
    #[inline(always)]
    fn apply(&self, p: V, g: V, [m, v, _]: [V; STATES]) -> (V, [V; STATES]) {
        let g = flush(g * self.scale, self.grad_flush);
        let (p, g) = if self.decoupled {
            (p * self.decay, g)
        } else if self.l2 {
            (p, g + self.wd * p)
        } else {
            (p, g)
        };
        let m = flush(self.b1 * m + self.one_b1 * g, self.state_flush);
        let v = flush(self.b2 * v + self.one_b2 * (g * g), self.state_flush);
        let denom = v.sqrt() / self.bc2 + self.eps;
        (p - self.step_size * (m / denom), [m, v, V::zero()])
    }
}

/// One SGD step's constants, splatted.
pub(crate) struct SgdLanes<V> {
    lr: V,
    mu: V,
    wd: V,
    scale: V,
    grad_flush: V,
    state_flush: V,
    decay: bool,
    momentum: bool,
    first: bool,
    nesterov: bool,
}

impl<V: Vector> SgdLanes<V> {
    #[inline(always)]
    pub(crate) fn new(s: &SgdStep) -> Self {
        Self {
            lr: V::splat(s.lr),
            mu: V::splat(s.momentum),
            wd: V::splat(s.weight_decay),
            scale: V::splat(s.grad_scale),
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
        let g = flush(g * self.scale, self.grad_flush);
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

/// One RMSprop step's constants, splatted.
pub(crate) struct RmsPropLanes<V> {
    lr: V,
    alpha: V,
    one_alpha: V,
    eps: V,
    wd: V,
    mu: V,
    scale: V,
    grad_flush: V,
    state_flush: V,
    decay: bool,
    momentum: bool,
    centered: bool,
}

impl<V: Vector> RmsPropLanes<V> {
    #[inline(always)]
    pub(crate) fn new(s: &RmsPropStep) -> Self {
        Self {
            lr: V::splat(s.lr),
            alpha: V::splat(s.alpha),
            one_alpha: V::splat(1.0 - s.alpha),
            eps: V::splat(s.eps),
            wd: V::splat(s.weight_decay),
            mu: V::splat(s.momentum),
            scale: V::splat(s.grad_scale),
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
        let g = flush(g * self.scale, self.grad_flush);
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

/// `Σ x²` over a slice, a vector of lanes at a time (for gradient-norm clipping).
#[inline(always)]
pub(crate) fn sum_squares<V: Vector>(x: &[f32]) -> f32 {
    let mut chunks = x.chunks_exact(V::LANES);
    let mut acc = V::zero();
    for c in &mut chunks {
        let v = V::load(c);
        acc = v.mul_add(v, acc);
    }
    acc.reduce_add() + chunks.remainder().iter().map(|t| t * t).sum::<f32>()
}

/// `s`'s LANES floats at `i`, or as many as remain zero-padded; zero for an empty `s`.
#[inline(always)]
fn load_at<V: Vector>(s: &[f32], i: usize) -> V {
    if s.is_empty() {
        V::zero()
    } else if i + V::LANES <= s.len() {
        V::load(&s[i..])
    } else {
        V::load_partial(&s[i..])
    }
}

/// Stores into `s` at `i` as [`load_at`] read (nothing for an empty `s`).
#[inline(always)]
fn store_at<V: Vector>(s: &mut [f32], i: usize, v: V) {
    if s.is_empty() {
    } else if i + V::LANES <= s.len() {
        v.store(&mut s[i..]);
    } else {
        v.store_partial(&mut s[i..]);
    }
}

/// The whole vector at `i` of `s`, or zero for an empty `s`.
#[inline(always)]
fn load_whole<V: Vector>(s: &[f32], i: usize) -> V {
    if s.is_empty() {
        V::zero()
    } else {
        V::load(&s[i..i + V::LANES])
    }
}

/// Stores a whole vector into `s` at `i` (nothing for an empty `s`).
#[inline(always)]
fn store_whole<V: Vector>(s: &mut [f32], i: usize, v: V) {
    if !s.is_empty() {
        v.store(&mut s[i..i + V::LANES]);
    }
}

/// Runs `f.apply(p, g, state) -> (p, state)` over LANES-wide chunks of the slices. A state
/// slice may be empty (then it reads as zero and is not written). The tail goes through
/// zero-padded vectors. Returns whether every `g` and every updated `p` was finite.
#[inline(always)]
pub(crate) fn for_each_chunk<V: Vector>(
    p: &mut [f32],
    g: &[f32],
    state: [&mut [f32]; STATES],
    f: impl Lanes<V>,
) -> bool {
    // `x·0` is 0 for every finite x and NaN for ±inf and NaN, and NaN sticks in the sum: it
    // checks every gradient and every updated parameter.
    let mut probe = V::zero();
    let [s0, s1, s2] = state;
    // Whole vectors with plain loads (a `step_by` loop with `load_at`'s tail test in it ran
    // the Adam update at half this speed), then the tail.
    let full = p.len() - p.len() % V::LANES;
    let mut i = 0;
    while i < full {
        let gv = load_whole::<V>(g, i);
        let s = [load_whole(s0, i), load_whole(s1, i), load_whole(s2, i)];
        let (np, [n0, n1, n2]) = f.apply(load_whole(p, i), gv, s);
        probe = probe + (gv + np) * V::zero();
        store_whole(p, i, np);
        store_whole(s0, i, n0);
        store_whole(s1, i, n1);
        store_whole(s2, i, n2);
        i += V::LANES;
    }
    if full < p.len() {
        let gv = load_at::<V>(g, full);
        let s = [load_at(s0, full), load_at(s1, full), load_at(s2, full)];
        let (np, [n0, n1, n2]) = f.apply(load_at(p, full), gv, s);
        probe = probe + (gv + np) * V::zero();
        store_at(p, full, np);
        store_at(s0, full, n0);
        store_at(s1, full, n1);
        store_at(s2, full, n2);
    }
    probe.reduce_add() == 0.0
}
