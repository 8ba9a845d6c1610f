//! The readable reference: every kernel as plain loops in textbook order, with no SIMD.
//!
//! This module is the specification. Each function takes the same kernel struct as the fast
//! kernels ([`super::ops`]), whose contract (layouts, modes, NaN policy, shapes) it follows,
//! and the tests require every path to agree with it. It is slow on purpose; it is also what
//! the [`Reference`](super::Reference) backend runs, so a whole training step can be checked
//! against it. Shapes have been checked by [`Backend::run`](super::Backend::run) before any of
//! these runs.
#![forbid(unsafe_code)]

use super::ops::{
    DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne, Dims, FmaPeak, Gemm,
    Gemv, GradientSink, LoadU8Batch, ParamsAndState, SoftmaxXent, Transpose, Update, WARP_SIDE,
    Warp, WarpField, WeightGradients,
};
use super::softmax::EXP_CUTOFF;
use super::update::{AdamStep, RmsPropStep, Rule, SgdStep};
use super::update::{GRAD_FLUSH, STATE_FLUSH};
use super::{Activation, InputGrad, Mode};

/// `C (mode)= op(A)·B`.
pub fn gemm(g: Gemm<'_>) {
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
    let a_at = |i: usize, p: usize| {
        if a_transposed {
            a[p * m + i]
        } else {
            a[i * k + p]
        }
    };
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a_at(i, p) * b[p * n + j];
            }
            store(&mut c[i * n + j], sum, mode);
        }
    }
}

/// `y = act(W·x + bias)` for a batch.
pub fn dense_forward(op: DenseForward<'_>) {
    let DenseForward {
        dims,
        w,
        bias,
        x,
        y,
        act,
    } = op;
    let Dims { out, inp, batch } = dims;
    gemm(Gemm {
        m: out,
        n: batch,
        k: inp,
        a: w,
        a_transposed: false,
        b: x,
        c: y,
        mode: Mode::Overwrite,
    });
    for o in 0..out {
        for j in 0..batch {
            let z = y[o * batch + j] + bias[o];
            y[o * batch + j] = activate(z, act);
        }
    }
}

/// The gradient with respect to the layer's input, masked by the ReLU that produced it.
pub fn dense_backward_input(op: DenseBackwardInput<'_>) {
    let DenseBackwardInput {
        dims,
        w,
        dz,
        grad,
        dx,
    } = op;
    let Dims { out, inp, batch } = dims;
    gemm(Gemm {
        m: inp,
        n: batch,
        k: out,
        a: w,
        a_transposed: true,
        b: dz,
        c: dx,
        mode: Mode::Overwrite,
    });
    if let InputGrad::Relu { x, scale } = grad {
        for (d, &xv) in dx.iter_mut().zip(x) {
            *d = if xv > 0.0 { *d * scale } else { 0.0 };
        }
    }
}

/// Weight and bias gradients: `dw (+)= dz·x_rows`, `db (+)= row sums of dz`.
pub fn dense_backward_weights(op: DenseBackwardWeights<'_>) {
    let DenseBackwardWeights {
        dims,
        dz,
        x_rows,
        dw,
        db,
        mode,
    } = op;
    let Dims { out, inp, batch } = dims;
    gemm(Gemm {
        m: out,
        n: inp,
        k: batch,
        a: dz,
        a_transposed: false,
        b: x_rows,
        c: dw,
        mode,
    });
    for o in 0..out {
        let mut sum = 0.0;
        for j in 0..batch {
            sum += dz[o * batch + j];
        }
        store(&mut db[o], sum, mode);
    }
}

/// Weight and bias gradients summed over shards in order, stored or applied one element at a
/// time by the optimizer's rule.
pub fn weight_gradients(op: WeightGradients<'_>) -> bool {
    let WeightGradients {
        out,
        inp,
        shards,
        sink,
    } = op;
    let dw = |o: usize, i: usize| {
        let mut sum = 0.0;
        for s in shards {
            for j in 0..s.batch {
                sum += s.dz[o * s.batch + j] * s.x_rows[j * inp + i];
            }
        }
        sum
    };
    let db = |o: usize| {
        let mut sum = 0.0;
        for s in shards {
            for j in 0..s.batch {
                sum += s.dz[o * s.batch + j];
            }
        }
        sum
    };
    match sink {
        GradientSink::Store { dw: w, db: b, mode } => {
            for o in 0..out {
                for i in 0..inp {
                    store(&mut w[o * inp + i], dw(o, i), mode);
                }
                store(&mut b[o], db(o), mode);
            }
            true
        }
        GradientSink::Apply { rule, mut w, mut b } => {
            let mut finite = true;
            for o in 0..out {
                for i in 0..inp {
                    finite &= update_one(rule, &mut w, o * inp + i, dw(o, i));
                }
                finite &= update_one(rule, &mut b, o, db(o));
            }
            finite
        }
    }
}

/// Applies `rule` to element `i` of `p` with gradient `g`.
fn update_one(rule: &Rule, p: &mut ParamsAndState<'_>, i: usize, g: f32) -> bool {
    let at = |s: &mut [f32]| if s.is_empty() { 0..0 } else { i..i + 1 };
    let (r1, r2, r3) = (at(p.first), at(p.second), at(p.third));
    update(Update {
        rule,
        params: &mut p.params[i..i + 1],
        grads: &[g],
        first: &mut p.first[r1],
        second: &mut p.second[r2],
        third: &mut p.third[r3],
    })
}

/// `y (mode)= A·x`.
pub fn gemv(op: Gemv<'_>) {
    let Gemv {
        m,
        k,
        a,
        x,
        y,
        mode,
    } = op;
    for i in 0..m {
        let mut sum = 0.0;
        for p in 0..k {
            sum += a[i * k + p] * x[p];
        }
        store(&mut y[i], sum, mode);
    }
}

/// `y = act(W·x + bias)` for one sample.
pub fn dense_forward_one(op: DenseForwardOne<'_>) {
    let DenseForwardOne {
        out,
        inp,
        w,
        bias,
        x,
        y,
        act,
    } = op;
    gemv(Gemv {
        m: out,
        k: inp,
        a: w,
        x,
        y: &mut *y,
        mode: Mode::Overwrite,
    });
    for (yo, &b) in y.iter_mut().zip(bias) {
        *yo = activate(*yo + b, act);
    }
}

/// `dst = srcᵀ`.
pub fn transpose(op: Transpose<'_>) {
    let Transpose {
        rows,
        cols,
        src,
        dst,
    } = op;
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// Loads u8 images as f32 / 255 into both layouts.
pub fn load_u8_batch<'a, F: Fn(usize) -> &'a [u8]>(op: LoadU8Batch<'a, F>) {
    let LoadU8Batch {
        features,
        batch,
        images,
        rows,
        cols,
    } = op;
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

/// One optimizer update (see [`Rule`]).
pub fn update(op: Update<'_>) -> bool {
    let Update {
        rule,
        params,
        grads,
        first,
        second,
        third,
    } = op;
    match rule {
        Rule::Adam(s) => adam(params, grads, first, second, s),
        Rule::Sgd(s) => sgd(params, grads, first, s),
        Rule::RmsProp(s) => rmsprop(params, grads, [first, second, third], s),
    }
    grads.iter().chain(params.iter()).all(|x| x.is_finite())
}

/// Adam/AdamW (see [`AdamStep`] for the formulas).
fn adam(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    for i in 0..params.len() {
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
}

/// RMSprop (see [`RmsPropStep`] for the formulas). `state` is square_avg, the momentum buffer
/// (read only with momentum) and grad_avg (read only when centered).
fn rmsprop(params: &mut [f32], grads: &[f32], state: [&mut [f32]; 3], s: &RmsPropStep) {
    let [sq, buf, ga] = state;
    for i in 0..params.len() {
        let mut g = flush(grads[i] * s.grad_scale, GRAD_FLUSH);
        if s.weight_decay != 0.0 {
            g += s.weight_decay * params[i];
        }
        sq[i] = flush(s.alpha * sq[i] + (1.0 - s.alpha) * (g * g), STATE_FLUSH);
        let avg = if s.centered {
            ga[i] = flush(s.alpha * ga[i] + (1.0 - s.alpha) * g, STATE_FLUSH);
            let var = sq[i] - ga[i] * ga[i];
            libm::sqrtf(if var < 0.0 { 0.0 } else { var }) + s.eps
        } else {
            libm::sqrtf(sq[i]) + s.eps
        };
        if s.momentum != 0.0 {
            buf[i] = flush(s.momentum * buf[i] + g / avg, STATE_FLUSH);
            params[i] -= s.lr * buf[i];
        } else {
            params[i] -= s.lr * (g / avg);
        }
    }
}

/// SGD (see [`SgdStep`] for the formulas).
fn sgd(params: &mut [f32], grads: &[f32], velocity: &mut [f32], s: &SgdStep) {
    for i in 0..params.len() {
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
}

/// `Σ x²`.
pub fn sum_squares(x: &[f32]) -> f32 {
    let mut sum = 0.0;
    for &v in x {
        sum += v * v;
    }
    sum
}

/// Mean softmax cross-entropy over a batch, and its gradient.
pub fn softmax_xent(op: SoftmaxXent<'_>) -> f32 {
    let SoftmaxXent {
        classes,
        batch,
        logits,
        labels,
        dlogits,
        whole_batch,
    } = op;
    if batch == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for j in 0..batch {
        let label = labels[j] as usize;
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
            dlogits[c * batch + j] = (e(c) / sum - target) / whole_batch as f32;
        }
    }
    total / batch as f32
}

/// The FMA chains of [`FmaPeak`], one float at a time.
pub fn fma_peak(op: FmaPeak) -> f32 {
    let mut acc: [f32; super::peak::CHAINS] = core::array::from_fn(|c| c as f32);
    for _ in 0..op.iters {
        for c in &mut acc {
            *c = *c * op.m + op.a;
        }
    }
    acc.iter().sum()
}

/// Warps an image pixel by pixel (see [`Warp`]): the pixel's source point (the affine map,
/// then the field, itself mapped by the affine matrix), then the bilinear blend of the four
/// source pixels around it.
pub fn warp(op: Warp<'_>) {
    let Warp {
        rows,
        cols,
        src,
        dst,
        inverse: [a, b, c, d],
        shift: [tx, ty],
        field,
        scratch: _,
    } = op;
    let (cx, cy) = ((cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5);
    let px = -cx - tx;
    for y in 0..rows {
        let py = y as f32 - cy - ty;
        let (kx, ky) = (a * px + b * py + (cx + 1.0), c * px + d * py + (cy + 1.0));
        for x in 0..cols {
            let (mut sx, mut sy) = (a * x as f32 + kx, c * x as f32 + ky);
            if let Some(f) = &field {
                for i in 0..f.ky {
                    let (gx, gy) = (grid_at(f, 0, i, x), grid_at(f, 1, i, x));
                    let w = f.wy[i * WARP_SIDE + y];
                    sx += w * (a * gx + b * gy);
                    sy += w * (c * gx + d * gy);
                }
            }
            dst[y * cols + x] = bilinear(src, rows, cols, sx, sy);
        }
    }
}

/// Axis `axis` (0: x, 1: y) of the field's grid row `i` at image column x:
/// `Σ_j noise[i][j]·wx[j][x]`.
fn grid_at(f: &WarpField<'_>, axis: usize, i: usize, x: usize) -> f32 {
    let noise = &f.noise[axis * f.ky * f.kx..][..f.ky * f.kx];
    let mut sum = 0.0;
    for j in 0..f.kx {
        sum += noise[i * f.kx + j] * f.wx[j * WARP_SIDE + x];
    }
    sum
}

/// The image at source point `(sx, sy)` plus one, blended from the four nearest pixels (0
/// outside the image) and rounded half up (`floor(v + 0.5)`); 0 if the point is a pixel or
/// more outside, or NaN.
fn bilinear(src: &[u8], rows: usize, cols: usize, sx: f32, sy: f32) -> u8 {
    if !(sx > 0.0 && sy > 0.0 && sx < cols as f32 + 1.0 && sy < rows as f32 + 1.0) {
        return 0;
    }
    let (x0, y0) = (libm::floorf(sx), libm::floorf(sy));
    let (fx, fy) = (sx - x0, sy - y0);
    // Pixel (x0 + dx − 1, y0 + dy − 1) of the image.
    let at = |dx: usize, dy: usize| -> f32 {
        let (x, y) = (x0 as usize + dx, y0 as usize + dy);
        if (1..=cols).contains(&x) && (1..=rows).contains(&y) {
            f32::from(src[(y - 1) * cols + x - 1])
        } else {
            0.0
        }
    };
    let top = at(0, 0) + fx * (at(1, 0) - at(0, 0));
    let bottom = at(0, 1) + fx * (at(1, 1) - at(0, 1));
    let v = top + fy * (bottom - top);
    libm::floorf(v + 0.5) as u8
}
