//! Flat blocks of floats. A network's parameters are one 64-byte-aligned array, and so are its
//! gradients and each tensor of optimizer state (as llm.c keeps one block for parameters, one for
//! gradients, one per Adam moment): an optimizer update, a gradient reduction, a norm, a copy
//! or a split between threads is one pass over one slice, and a tensor is a view at a fixed
//! offset ([`crate::model::TensorInfo`]).
//!
//! Every tensor starts on a cache line: its length is padded to a multiple of [`ALIGN`] floats
//! with zeros that no layer reads. Zero parameters with zero gradients stay zero under every
//! optimizer, so a pass over the whole block leaves the padding alone.
#![forbid(unsafe_code)]

/// Floats per cache line: every tensor's offset in a block is a multiple of this.
pub const ALIGN: usize = 16;

/// `n` rounded up to a whole number of cache lines.
pub const fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A flat block of floats with a size fixed at compile time: a network's parameters, or
/// anything shaped like them (gradients, optimizer state).
pub trait Params: bytemuck::Zeroable + Send + Sync + Sized + 'static {
    /// Floats in the block, padding included.
    const LEN: usize;
    /// All zeros, for `static`s.
    const ZEROED: Self;

    /// The whole block.
    fn flat(&self) -> &[f32];
    /// The whole block, mutable.
    fn flat_mut(&mut self) -> &mut [f32];

    /// All zeros on the heap, without a temporary on the stack.
    #[cfg(feature = "alloc")]
    fn zeroed_box() -> alloc::boxed::Box<Self> {
        bytemuck::zeroed_box()
    }

    /// Copies `other` into `self`.
    fn copy_from(&mut self, other: &Self) {
        self.flat_mut().copy_from_slice(other.flat());
    }
}

/// Part `part` of `parts` of `0..len`: the parts are contiguous, in order, cover it, and
/// start on a cache line (`ALIGN` floats) except where `len` is shorter.
pub fn part_range(len: usize, part: usize, parts: usize) -> core::ops::Range<usize> {
    let cut = |p: usize| (padded(p * len / parts)).min(len);
    cut(part)..if part + 1 == parts {
        len
    } else {
        cut(part + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_in_order_on_cache_lines() {
        for len in [0, 1, 15, 16, 17, 1000, 242_816] {
            for parts in 1..=5 {
                let mut next = 0;
                for p in 0..parts {
                    let r = part_range(len, p, parts);
                    assert_eq!(r.start, next, "len {len} parts {parts}");
                    assert!(r.start.is_multiple_of(ALIGN) || r.start == len);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }
}
