//! Matrix–vector products for single-sample inference.
//!
//! Plain algorithm: `y[i] = Σ_p A[i][p]·x[p]`, one dot product per row.
//!
//! A single sample has no reuse of A, so the product streams the weights once and is bound by
//! memory bandwidth, not FMAs; what matters is that little else happens. Rows go LANES at a
//! time, each with one accumulator (LANES independent FMA chains), so every loaded vector of x
//! serves LANES rows and the loads of A are LANES sequential streams. The LANES dot products
//! then come out of one in-register transpose and a sum as a single vector: bias, activation
//! and the store happen once per LANES rows instead of a horizontal sum per row. A row tail
//! shorter than a vector is copied into a zero-padded block and goes through the same body.
#![forbid(unsafe_code)]

use super::{Activation, LANES, Mode, V, check_len};

/// `y = A·x` or `y += A·x`. a `[m][k]`, x `[k]`, y `[m]`.
pub fn gemv(m: usize, k: usize, a: &[f32], x: &[f32], y: &mut [f32], mode: Mode) {
    check_len("gemv", "a", a.len(), m, k);
    check_len("gemv", "x", x.len(), k, 1);
    check_len("gemv", "y", y.len(), m, 1);
    rows_times_x(m, k, a, x, |i0, rows, dots| {
        let value = match mode {
            Mode::Overwrite => dots,
            Mode::Accumulate => dots + padded(&y[i0..i0 + rows]),
        };
        y[i0..i0 + rows].copy_from_slice(&value.as_array()[..rows]);
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
    rows_times_x(out, inp, w, x, |o0, rows, dots| {
        let z = dots + padded(&bias[o0..o0 + rows]);
        let value = match act {
            Activation::Identity => z,
            // maxps(0, z) returns z when z is NaN: NaN propagates, as in the batch kernel.
            Activation::Relu => V::ZERO.fast_max(z),
        };
        y[o0..o0 + rows].copy_from_slice(&value.as_array()[..rows]);
    });
}

/// Up to LANES floats as a vector, zero-padded.
#[inline(always)]
fn padded(s: &[f32]) -> V {
    let mut lanes = [0.0; LANES];
    lanes[..s.len()].copy_from_slice(s);
    V::new(lanes)
}

/// Calls `emit(i0, rows, dots)` for every group of `rows <= LANES` rows starting at row i0,
/// lane r of `dots` holding `A[i0 + r]·x`. The caller has checked the lengths.
#[inline(always)]
fn rows_times_x(m: usize, k: usize, a: &[f32], x: &[f32], mut emit: impl FnMut(usize, usize, V)) {
    let (x_blocks, x_tail) = x.as_chunks::<LANES>();
    let x_last = padded(x_tail);
    for i0 in (0..m).step_by(LANES) {
        let rows = LANES.min(m - i0);
        // A partial group repeats its last row; the extra dot products are dropped.
        let blocks: [(&[[f32; LANES]], &[f32]); LANES] = core::array::from_fn(|r| {
            let i = i0 + r.min(rows - 1);
            let (b, t) = a[i * k..][..k].as_chunks::<LANES>();
            (&b[..x_blocks.len()], t)
        });
        let mut acc = [V::ZERO; LANES];
        for (s, xb) in x_blocks.iter().enumerate() {
            let xv = V::new(*xb);
            for r in 0..LANES {
                acc[r] = V::new(blocks[r].0[s]).mul_add(xv, acc[r]);
            }
        }
        if !x_tail.is_empty() {
            for r in 0..LANES {
                acc[r] = padded(blocks[r].1).mul_add(x_last, acc[r]);
            }
        }
        // Lane r of the sum of the transposed accumulators is row r's dot product.
        let dots = V::transpose(acc).into_iter().fold(V::ZERO, |s, v| s + v);
        emit(i0, rows, dots);
    }
}
