//! Changing layout: feature-major `[F][B]` to batch-major `[B][F]` and back.
//!
//! Plain algorithm: `dst[c][r] = src[r][c]`. Done in 8×8 blocks held in eight V registers
//! (`V::transpose`); a block on the edge is padded with zeros on the way in and only its
//! valid part is written out.
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
            for (c, column) in V::transpose(block).iter().take(cc).enumerate() {
                dst[(c0 + c) * rows + r0..][..rr].copy_from_slice(&column.as_array()[..rr]);
            }
        }
    }
}
