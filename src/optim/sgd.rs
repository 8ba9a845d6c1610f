//! Stochastic gradient descent with momentum (`torch.optim.SGD` semantics, dampening 0).

use super::{Optimizer, PartUpdate};
use crate::kernels::{Backend, SgdStep, SgdUpdate};
use crate::model::Network;

/// SGD's hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Zeroable)]
#[repr(C)]
pub struct SgdConfig {
    /// Momentum μ; 0 for plain SGD.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Clip the gradients' global L2 norm to this before each update (0: no clipping).
    pub clip_grad_norm: f32,
}

/// SGD with its state: the momentum buffer and the step count.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct Sgd<N> {
    /// Hyperparameters; may change between steps.
    pub config: SgdConfig,
    t: u64,
    velocity: N,
}

impl<N: Network> Sgd<N> {
    /// Fresh state; see [`crate::optim::Adam::new`] on where to keep it.
    pub const fn new(config: SgdConfig) -> Self {
        Self {
            config,
            t: 0,
            velocity: N::ZEROED,
        }
    }

    /// Fresh state on the heap, built without a stack temporary.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: SgdConfig) -> alloc::boxed::Box<Self> {
        let mut sgd = bytemuck::zeroed_box::<Self>();
        sgd.config = config;
        sgd
    }

    /// The momentum buffer and the step count, for restoring a checkpoint.
    pub fn state_mut(&mut self) -> (&mut N, &mut u64) {
        (&mut self.velocity, &mut self.t)
    }

    /// The momentum buffer.
    pub fn velocity(&self) -> &N {
        &self.velocity
    }
}

impl<N: Network> Optimizer<N> for Sgd<N> {
    fn clip_grad_norm(&self) -> f32 {
        self.config.clip_grad_norm
    }

    fn begin_step(&mut self) {
        self.t += 1;
    }

    fn update_part<K: Backend>(&mut self, params: &mut N, grads: &N, update: &PartUpdate) -> bool {
        let c = self.config;
        let step = SgdStep {
            lr: update.lr,
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
            first: self.t == 1,
            grad_scale: update.grad_scale,
        };
        let mut finite = true;
        for i in 0..N::TENSORS {
            let r = update.range(grads.tensor(i).len());
            let (p, g) = (
                &mut params.tensor_mut(i)[r.clone()],
                &grads.tensor(i)[r.clone()],
            );
            let velocity = &mut self.velocity.tensor_mut(i)[r];
            finite &= K::run(SgdUpdate {
                params: p,
                grads: g,
                velocity,
                step: &step,
            });
        }
        finite
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}
