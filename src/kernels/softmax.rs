//! Softmax cross-entropy fused with its gradient, over feature-major logits.
//!
//! Plain algorithm, for each sample j (a column of `logits [C][B]`):
//!
//! ```text
//! m    = max_c z[c][j]                       (stable log-sum-exp)
//! s    = Σ_c exp(z[c][j] − m)
//! loss = m + ln(s) − z[label_j][j]
//! dz[c][j] = (exp(z[c][j] − m)/s − [c = label_j]) / B        (B: the whole batch's size)
//! ```
//!
//! Feature-major logits put LANES samples side by side in one vector, so every step above runs
//! on LANES samples at once with no shuffles; only the label lookups and the logarithm (once per
//! sample, libm's) are per lane. `exp` is a vector approximation within 2 ulp
//! ([`Vector::exp`]), where the reference uses libm.
//!
//! A class more than 44 below the largest logit gets probability exactly 0 (e^-44 ≈ 8e-20, far
//! below f32's resolution next to the winning class): otherwise, once a network fits its batch,
//! those probabilities and every gradient computed from them would be subnormal, which costs
//! ~100 cycles per operation on many x86 cores (see [`super::update`] on why we cannot simply
//! flush subnormals in MXCSR).
#![forbid(unsafe_code)]

use super::ops::SoftmaxXent;
use super::simd::{MAX_LANES, Vector};

/// `exp(z − max)` is taken as 0 below this exponent.
pub(crate) const EXP_CUTOFF: f32 = -44.0;

/// Mean softmax cross-entropy and its gradient (see [`SoftmaxXent`]).
#[inline(always)]
pub(crate) fn softmax_xent<V: Vector>(op: SoftmaxXent<'_>) -> f32 {
    let SoftmaxXent {
        classes,
        batch,
        logits,
        labels,
        dlogits,
        whole_batch,
    } = op;
    if batch == 0 {
        return 0.0;
    }
    assert!(classes > 0, "softmax_xent: no classes");
    let (lanes, cutoff, divisor) = (V::LANES, V::splat(EXP_CUTOFF), V::splat(whole_batch as f32));
    let mut total = 0.0;
    for j0 in (0..batch).step_by(lanes) {
        let cols = lanes.min(batch - j0);
        let at = |c: usize| c * batch + j0..c * batch + j0 + cols;
        let mut max = V::load_partial(&logits[at(0)]);
        for c in 1..classes {
            max = max.max(V::load_partial(&logits[at(c)]));
        }
        // dlogits holds exp(z − m) until the last pass turns it into the gradient.
        let mut sum = V::zero();
        for c in 0..classes {
            let d = V::load_partial(&logits[at(c)]) - max;
            let e = d.exp().zero_where_below(d, cutoff);
            sum = sum + e;
            e.store_partial(&mut dlogits[at(c)]);
        }
        let (mut maxes, mut sums) = ([0.0; MAX_LANES], [0.0; MAX_LANES]);
        max.store(&mut maxes);
        sum.store(&mut sums);
        // Loss and the gradient at each sample's label, from its exp before the pass below
        // overwrites it.
        let mut at_label = [0.0; MAX_LANES];
        for l in 0..cols {
            let label = labels[j0 + l] as usize * batch + j0 + l;
            total += maxes[l] + libm::logf(sums[l]) - logits[label];
            at_label[l] = (dlogits[label] / sums[l] - 1.0) / whole_batch as f32;
        }
        for c in 0..classes {
            let grad = V::load_partial(&dlogits[at(c)]) / sum / divisor;
            grad.store_partial(&mut dlogits[at(c)]);
        }
        for (l, &g) in at_label.iter().enumerate().take(cols) {
            dlogits[labels[j0 + l] as usize * batch + j0 + l] = g;
        }
    }
    total / batch as f32
}
