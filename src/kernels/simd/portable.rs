//! The portable path for targets other than x86-64: `wide`'s `f32x8`, whose instructions
//! `wide` picks at compile time from the target features (NEON on aarch64, simd128 on wasm32
//! with `-C target-feature=+simd128`). Where `wide` has no SIMD (it falls back to arrays, as on
//! Cortex-M), the path still works but is not offered as supported: the scalar path, whose
//! accumulators fit the FPU's registers, is faster there.

use super::{Isa, Path, Vector};
use crate::kernels::Kernel;
use core::ops::{Add, Div, Mul, Sub};
use wide::f32x8;

/// The kernels on `wide`'s vectors.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

impl Path for Portable {
    const ISA: Isa = Isa::Portable;
    type V = Wide;
    #[inline(always)]
    unsafe fn enter<K: Kernel>(kernel: K) -> K::Output {
        kernel.simd::<Wide>()
    }
}

/// Eight f32 lanes as `wide` implements them here.
#[derive(Clone, Copy)]
pub struct Wide(f32x8);

impl Add for Wide {
    type Output = Self;
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Self(self.0 + b.0)
    }
}
impl Sub for Wide {
    type Output = Self;
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Self(self.0 - b.0)
    }
}
impl Mul for Wide {
    type Output = Self;
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Self(self.0 * b.0)
    }
}
impl Div for Wide {
    type Output = Self;
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        Self(self.0 / b.0)
    }
}

impl Wide {
    #[inline(always)]
    fn array(self) -> [f32; 8] {
        self.0.to_array()
    }
}

impl Vector for Wide {
    const LANES: usize = 8;
    const MR: usize = 6;

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(f32x8::splat(x))
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable floats at `p`.
        Self(f32x8::new(unsafe { p.cast::<[f32; 8]>().read_unaligned() }))
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        // SAFETY: the caller guarantees 8 writable floats at `p`.
        unsafe { p.cast::<[f32; 8]>().write_unaligned(self.array()) }
    }
    #[inline(always)]
    unsafe fn load_u8_ptr(p: *const u8) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes at `p`.
        let bytes = unsafe { p.cast::<[u8; 8]>().read_unaligned() };
        Self(f32x8::new(bytes.map(f32::from)))
    }
    #[inline(always)]
    unsafe fn transpose_block(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
        // SAFETY: the caller guarantees 8 readable rows at `src` and 8 writable rows at `dst`.
        let rows = core::array::from_fn(|r| unsafe { Self::load_ptr(src.add(r * ld_src)) }.0);
        for (c, column) in f32x8::transpose(rows).into_iter().enumerate() {
            // SAFETY: as above.
            unsafe { Self(column).store_ptr(dst.add(c * ld_dst)) }
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Self(self.0.mul_add(b.0, c.0))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        // maxps semantics on every target (wide's array fallback differs for NaN).
        Self(self.0.simd_gt(other.0).bitselect(self.0, other.0))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Self(self.0.sqrt())
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Self(self.0.abs())
    }
    #[inline(always)]
    fn keep_where_positive(self, x: Self) -> Self {
        Self(self.0 & x.0.simd_gt(f32x8::ZERO))
    }
    #[inline(always)]
    fn zero_where_below(self, x: Self, limit: Self) -> Self {
        Self(x.0.simd_lt(limit.0).bitselect(f32x8::ZERO, self.0))
    }
    #[inline(always)]
    fn any_non_finite(self) -> bool {
        self.0.is_finite().to_bitmask() != 0xff
    }
    #[inline(always)]
    fn round(self) -> Self {
        Self(self.0.round())
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let n = self.array();
        Self(f32x8::new(
            n.map(|n| f32::from_bits(((n as i32 + 127) as u32) << 23)),
        ))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self.0.reduce_add()
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Self(self.0.exp())
    }
}
