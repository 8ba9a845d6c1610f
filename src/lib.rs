//! constnet: fixed-size MLPs with hand-tiled SIMD kernels and no allocation in the hot path.
//!
//! # Map
//!
//! Dependencies point one way: `main → model → layers, loss, optim → kernels → aligned`.
//! `data` sits beside them; `format` only reads and writes model parameters. Only `kernels/`
//! touches SIMD instructions (`core::arch` on x86-64, `wide` elsewhere), and it picks the
//! instruction set at run time. Only the `std`-gated modules touch the OS. Nothing in `kernels/`, `layers`,
//! `loss`, `model` or `optim/` allocates.
//!
//! - [`aligned`]: 64-byte-aligned storage.
//! - [`kernels`]: the SIMD products on every instruction set, chosen at run time, and their
//!   scalar [`kernels::reference`].
//! - [`layers`]: `Dense<IN, OUT>`, forward and backward side by side.
//! - [`loss`]: predictions and accuracy off the logits (the fused loss is a kernel).
//! - [`optim`]: SGD and Adam over the parameter tensors; learning-rate schedules.
//! - [`model`]: [`network!`] composes layers into a network; [`model::train_step`].
//! - [`data`]: IDX parsing, MNIST files (memory-mapped, `.gz` cached), batches.
//! - [`format`]: safetensors model files and the raw blob for `no_std` embedding.
//! - [`train`] (std): epochs over MNIST, evaluation, progress reports, checkpoints;
//!   [`parallel`]: the threads that split each batch; [`bench`]: `constnet bench`;
//!   [`cpu`], [`image`]: what the `constnet` binary needs besides.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;
// Lets `network!` name this crate `constnet` inside it too.
extern crate self as constnet;
#[cfg(feature = "std")]
extern crate std;

pub mod aligned;
#[cfg(feature = "std")]
mod atomic_file;
#[cfg(feature = "std")]
pub mod bench;
#[cfg(feature = "std")]
pub mod cpu;
pub mod data;
pub mod format;
#[cfg(feature = "std")]
pub mod image;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod model;
pub mod optim;
#[cfg(feature = "std")]
pub mod parallel;
#[cfg(feature = "std")]
pub mod train;

#[cfg(feature = "alloc")]
pub use aligned::AlignedVec;
pub use aligned::{Aligned, Flat};
pub use kernels::{Activation, Backend, InputGrad, Mode, Reference, Simd, simd_backend};
pub use layers::{Dense, DenseRef, Dropout, Init};
pub use model::{
    Network, NetworkView, TensorInfo, Workspace, forward_backward, set_input, train_step,
};
#[cfg(feature = "alloc")]
pub use optim::AnyOptimizer;
pub use optim::{Adam, AdamConfig, Optimizer, PartUpdate, Schedule, Sgd, SgdConfig};
pub use rand_xoshiro;

/// The generator behind every random choice in this crate, re-exported for convenience.
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// What [`network!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::aligned::{Aligned, Flat};
    pub use crate::kernels::{Backend, Mode};
    pub use crate::layers::{Dense, DenseRef, DenseWork, Dropout, Init};
    pub use crate::model::{Network, NetworkView, TensorInfo, Workspace};
    pub use bytemuck::{self, Zeroable};
    pub use rand_xoshiro::rand_core::Rng;
}

/// The README's code, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

network! {
    /// The reference network: 784→256→128→64→10, ReLU between layers, the same tensor names
    /// and shapes as the PyTorch model `fc1`…`fc4` (`nn.Linear`), so model files interchange.
    pub struct MnistMlp {
        fc1: Dense<784, 256>,
        fc2: Dense<256, 128>,
        fc3: Dense<128, 64>,
        fc4: Dense<64, 10>,
    }
}
