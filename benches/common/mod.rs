//! What the benches share: the peer every product is compared with.

use constnet::kernels::{Gemm, Mode};

/// `C = op(A)·B` through matrixmultiply's `sgemm`, on a product's own operands.
pub fn sgemm(g: Gemm<'_>) {
    let Gemm {
        m,
        n,
        k,
        a,
        a_transposed,
        b,
        c,
        mode,
    } = g;
    assert_eq!(mode, Mode::Overwrite, "sgemm here overwrites C");
    let (rsa, csa) = if a_transposed {
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
