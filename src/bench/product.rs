//! The products of one training step of the reference network, each with its operands, ready
//! to time: shared by `constnet bench` and the criterion and `versus` benches, so all three
//! measure the same calls on the same data.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::AlignedVec;
use crate::kernels::{
    Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne,
    Dims, Gemm, InputGrad, Mode,
};
use std::hint::black_box;

/// The reference network's widths.
pub const WIDTHS: [usize; 5] = [784, 256, 128, 64, 10];

/// Which product of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Y = relu(W·X + b)` over a batch.
    Forward,
    /// `dW = dZ·Xᵀ` (and `db`) over a batch.
    WeightGrad,
    /// `dX = (Wᵀ·dZ) ⊙ [X > 0]` over a batch.
    InputGrad,
    /// `y = relu(W·x + b)` for one sample.
    Gemv,
}

/// One product of layer `layer` of the reference network, with its operands on cache lines
/// (as in a network; see [`AlignedVec`]).
pub struct Product {
    /// Which product.
    pub kind: Kind,
    /// The layer's input width.
    pub inp: usize,
    /// The layer's output width.
    pub out: usize,
    /// Samples (1 for [`Kind::Gemv`]).
    pub batch: usize,
    act: Activation,
    /// W `[out][inp]` (forward, GEMV, input gradient) or dZ `[out][batch]` (weight gradient).
    a: AlignedVec,
    /// X `[inp][batch]` (forward, GEMV), dZ (input gradient) or X as rows `[batch][inp]`
    /// (weight gradient).
    b: AlignedVec,
    /// The bias (forward, GEMV) or X, whose ReLU mask the input gradient applies.
    extra: AlignedVec,
    /// The result: Y, dX or dW.
    c: AlignedVec,
    /// db (weight gradient only).
    db: AlignedVec,
}

/// `n` deterministic floats in [-0.5, 0.5): values do not change the speed, they need only be
/// finite and varied.
fn filled(n: usize, salt: u32) -> AlignedVec {
    let values: Vec<f32> = (0..n as u32)
        .map(|i| {
            (i.wrapping_mul(2654435761).wrapping_add(salt) >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect();
    AlignedVec::from_slice(&values)
}

impl Product {
    /// Product `kind` of layer `layer` (0..4) at `batch` samples (ignored for GEMV).
    pub fn new(kind: Kind, layer: usize, batch: usize) -> Self {
        let (inp, out) = (WIDTHS[layer], WIDTHS[layer + 1]);
        let batch = if kind == Kind::Gemv { 1 } else { batch };
        let act = if layer + 2 < WIDTHS.len() {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let (a, b, extra, c) = match kind {
            Kind::Forward | Kind::Gemv => (out * inp, inp * batch, out, out * batch),
            Kind::WeightGrad => (out * batch, batch * inp, 0, out * inp),
            Kind::InputGrad => (out * inp, out * batch, inp * batch, inp * batch),
        };
        Self {
            kind,
            inp,
            out,
            batch,
            act,
            a: filled(a, 1),
            b: filled(b, 2),
            extra: filled(extra, 3),
            c: AlignedVec::zeroed(c),
            db: AlignedVec::zeroed(if kind == Kind::WeightGrad { out } else { 0 }),
        }
    }

    /// Every product of one training step at `batch` (the first layer's input gradient is
    /// never computed), then the single-sample GEMVs.
    pub fn all(batch: usize) -> Vec<Self> {
        let layers = 0..WIDTHS.len() - 1;
        let mut all = Vec::new();
        for kind in [Kind::Forward, Kind::WeightGrad, Kind::InputGrad, Kind::Gemv] {
            for l in layers.clone() {
                if !(kind == Kind::InputGrad && l == 0) {
                    all.push(Self::new(kind, l, batch));
                }
            }
        }
        all
    }

    /// `forward/784x256/b64` and so on.
    pub fn name(&self) -> String {
        let kind = match self.kind {
            Kind::Forward => "forward",
            Kind::WeightGrad => "weight_grad",
            Kind::InputGrad => "input_grad",
            Kind::Gemv => "gemv",
        };
        format!("{kind}/{}x{}/b{}", self.inp, self.out, self.batch)
    }

    /// Floating-point operations per call.
    pub fn flops(&self) -> f64 {
        (2 * self.out * self.inp * self.batch) as f64
    }

    /// One call of the product through backend `K`.
    pub fn run<K: Backend>(&mut self) {
        let (out, inp, batch) = (self.out, self.inp, self.batch);
        let dims = Dims { out, inp, batch };
        let (a, b) = (black_box(&*self.a), black_box(&*self.b));
        let (act, extra, c) = (self.act, &self.extra[..], &mut self.c[..]);
        match self.kind {
            Kind::Forward => K::run(DenseForward {
                dims,
                w: a,
                bias: extra,
                x: b,
                y: c,
                act,
            }),
            Kind::Gemv => K::run(DenseForwardOne {
                out,
                inp,
                w: a,
                bias: extra,
                x: b,
                y: c,
                act,
            }),
            Kind::WeightGrad => {
                let (dz, x_rows, db) = (a, b, &mut self.db[..]);
                let mode = Mode::Overwrite;
                K::run(DenseBackwardWeights {
                    dims,
                    dz,
                    x_rows,
                    dw: c,
                    db,
                    mode,
                })
            }
            Kind::InputGrad => {
                let grad = InputGrad::Relu {
                    x: extra,
                    scale: 1.0,
                };
                K::run(DenseBackwardInput {
                    dims,
                    w: a,
                    dz: b,
                    grad,
                    dx: c,
                })
            }
        }
    }

    /// The plain product behind this one, on the same operands (C overwritten): for timing
    /// other libraries' GEMM on them.
    pub fn gemm(&mut self) -> Gemm<'_> {
        let (out, inp, batch) = (self.out, self.inp, self.batch);
        let (m, n, k, a_transposed) = match self.kind {
            Kind::Forward | Kind::Gemv => (out, batch, inp, false),
            Kind::WeightGrad => (out, inp, batch, false),
            Kind::InputGrad => (inp, batch, out, true),
        };
        Gemm {
            m,
            n,
            k,
            a: black_box(&self.a),
            a_transposed,
            b: black_box(&self.b),
            c: &mut self.c,
            mode: Mode::Overwrite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Simd;

    #[test]
    fn every_product_runs_and_its_gemm_has_its_flops() {
        let all = Product::all(64);
        assert_eq!(all.len(), 4 + 4 + 3 + 4);
        for mut p in all {
            p.run::<Simd>();
            let flops = p.flops();
            let g = p.gemm();
            assert_eq!(2.0 * (g.m * g.n * g.k) as f64, flops);
            assert_eq!(
                (g.a.len(), g.b.len(), g.c.len()),
                (g.m * g.k, g.k * g.n, g.m * g.n)
            );
        }
    }
}
