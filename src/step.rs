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

use core::ops::Range;

use crate::kernels::STATES;
use crate::kernels::{
    Backend, GradientSink, Mode, ParamsAndState, Rule, Shard, SoftmaxXent, Update, WeightGradients,
};
use crate::layers::Dropout;
use crate::model::{Network, Workspace};
use crate::optim::Optimizer;

/// One training step on the batch already in `ws` (input and labels): forward (with optional
/// dropout), softmax cross-entropy, backward, optimizer update with learning rate `lr`.
/// Returns the batch's mean loss, or NaN if any gradient was NaN or infinite (the run must
/// stop; see [`Optimizer::step`]). Allocates nothing.
///
/// Without gradient clipping the update is fused into the weight-gradient products: each tile
/// of gradients is applied to the parameters while in registers and never stored, so `grads`
/// is left as it was. With clipping, the gradients are stored in `grads`, their norm is
/// checked, then the update runs. Both give the bits of [`forward_backward`] followed by
/// [`Optimizer::step`].
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
    if opt.clip_grad_norm() > 0.0 {
        let loss = forward_backward::<K, N, B>(net, grads, ws, batch, dropout);
        net.update_running_stats(ws, batch);
        let finite = opt.step::<K>(net, grads, lr);
        return if finite { loss } else { f32::NAN };
    }
    let loss = forward_loss::<K, N, B>(net, ws, batch, batch, dropout);
    net.update_running_stats(ws, batch);
    net.backward_inputs::<K, B>(ws, batch);
    let rule = opt.begin_step(lr, 1.0);
    let finite = apply_weight_gradients::<K, N, O, B>(net, opt, ws, batch, &rule);
    if finite { loss } else { f32::NAN }
}

/// Every layer's weight and bias gradients, computed from `ws` after
/// [`Network::backward_inputs`] and applied by `rule` straight from the product's registers
/// (batch normalizations' from the workspace). Returns whether every gradient and updated
/// parameter was finite.
fn apply_weight_gradients<K, N, O, const B: usize>(
    net: &mut N,
    opt: &mut O,
    ws: &N::Workspace<B>,
    batch: usize,
    rule: &Rule,
) -> bool
where
    K: Backend,
    N: Network,
    O: Optimizer<N>,
{
    let mut blocks = Blocks {
        params: net.flat_mut(),
        state: opt.state_mut(),
        at: 0,
    };
    let mut finite = true;
    for l in 0..N::LAYERS {
        let (inp, out) = N::layer_dims(l);
        let w = blocks.take(N::tensor_info(2 * l).range());
        let b = blocks.take(N::tensor_info(2 * l + 1).range());
        let shards = [Shard {
            dz: ws.dz(l, batch),
            x_rows: ws.x_rows(l, batch),
            batch,
        }];
        let sink = GradientSink::Apply { rule, w, b };
        finite &= K::run(WeightGradients {
            out,
            inp,
            shards: &shards,
            sink,
        });
    }
    for k in 0..N::BATCH_NORMS {
        let (dweight, dbias) = ws.batch_norm_grads(k);
        let at = 2 * N::LAYERS + 2 * k;
        for (t, grads) in [(at, dweight), (at + 1, dbias)] {
            let part = blocks.take(N::tensor_info(t).range());
            finite &= K::run(Update {
                rule,
                params: part.params,
                grads,
                first: part.first,
                second: part.second,
                third: part.third,
            });
        }
    }
    finite
}

/// The parameter block and the optimizer's state blocks (empty where it keeps none), handed
/// out tensor by tensor in increasing order.
struct Blocks<'a> {
    params: &'a mut [f32],
    state: [&'a mut [f32]; STATES],
    /// Where the blocks' remaining slices start in the whole block.
    at: usize,
}

impl<'a> Blocks<'a> {
    /// The elements `range` (after all taken before) of each block.
    fn take(&mut self, range: Range<usize>) -> ParamsAndState<'a> {
        let (skip, len) = (range.start - self.at, range.len());
        self.at = range.end;
        let cut = |block: &mut &'a mut [f32]| -> &'a mut [f32] {
            if block.is_empty() {
                return &mut [];
            }
            let (part, rest) = core::mem::take(block)[skip..].split_at_mut(len);
            *block = rest;
            part
        };
        let [first, second, third] = &mut self.state;
        ParamsAndState {
            params: cut(&mut self.params),
            first: cut(first),
            second: cut(second),
            third: cut(third),
        }
    }
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
