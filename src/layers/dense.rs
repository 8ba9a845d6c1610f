//! `Dense<IN, OUT>`: a fully connected layer, `y = act(W·x + b)`.
//!
//! Layout: `w` is `[OUT][IN]` row-major, the order of PyTorch's `nn.Linear.weight`, so model
//! files map one to one; `b` is `[OUT]`. Activations are feature-major: x `[IN][batch]`, y and dz
//! `[OUT][batch]`.
//!
//! The parameters live in a network's flat block ([`crate::params`]); the passes run on
//! [`DenseRef`], a borrowed view of them, so the same code runs on a network's block, on
//! parameters in a memory-mapped file or on a `static` blob in flash. Gradients are written
//! through [`DenseMut`], a view into the gradients' block.
#![forbid(unsafe_code)]

use super::{Init, normal, uniform};
use crate::aligned::{Aligned, Flat};
use crate::kernels::{
    Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne,
    Dims, InputGrad, Mode, Transpose,
};
use rand_xoshiro::rand_core::Rng;

/// A fully connected layer from `IN` to `OUT` features: what `network!` declares. Its
/// parameters are two tensors of a network's block, `weight [OUT, IN]` and `bias [OUT]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dense<const IN: usize, const OUT: usize>;

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    /// Input features.
    pub const IN: usize = IN;
    /// Output features.
    pub const OUT: usize = OUT;
}

/// A borrowed view of a dense layer's parameters, wherever they live.
#[derive(Clone, Copy, Debug)]
pub struct DenseRef<'a, const IN: usize, const OUT: usize> {
    /// Weights, `[OUT][IN]`.
    pub w: &'a [[f32; IN]; OUT],
    /// Bias, `[OUT]`.
    pub b: &'a [f32; OUT],
}

/// A mutable view of a dense layer's parameters (or gradients), inside a block.
#[derive(Debug)]
pub struct DenseMut<'a, const IN: usize, const OUT: usize> {
    /// Weights, `[OUT][IN]`.
    pub w: &'a mut [[f32; IN]; OUT],
    /// Bias, `[OUT]`.
    pub b: &'a mut [f32; OUT],
}

impl<'a, const IN: usize, const OUT: usize> DenseRef<'a, IN, OUT> {
    /// A view over flat slices (`w` of `OUT·IN` floats, `b` of `OUT`), or `None` if a length is
    /// wrong.
    pub fn from_slices(w: &'a [f32], b: &'a [f32]) -> Option<Self> {
        let (rows, rest) = w.as_chunks::<IN>();
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            w: rows.try_into().ok()?,
            b: b.try_into().ok()?,
        })
    }

    /// `y = act(W·x + b)` for a batch. x `[IN][batch]`, y `[OUT][batch]`, overwritten.
    pub fn forward<K: Backend>(self, x: &[f32], y: &mut [f32], batch: usize, act: Activation) {
        let (w, bias) = (self.w.as_flattened(), &self.b[..]);
        let dims = Dims {
            out: OUT,
            inp: IN,
            batch,
        };
        K::run(DenseForward {
            dims,
            w,
            bias,
            x,
            y,
            act,
        });
    }

    /// Gradients of this layer, given `dz = ∂L/∂z` at its pre-activation `z = W·x + b`.
    /// x_rows `[batch][IN]` (the input, batch-major), dz `[OUT][batch]`.
    ///
    /// `grads.w (mode)= dz·x_rows` and `grads.b (mode)= Σ_batch dz`; with `dx = Some((dx, how))`
    /// also `dx = (Wᵀ·dz)` passed back through the previous layer's activation as `how` says,
    /// that is the previous layer's `dz`. The first layer passes `None`: its input gradient is
    /// never needed, which saves the largest backward product.
    pub fn backward<K: Backend>(
        self,
        x_rows: &[f32],
        dz: &[f32],
        grads: DenseMut<'_, IN, OUT>,
        dx: Option<(&mut [f32], InputGrad<'_>)>,
        batch: usize,
        mode: Mode,
    ) {
        let dims = Dims {
            out: OUT,
            inp: IN,
            batch,
        };
        if let Some((dx, grad)) = dx {
            let w = self.w.as_flattened();
            K::run(DenseBackwardInput {
                dims,
                w,
                dz,
                grad,
                dx,
            });
        }
        let (dw, db) = (grads.w.as_flattened_mut(), &mut grads.b[..]);
        K::run(DenseBackwardWeights {
            dims,
            dz,
            x_rows,
            dw,
            db,
            mode,
        });
    }

    /// The input gradient alone: `dx = (Wᵀ·dz)` through the previous layer's activation as
    /// `grad` says (the first half of [`DenseRef::backward`]). dz `[OUT][batch]`, dx
    /// `[IN][batch]`.
    pub fn backward_input<K: Backend>(
        self,
        dz: &[f32],
        dx: &mut [f32],
        grad: InputGrad<'_>,
        batch: usize,
    ) {
        let dims = Dims {
            out: OUT,
            inp: IN,
            batch,
        };
        let w = self.w.as_flattened();
        K::run(DenseBackwardInput {
            dims,
            w,
            dz,
            grad,
            dx,
        });
    }

    /// `y = act(W·x + b)` for one sample (a matrix–vector product).
    pub fn forward_one<K: Backend>(self, x: &[f32], y: &mut [f32], act: Activation) {
        let (w, bias) = (self.w.as_flattened(), &self.b[..]);
        K::run(DenseForwardOne {
            out: OUT,
            inp: IN,
            w,
            bias,
            x,
            y,
            act,
        });
    }

    /// A zeroed output for one sample, on the stack.
    pub fn output_one(self) -> [f32; OUT] {
        [0.0; OUT]
    }
}

impl<'a, const IN: usize, const OUT: usize> DenseMut<'a, IN, OUT> {
    /// A view over flat mutable slices (`w` of `OUT·IN` floats, `b` of `OUT`), or `None` if a
    /// length is wrong.
    pub fn from_slices(w: &'a mut [f32], b: &'a mut [f32]) -> Option<Self> {
        let (rows, rest) = w.as_chunks_mut::<IN>();
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            w: rows.try_into().ok()?,
            b: b.try_into().ok()?,
        })
    }

    /// Draws fresh parameters from `rng` according to `init`.
    pub fn init<R: Rng + ?Sized>(self, init: Init, rng: &mut R) {
        // (weights, bias): uniform in ±bound or normal with std; a bias bound of 0 is zeros.
        let (w_dist, b_bound) = match init {
            Init::PyTorch => {
                let bound = 1.0 / libm::sqrtf(IN as f32);
                (Draw::Uniform(bound), bound)
            }
            Init::He => (Draw::Uniform(libm::sqrtf(6.0 / IN as f32)), 0.0),
            Init::Xavier => (Draw::Uniform(libm::sqrtf(6.0 / (IN + OUT) as f32)), 0.0),
            Init::HeNormal => (Draw::Normal(libm::sqrtf(2.0 / IN as f32)), 0.0),
            Init::Normal { std } => (Draw::Normal(std), 0.0),
        };
        for w in self.w.as_flattened_mut() {
            *w = match w_dist {
                Draw::Uniform(bound) => uniform(rng, bound),
                Draw::Normal(std) => normal(rng, std),
            };
        }
        for b in self.b.iter_mut() {
            *b = if b_bound == 0.0 {
                0.0
            } else {
                uniform(rng, b_bound)
            };
        }
    }
}

/// One layer's buffers for a batch of up to `B` samples; a batch of `batch < B` samples uses
/// the first `features·batch` floats of each, compactly.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct DenseWork<const IN: usize, const OUT: usize, const B: usize> {
    /// The layer's input, batch-major `[batch][IN]`, for its weight gradient.
    pub x_rows: Aligned<[[f32; IN]; B]>,
    /// The layer's output after its activation (and dropout), `[OUT][batch]`.
    pub y: Aligned<[[f32; B]; OUT]>,
    /// The gradient at the layer's pre-activation, `[OUT][batch]`.
    pub dz: Aligned<[[f32; B]; OUT]>,
}

impl<const IN: usize, const OUT: usize, const B: usize> DenseWork<IN, OUT, B> {
    /// All-zero buffers, usable in a `static`.
    pub const ZEROED: Self = Self {
        x_rows: Aligned([[0.0; IN]; B]),
        y: Aligned([[0.0; B]; OUT]),
        dz: Aligned([[0.0; B]; OUT]),
    };

    /// The output of the last forward pass, `[OUT][batch]`.
    pub fn y(&self, batch: usize) -> &[f32] {
        &self.y.flat()[..OUT * batch]
    }
    /// The output buffer, `[OUT][batch]`.
    pub fn y_mut(&mut self, batch: usize) -> &mut [f32] {
        &mut self.y.flat_mut()[..OUT * batch]
    }
    /// The gradient at the pre-activation, `[OUT][batch]`.
    pub fn dz(&self, batch: usize) -> &[f32] {
        &self.dz.flat()[..OUT * batch]
    }
    /// The gradient buffer at the pre-activation, `[OUT][batch]`.
    pub fn dz_mut(&mut self, batch: usize) -> &mut [f32] {
        &mut self.dz.flat_mut()[..OUT * batch]
    }
    /// The output and the gradient buffer at once (the loss reads one and writes the other).
    pub fn y_and_dz_mut(&mut self, batch: usize) -> (&[f32], &mut [f32]) {
        (
            &self.y.flat()[..OUT * batch],
            &mut self.dz.flat_mut()[..OUT * batch],
        )
    }
    /// The batch-major input, `[batch][IN]`.
    pub fn x_rows(&self, batch: usize) -> &[f32] {
        &self.x_rows.flat()[..IN * batch]
    }
    /// The batch-major input buffer, `[batch][IN]`.
    pub fn x_rows_mut(&mut self, batch: usize) -> &mut [f32] {
        &mut self.x_rows.flat_mut()[..IN * batch]
    }
    /// Fills `x_rows` from the feature-major input `x [IN][batch]`.
    pub fn set_x_rows<K: Backend>(&mut self, x: &[f32], batch: usize) {
        K::run(Transpose {
            rows: IN,
            cols: batch,
            src: x,
            dst: self.x_rows_mut(batch),
        });
    }
}

/// The weights' distribution.
#[derive(Clone, Copy)]
enum Draw {
    /// Uniform in ±bound.
    Uniform(f32),
    /// Normal with this standard deviation.
    Normal(f32),
}
