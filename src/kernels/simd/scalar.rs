//! The scalar path: a "vector" of one f32, so the same kernels run with no SIMD instructions
//! at all (a 6×2 register tile). It exists on every target: as a fallback, and so the tests
//! exercise the tiling logic at a width where every size is a tail.

use super::{Isa, Path, Vector};
use crate::kernels::Kernel;
use core::ops::{Add, Div, Mul, Sub};

/// The kernels without SIMD instructions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;

impl Path for Scalar {
    const ISA: Isa = Isa::Scalar;
    type V = F32x1;
    #[inline(always)]
    unsafe fn enter<K: Kernel>(kernel: K) -> K::Output {
        kernel.simd::<F32x1>()
    }
}

/// One f32.
#[derive(Clone, Copy)]
pub struct F32x1(f32);

impl Add for F32x1 {
    type Output = Self;
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Self(self.0 + b.0)
    }
}
impl Sub for F32x1 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Self(self.0 - b.0)
    }
}
impl Mul for F32x1 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Self(self.0 * b.0)
    }
}
impl Div for F32x1 {
    type Output = Self;
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        Self(self.0 / b.0)
    }
}

impl Vector for F32x1 {
    const LANES: usize = 1;
    const MR: usize = 6;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(x)
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        // SAFETY: the caller guarantees one readable float at `p`.
        Self(unsafe { p.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        // SAFETY: the caller guarantees one writable float at `p`.
        unsafe { p.write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn load_u8_ptr(p: *const u8) -> Self {
        // SAFETY: the caller guarantees one readable byte at `p`.
        Self(f32::from(unsafe { p.read() }))
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, _: usize, dst: *mut f32, _: usize) {
        // SAFETY: a 1×1 block: one float at each pointer, as the caller guarantees.
        unsafe { dst.write_unaligned(src.read_unaligned()) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        // maxps: the second operand unless the first is greater (so NaN gives `other`).
        Self(if self.0 > other.0 { self.0 } else { other.0 })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Self(libm::sqrtf(self.0))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(libm::fabsf(self.0))
    }
    #[inline(always)]
    fn keep_where_positive(self, x: Self) -> Self {
        Self(if x.0 > 0.0 { self.0 } else { 0.0 })
    }
    #[inline(always)]
    fn zero_where_below(self, x: Self, limit: Self) -> Self {
        Self(if x.0 < limit.0 { 0.0 } else { self.0 })
    }
    #[inline(always)]
    fn any_non_finite(self) -> bool {
        !self.0.is_finite()
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(libm::rintf(self.0))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        Self(f32::from_bits(((self.0 as i32 + 127) as u32) << 23))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self.0
    }
}
