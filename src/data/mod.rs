//! Data: the IDX format of MNIST, finding and mapping its files, and batches.
//!
//! - [`idx`]: parsing IDX bytes (no_std).
//! - [`batch`]: randomness derived from a seed, and the order of samples (no_std).
//! - [`augment`]: random affine and elastic warps of images, per sample (no_std).
//! - [`dataset`] (std): the [`Dataset`] trait training takes, and [`InMemory`] data.
//! - [`mnist`] (std): the four MNIST files in a directory, raw or `.gz`, memory-mapped.
//!
//! `mmap.rs` holds the crate's one expected `unsafe` (mapping a file); every other file here
//! forbids it.

pub mod augment;
pub mod batch;
#[cfg(feature = "std")]
pub mod dataset;
pub mod idx;
#[cfg(feature = "std")]
mod mmap;
#[cfg(feature = "std")]
pub mod mnist;

pub use batch::{derived_rng, shuffle};
#[cfg(feature = "std")]
pub use dataset::{Dataset, DatasetError, InMemory, Rows, SharedData};
pub use idx::{IdxError, Images, check_pair, parse_images, parse_labels};
#[cfg(feature = "std")]
pub use mmap::Bytes;
#[cfg(feature = "std")]
pub use mnist::{DataError, Mnist, Split};
