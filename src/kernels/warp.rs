//! Warping a u8 image by an affine map and an elastic field, sampled bilinearly ([`Warp`]).
//!
//! Plain algorithm (the reference's): for each output pixel, sum the field at that pixel, map
//! the pixel to its source point, blend the four source pixels around it (0 outside).
//!
//! Here: the image is first copied into a buffer with a zero border (one pixel above and
//! left, two below and right), so the blend needs no bounds test (and each pair of horizontal
//! neighbours comes from one 4-byte read, a gather of words on AVX-512): a source point is clamped
//! into `[-1, cols] × [-1, rows]`, where a point that was a pixel or more outside reads only
//! zero pixels with nonzero weight, as the reference's early return gives. The field is summed
//! in two separable passes (grid rows to image columns once, then per image row), each over
//! fixed rows of [`WARP_SIDE`] lanes. Every loop is plain scalar code over fixed-size arrays,
//! free of branches, which the compiler vectorises for the path it is compiled for (gathers on
//! AVX-512); since Rust never fuses a multiply and an add, each element sees the reference's
//! operations in the reference's order, and every path gives its bits exactly.
#![forbid(unsafe_code)]

use super::ops::{WARP_SIDE, Warp, WarpField};
use super::simd::Vector;

const W: usize = WARP_SIDE;
/// Row stride of the padded image and of the quads: a zero column on the left, two on the
/// right, one spare.
const STRIDE: usize = W + 4;
/// The padded image: a zero row above, two below.
const PADDED: usize = STRIDE * (W + 3);
/// The quads: one per pixel of the padded image's first W + 2 rows.
const QUADS: usize = STRIDE * (W + 2);

/// The warp of [`Warp`], on the path it is compiled for.
#[inline(always)]
pub(crate) fn warp<V: Vector>(op: Warp<'_>) {
    let Warp {
        rows,
        cols,
        src,
        dst,
        inverse,
        shift,
        field,
    } = op;
    let mut image = [0u8; PADDED];
    for (y, row) in src.chunks_exact(cols).enumerate() {
        image[(y + 1) * STRIDE + 1..][..cols].copy_from_slice(row);
    }
    // quads[y][x]: the padded image's pixels (x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1),
    // one per byte, for the rows a source point can reach: one gather for 4 pixels.
    let mut quads = [0u32; QUADS];
    for y in 0..rows + 2 {
        let (top, bottom) = (
            &image[y * STRIDE..][..STRIDE],
            &image[(y + 1) * STRIDE..][..STRIDE],
        );
        let out = &mut quads[y * STRIDE..][..STRIDE - 1];
        for x in 0..STRIDE - 1 {
            out[x] = u32::from(top[x])
                | u32::from(top[x + 1]) << 8
                | u32::from(bottom[x]) << 16
                | u32::from(bottom[x + 1]) << 24;
        }
    }
    // grid[axis][i][x] = Σ_j noise[axis][i][j]·wx[j][x]: the field's first pass.
    let mut grid = [[[0.0f32; W]; W]; 2];
    if let Some(f) = &field {
        grid_rows::<V>(f, &mut grid);
    }
    let centre = [(cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5];
    let map = Map {
        inverse,
        shift,
        centre,
        size: [cols as f32, rows as f32],
    };
    // Row y goes to flat[y·cols..] whole; the next row overwrites the lanes past `cols`.
    let mut flat = [0u8; W * W + W];
    for y in 0..rows {
        let (mut dx, mut dy) = ([0.0f32; W], [0.0f32; W]);
        if let Some(f) = &field {
            let [gx, gy] = &grid;
            for (i, (gx, gy)) in gx.iter().zip(gy).enumerate().take(f.ky) {
                let w = V::splat(f.wy[i * W + y]);
                for x in (0..W).step_by(V::LANES) {
                    (V::load(&dx[x..]) + w * V::load(&gx[x..])).store(&mut dx[x..]);
                    (V::load(&dy[x..]) + w * V::load(&gy[x..])).store(&mut dy[x..]);
                }
            }
        }
        let out: &mut [u8; W] = (&mut flat[y * cols..][..W]).try_into().expect("W bytes");
        sample_row(&quads, &map, y as f32, (&dx, &dy), out);
    }
    dst.copy_from_slice(&flat[..rows * cols]);
}

/// The field's first pass: each grid row mapped onto the image columns, a vector of columns
/// at a time (a multiply, then an add: the reference's rounding).
#[inline(always)]
fn grid_rows<V: Vector>(f: &WarpField<'_>, grid: &mut [[[f32; W]; W]; 2]) {
    let (ky, kx) = (f.ky, f.kx);
    for (axis, rows) in grid.iter_mut().enumerate() {
        let noise = &f.noise[axis * ky * kx..][..ky * kx];
        for (row, noise) in rows.iter_mut().zip(noise.chunks_exact(kx)) {
            for x in (0..W).step_by(V::LANES) {
                let mut acc = V::zero();
                for (&n, wx) in noise.iter().zip(f.wx.chunks_exact(W)) {
                    acc = acc + V::splat(n) * V::load(&wx[x..]);
                }
                acc.store(&mut row[x..]);
            }
        }
    }
}

/// The affine part of a warp, and the image's size.
struct Map {
    inverse: [f32; 4],
    shift: [f32; 2],
    centre: [f32; 2],
    size: [f32; 2],
}

/// Samples output row `y` (every lane of it; the caller keeps `cols`) from the padded `image`,
/// displaced by `(dx, dy)`. Integer parts are taken in f32 and read off the bits
/// ([`floor`], [`int`]): Rust's saturating `as i32` would not vectorise.
#[inline(always)]
fn sample_row(
    quads: &[u32; QUADS],
    m: &Map,
    y: f32,
    (dx, dy): (&[f32; W], &[f32; W]),
    out: &mut [u8; W],
) {
    let [a, b, c, d] = m.inverse;
    let ([tx, ty], [cx, cy], [cols, rows]) = (m.shift, m.centre, m.size);
    for x in 0..W {
        let qx = x as f32 + dx[x] - cx - tx;
        let qy = y + dy[x] - cy - ty;
        let sx = clamp(a * qx + b * qy + cx, cols);
        let sy = clamp(c * qx + d * qy + cy, rows);
        let (x0, y0) = (floor(sx), floor(sy));
        let (fx, fy) = (sx - x0, sy - y0);
        // In 0..PADDED − STRIDE − 1 since x0 ∈ [−1, cols], y0 ∈ [−1, rows] (exact in f32);
        // the `min` only tells the compiler so.
        let i = int((y0 + 1.0) * STRIDE as f32 + (x0 + 1.0)).min(QUADS - 1);
        let q = quads[i];
        let byte = |k: u32| (q >> (8 * k) & 0xFF) as f32;
        let (p00, p01, p10, p11) = (byte(0), byte(1), byte(2), byte(3));
        let top = p00 * (1.0 - fx) + p01 * fx;
        let bottom = p10 * (1.0 - fx) + p11 * fx;
        let v = top * (1.0 - fy) + bottom * fy;
        let v = if v > 0.0 { v } else { 0.0 };
        let v = if v < 255.0 { v } else { 255.0 };
        let t = floor(v);
        out[x] = int(if v - t >= 0.5 { t + 1.0 } else { t }) as u8;
    }
}

/// `v` clamped into `[−1, hi]`; NaN gives −1.
#[inline(always)]
fn clamp(v: f32, hi: f32) -> f32 {
    let v = if v > -1.0 { v } else { -1.0 };
    if v < hi { v } else { hi }
}

/// `floor(v)` for `|v| < 2^22`: rounded to the nearest integer by adding and subtracting
/// 1.5·2^23 (exact in this range), then one down if that went up.
#[inline(always)]
fn floor(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let r = (v + MAGIC) - MAGIC;
    if r > v { r - 1.0 } else { r }
}

/// The integer `v` in `0..2^23` (an integer-valued f32): `v + 2^23` has it in its mantissa.
#[inline(always)]
fn int(v: f32) -> usize {
    ((v + 8_388_608.0).to_bits() & 0x7F_FFFF) as usize
}

#[cfg(test)]
mod tests {
    use super::{floor, int};

    /// The bit-trick floor equals libm's (the reference's) on f32s in [−2, 256] at a fine step
    /// and just beside each, and at the ends of its range; `int` reads integers back.
    #[test]
    fn floor_and_int_equal_libm() {
        let mut v = -2.0f32;
        while v <= 256.0 {
            for w in [
                v,
                f32::from_bits(v.to_bits() + 1),
                f32::from_bits(v.to_bits().wrapping_sub(1)),
            ] {
                if w.is_nan() {
                    continue; // 0.0's bits minus one
                }
                assert_eq!(floor(w), libm::floorf(w), "floor({w})");
                assert_eq!(int(floor(w).max(0.0)), libm::floorf(w).max(0.0) as usize);
            }
            v += 1.0 / 64.0;
        }
        for v in [4_194_303.5f32, -4_194_303.5, 1e-30, -1e-30, -0.0] {
            assert_eq!(floor(v), libm::floorf(v), "floor({v})");
        }
        assert_eq!(int(8_388_607.0), 8_388_607);
    }
}
