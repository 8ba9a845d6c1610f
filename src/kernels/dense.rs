//! A dense layer's three products with their elementwise work fused in.
//!
//! Shapes (feature-major activations, see the module contract): w `[OUT][IN]`, bias `[OUT]`,
//! x `[IN][B]`, y and dz `[OUT][B]`, dx `[IN][B]`, x_rows `[B][IN]` (the input, batch-major).
//!
//! ```text
//! forward           y  = act(W·x + bias)          bias and ReLU applied to the tile in registers
//! backward, input   dx = (Wᵀ·dz) ⊙ [x > 0]·scale   mask applied to the tile in registers
//! backward, weights dW (+)= dz·x_rows, db (+)= Σ_b dz
//! ```
#![forbid(unsafe_code)]

use super::Mode;
use super::gemm::{AOperand, drive, store_mode};
use super::ops::{DenseBackwardInput, DenseBackwardWeights, DenseForward, Dims};
use super::simd::Vector;
use super::tile::{NV, load_row, store_row};
use super::{Activation, InputGrad};

/// `y = act(W·x + bias)` (see [`DenseForward`]).
#[inline(always)]
pub(crate) fn forward<V: Vector>(op: DenseForward<'_>) {
    let DenseForward {
        dims,
        w,
        bias,
        x,
        y,
        act,
    } = op;
    let Dims { out, inp, batch } = dims;
    drive::<V>(out, batch, inp, AOperand::Rows(w), x, |o, j0, cols, acc| {
        let b = V::splat(bias[o]);
        let z: [V; NV] = core::array::from_fn(|v| acc[v] + b);
        let y_row = match act {
            Activation::Identity => z,
            Activation::Relu => z.map(V::relu),
        };
        store_row(&mut y[o * batch + j0..], cols, y_row);
    });
}

/// `dx = (Wᵀ·dz)` through the previous activation (see [`DenseBackwardInput`]).
#[inline(always)]
pub(crate) fn backward_input<V: Vector>(op: DenseBackwardInput<'_>) {
    let DenseBackwardInput {
        dims,
        w,
        dz,
        grad,
        dx,
    } = op;
    let Dims { out, inp, batch } = dims;
    match grad {
        InputGrad::Linear => drive::<V>(
            inp,
            batch,
            out,
            AOperand::Cols(w),
            dz,
            |i, j0, cols, acc| {
                store_row(&mut dx[i * batch + j0..], cols, acc);
            },
        ),
        InputGrad::Relu { x, scale } => {
            let scale = V::splat(scale);
            drive::<V>(
                inp,
                batch,
                out,
                AOperand::Cols(w),
                dz,
                |i, j0, cols, acc| {
                    let at = i * batch + j0;
                    let x_row: [V; NV] = load_row(&x[at..], cols);
                    let masked =
                        core::array::from_fn(|v| acc[v].keep_where_positive(x_row[v]) * scale);
                    store_row(&mut dx[at..], cols, masked);
                },
            );
        }
    }
}

/// `dw (mode)= dz·x_rows`, `db (mode)= row sums of dz` (see [`DenseBackwardWeights`]).
///
/// The bias sums run first: dz is small (OUT×B) and the product reads it right after, so the
/// extra pass costs no memory traffic and leaves dz warm in L1.
#[inline(always)]
pub(crate) fn backward_weights<V: Vector>(op: DenseBackwardWeights<'_>) {
    let DenseBackwardWeights {
        dims,
        dz,
        x_rows,
        dw,
        db,
        mode,
    } = op;
    let Dims { out, inp, batch } = dims;
    if batch > 0 {
        for (row, d) in dz.chunks_exact(batch).zip(db.iter_mut()) {
            let sum = row_sum::<V>(row);
            match mode {
                Mode::Overwrite => *d = sum,
                Mode::Accumulate => *d += sum,
            }
        }
    } else if mode == Mode::Overwrite {
        db.fill(0.0);
    }
    drive::<V>(
        out,
        inp,
        batch,
        AOperand::Rows(dz),
        x_rows,
        |o, j0, cols, acc| {
            store_mode(&mut dw[o * inp + j0..], cols, acc, mode);
        },
    );
}

/// Sum of a slice, a vector of lanes at a time.
#[inline(always)]
pub(crate) fn row_sum<V: Vector>(row: &[f32]) -> f32 {
    let mut chunks = row.chunks_exact(V::LANES);
    let mut acc = V::zero();
    for v in &mut chunks {
        acc = acc + V::load(v);
    }
    acc.reduce_add() + chunks.remainder().iter().sum::<f32>()
}
