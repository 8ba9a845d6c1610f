//! The instruction sets the kernels run on, and which one a call uses.
//!
//! Every kernel is written once, generic over a [`Vector`] of f32 lanes, and compiled once per
//! *path*: AVX-512F (16 lanes), AVX2+FMA (8 lanes) and SSE2 (4 lanes) on x86-64, `wide`'s
//! portable vectors on every other target (NEON, wasm simd128, or plain arrays, as `wide`
//! chooses at compile time), and a one-lane scalar path everywhere. The x86 paths are compiled
//! into every build whatever `RUSTFLAGS` say: each is entered through a function marked
//! `#[target_feature]` ([`Path::enter`]) that the generic code inlines into, the way
//! `matrixmultiply` and `memchr` do it.
//!
//! [`selected`] is the path [`crate::Simd`] runs: the best one this CPU supports, detected once
//! with `is_x86_feature_detected!` (std) and cached, unless `CONSTNET_SIMD` names another or
//! [`select`] was called. Without std the detection is not available: the default is the best
//! path the *compile-time* target features guarantee, and a program that knows its CPU may
//! [`assume_supported`] more.
//!
//! Safety: an x86 vector type may only exist on a CPU that has its instructions. The vector
//! types are private to the crate and are only created inside [`Path::enter`], which is only
//! called after [`Isa::is_supported`] said yes; that is the whole `unsafe` argument of the
//! x86 module.

use core::sync::atomic::{AtomicU8, Ordering};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) mod portable;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// A vector of f32 lanes and the operations the kernels use.
///
/// Arithmetic is IEEE per lane. `mul_add` is fused where the instruction set has FMA (AVX2,
/// AVX-512) and a multiply then an add elsewhere; everything else rounds the same on every
/// path, so only sums of products may differ between paths (by the summation bound the tests
/// use).
pub trait Vector:
    Copy
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
    + 'static
{
    /// f32 lanes.
    const LANES: usize;
    /// Rows of the register tile (see [`crate::kernels`]): as many accumulator rows as the
    /// vector registers hold, two vectors each.
    const MR: usize;

    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// Loads LANES floats.
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load_ptr(p: *const f32) -> Self;
    /// Stores LANES floats.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn store_ptr(self, p: *mut f32);
    /// Loads LANES bytes and converts them to f32 (0..=255).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load_u8_ptr(p: *const u8) -> Self;
    /// Transposes the LANES×LANES block at `src` (rows `ld_src` floats apart) into `dst`
    /// (rows `ld_dst` apart): `dst[c][r] = src[r][c]`.
    ///
    /// # Safety
    /// Every row of both blocks must lie in readable (src) or writable (dst) memory, and the
    /// blocks must not overlap.
    unsafe fn transpose_block(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize);

    /// `self·b + c`, fused where the path has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `max(self, other)` with x86 `maxps` semantics: `other` when either is NaN.
    fn max(self, other: Self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self` where `x > 0`, else 0 (also where `x` is NaN).
    fn keep_where_positive(self, x: Self) -> Self;
    /// 0 where `x < limit`, else `self` (NaN `x` keeps `self`).
    fn zero_where_below(self, x: Self, limit: Self) -> Self;
    /// Whether any lane is ±∞ or NaN.
    fn any_non_finite(self) -> bool;
    /// Rounds to the nearest integer (ties to even), for `|self| < 2^22`.
    fn round(self) -> Self;
    /// `2^n` for lanes holding integers `n` in `-126..=127`.
    fn pow2i(self) -> Self;
    /// The sum of the lanes.
    fn reduce_add(self) -> f32;

    /// Every lane 0.
    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }
    /// `max(0, self)`, NaN propagating (`maxps(0, z)` returns z when z is NaN).
    #[inline(always)]
    fn relu(self) -> Self {
        Self::zero().max(self)
    }
    /// `e^self` for lanes in `[-87, 88]` (NaN stays NaN), within 2 ulp: Cephes' `expf`,
    /// `2^n · e^r` with `|r| ≤ ln 2 / 2` and a degree-5 polynomial.
    #[inline(always)]
    fn exp(self) -> Self {
        let n = (self * Self::splat(core::f32::consts::LOG2_E)).round();
        let r = n.mul_add(Self::splat(-0.693_359_4), self);
        let r = n.mul_add(Self::splat(2.121_944_4e-4), r);
        let mut p = Self::splat(1.987_569_1e-4);
        for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = p.mul_add(r, Self::splat(c));
        }
        let y = p.mul_add(r * r, r) + Self::splat(1.0);
        y * n.pow2i()
    }
    /// Loads the first LANES floats of `s`.
    ///
    /// # Panics
    /// If `s` is shorter.
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        assert!(
            s.len() >= Self::LANES,
            "a vector load past the end of a slice"
        );
        // SAFETY: the first LANES elements of `s` are in bounds (asserted).
        unsafe { Self::load_ptr(s.as_ptr()) }
    }
    /// Stores into the first LANES floats of `s`.
    ///
    /// # Panics
    /// If `s` is shorter.
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        assert!(
            s.len() >= Self::LANES,
            "a vector store past the end of a slice"
        );
        // SAFETY: the first LANES elements of `s` are in bounds (asserted).
        unsafe { self.store_ptr(s.as_mut_ptr()) }
    }
    /// Loads `s.len() <= LANES` floats, the other lanes 0.
    #[inline(always)]
    fn load_partial(s: &[f32]) -> Self {
        let mut lanes = [0.0; MAX_LANES];
        lanes[..s.len()].copy_from_slice(s);
        Self::load(&lanes)
    }
    /// Stores the first `s.len() <= LANES` lanes.
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let mut lanes = [0.0; MAX_LANES];
        self.store(&mut lanes);
        let n = s.len();
        s.copy_from_slice(&lanes[..n]);
    }
}

/// The widest vector of any path, in lanes: the size of every stack buffer that holds one.
pub const MAX_LANES: usize = 16;
/// The most tile columns of any path (two vectors).
pub const MAX_NR: usize = 2 * MAX_LANES;

/// A kernel path: a vector type and the way into code compiled for its instruction set.
pub trait Path: 'static {
    /// Which one.
    const ISA: Isa;
    /// Its vector.
    type V: Vector;
    /// Runs `kernel` in code compiled with this path's target features.
    ///
    /// # Safety
    /// The CPU must support the path ([`Isa::is_supported`]).
    unsafe fn enter<K: crate::kernels::Kernel>(kernel: K) -> K::Output;
}

/// The kernel paths, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F with FMA: 16 lanes, an 8×32 register tile (x86-64).
    Avx512,
    /// AVX2 with FMA: 8 lanes, a 6×16 tile (x86-64).
    Avx2,
    /// SSE2, the x86-64 baseline: 4 lanes, a 6×8 tile, no FMA.
    Sse2,
    /// `wide`'s vectors, instruction set chosen at compile time (NEON, wasm simd128, or
    /// arrays): 8 lanes, a 6×16 tile (targets other than x86-64).
    Portable,
    /// One lane, no SIMD instructions: a 6×2 tile. Every target.
    Scalar,
}

impl Isa {
    /// Every path, best first.
    pub const ALL: [Isa; 5] = [
        Isa::Avx512,
        Isa::Avx2,
        Isa::Sse2,
        Isa::Portable,
        Isa::Scalar,
    ];

    /// The name `CONSTNET_SIMD` takes: `avx512`, `avx2`, `sse2`, `portable`, `scalar`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Sse2 => "sse2",
            Isa::Portable => "portable",
            Isa::Scalar => "scalar",
        }
    }

    /// The path named `name` (see [`Isa::name`]).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this build contains the path (x86 paths exist on x86-64 only; the portable
    /// path elsewhere).
    pub const fn is_compiled(self) -> bool {
        match self {
            Isa::Avx512 | Isa::Avx2 | Isa::Sse2 => cfg!(target_arch = "x86_64"),
            Isa::Portable => cfg!(not(target_arch = "x86_64")),
            Isa::Scalar => true,
        }
    }

    /// Whether this CPU runs the path: detected at run time with std, else what the
    /// compile-time target features (or [`assume_supported`]) guarantee.
    pub fn is_supported(self) -> bool {
        if !self.is_compiled() {
            return false;
        }
        known() & 1 << self as u8 != 0
    }

    /// f32 lanes per vector.
    pub fn lanes(self) -> usize {
        self.with_vector(Lanes)
    }

    /// The register tile, rows × columns.
    pub fn tile(self) -> (usize, usize) {
        let lanes = self.lanes();
        (self.with_vector(TileRows), 2 * lanes)
    }

    /// What the path computes with, for people: `"avx512 (AVX-512F+FMA, 16 lanes, 8×32 tile)"`.
    pub fn describe(self) -> ([&'static str; 2], usize, (usize, usize)) {
        let set = match self {
            Isa::Avx512 => "AVX-512F+FMA",
            Isa::Avx2 => "AVX2+FMA",
            Isa::Sse2 => "SSE2",
            Isa::Portable => portable_set(),
            Isa::Scalar => "no SIMD",
        };
        ([self.name(), set], self.lanes(), self.tile())
    }

    /// Calls `f::<V>()` with this path's vector type (for its constants only: no vector
    /// instruction runs).
    fn with_vector<F: VectorConst>(self, f: F) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => f.get::<x86::F32x16>(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => f.get::<x86::F32x8>(),
            #[cfg(target_arch = "x86_64")]
            Isa::Sse2 => f.get::<x86::F32x4>(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Portable => f.get::<portable::Wide>(),
            _ => f.get::<scalar::F32x1>(),
        }
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ([name, set], lanes, (mr, nr)) = self.describe();
        write!(f, "{name} ({set}, {lanes} lanes, {mr}×{nr} tile)")
    }
}

/// Reads a constant of a vector type.
trait VectorConst {
    fn get<V: Vector>(self) -> usize;
}
struct Lanes;
impl VectorConst for Lanes {
    fn get<V: Vector>(self) -> usize {
        V::LANES
    }
}
struct TileRows;
impl VectorConst for TileRows {
    fn get<V: Vector>(self) -> usize {
        V::MR
    }
}

/// What `wide` compiles its vectors to on this target.
const fn portable_set() -> &'static str {
    if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "wide: NEON"
    } else if cfg!(target_feature = "simd128") {
        "wide: wasm simd128"
    } else if cfg!(target_feature = "sse2") {
        "wide: SSE2"
    } else {
        "wide: arrays"
    }
}

/// Paths known to run here, one bit per [`Isa`] (bit 7 set once detection ran).
static SUPPORTED: AtomicU8 = AtomicU8::new(0);
/// The selected path plus one (0: not chosen yet).
static SELECTED: AtomicU8 = AtomicU8::new(0);
const DETECTED: u8 = 1 << 7;

/// [`SUPPORTED`], detected on first use.
fn known() -> u8 {
    match SUPPORTED.load(Ordering::Relaxed) {
        0 => {
            let detected = detect();
            SUPPORTED.fetch_or(detected, Ordering::Relaxed) | detected
        }
        bits => bits,
    }
}

/// The paths this CPU runs, as [`SUPPORTED`] bits.
fn detect() -> u8 {
    let mut bits = DETECTED | 1 << Isa::Scalar as u8;
    if cfg!(not(target_arch = "x86_64")) && portable_set() != "wide: arrays" {
        bits |= 1 << Isa::Portable as u8;
    }
    #[cfg(target_arch = "x86_64")]
    {
        bits |= 1 << Isa::Sse2 as u8;
        if x86::has_avx2_fma() {
            bits |= 1 << Isa::Avx2 as u8;
        }
        if x86::has_avx512f() {
            bits |= 1 << Isa::Avx512 as u8;
        }
    }
    bits
}

/// The best path this CPU supports.
pub fn best() -> Isa {
    Isa::ALL
        .into_iter()
        .find(|isa| isa.is_supported())
        .unwrap_or(Isa::Scalar)
}

/// The paths this CPU supports, best first (at most five).
pub fn supported() -> impl Iterator<Item = Isa> {
    Isa::ALL.into_iter().filter(|isa| isa.is_supported())
}

/// Why a path cannot be selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// No path has this name.
    Unknown(
        /// The name given.
        &'static str,
    ),
    /// The path exists but this CPU (or this build's target) cannot run it.
    Unsupported(
        /// The path.
        Isa,
    ),
}

impl core::fmt::Display for SelectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SelectError::Unknown(name) => write!(f, "no SIMD path is called {name:?}")?,
            SelectError::Unsupported(isa) if isa.is_compiled() => {
                write!(f, "this CPU cannot run the {} path", isa.name())?
            }
            SelectError::Unsupported(isa) => {
                write!(f, "the {} path does not exist on this target", isa.name())?
            }
        }
        write!(f, "; supported here:")?;
        for isa in supported() {
            write!(f, " {}", isa.name())?;
        }
        Ok(())
    }
}

impl core::error::Error for SelectError {}

/// Makes [`crate::Simd`] run `isa` from now on, in every thread. Fails, changing nothing, if
/// this CPU cannot run it.
pub fn select(isa: Isa) -> Result<(), SelectError> {
    if !isa.is_supported() {
        return Err(SelectError::Unsupported(isa));
    }
    SELECTED.store(isa as u8 + 1, Ordering::Relaxed);
    Ok(())
}

/// Declares that this CPU runs `isa`, for `no_std` programs, which cannot detect it (with std
/// the detection is exact and this changes nothing it has not already found).
///
/// # Safety
/// The CPU must support the instructions of `isa`; running them otherwise is undefined
/// behaviour (typically an illegal-instruction fault).
pub unsafe fn assume_supported(isa: Isa) {
    if isa.is_compiled() {
        known();
        SUPPORTED.fetch_or(1 << isa as u8, Ordering::Relaxed);
    }
}

/// The path `CONSTNET_SIMD` asks for, if it is set: `Ok(None)` when unset or empty.
#[cfg(feature = "std")]
pub fn from_env() -> Result<Option<Isa>, SelectError> {
    let Some(value) = std::env::var_os("CONSTNET_SIMD") else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    if value.is_empty() {
        return Ok(None);
    }
    let isa = Isa::from_name(&value).ok_or_else(|| {
        SelectError::Unknown(std::boxed::Box::leak(value.into_owned().into_boxed_str()))
    })?;
    if isa.is_supported() {
        Ok(Some(isa))
    } else {
        Err(SelectError::Unsupported(isa))
    }
}

/// The path [`crate::Simd`] runs: chosen on first use and cached. That is `CONSTNET_SIMD` when
/// set (std), else the best path this CPU supports, until [`select`] changes it.
///
/// # Panics
/// On first use, if `CONSTNET_SIMD` names no path or one this CPU cannot run: a forced path
/// must never be silently replaced by another. (The `constnet` binary checks the variable at
/// start-up and reports it as a usage error instead.)
#[inline]
pub fn selected() -> Isa {
    match SELECTED.load(Ordering::Relaxed) {
        0 => choose(),
        n => Isa::ALL[n as usize - 1],
    }
}

#[cold]
fn choose() -> Isa {
    #[cfg(feature = "std")]
    let isa = match from_env() {
        Ok(forced) => forced.unwrap_or_else(best),
        Err(e) => panic!("CONSTNET_SIMD: {e}"),
    };
    #[cfg(not(feature = "std"))]
    let isa = best();
    // Another thread may have chosen meanwhile (the same way, unless `select` ran): keep
    // whatever is there.
    let _ = SELECTED.compare_exchange(0, isa as u8 + 1, Ordering::Relaxed, Ordering::Relaxed);
    selected()
}
