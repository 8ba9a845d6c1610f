//! Networks: dense layers composed at compile time, their parameters in one flat block, and
//! their buffers.
//!
//! A network is declared with [`network!`](crate::network), which generates a concrete struct
//! holding every parameter in one 64-byte-aligned block ([`crate::params`]), ReLU between the
//! layers and none after the last, and implements [`Network`] for it:
//!
//! ```
//! constnet::network! {
//!     /// The reference MNIST network.
//!     pub struct Mlp {
//!         fc1: Dense<784, 256>,
//!         fc2: Dense<256, 128>,
//!         fc3: Dense<128, 64>,
//!         fc4: Dense<64, 10>,
//!     }
//! }
//! ```
//!
//! Every width is a compile-time constant; a layer whose input width differs from the previous
//! layer's output width is a compile error:
//!
//! ```compile_fail
//! constnet::network! {
//!     struct Broken { fc1: Dense<784, 256>, fc2: Dense<128, 10> }
//! }
//! ```
//!
//! Around the parameters sit values of the same type (gradients, optimizer state) and a
//! [`Workspace`] holding every activation and gradient buffer for batches of up to `B`
//! samples, all created before training. The passes here (forward, backward, one-sample
//! inference) touch no allocator; the training step that adds the loss and the optimizer is in
//! [`crate::step`]. `zeroed_box` constructors exist under the `alloc` feature, and `ZEROED`
//! constants initialise `static`s under `no_std`.
#![forbid(unsafe_code)]

use crate::kernels::{Backend, DenseBackwardWeights, Dims, LoadU8Batch, Mode, Transpose};
use crate::layers::{Dropout, Init};
pub use crate::params::Params;
use rand_xoshiro::rand_core::Rng;

/// The name, shape and place of one parameter tensor, as in PyTorch's `state_dict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// `"fc1.weight"`, `"fc1.bias"`, …
    pub name: &'static str,
    /// `[OUT, IN]` for a weight, `[OUT]` for a bias.
    pub shape: &'static [usize],
    /// Where it starts in the network's flat block (a multiple of [`crate::params::ALIGN`]).
    pub offset: usize,
}

impl TensorInfo {
    /// Number of floats.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its floats in the flat block.
    pub fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The most inputs [`Network::predict`] and [`Network::classify`] take (a 32×32 image): their
/// input buffer is on the stack.
pub const PREDICT_MAX_INPUT: usize = 1024;
/// The most classes [`Network::predict`] and [`Network::classify`] return.
pub const PREDICT_MAX_OUTPUT: usize = 256;

/// A network of dense layers with compile-time widths, its parameters one flat block.
/// Implemented by [`network!`](crate::network).
pub trait Network: Params {
    /// Input features.
    const INPUT: usize;
    /// Output classes (logits).
    const OUTPUT: usize;
    /// Dense layers.
    const LAYERS: usize;
    /// Tensors: a weight and a bias per dense layer, then a weight and a bias per batch
    /// normalization, then its running mean and running variance.
    const TENSORS: usize;
    /// The tensors the optimizer trains, the first `PARAM_TENSORS` of them ([`Params::flat`]);
    /// the rest are buffers (batch normalizations' running statistics) stored after that block,
    /// with no gradient and no optimizer state.
    const PARAM_TENSORS: usize;
    /// Batch normalizations.
    const BATCH_NORMS: usize;
    /// Parameters in all (padding excluded).
    const PARAMS: usize;
    /// Buffers for a batch of up to `B` samples.
    type Workspace<const B: usize>: Workspace;
    /// Borrowed parameters: what inference runs on.
    type View<'a>: NetworkView<'a, Net = Self>;

    /// Borrows the parameters.
    fn view(&self) -> Self::View<'_>;
    /// A view over parameter tensors stored elsewhere (a memory map, a `static` blob), in the
    /// order of [`Network::tensor_info`]; `None` if a length is wrong.
    fn view_from_tensors<'a>(tensors: &[&'a [f32]]) -> Option<Self::View<'a>>;
    /// Name, shape and offset of tensor `i < TENSORS` (in [`Network::storage`]).
    fn tensor_info(i: usize) -> TensorInfo;
    /// The name of batch normalization `k` (`"bn1"`): its tensors are `bn1.weight`, … and its
    /// count of training batches `bn1.num_batches_tracked`.
    fn batch_norm_name(k: usize) -> &'static str;
    /// The dense layer batch normalization `k` follows.
    fn batch_norm_layer(k: usize) -> usize;
    /// Every tensor: the parameter block ([`Params::flat`]), then the buffers.
    fn storage(&self) -> &[f32];
    /// Every tensor, mutably.
    fn storage_mut(&mut self) -> &mut [f32];
    /// Each batch normalization's `num_batches_tracked`.
    fn batches_tracked(&self) -> &[u64];
    /// Each batch normalization's `num_batches_tracked`, mutably.
    fn batches_tracked_mut(&mut self) -> &mut [u64];
    /// Draws fresh parameters, layer by layer in order.
    fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R);
    /// The first half of the backward pass, after [`Network::forward`] and the loss: from the
    /// last layer's `dz` (written by the loss) back to the first layer's, each layer's input
    /// gradient through the ReLU mask, and each layer's input in batch-major order, ready for
    /// the weight gradients ([`weight_gradients`]).
    fn backward_inputs<K: Backend, const B: usize>(
        &self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
    );

    /// Tensor `i` as a flat slice.
    fn tensor(&self, i: usize) -> &[f32] {
        &self.storage()[Self::tensor_info(i).range()]
    }

    /// Tensor `i` as a flat mutable slice.
    fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        let range = Self::tensor_info(i).range();
        &mut self.storage_mut()[range]
    }

    /// Moves each batch normalization's running statistics towards those of the training
    /// batch of `batch` samples last run through `ws` by [`Network::forward_train`], and
    /// counts it (see [`crate::layers::batchnorm::update_running`]).
    fn update_running_stats<const B: usize>(&mut self, ws: &Self::Workspace<B>, batch: usize) {
        for k in 0..Self::BATCH_NORMS {
            let (mean, var) = ws.batch_norm_stats(k);
            let at = Self::PARAM_TENSORS + 2 * k;
            let (m, v) = (
                Self::tensor_info(at).range(),
                Self::tensor_info(at + 1).range(),
            );
            let (front, back) = self.storage_mut().split_at_mut(v.start);
            let counted = crate::layers::batchnorm::update_running(
                mean,
                var,
                batch,
                &mut front[m],
                &mut back[..v.len()],
            );
            if counted {
                self.batches_tracked_mut()[k] += 1;
            }
        }
    }

    /// Layer `l`'s (inputs, outputs).
    fn layer_dims(l: usize) -> (usize, usize) {
        let shape = Self::tensor_info(2 * l).shape;
        (shape[1], shape[0])
    }

    /// The whole backward pass: [`Network::backward_inputs`], then every weight and bias
    /// gradient written into `grads` according to `mode`.
    fn backward<K: Backend, const B: usize>(
        &self,
        grads: &mut Self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        mode: Mode,
    ) {
        self.backward_inputs::<K, B>(ws, batch);
        weight_gradients::<Self, K, B>(grads, &*ws, batch, mode);
    }

    /// Forward pass over the batch in `ws` (see [`set_input`]); the logits land in
    /// [`Workspace::logits`]. With `dropout`, hidden activations are dropped. Batch
    /// normalizations use their running statistics (evaluation).
    fn forward<K: Backend, const B: usize>(
        &self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_>>,
    ) {
        self.view().forward::<K, B>(ws, batch, dropout);
    }

    /// [`Network::forward`] in training mode: batch normalizations use the batch's own
    /// statistics and keep what the backward pass and
    /// [`Network::update_running_stats`] need. The same as `forward` without batch norms.
    fn forward_train<K: Backend, const B: usize>(
        &self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_>>,
    ) {
        self.view().forward_train::<K, B>(ws, batch, dropout);
    }

    /// Logits for one sample: x `[INPUT]`, logits `[OUTPUT]`. Uses only stack buffers.
    fn forward_one<K: Backend>(&self, x: &[f32], logits: &mut [f32]) {
        self.view().forward_one::<K>(x, logits);
    }

    /// The class of one sample given as bytes, scaled by 1/255 as MNIST's pixels are:
    /// `pixels` is `[INPUT]` (e.g. a 28×28 image row by row, light on dark). Runs the best
    /// kernel path on stack buffers, without allocating. Networks of up to
    /// [`PREDICT_MAX_INPUT`] inputs and [`PREDICT_MAX_OUTPUT`] classes (checked at compile
    /// time); others call [`Network::forward_one`] with their own buffers.
    ///
    /// # Panics
    /// If `pixels.len() != INPUT`.
    fn predict(&self, pixels: &[u8]) -> usize {
        let mut x = [0.0f32; PREDICT_MAX_INPUT];
        let x = &mut x[..Self::INPUT];
        assert_eq!(pixels.len(), x.len(), "predict: one sample of INPUT bytes");
        for (x, &p) in x.iter_mut().zip(pixels) {
            *x = f32::from(p) / 255.0;
        }
        self.classify(x)
    }

    /// The class of one sample of features: `x` is `[INPUT]`. See [`Network::predict`].
    fn classify(&self, x: &[f32]) -> usize {
        const { assert!(Self::INPUT <= PREDICT_MAX_INPUT && Self::OUTPUT <= PREDICT_MAX_OUTPUT) };
        let mut logits = [0.0f32; PREDICT_MAX_OUTPUT];
        let logits = &mut logits[..Self::OUTPUT];
        self.forward_one::<crate::kernels::Simd>(x, logits);
        // The first of equal maxima, as `logits::argmax`; NaN never wins.
        (0..logits.len()).fold(0, |best, c| if logits[c] > logits[best] { c } else { best })
    }

    /// The classes of many samples: `pixels` is `[n][INPUT]` bytes (see
    /// [`Network::predict`]), `classes` receives `n` classes. Allocates nothing.
    ///
    /// # Panics
    /// If `pixels.len() != classes.len() * INPUT`.
    fn predict_batch(&self, pixels: &[u8], classes: &mut [usize]) {
        assert_eq!(
            pixels.len(),
            classes.len() * Self::INPUT,
            "predict_batch: classes.len() samples of INPUT bytes"
        );
        for (class, sample) in classes.iter_mut().zip(pixels.chunks_exact(Self::INPUT)) {
            *class = self.predict(sample);
        }
    }

    /// Freshly initialised parameters on the heap.
    #[cfg(feature = "alloc")]
    fn new_boxed<R: Rng + ?Sized>(init: Init, rng: &mut R) -> alloc::boxed::Box<Self> {
        let mut net = Self::zeroed_box();
        net.init(init, rng);
        net
    }
}

/// Every layer's weight and bias gradients from the buffers [`Network::backward_inputs`]
/// filled: `grads (mode)= …` (batch normalizations' included).
pub fn weight_gradients<N: Network, K: Backend, const B: usize>(
    grads: &mut N,
    ws: &N::Workspace<B>,
    batch: usize,
    mode: Mode,
) {
    for l in 0..N::LAYERS {
        let (inp, out) = N::layer_dims(l);
        let (w, b) = (
            N::tensor_info(2 * l).range(),
            N::tensor_info(2 * l + 1).range(),
        );
        let (front, back) = grads.flat_mut().split_at_mut(b.start);
        let (dw, db) = (&mut front[w], &mut back[..b.len()]);
        let (dz, x_rows) = (ws.dz(l, batch), ws.x_rows(l, batch));
        let dims = Dims { out, inp, batch };
        K::run(DenseBackwardWeights {
            dims,
            dz,
            x_rows,
            dw,
            db,
            mode,
        });
    }
    for k in 0..N::BATCH_NORMS {
        let (dweight, dbias) = ws.batch_norm_grads(k);
        let at = 2 * N::LAYERS + 2 * k;
        for (t, g) in [(at, dweight), (at + 1, dbias)] {
            let out = &mut grads.flat_mut()[N::tensor_info(t).range()];
            match mode {
                Mode::Overwrite => out.copy_from_slice(g),
                Mode::Accumulate => out.iter_mut().zip(g).for_each(|(o, g)| *o += g),
            }
        }
    }
}

/// Borrowed parameters of a network: the inference passes.
pub trait NetworkView<'a>: Copy {
    /// The network these parameters belong to.
    type Net: Network;
    /// See [`Network::forward`].
    fn forward<K: Backend, const B: usize>(
        self,
        ws: &mut <Self::Net as Network>::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_>>,
    );
    /// See [`Network::forward_train`].
    fn forward_train<K: Backend, const B: usize>(
        self,
        ws: &mut <Self::Net as Network>::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_>>,
    );
    /// See [`Network::forward_one`].
    fn forward_one<K: Backend>(self, x: &[f32], logits: &mut [f32]);
    /// Tensor `i` (same order as [`Network::tensor_info`]).
    fn tensor(self, i: usize) -> &'a [f32];
}

/// A network's buffers for batches of up to [`Workspace::BATCH`] samples.
pub trait Workspace: bytemuck::Zeroable + Sized + Send + Sync {
    /// Largest batch.
    const BATCH: usize;
    /// Input features.
    const INPUT: usize;
    /// Output classes.
    const OUTPUT: usize;
    /// All-zero buffers, for `static`s.
    const ZEROED: Self;

    /// The input of a batch, in both layouts the network reads: feature-major
    /// `[INPUT][batch]` for the forward pass and batch-major `[batch][INPUT]` for the first
    /// layer's weight gradient. Fill both, or use [`set_input`].
    fn input_mut(&mut self, batch: usize) -> (&mut [f32], &mut [f32]);
    /// The feature-major input `[INPUT][batch]`.
    fn input(&self, batch: usize) -> &[f32];
    /// The labels of the batch (each `< OUTPUT`).
    fn labels_mut(&mut self, batch: usize) -> &mut [u32];
    /// The labels of the batch.
    fn labels(&self, batch: usize) -> &[u32];
    /// The logits of the last forward pass, `[OUTPUT][batch]`.
    fn logits(&self, batch: usize) -> &[f32];
    /// What the loss reads and writes: logits, labels, and the last layer's `dz`.
    fn loss_buffers(&mut self, batch: usize) -> (&[f32], &[u32], &mut [f32]);
    /// Layer `l`'s gradient at its pre-activation, `[OUT][batch]`.
    fn dz(&self, l: usize, batch: usize) -> &[f32];
    /// Layer `l`'s input, batch-major `[batch][IN]`.
    fn x_rows(&self, l: usize, batch: usize) -> &[f32];
    /// The factor dropout applied to hidden activations in the last forward pass (1 without).
    fn dropout_scale(&self) -> f32;
    /// Batch normalization `k`'s weight and bias gradients from the last backward pass.
    fn batch_norm_grads(&self, k: usize) -> (&[f32], &[f32]);
    /// Batch normalization `k`'s mean and biased variance of the last training batch.
    fn batch_norm_stats(&self, k: usize) -> (&[f32], &[f32]);

    /// All-zero buffers on the heap, without a stack temporary.
    #[cfg(feature = "alloc")]
    fn zeroed_box() -> alloc::boxed::Box<Self> {
        bytemuck::zeroed_box()
    }
}

/// Copies a batch of samples given batch-major (`rows [batch][INPUT]`, one sample per row)
/// into the workspace, in both layouts.
///
/// # Panics
/// If `rows` does not hold `batch · INPUT` floats or `batch` exceeds the workspace.
pub fn set_input<W: Workspace, K: Backend>(ws: &mut W, rows: &[f32], batch: usize) {
    assert!(
        batch <= W::BATCH,
        "set_input: batch {batch} exceeds the workspace's {}",
        W::BATCH
    );
    let (features, batch_rows) = ws.input_mut(batch);
    batch_rows.copy_from_slice(rows);
    K::run(Transpose {
        rows: batch,
        cols: W::INPUT,
        src: rows,
        dst: features,
    });
}

/// Loads the samples at `indices` into the workspace: pixels (`pixels` holds images of
/// `W::INPUT` bytes each) scaled by 1/255 into both input layouts, labels copied.
///
/// # Panics
/// If an index is out of range or there are more indices than the workspace's batch.
pub fn load_u8_batch<W: Workspace, K: Backend>(
    ws: &mut W,
    pixels: &[u8],
    labels: &[u8],
    indices: &[u32],
) {
    let batch = batch_of::<W>("load_u8_batch", indices);
    load_images::<W, K>(ws, batch, |j| {
        &pixels[indices[j] as usize * W::INPUT..][..W::INPUT]
    });
    load_labels(ws, labels, indices);
}

/// Loads the samples at `indices` of float rows (`rows` holds rows of `W::INPUT` floats each)
/// into the workspace, in both layouts, labels copied: [`load_u8_batch`] for features that
/// are not bytes.
///
/// # Panics
/// If an index is out of range or there are more indices than the workspace's batch.
pub fn load_f32_batch<W: Workspace, K: Backend>(
    ws: &mut W,
    rows: &[f32],
    labels: &[u8],
    indices: &[u32],
) {
    let batch = batch_of::<W>("load_f32_batch", indices);
    let (features, batch_rows) = ws.input_mut(batch);
    for (dst, &i) in batch_rows.chunks_exact_mut(W::INPUT).zip(indices) {
        dst.copy_from_slice(&rows[i as usize * W::INPUT..][..W::INPUT]);
    }
    K::run(Transpose {
        rows: batch,
        cols: W::INPUT,
        src: batch_rows,
        dst: features,
    });
    load_labels(ws, labels, indices);
}

/// Loads `indices.len()` images stored one after another in `images` (`W::INPUT` bytes each,
/// augmented copies, say) with the labels of samples `indices`: [`load_u8_batch`] for images
/// that are not in the dataset's order.
pub fn load_u8_images<W: Workspace, K: Backend>(
    ws: &mut W,
    images: &[u8],
    labels: &[u8],
    indices: &[u32],
) {
    let batch = batch_of::<W>("load_u8_images", indices);
    assert!(
        images.len() >= batch * W::INPUT,
        "load_u8_images: {batch} samples exceed the images"
    );
    load_images::<W, K>(ws, batch, |j| &images[j * W::INPUT..][..W::INPUT]);
    load_labels(ws, labels, indices);
}

/// Image `j` of the batch from `image(j)`, scaled by 1/255 into both input layouts.
fn load_images<'a, W: Workspace, K: Backend>(
    ws: &'a mut W,
    batch: usize,
    image: impl Fn(usize) -> &'a [u8],
) {
    let (cols, rows) = ws.input_mut(batch);
    K::run(LoadU8Batch {
        features: W::INPUT,
        batch,
        images: image,
        rows,
        cols,
    });
}

/// The batch of `indices`, checked against the workspace's (`who` names the caller).
fn batch_of<W: Workspace>(who: &str, indices: &[u32]) -> usize {
    let batch = indices.len();
    assert!(
        batch <= W::BATCH,
        "{who}: {batch} samples exceed the workspace's batch of {}",
        W::BATCH
    );
    batch
}

/// The labels of samples `indices` into the workspace.
fn load_labels<W: Workspace>(ws: &mut W, labels: &[u8], indices: &[u32]) {
    for (l, &i) in ws.labels_mut(indices.len()).iter_mut().zip(indices) {
        *l = u32::from(labels[i as usize]);
    }
}

/// The length of a network's parameter block: its dense layers' tensors (weight and bias of
/// each, in order), then each batch normalization's weight and bias; every tensor padded to
/// whole cache lines.
#[doc(hidden)]
pub const fn block_len(layers: &[(usize, usize)], norms: &[usize]) -> usize {
    tensor_offset(layers, norms, 2 * layers.len() + 2 * norms.len())
}

/// The length of a network's whole storage: the parameter block, then each batch
/// normalization's running mean and running variance (buffers the optimizer never sees).
#[doc(hidden)]
pub const fn storage_len(layers: &[(usize, usize)], norms: &[usize]) -> usize {
    tensor_offset(layers, norms, 2 * layers.len() + 4 * norms.len())
}

/// 1 for any `n`: counts batch norms in `network!`'s array lengths.
#[doc(hidden)]
pub const fn one(_n: usize) -> usize {
    1
}

/// The number of parameters (padding excluded) of dense layers and batch normalizations.
#[doc(hidden)]
pub const fn param_count(layers: &[(usize, usize)], norms: &[usize]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < layers.len() {
        n += layers[i].0 * layers[i].1 + layers[i].1;
        i += 1;
    }
    i = 0;
    while i < norms.len() {
        n += 2 * norms[i];
        i += 1;
    }
    n
}

/// Where tensor `i` starts in such a storage: dense weight `2l`, bias `2l + 1`; then batch
/// norm `k`'s weight and bias; then each one's running mean and running variance.
#[doc(hidden)]
pub const fn tensor_offset(layers: &[(usize, usize)], norms: &[usize], i: usize) -> usize {
    let (mut at, mut t) = (0, 0);
    let dense = 2 * layers.len();
    while t < i && t < dense {
        let (inp, out) = layers[t / 2];
        at += crate::params::padded(if t % 2 == 0 { inp * out } else { out });
        t += 1;
    }
    while t < i {
        at += crate::params::padded(norms[((t - dense) / 2) % norms.len()]);
        t += 1;
    }
    at
}

/// Declares a network: a struct of [`Dense`](crate::layers::Dense) layers with ReLU between
/// them and no activation after the last, optionally a
/// [`BatchNorm`](crate::layers::BatchNorm) after a hidden layer (before its ReLU), its
/// parameters in one flat block, and its [`Network`] implementation. See [`crate::model`].
///
/// ```
/// constnet::network! {
///     /// 784→256→10 with batch normalization after the hidden layer.
///     pub struct MlpBn { fc1: Dense<784, 256>, bn1: BatchNorm<256>, fc2: Dense<256, 10> }
/// }
/// ```
///
/// The expansion names this crate `constnet` (for bytemuck's derive), so depend on it under
/// that name.
///
/// Field names become the tensor names of model files (`fc1.weight`, `fc1.bias`, …,
/// `bn1.weight`, `bn1.running_mean`, …), so the reference network's `fc1`…`fc4` match PyTorch's
/// `state_dict`; each name is also a method returning that layer's parameters
/// ([`DenseRef`](crate::layers::DenseRef), [`BatchNormRef`](crate::layers::BatchNormRef)).
#[macro_export]
macro_rules! network {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident { $($body:tt)* }
    ) => {
        $crate::__network_units!({ $(#[$attr])* $vis struct $name } [] $($body)*);
    };
}

/// Reads `network!`'s fields into units: a dense layer and the batch norm after it, if any.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_units {
    ($head:tt [$($u:tt)*] $l:ident : Dense<$i:tt, $o:tt>, $bn:ident : BatchNorm<$n:tt> $(, $($rest:tt)*)?) => {
        $crate::__network_units!($head [$($u)* ($l, $i, $o, [$bn, $n])] $($($rest)*)?);
    };
    ($head:tt [$($u:tt)*] $l:ident : Dense<$i:tt, $o:tt> $(, $($rest:tt)*)?) => {
        $crate::__network_units!($head [$($u)* ($l, $i, $o, [])] $($($rest)*)?);
    };
    ($head:tt [($fl:ident, $fi:tt, $fo:tt, $fb:tt) $($u:tt)*]) => {
        $crate::__network_define!($head ($fl, $fi) [($fl, $fi, $fo, $fb) $($u)*]);
    };
}

/// Defines the network of `network!` from its units.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_define {
    (
        { $(#[$attr:meta])* $vis:vis struct $name:ident }
        ($first:ident, $in0:tt)
        [$( ($layer:ident, $in:tt, $out:tt, [$($bn:ident, $n:tt)?]) )+]
    ) => {
        $(#[$attr])*
        #[derive(Clone, $crate::__private::Zeroable)]
        #[bytemuck(crate = "constnet::__private::bytemuck")]
        #[repr(C)]
        $vis struct $name {
            // Sums and calls only: bytemuck's derive parses these lengths (without syn's "full").
            block: $crate::__private::Aligned<
                [f32; 0 $( + $crate::__private::padded(($in) * ($out)) + $crate::__private::padded($out)
                    $( + 4 * $crate::__private::padded($n) )? )+],
            >,
            tracked: [u64; 0 $($( + $crate::__private::one($n) )?)+],
        }

        const _: () = {
            use $crate::__private::*;

            /// Each layer's (inputs, outputs).
            const LAYERS: &[(usize, usize)] = &[$(({ $in }, { $out }),)+];
            /// Each batch normalization's features.
            const NORMS: &[usize] = &[$($({ $n },)?)+];
            const LEN: usize = block_len(LAYERS, NORMS);
            const STORAGE: usize = storage_len(LAYERS, NORMS);
            const DENSE_TENSORS: usize = 2 * LAYERS.len();
            const PARAM_TENSORS: usize = DENSE_TENSORS + 2 * NORMS.len();
            const TENSORS: usize = DENSE_TENSORS + 4 * NORMS.len();
            const _: () = assert!(
                core::mem::size_of::<$name>() == (4 * STORAGE + 8 * NORMS.len()).next_multiple_of(64),
                "network!: the block's length"
            );
            // Each layer's input width must be the previous layer's output width.
            const _: () = {
                let mut i = 1;
                while i < LAYERS.len() {
                    assert!(LAYERS[i].0 == LAYERS[i - 1].1, "network!: a layer's input width differs from the previous layer's output width");
                    i += 1;
                }
            };
            $($(
                const _: () = assert!({ $n } == { $out }, concat!("network!: ", stringify!($bn), "'s width differs from its dense layer's output width"));
            )?)+

            /// Buffers for a batch of up to `B` samples.
            #[derive(Zeroable)]
            #[bytemuck(crate = "constnet::__private::bytemuck")]
            #[repr(C)]
            $vis struct Ws<const B: usize> {
                input: Aligned<[[f32; B]; $in0]>,
                labels: [u32; B],
                scale: f32,
                $(
                    $layer: DenseWork<{ $in }, { $out }, B>,
                    $( $bn: BatchNormWork<{ $n }, B>, )?
                )+
            }

            impl<const B: usize> Workspace for Ws<B> {
                const BATCH: usize = B;
                const INPUT: usize = $in0;
                const OUTPUT: usize = LAYERS[LAYERS.len() - 1].1;
                const ZEROED: Self = Self {
                    input: Aligned([[0.0; B]; $in0]),
                    labels: [0; B],
                    scale: 1.0,
                    $(
                        $layer: DenseWork::ZEROED,
                        $( $bn: BatchNormWork::ZEROED, )?
                    )+
                };

                fn input_mut(&mut self, batch: usize) -> (&mut [f32], &mut [f32]) {
                    (&mut self.input.flat_mut()[..$in0 * batch], self.$first.x_rows_mut(batch))
                }
                fn input(&self, batch: usize) -> &[f32] {
                    &self.input.flat()[..$in0 * batch]
                }
                fn labels_mut(&mut self, batch: usize) -> &mut [u32] {
                    &mut self.labels[..batch]
                }
                fn labels(&self, batch: usize) -> &[u32] {
                    &self.labels[..batch]
                }
                fn logits(&self, batch: usize) -> &[f32] {
                    $crate::__network_last!(self; $($layer),+).y(batch)
                }
                fn loss_buffers(&mut self, batch: usize) -> (&[f32], &[u32], &mut [f32]) {
                    let (logits, dlogits) = $crate::__network_last!(self; $($layer),+).y_and_dz_mut(batch);
                    (logits, &self.labels[..batch], dlogits)
                }
                fn dz(&self, l: usize, batch: usize) -> &[f32] {
                    [$(self.$layer.dz(batch)),+][l]
                }
                fn x_rows(&self, l: usize, batch: usize) -> &[f32] {
                    [$(self.$layer.x_rows(batch)),+][l]
                }
                fn dropout_scale(&self) -> f32 {
                    self.scale
                }
                fn batch_norm_grads(&self, k: usize) -> (&[f32], &[f32]) {
                    let all: &[(&[f32], &[f32])] = &[$($(self.$bn.grads(),)?)+];
                    all[k]
                }
                fn batch_norm_stats(&self, k: usize) -> (&[f32], &[f32]) {
                    let all: &[(&[f32], &[f32])] = &[$($(self.$bn.stats(),)?)+];
                    all[k]
                }
            }

            /// The parameters, borrowed.
            #[derive(Clone, Copy)]
            $vis struct View<'a> {
                $(
                    $layer: DenseRef<'a, { $in }, { $out }>,
                    $( $bn: BatchNormRef<'a, { $n }>, )?
                )+
            }

            /// The dense layers' parameters, mutably borrowed layer by layer.
            struct Mut<'a> {
                $( $layer: DenseMut<'a, { $in }, { $out }>, )+
            }

            impl<'a> View<'a> {
                /// The forward pass, in training mode (batch statistics) or not.
                #[allow(unused_variables)]
                fn run_forward<K: Backend, const B: usize>(
                    self,
                    ws: &mut Ws<B>,
                    batch: usize,
                    mut dropout: Option<&mut Dropout<'_>>,
                    train: bool,
                ) {
                    assert!(batch <= B, "forward: batch {batch} exceeds the workspace's {B}");
                    ws.scale = dropout.as_ref().map_or(1.0, |d| d.scale());
                    $crate::__network_forward!(self, ws, batch, K, dropout, train, [&ws.input.flat()[..$in0 * batch]]; $(($layer, [$($bn)?])),+);
                }
            }

            impl<'a> NetworkView<'a> for View<'a> {
                type Net = $name;

                fn forward<K: Backend, const B: usize>(
                    self,
                    ws: &mut Ws<B>,
                    batch: usize,
                    dropout: Option<&mut Dropout<'_>>,
                ) {
                    self.run_forward::<K, B>(ws, batch, dropout, false);
                }

                fn forward_train<K: Backend, const B: usize>(
                    self,
                    ws: &mut Ws<B>,
                    batch: usize,
                    dropout: Option<&mut Dropout<'_>>,
                ) {
                    self.run_forward::<K, B>(ws, batch, dropout, true);
                }

                fn forward_one<K: Backend>(self, x: &[f32], logits: &mut [f32]) {
                    $crate::__network_forward_one!(self, K, [x], logits; $(($layer, [$($bn)?])),+);
                }

                fn tensor(self, i: usize) -> &'a [f32] {
                    let all: [&'a [f32]; TENSORS] = [
                        $(self.$layer.w.as_flattened(), &self.$layer.b[..],)+
                        $($(&self.$bn.weight[..], &self.$bn.bias[..],)?)+
                        $($(&self.$bn.running_mean[..], &self.$bn.running_var[..],)?)+
                    ];
                    all[i]
                }
            }

            impl $name {
                /// Each dense layer's parameters, mutably.
                fn layers_mut(&mut self) -> Mut<'_> {
                    let mut parts: [&mut [f32]; DENSE_TENSORS] = Default::default();
                    let mut rest = &mut self.block.0[..];
                    for (i, part) in parts.iter_mut().enumerate() {
                        let len = <Self as Network>::tensor_info(i).len();
                        let (head, tail) = core::mem::take(&mut rest).split_at_mut(padded(len));
                        *part = &mut head[..len];
                        rest = tail;
                    }
                    let mut parts = parts.into_iter();
                    Mut {
                        $( $layer: DenseMut::from_slices(parts.next().unwrap(), parts.next().unwrap()).expect("the block layout"), )+
                    }
                }

                $(
                    /// This layer's parameters.
                    #[allow(dead_code)]
                    $vis fn $layer(&self) -> DenseRef<'_, { $in }, { $out }> {
                        self.view().$layer
                    }
                    $(
                        /// This batch normalization's tensors.
                        #[allow(dead_code)]
                        $vis fn $bn(&self) -> BatchNormRef<'_, { $n }> {
                            self.view().$bn
                        }
                    )?
                )+
            }

            impl Params for $name {
                const LEN: usize = LEN;
                const ZEROED: Self = Self { block: Aligned([0.0; STORAGE]), tracked: [0; NORMS.len()] };
                fn flat(&self) -> &[f32] {
                    &self.block.0[..LEN]
                }
                fn flat_mut(&mut self) -> &mut [f32] {
                    &mut self.block.0[..LEN]
                }
                fn copy_from(&mut self, other: &Self) {
                    self.block.0.copy_from_slice(&other.block.0);
                    self.tracked = other.tracked;
                }
            }

            impl Network for $name {
                const INPUT: usize = $in0;
                const OUTPUT: usize = LAYERS[LAYERS.len() - 1].1;
                const LAYERS: usize = LAYERS.len();
                const TENSORS: usize = TENSORS;
                const PARAM_TENSORS: usize = PARAM_TENSORS;
                const BATCH_NORMS: usize = NORMS.len();
                const PARAMS: usize = param_count(LAYERS, NORMS);
                type Workspace<const B: usize> = Ws<B>;
                type View<'a> = View<'a>;

                fn view(&self) -> View<'_> {
                    let tensors: [&[f32]; TENSORS] = core::array::from_fn(|i| self.tensor(i));
                    Self::view_from_tensors(&tensors).expect("the block holds every tensor")
                }

                #[allow(unused_mut, unused_variables)]
                fn view_from_tensors<'a>(tensors: &[&'a [f32]]) -> Option<View<'a>> {
                    if tensors.len() != TENSORS {
                        return None;
                    }
                    let (dense, norms) = tensors.split_at(DENSE_TENSORS);
                    let (params, stats) = norms.split_at(PARAM_TENSORS - DENSE_TENSORS);
                    let (mut d, mut p, mut s) = (dense.iter(), params.iter(), stats.iter());
                    Some(View {
                        $(
                            $layer: DenseRef::from_slices(d.next()?, d.next()?)?,
                            $( $bn: BatchNormRef::from_slices(p.next()?, p.next()?, s.next()?, s.next()?)?, )?
                        )+
                    })
                }

                fn tensor_info(i: usize) -> TensorInfo {
                    const NAMES: &[(&str, &[usize])] = &[
                        $(
                            (concat!(stringify!($layer), ".weight"), &[$out, $in]),
                            (concat!(stringify!($layer), ".bias"), &[$out]),
                        )+
                        $($(
                            (concat!(stringify!($bn), ".weight"), &[$n]),
                            (concat!(stringify!($bn), ".bias"), &[$n]),
                        )?)+
                        $($(
                            (concat!(stringify!($bn), ".running_mean"), &[$n]),
                            (concat!(stringify!($bn), ".running_var"), &[$n]),
                        )?)+
                    ];
                    let (name, shape) = NAMES[i];
                    TensorInfo { name, shape, offset: tensor_offset(LAYERS, NORMS, i) }
                }

                fn batch_norm_name(k: usize) -> &'static str {
                    const NAMES: &[&str] = &[$($(stringify!($bn),)?)+];
                    NAMES[k]
                }

                fn batch_norm_layer(k: usize) -> usize {
                    // Whether each dense layer has a batch norm after it.
                    const FOLLOWED: &[bool] = &[$(<[&str]>::len(&[$(stringify!($bn))?]) == 1,)+];
                    (0..FOLLOWED.len()).filter(|&l| FOLLOWED[l]).nth(k).expect("a batch norm")
                }

                fn storage(&self) -> &[f32] {
                    &self.block.0
                }

                fn storage_mut(&mut self) -> &mut [f32] {
                    &mut self.block.0
                }

                fn batches_tracked(&self) -> &[u64] {
                    &self.tracked
                }

                fn batches_tracked_mut(&mut self) -> &mut [u64] {
                    &mut self.tracked
                }

                fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R) {
                    let layers = self.layers_mut();
                    $( layers.$layer.init(init, rng); )+
                    $crate::model::init_batch_norms(self);
                }

                fn backward_inputs<K: Backend, const B: usize>(&self, ws: &mut Ws<B>, batch: usize) {
                    assert!(batch <= B, "backward: batch {batch} exceeds the workspace's {B}");
                    let net = self.view();
                    let scale = ws.scale;
                    $crate::__network_backward!(net, ws, batch, K, scale; $(($layer, [$($bn)?])),+);
                }
            }
        };
    };
}

/// `plain`'s dense layers differ from those of the network folded into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldMismatch {
    /// The first tensor that differs (its name in the network with batch norms), or the
    /// first batch-norm tensor when `plain` has batch norms itself.
    pub tensor: &'static str,
}

impl core::fmt::Display for FoldMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "cannot fold: the plain network has no tensor {} of the same shape (or has batch norms)",
            self.tensor
        )
    }
}

impl core::error::Error for FoldMismatch {}

/// Folds `net`'s batch normalizations (with their running statistics: evaluation) into the
/// dense layers before them, writing the result into `plain`, a network of the same dense
/// layers (names and shapes) without batch norms: its logits are `net`'s in evaluation mode,
/// up to rounding, at no cost for the normalization (see
/// [`crate::layers::batchnorm::fold_into_dense`]). For the reference network with batch norms,
/// `plain` is [`crate::MnistMlp`], which every tool reads. Allocates nothing.
pub fn fold_batch_norms<N: Network, P: Network>(
    net: &N,
    plain: &mut P,
) -> Result<(), FoldMismatch> {
    let dense = 2 * N::LAYERS;
    if P::BATCH_NORMS > 0 || P::TENSORS != dense {
        let tensor = N::tensor_info(dense.min(N::TENSORS - 1)).name;
        return Err(FoldMismatch { tensor });
    }
    for i in 0..dense {
        let (a, b) = (N::tensor_info(i), P::tensor_info(i));
        if a.name != b.name || a.shape != b.shape {
            return Err(FoldMismatch { tensor: a.name });
        }
        plain.tensor_mut(i).copy_from_slice(net.tensor(i));
    }
    for k in 0..N::BATCH_NORMS {
        let l = N::batch_norm_layer(k);
        let (p, s) = (dense + 2 * k, N::PARAM_TENSORS + 2 * k);
        let bn = [
            net.tensor(p),
            net.tensor(p + 1),
            net.tensor(s),
            net.tensor(s + 1),
        ];
        let (w, b) = (
            P::tensor_info(2 * l).range(),
            P::tensor_info(2 * l + 1).range(),
        );
        let (front, back) = plain.storage_mut().split_at_mut(b.start);
        crate::layers::batchnorm::fold_into_dense(bn, &mut front[w], &mut back[..b.len()]);
    }
    Ok(())
}

/// Sets every batch normalization of `net` to PyTorch's initial state: weight 1, bias 0,
/// running mean 0, running variance 1, no batches tracked.
#[doc(hidden)]
pub fn init_batch_norms<N: Network>(net: &mut N) {
    let dense = 2 * N::LAYERS;
    for i in dense..N::TENSORS {
        let j = i - dense;
        let which = if i < N::PARAM_TENSORS {
            j % 2
        } else {
            2 + j % 2
        };
        net.tensor_mut(i)
            .fill(crate::layers::batchnorm::initial_value(which));
    }
    net.batches_tracked_mut().fill(0);
}

/// Expands to the last layer's field of `$ws`.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_last {
    ($ws:ident; $l:ident) => { $ws.$l };
    ($ws:ident; $l:ident, $($rest:ident),+) => { $crate::__network_last!($ws; $($rest),+) };
}

/// Forward through the units in order: a hidden dense layer runs with ReLU, or without it and
/// then its batch normalization (which applies the ReLU); dropout after each but the last.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_forward {
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, $train:ident, [$x:expr]; ($l:ident, [])) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::kernels::Activation::Identity);
    };
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, $train:ident, [$x:expr]; ($l:ident, []), $($rest:tt),+) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::kernels::Activation::Relu);
        if let Some(d) = $drop.as_mut() {
            d.apply($ws.$l.y_mut($batch));
        }
        $crate::__network_forward!($net, $ws, $batch, $K, $drop, $train, [$ws.$l.y($batch)]; $($rest),+);
    };
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, $train:ident, [$x:expr]; ($l:ident, [$bn:ident]), $($rest:tt),+) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::kernels::Activation::Identity);
        $net.$bn.forward($ws.$l.y($batch), &mut $ws.$bn, $batch, $train);
        if let Some(d) = $drop.as_mut() {
            d.apply($ws.$bn.y_mut($batch));
        }
        $crate::__network_forward!($net, $ws, $batch, $K, $drop, $train, [$ws.$bn.y($batch)]; $($rest),+);
    };
}

/// Forward for one sample through stack buffers (batch normalization with its running
/// statistics).
#[doc(hidden)]
#[macro_export]
macro_rules! __network_forward_one {
    ($net:ident, $K:ident, [$x:expr], $out:ident; ($l:ident, [])) => {
        $net.$l.forward_one::<$K>($x, $out, $crate::kernels::Activation::Identity);
    };
    ($net:ident, $K:ident, [$x:expr], $out:ident; ($l:ident, []), $($rest:tt),+) => {
        let mut hidden = $net.$l.output_one();
        $net.$l.forward_one::<$K>($x, &mut hidden, $crate::kernels::Activation::Relu);
        $crate::__network_forward_one!($net, $K, [&hidden], $out; $($rest),+);
    };
    ($net:ident, $K:ident, [$x:expr], $out:ident; ($l:ident, [$bn:ident]), $($rest:tt),+) => {
        let mut hidden = $net.$l.output_one();
        $net.$l.forward_one::<$K>($x, &mut hidden, $crate::kernels::Activation::Identity);
        $net.$bn.forward_one(&mut hidden);
        $crate::__network_forward_one!($net, $K, [&hidden], $out; $($rest),+);
    };
}

/// The input gradients, through the units in reverse: the recursion runs the later layers
/// first. Each layer after the first fills its batch-major input from the previous unit's
/// output and writes the previous unit's `dz` through the ReLU mask; a batch normalization
/// then carries it back to its dense layer's `dz` (and keeps its own weight gradients).
#[doc(hidden)]
#[macro_export]
macro_rules! __network_backward {
    (@after $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $prev:tt; ) => {};
    (@after $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $prev:tt; $cur:tt $(, $rest:tt)*) => {
        $crate::__network_backward!(@after $net, $ws, $batch, $K, $scale; $cur; $($rest),*);
        $crate::__network_backward!(@step $net, $ws, $batch, $K, $scale; $prev; $cur);
    };
    (@step $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; ($prev:ident, []); ($l:ident, $lb:tt)) => {
        {
            let (x, dx) = $ws.$prev.y_and_dz_mut($batch);
            let work = &mut $ws.$l;
            work.set_x_rows::<$K>(x, $batch);
            let grad = $crate::kernels::InputGrad::Relu { x, scale: $scale };
            $net.$l.backward_input::<$K>(work.dz($batch), dx, grad, $batch);
        }
    };
    (@step $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; ($prev:ident, [$pbn:ident]); ($l:ident, $lb:tt)) => {
        {
            let (x, dx) = $ws.$pbn.y_and_dz_mut($batch);
            let work = &mut $ws.$l;
            work.set_x_rows::<$K>(x, $batch);
            let grad = $crate::kernels::InputGrad::Relu { x, scale: $scale };
            $net.$l.backward_input::<$K>(work.dz($batch), dx, grad, $batch);
        }
        $net.$pbn.backward(&mut $ws.$pbn, $ws.$prev.dz_mut($batch), $batch);
    };
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $first:tt $(, $rest:tt)*) => {
        $crate::__network_backward!(@after $net, $ws, $batch, $K, $scale; $first; $($rest),*);
    };
}
