//! Adam and AdamW (`torch.optim.Adam` / `AdamW` semantics, bias-corrected).

use super::{Optimizer, PartUpdate};
use crate::kernels::{AdamStep, AdamUpdate, Backend};
use crate::model::Network;

/// Adam's hyperparameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Zeroable)]
#[repr(C)]
pub struct AdamConfig {
    /// First-moment decay β1 (PyTorch default 0.9).
    pub beta1: f32,
    /// Second-moment decay β2 (default 0.999).
    pub beta2: f32,
    /// Denominator ε (default 1e-8).
    pub eps: f32,
    /// Weight decay: an L2 term in the gradient, or decoupled when `decoupled` (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// Clip the gradients' global L2 norm to this before each update (0: no clipping).
    pub clip_grad_norm: f32,
}

impl AdamConfig {
    /// PyTorch's defaults: β1 0.9, β2 0.999, ε 1e-8, no weight decay.
    pub const DEFAULT: Self = Self {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        clip_grad_norm: 0.0,
    };

    /// AdamW with PyTorch's default decay of 0.01.
    pub const ADAMW: Self = Self {
        weight_decay: 0.01,
        decoupled: true,
        ..Self::DEFAULT
    };
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Adam with its state: first and second moments, one per parameter, and the step count.
#[derive(bytemuck::Zeroable)]
#[repr(C)]
pub struct Adam<N> {
    /// Hyperparameters; may change between steps.
    pub config: AdamConfig,
    t: u64,
    m: N,
    v: N,
}

impl<N: Network> Adam<N> {
    /// Fresh state. The value holds two copies of the network: use it to initialise a `static`
    /// (no_std), or call [`Adam::new_boxed`] to build it on the heap.
    pub const fn new(config: AdamConfig) -> Self {
        Self {
            config,
            t: 0,
            m: N::ZEROED,
            v: N::ZEROED,
        }
    }

    /// Fresh state on the heap, built without a stack temporary.
    #[cfg(feature = "alloc")]
    pub fn new_boxed(config: AdamConfig) -> alloc::boxed::Box<Self> {
        let mut adam = bytemuck::zeroed_box::<Self>();
        adam.config = config;
        adam
    }

    /// The moments `(m, v)`.
    pub fn moments(&self) -> (&N, &N) {
        (&self.m, &self.v)
    }

    /// The moments and the step count, for restoring a checkpoint.
    pub fn state_mut(&mut self) -> (&mut N, &mut N, &mut u64) {
        (&mut self.m, &mut self.v, &mut self.t)
    }
}

impl<N: Network> Optimizer<N> for Adam<N> {
    fn clip_grad_norm(&self) -> f32 {
        self.config.clip_grad_norm
    }

    fn begin_step(&mut self) {
        self.t += 1;
    }

    fn update_part<K: Backend>(&mut self, params: &mut N, grads: &N, update: &PartUpdate) -> bool {
        let c = self.config;
        let step = AdamStep {
            grad_scale: update.grad_scale,
            ..AdamStep::new(
                update.lr,
                c.beta1,
                c.beta2,
                c.eps,
                c.weight_decay,
                c.decoupled,
                self.t,
            )
        };
        let mut finite = true;
        for i in 0..N::TENSORS {
            let r = update.range(grads.tensor(i).len());
            let (p, g) = (
                &mut params.tensor_mut(i)[r.clone()],
                &grads.tensor(i)[r.clone()],
            );
            let (m, v) = (
                &mut self.m.tensor_mut(i)[r.clone()],
                &mut self.v.tensor_mut(i)[r],
            );
            finite &= K::run(AdamUpdate {
                params: p,
                grads: g,
                m,
                v,
                step: &step,
            });
        }
        finite
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}
