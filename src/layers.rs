//! `Dense<IN, OUT>`: a fully connected layer's parameters, its forward and backward passes side
//! by side, its per-batch buffers, initialisation and dropout.
//!
//! Layout: `w` is `[OUT][IN]` row-major, the order of PyTorch's `nn.Linear.weight`, so model
//! files map one to one; `b` is `[OUT]`. Activations are feature-major, `[features][batch]`
//! (see [`crate::kernels`]): x `[IN][batch]`, y and dz `[OUT][batch]`.
//!
//! The passes live on [`DenseRef`], a borrowed view of the parameters, so the same code runs on
//! an owned layer, on parameters in a memory-mapped file or on a `static` blob in flash.
#![forbid(unsafe_code)]

use crate::aligned::{Aligned, Flat};
use crate::kernels::{
    Activation, Backend, DenseBackwardInput, DenseBackwardWeights, DenseForward, DenseForwardOne,
    Dims, InputGrad, Mode, Transpose,
};
use rand_xoshiro::rand_core::Rng;

/// A fully connected layer's parameters: `y = act(W·x + b)`.
#[derive(Clone, Debug, PartialEq, bytemuck::Zeroable)]
#[repr(C)]
pub struct Dense<const IN: usize, const OUT: usize> {
    /// Weights, `[OUT][IN]` row-major (PyTorch's `nn.Linear.weight`).
    pub w: Aligned<[[f32; IN]; OUT]>,
    /// Bias, `[OUT]`.
    pub b: Aligned<[f32; OUT]>,
}

/// A borrowed view of a [`Dense`] layer's parameters, wherever they live.
#[derive(Clone, Copy, Debug)]
pub struct DenseRef<'a, const IN: usize, const OUT: usize> {
    /// Weights, `[OUT][IN]`.
    pub w: &'a [[f32; IN]; OUT],
    /// Bias, `[OUT]`.
    pub b: &'a [f32; OUT],
}

/// How a layer's parameters are initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: weights and bias uniform in ±1/√IN.
    #[default]
    PyTorch,
    /// He (Kaiming) uniform for ReLU: weights uniform in ±√(6/IN), bias 0.
    He,
    /// Xavier (Glorot) uniform: weights uniform in ±√(6/(IN+OUT)), bias 0.
    Xavier,
}

impl Init {
    /// Every initialisation, in the order the CLI lists them.
    pub const ALL: [Init; 3] = [Init::PyTorch, Init::He, Init::Xavier];

    /// The lowercase name `Display` writes and `FromStr` reads (`--init`, checkpoints).
    pub const fn name(self) -> &'static str {
        match self {
            Init::PyTorch => "pytorch",
            Init::He => "he",
            Init::Xavier => "xavier",
        }
    }
}

impl core::fmt::Display for Init {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Init {
    type Err = ParseInitError;

    /// The initialisation named `name` (exactly as [`Init::name`] writes it).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Init::ALL
            .into_iter()
            .find(|init| init.name() == name)
            .ok_or(ParseInitError)
    }
}

/// The name given to [`Init`]'s `FromStr` is none of [`Init::ALL`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseInitError;

impl core::fmt::Display for ParseInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown initialisation, expected one of")?;
        for (i, init) in Init::ALL.iter().enumerate() {
            write!(f, "{}{init}", if i == 0 { " " } else { ", " })?;
        }
        Ok(())
    }
}

impl core::error::Error for ParseInitError {}

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    /// All-zero parameters, usable in a `static`.
    pub const ZEROED: Self = Self {
        w: Aligned([[0.0; IN]; OUT]),
        b: Aligned([0.0; OUT]),
    };

    /// The borrowed view the passes run on.
    pub fn as_ref(&self) -> DenseRef<'_, IN, OUT> {
        DenseRef {
            w: &self.w.0,
            b: &self.b.0,
        }
    }

    /// Draws fresh parameters from `rng` according to `init`.
    pub fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R) {
        let (w_bound, b_bound) = match init {
            Init::PyTorch => {
                let bound = 1.0 / libm::sqrtf(IN as f32);
                (bound, bound)
            }
            Init::He => (libm::sqrtf(6.0 / IN as f32), 0.0),
            Init::Xavier => (libm::sqrtf(6.0 / (IN + OUT) as f32), 0.0),
        };
        for w in self.w.flat_mut() {
            *w = uniform(rng, w_bound);
        }
        for b in self.b.flat_mut() {
            *b = if b_bound == 0.0 {
                0.0
            } else {
                uniform(rng, b_bound)
            };
        }
    }
}

/// Uniform in `[-bound, bound)` from the top 24 bits of one draw.
fn uniform<R: Rng + ?Sized>(rng: &mut R, bound: f32) -> f32 {
    let unit = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    (2.0 * unit - 1.0) * bound
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
        grads: &mut Dense<IN, OUT>,
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
        let (dw, db) = (grads.w.flat_mut(), grads.b.flat_mut());
        K::run(DenseBackwardWeights {
            dims,
            dz,
            x_rows,
            dw,
            db,
            mode,
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

/// Inverted dropout on hidden activations during training: each activation is kept with
/// probability `1 − p` and scaled by `1/(1 − p)`, or zeroed; inference applies nothing.
///
/// The backward pass needs no stored mask: a dropped activation is 0, which the ReLU mask
/// (`y > 0`) already zeroes, and a kept one is scaled, which [`InputGrad::Relu`]'s `scale` undoes.
pub struct Dropout<'r, R: Rng + ?Sized> {
    /// Probability of dropping an activation, in `[0, 1)`.
    pub p: f32,
    /// The generator the masks come from.
    pub rng: &'r mut R,
}

impl<R: Rng + ?Sized> Dropout<'_, R> {
    /// The factor kept activations are multiplied by.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// Masks and scales `y` in one pass.
    pub fn apply(&mut self, y: &mut [f32]) {
        // Keep when a 32-bit draw is at or above p·2^32.
        let threshold = (self.p as f64 * 4294967296.0) as u64;
        let scale = self.scale();
        for v in y {
            *v = if u64::from(self.rng.next_u32()) >= threshold {
                *v * scale
            } else {
                0.0
            };
        }
    }
}
