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
use super::gemm::{AOperand, Epilogue, StoreC, drive};
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
    let epilogue = BiasActivation {
        y,
        bias,
        batch,
        act,
    };
    drive::<V>(out, batch, inp, AOperand::Rows(w), x, epilogue);
}

/// Adds the bias of the row and applies the activation, then stores.
struct BiasActivation<'a> {
    y: &'a mut [f32],
    bias: &'a [f32],
    batch: usize,
    act: Activation,
}

impl<V: Vector> Epilogue<V> for BiasActivation<'_> {
    #[inline(always)]
    fn row(&mut self, o: usize, j0: usize, cols: usize, acc: [V; NV]) {
        let b = V::splat(self.bias[o]);
        let z = [acc[0] + b, acc[1] + b];
        let y_row = match self.act {
            Activation::Identity => z,
            Activation::Relu => [z[0].relu(), z[1].relu()],
        };
        store_row(&mut self.y[o * self.batch + j0..], cols, y_row);
    }
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
    let a = AOperand::Cols(w);
    match grad {
        InputGrad::Linear => {
            let epilogue = StoreC {
                c: dx,
                n: batch,
                mode: Mode::Overwrite,
            };
            drive::<V>(inp, batch, out, a, dz, epilogue);
        }
        InputGrad::Relu { x, scale } => {
            let epilogue = ReluMask {
                dx,
                x,
                batch,
                scale,
            };
            drive::<V>(inp, batch, out, a, dz, epilogue);
        }
    }
}

/// Keeps the gradient where the layer's input was positive, scaled; zero elsewhere.
struct ReluMask<'a> {
    dx: &'a mut [f32],
    x: &'a [f32],
    batch: usize,
    scale: f32,
}

impl<V: Vector> Epilogue<V> for ReluMask<'_> {
    #[inline(always)]
    fn row(&mut self, i: usize, j0: usize, cols: usize, acc: [V; NV]) {
        let at = i * self.batch + j0;
        let (x_row, scale): ([V; NV], V) = (load_row(&self.x[at..], cols), V::splat(self.scale));
        let masked = [
            acc[0].keep_where_positive(x_row[0]) * scale,
            acc[1].keep_where_positive(x_row[1]) * scale,
        ];
        store_row(&mut self.dx[at..], cols, masked);
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
    let epilogue = StoreC {
        c: dw,
        n: inp,
        mode,
    };
    drive::<V>(out, inp, batch, AOperand::Rows(dz), x_rows, epilogue);
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
