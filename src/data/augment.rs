//! Data augmentation: a random affine warp and an elastic distortion of each training image,
//! drawn per sample from (seed, epoch, sample), sampled bilinearly from the u8 image into a u8
//! image.
//!
//! The algorithm, for one image of `rows × cols` pixels with centre `c`:
//!
//! ```text
//! draw (from derived_rng(seed, AUGMENT, epoch·2^32 + sample), in this order)
//!   affine:  angle θ ∈ ±rotate°, scale s ∈ 1 ± scale, shear φ ∈ ±shear°, t ∈ ±translate px
//!   elastic: per axis, uniform noise in ±1 on a grid of spacing h = max(σ, 1) px over the
//!            image (one value per h × h block, two values per 64-bit draw), times h;
//!            the field u(p) = α·Σ_g noise_g·G_σ(p − g), G_σ the Gaussian of σ (separable,
//!            truncated at 3σ, normalised as its integer taps sum to 1)
//! for each output pixel p:
//!   q = p + (u(p), v(p))                      (elastic; Simard et al., ICDAR 2003)
//!   src = M⁻¹·(q − c − t) + c,   M = s·R(θ)·Shear(φ)      (affine)
//!   out(p) = bilinear(image, src), 0 outside, rounded to u8
//! ```
//!
//! The elastic field is Simard's: noise of variance 1/3 per pixel, zero outside the image,
//! smoothed by a Gaussian of σ and scaled by α. Drawing it per h × h block instead of per pixel
//! (a block's sum of h² values has h² times the variance: hence the factor h) keeps its
//! variance and smoothness (the block adds a blur of h/√12 ≈ 0.29σ to the field's own σ√2
//! correlation length, and the grid's ripple in the variance is 2·e^{−π²} ≈ 10⁻⁴), and takes
//! 98 noise values (49 draws) instead of 1568 at σ = 4 on 28×28; σ < 1 gives h = 1, Simard's
//! per-pixel noise itself. `tests/augment.rs` compares the two fields' statistics.
//! The warper drew per-pixel noise before it drew this grid: runs with elastic distortion
//! made then have other bits than now (the same distribution). Since the warp kernel folded
//! the affine map into its source points (36381c1), every augmented run has other bits than
//! before it (the same distribution, and the same image for identity parameters).
//!
//! Identity parameters reproduce the image exactly: the sample points are then the pixel
//! centres, where bilinear weights are exactly 1 and 0. The warp itself is a kernel
//! ([`crate::kernels::Warp`], vectorised on every path, equal to its reference bit for bit).
//! The [`Warper`] owns the grid's weights and noise, sized for images up to [`MAX_SIDE`]² and
//! made once: warping allocates nothing.
#![forbid(unsafe_code)]

use super::batch::{derived_rng, stream};
use crate::kernels::{Backend, Simd, WARP_SIDE, Warp, WarpField, WarpScratch};
use rand_xoshiro::rand_core::Rng;

/// The largest image side a [`Warper`] handles.
pub const MAX_SIDE: usize = WARP_SIDE;
/// A weight table: up to MAX_SIDE grid points, MAX_SIDE pixels each.
const MAX_GRID: usize = MAX_SIDE * MAX_SIDE;
/// The largest Gaussian radius (3σ, so σ up to 10 pixels).
const MAX_RADIUS: usize = 30;

/// Ranges of the random affine warp (each parameter uniform in ± its range).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct Elastic {
    /// Scale α of the smoothed displacement field, pixels: away from the edges the field's
    /// standard deviation per axis is about α/(2√(3π)·σ) (1.4 px for Simard's α = 34, σ = 4).
    pub alpha: f32,
    /// Standard deviation σ of the Gaussian smoothing, pixels: the field's smoothness scale.
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
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
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
    /// The elastic grid's rows and columns (0 without elastic distortion).
    ky: usize,
    kx: usize,
    /// Grid row i's weight at image row y, `[ky][MAX_SIDE]`, α and the grid spacing folded in.
    wy: [f32; MAX_GRID],
    /// Grid column j's weight at image column x, `[kx][MAX_SIDE]`.
    wx: [f32; MAX_GRID],
    /// The last drawn noise: the x field's grid `[ky][kx]`, then the y field's.
    noise: [f32; 2 * MAX_GRID],
    /// The warp kernel's working memory.
    scratch: WarpScratch,
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
            ky: 0,
            kx: 0,
            wy: [0.0; MAX_GRID],
            wx: [0.0; MAX_GRID],
            noise: [0.0; 2 * MAX_GRID],
            scratch: WarpScratch::new(),
        };
        if let Some(e) = config.elastic {
            let spacing = grid_spacing(e.sigma);
            warper.ky = grid_weights(&mut warper.wy, rows, spacing, e.sigma, e.alpha * spacing);
            warper.kx = grid_weights(&mut warper.wx, cols, spacing, e.sigma, 1.0);
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
        let n = 2 * self.ky * self.kx;
        for pair in self.noise[..n].chunks_mut(2) {
            // Two values from the two halves of one 64-bit draw.
            let bits = rng.next_u64();
            for (v, half) in pair.iter_mut().zip([bits >> 32, bits & 0xFFFF_FFFF]) {
                *v = unit_from(half as u32);
            }
        }
        self.apply(src, dst, &affine);
    }

    /// Warps `src` into `dst` by `affine` and the elastic field of the last drawn noise (none
    /// before the first [`Warper::warp`], or without elastic distortion).
    ///
    /// # Panics
    /// Unless `src` and `dst` hold `rows·cols` bytes.
    pub fn apply(&mut self, src: &[u8], dst: &mut [u8], affine: &AffineDraw) {
        let (rows, cols) = (self.rows, self.cols);
        assert!(
            src.len() == rows * cols && dst.len() == rows * cols,
            "warp: images must be {rows}×{cols} bytes"
        );
        let (ky, kx) = (self.ky, self.kx);
        let field = (ky > 0).then(|| WarpField {
            ky,
            kx,
            noise: &self.noise[..2 * ky * kx],
            wy: &self.wy[..ky * MAX_SIDE],
            wx: &self.wx[..kx * MAX_SIDE],
        });
        Simd::run(Warp {
            rows,
            cols,
            src,
            dst,
            inverse: affine.inverse(),
            shift: [affine.tx, affine.ty],
            field,
            scratch: &mut self.scratch,
        });
    }
}

/// The elastic noise grid's spacing for smoothing σ: σ (so a grid point per σ × σ block of
/// pixels), at least one pixel.
fn grid_spacing(sigma: f32) -> f32 {
    sigma.max(1.0)
}

/// Fills `w` (`[k][MAX_SIDE]`) with the weights of a grid of spacing `spacing` centred on an
/// axis of `n` pixels: `w[j][x] = scale·g(x − X_j)/Z`, `g` the Gaussian of σ truncated at
/// `⌈3σ⌉`, `Z` the sum of its integer taps (g(0) = 1 alone when σ = 0). Returns `k`, the grid
/// points: `⌈n / spacing⌉`, each the centre of its block.
fn grid_weights(w: &mut [f32; MAX_GRID], n: usize, spacing: f32, sigma: f32, scale: f32) -> usize {
    let k = (libm::ceilf(n as f32 / spacing) as usize).clamp(1, MAX_SIDE);
    let radius = libm::ceilf(3.0 * sigma);
    let g = |d: f32| {
        if libm::fabsf(d) > radius {
            0.0
        } else if sigma > 0.0 {
            libm::expf(-d * d / (2.0 * sigma * sigma))
        } else {
            f32::from(d == 0.0)
        }
    };
    let z: f32 = (-(radius as i32)..=radius as i32)
        .map(|t| g(t as f32))
        .sum();
    let centre = (n as f32 - 1.0) * 0.5;
    for (j, row) in w.chunks_exact_mut(MAX_SIDE).take(k).enumerate() {
        let at = centre + (j as f32 - (k as f32 - 1.0) * 0.5) * spacing;
        for (x, v) in row[..n].iter_mut().enumerate() {
            *v = scale * g(x as f32 - at) / z;
        }
    }
    k
}

/// Uniform in [−1, 1) from the top 24 bits of one draw.
fn unit(rng: &mut impl Rng) -> f32 {
    unit_from(rng.next_u32())
}

/// Uniform in [−1, 1) from the top 24 bits of `bits`.
fn unit_from(bits: u32) -> f32 {
    (bits >> 8) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
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
