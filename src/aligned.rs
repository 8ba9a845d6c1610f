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
}
