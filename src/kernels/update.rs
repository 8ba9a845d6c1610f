//! Optimizer updates over flat parameter slices: the pass, for any [`UpdateRule`].
//!
//! An optimizer's rule (in `crate::optim`, one file per optimizer) says what one step does to
//! one parameter, twice: on a vector of lanes ([`Lanes`], for the SIMD paths) and on one float
//! (the reference), side by side. This module runs the lanes over the slices: each update reads
//! a parameter, its gradient and its optimizer state once and writes the parameter and state
//! back, `LANES` elements per step. The lanes' arithmetic is the reference's, operation for
//! operation, with no fused multiply-add, so every path's update is bit-identical to the
//! reference (IEEE `+ − × ÷ √` round the same in every lane). A tail shorter than a vector is
//! copied into zero-padded lanes and copied back.
//!
//! Subnormals: arithmetic on subnormal floats costs ~100 cycles per operation on many x86 cores,
//! and Rust forbids the usual cure (setting FTZ/DAZ in MXCSR is undefined behaviour). Momentum
//! buffers decay geometrically when a gradient stays 0, so without care they all pass through
//! the subnormal range. The updates therefore treat gradients below [`GRAD_FLUSH`] and moments
//! below [`STATE_FLUSH`] as 0: every value they then compute stays normal, and the change to a
//! step is below 1e-9 of the learning rate.
#![forbid(unsafe_code)]

use super::ops::Update;
use super::simd::Vector;

/// Gradients smaller in magnitude enter the updates as 0: then `(1 − β2)·g²` (≥ 1e-37) and
/// `0.1·g` stay normal.
pub const GRAD_FLUSH: f32 = 1e-17;
/// Moments (and SGD's velocity) smaller in magnitude are stored as 0, so their geometric decay
/// never reaches the subnormal range (below 1.2e-38).
pub const STATE_FLUSH: f32 = 1e-30;

/// `g·scale`, or `g` itself when nothing scales the gradients (`None` for a scale of 1: the
/// same bits, and one multiplication a vector fewer, 6 % of an Adam pass on Zen4).
#[inline(always)]
pub(crate) fn scaled<V: Vector>(g: V, scale: Option<V>) -> V {
    match scale {
        Some(scale) => g * scale,
        None => g,
    }
}

/// The splatted gradient scale for [`scaled`]: `None` for 1.
#[inline(always)]
pub(crate) fn gradient_scale<V: Vector>(scale: f32) -> Option<V> {
    (scale != 1.0).then(|| V::splat(scale))
}

/// `x`, or 0 where `|x| < limit`; NaN passes through.
#[inline(always)]
pub(crate) fn flush<V: Vector>(x: V, limit: V) -> V {
    x.zero_where_below(x.abs(), limit)
}

/// [`flush`] for one float (the references').
pub(crate) fn flush_one(x: f32, limit: f32) -> f32 {
    if x.abs() < limit { 0.0 } else { x }
}

/// The most state tensors an optimizer keeps per parameter (RMSprop, centered with momentum).
pub const STATES: usize = 3;

/// What one step of an optimizer does to each parameter: the step's constants, and the
/// arithmetic twice, as a pass of vector lanes on a SIMD path and one float at a time.
///
/// The state tensors are `[first, second, third]` of [`Update`]; a rule reads and writes only
/// those [`UpdateRule::state_tensors`] names (the others may be empty). Each optimizer's step
/// is a [`Step`]; `crate::optim::Rule`, any of them, dispatches.
pub trait UpdateRule: Copy + core::fmt::Debug {
    /// Which of the [`STATES`] state tensors the rule uses.
    fn state_tensors(&self) -> [bool; STATES];

    /// The update on a SIMD path. Returns whether every gradient and every updated parameter
    /// was finite (it checks the parameters, which a non-finite gradient leaves non-finite:
    /// see [`Step`]).
    #[doc(hidden)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool;

    /// The same update one float at a time, the same operations in the same order: the
    /// reference the SIMD paths are tested against.
    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]);
}

/// One optimizer's step: its constants, their vector lanes and its scalar reference (see
/// [`UpdateRule`], which every step is).
///
/// A step must leave a parameter non-finite when its gradient is ±∞ or NaN (IEEE arithmetic
/// does, for any step that multiplies, adds or divides by the gradient): the SIMD passes check
/// only the updated parameters to report a non-finite gradient. `tests/optim.rs` checks it for
/// every optimizer on every path.
pub trait Step: Copy + core::fmt::Debug {
    /// Which of the [`STATES`] state tensors the step uses.
    fn state_tensors(&self) -> [bool; STATES];

    /// The step on a SIMD path: the crate's update pass (`for_each_chunk`) with the step's
    /// lanes (a step may pick one of several, so that the loop has no branch on its
    /// constants).
    #[doc(hidden)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool;

    /// The step one float at a time (see [`UpdateRule::reference`]).
    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]);
}

impl<S: Step> UpdateRule for S {
    fn state_tensors(&self) -> [bool; STATES] {
        Step::state_tensors(self)
    }

    #[inline(always)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool {
        Step::update::<V>(self, params, grads, state)
    }

    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]) {
        Step::reference(self, params, grads, state)
    }
}

/// One optimizer update (see [`Update`]).
#[inline(always)]
pub(crate) fn update<V: Vector, R: UpdateRule>(op: Update<'_, R>) -> bool {
    let Update {
        rule,
        params,
        grads,
        first,
        second,
        third,
    } = op;
    // Only the state tensors the rule uses are read and written (`for_each_chunk`).
    rule.update::<V>(params, grads, [first, second, third])
}

/// An update of LANES parameters at once: `(p, g, state) → (p, state)`, its constants
/// splatted once per pass. A trait, not a closure, so it is always inlined into the kernel's
/// entry point (see [`super::tile`]).
pub trait Lanes<V> {
    /// The step on LANES parameters.
    fn apply(&self, p: V, g: V, s: [V; STATES]) -> (V, [V; STATES]);
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

/// Runs `f.apply(p, g, state) -> (p, state)` over LANES-wide chunks of the slices. Only the
/// state slices `used` names are read and written (the others read as zero and may be empty);
/// the used ones and `g` must be as long as `p`. The tail goes through zero-padded vectors.
/// Returns whether every updated `p` was finite.
#[inline(always)]
pub(crate) fn for_each_chunk<V: Vector>(
    p: &mut [f32],
    g: &[f32],
    state: [&mut [f32]; STATES],
    used: [bool; STATES],
    f: impl Lanes<V>,
) -> bool {
    let n = p.len();
    let equal = g.len() == n && state.iter().zip(used).all(|(s, u)| !u || s.len() == n);
    assert!(
        equal,
        "update: the gradients and state are not as long as the parameters"
    );
    let [s0, s1, s2] = state;
    // Only the updated parameters are checked: a non-finite gradient leaves its parameter
    // non-finite (see `Step`), and checking the gradients too made an Adam pass 8 % slower
    // (Zen4).
    let mut non_finite = false;
    // Whole vectors with plain loads, every branch on `used` folded away (`used` is a
    // constant of the step), then the tail.
    let full = n - n % V::LANES;
    let mut i = 0;
    while i < full {
        let at = i..i + V::LANES;
        let load = |s: &[f32], u: bool| {
            if u {
                V::load(&s[at.clone()])
            } else {
                V::zero()
            }
        };
        let state = [load(s0, used[0]), load(s1, used[1]), load(s2, used[2])];
        let (np, [n0, n1, n2]) = f.apply(V::load(&p[at.clone()]), V::load(&g[at.clone()]), state);
        non_finite |= np.any_non_finite();
        np.store(&mut p[at.clone()]);
        for (s, u, v) in [
            (&mut *s0, used[0], n0),
            (&mut *s1, used[1], n1),
            (&mut *s2, used[2], n2),
        ] {
            if u {
                v.store(&mut s[at.clone()]);
            }
        }
        i += V::LANES;
    }
    if full < n {
        let load = |s: &[f32], u: bool| {
            if u {
                V::load_partial(&s[full..])
            } else {
                V::zero()
            }
        };
        let state = [load(s0, used[0]), load(s1, used[1]), load(s2, used[2])];
        let (np, [n0, n1, n2]) = f.apply(load(p, true), load(g, true), state);
        // The padding lanes hold 0 in p, g and the state, and every rule keeps them finite.
        non_finite |= np.any_non_finite();
        np.store_partial(&mut p[full..]);
        for (s, u, v) in [(s0, used[0], n0), (s1, used[1], n1), (s2, used[2], n2)] {
            if u {
                v.store_partial(&mut s[full..]);
            }
        }
    }
    !non_finite
}
