//! Data augmentation: a random affine warp and an elastic distortion of each training image,
//! drawn per sample from (seed, epoch, sample), sampled bilinearly from the u8 image into a u8
//! image.
//!
//! The algorithm, for one image of `rows × cols` pixels with centre `c`:
//!
//! ```text
//! draw (from derived_rng(seed, AUGMENT, epoch·2^32 + sample), in this order)
//!   affine:  angle θ ∈ ±rotate°, scale s ∈ 1 ± scale, shear φ ∈ ±shear°, t ∈ ±translate px
//!   elastic: a field u(p), v(p) of uniform noise in ±1 per pixel, each smoothed by a Gaussian
//!            of σ (separable, truncated at 3σ, zero outside the image) and scaled by α
//! for each output pixel p:
//!   q = p + (u(p), v(p))                      (elastic; Simard et al., ICDAR 2003)
//!   src = M⁻¹·(q − c − t) + c,   M = s·R(θ)·Shear(φ)      (affine)
//!   out(p) = bilinear(image, src), 0 outside, rounded to u8
//! ```
//!
//! Identity parameters reproduce the image exactly: the sample points are then the pixel
//! centres, where bilinear weights are exactly 1 and 0. The [`Warper`] owns every buffer (the
//! kernel and the displacement fields), sized for images up to [`MAX_SIDE`]² and made once:
//! warping allocates nothing. The smoothing loops run over contiguous rows, so the compiler
//! vectorises them.
#![forbid(unsafe_code)]

use super::batch::{derived_rng, stream};
use rand_xoshiro::rand_core::Rng;

/// The largest image side a [`Warper`] handles.
pub const MAX_SIDE: usize = 32;
const MAX_PIXELS: usize = MAX_SIDE * MAX_SIDE;
/// The largest Gaussian radius (3σ, so σ up to 10 pixels).
const MAX_RADIUS: usize = 30;

/// Ranges of the random affine warp (each parameter uniform in ± its range).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Rotation, degrees.
    pub rotate: f32,
    /// Translation along each axis, pixels.
    pub translate: f32,
    /// Scale: a factor in `1 ± scale`.
    pub scale: f32,
    /// Horizontal shear angle, degrees.
    pub shear: f32,
}

impl Affine {
    /// A moderate warp for MNIST: ±10°, ±2 px, ±10 %, ±10° shear.
    pub const DEFAULT: Self = Self {
        rotate: 10.0,
        translate: 2.0,
        scale: 0.1,
        shear: 10.0,
    };
}

/// The elastic distortion's parameters (Simard et al. 2003).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elastic {
    /// Scale α of the smoothed displacement field, pixels.
    pub alpha: f32,
    /// Standard deviation σ of the Gaussian smoothing, pixels.
    pub sigma: f32,
}

impl Elastic {
    /// Simard's values for MNIST: α = 34, σ = 4.
    pub const DEFAULT: Self = Self {
        alpha: 34.0,
        sigma: 4.0,
    };
}

/// Which augmentations run (none: the image is used as it is).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    /// The random affine warp.
    pub affine: Option<Affine>,
    /// The elastic distortion.
    pub elastic: Option<Elastic>,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Self = Self {
        affine: None,
        elastic: None,
    };

    /// Whether any augmentation runs.
    pub const fn is_on(&self) -> bool {
        self.affine.is_some() || self.elastic.is_some()
    }

    /// The kind's name: `none`, `affine`, `elastic` or `both`.
    pub const fn name(&self) -> &'static str {
        match (self.affine.is_some(), self.elastic.is_some()) {
            (false, false) => "none",
            (true, false) => "affine",
            (false, true) => "elastic",
            (true, true) => "both",
        }
    }

    /// Checks the parameters: finite, non-negative, scale below 1, σ up to 10.
    pub fn validate(&self) -> Result<(), &'static str> {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        if let Some(a) = self.affine {
            if !(ok(a.rotate) && ok(a.translate) && ok(a.shear) && ok(a.scale) && a.scale < 1.0) {
                return Err("affine ranges must be finite and >= 0, the scale below 1");
            }
            if a.shear >= 80.0 {
                return Err("the shear range must be below 80 degrees");
            }
        }
        if let Some(e) = self.elastic
            && !(ok(e.alpha) && ok(e.sigma) && e.sigma <= MAX_RADIUS as f32 / 3.0)
        {
            return Err("elastic alpha must be finite and >= 0, sigma in [0, 10]");
        }
        Ok(())
    }
}

/// One sample's drawn affine warp: `M = s·R(θ)·Shear(φ)`, then a translation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineDraw {
    /// Rotation θ, radians.
    pub angle: f32,
    /// Scale s.
    pub scale: f32,
    /// Shear φ, radians.
    pub shear: f32,
    /// Translation, pixels (x to the right, y down).
    pub tx: f32,
    /// Translation, pixels.
    pub ty: f32,
}

impl AffineDraw {
    /// No warp.
    pub const IDENTITY: Self = Self {
        angle: 0.0,
        scale: 1.0,
        shear: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// The inverse of `M` (output offset → source offset), row-major `[a, b, c, d]`.
    fn inverse(&self) -> [f32; 4] {
        let (sin, cos) = (libm::sinf(self.angle), libm::cosf(self.angle));
        let tan = libm::tanf(self.shear);
        // M = s·[[cos, −sin], [sin, cos]]·[[1, tan], [0, 1]].
        let (a, b, c, d) = (
            self.scale * cos,
            self.scale * (cos * tan - sin),
            self.scale * sin,
            self.scale * (sin * tan + cos),
        );
        let det = a * d - b * c;
        [d / det, -b / det, -c / det, a / det]
    }
}

/// Why a [`Warper`] cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AugmentError {
    /// The images are larger than [`MAX_SIDE`] on a side (or empty).
    ImageSize {
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A parameter is out of range (the reason).
    Parameter(&'static str),
}

impl core::fmt::Display for AugmentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AugmentError::ImageSize { rows, cols } => write!(
                f,
                "augmentation handles images of 1 to {MAX_SIDE} pixels a side, not {rows}×{cols}"
            ),
            AugmentError::Parameter(why) => f.write_str(why),
        }
    }
}

impl core::error::Error for AugmentError {}

/// Warps images as [`Augment`] says, with every buffer it needs (see the module docs).
pub struct Warper {
    config: Augment,
    rows: usize,
    cols: usize,
    /// The Gaussian's taps, `2·radius + 1` of them, summing to 1.
    kernel: [f32; 2 * MAX_RADIUS + 1],
    radius: usize,
    /// The displacement field (x, y) and the smoothing's intermediate rows.
    dx: [f32; MAX_PIXELS],
    dy: [f32; MAX_PIXELS],
    noise: [f32; MAX_PIXELS],
    tmp: [f32; MAX_PIXELS],
}

impl Warper {
    /// A warper for `rows × cols` images (build it once, outside the training loop).
    pub fn new(config: Augment, rows: usize, cols: usize) -> Result<Self, AugmentError> {
        if rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
            return Err(AugmentError::ImageSize { rows, cols });
        }
        config.validate().map_err(AugmentError::Parameter)?;
        let mut warper = Self {
            config,
            rows,
            cols,
            kernel: [0.0; 2 * MAX_RADIUS + 1],
            radius: 0,
            dx: [0.0; MAX_PIXELS],
            dy: [0.0; MAX_PIXELS],
            noise: [0.0; MAX_PIXELS],
            tmp: [0.0; MAX_PIXELS],
        };
        if let Some(e) = config.elastic {
            warper.radius = (libm::ceilf(3.0 * e.sigma) as usize).min(MAX_RADIUS);
            let r = warper.radius as isize;
            let mut sum = 0.0;
            for (i, k) in warper.kernel[..2 * warper.radius + 1]
                .iter_mut()
                .enumerate()
            {
                let x = (i as isize - r) as f32;
                *k = if e.sigma > 0.0 {
                    libm::expf(-x * x / (2.0 * e.sigma * e.sigma))
                } else {
                    1.0
                };
                sum += *k;
            }
            for k in &mut warper.kernel[..2 * warper.radius + 1] {
                *k /= sum;
            }
        }
        Ok(warper)
    }

    /// What this warper does.
    pub fn config(&self) -> Augment {
        self.config
    }

    /// Warps `src` into `dst` (both `rows·cols` bytes) with the draw of sample `sample` in
    /// `epoch` of the run seeded `seed`: the same numbers give the same image.
    pub fn warp(&mut self, src: &[u8], dst: &mut [u8], seed: u64, epoch: u64, sample: u64) {
        let mut rng = derived_rng(seed, stream::AUGMENT, (epoch << 32) ^ sample);
        let affine = match self.config.affine {
            Some(a) => draw_affine(&a, &mut rng),
            None => AffineDraw::IDENTITY,
        };
        match self.config.elastic {
            Some(e) => self.draw_field(&e, &mut rng),
            None => {
                let n = self.rows * self.cols;
                self.dx[..n].fill(0.0);
                self.dy[..n].fill(0.0);
            }
        }
        self.apply(src, dst, &affine);
    }

    /// Warps `src` into `dst` by `affine` and the current displacement field (zero unless a
    /// [`Warper::warp`] with elastic distortion drew one).
    pub fn apply(&self, src: &[u8], dst: &mut [u8], affine: &AffineDraw) {
        let (rows, cols) = (self.rows, self.cols);
        assert!(
            src.len() == rows * cols && dst.len() == rows * cols,
            "warp: images must be {rows}×{cols} bytes"
        );
        let [ia, ib, ic, id] = affine.inverse();
        let (cx, cy) = ((cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5);
        for y in 0..rows {
            for x in 0..cols {
                let p = y * cols + x;
                let qx = x as f32 + self.dx[p] - cx - affine.tx;
                let qy = y as f32 + self.dy[p] - cy - affine.ty;
                let sx = ia * qx + ib * qy + cx;
                let sy = ic * qx + id * qy + cy;
                dst[p] = bilinear(src, rows, cols, sx, sy);
            }
        }
    }

    /// Draws the elastic displacement field into `dx`, `dy`.
    fn draw_field(&mut self, e: &Elastic, rng: &mut impl Rng) {
        let n = self.rows * self.cols;
        for field in 0..2 {
            for v in &mut self.noise[..n] {
                *v = unit(rng);
            }
            let (kernel, radius) = (&self.kernel[..2 * self.radius + 1], self.radius);
            let out = if field == 0 {
                &mut self.dx
            } else {
                &mut self.dy
            };
            smooth(
                &self.noise[..n],
                &mut self.tmp[..n],
                &mut out[..n],
                (self.rows, self.cols),
                (kernel, radius),
            );
            for v in &mut out[..n] {
                *v *= e.alpha;
            }
        }
    }
}

/// Uniform in [−1, 1) from the top 24 bits of one draw.
fn unit(rng: &mut impl Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
}

/// One sample's affine warp, drawn in the documented order.
fn draw_affine(a: &Affine, rng: &mut impl Rng) -> AffineDraw {
    let radians = core::f32::consts::PI / 180.0;
    let angle = unit(rng) * a.rotate * radians;
    let scale = 1.0 + unit(rng) * a.scale;
    let shear = unit(rng) * a.shear * radians;
    let tx = unit(rng) * a.translate;
    let ty = unit(rng) * a.translate;
    AffineDraw {
        angle,
        scale,
        shear,
        tx,
        ty,
    }
}

/// `out = G * G * x` (the separable Gaussian of `kernel`, radius `radius`, zero outside):
/// first along rows into `tmp`, then along columns. Each tap runs over a contiguous row.
fn smooth(
    x: &[f32],
    tmp: &mut [f32],
    out: &mut [f32],
    (rows, cols): (usize, usize),
    (kernel, radius): (&[f32], usize),
) {
    tmp.fill(0.0);
    out.fill(0.0);
    for y in 0..rows {
        let (src, dst) = (&x[y * cols..][..cols], &mut tmp[y * cols..][..cols]);
        for (t, &k) in kernel.iter().enumerate() {
            // dst[x] += k·src[x + t − radius] where the source is inside the row.
            let (lo, hi) = (radius.saturating_sub(t), (cols + radius).saturating_sub(t));
            let hi = hi.min(cols);
            if lo >= hi {
                continue;
            }
            let s = &src[lo + t - radius..][..hi - lo];
            for (d, &v) in dst[lo..hi].iter_mut().zip(s) {
                *d += k * v;
            }
        }
    }
    for y in 0..rows {
        for (t, &k) in kernel.iter().enumerate() {
            let Some(yy) = (y + t).checked_sub(radius).filter(|&yy| yy < rows) else {
                continue;
            };
            let (src, dst) = (&tmp[yy * cols..][..cols], &mut out[y * cols..][..cols]);
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += k * v;
            }
        }
    }
}

/// The image at (sx, sy) by bilinear interpolation between the four nearest pixels, 0 outside
/// the image, rounded to the nearest u8.
#[inline]
fn bilinear(src: &[u8], rows: usize, cols: usize, sx: f32, sy: f32) -> u8 {
    // Far outside (or NaN): black. Keeps the integer conversions below in range.
    if !(sx > -1.0 && sy > -1.0 && sx < cols as f32 && sy < rows as f32) {
        return 0;
    }
    let (x0, y0) = (floor(sx), floor(sy));
    let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
    let at = |x: isize, y: isize| -> f32 {
        if x >= 0 && y >= 0 && (x as usize) < cols && (y as usize) < rows {
            f32::from(src[y as usize * cols + x as usize])
        } else {
            0.0
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    let v = top * (1.0 - fy) + bottom * fy;
    round_u8(v.clamp(0.0, 255.0))
}

/// `floorf(v)` for |v| < 2²³, inline: libm's is an out-of-line call, and this runs for every
/// pixel of every augmented sample.
#[inline]
fn floor(v: f32) -> isize {
    let t = v as isize; // truncates toward zero, exactly in this range
    if (t as f32) > v { t - 1 } else { t }
}

/// `roundf(v) as u8` (halves away from zero) for v in [0, 255], inline.
#[inline]
fn round_u8(v: f32) -> u8 {
    let t = v as u8; // truncation; `v − t` is exact for these v
    if v - f32::from(t) >= 0.5 { t + 1 } else { t }
}

#[cfg(test)]
mod tests {
    use super::{floor, round_u8};

    /// The inline forms equal libm's on every f32 in [−2, 256] at a fine step, and at the
    /// halves and just beside them.
    #[test]
    fn inline_floor_and_round_equal_libm() {
        let mut v = -2.0f32;
        while v <= 256.0 {
            for w in [
                v,
                f32::from_bits(v.to_bits() + 1),
                f32::from_bits(v.to_bits().wrapping_sub(1)),
            ] {
                assert_eq!(floor(w), libm::floorf(w) as isize, "floor({w})");
                if (0.0..=255.0).contains(&w) {
                    assert_eq!(round_u8(w), libm::roundf(w) as u8, "round({w})");
                }
            }
            v += 1.0 / 64.0;
        }
        for k in 0..255u8 {
            let half = f32::from(k) + 0.5;
            assert_eq!(round_u8(half), k + 1);
            assert_eq!(round_u8(f32::from_bits(half.to_bits() - 1)), k);
        }
    }
}
