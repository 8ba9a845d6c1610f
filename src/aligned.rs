//! 64-byte-aligned storage for parameters, optimizer state and activations.
//!
//! `Aligned<T>` is `#[repr(C, align(64))]`: its value starts on a cache line, so every SIMD row
//! of a weight matrix whose width is a multiple of 16 floats starts on a cache line too, and no
//! load of a f32x8 straddles two lines more often than the shape forces.
//!
//! Weights are `Aligned<[[f32; IN]; OUT]>` (stable Rust rejects `[f32; IN * OUT]` in a generic
//! struct); [`Aligned::flat`] gives the flat `&[f32]` view the kernels take.
//!
//! Large values (the 784×256 weights are 784 KiB) must never pass through the stack:
//! [`Aligned::zeroed_box`] allocates them zeroed on the heap, and under `no_std` a `static` or
//! a caller's buffer holds them (see [`crate::network!`]'s `ZEROED` constants).
//!
//! Every struct of such storage derives [`bytemuck::Zeroable`], which checks at compile time
//! that each field is Zeroable: that is what lets `zeroed_box` skip the stack.
#![forbid(unsafe_code)]

/// A value aligned to 64 bytes (one cache line).
///
/// `align(64)` pads the type to a multiple of 64 bytes: `Aligned<[f32; 10]>` is 64 bytes long.
/// Because of that padding it is [`bytemuck::Zeroable`] but deliberately not `Pod`.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub struct Aligned<T>(pub T);

impl<T> core::ops::Deref for Aligned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> core::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: bytemuck::Zeroable> Aligned<T> {
    /// An all-zero value, built on the heap without a temporary on the stack.
    #[cfg(feature = "alloc")]
    pub fn zeroed_box() -> alloc::boxed::Box<Self> {
        bytemuck::zeroed_box()
    }
}

/// Arrays of f32 (any nesting the kernels use) seen as one flat slice.
pub trait Flat {
    /// All elements in memory order.
    fn flat(&self) -> &[f32];
    /// All elements in memory order, mutable.
    fn flat_mut(&mut self) -> &mut [f32];
}

impl<const N: usize> Flat for [f32; N] {
    fn flat(&self) -> &[f32] {
        self
    }
    fn flat_mut(&mut self) -> &mut [f32] {
        self
    }
}

impl<const R: usize, const C: usize> Flat for [[f32; C]; R] {
    fn flat(&self) -> &[f32] {
        self.as_flattened()
    }
    fn flat_mut(&mut self) -> &mut [f32] {
        self.as_flattened_mut()
    }
}

impl<T: Flat> Flat for Aligned<T> {
    fn flat(&self) -> &[f32] {
        self.0.flat()
    }
    fn flat_mut(&mut self) -> &mut [f32] {
        self.0.flat_mut()
    }
}

#[cfg(feature = "alloc")]
/// One cache line of floats: the unit [`AlignedVec`] allocates in. Unlike `Aligned<T>` it is
/// `Pod` (no padding), so a slice of them is safely a slice of f32.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct CacheLine([f32; 16]);

/// A heap buffer of floats whose length is known only at run time, starting on a cache line
/// like every buffer of a network (a `Vec<f32>` is only 16-byte aligned, and then most 64-byte
/// vector loads straddle two lines): for batches of input rows, and for benchmarks that feed
/// the kernels what a network would.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedVec {
    lines: alloc::vec::Vec<CacheLine>,
    len: usize,
}

#[cfg(feature = "alloc")]
impl AlignedVec {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        Self {
            lines: alloc::vec![CacheLine([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut v = Self::zeroed(values.len());
        v.copy_from_slice(values);
        v
    }
}

#[cfg(feature = "alloc")]
impl core::ops::Deref for AlignedVec {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

#[cfg(feature = "alloc")]
impl core::ops::DerefMut for AlignedVec {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_and_padding() {
        assert_eq!(core::mem::align_of::<Aligned<[f32; 10]>>(), 64);
        assert_eq!(core::mem::size_of::<Aligned<[f32; 10]>>(), 64);
        assert_eq!(core::mem::size_of::<Aligned<[[f32; 16]; 3]>>(), 192);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn zeroed_box_is_aligned_and_zero() {
        let b = Aligned::<[[f32; 784]; 256]>::zeroed_box();
        assert_eq!(b.flat().as_ptr() as usize % 64, 0);
        assert!(b.flat().iter().all(|&x| x == 0.0));
        assert_eq!(b.flat().len(), 784 * 256);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn aligned_vec_is_aligned_and_exactly_as_long() {
        for len in [0, 1, 15, 16, 17, 784 * 64 + 3] {
            let mut v = AlignedVec::zeroed(len);
            assert_eq!((v.len(), v.as_ptr() as usize % 64), (len, 0));
            v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            let w = v.clone();
            assert_eq!((w.as_ptr() as usize % 64, &*w), (0, &*v));
            assert_eq!(&*AlignedVec::from_slice(&v), &*v);
        }
    }
}
