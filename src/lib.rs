//! constnet: fixed-size MLPs with hand-tiled SIMD kernels and no allocation in the hot path.
//!
//! # Example
//!
//! Declare a network, train it on a dataset with the [`train::Trainer`] builder, classify
//! images; then the explicit path for experts (the README's library example, also
//! `examples/library.rs`):
//!
//! ```
#![cfg_attr(feature = "std", doc = include_str!("../examples/library.rs"))]
#![cfg_attr(not(feature = "std"), doc = "fn main() {}")]
//! ```
//!
//! # Map
//!
//! Dependencies point one way, each module using only those listed after it:
//! `train → parallel → step → {model, optim} → layers → kernels`, with `params` and `aligned`
//! (the flat parameter blocks) under all of them; `data` and `format` sit beside, `format`
//! reading and writing a [`Network`]'s tensors; `quant` (int8 networks) sits beside `model`,
//! on `kernels::int8`, reading a [`Network`]'s tensors to quantize them. Only `kernels/` touches SIMD instructions
//! (`core::arch` on x86-64, chosen at run time; `wide` elsewhere). Only the `std`-gated modules
//! touch the OS. Nothing in `kernels/`, `layers`, `model`, `optim/` or `step` allocates.
//!
//! - [`aligned`], [`params`]: 64-byte-aligned storage; a network's parameters (and so its
//!   gradients and each optimizer moment) as one flat block, walked as one slice.
//! - [`kernels`]: the SIMD products on every instruction set and their scalar
//!   [`kernels::reference`].
//! - [`layers`]: `Dense<IN, OUT>` (forward and backward side by side), `BatchNorm<N>`, dropout,
//!   initialisation.
//! - [`model`]: [`network!`] composes layers into a network and its workspace.
//! - [`optim`]: SGD, Adam and RMSprop over the flat blocks, each in its own file with its
//!   step's arithmetic (lanes and scalar reference side by side, run by
//!   [`kernels::Update`]); learning-rate schedules; the one list of optimizers that
//!   [`optim::Rule`], [`AnyOptimizer`] and, with `std`, `OptimizerChoice` are made from.
//! - [`step`]: the training step, where a model meets an optimizer.
//! - [`logits`]: predictions, accuracy and probabilities read off the logits.
//! - [`data`]: IDX parsing, MNIST files (memory-mapped, `.gz` cached), batches, augmentation
//!   (whose warp is the one kernel `data` calls, [`kernels::Warp`]).
//! - [`format`]: safetensors model files and the raw blob for `no_std` embedding.
//! - [`quant`]: post-training int8 quantization: the int8 network, its specification, its
//!   files (the int8 kernels are in [`kernels::int8`]).
//! - `train` (std): the recipe, epochs, evaluation, reports, checkpoints; `parallel`: the
//!   threads that split each step; `bench`: `constnet bench`; `cpu`, `image`: what the
//!   `constnet` binary needs besides.
//! - `files`, `atomic_file` (std): every input opened as a regular file under a size cap;
//!   every output written atomically, through symbolic links, keeping mode and hard links.
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
pub mod atomic_file;
#[cfg(feature = "std")]
pub mod bench;
#[cfg(feature = "std")]
pub mod cpu;
pub mod data;
#[cfg(feature = "std")]
pub mod files;
pub mod format;
#[cfg(feature = "std")]
pub mod image;
pub mod kernels;
pub mod layers;
pub mod logits;
pub mod model;
mod names;
pub mod optim;
#[cfg(feature = "std")]
pub mod parallel;
pub mod params;
pub mod quant;
pub mod step;
#[cfg(feature = "std")]
pub mod train;

#[cfg(feature = "alloc")]
pub use aligned::AlignedVec;
pub use aligned::{Aligned, Flat};
pub use kernels::{Activation, Backend, InputGrad, Mode, Reference, Simd, simd_backend};
pub use layers::{BatchNorm, Dense, DenseMut, DenseRef, Dropout, Init};
pub use model::{
    FoldMismatch, Network, NetworkView, PREDICT_MAX_INPUT, PREDICT_MAX_OUTPUT, TensorInfo,
    Workspace, fold_batch_norms, load_f32_batch, load_u8_batch, set_input,
};
#[cfg(feature = "alloc")]
pub use optim::AnyOptimizer;
pub use optim::{Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Schedule, Sgd, SgdConfig};
pub use params::Params;
pub use rand_xoshiro;
pub use step::{forward_backward, train_step};

/// What most programs need, in one import: `use constnet::prelude::*;`.
///
/// The network macro and traits, the layers' initialisations, the optimizers, the kernel
/// paths, a training step and the reference MNIST network; with `std`, model files and the
/// MNIST data too.
pub mod prelude {
    #[cfg(feature = "std")]
    pub use crate::data::Mnist;
    #[cfg(feature = "std")]
    pub use crate::format::{load as load_model, save as save_model};
    pub use crate::{
        Adam, AdamConfig, Init, MnistMlp, Network, NetworkView, Optimizer, Params, Reference, Rng,
        Sgd, SgdConfig, Simd, Workspace, network, set_input, train_step,
    };
}

/// The generator behind every random choice in this crate, re-exported for convenience.
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// What [`network!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::aligned::{Aligned, Flat};
    pub use crate::kernels::{Backend, Mode};
    pub use crate::layers::{
        BatchNormRef, BatchNormWork, Dense, DenseMut, DenseRef, DenseWork, Dropout, Init,
    };
    pub use crate::model::{
        Network, NetworkView, TensorInfo, Workspace, block_len, one, param_count, storage_len,
        tensor_offset,
    };
    pub use crate::params::{Params, padded};
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

network! {
    /// The reference network with batch normalization after each hidden layer (before its
    /// ReLU): PyTorch's `fc1, bn1 = nn.BatchNorm1d(256), …, fc4`. Folded
    /// ([`model::fold_batch_norms`]) it is a [`MnistMlp`].
    pub struct MnistMlpBn {
        fc1: Dense<784, 256>,
        bn1: BatchNorm<256>,
        fc2: Dense<256, 128>,
        bn2: BatchNorm<128>,
        fc3: Dense<128, 64>,
        bn3: BatchNorm<64>,
        fc4: Dense<64, 10>,
    }
}
