//! The readable reference: every kernel as plain loops in textbook order, with no SIMD.
//!
//! This module is the specification. Each function has the same name, signature and contract
//! as its fast twin in [`crate::kernels`] (layouts, modes, NaN policy, shape checks), and the
//! tests require the two to agree. It is slow on purpose; it is also what the `Reference`
//! backend of a network runs, so a whole training step can be checked against it.
#![forbid(unsafe_code)]

use super::softmax::EXP_CUTOFF;
use super::update::{GRAD_FLUSH, STATE_FLUSH};
use super::{Activation, AdamStep, InputGrad, Mode, SgdStep, check_len};

/// `C = A·B` or `C += A·B`. a `[m][k]`, b `[k][n]`, c `[m][n]`.
pub fn gemm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], mode: Mode) {
    check_len("gemm_nn", "a", a.len(), m, k);
    check_len("gemm_nn", "b", b.len(), k, n);
    check_len("gemm_nn", "c", c.len(), m, n);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a[i * k + p] * b[p * n + j];
            }
            store(&mut c[i * n + j], sum, mode);
        }
    }
}

/// `C = Aᵀ·B` or `C += Aᵀ·B`. a `[k][m]`, b `[k][n]`, c `[m][n]`.
pub fn gemm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], mode: Mode) {
    check_len("gemm_tn", "a", a.len(), k, m);
    check_len("gemm_tn", "b", b.len(), k, n);
    check_len("gemm_tn", "c", c.len(), m, n);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a[p * m + i] * b[p * n + j];
            }
            store(&mut c[i * n + j], sum, mode);
        }
    }
}

/// `y = act(W·x + bias)` for a batch. w `[out][inp]`, bias `[out]`, x `[inp][batch]`,
/// y `[out][batch]`; y is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    out: usize,
    inp: usize,
    batch: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Activation,
) {
    check_len("dense_forward", "bias", bias.len(), out, 1);
    gemm_nn(out, batch, inp, w, x, y, Mode::Overwrite);
    for o in 0..out {
        for j in 0..batch {
            let z = y[o * batch + j] + bias[o];
            y[o * batch + j] = activate(z, act);
        }
    }
}

/// The gradient with respect to the layer's input, masked by the ReLU that produced it.
/// w `[out][inp]`, dz `[out][batch]`, dx `[inp][batch]`; dx is overwritten.
pub fn dense_backward_input(
    out: usize,
    inp: usize,
    batch: usize,
    w: &[f32],
    dz: &[f32],
    grad: InputGrad<'_>,
    dx: &mut [f32],
) {
    gemm_tn(inp, batch, out, w, dz, dx, Mode::Overwrite);
    if let InputGrad::Relu { x, scale } = grad {
        check_len("dense_backward_input", "x", x.len(), inp, batch);
        for (d, &xv) in dx.iter_mut().zip(x) {
            *d = if xv > 0.0 { *d * scale } else { 0.0 };
        }
    }
}

/// Weight and bias gradients: `dw (+)= dz·x_rows`, `db (+)= row sums of dz`.
/// dz `[out][batch]`, x_rows `[batch][inp]` (the layer's input, batch-major), dw `[out][inp]`,
/// db `[out]`.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_weights(
    out: usize,
    inp: usize,
    batch: usize,
    dz: &[f32],
    x_rows: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    mode: Mode,
) {
    check_len("dense_backward_weights", "db", db.len(), out, 1);
    gemm_nn(out, inp, batch, dz, x_rows, dw, mode);
    for o in 0..out {
        let mut sum = 0.0;
        for j in 0..batch {
            sum += dz[o * batch + j];
        }
        store(&mut db[o], sum, mode);
    }
}

/// `y = A·x` or `y += A·x`. a `[m][k]`, x `[k]`, y `[m]`.
pub fn gemv(m: usize, k: usize, a: &[f32], x: &[f32], y: &mut [f32], mode: Mode) {
    check_len("gemv", "a", a.len(), m, k);
    check_len("gemv", "x", x.len(), k, 1);
    check_len("gemv", "y", y.len(), m, 1);
    for i in 0..m {
        let mut sum = 0.0;
        for p in 0..k {
            sum += a[i * k + p] * x[p];
        }
        store(&mut y[i], sum, mode);
    }
}

/// `y = act(W·x + bias)` for one sample. w `[out][inp]`, bias `[out]`, x `[inp]`, y `[out]`;
/// y is overwritten.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward_one(
    out: usize,
    inp: usize,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    act: Activation,
) {
    check_len("dense_forward_one", "bias", bias.len(), out, 1);
    gemv(out, inp, w, x, y, Mode::Overwrite);
    for (yo, &b) in y.iter_mut().zip(bias) {
        *yo = activate(*yo + b, act);
    }
}

/// `dst = srcᵀ`. src `[rows][cols]`, dst `[cols][rows]`.
pub fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
    check_len("transpose", "src", src.len(), rows, cols);
    check_len("transpose", "dst", dst.len(), cols, rows);
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// Loads `batch` images of `features` u8 pixels each (`images(j)` is image j) as f32 divided
/// by 255, into rows `[batch][features]` and cols `[features][batch]`.
pub fn load_u8_batch<'a>(
    features: usize,
    batch: usize,
    images: impl Fn(usize) -> &'a [u8],
    rows: &mut [f32],
    cols: &mut [f32],
) {
    check_len("load_u8_batch", "rows", rows.len(), batch, features);
    check_len("load_u8_batch", "cols", cols.len(), features, batch);
    for j in 0..batch {
        let image = images(j);
        for p in 0..features {
            let x = f32::from(image[p]) / 255.0;
            rows[j * features + p] = x;
            cols[p * batch + j] = x;
        }
    }
}

/// ReLU written so NaN propagates and `relu(-0.0)` is `-0.0`, exactly like `maxps(0, z)`.
pub(crate) fn activate(z: f32, act: Activation) -> f32 {
    match act {
        Activation::Identity => z,
        Activation::Relu => {
            if 0.0 > z {
                0.0
            } else {
                z
            }
        }
    }
}

/// `x`, or 0 where `|x| < limit`; NaN passes through.
fn flush(x: f32, limit: f32) -> f32 {
    if x.abs() < limit { 0.0 } else { x }
}

fn store(c: &mut f32, value: f32, mode: Mode) {
    match mode {
        Mode::Overwrite => *c = value,
        Mode::Accumulate => *c += value,
    }
}

/// Adam/AdamW update (see [`AdamStep`] for the formulas). params, grads, m, v all hold the
/// same number of floats. Returns whether every gradient was finite.
pub fn adam_update(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &AdamStep,
) -> bool {
    let n = params.len();
    check_len("adam_update", "grads", grads.len(), n, 1);
    check_len("adam_update", "m", m.len(), n, 1);
    check_len("adam_update", "v", v.len(), n, 1);
    for i in 0..n {
        let mut g = flush(grads[i] * s.grad_scale, GRAD_FLUSH);
        if s.weight_decay != 0.0 {
            if s.decoupled {
                params[i] *= 1.0 - s.lr * s.weight_decay;
            } else {
                g += s.weight_decay * params[i];
            }
        }
        m[i] = flush(s.beta1 * m[i] + (1.0 - s.beta1) * g, STATE_FLUSH);
        v[i] = flush(s.beta2 * v[i] + (1.0 - s.beta2) * (g * g), STATE_FLUSH);
        let denom = libm::sqrtf(v[i]) / s.bias_correction2_sqrt + s.eps;
        params[i] -= s.step_size * (m[i] / denom);
    }
    grads.iter().all(|g| g.is_finite())
}

/// SGD update (see [`SgdStep`] for the formulas). velocity may be empty when momentum is 0.
/// Returns whether every gradient was finite.
pub fn sgd_update(params: &mut [f32], grads: &[f32], velocity: &mut [f32], s: &SgdStep) -> bool {
    let n = params.len();
    check_len("sgd_update", "grads", grads.len(), n, 1);
    if s.momentum != 0.0 {
        check_len("sgd_update", "velocity", velocity.len(), n, 1);
    }
    for i in 0..n {
        let mut g = flush(grads[i] * s.grad_scale, GRAD_FLUSH);
        if s.weight_decay != 0.0 {
            g += s.weight_decay * params[i];
        }
        if s.momentum != 0.0 {
            velocity[i] = flush(
                if s.first {
                    g
                } else {
                    s.momentum * velocity[i] + g
                },
                STATE_FLUSH,
            );
            g = if s.nesterov {
                g + s.momentum * velocity[i]
            } else {
                velocity[i]
            };
        }
        params[i] -= s.lr * g;
    }
    grads.iter().all(|g| g.is_finite())
}

/// `Σ x²` over a slice.
pub fn sum_squares(x: &[f32]) -> f32 {
    let mut sum = 0.0;
    for &v in x {
        sum += v * v;
    }
    sum
}

/// Mean softmax cross-entropy over a batch; writes its gradient.
/// logits `[classes][batch]`, labels `[batch]` (each `< classes`), dlogits `[classes][batch]`,
/// overwritten with `(softmax − one_hot)/batch`. Returns the mean loss (0 for an empty batch).
pub fn softmax_xent(
    classes: usize,
    batch: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> f32 {
    check_len("softmax_xent", "logits", logits.len(), classes, batch);
    check_len("softmax_xent", "labels", labels.len(), batch, 1);
    check_len("softmax_xent", "dlogits", dlogits.len(), classes, batch);
    if batch == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for j in 0..batch {
        let label = labels[j] as usize;
        assert!(
            label < classes,
            "softmax_xent: label {label} of sample {j} is not below {classes}"
        );
        let z = |c: usize| logits[c * batch + j];
        let mut max = z(0);
        for c in 1..classes {
            if z(c) > max {
                max = z(c);
            }
        }
        let e = |c: usize| {
            let d = z(c) - max;
            if d < EXP_CUTOFF { 0.0 } else { libm::expf(d) }
        };
        let mut sum = 0.0;
        for c in 0..classes {
            sum += e(c);
        }
        total += max + libm::logf(sum) - z(label);
        for c in 0..classes {
            let target = if c == label { 1.0 } else { 0.0 };
            dlogits[c * batch + j] = (e(c) / sum - target) / batch as f32;
        }
    }
    total / batch as f32
}
