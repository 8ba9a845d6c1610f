//! The machine's single-core f32 FMA peak, measured by the same vector FMA the tiles use.
//!
//! Twelve independent FMA chains, each `acc = acc·m + a`, no loads or stores: the only limit is
//! how many FMAs the core retires per cycle. Every kernel figure divided by this rate reads as a
//! fraction of the physical limit.
#![forbid(unsafe_code)]

use super::{LANES, V};

/// Independent chains: more than FMA latency × FMA ports on any current x86 core.
const CHAINS: usize = 12;

/// Floating-point operations one call of [`fma_peak`] performs (2 per lane per FMA).
pub const fn fma_peak_flops(iters: usize) -> u64 {
    (iters * CHAINS * LANES * 2) as u64
}

/// Runs `iters` rounds of [`CHAINS`] independent V FMAs and returns a sum of the results
/// (so the work cannot be optimised away). Pass `m` and `a` through `black_box`.
pub fn fma_peak(iters: usize, m: f32, a: f32) -> f32 {
    let (m, a) = (V::splat(m), V::splat(a));
    let mut acc: [V; CHAINS] = core::array::from_fn(|c| V::splat(c as f32));
    for _ in 0..iters {
        for c in &mut acc {
            *c = c.mul_add(m, a);
        }
    }
    acc.iter().fold(V::ZERO, |s, &c| s + c).reduce_add()
}
