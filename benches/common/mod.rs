//! What the benches share: operands on cache lines, as the library lays out its own
//! ([`AlignedVec`]), and the peer they are compared with.

use constnet::AlignedVec;

/// `n` deterministic floats in [-1, 1): values do not affect speed, they need only be finite.
pub fn filled(n: usize, seed: u32) -> AlignedVec {
    let values: Vec<f32> = (0..n as u32)
        .map(|i| {
            ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32) * 2.0
                - 1.0
        })
        .collect();
    AlignedVec::from_slice(&values)
}

/// `C = op(A)·B` through matrixmultiply, with A given as `[m][k]` (`a_t == false`) or `[k][m]`.
pub fn sgemm(m: usize, n: usize, k: usize, a: &[f32], a_t: bool, b: &[f32], c: &mut [f32]) {
    let (rsa, csa) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    // SAFETY: the asserted lengths cover every index matrixmultiply forms from these strides.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
