//! Networks: layers composed at compile time, their buffers, and the training step.
//!
//! A network is declared with [`network!`](crate::network), which generates a concrete struct
//! of [`Dense`](crate::Dense) layers (ReLU between them, none after the last) and implements
//! [`Network`] for it:
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
//! Around the parameters sit three more values of fixed size, all created before training:
//! gradients (another value of the network type), the optimizer state (ditto) and a
//! [`Workspace`] holding every activation and gradient buffer for batches of up to `B` samples.
//! [`train_step`] then runs forward, loss, backward and update without touching the allocator.
//! Nothing here allocates; the `zeroed_box` constructors exist only under the `alloc` feature,
//! and `ZEROED` constants initialise `static`s under `no_std`.
#![forbid(unsafe_code)]

use crate::kernels::{Backend, Mode, SoftmaxXent};
use crate::layers::{Dropout, Init};
use crate::optim::Optimizer;
use rand_xoshiro::rand_core::Rng;

/// The name and shape of one parameter tensor, as in PyTorch's `state_dict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// `"fc1.weight"`, `"fc1.bias"`, …
    pub name: &'static str,
    /// `[OUT, IN]` for a weight, `[OUT]` for a bias.
    pub shape: &'static [usize],
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
}

/// A network of dense layers with compile-time widths. Implemented by [`network!`](crate::network).
pub trait Network: bytemuck::Zeroable + Sized + Send + Sync + 'static {
    /// Input features.
    const INPUT: usize;
    /// Output classes (logits).
    const OUTPUT: usize;
    /// Parameter tensors: a weight and a bias per layer.
    const TENSORS: usize;
    /// Parameters in all.
    const PARAMS: usize;
    /// All-zero parameters, for `static`s.
    const ZEROED: Self;
    /// Buffers for a batch of up to `B` samples.
    type Workspace<const B: usize>: Workspace;
    /// Borrowed parameters: what inference runs on.
    type View<'a>: NetworkView<'a, Net = Self>;

    /// Borrows the parameters.
    fn view(&self) -> Self::View<'_>;
    /// A view over parameter tensors stored elsewhere (a memory map, a `static` blob), in the
    /// order of [`Network::tensor_info`]; `None` if a length is wrong.
    fn view_from_tensors<'a>(tensors: &[&'a [f32]]) -> Option<Self::View<'a>>;
    /// Name and shape of tensor `i < TENSORS`.
    fn tensor_info(i: usize) -> TensorInfo;
    /// Tensor `i` as a flat slice.
    fn tensor(&self, i: usize) -> &[f32];
    /// Tensor `i` as a flat mutable slice.
    fn tensor_mut(&mut self, i: usize) -> &mut [f32];
    /// Draws fresh parameters, layer by layer in order.
    fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R);
    /// Backward pass after [`Network::forward`] and the loss: reads each layer's `dz` (the last
    /// one written by the loss) and writes the gradients into `grads` according to `mode`.
    fn backward<K: Backend, const B: usize>(
        &self,
        grads: &mut Self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        mode: Mode,
    );

    /// Forward pass over the batch in `ws` (see [`set_input`]); the logits land in
    /// [`Workspace::logits`]. With `dropout`, hidden activations are dropped (training).
    fn forward<K: Backend, R: Rng + ?Sized, const B: usize>(
        &self,
        ws: &mut Self::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_, R>>,
    ) {
        self.view().forward::<K, R, B>(ws, batch, dropout);
    }

    /// Logits for one sample: x `[INPUT]`, logits `[OUTPUT]`. Uses only stack buffers.
    fn forward_one<K: Backend>(&self, x: &[f32], logits: &mut [f32]) {
        self.view().forward_one::<K>(x, logits);
    }

    /// All-zero parameters on the heap, without a stack temporary.
    #[cfg(feature = "alloc")]
    fn zeroed_box() -> alloc::boxed::Box<Self> {
        bytemuck::zeroed_box()
    }

    /// Freshly initialised parameters on the heap.
    #[cfg(feature = "alloc")]
    fn new_boxed<R: Rng + ?Sized>(init: Init, rng: &mut R) -> alloc::boxed::Box<Self> {
        let mut net = Self::zeroed_box();
        net.init(init, rng);
        net
    }
}

/// Borrowed parameters of a network: the inference passes.
pub trait NetworkView<'a>: Copy {
    /// The network these parameters belong to.
    type Net: Network;
    /// See [`Network::forward`].
    fn forward<K: Backend, R: Rng + ?Sized, const B: usize>(
        self,
        ws: &mut <Self::Net as Network>::Workspace<B>,
        batch: usize,
        dropout: Option<&mut Dropout<'_, R>>,
    );
    /// See [`Network::forward_one`].
    fn forward_one<K: Backend>(self, x: &[f32], logits: &mut [f32]);
    /// Tensor `i` (same order as [`Network::tensor_info`]).
    fn tensor(self, i: usize) -> &'a [f32];
}

/// A network's buffers for batches of up to [`Workspace::BATCH`] samples.
pub trait Workspace: bytemuck::Zeroable + Sized + Send {
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
    /// The factor dropout applied to hidden activations in the last forward pass (1 without).
    fn dropout_scale(&self) -> f32;
    /// Records the dropout factor for the backward pass.
    fn set_dropout_scale(&mut self, scale: f32);

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
    K::run(crate::kernels::Transpose {
        rows: batch,
        cols: W::INPUT,
        src: rows,
        dst: features,
    });
}

/// One training step on the batch already in `ws` (input and labels): forward (with optional
/// dropout), softmax cross-entropy, backward, optimizer update with learning rate `lr`.
/// Returns the batch's mean loss, or NaN if any gradient was NaN or infinite (the run must
/// stop; see [`Optimizer::step`]). Allocates nothing.
pub fn train_step<N, K, O, R, const B: usize>(
    net: &mut N,
    grads: &mut N,
    opt: &mut O,
    ws: &mut N::Workspace<B>,
    batch: usize,
    lr: f32,
    dropout: Option<&mut Dropout<'_, R>>,
) -> f32
where
    N: Network,
    K: Backend,
    O: Optimizer<N>,
    R: Rng + ?Sized,
{
    let loss = forward_backward::<N, K, R, B>(net, grads, ws, batch, dropout);
    let finite = opt.step::<K>(net, grads, lr);
    if finite { loss } else { f32::NAN }
}

/// Forward, loss and backward, leaving the gradients (overwritten) in `grads`: a training step
/// without the update, for gradient checks and data-parallel workers. Returns the mean loss.
pub fn forward_backward<N, K, R, const B: usize>(
    net: &N,
    grads: &mut N,
    ws: &mut N::Workspace<B>,
    batch: usize,
    dropout: Option<&mut Dropout<'_, R>>,
) -> f32
where
    N: Network,
    K: Backend,
    R: Rng + ?Sized,
{
    net.forward::<K, R, B>(ws, batch, dropout);
    let (logits, labels, dlogits) = ws.loss_buffers(batch);
    let classes = N::OUTPUT;
    let loss = K::run(SoftmaxXent {
        classes,
        batch,
        logits,
        labels,
        dlogits,
    });
    net.backward::<K, B>(grads, ws, batch, Mode::Overwrite);
    loss
}

/// Declares a network: a struct of [`Dense`](crate::Dense) layers with ReLU between them and
/// no activation after the last, and its [`Network`] implementation. See [`crate::model`].
///
/// The expansion names this crate `constnet` (for bytemuck's derive), so depend on it under
/// that name.
///
/// Field names become the tensor names of model files (`fc1.weight`, `fc1.bias`, …), so the
/// reference network's `fc1`…`fc4` match PyTorch's `state_dict`.
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
        #[derive($crate::__private::Zeroable)]
        #[bytemuck(crate = "constnet::__private::bytemuck")]
        #[repr(C)]
        $vis struct $name {
            #[allow(missing_docs)]
            pub $first: $crate::Dense<{ $in0 }, { $out0 }>,
            $(
                #[allow(missing_docs)]
                pub $layer: $crate::Dense<{ $in }, { $out }>,
            )*
        }

        const _: () = {
            use $crate::__private::*;

            // Each layer's input width must be the previous layer's output width.
            const INS: &[usize] = &[$in0 $(, $in)*];
            const OUTS: &[usize] = &[$out0 $(, $out)*];
            const _: () = {
                let mut i = 1;
                while i < INS.len() {
                    assert!(INS[i] == OUTS[i - 1], "network!: a layer's input width differs from the previous layer's output width");
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
                const OUTPUT: usize = OUTS[OUTS.len() - 1];
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
                fn dropout_scale(&self) -> f32 {
                    self.scale
                }
                fn set_dropout_scale(&mut self, scale: f32) {
                    self.scale = scale;
                }
            }

            /// The parameters, borrowed.
            #[derive(Clone, Copy)]
            $vis struct View<'a> {
                $first: DenseRef<'a, { $in0 }, { $out0 }>,
                $( $layer: DenseRef<'a, { $in }, { $out }>, )*
            }

            impl<'a> NetworkView<'a> for View<'a> {
                type Net = $name;

                fn forward<K: Backend, R: Rng + ?Sized, const B: usize>(
                    self,
                    ws: &mut Ws<B>,
                    batch: usize,
                    mut dropout: Option<&mut Dropout<'_, R>>,
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

            impl Network for $name {
                const INPUT: usize = $in0;
                const OUTPUT: usize = OUTS[OUTS.len() - 1];
                const TENSORS: usize = 2 * INS.len();
                const PARAMS: usize = $in0 * $out0 + $out0 $(+ $in * $out + $out)*;
                const ZEROED: Self = Self { $first: Dense::ZEROED $(, $layer: Dense::ZEROED)* };
                type Workspace<const B: usize> = Ws<B>;
                type View<'a> = View<'a>;

                fn view(&self) -> View<'_> {
                    View { $first: self.$first.as_ref() $(, $layer: self.$layer.as_ref())* }
                }

                fn view_from_tensors<'a>(tensors: &[&'a [f32]]) -> Option<View<'a>> {
                    if tensors.len() != Self::TENSORS {
                        return None;
                    }
                    let mut t = tensors.iter();
                    Some(View {
                        $first: DenseRef::from_slices(t.next()?, t.next()?)?,
                        $( $layer: DenseRef::from_slices(t.next()?, t.next()?)?, )*
                    })
                }

                fn tensor_info(i: usize) -> TensorInfo {
                    const INFO: &[TensorInfo] = &[
                        TensorInfo { name: concat!(stringify!($first), ".weight"), shape: &[$out0, $in0] },
                        TensorInfo { name: concat!(stringify!($first), ".bias"), shape: &[$out0] },
                        $(
                            TensorInfo { name: concat!(stringify!($layer), ".weight"), shape: &[$out, $in] },
                            TensorInfo { name: concat!(stringify!($layer), ".bias"), shape: &[$out] },
                        )*
                    ];
                    INFO[i]
                }

                fn tensor(&self, i: usize) -> &[f32] {
                    [self.$first.w.flat(), self.$first.b.flat() $(, self.$layer.w.flat(), self.$layer.b.flat())*][i]
                }

                fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
                    let all = [self.$first.w.flat_mut(), self.$first.b.flat_mut() $(, self.$layer.w.flat_mut(), self.$layer.b.flat_mut())*];
                    all.into_iter().nth(i).expect("tensor index out of range")
                }

                fn init<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R) {
                    self.$first.init(init, rng);
                    $( self.$layer.init(init, rng); )*
                }

                fn backward<K: Backend, const B: usize>(&self, grads: &mut Self, ws: &mut Ws<B>, batch: usize, mode: Mode) {
                    assert!(batch <= B, "backward: batch {batch} exceeds the workspace's {B}");
                    let net = self.view();
                    let scale = ws.scale;
                    $crate::__network_backward!(net, grads, ws, batch, mode, K, scale; $first $(, $layer)*);
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
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::Activation::Identity);
    };
    ($net:ident, $ws:ident, $batch:ident, $K:ident, $drop:ident, [$x:expr]; $l:ident, $($rest:ident),+) => {
        $net.$l.forward::<$K>($x, $ws.$l.y_mut($batch), $batch, $crate::Activation::Relu);
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
        $net.$l.forward_one::<$K>($x, $out, $crate::Activation::Identity);
    };
    ($net:ident, $K:ident, [$x:expr], $out:ident; $l:ident, $($rest:ident),+) => {
        let mut hidden = $net.$l.output_one();
        $net.$l.forward_one::<$K>($x, &mut hidden, $crate::Activation::Relu);
        $crate::__network_forward_one!($net, $K, [&hidden], $out; $($rest),+);
    };
}

/// Backward through the layers in reverse: the recursion runs the later layers first. Each
/// layer after the first fills its batch-major input from the previous layer's output and
/// writes the previous layer's `dz` through the ReLU mask.
#[doc(hidden)]
#[macro_export]
macro_rules! __network_backward {
    ($net:ident, $g:ident, $ws:ident, $batch:ident, $mode:ident, $K:ident, $scale:ident; $first:ident $(, $rest:ident)*) => {
        $crate::__network_backward!(@after $net, $g, $ws, $batch, $mode, $K, $scale; $first; $($rest),*);
        $net.$first.backward::<$K>($ws.$first.x_rows($batch), $ws.$first.dz($batch), &mut $g.$first, None, $batch, $mode);
    };
    (@after $net:ident, $g:ident, $ws:ident, $batch:ident, $mode:ident, $K:ident, $scale:ident; $prev:ident; ) => {};
    (@after $net:ident, $g:ident, $ws:ident, $batch:ident, $mode:ident, $K:ident, $scale:ident; $prev:ident; $l:ident $(, $rest:ident)*) => {
        $crate::__network_backward!(@after $net, $g, $ws, $batch, $mode, $K, $scale; $l; $($rest),*);
        {
            let (x, dx) = $ws.$prev.y_and_dz_mut($batch);
            let work = &mut $ws.$l;
            work.set_x_rows::<$K>(x, $batch);
            let how = $crate::InputGrad::Relu { x, scale: $scale };
            $net.$l.backward::<$K>(work.x_rows($batch), work.dz($batch), &mut $g.$l, Some((dx, how)), $batch, $mode);
        }
    };
}
