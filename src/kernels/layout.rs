//! Changing layout: feature-major `[F][B]` to batch-major `[B][F]` and back, and loading a
//! batch of u8 images into both layouts at once.
//!
//! Plain algorithm: `dst[c][r] = src[r][c]`. Done in LANES×LANES blocks transposed in vector
//! registers ([`Vector::transpose_block`]); blocks on the edges (when a size is not a multiple
//! of LANES) element by element.
use super::ops::{LoadU8Batch, Transpose};
use super::simd::Vector;

/// `dst = srcᵀ` (see [`Transpose`]).
#[inline(always)]
pub(crate) fn transpose<V: Vector>(op: Transpose<'_>) {
    let Transpose {
        rows,
        cols,
        src,
        dst,
    } = op;
    let lanes = V::LANES;
    for r0 in (0..rows).step_by(lanes) {
        for c0 in (0..cols).step_by(lanes) {
            transpose_block::<V>(src, cols, r0, c0, (rows, cols), dst, rows);
        }
    }
}

/// Loads u8 images as f32 / 255 into both layouts (see [`LoadU8Batch`]): each image's pixels
/// are converted a vector at a time into its row, and each LANES×LANES block of rows is then
/// transposed into the columns while it is still in L1.
#[inline(always)]
pub(crate) fn load_u8_batch<'a, V: Vector, F: Fn(usize) -> &'a [u8]>(op: LoadU8Batch<'a, F>) {
    let LoadU8Batch {
        features,
        batch,
        images,
        rows,
        cols,
    } = op;
    let (lanes, scale) = (V::LANES, V::splat(255.0));
    for j0 in (0..batch).step_by(lanes) {
        for j in j0..batch.min(j0 + lanes) {
            let (image, row) = (
                &images(j)[..features],
                &mut rows[j * features..][..features],
            );
            let mut pixels = image.chunks_exact(lanes);
            let mut out = row.chunks_exact_mut(lanes);
            for (p, o) in (&mut pixels).zip(&mut out) {
                // SAFETY: `p` holds exactly LANES bytes.
                (unsafe { V::load_u8_ptr(p.as_ptr()) } / scale).store(o);
            }
            for (&p, o) in pixels.remainder().iter().zip(out.into_remainder()) {
                *o = f32::from(p) / 255.0;
            }
        }
        for p0 in (0..features).step_by(lanes) {
            transpose_block::<V>(rows, features, j0, p0, (batch, features), cols, batch);
        }
    }
}

/// Transposes the block of `src` (`[rows][ld_src]`, `shape = (rows, cols)` valid) at row r0,
/// column c0 into `dst` (`[cols][ld_dst]`): `dst[c][r] = src[r][c]` for the block's valid part.
#[inline(always)]
fn transpose_block<V: Vector>(
    src: &[f32],
    ld_src: usize,
    r0: usize,
    c0: usize,
    (rows, cols): (usize, usize),
    dst: &mut [f32],
    ld_dst: usize,
) {
    let lanes = V::LANES;
    let (rr, cc) = (lanes.min(rows - r0), lanes.min(cols - c0));
    if rr == lanes && cc == lanes {
        let (from, to) = (r0 * ld_src + c0, c0 * ld_dst + r0);
        assert!(
            from + (lanes - 1) * ld_src + lanes <= src.len(),
            "transpose: src"
        );
        assert!(
            to + (lanes - 1) * ld_dst + lanes <= dst.len(),
            "transpose: dst"
        );
        // SAFETY: every row of both blocks is in bounds (asserted); `src` and `dst` are
        // distinct slices.
        unsafe { V::transpose_block(src[from..].as_ptr(), ld_src, dst[to..].as_mut_ptr(), ld_dst) }
    } else {
        for r in 0..rr {
            for c in 0..cc {
                dst[(c0 + c) * ld_dst + r0 + r] = src[(r0 + r) * ld_src + c0 + c];
            }
        }
    }
}
