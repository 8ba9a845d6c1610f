//! The R×NR register tile (R = MR, or MR/2 for a short last block): the one loop where the
//! FLOPs happen.
//!
//! Plain algorithm, for a tile of C at rows `i..i+MR`, columns `j..j+NR`:
//!
//! ```text
//! for p in 0..k:
//!     for r in 0..MR:
//!         C[i+r][j..j+NR] += A[i+r][p] * B[p][j..j+NR]
//! ```
//!
//! The tile lives in MR × 2 vector accumulators. Each step `p` loads two vectors of B once and
//! broadcasts MR floats of A, for 2·MR independent FMAs: twelve (AVX2) or sixteen (AVX-512)
//! chains cover the FMA latency (4 cycles) times its throughput (2 per cycle). NR is two
//! vectors on every path: 32 columns with AVX-512, 16 with AVX2, 8 with SSE2, 2 on the scalar
//! path.
//!
//! A is read in place through two strides: tile row `r`, step `p` is
//! `a[a_rows[r] + p·a_step]`. A row-major A (`C = A·B`) has `a_rows[r] = (i+r)·k`, `a_step = 1`;
//! a transposed one (`C = Aᵀ·B`) has `a_rows[r] = i+r`, `a_step = m`.
//!
//! No closure carries vector code here or in the kernels built on this file: a closure is a
//! function of its own, which LLVM may decline to inline into the `#[target_feature]` entry
//! point, and compiled outside it every intrinsic becomes a call (the default build's Adam ran
//! 20× slower that way). Per-row work goes through traits with `#[inline(always)]` methods
//! instead ([`super::gemm::Epilogue`]).
//!
//! The loop body uses unchecked loads. With checked indexing the six row slices, their lengths
//! and the B bounds need more general registers than x86-64 has: LLVM spilled the row pointers
//! to the stack and kept two compares per step. Measured on the 784×256 forward product with
//! 8-lane vectors on this project's development machine (two separate runs): 49 GFLOP/s
//! checked, 85 GFLOP/s unchecked.
//! Instead every index the loop can form is bounded once, by two asserts before the loop.

use super::simd::{MAX_NR, Vector};

/// Vectors per tile row.
pub(crate) const NV: usize = 2;

/// Columns of the register tile on the path of `V`.
#[inline(always)]
pub(crate) const fn nr<V: Vector>() -> usize {
    NV * V::LANES
}

/// `acc[r] += A[r][p] · B[p][0..NR]` for `r in 0..R`, `p in 0..k`, with `A[r][p] = a[a_rows[r] + p·a_step]`
/// and `B[p][..] = b[p·ldb..][..NR]`.
///
/// # Panics
/// If any of those indices is out of bounds (checked once, before the loop).
#[inline(always)]
pub(crate) fn tile<V: Vector, const R: usize>(
    k: usize,
    a: &[f32],
    a_rows: [usize; R],
    a_step: usize,
    b: &[f32],
    ldb: usize,
    acc: &mut [[V; NV]; R],
) {
    if k == 0 {
        return;
    }
    let a_last = a_rows.iter().max().map(|&r| r + (k - 1) * a_step);
    assert!(
        a_last.is_some_and(|i| i < a.len()),
        "tile: A read out of bounds"
    );
    assert!(
        (k - 1) * ldb + nr::<V>() <= b.len(),
        "tile: B read out of bounds"
    );
    let (a, b) = (a.as_ptr(), b.as_ptr());
    for p in 0..k {
        // SAFETY: p < k, so `p·ldb + v·LANES + LANES <= (k-1)·ldb + NR <= b.len()` (asserted
        // above) for every v < NV: each vector lies inside `b`. Vector loads are unaligned.
        let bv: [V; NV] = unsafe {
            let row = b.add(p * ldb);
            [V::load_ptr(row), V::load_ptr(row.add(V::LANES))]
        };
        for r in 0..R {
            // SAFETY: `a_rows[r] + p·a_step <= max(a_rows) + (k-1)·a_step < a.len()`, asserted
            // above.
            let ar = V::splat(unsafe { *a.add(a_rows[r] + p * a_step) });
            for v in 0..NV {
                acc[r][v] = ar.mul_add(bv[v], acc[r][v]);
            }
        }
    }
}

/// Loads `cols <= NR` floats of one tile row, zero-padded to NR.
#[inline(always)]
pub(crate) fn load_row<V: Vector>(s: &[f32], cols: usize) -> [V; NV] {
    if cols == nr::<V>() {
        [V::load(s), V::load(&s[V::LANES..])]
    } else {
        let mut padded = [0.0; MAX_NR];
        padded[..cols].copy_from_slice(&s[..cols]);
        [V::load(&padded), V::load(&padded[V::LANES..])]
    }
}

/// Stores the first `cols <= NR` floats of one tile row.
#[inline(always)]
pub(crate) fn store_row<V: Vector>(s: &mut [f32], cols: usize, row: [V; NV]) {
    if cols == nr::<V>() {
        row[0].store(s);
        row[1].store(&mut s[V::LANES..]);
    } else {
        let mut padded = [0.0; MAX_NR];
        row[0].store(&mut padded);
        row[1].store(&mut padded[V::LANES..]);
        s[..cols].copy_from_slice(&padded[..cols]);
    }
}
