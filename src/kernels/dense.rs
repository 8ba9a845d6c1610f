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
use super::gemm::{AOperand, Epilogue, Part, StoreC, drive};
use super::ops::{
    DenseBackwardInput, DenseBackwardWeights, DenseForward, Dims, MAX_SHARDS, Shard,
    WeightGradients,
};
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
    drive::<V>(
        out,
        batch,
        &[Part {
            a: AOperand::Rows(w),
            b: x,
            k: inp,
        }],
        epilogue,
    );
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
    let parts = [Part {
        a: AOperand::Cols(w),
        b: dz,
        k: out,
    }];
    match grad {
        InputGrad::Linear => {
            let epilogue = StoreC {
                c: dx,
                n: batch,
                mode: Mode::Overwrite,
            };
            drive::<V>(inp, batch, &parts, epilogue);
        }
        InputGrad::Relu { x, scale } => {
            let epilogue = ReluMask {
                dx,
                x,
                batch,
                scale,
            };
            drive::<V>(inp, batch, &parts, epilogue);
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

/// `dw (mode)= dz·x_rows`, `db (mode)= row sums of dz` (see [`DenseBackwardWeights`]): the
/// weight gradients of one shard, stored.
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
    let shards = [Shard { dz, x_rows, batch }];
    weight_gradients::<V>(WeightGradients {
        out,
        inp,
        shards: &shards,
        dw,
        db,
        mode,
    });
}

/// Weight and bias gradients summed over shards (see [`WeightGradients`]).
///
/// The bias sums run first: dz is small (OUT×B) and the product reads it right after, so the
/// extra pass costs no memory traffic and leaves dz warm in L1.
#[inline(always)]
pub(crate) fn weight_gradients<V: Vector>(op: WeightGradients<'_>) {
    let WeightGradients {
        out,
        inp,
        shards,
        dw,
        db,
        mode,
    } = op;
    let empty = Part {
        a: AOperand::Rows(&[]),
        b: &[],
        k: 0,
    };
    let mut parts = [empty; MAX_SHARDS];
    for (part, s) in parts.iter_mut().zip(shards) {
        *part = Part {
            a: AOperand::Rows(s.dz),
            b: s.x_rows,
            k: s.batch,
        };
    }
    let parts = &parts[..shards.len()];
    for (o, d) in db.iter_mut().enumerate() {
        let sum = bias_gradient::<V>(shards, o);
        match mode {
            Mode::Overwrite => *d = sum,
            Mode::Accumulate => *d += sum,
        }
    }
    drive::<V>(
        out,
        inp,
        parts,
        StoreC {
            c: dw,
            n: inp,
            mode,
        },
    );
}

/// `Σ_s Σ_batch dz_s[o]`, a vector of lanes at a time in sample order (the same sums as one
/// shard when the shards are multiples of LANES long).
#[inline(always)]
fn bias_gradient<V: Vector>(shards: &[Shard<'_>], o: usize) -> f32 {
    let (mut acc, mut tail) = (V::zero(), 0.0);
    for s in shards {
        let mut chunks = s.dz[o * s.batch..][..s.batch].chunks_exact(V::LANES);
        for v in &mut chunks {
            acc = acc + V::load(v);
        }
        tail += chunks.remainder().iter().sum::<f32>();
    }
    acc.reduce_add() + tail
}
