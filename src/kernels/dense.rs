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
    DenseBackwardInput, DenseBackwardWeights, DenseForward, Dims, GradientSink, MAX_SHARDS,
    ParamsAndState, Shard, WeightGradients,
};
use super::simd::Vector;
use super::tile::{NV, load_row, store_row};
use super::update::{
    AdamLanes, Lanes, RmsPropLanes, Rule, STATES, SgdLanes, for_each_chunk, used_state,
};
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
    let sink = GradientSink::Store { dw, db, mode };
    weight_gradients::<V>(WeightGradients {
        out,
        inp,
        shards: &shards,
        sink,
    });
}

/// Weight and bias gradients summed over shards, stored or applied (see
/// [`WeightGradients`]).
///
/// The bias sums run first: dz is small (OUT×B) and the product reads it right after, so the
/// extra pass costs no memory traffic and leaves dz warm in L1.
#[inline(always)]
pub(crate) fn weight_gradients<V: Vector>(op: WeightGradients<'_>) -> bool {
    let WeightGradients {
        out,
        inp,
        shards,
        sink,
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
    match sink {
        GradientSink::Store { dw, db, mode } => {
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
            true
        }
        GradientSink::Apply { rule, w, b } => {
            let (w, b) = (used_state(rule, w), used_state(rule, b));
            match rule {
                Rule::Adam(s) => {
                    let lanes = AdamLanes::<V>::new(s);
                    apply_bias::<V>(shards, b, &lanes)
                        & apply_weights::<V>(out, inp, parts, w, lanes)
                }
                Rule::Sgd(s) => {
                    let lanes = SgdLanes::<V>::new(s);
                    apply_bias::<V>(shards, b, &lanes)
                        & apply_weights::<V>(out, inp, parts, w, lanes)
                }
                Rule::RmsProp(s) => {
                    let lanes = RmsPropLanes::<V>::new(s);
                    apply_bias::<V>(shards, b, &lanes)
                        & apply_weights::<V>(out, inp, parts, w, lanes)
                }
            }
        }
    }
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

/// Rows of biases updated per pass (their gradients on the stack).
const BIAS_CHUNK: usize = 64;

/// The bias gradients, applied with `lanes` a chunk at a time.
#[inline(always)]
fn apply_bias<V: Vector>(
    shards: &[Shard<'_>],
    b: ParamsAndState<'_>,
    lanes: &impl Lanes<V>,
) -> bool {
    let ParamsAndState {
        params,
        first,
        second,
        third,
    } = b;
    let mut finite = true;
    for o0 in (0..params.len()).step_by(BIAS_CHUNK) {
        let rows = o0..params.len().min(o0 + BIAS_CHUNK);
        let mut db = [0.0; BIAS_CHUNK];
        for (d, o) in db.iter_mut().zip(rows.clone()) {
            *d = bias_gradient::<V>(shards, o);
        }
        let part = |s: &mut [f32]| if s.is_empty() { 0..0 } else { rows.clone() };
        let (r1, r2, r3) = (part(first), part(second), part(third));
        finite &= for_each_chunk(
            &mut params[rows.clone()],
            &db[..rows.len()],
            [&mut first[r1], &mut second[r2], &mut third[r3]],
            Borrowed(lanes),
        );
    }
    finite
}

/// The weight-gradient product with the update in its epilogue.
#[inline(always)]
fn apply_weights<V: Vector>(
    out: usize,
    inp: usize,
    parts: &[Part<'_>],
    w: ParamsAndState<'_>,
    lanes: impl Lanes<V>,
) -> bool {
    let ParamsAndState {
        params,
        first,
        second,
        third,
    } = w;
    let mut epilogue = Apply {
        lanes,
        params,
        state: [first, second, third],
        n: inp,
        probe: V::zero(),
    };
    drive::<V>(out, inp, parts, &mut epilogue);
    epilogue.probe.reduce_add() == 0.0
}

/// A reference to lanes, as lanes.
struct Borrowed<'l, L>(&'l L);

impl<V: Vector, L: Lanes<V>> Lanes<V> for Borrowed<'_, L> {
    #[inline(always)]
    fn apply(&self, p: V, g: V, s: [V; STATES]) -> (V, [V; STATES]) {
        self.0.apply(p, g, s)
    }
}

/// A tile row of an optimizer state tensor, or zeros where the optimizer keeps none.
#[inline(always)]
fn state_row<V: Vector>(s: &[f32], at: usize, cols: usize) -> [V; NV] {
    if s.is_empty() {
        [V::zero(); NV]
    } else {
        load_row(&s[at..], cols)
    }
}

/// Applies an optimizer's lanes to each tile row of the weight gradient: the parameters and
/// their state are read and written once, the gradient never leaves the registers.
struct Apply<'a, L, V> {
    lanes: L,
    params: &'a mut [f32],
    state: [&'a mut [f32]; STATES],
    n: usize,
    /// `x·0` summed over gradients and updated parameters: NaN once one was not finite.
    probe: V,
}

impl<V: Vector, L: Lanes<V>> Epilogue<V> for &mut Apply<'_, L, V> {
    #[inline(always)]
    fn row(&mut self, i: usize, j0: usize, cols: usize, g: [V; NV]) {
        let at = i * self.n + j0;
        let p: [V; NV] = load_row(&self.params[at..], cols);
        let (s1, s2, s3) = (
            state_row::<V>(self.state[0], at, cols),
            state_row::<V>(self.state[1], at, cols),
            state_row::<V>(self.state[2], at, cols),
        );
        let (p0, a0) = self.lanes.apply(p[0], g[0], [s1[0], s2[0], s3[0]]);
        let (p1, a1) = self.lanes.apply(p[1], g[1], [s1[1], s2[1], s3[1]]);
        // Gradients and updated parameters must be finite: a step that overflows a parameter
        // fails like one with a non-finite gradient.
        self.probe = self.probe + (g[0] + g[1] + p0 + p1) * V::zero();
        store_row(&mut self.params[at..], cols, [p0, p1]);
        // Unrolled, not a loop over the state: NV = 2 tiles, three tensors at most.
        if !self.state[0].is_empty() {
            store_row(&mut self.state[0][at..], cols, [a0[0], a1[0]]);
        }
        if !self.state[1].is_empty() {
            store_row(&mut self.state[1][at..], cols, [a0[1], a1[1]]);
        }
        if !self.state[2].is_empty() {
            store_row(&mut self.state[2][at..], cols, [a0[2], a1[2]]);
        }
    }
}
