//! constnet: fixed-size MLPs with hand-tiled SIMD kernels and no allocation in the hot path.
//!
//! # Map
//!
//! Dependencies point one way: `main → model → layers, loss, optim → kernels → aligned`.
//! `data` sits beside them; `format` only reads and writes model parameters. Only `kernels/`
//! imports `wide`. Only the `std`-gated modules touch the OS. Nothing in `kernels/`, `layers`,
//! `loss`, `model` or `optim/` allocates.
//!
//! - [`aligned`]: 64-byte-aligned storage.
//! - [`kernels`]: the SIMD products and their scalar [`kernels::reference`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod aligned;
pub mod kernels;

pub use aligned::{Aligned, Flat};
pub use kernels::{Activation, InputGrad, Mode, simd_backend};
