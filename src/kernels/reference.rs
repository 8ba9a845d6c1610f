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
    Gemv, LoadU8Batch, SoftmaxXent, Transpose, Update, WARP_SIDE, Warp, WarpField, WeightGradients,
};
use super::softmax::EXP_CUTOFF;
use super::update::UpdateRule;
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

/// Weight and bias gradients summed over shards in order.
pub fn weight_gradients(op: WeightGradients<'_>) {
    let WeightGradients {
        out,
        inp,
        shards,
        dw,
        db,
        mode,
    } = op;
    let dw_at = |o: usize, i: usize| {
        let mut sum = 0.0;
        for s in shards {
            for j in 0..s.batch {
                sum += s.dz[o * s.batch + j] * s.x_rows[j * inp + i];
            }
        }
        sum
    };
    let db_at = |o: usize| {
        let mut sum = 0.0;
        for s in shards {
            for j in 0..s.batch {
                sum += s.dz[o * s.batch + j];
            }
        }
        sum
    };
    for o in 0..out {
        for i in 0..inp {
            store(&mut dw[o * inp + i], dw_at(o, i), mode);
        }
        store(&mut db[o], db_at(o), mode);
    }
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

fn store(c: &mut f32, value: f32, mode: Mode) {
    match mode {
        Mode::Overwrite => *c = value,
        Mode::Accumulate => *c += value,
    }
}

/// One optimizer update (see [`Update`]): the rule's own reference, then the finiteness check.
pub fn update<R: UpdateRule>(op: Update<'_, R>) -> bool {
    let Update {
        rule,
        params,
        grads,
        first,
        second,
        third,
    } = op;
    rule.reference(params, grads, [first, second, third]);
    grads.iter().chain(params.iter()).all(|x| x.is_finite())
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
