//! Shared test helpers: a seeded generator, edge-biased values, tolerance-aware comparison and
//! an allocation counter.
#![allow(dead_code)]

pub mod alloc_counter;

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// The generator every test draws from, seeded so a failure reproduces.
pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Xoshiro256PlusPlus, lo: f32, hi: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
    lo + (hi - lo) * unit
}

/// Uniform integer in `lo..=hi`.
pub fn int(rng: &mut Xoshiro256PlusPlus, lo: usize, hi: usize) -> usize {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
}

/// `n` floats uniform in `[-1, 1)`.
pub fn floats(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| uniform(rng, -1.0, 1.0)).collect()
}

/// `n` small integers in `-4..=4` stored as floats: products and sums of up to 2^18 terms are
/// exact in f32, so every kernel must match its reference bit for bit.
pub fn small_ints(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n).map(|_| int(rng, 0, 8) as f32 - 4.0).collect()
}

/// Mostly uniform values with one in eight drawn from the edge cases: zeros of both signs,
/// ±1, a subnormal, moderately large values, ±inf and NaN. Magnitudes stay small enough that
/// no finite partial sum overflows, so inf/NaN come only from the special inputs.
pub fn edge_biased(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    const EDGES: [f32; 10] = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-40,
        1e3,
        -1e3,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    (0..n)
        .map(|_| {
            if rng.next_u32().is_multiple_of(8) {
                EDGES[int(rng, 0, EDGES.len() - 1)]
            } else {
                uniform(rng, -1.0, 1.0)
            }
        })
        .collect()
}

/// The error bound for a sum of `k` products computed in f32 in any order: each result is
/// within `γ_k·S` of the exact value, where `S = Σ|a_p·b_p|` (Higham, Accuracy and Stability
/// of Numerical Algorithms, §3.1) and `γ_k ≈ k·ε`. Two such results differ by at most twice
/// that; `extra` roundings (bias add, accumulate) each add `ε·magnitude`. FMA rounds once where
/// mul+add rounds twice, which the bound already covers.
pub fn dot_tolerance(k: usize, abs_sum: f32, extra: usize, magnitude: f32) -> f32 {
    2.0 * (k as f32 + 1.0) * f32::EPSILON * abs_sum
        + 2.0 * extra as f32 * f32::EPSILON * magnitude
        + 1e-35
}

/// Asserts that `got` matches `want` within `tol[i]` element by element; NaN must meet NaN
/// and an infinity the same infinity. Prints the case, the index, both values and the bound.
#[track_caller]
pub fn assert_close(case: &str, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f32) {
    assert_eq!(got.len(), want.len(), "{case}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= tol(i)
        };
        assert!(
            ok,
            "{case}: element {i}: got {g:e}, want {w:e} (|diff| {:e} > tol {:e})",
            (g - w).abs(),
            tol(i)
        );
    }
}

/// Asserts exact equality under `==` (so `-0.0 == 0.0`), NaN meeting NaN.
#[track_caller]
pub fn assert_exact(case: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{case}: element {i}: got {g:e}, want {w:e}"
        );
    }
}
