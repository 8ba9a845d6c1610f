//! Softmax cross-entropy fused with its gradient, over feature-major logits.
//!
//! Plain algorithm, for each sample j (a column of `logits [C][B]`):
//!
//! ```text
//! m    = max_c z[c][j]                       (stable log-sum-exp)
//! s    = Σ_c exp(z[c][j] − m)
//! loss = m + ln(s) − z[label_j][j]
//! dz[c][j] = (exp(z[c][j] − m)/s − [c = label_j]) / B
//! ```
//!
//! Feature-major logits put LANES samples side by side in one vector, so every step above runs
//! on LANES samples at once with no shuffles; only the label lookups are per lane. `exp` and
//! `ln` are `wide`'s vector approximations (a few ulp), where the reference uses libm.
//!
//! A class more than 44 below the largest logit gets probability exactly 0 (e^-44 ≈ 8e-20, far
//! below f32's resolution next to the winning class): otherwise, once a network fits its batch,
//! those probabilities and every gradient computed from them would be subnormal, which costs
//! ~100 cycles per operation on many x86 cores (see [`super::update`] on why we cannot simply
//! flush subnormals in MXCSR).
#![forbid(unsafe_code)]

use super::tile::store;
use super::{LANES, V, check_len};

/// `exp(z − max)` is taken as 0 below this exponent.
pub(crate) const EXP_CUTOFF: f32 = -44.0;

/// Mean softmax cross-entropy over a batch; writes its gradient.
/// logits `[classes][batch]`, labels `[batch]` (each `< classes`), dlogits `[classes][batch]`,
/// overwritten with `(softmax − one_hot)/batch`. Returns the mean loss (0 for an empty batch).
///
/// # Panics
/// On a shape mismatch or a label `>= classes`.
pub fn softmax_xent(
    classes: usize,
    batch: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> f32 {
    check_len("softmax_xent", "logits", logits.len(), classes, batch);
    check_len("softmax_xent", "labels", labels.len(), batch, 1);
    check_len("softmax_xent", "dlogits", dlogits.len(), classes, batch);
    if batch == 0 {
        return 0.0;
    }
    assert!(classes > 0, "softmax_xent: no classes");
    let inv_batch = V::splat(batch as f32);
    let mut total = 0.0;
    for j0 in (0..batch).step_by(LANES) {
        let cols = LANES.min(batch - j0);
        let load = |s: &[f32], c: usize| {
            let mut lane = [0.0; LANES];
            lane[..cols].copy_from_slice(&s[c * batch + j0..][..cols]);
            V::new(lane)
        };
        let mut max = load(logits, 0);
        for c in 1..classes {
            max = max.fast_max(load(logits, c));
        }
        // dlogits holds exp(z − m) until the last pass turns it into the gradient.
        let mut sum = V::ZERO;
        let mut exps = [0.0; LANES];
        for c in 0..classes {
            let d = load(logits, c) - max;
            let e = d.simd_lt(V::splat(EXP_CUTOFF)).select(V::ZERO, d.exp());
            sum += e;
            store(&mut exps, e);
            dlogits[c * batch + j0..][..cols].copy_from_slice(&exps[..cols]);
        }
        let lse = (max + sum.ln()).to_array();
        let sums = sum.to_array();
        // Gradient at each sample's label, from its exp before the pass below overwrites it.
        let mut at_label = [0.0; LANES];
        for l in 0..cols {
            let label = labels[j0 + l] as usize;
            assert!(
                label < classes,
                "softmax_xent: label {label} of sample {} is not below {classes}",
                j0 + l
            );
            let at = label * batch + j0 + l;
            total += lse[l] - logits[at];
            at_label[l] = (dlogits[at] / sums[l] - 1.0) / batch as f32;
        }
        for c in 0..classes {
            let grad = load(dlogits, c) / sum / inv_batch;
            store(&mut exps, grad);
            dlogits[c * batch + j0..][..cols].copy_from_slice(&exps[..cols]);
        }
        for (l, &g) in at_label.iter().enumerate().take(cols) {
            dlogits[labels[j0 + l] as usize * batch + j0 + l] = g;
        }
    }
    total / batch as f32
}
