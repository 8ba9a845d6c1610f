//! Every kernel as a struct of its operands and dimensions: the shapes it takes are stated and
//! checked here, once, for every path and for the reference. Run one with
//! [`Backend::run`](super::Backend::run):
//!
//! ```
//! use constnet::kernels::{Activation, Backend, DenseForward, Dims, Simd};
//! let (w, bias, x) = ([1.0; 6], [0.5; 2], [1.0; 9]); // W [2][3], x [3][3]
//! let mut y = [0.0; 6];
//! let dims = Dims { out: 2, inp: 3, batch: 3 };
//! Simd::run(DenseForward { dims, w: &w, bias: &bias, x: &x, y: &mut y, act: Activation::Relu });
//! assert_eq!(y, [3.5; 6]);
//! ```
//!
//! Layouts (see [`crate::kernels`]): every matrix is row-major with its dimensions given;
//! activations are feature-major `[features][batch]`; weights `[out][inp]`.
#![forbid(unsafe_code)]

use super::op::Op;
use super::simd::Vector;
use super::update::UpdateRule;
use super::warp::WarpScratch;
use super::{Activation, InputGrad, Mode, check_len, reference};
use super::{dense, gemm, gemv, layout, peak, softmax, update, warp};

/// The dimensions of a dense layer's products over a batch: w `[out][inp]`, x `[inp][batch]`,
/// y and dz `[out][batch]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Output features.
    pub out: usize,
    /// Input features.
    pub inp: usize,
    /// Samples.
    pub batch: usize,
}

/// `C (mode)= A·B`, or `Aᵀ·B` when `a_transposed`. a `[m][k]` (`[k][m]` transposed),
/// b `[k][n]`, c `[m][n]`.
#[derive(Debug)]
pub struct Gemm<'a> {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// A.
    pub a: &'a [f32],
    /// Whether `a` is stored `[k][m]`.
    pub a_transposed: bool,
    /// B.
    pub b: &'a [f32],
    /// C.
    pub c: &'a mut [f32],
    /// Overwrite or accumulate into C.
    pub mode: Mode,
}

impl Op for Gemm<'_> {
    type Output = ();
    fn check(&self) {
        let (m, n, k) = (self.m, self.n, self.k);
        let (a_rows, a_cols) = if self.a_transposed { (k, m) } else { (m, k) };
        check_len("gemm", "a", self.a.len(), a_rows, a_cols);
        check_len("gemm", "b", self.b.len(), k, n);
        check_len("gemm", "c", self.c.len(), m, n);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        gemm::gemm::<V>(self)
    }
    fn reference(self) {
        reference::gemm(self)
    }
}

/// `y = act(W·x + bias)` for a batch; y is overwritten. w `[out][inp]`, bias `[out]`,
/// x `[inp][batch]`, y `[out][batch]`.
#[derive(Debug)]
pub struct DenseForward<'a> {
    /// The dimensions.
    pub dims: Dims,
    /// Weights.
    pub w: &'a [f32],
    /// Bias.
    pub bias: &'a [f32],
    /// Input, feature-major.
    pub x: &'a [f32],
    /// Output, feature-major.
    pub y: &'a mut [f32],
    /// Applied after the bias.
    pub act: Activation,
}

impl Op for DenseForward<'_> {
    type Output = ();
    fn check(&self) {
        let Dims { out, inp, batch } = self.dims;
        check_len("dense_forward", "w", self.w.len(), out, inp);
        check_len("dense_forward", "bias", self.bias.len(), out, 1);
        check_len("dense_forward", "x", self.x.len(), inp, batch);
        check_len("dense_forward", "y", self.y.len(), out, batch);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        dense::forward::<V>(self)
    }
    fn reference(self) {
        reference::dense_forward(self)
    }
}

/// The gradient with respect to a layer's input, `dx = (Wᵀ·dz)` passed back through the
/// activation that produced the input as `grad` says; dx is overwritten. w `[out][inp]`,
/// dz `[out][batch]`, dx (and `grad`'s x) `[inp][batch]`.
#[derive(Debug)]
pub struct DenseBackwardInput<'a> {
    /// The dimensions.
    pub dims: Dims,
    /// Weights.
    pub w: &'a [f32],
    /// Gradient at the layer's pre-activation.
    pub dz: &'a [f32],
    /// How the gradient passes back through the previous activation.
    pub grad: InputGrad<'a>,
    /// The previous layer's `dz`, overwritten.
    pub dx: &'a mut [f32],
}

impl Op for DenseBackwardInput<'_> {
    type Output = ();
    fn check(&self) {
        let Dims { out, inp, batch } = self.dims;
        check_len("dense_backward_input", "w", self.w.len(), out, inp);
        check_len("dense_backward_input", "dz", self.dz.len(), out, batch);
        check_len("dense_backward_input", "dx", self.dx.len(), inp, batch);
        if let InputGrad::Relu { x, .. } = self.grad {
            check_len("dense_backward_input", "x", x.len(), inp, batch);
        }
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        dense::backward_input::<V>(self)
    }
    fn reference(self) {
        reference::dense_backward_input(self)
    }
}

/// A layer's weight and bias gradients: `dw (mode)= dz·x_rows`, `db (mode)= Σ_batch dz`.
/// dz `[out][batch]`, x_rows `[batch][inp]` (the layer's input, batch-major), dw `[out][inp]`,
/// db `[out]`.
#[derive(Debug)]
pub struct DenseBackwardWeights<'a> {
    /// The dimensions.
    pub dims: Dims,
    /// Gradient at the layer's pre-activation.
    pub dz: &'a [f32],
    /// The layer's input, batch-major.
    pub x_rows: &'a [f32],
    /// Weight gradient.
    pub dw: &'a mut [f32],
    /// Bias gradient.
    pub db: &'a mut [f32],
    /// Overwrite or accumulate into dw and db.
    pub mode: Mode,
}

impl Op for DenseBackwardWeights<'_> {
    type Output = ();
    fn check(&self) {
        let Dims { out, inp, batch } = self.dims;
        check_len("dense_backward_weights", "dz", self.dz.len(), out, batch);
        check_len(
            "dense_backward_weights",
            "x_rows",
            self.x_rows.len(),
            batch,
            inp,
        );
        check_len("dense_backward_weights", "dw", self.dw.len(), out, inp);
        check_len("dense_backward_weights", "db", self.db.len(), out, 1);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        dense::backward_weights::<V>(self)
    }
    fn reference(self) {
        reference::dense_backward_weights(self)
    }
}

/// The most shards a [`WeightGradients`] sums over (threads of a data-parallel step).
pub const MAX_SHARDS: usize = 16;

/// One shard of a batch, for [`WeightGradients`]: the layer's `dz [out][batch]` (its rows in
/// question only) and its input `x_rows [batch][inp]`.
#[derive(Clone, Copy, Debug)]
pub struct Shard<'a> {
    /// Gradient at the pre-activation, `[out][batch]`.
    pub dz: &'a [f32],
    /// The layer's input, batch-major `[batch][inp]`.
    pub x_rows: &'a [f32],
    /// Samples in this shard.
    pub batch: usize,
}

/// A dense layer's weight and bias gradients for `out` of its rows, summed over the shards of
/// a batch in order: `dw (mode)= Σ_s dz_s·x_rows_s`, `db (mode)= Σ_s Σ_batch dz_s`: dw
/// `[out][inp]`, db `[out]`.
///
/// The sum runs over the samples in shard order, so splitting a batch into shards whose sizes
/// are multiples of the vector width gives the same bits as one shard.
#[derive(Debug)]
pub struct WeightGradients<'a> {
    /// Rows (output features) in question.
    pub out: usize,
    /// Input features.
    pub inp: usize,
    /// The batch's shards, at most [`MAX_SHARDS`].
    pub shards: &'a [Shard<'a>],
    /// Weight gradient.
    pub dw: &'a mut [f32],
    /// Bias gradient.
    pub db: &'a mut [f32],
    /// Overwrite or accumulate.
    pub mode: Mode,
}

impl Op for WeightGradients<'_> {
    type Output = ();
    fn check(&self) {
        let (out, inp) = (self.out, self.inp);
        assert!(
            self.shards.len() <= MAX_SHARDS,
            "weight_gradients: {} shards, at most {MAX_SHARDS}",
            self.shards.len()
        );
        for s in self.shards {
            check_len("weight_gradients", "dz", s.dz.len(), out, s.batch);
            check_len("weight_gradients", "x_rows", s.x_rows.len(), s.batch, inp);
        }
        check_len("weight_gradients", "dw", self.dw.len(), out, inp);
        check_len("weight_gradients", "db", self.db.len(), out, 1);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        dense::weight_gradients::<V>(self)
    }
    fn reference(self) {
        reference::weight_gradients(self)
    }
}

/// `y (mode)= A·x`. a `[m][k]`, x `[k]`, y `[m]`.
#[derive(Debug)]
pub struct Gemv<'a> {
    /// Rows of A.
    pub m: usize,
    /// Columns of A.
    pub k: usize,
    /// A.
    pub a: &'a [f32],
    /// x.
    pub x: &'a [f32],
    /// y.
    pub y: &'a mut [f32],
    /// Overwrite or accumulate into y.
    pub mode: Mode,
}

impl Op for Gemv<'_> {
    type Output = ();
    fn check(&self) {
        check_len("gemv", "a", self.a.len(), self.m, self.k);
        check_len("gemv", "x", self.x.len(), self.k, 1);
        check_len("gemv", "y", self.y.len(), self.m, 1);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        gemv::gemv::<V>(self)
    }
    fn reference(self) {
        reference::gemv(self)
    }
}

/// `y = act(W·x + bias)` for one sample; y is overwritten. w `[out][inp]`, bias `[out]`,
/// x `[inp]`, y `[out]`.
#[derive(Debug)]
pub struct DenseForwardOne<'a> {
    /// Output features.
    pub out: usize,
    /// Input features.
    pub inp: usize,
    /// Weights.
    pub w: &'a [f32],
    /// Bias.
    pub bias: &'a [f32],
    /// Input.
    pub x: &'a [f32],
    /// Output.
    pub y: &'a mut [f32],
    /// Applied after the bias.
    pub act: Activation,
}

impl Op for DenseForwardOne<'_> {
    type Output = ();
    fn check(&self) {
        check_len("dense_forward_one", "w", self.w.len(), self.out, self.inp);
        check_len("dense_forward_one", "bias", self.bias.len(), self.out, 1);
        check_len("dense_forward_one", "x", self.x.len(), self.inp, 1);
        check_len("dense_forward_one", "y", self.y.len(), self.out, 1);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        gemv::dense_forward_one::<V>(self)
    }
    fn reference(self) {
        reference::dense_forward_one(self)
    }
}

/// `dst = srcᵀ`. src `[rows][cols]`, dst `[cols][rows]`.
#[derive(Debug)]
pub struct Transpose<'a> {
    /// Rows of src.
    pub rows: usize,
    /// Columns of src.
    pub cols: usize,
    /// The matrix.
    pub src: &'a [f32],
    /// Its transpose.
    pub dst: &'a mut [f32],
}

impl Op for Transpose<'_> {
    type Output = ();
    fn check(&self) {
        check_len("transpose", "src", self.src.len(), self.rows, self.cols);
        check_len("transpose", "dst", self.dst.len(), self.cols, self.rows);
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        layout::transpose::<V>(self)
    }
    fn reference(self) {
        reference::transpose(self)
    }
}

/// Loads `batch` images of `features` u8 pixels (`images(j)` is image j, at least `features`
/// bytes) as f32 divided by 255 into rows `[batch][features]` and cols `[features][batch]`.
pub struct LoadU8Batch<'a, F: Fn(usize) -> &'a [u8]> {
    /// Pixels per image.
    pub features: usize,
    /// Images.
    pub batch: usize,
    /// Image j's pixels.
    pub images: F,
    /// Batch-major output.
    pub rows: &'a mut [f32],
    /// Feature-major output.
    pub cols: &'a mut [f32],
}

impl<'a, F: Fn(usize) -> &'a [u8]> Op for LoadU8Batch<'a, F> {
    type Output = ();
    fn check(&self) {
        check_len(
            "load_u8_batch",
            "rows",
            self.rows.len(),
            self.batch,
            self.features,
        );
        check_len(
            "load_u8_batch",
            "cols",
            self.cols.len(),
            self.features,
            self.batch,
        );
        for j in 0..self.batch {
            let len = (self.images)(j).len();
            assert!(
                len >= self.features,
                "load_u8_batch: image {j} has {len} bytes, not {}",
                self.features
            );
        }
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        layout::load_u8_batch::<V, F>(self)
    }
    fn reference(self) {
        reference::load_u8_batch(self)
    }
}

/// Mean softmax cross-entropy over a batch, and its gradient. logits `[classes][batch]`,
/// labels `[batch]` (each `< classes`), dlogits `[classes][batch]`, overwritten with
/// `(softmax − one_hot)/whole_batch`. Returns the mean loss over these `batch` samples (0 for
/// an empty batch). `whole_batch` is `batch`, or the size of the whole batch when these
/// samples are one thread's shard of it, so the shards' gradients add up to the batch's.
///
/// # Panics
/// On a label `>= classes`.
#[derive(Debug)]
pub struct SoftmaxXent<'a> {
    /// Classes.
    pub classes: usize,
    /// Samples.
    pub batch: usize,
    /// Logits, feature-major.
    pub logits: &'a [f32],
    /// The class of each sample.
    pub labels: &'a [u32],
    /// The gradient, overwritten.
    pub dlogits: &'a mut [f32],
    /// The number of samples the loss is the mean over (see above).
    pub whole_batch: usize,
}

impl Op for SoftmaxXent<'_> {
    type Output = f32;
    fn check(&self) {
        check_len(
            "softmax_xent",
            "logits",
            self.logits.len(),
            self.classes,
            self.batch,
        );
        check_len("softmax_xent", "labels", self.labels.len(), self.batch, 1);
        assert!(
            self.whole_batch >= self.batch,
            "softmax_xent: a batch of {} samples is not part of one of {}",
            self.batch,
            self.whole_batch
        );
        check_len(
            "softmax_xent",
            "dlogits",
            self.dlogits.len(),
            self.classes,
            self.batch,
        );
        for (j, &label) in self.labels.iter().enumerate() {
            assert!(
                (label as usize) < self.classes,
                "softmax_xent: label {label} of sample {j} is not below {}",
                self.classes
            );
        }
    }
    #[inline(always)]
    fn simd<V: Vector>(self) -> f32 {
        softmax::softmax_xent::<V>(self)
    }
    fn reference(self) -> f32 {
        reference::softmax_xent(self)
    }
}

/// One optimizer update of a slice of parameters by `rule` (an [`UpdateRule`], such as
/// `crate::optim::Rule`): params, grads and each state slice the rule uses hold the same
/// number of floats (which slice holds what is the optimizer's: see its step, e.g.
/// `crate::optim::AdamStep`, and [`UpdateRule::state_tensors`]). A state slice the rule does
/// not use is neither read nor written, and may be empty. Returns
/// whether every gradient and every updated parameter was finite (the update is applied either
/// way).
#[derive(Debug)]
pub struct Update<'a, R> {
    /// The step's constants.
    pub rule: &'a R,
    /// Parameters, updated.
    pub params: &'a mut [f32],
    /// Their gradients.
    pub grads: &'a [f32],
    /// The first state tensor, updated.
    pub first: &'a mut [f32],
    /// The second state tensor, updated.
    pub second: &'a mut [f32],
    /// The third state tensor, updated.
    pub third: &'a mut [f32],
}

impl<R: UpdateRule> Op for Update<'_, R> {
    type Output = bool;
    fn check(&self) {
        let n = self.params.len();
        check_len("update", "grads", self.grads.len(), n, 1);
        let [first, second, third] = self.rule.state_tensors();
        if first {
            check_len("update", "first state", self.first.len(), n, 1);
        }
        if second {
            check_len("update", "second state", self.second.len(), n, 1);
        }
        if third {
            check_len("update", "third state", self.third.len(), n, 1);
        }
    }
    #[inline(always)]
    fn simd<V: Vector>(self) -> bool {
        update::update::<V, R>(self)
    }
    fn reference(self) -> bool {
        reference::update(self)
    }
}

/// `Σ x²` (for gradient-norm clipping).
#[derive(Debug)]
pub struct SumSquares<'a>(
    /// The values.
    pub &'a [f32],
);

impl Op for SumSquares<'_> {
    type Output = f32;
    fn check(&self) {}
    #[inline(always)]
    fn simd<V: Vector>(self) -> f32 {
        update::sum_squares::<V>(self.0)
    }
    fn reference(self) -> f32 {
        reference::sum_squares(self.0)
    }
}

/// `iters` rounds of twelve independent FMA chains `acc = acc·m + a`, no memory traffic: the
/// FMA peak of one core on a path. Returns a sum of the chains so the work is not optimised
/// away (pass `m` and `a` through `black_box`).
#[derive(Clone, Copy, Debug)]
pub struct FmaPeak {
    /// Rounds.
    pub iters: usize,
    /// The multiplier.
    pub m: f32,
    /// The addend.
    pub a: f32,
}

impl FmaPeak {
    /// Floating-point operations of one call on a path with `lanes` lanes.
    pub fn flops(&self, lanes: usize) -> u64 {
        (self.iters * peak::CHAINS * lanes * 2) as u64
    }
}

impl Op for FmaPeak {
    type Output = f32;
    fn check(&self) {}
    #[inline(always)]
    fn simd<V: Vector>(self) -> f32 {
        peak::fma_peak::<V>(self)
    }
    fn reference(self) -> f32 {
        reference::fma_peak(self)
    }
}

/// Reads every float of every slice once and returns their sum: the time any kernel needs
/// at least to read those floats.
#[derive(Debug)]
pub struct Stream<'a, 's>(
    /// The slices.
    pub &'s [&'a [f32]],
);

impl Op for Stream<'_, '_> {
    type Output = f32;
    fn check(&self) {}
    #[inline(always)]
    fn simd<V: Vector>(self) -> f32 {
        peak::stream::<V>(self.0)
    }
    fn reference(self) -> f32 {
        self.0.iter().flat_map(|s| s.iter()).sum()
    }
}

/// The largest image side [`Warp`] takes, and the row stride of its elastic weights.
pub const WARP_SIDE: usize = 32;

/// Warps one `rows × cols` u8 image (both sides in `1..=`[`WARP_SIDE`]): for each output
/// pixel p = (x, y), with centre `c = ((cols − 1)/2, (rows − 1)/2)`,
///
/// ```text
/// s   = inverse·(p + d(p) − c − shift) + c      d: the elastic field, 0 without one
/// dst = bilinear(src, s), pixels outside the image 0, rounded half up (floor(v + 0.5))
/// ```
///
/// evaluated as the affine map of the pixel plus the field mapped by the matrix, in the
/// padded image's coordinates (s + 1), in this order:
///
/// ```text
/// px = −cx − tx,  py = y − cy − ty,  kx = a·px + b·py + (cx + 1),  ky = c·px + d·py + (cy + 1)
/// g_i(x) = Σ_j noise[i][j] · wx[j][x]                  per axis, from 0 in index order
/// sx + 1 = a·x + kx, then += wy[i][y] · (a·gx_i(x) + b·gy_i(x)) for each grid row i in order
/// sy + 1 = c·x + ky, then += wy[i][y] · (c·gx_i(x) + d·gy_i(x))
/// v = top + fy·(bottom − top),  top = p00 + fx·(p01 − p00),  bottom = p10 + fx·(p11 − p10)
/// ```
///
/// so every path gives the reference's bits exactly.
#[derive(Debug)]
pub struct Warp<'a> {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// The image, `[rows][cols]`.
    pub src: &'a [u8],
    /// The warped image, `[rows][cols]`, overwritten.
    pub dst: &'a mut [u8],
    /// The inverse of the affine map, row-major `[a, b, c, d]` (output offset → source offset).
    pub inverse: [f32; 4],
    /// The translation `(tx, ty)`, pixels.
    pub shift: [f32; 2],
    /// The elastic field, if any.
    pub field: Option<WarpField<'a>>,
    /// Working memory (its contents do not matter).
    pub scratch: &'a mut WarpScratch,
}

/// An elastic displacement field as a small grid of noise mapped to pixels by weights (see
/// [`Warp`]).
#[derive(Debug, Clone, Copy)]
pub struct WarpField<'a> {
    /// Grid rows, `1..=`[`WARP_SIDE`].
    pub ky: usize,
    /// Grid columns, `1..=`[`WARP_SIDE`].
    pub kx: usize,
    /// The x displacement's grid `[ky][kx]`, then the y displacement's.
    pub noise: &'a [f32],
    /// Grid row i's weight at image row y: `wy[i][y]`, `[ky][WARP_SIDE]` (rows past `rows`
    /// are read by some paths, never used).
    pub wy: &'a [f32],
    /// Grid column j's weight at image column x: `wx[j][x]`, `[kx][WARP_SIDE]`.
    pub wx: &'a [f32],
}

impl Op for Warp<'_> {
    type Output = ();
    fn check(&self) {
        let sides = 1..=WARP_SIDE;
        assert!(
            sides.contains(&self.rows) && sides.contains(&self.cols),
            "warp: images must be 1 to {WARP_SIDE} pixels a side, not {}×{}",
            self.rows,
            self.cols
        );
        check_len("warp", "src", self.src.len(), self.rows, self.cols);
        check_len("warp", "dst", self.dst.len(), self.rows, self.cols);
        if let Some(f) = &self.field {
            assert!(
                sides.contains(&f.ky) && sides.contains(&f.kx),
                "warp: the field's grid must be 1 to {WARP_SIDE} a side, not {}×{}",
                f.ky,
                f.kx
            );
            check_len("warp", "noise", f.noise.len(), 2 * f.ky, f.kx);
            check_len("warp", "wy", f.wy.len(), f.ky, WARP_SIDE);
            check_len("warp", "wx", f.wx.len(), f.kx, WARP_SIDE);
        }
    }
    #[inline(always)]
    fn simd<V: Vector>(self) {
        warp::warp::<V>(self)
    }
    fn reference(self) {
        reference::warp(self)
    }
}
