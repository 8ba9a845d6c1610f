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
    /// Parameter tensors: a weight and a bias per layer.
    const TENSORS: usize;
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
    /// Name, shape and offset of tensor `i < TENSORS`.
    fn tensor_info(i: usize) -> TensorInfo;
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
        &self.flat()[Self::tensor_info(i).range()]
    }

    /// Tensor `i` as a flat mutable slice.
    fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        let range = Self::tensor_info(i).range();
        &mut self.flat_mut()[range]
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
    /// [`Workspace::logits`]. With `dropout`, hidden activations are dropped (training).
    fn forward<K: Backend, const B: usize>(
        &self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_>>,
    ) {
        self.view().forward::<K, B>(ws, batch, dropout);
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
/// filled: `grads (mode)= …`.
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
    let batch = indices.len();
    assert!(
        batch <= W::BATCH,
        "load_u8_batch: {batch} samples exceed the workspace's batch of {}",
        W::BATCH
    );
    let (cols, rows) = ws.input_mut(batch);
    let images = |j: usize| &pixels[indices[j] as usize * W::INPUT..][..W::INPUT];
    K::run(LoadU8Batch {
        features: W::INPUT,
        batch,
        images,
        rows,
        cols,
    });
    for (l, &i) in ws.labels_mut(batch).iter_mut().zip(indices) {
        *l = u32::from(labels[i as usize]);
    }
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
    let batch = indices.len();
    assert!(
        batch <= W::BATCH,
        "load_f32_batch: {batch} samples exceed the workspace's batch of {}",
        W::BATCH
    );
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
    for (l, &i) in ws.labels_mut(batch).iter_mut().zip(indices) {
        *l = u32::from(labels[i as usize]);
    }
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
    let batch = indices.len();
    assert!(
        batch <= W::BATCH && images.len() >= batch * W::INPUT,
        "load_u8_images: {batch} samples exceed the workspace's batch of {} or the images",
        W::BATCH
    );
    let (cols, rows) = ws.input_mut(batch);
    let images = |j: usize| &images[j * W::INPUT..][..W::INPUT];
    K::run(LoadU8Batch {
        features: W::INPUT,
        batch,
        images,
        rows,
        cols,
    });
    for (l, &i) in ws.labels_mut(batch).iter_mut().zip(indices) {
        *l = u32::from(labels[i as usize]);
    }
}

/// The length of a flat block holding dense layers of these (inputs, outputs), each tensor
/// padded to whole cache lines.
#[doc(hidden)]
pub const fn block_len(layers: &[(usize, usize)]) -> usize {
    tensor_offset(layers, 2 * layers.len())
}

/// Where tensor `i` (weight `2l`, bias `2l + 1`) starts in such a block.
#[doc(hidden)]
pub const fn tensor_offset(layers: &[(usize, usize)], i: usize) -> usize {
    let (mut at, mut t) = (0, 0);
    while t < i {
        let (inp, out) = layers[t / 2];
        at += crate::params::padded(if t % 2 == 0 { inp * out } else { out });
        t += 1;
    }
    at
}

/// Declares a network: a struct of [`Dense`](crate::layers::Dense) layers with ReLU between
/// them and no activation after the last, its parameters in one flat block, and its
/// [`Network`] implementation. See [`crate::model`].
///
/// The expansion names this crate `constnet` (for bytemuck's derive), so depend on it under
/// that name.
///
/// Field names become the tensor names of model files (`fc1.weight`, `fc1.bias`, …), so the
/// reference network's `fc1`…`fc4` match PyTorch's `state_dict`; each name is also a method
/// returning that layer's parameters ([`DenseRef`](crate::layers::DenseRef)).
#[macro_export]
macro_rules! network {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $first:ident : Dense<$in0:tt, $out0:tt>
            $(, $layer:ident : Dense<$in:tt, $out:tt>)* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, $crate::__private::Zeroable)]
        #[bytemuck(crate = "constnet::__private::bytemuck")]
        #[repr(C)]
        $vis struct $name {
            block: $crate::__private::Aligned<
                [f32; $crate::__private::padded(($in0) * ($out0)) + $crate::__private::padded($out0)
                    $(+ $crate::__private::padded(($in) * ($out)) + $crate::__private::padded($out))*],
            >,
        }

        const _: () = {
            use $crate::__private::*;

            /// Each layer's (inputs, outputs).
            const LAYERS: &[(usize, usize)] = &[({ $in0 }, { $out0 }) $(, ({ $in }, { $out }))*];
            const LEN: usize = block_len(LAYERS);
            const TENSORS: usize = 2 * LAYERS.len();
            const _: () = assert!(core::mem::size_of::<$name>() == 4 * LEN, "network!: the block's length");
            // Each layer's input width must be the previous layer's output width.
            const _: () = {
                let mut i = 1;
                while i < LAYERS.len() {
                    assert!(LAYERS[i].0 == LAYERS[i - 1].1, "network!: a layer's input width differs from the previous layer's output width");
                    i += 1;
                }
            };

            /// Buffers for a batch of up to `B` samples.
            #[derive(Zeroable)]
            #[bytemuck(crate = "constnet::__private::bytemuck")]
            #[repr(C)]
            $vis struct Ws<const B: usize> {
                input: Aligned<[[f32; B]; $in0]>,
                labels: [u32; B],
                scale: f32,
                $first: DenseWork<{ $in0 }, { $out0 }, B>,
                $( $layer: DenseWork<{ $in }, { $out }, B>, )*
            }

            impl<const B: usize> Workspace for Ws<B> {
                const BATCH: usize = B;
                const INPUT: usize = $in0;
                const OUTPUT: usize = LAYERS[LAYERS.len() - 1].1;
                const ZEROED: Self = Self {
                    input: Aligned([[0.0; B]; $in0]),
                    labels: [0; B],
                    scale: 1.0,
                    $first: DenseWork::ZEROED,
                    $( $layer: DenseWork::ZEROED, )*
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
                    $crate::__network_last!(self; $first $(, $layer)*).y(batch)
                }
                fn loss_buffers(&mut self, batch: usize) -> (&[f32], &[u32], &mut [f32]) {
                    let (logits, dlogits) = $crate::__network_last!(self; $first $(, $layer)*).y_and_dz_mut(batch);
                    (logits, &self.labels[..batch], dlogits)
                }
                fn dz(&self, l: usize, batch: usize) -> &[f32] {
                    [self.$first.dz(batch) $(, self.$layer.dz(batch))*][l]
                }
                fn x_rows(&self, l: usize, batch: usize) -> &[f32] {
                    [self.$first.x_rows(batch) $(, self.$layer.x_rows(batch))*][l]
                }
                fn dropout_scale(&self) -> f32 {
                    self.scale
                }
            }

            /// The parameters, borrowed.
            #[derive(Clone, Copy)]
            $vis struct View<'a> {
                $first: DenseRef<'a, { $in0 }, { $out0 }>,
                $( $layer: DenseRef<'a, { $in }, { $out }>, )*
            }

            /// The parameters, mutably borrowed layer by layer.
            struct Mut<'a> {
                $first: DenseMut<'a, { $in0 }, { $out0 }>,
                $( $layer: DenseMut<'a, { $in }, { $out }>, )*
            }

            impl<'a> NetworkView<'a> for View<'a> {
                type Net = $name;

                fn forward<K: Backend, const B: usize>(
                    self,
                    ws: &mut Ws<B>,
                    batch: usize,
                    mut dropout: Option<&mut Dropout<'_>>,
                ) {
                    assert!(batch <= B, "forward: batch {batch} exceeds the workspace's {B}");
                    ws.scale = dropout.as_ref().map_or(1.0, |d| d.scale());
                    $crate::__network_forward!(self, ws, batch, K, dropout, [&ws.input.flat()[..$in0 * batch]]; $first $(, $layer)*);
                }

                fn forward_one<K: Backend>(self, x: &[f32], logits: &mut [f32]) {
                    $crate::__network_forward_one!(self, K, [x], logits; $first $(, $layer)*);
                }

                fn tensor(self, i: usize) -> &'a [f32] {
                    [self.$first.w.as_flattened(), &self.$first.b[..] $(, self.$layer.w.as_flattened(), &self.$layer.b[..])*][i]
                }
            }

            impl $name {
                /// Each layer's parameters, mutably.
                fn layers_mut(&mut self) -> Mut<'_> {
                    let mut parts: [&mut [f32]; TENSORS] = Default::default();
                    let mut rest = &mut self.block.0[..];
                    for (i, part) in parts.iter_mut().enumerate() {
                        let len = <Self as Network>::tensor_info(i).len();
                        let (head, tail) = core::mem::take(&mut rest).split_at_mut(padded(len));
                        *part = &mut head[..len];
                        rest = tail;
                    }
                    let mut parts = parts.into_iter();
                    Mut {
                        $first: DenseMut::from_slices(parts.next().unwrap(), parts.next().unwrap()).expect("the block layout"),
                        $( $layer: DenseMut::from_slices(parts.next().unwrap(), parts.next().unwrap()).expect("the block layout"), )*
                    }
                }

                /// This layer's parameters.
                #[allow(dead_code)]
                $vis fn $first(&self) -> DenseRef<'_, { $in0 }, { $out0 }> {
                    self.view().$first
                }
                $(
                    /// This layer's parameters.
                    #[allow(dead_code)]
                    $vis fn $layer(&self) -> DenseRef<'_, { $in }, { $out }> {
                        self.view().$layer
                    }
                )*
            }

            impl Params for $name {
                const LEN: usize = LEN;
                const ZEROED: Self = Self { block: Aligned([0.0; LEN]) };
                fn flat(&self) -> &[f32] {
                    &self.block.0
                }
                fn flat_mut(&mut self) -> &mut [f32] {
                    &mut self.block.0
                }
            }

            impl Network for $name {
                const INPUT: usize = $in0;
                const OUTPUT: usize = LAYERS[LAYERS.len() - 1].1;
                const LAYERS: usize = LAYERS.len();
                const TENSORS: usize = TENSORS;
                const PARAMS: usize = $in0 * $out0 + $out0 $(+ $in * $out + $out)*;
                type Workspace<const B: usize> = Ws<B>;
                type View<'a> = View<'a>;

                fn view(&self) -> View<'_> {
                    let tensors: [&[f32]; TENSORS] = core::array::from_fn(|i| self.tensor(i));
                    Self::view_from_tensors(&tensors).expect("the block holds every tensor")
                }

                fn view_from_tensors<'a>(tensors: &[&'a [f32]]) -> Option<View<'a>> {
                    if tensors.len() != TENSORS {
                        return None;
                    }
                    let mut t = tensors.iter();
                    Some(View {
                        $first: DenseRef::from_slices(t.next()?, t.next()?)?,
                        $( $layer: DenseRef::from_slices(t.next()?, t.next()?)?, )*
                    })
                }

                fn tensor_info(i: usize) -> TensorInfo {
                    const NAMES: &[(&str, &[usize])] = &[
                        (concat!(stringify!($first), ".weight"), &[$out0, $in0]),
                        (concat!(stringify!($first), ".bias"), &[$out0]),
                        $(
                            (concat!(stringify!($layer), ".weight"), &[$out, $in]),
                            (concat!(stringify!($layer), ".bias"), &[$out]),
                        )*
                    ];
                    let (name, shape) = NAMES[i];
                    TensorInfo { name, shape, offset: tensor_offset(LAYERS, i) }
                }

                fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R) {
                    let layers = self.layers_mut();
                    layers.$first.init(init, rng);
                    $( layers.$layer.init(init, rng); )*
                }

                fn backward_inputs<K: Backend, const B: usize>(&self, ws: &mut Ws<B>, batch: usize) {
                    assert!(batch <= B, "backward: batch {batch} exceeds the workspace's {B}");
                    let net = self.view();
                    let scale = ws.scale;
                    $crate::__network_backward!(net, ws, batch, K, scale; $first $(, $layer)*);
                }
            }
        };
    };
}

/// Expands to the last layer's field of `$ws`.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_last {
    ($ws:ident; $l:ident) => { $ws.$l };
    ($ws:ident; $l:ident, $($rest:ident),+) => { $crate::__network_last!($ws; $($rest),+) };
}

/// Forward through the layers in order: ReLU (and dropout) after each but the last.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_forward {
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, [$x:expr]; $l:ident) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::kernels::Activation::Identity);
    };
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, [$x:expr]; $l:ident, $($rest:ident),+) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::kernels::Activation::Relu);
        if let Some(d) = $drop.as_mut() {
            d.apply($ws.$l.y_mut($batch));
        }
        $crate::__network_forward!($net, $ws, $batch, $K, $drop, [$ws.$l.y($batch)]; $($rest),+);
    };
}

/// Forward for one sample through stack buffers.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_forward_one {
    ($net:ident, $K:ident, [$x:expr], $out:ident; $l:ident) => {
        $net.$l.forward_one::<$K>($x, $out, $crate::kernels::Activation::Identity);
    };
    ($net:ident, $K:ident, [$x:expr], $out:ident; $l:ident, $($rest:ident),+) => {
        let mut hidden = $net.$l.output_one();
        $net.$l.forward_one::<$K>($x, &mut hidden, $crate::kernels::Activation::Relu);
        $crate::__network_forward_one!($net, $K, [&hidden], $out; $($rest),+);
    };
}

/// The input gradients, through the layers in reverse: the recursion runs the later layers
/// first. Each layer after the first fills its batch-major input from the previous layer's
/// output and writes the previous layer's `dz` through the ReLU mask.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_backward {
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $first:ident $(, $rest:ident)*) => {
        $crate::__network_backward!(@after $net, $ws, $batch, $K, $scale; $first; $($rest),*);
    };
    (@after $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $prev:ident; ) => {};
    (@after $net:ident, $ws:ident, $batch:ident, $K:ident, $scale:ident; $prev:ident; $l:ident $(, $rest:ident)*) => {
        $crate::__network_backward!(@after $net, $ws, $batch, $K, $scale; $l; $($rest),*);
        {
            let (x, dx) = $ws.$prev.y_and_dz_mut($batch);
            let work = &mut $ws.$l;
            work.set_x_rows::<$K>(x, $batch);
            let grad = $crate::kernels::InputGrad::Relu { x, scale: $scale };
            $net.$l.backward_input::<$K>(work.dz($batch), dx, grad, $batch);
        }
    };
}
