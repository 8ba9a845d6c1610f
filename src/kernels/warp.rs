//! Warping a u8 image by an affine map and an elastic field, sampled bilinearly ([`Warp`]).
//!
//! Plain algorithm (the reference's): for each output pixel, sum the field at that pixel, map
//! the pixel to its source point, blend the four source pixels around it (0 outside).
//!
//! Here: the image is first copied into a buffer with a zero border (one pixel above and
//! left, two below and right), so the blend needs no bounds test (and each pair of horizontal
//! neighbours comes from one 4-byte read, a gather of words on AVX-512): a source point, in
//! the padded image's coordinates (the source point plus one), is clamped into
//! `[0, cols + 1] × [0, rows + 1]`, where a point that was a pixel or more outside reads only
//! zero pixels with nonzero weight, as the reference's early return gives. The source points
//! are computed a row at a time, over fixed rows of [`WARP_SIDE`] lanes: the affine map of
//! the row, then the field (already mapped by the affine matrix) summed in two separable
//! passes (grid rows to image columns once, then per image row). Each row is stored at its
//! place in a flat array, so the sampling runs over `rows·cols` lanes with no lane wasted on
//! row ends. Every loop is plain scalar code over fixed-size arrays, free of branches, which
//! the compiler vectorises for the path it is compiled for (gathers on AVX-512); since Rust
//! never fuses a multiply and an add, each element sees the reference's operations in the
//! reference's order, and every path gives its bits exactly.
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

/// Working memory of [`Warp`] (about 21 KiB), kept by the caller between images so that
/// no image pays for clearing it. What it holds never matters: the warp writes every lane
/// it uses before reading it, and stale lanes only reach output lanes it throws away.
pub struct WarpScratch {
    /// `points[axis][y·cols + x]`: pixel (x, y)'s source point, padded coordinates.
    points: [[f32; W * W]; 2],
    /// `grid[axis][i][x]`: the field's first pass, mapped by the affine matrix.
    grid: [[[f32; W]; W]; 2],
    /// The padded image as quads (see [`fill_quads`]).
    quads: [u32; QUADS],
    /// The warped image, `rows·cols` bytes and a tail.
    pixels: [u8; W * W],
}

impl WarpScratch {
    /// Scratch for one warp at a time.
    pub fn new() -> Self {
        Self {
            points: [[0.0; W * W]; 2],
            grid: [[[0.0; W]; W]; 2],
            quads: [0; QUADS],
            pixels: [0; W * W],
        }
    }
}

impl Default for WarpScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for WarpScratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WarpScratch")
    }
}

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
        scratch,
    } = op;
    let WarpScratch {
        points,
        grid,
        quads,
        pixels,
    } = scratch;
    fill_quads(src, rows, cols, quads);
    source_points::<V>(rows, cols, inverse, shift, field.as_ref(), grid, points);
    let [sx, sy] = &*points;
    let (max_x, max_y) = (cols as f32 + 1.0, rows as f32 + 1.0);
    for start in (0..rows * cols).step_by(W) {
        let lanes = |v: &[f32; W * W]| -> [f32; W] { v[start..][..W].try_into().expect("W lanes") };
        let out: &mut [u8; W] = (&mut pixels[start..][..W]).try_into().expect("W bytes");
        sample_lanes(quads, (&lanes(sx), &lanes(sy)), (max_x, max_y), out);
    }
    dst.copy_from_slice(&pixels[..rows * cols]);
}

/// W pixels sampled at their source points. A function of its own so that the compiler
/// knows `out` aliases nothing it reads, and vectorises the loop.
#[inline(always)]
fn sample_lanes(
    quads: &[u32; QUADS],
    (sx, sy): (&[f32; W], &[f32; W]),
    (max_x, max_y): (f32, f32),
    out: &mut [u8; W],
) {
    for x in 0..W {
        out[x] = sample(quads, clamp(sx[x], max_x), clamp(sy[x], max_y));
    }
}

/// The image with its zero border, as quads: `quads[y][x]` holds the padded image's pixels
/// (x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1), one per byte, for the rows a source point
/// can reach: one gather for 4 pixels. Rows are copied W bytes at a time with the lanes past
/// `cols` masked to 0 (fixed-size copies, where `cols`-byte ones would each call memcpy).
#[inline(always)]
fn fill_quads(src: &[u8], rows: usize, cols: usize, quads: &mut [u32; QUADS]) {
    let mut flat = [0u8; W * W + W];
    flat[..src.len()].copy_from_slice(src);
    let mut image = [0u8; PADDED];
    for y in 0..rows {
        let (row, out) = (
            &flat[y * cols..][..W],
            &mut image[(y + 1) * STRIDE + 1..][..W],
        );
        for x in 0..W {
            out[x] = if x < cols { row[x] } else { 0 };
        }
    }
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
}

/// Every pixel's source point plus one (see [`Warp`]), row by row into `points`.
#[inline(always)]
fn source_points<V: Vector>(
    rows: usize,
    cols: usize,
    [a, b, c, d]: [f32; 4],
    [tx, ty]: [f32; 2],
    field: Option<&WarpField<'_>>,
    grid: &mut [[[f32; W]; W]; 2],
    points: &mut [[f32; W * W]; 2],
) {
    if let Some(f) = field {
        grid_rows::<V>(f, grid);
        let [gx, gy] = grid;
        for (gx, gy) in gx.iter_mut().zip(gy.iter_mut()).take(f.ky) {
            for x in 0..W {
                (gx[x], gy[x]) = (a * gx[x] + b * gy[x], c * gx[x] + d * gy[x]);
            }
        }
    }
    let (cx, cy) = ((cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5);
    let px = -cx - tx;
    // a·x and c·x of each column: the part of a row's points every row shares.
    let (mut a_x, mut c_x) = ([0.0f32; W], [0.0f32; W]);
    for x in 0..W {
        (a_x[x], c_x[x]) = (a * x as f32, c * x as f32);
    }
    for y in 0..rows {
        let py = y as f32 - cy - ty;
        let (kx, ky) = (a * px + b * py + (cx + 1.0), c * px + d * py + (cy + 1.0));
        let (mut sx, mut sy) = ([0.0f32; W], [0.0f32; W]);
        for x in 0..W {
            (sx[x], sy[x]) = (a_x[x] + kx, c_x[x] + ky);
        }
        if let Some(f) = field {
            let [gx, gy] = &*grid;
            for (i, (gx, gy)) in gx.iter().zip(gy).enumerate().take(f.ky) {
                let w = V::splat(f.wy[i * W + y]);
                for x in (0..W).step_by(V::LANES) {
                    (V::load(&sx[x..]) + w * V::load(&gx[x..])).store(&mut sx[x..]);
                    (V::load(&sy[x..]) + w * V::load(&gy[x..])).store(&mut sy[x..]);
                }
            }
        }
        points[0][y * cols..][..W].copy_from_slice(&sx);
        points[1][y * cols..][..W].copy_from_slice(&sy);
    }
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

/// The padded image blended at `(sx, sy)` (clamped into it) and rounded half up. Integer
/// parts are taken in f32 and read off the bits ([`floor`], [`int`]): Rust's saturating
/// `as i32` would not vectorise. A blend of two values in [0, 255] by a weight in [0, 1)
/// stays in [0, 255] (rounding is monotone), so the result needs no clamp.
#[inline(always)]
fn sample(quads: &[u32; QUADS], sx: f32, sy: f32) -> u8 {
    let (x0, y0) = (floor(sx), floor(sy));
    let (fx, fy) = (sx - x0, sy - y0);
    // In 0..QUADS since x0 ∈ [0, cols + 1], y0 ∈ [0, rows + 1] (exact in f32); the `min`
    // only tells the compiler so.
    let q = quads[int(y0 * STRIDE as f32 + x0).min(QUADS - 1)];
    let byte = |k: u32| (q >> (8 * k) & 0xFF) as f32;
    let (p00, p01, p10, p11) = (byte(0), byte(1), byte(2), byte(3));
    let top = p00 + fx * (p01 - p00);
    let bottom = p10 + fx * (p11 - p10);
    let v = top + fy * (bottom - top);
    int(floor(v + 0.5)) as u8
}

/// `v` clamped into `[0, hi]`; NaN gives 0.
#[inline(always)]
fn clamp(v: f32, hi: f32) -> f32 {
    let v = if v > 0.0 { v } else { 0.0 };
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
