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

use super::gemm::{AOperand, drive, store_mode};
use super::tile::{NV, load, load_row, store_row};
use super::{Activation, InputGrad, LANES, Mode, V, check_len};

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
    check_len("dense_forward", "w", w.len(), out, inp);
    check_len("dense_forward", "bias", bias.len(), out, 1);
    check_len("dense_forward", "x", x.len(), inp, batch);
    check_len("dense_forward", "y", y.len(), out, batch);
    drive(out, batch, inp, AOperand::Rows(w), x, |o, j0, cols, acc| {
        let b = V::splat(bias[o]);
        let z: [V; NV] = core::array::from_fn(|v| acc[v] + b);
        let y_row = match act {
            Activation::Identity => z,
            // maxps(0, z) returns z when z is NaN: NaN propagates.
            Activation::Relu => z.map(|z| V::ZERO.fast_max(z)),
        };
        store_row(&mut y[o * batch + j0..], cols, y_row);
    });
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
    check_len("dense_backward_input", "w", w.len(), out, inp);
    check_len("dense_backward_input", "dz", dz.len(), out, batch);
    check_len("dense_backward_input", "dx", dx.len(), inp, batch);
    match grad {
        InputGrad::Linear => drive(
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
            check_len("dense_backward_input", "x", x.len(), inp, batch);
            let scale = V::splat(scale);
            drive(
                inp,
                batch,
                out,
                AOperand::Cols(w),
                dz,
                |i, j0, cols, acc| {
                    let at = i * batch + j0;
                    let x_row = load_row(&x[at..], cols);
                    let masked =
                        core::array::from_fn(|v| (acc[v] & x_row[v].simd_gt(V::ZERO)) * scale);
                    store_row(&mut dx[at..], cols, masked);
                },
            );
        }
    }
}

/// Weight and bias gradients: `dw (+)= dz·x_rows`, `db (+)= row sums of dz`.
/// dz `[out][batch]`, x_rows `[batch][inp]` (the layer's input, batch-major), dw `[out][inp]`,
/// db `[out]`.
///
/// The bias sums run first: dz is small (OUT×B) and the product reads it right after, so the
/// extra pass costs no memory traffic and leaves dz warm in L1.
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
    check_len("dense_backward_weights", "dz", dz.len(), out, batch);
    check_len("dense_backward_weights", "x_rows", x_rows.len(), batch, inp);
    check_len("dense_backward_weights", "dw", dw.len(), out, inp);
    check_len("dense_backward_weights", "db", db.len(), out, 1);
    if batch > 0 {
        for (row, d) in dz.chunks_exact(batch).zip(db.iter_mut()) {
            let sum = row_sum(row);
            match mode {
                Mode::Overwrite => *d = sum,
                Mode::Accumulate => *d += sum,
            }
        }
    } else if mode == Mode::Overwrite {
        db.fill(0.0);
    }
    drive(
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

/// Sum of a slice, eight lanes at a time.
pub(crate) fn row_sum(row: &[f32]) -> f32 {
    let (vectors, tail) = row.as_chunks::<LANES>();
    let mut acc = V::ZERO;
    for v in vectors {
        acc += load(v);
    }
    acc.reduce_add() + tail.iter().sum::<f32>()
}
