//! Changing layout: feature-major `[F][B]` to batch-major `[B][F]` and back, and loading a
//! batch of u8 images into both layouts at once.
//!
//! Plain algorithm: `dst[c][r] = src[r][c]`. Done in LANES×LANES blocks held in LANES vector
//! registers (`V::transpose`); a block on the edge is padded with zeros on the way in and only
//! its valid part is written out.
#![forbid(unsafe_code)]

use super::{LANES, V, check_len};

/// `dst = srcᵀ`. src `[rows][cols]`, dst `[cols][rows]`.
pub fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
    check_len("transpose", "src", src.len(), rows, cols);
    check_len("transpose", "dst", dst.len(), cols, rows);
    for r0 in (0..rows).step_by(LANES) {
        let rr = LANES.min(rows - r0);
        for c0 in (0..cols).step_by(LANES) {
            let cc = LANES.min(cols - c0);
            let block: [V; LANES] = core::array::from_fn(|r| {
                let mut lane = [0.0; LANES];
                if r < rr {
                    lane[..cc].copy_from_slice(&src[(r0 + r) * cols + c0..][..cc]);
                }
                V::new(lane)
            });
            store_columns(block, dst, rows, r0, rr, c0, cc);
        }
    }
}

/// Loads `batch` images of `features` u8 pixels each (`images(j)` is image j) as f32 divided
/// by 255, into rows `[batch][features]` and, transposed, cols `[features][batch]`: one pass
/// over the pixels, each block converted once and transposed in registers.
pub fn load_u8_batch<'a>(
    features: usize,
    batch: usize,
    images: impl Fn(usize) -> &'a [u8],
    rows: &mut [f32],
    cols: &mut [f32],
) {
    check_len("load_u8_batch", "rows", rows.len(), batch, features);
    check_len("load_u8_batch", "cols", cols.len(), features, batch);
    let scale = V::splat(255.0);
    for j0 in (0..batch).step_by(LANES) {
        let jj = LANES.min(batch - j0);
        let sources: [&[u8]; LANES] = core::array::from_fn(|r| {
            if r < jj {
                &images(j0 + r)[..features]
            } else {
                &[]
            }
        });
        for p0 in (0..features).step_by(LANES) {
            let pp = LANES.min(features - p0);
            let block: [V; LANES] = core::array::from_fn(|r| {
                let mut bytes = [0u8; LANES];
                if r < jj {
                    bytes[..pp].copy_from_slice(&sources[r][p0..p0 + pp]);
                }
                V::new(bytes.map(f32::from)) / scale
            });
            for (r, v) in block.iter().enumerate().take(jj) {
                rows[(j0 + r) * features + p0..][..pp].copy_from_slice(&v.as_array()[..pp]);
            }
            store_columns(block, cols, batch, j0, jj, p0, pp);
        }
    }
}

/// Writes the transpose of a block of `rr` valid rows (starting at row r0) and `cc` valid
/// columns (starting at c0) into `dst [cols][rows]` whose rows are `rows` long.
#[inline(always)]
fn store_columns(
    block: [V; LANES],
    dst: &mut [f32],
    rows: usize,
    r0: usize,
    rr: usize,
    c0: usize,
    cc: usize,
) {
    for (c, column) in V::transpose(block).iter().take(cc).enumerate() {
        dst[(c0 + c) * rows + r0..][..rr].copy_from_slice(&column.as_array()[..rr]);
    }
}
