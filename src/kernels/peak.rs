//! The two physical limits every figure is read against: the FMA peak of one core, and the
//! time to stream a set of weights through it once.
//!
//! The peak runs [`CHAINS`] independent FMA chains, `acc = acc·m + a`, with no loads or stores:
//! the only limit is how many FMAs the core retires per cycle on the path's vectors.
//! [`stream`] reads every float of its slices once with vector loads and adds them up: no
//! inference can read its weights faster.
#![forbid(unsafe_code)]

use super::ops::FmaPeak;
use super::simd::Vector;

/// Independent chains: more than FMA latency × FMA ports on any current x86 core.
pub(crate) const CHAINS: usize = 12;

/// See [`FmaPeak`].
#[inline(always)]
pub(crate) fn fma_peak<V: Vector>(op: FmaPeak) -> f32 {
    let (m, a) = (V::splat(op.m), V::splat(op.a));
    let mut acc = [V::zero(); CHAINS];
    for (c, acc) in acc.iter_mut().enumerate() {
        *acc = V::splat(c as f32);
    }
    for _ in 0..op.iters {
        for c in &mut acc {
            *c = c.mul_add(m, a);
        }
    }
    let mut sum = V::zero();
    for c in acc {
        sum = sum + c;
    }
    sum.reduce_add()
}

/// Reads every float of every slice once and returns their sum (four accumulators keep the
/// adds off the critical path, so only the loads limit it).
#[inline(always)]
pub(crate) fn stream<V: Vector>(slices: &[&[f32]]) -> f32 {
    let mut acc = [V::zero(); 4];
    let mut tail = 0.0;
    for s in slices {
        let mut blocks = s.chunks_exact(4 * V::LANES);
        for b in &mut blocks {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = *a + V::load(&b[i * V::LANES..]);
            }
        }
        tail += blocks.remainder().iter().sum::<f32>();
    }
    (acc[0] + acc[1] + acc[2] + acc[3]).reduce_add() + tail
}
