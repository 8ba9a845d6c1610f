//! The training step: forward, softmax cross-entropy, backward and the optimizer update, on a
//! batch already in a workspace. The one place where networks ([`crate::model`]) meet
//! optimizers ([`crate::optim`]); the trainer ([`crate::train`]) and its threads
//! ([`crate::parallel`]) build on it.
//!
//! ```
//! use constnet::{Adam, AdamConfig, Init, MnistMlp, Network, Params, Simd, Workspace};
//! let mut rng = constnet::data::derived_rng(0, 0, 0);
//! let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng);
//! let (mut grads, mut adam) = (MnistMlp::zeroed_box(), Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT));
//! let mut ws = <MnistMlp as Network>::Workspace::<64>::zeroed_box();
//! constnet::set_input::<_, Simd>(&mut *ws, &[0.5; 2 * 784], 2);
//! ws.labels_mut(2).copy_from_slice(&[3, 7]);
//! let loss = constnet::train_step::<Simd, _, _, 64>(&mut *net, &mut grads, &mut *adam, &mut ws, 2, 1e-3, None);
//! assert!(loss.is_finite());
//! ```
#![forbid(unsafe_code)]

use crate::kernels::{Backend, Mode, SoftmaxXent};
use crate::layers::Dropout;
use crate::model::{Network, Workspace};
use crate::optim::Optimizer;

/// One training step on the batch already in `ws` (input and labels): forward (with optional
/// dropout), softmax cross-entropy, backward into `grads`, then the optimizer's update with
/// learning rate `lr` as one pass over the flat blocks. Returns the batch's mean loss, or NaN
/// if any gradient was NaN or infinite (the run must stop; see [`Optimizer::step`]).
/// Allocates nothing.
///
/// The update is not fused into the weight-gradient tiles: a pass measured faster (Adam 64 µs
/// against 125 µs of a 345 µs step, Zen5 AVX-512; again with prefetching, a 1-thread epoch
/// took 0.37 s fused against 0.33 s). The threads of [`crate::parallel`] update each layer's
/// rows right after computing their gradients.
///
/// # Panics
/// If `batch` is 0 or exceeds the workspace.
pub fn train_step<K, N, O, const B: usize>(
    net: &mut N,
    grads: &mut N,
    opt: &mut O,
    ws: &mut N::Workspace<B>,
    batch: usize,
    lr: f32,
    dropout: Option<&mut Dropout<'_>>,
) -> f32
where
    K: Backend,
    N: Network,
    O: Optimizer<N>,
{
    let loss = forward_backward::<K, N, B>(net, grads, ws, batch, dropout);
    net.update_running_stats(ws, batch);
    let finite = opt.step::<K>(net, grads, lr);
    if finite { loss } else { f32::NAN }
}

/// Forward (in training mode), loss and backward, leaving the gradients (overwritten) in
/// `grads`: a training step without the update, for gradient checks; batch normalizations'
/// running statistics are left alone. Returns the mean loss.
///
/// # Panics
/// If `batch` is 0 or exceeds the workspace.
pub fn forward_backward<K, N, const B: usize>(
    net: &N,
    grads: &mut N,
    ws: &mut N::Workspace<B>,
    batch: usize,
    dropout: Option<&mut Dropout<'_>>,
) -> f32
where
    K: Backend,
    N: Network,
{
    let loss = forward_loss::<K, N, B>(net, ws, batch, batch, dropout);
    net.backward::<K, B>(grads, ws, batch, Mode::Overwrite);
    loss
}

/// Forward and the loss over the `batch` samples in `ws`, which are part of a batch of
/// `of` samples (a thread's shard): the gradient at the logits is divided by `of`, so shards'
/// gradients add up to the batch's. Returns the shard's mean loss.
///
/// # Panics
/// If `batch` is 0 or exceeds the workspace.
pub fn forward_loss<K, N, const B: usize>(
    net: &N,
    ws: &mut N::Workspace<B>,
    batch: usize,
    of: usize,
    dropout: Option<&mut Dropout<'_>>,
) -> f32
where
    K: Backend,
    N: Network,
{
    assert!(
        (1..=B).contains(&batch),
        "a training step needs 1 to {B} samples, not {batch}"
    );
    net.forward_train::<K, B>(ws, batch, dropout);
    let (logits, labels, dlogits) = ws.loss_buffers(batch);
    let classes = N::OUTPUT;
    let whole_batch = of;
    K::run(SoftmaxXent {
        classes,
        batch,
        logits,
        labels,
        dlogits,
        whole_batch,
    })
}
