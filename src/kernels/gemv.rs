//! Matrix–vector products for single-sample inference.
//!
//! Plain algorithm: `y[i] = Σ_p A[i][p]·x[p]`, one dot product per row.
//!
//! A single sample has no reuse of A, so the product streams the weights once and is bound by
//! memory bandwidth, not FMAs. Rows go MR at a time, each with two accumulators, so every
//! loaded vector of x serves MR rows and the loads of A are MR sequential streams. A row tail
//! shorter than two vectors is copied into a zero-padded stack block and goes through the same
//! loop body.
#![forbid(unsafe_code)]

use super::tile::load;
use super::{Activation, LANES, Mode, V, check_len};

/// Rows of A per pass: as many as a tile has (8 with AVX-512, 6 with AVX2), so each loaded
/// vector of x serves that many rows and 2·ROWS accumulators fit in the registers.
const ROWS: usize = super::MR;
/// Floats of a row per step: two vectors, two accumulators.
const STEP: usize = 2 * LANES;

/// `y = A·x` or `y += A·x`. a `[m][k]`, x `[k]`, y `[m]`.
pub fn gemv(m: usize, k: usize, a: &[f32], x: &[f32], y: &mut [f32], mode: Mode) {
    check_len("gemv", "a", a.len(), m, k);
    check_len("gemv", "x", x.len(), k, 1);
    check_len("gemv", "y", y.len(), m, 1);
    rows_times_x(m, k, a, x, |i, dot| match mode {
        Mode::Overwrite => y[i] = dot,
        Mode::Accumulate => y[i] += dot,
    });
}

/// `y = act(W·x + bias)` for one sample. w `[out][inp]`, bias `[out]`, x `[inp]`, y `[out]`;
/// y is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward_one(
    out: usize,
    inp: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Activation,
) {
    check_len("dense_forward_one", "w", w.len(), out, inp);
    check_len("dense_forward_one", "bias", bias.len(), out, 1);
    check_len("dense_forward_one", "x", x.len(), inp, 1);
    check_len("dense_forward_one", "y", y.len(), out, 1);
    rows_times_x(out, inp, w, x, |o, dot| {
        y[o] = super::reference::activate(dot + bias[o], act);
    });
}

/// Calls `emit(i, A[i]·x)` for every row i. The caller has checked the lengths.
#[inline(always)]
fn rows_times_x(m: usize, k: usize, a: &[f32], x: &[f32], mut emit: impl FnMut(usize, f32)) {
    let (x_blocks, x_tail) = x.as_chunks::<STEP>();
    let mut x_last = [0.0; STEP];
    x_last[..x_tail.len()].copy_from_slice(x_tail);
    for i0 in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - i0);
        // A partial group repeats its last row; the extra dot products are dropped.
        let blocks: [(&[[f32; STEP]], &[f32]); ROWS] = core::array::from_fn(|r| {
            let i = i0 + r.min(rows - 1);
            let (b, t) = a[i * k..][..k].as_chunks::<STEP>();
            (&b[..x_blocks.len()], t)
        });
        let mut acc = [[V::ZERO; 2]; ROWS];
        for (s, xb) in x_blocks.iter().enumerate() {
            let xv = [load(&xb[..]), load(&xb[LANES..])];
            for r in 0..ROWS {
                let ab = &blocks[r].0[s];
                acc[r][0] = load(&ab[..]).mul_add(xv[0], acc[r][0]);
                acc[r][1] = load(&ab[LANES..]).mul_add(xv[1], acc[r][1]);
            }
        }
        if !x_tail.is_empty() {
            let xv = [load(&x_last[..]), load(&x_last[LANES..])];
            for r in 0..ROWS {
                let mut a_last = [0.0; STEP];
                a_last[..x_tail.len()].copy_from_slice(blocks[r].1);
                acc[r][0] = load(&a_last[..]).mul_add(xv[0], acc[r][0]);
                acc[r][1] = load(&a_last[LANES..]).mul_add(xv[1], acc[r][1]);
            }
        }
        for (r, [lo, hi]) in acc.into_iter().take(rows).enumerate() {
            emit(i0 + r, (lo + hi).reduce_add());
        }
    }
}
