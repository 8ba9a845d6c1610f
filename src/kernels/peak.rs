//! The two physical limits every figure is read against: the FMA peak of one core, and the
//! time to stream a set of weights through it once.
//!
//! The peak runs twelve independent FMA chains, `acc = acc·m + a`, with no loads or stores: the
//! only limit is how many FMAs the core retires per cycle. [`fma_peak`] uses the kernels' own
//! vector width; [`fma_peak_f32x8`] always uses 8 lanes (the AVX2 figure, for comparison on an
//! AVX-512 machine). [`stream`] reads every float of its slices once with vector loads and adds
//! them up: no inference can read its weights faster.
#![forbid(unsafe_code)]

use super::{LANES, V};
use wide::f32x8;

/// Independent chains: more than FMA latency × FMA ports on any current x86 core.
const CHAINS: usize = 12;

/// Floating-point operations one call of [`fma_peak`] performs (2 per lane per FMA).
pub const fn fma_peak_flops(iters: usize) -> u64 {
    (iters * CHAINS * LANES * 2) as u64
}

/// Floating-point operations one call of [`fma_peak_f32x8`] performs.
pub const fn fma_peak_f32x8_flops(iters: usize) -> u64 {
    (iters * CHAINS * 8 * 2) as u64
}

/// Runs `iters` rounds of [`CHAINS`] independent vector FMAs and returns a sum of the results
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

/// [`fma_peak`] with 8-lane vectors whatever the build.
pub fn fma_peak_f32x8(iters: usize, m: f32, a: f32) -> f32 {
    let (m, a) = (f32x8::splat(m), f32x8::splat(a));
    let mut acc: [f32x8; CHAINS] = core::array::from_fn(|c| f32x8::splat(c as f32));
    for _ in 0..iters {
        for c in &mut acc {
            *c = c.mul_add(m, a);
        }
    }
    acc.iter().fold(f32x8::ZERO, |s, &c| s + c).reduce_add()
}

/// Reads every float of every slice once and returns their sum: the streaming bound of
/// anything that must read those floats (four accumulators keep the adds off the critical
/// path, so only the loads limit it).
pub fn stream(slices: &[&[f32]]) -> f32 {
    let mut acc = [V::ZERO; 4];
    let mut tail = 0.0;
    for s in slices {
        let (blocks, rest) = s.as_chunks::<{ 4 * LANES }>();
        for b in blocks {
            for (a, chunk) in acc.iter_mut().zip(b.as_chunks::<LANES>().0) {
                *a += V::new(*chunk);
            }
        }
        tail += rest.iter().sum::<f32>();
    }
    (acc[0] + acc[1] + acc[2] + acc[3]).reduce_add() + tail
}
