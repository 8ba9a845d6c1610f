//! The x86-64 paths: SSE2 ([`F32x4`]), AVX2 with FMA ([`F32x8`]) and AVX-512F ([`F32x16`]),
//! written with `core::arch` intrinsics and compiled into every build.
//!
//! Each path is entered through one function marked `#[target_feature]` (`enter_*`); the kernels
//! and every method here are `#[inline(always)]`, so they are compiled inside that function
//! with its instruction set, whatever the crate's own target features are.
//!
//! Safety: every `unsafe` block below runs an intrinsic of the type's instruction set (or reads
//! memory through a pointer a caller vouched for, as the method's contract says). A value of
//! these types only exists inside `enter_*`, which [`Path::enter`]'s contract allows only on a
//! CPU with those instructions, so each intrinsic runs where it is supported.
#![allow(clippy::undocumented_unsafe_blocks)] // one argument for all, above

use super::{Isa, Path, Vector};
use crate::kernels::Kernel;
use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Sub};

/// Asks the CPU to bring every cache line of `bytes` towards L1, without waiting for it.
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let offset = bytes.as_ptr() as usize % 64;
    let first_line = bytes.as_ptr().wrapping_sub(offset);
    for k in 0..(offset + bytes.len()).div_ceil(64) {
        // SAFETY: a prefetch is a hint that never faults, whatever the address; SSE, its
        // instruction set, is part of every x86-64 CPU.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(first_line.wrapping_add(64 * k).cast()) };
    }
}

/// Whether this CPU has AVX2 and FMA.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
}

/// Whether this CPU has AVX-512F (and the AVX2 and FMA it implies).
pub(crate) fn has_avx512f() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && has_avx2_fma()
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx512f", target_feature = "fma"))
    }
}

/// Implements the arithmetic operators of a vector type with the intrinsics given.
macro_rules! operators {
    ($t:ident: $add:ident $sub:ident $mul:ident $div:ident) => {
        impl Add for $t {
            type Output = Self;
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                Self(unsafe { $add(self.0, b.0) })
            }
        }
        impl Sub for $t {
            type Output = Self;
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                Self(unsafe { $sub(self.0, b.0) })
            }
        }
        impl Mul for $t {
            type Output = Self;
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                Self(unsafe { $mul(self.0, b.0) })
            }
        }
        impl Div for $t {
            type Output = Self;
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                Self(unsafe { $div(self.0, b.0) })
            }
        }
    };
}

/// Declares a path marker whose vector is `$v`, entered through a function compiled with
/// `$features`.
macro_rules! path {
    ($(#[$doc:meta])* $path:ident, $isa:expr, $v:ident, $enter:ident, $features:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $path;

        impl Path for $path {
            const ISA: Isa = $isa;
            type V = $v;
            #[inline(always)]
            unsafe fn enter<K: Kernel>(kernel: K) -> K::Output {
                unsafe { $enter(kernel) }
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn $enter<K: Kernel>(kernel: K) -> K::Output {
            kernel.simd::<$v>()
        }
    };
}

path!(
    /// The SSE2 kernels (the x86-64 baseline): 4 lanes, no FMA.
    Sse2, Isa::Sse2, F32x4, enter_sse2, "sse2"
);
path!(
    /// The AVX2+FMA kernels: 8 lanes.
    Avx2, Isa::Avx2, F32x8, enter_avx2, "avx2,fma"
);
path!(
    /// The AVX-512F kernels: 16 lanes.
    Avx512, Isa::Avx512, F32x16, enter_avx512, "avx512f,avx2,fma"
);

/// Four f32 lanes in an SSE register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F32x4(__m128);

operators!(F32x4: _mm_add_ps _mm_sub_ps _mm_mul_ps _mm_div_ps);

impl Vector for F32x4 {
    const LANES: usize = 4;
    /// 12 accumulators, two B vectors and a broadcast: 15 of SSE's 16 registers.
    const MR: usize = 6;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(unsafe { _mm_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        Self(unsafe { _mm_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        unsafe { _mm_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_u8_ptr(p: *const u8) -> Self {
        unsafe {
            let bytes = _mm_cvtsi32_si128(p.cast::<i32>().read_unaligned());
            let zero = _mm_setzero_si128();
            let words = _mm_unpacklo_epi8(bytes, zero);
            Self(_mm_cvtepi32_ps(_mm_unpacklo_epi16(words, zero)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        unsafe {
            let mut r = [_mm_setzero_ps(); 4];
            for (i, r) in r.iter_mut().enumerate() {
                *r = _mm_loadu_ps(src.add(i * ld_src));
            }
            let (t0, t1) = (_mm_unpacklo_ps(r[0], r[1]), _mm_unpacklo_ps(r[2], r[3]));
            let (t2, t3) = (_mm_unpackhi_ps(r[0], r[1]), _mm_unpackhi_ps(r[2], r[3]));
            let c = [
                _mm_movelh_ps(t0, t1),
                _mm_movehl_ps(t1, t0),
                _mm_movelh_ps(t2, t3),
                _mm_movehl_ps(t3, t2),
            ];
            for (i, c) in c.into_iter().enumerate() {
                _mm_storeu_ps(dst.add(i * ld_dst), c);
            }
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(unsafe { _mm_max_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Self(unsafe { _mm_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(unsafe { _mm_andnot_ps(_mm_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn keep_where_positive(self, x: Self) -> Self {
        Self(unsafe { _mm_and_ps(self.0, _mm_cmpgt_ps(x.0, _mm_setzero_ps())) })
    }
    #[inline(always)]
    fn zero_where_below(self, x: Self, limit: Self) -> Self {
        Self(unsafe { _mm_andnot_ps(_mm_cmplt_ps(x.0, limit.0), self.0) })
    }
    #[inline(always)]
    fn any_non_finite(self) -> bool {
        // |x| ≥ ∞, or unordered (NaN).
        unsafe { _mm_movemask_ps(_mm_cmpnlt_ps(self.abs().0, _mm_set1_ps(f32::INFINITY))) != 0 }
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(unsafe { _mm_cvtepi32_ps(_mm_cvtps_epi32(self.0)) })
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        unsafe {
            let biased = _mm_add_epi32(_mm_cvtps_epi32(self.0), _mm_set1_epi32(127));
            Self(_mm_castsi128_ps(_mm_slli_epi32::<23>(biased)))
        }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        unsafe {
            let pairs = _mm_add_ps(self.0, _mm_movehl_ps(self.0, self.0));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
        }
    }
}

/// Eight f32 lanes in an AVX register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F32x8(__m256);

operators!(F32x8: _mm256_add_ps _mm256_sub_ps _mm256_mul_ps _mm256_div_ps);

impl Vector for F32x8 {
    const LANES: usize = 8;
    /// 12 accumulators, two B vectors and a broadcast: 15 of AVX2's 16 registers.
    const MR: usize = 6;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        Self(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_u8_ptr(p: *const u8) -> Self {
        unsafe {
            let bytes = _mm_loadl_epi64(p.cast::<__m128i>());
            Self(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        unsafe {
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, r) in r.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(src.add(i * ld_src));
            }
            // Pairs of rows interleaved, then groups of four, then the 128-bit halves.
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let s = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            for c in 0..4 {
                let low = _mm256_permute2f128_ps::<0x20>(s[c], s[c + 4]);
                let high = _mm256_permute2f128_ps::<0x31>(s[c], s[c + 4]);
                _mm256_storeu_ps(dst.add(c * ld_dst), low);
                _mm256_storeu_ps(dst.add((c + 4) * ld_dst), high);
            }
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(unsafe { _mm256_max_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Self(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn keep_where_positive(self, x: Self) -> Self {
        Self(unsafe {
            _mm256_and_ps(
                self.0,
                _mm256_cmp_ps::<_CMP_GT_OQ>(x.0, _mm256_setzero_ps()),
            )
        })
    }
    #[inline(always)]
    fn zero_where_below(self, x: Self, limit: Self) -> Self {
        Self(unsafe { _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x.0, limit.0), self.0) })
    }
    #[inline(always)]
    fn any_non_finite(self) -> bool {
        let inf = unsafe { _mm256_set1_ps(f32::INFINITY) };
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLT_UQ>(self.abs().0, inf)) != 0 }
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(unsafe { _mm256_cvtepi32_ps(_mm256_cvtps_epi32(self.0)) })
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        unsafe {
            let biased = _mm256_add_epi32(_mm256_cvtps_epi32(self.0), _mm256_set1_epi32(127));
            Self(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
        }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let halves = unsafe {
            _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            )
        };
        F32x4(halves).reduce_add()
    }
}

/// Sixteen f32 lanes in an AVX-512 register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct F32x16(__m512);

operators!(F32x16: _mm512_add_ps _mm512_sub_ps _mm512_mul_ps _mm512_div_ps);

impl Vector for F32x16 {
    const LANES: usize = 16;
    /// 16 accumulators of AVX-512's 32 registers.
    const MR: usize = 8;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        Self(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_u8_ptr(p: *const u8) -> Self {
        unsafe {
            let bytes = _mm_loadu_si128(p.cast::<__m128i>());
            Self(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)))
        }
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        unsafe {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, r) in r.iter_mut().enumerate() {
                *r = _mm512_loadu_ps(src.add(i * ld_src));
            }
            // Within each 128-bit lane: pairs of rows interleaved, then groups of four.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4g + c]: rows 4g..4g+4, and in 128-bit lane q their column c + 4q.
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                for half in 0..2 {
                    let (a, b) = (t[4 * g + half], t[4 * g + 2 + half]);
                    u[4 * g + 2 * half] = _mm512_shuffle_ps::<0x44>(a, b);
                    u[4 * g + 2 * half + 1] = _mm512_shuffle_ps::<0xEE>(a, b);
                }
            }
            // Then the 128-bit lanes: columns c, c + 8 from groups (0, 1) and (2, 3) first.
            for c in 0..4 {
                let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
                let v1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
                let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
                let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
                let columns = [
                    (c, _mm512_shuffle_f32x4::<0x88>(v0, v2)),
                    (c + 8, _mm512_shuffle_f32x4::<0xDD>(v0, v2)),
                    (c + 4, _mm512_shuffle_f32x4::<0x88>(v1, v3)),
                    (c + 12, _mm512_shuffle_f32x4::<0xDD>(v1, v3)),
                ];
                for (column, v) in columns {
                    _mm512_storeu_ps(dst.add(column * ld_dst), v);
                }
            }
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(unsafe { _mm512_max_ps(self.0, other.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Self(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn keep_where_positive(self, x: Self) -> Self {
        Self(unsafe {
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x.0, _mm512_setzero_ps());
            _mm512_maskz_mov_ps(positive, self.0)
        })
    }
    #[inline(always)]
    fn zero_where_below(self, x: Self, limit: Self) -> Self {
        // The mask of lanes kept (not below, or NaN), so no mask inversion: the three flushes
        // of an Adam step went from 66 to 62 µs a step (Zen5).
        Self(unsafe {
            let kept = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x.0, limit.0);
            _mm512_maskz_mov_ps(kept, self.0)
        })
    }
    #[inline(always)]
    fn any_non_finite(self) -> bool {
        let inf = unsafe { _mm512_set1_ps(f32::INFINITY) };
        unsafe { _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(self.abs().0, inf) != 0 }
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(unsafe { _mm512_cvtepi32_ps(_mm512_cvtps_epi32(self.0)) })
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        unsafe {
            let biased = _mm512_add_epi32(_mm512_cvtps_epi32(self.0), _mm512_set1_epi32(127));
            Self(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(biased)))
        }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let halves = unsafe {
            _mm256_add_ps(
                _mm512_castps512_ps256(self.0),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0))),
            )
        };
        F32x8(halves).reduce_add()
    }
}
