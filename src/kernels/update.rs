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
    /// was finite.
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
pub trait Step: Copy + core::fmt::Debug {
    /// Which of the [`STATES`] state tensors the step uses.
    fn state_tensors(&self) -> [bool; STATES];

    /// The step's constants, splatted for a pass on a SIMD path.
    #[doc(hidden)]
    type Lanes<V: Vector>: Lanes<V>;

    /// The lanes of this step.
    #[doc(hidden)]
    fn lanes<V: Vector>(&self) -> Self::Lanes<V>;

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
        for_each_chunk(params, grads, state, self.lanes::<V>())
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
    // Only the state tensors the rule uses are read and written.
    let [u1, u2, u3] = rule.state_tensors();
    let state = [used(first, u1), used(second, u2), used(third, u3)];
    rule.update::<V>(params, grads, state)
}

/// `s` if the rule uses it, else empty (not read, not written).
#[inline(always)]
fn used(s: &mut [f32], used: bool) -> &mut [f32] {
    if used { s } else { &mut [] }
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
