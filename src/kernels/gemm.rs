//! The blocked product `C = op(A)·B` and the driver every fused kernel is built on.
//!
//! Plain algorithm: walk C in MR×NR tiles, compute each with [`tile`] over the whole k
//! range, then hand each finished tile row to an epilogue that stores it (overwrite, add,
//! bias+ReLU, ReLU mask…). The tile never leaves registers between the last FMA and the store.
//!
//! Loop order: column panels of B outside, row blocks of A inside, so one k×NR panel of B
//! (50 KiB for k = 784) stays in L1/L2 while every row block of A streams past it. A is read in
//! place, without packing: the tile broadcasts six floats per step, from six rows (`A·B`) or
//! from one row (`Aᵀ·B`), and both access patterns are prefetch-friendly streams.
//!
//! Packing where it pays: when k is at most PACK_K, each k×NR panel of B is copied once into a
//! contiguous stack block (see `drive` for why); a longer k (the first layer's forward product,
//! k = 784) reads B in place.
//!
//! Tails: a partial row block reuses its last valid row of A (results discarded), in a
//! half-height tile when it fits; a partial column panel is copied, KE rows at a time, into a zero-padded stack panel and the tile reads
//! that instead. Only the epilogue sees how many rows and columns are real.
#![forbid(unsafe_code)]

use super::Mode;
use super::ops::Gemm;
use super::simd::{MAX_NR, Vector};
use super::tile::{NV, load_row, nr, store_row, tile};

/// Rows of B copied per chunk for a partial column panel (KE×NR floats, at most 8 KiB of
/// stack).
const KE: usize = 64;

/// How the driver reads A.
#[derive(Clone, Copy)]
pub(crate) enum AOperand<'a> {
    /// a `[m][k]`: the product is `A·B`.
    Rows(&'a [f32]),
    /// a `[k][m]`: the product is `Aᵀ·B`.
    Cols(&'a [f32]),
}

/// What happens to each finished tile row of C: stored, added, or passed through a bias and
/// activation or a mask first. A trait rather than a closure so the work is always inlined
/// into the kernel's `#[target_feature]` entry point (see [`super::tile`]).
pub(crate) trait Epilogue<V: Vector> {
    /// Row `i` of C, columns `j0..j0 + cols` (`cols <= NR`; lanes past `cols` are zero).
    fn row(&mut self, i: usize, j0: usize, cols: usize, acc: [V; NV]);
}

/// Stores C row-major `[m][n]`, overwriting or adding.
pub(crate) struct StoreC<'a> {
    /// C.
    pub c: &'a mut [f32],
    /// Columns of C.
    pub n: usize,
    /// Overwrite or accumulate.
    pub mode: Mode,
}

impl<V: Vector> Epilogue<V> for StoreC<'_> {
    #[inline(always)]
    fn row(&mut self, i: usize, j0: usize, cols: usize, acc: [V; NV]) {
        store_mode(&mut self.c[i * self.n + j0..], cols, acc, self.mode);
    }
}

/// One stretch of the inner dimension k: A's and B's parts for `k` steps. A product over a
/// batch split between threads is the sum over the threads' shards, in order: one part each.
#[derive(Clone, Copy)]
pub(crate) struct Part<'a> {
    /// A's part: `[m][k]` rows or `[k][m]` columns.
    pub a: AOperand<'a>,
    /// B's part, `[k][n]`.
    pub b: &'a [f32],
    /// Steps in this part.
    pub k: usize,
}

/// Computes `op(A)·B` tile by tile, summing over `parts` in order, and hands each tile row to
/// `epilogue`. The caller has checked the lengths.
#[inline(always)]
pub(crate) fn drive<V: Vector>(
    m: usize,
    n: usize,
    parts: &[Part<'_>],
    mut epilogue: impl Epilogue<V>,
) {
    // Short k (every weight and input gradient, the smaller forward products): copy each k×NR
    // panel of B once into a contiguous, zero-padded block that every row block then reads. In
    // place, a panel's rows lie a row of B apart, and when that is a power of two (256 or 1024
    // bytes here) they crowd into a few L1 sets and evict each other. The block is sized to k
    // (a few size classes), so small products do not pay for clearing a large one.
    // Only where a panel is read by several row blocks: for a few the copy costs more than
    // the conflicts.
    let reuse = m > 3 * V::MR;
    let k: usize = parts.iter().map(|p| p.k).sum();
    match k {
        0..=16 if reuse => drive_packed::<V, 16>(m, n, parts, &mut epilogue),
        17..=64 if reuse => drive_packed::<V, 64>(m, n, parts, &mut epilogue),
        65..=128 if reuse => drive_packed::<V, 128>(m, n, parts, &mut epilogue),
        129..=PACK_K if reuse => drive_packed::<V, PACK_K>(m, n, parts, &mut epilogue),
        _ => {
            for j0 in (0..n).step_by(nr::<V>()) {
                let cols = nr::<V>().min(n - j0);
                row_blocks(m, n, parts, None, j0, cols, &mut epilogue);
            }
        }
    }
}

/// [`drive`] with B packed panel by panel into a P×NR stack block (`Σk <= P`), the parts one
/// after another.
#[inline(always)]
fn drive_packed<V: Vector, const P: usize>(
    m: usize,
    n: usize,
    parts: &[Part<'_>],
    epilogue: &mut impl Epilogue<V>,
) {
    let nr = nr::<V>();
    let k: usize = parts.iter().map(|p| p.k).sum();
    let mut packed = [[0.0f32; MAX_NR]; P];
    let packed = &mut packed.as_flattened_mut()[..k * nr];
    for j0 in (0..n).step_by(nr) {
        let cols = nr.min(n - j0);
        let mut rows = packed.chunks_exact_mut(nr);
        for part in parts {
            // The count first: zip advances its first iterator before it sees the second end.
            for (p, dst) in (0..part.k).zip(&mut rows) {
                // Whole panels: two vector loads and stores, not a `memcpy` call per row
                // (1.7 % of an epoch went to those calls).
                let row: [V; NV] = load_row(&part.b[p * n + j0..], cols);
                store_row(dst, nr, row);
            }
        }
        row_blocks(m, n, parts, Some(packed), j0, cols, epilogue);
    }
}

/// Rows of B up to which [`drive`] packs a whole panel (PACK_K·NR floats on the stack).
const PACK_K: usize = 256;

/// All row blocks of the column block at `j0`, reading B from `panel` if packed.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_blocks<V: Vector>(
    m: usize,
    n: usize,
    parts: &[Part<'_>],
    panel: Option<&[f32]>,
    j0: usize,
    cols: usize,
    epilogue: &mut impl Epilogue<V>,
) {
    for i0 in (0..m).step_by(V::MR) {
        let rows = V::MR.min(m - i0);
        // A short last block (the 10-row output layer) runs a half-height tile when it fits:
        // fewer FMAs spent on rows that are never stored.
        macro_rules! block {
            ($r:literal) => {
                block::<V, $r>(m, n, parts, panel, i0, rows, j0, cols, epilogue)
            };
        }
        match (V::MR, rows <= V::MR / 2) {
            (8, true) => block!(4),
            (8, false) => block!(8),
            (6, true) => block!(3),
            (6, false) => block!(6),
            _ => unreachable!("every path's tile has 6 or 8 rows"),
        }
    }
}

/// One R-row tile of C at rows `i0..i0 + rows` (`rows <= R`), columns `j0..j0 + cols`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block<V: Vector, const R: usize>(
    m: usize,
    n: usize,
    parts: &[Part<'_>],
    panel: Option<&[f32]>,
    i0: usize,
    rows: usize,
    j0: usize,
    cols: usize,
    epilogue: &mut impl Epilogue<V>,
) {
    let nr = nr::<V>();
    let mut acc = [[V::zero(); NV]; R];
    let mut at = 0;
    for part in parts {
        let (a, b, k) = (part.a, part.b, part.k);
        if let Some(panel) = panel {
            tile_over_a(a, m, k, i0, rows, 0, k, &panel[at * nr..], nr, &mut acc);
        } else if cols == nr && k > 0 {
            tile_over_a(a, m, k, i0, rows, 0, k, &b[j0..], n, &mut acc);
        } else {
            // Zero padding makes the extra lanes of the tile exactly 0.
            let mut chunk = [[0.0f32; MAX_NR]; KE];
            let chunk = &mut chunk.as_flattened_mut()[..KE * nr];
            for p0 in (0..k).step_by(KE) {
                let kc = KE.min(k - p0);
                for (dst, p) in chunk.chunks_exact_mut(nr).zip(p0..p0 + kc) {
                    dst[..cols].copy_from_slice(&b[p * n + j0..][..cols]);
                }
                tile_over_a(a, m, k, i0, rows, p0, kc, chunk, nr, &mut acc);
            }
        }
        at += k;
    }
    // A loop over the constant R (unrolled, so every index is a constant and the tile stays in
    // registers), not `acc.into_iter().enumerate()`: that iterator's `next` is not always
    // inlined, and then copies the tile through memory for every row (it made the fused
    // optimizer 2.5× slower once the epilogue grew).
    #[allow(clippy::needless_range_loop)]
    for r in 0..R {
        if r < rows {
            epilogue.row(i0 + r, j0, cols, acc[r]);
        }
    }
}

/// Runs the tile over steps `p0..p0 + kc` of A's rows `i0..i0 + rows`; `b` starts at step p0.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_over_a<V: Vector, const R: usize>(
    a: AOperand<'_>,
    m: usize,
    k: usize,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    b: &[f32],
    ldb: usize,
    acc: &mut [[V; NV]; R],
) {
    // A partial block repeats its last valid row: the loads stay in bounds and the extra
    // tile rows are never stored.
    let row = |r: usize| i0 + r.min(rows - 1);
    match a {
        AOperand::Rows(a) => {
            let a_rows = core::array::from_fn(|r| row(r) * k + p0);
            tile(kc, a, a_rows, 1, b, ldb, acc);
        }
        AOperand::Cols(a) => {
            let a_rows = core::array::from_fn(|r| p0 * m + row(r));
            tile(kc, a, a_rows, m, b, ldb, acc);
        }
    }
}

/// Stores one tile row into C according to `mode`.
#[inline(always)]
pub(crate) fn store_mode<V: Vector>(c_row: &mut [f32], cols: usize, acc: [V; NV], mode: Mode) {
    let value = match mode {
        Mode::Overwrite => acc,
        Mode::Accumulate => {
            let old: [V; NV] = load_row(c_row, cols);
            [old[0] + acc[0], old[1] + acc[1]]
        }
    };
    store_row(c_row, cols, value);
}

/// `C (mode)= op(A)·B` (see [`Gemm`]).
#[inline(always)]
pub(crate) fn gemm<V: Vector>(g: Gemm<'_>) {
    let Gemm {
        m,
        n,
        k,
        a,
        a_transposed,
        b,
        c,
        mode,
    } = g;
    let a = if a_transposed {
        AOperand::Cols(a)
    } else {
        AOperand::Rows(a)
    };
    drive::<V>(m, n, &[Part { a, b, k }], StoreC { c, n, mode });
}
