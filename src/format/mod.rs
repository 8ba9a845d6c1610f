//! Model files: safetensors for interchange (std), and a raw parameter blob for `no_std`
//! programs that embed a model.
//!
//! - [`safetensors`]: PyTorch `state_dict` names and shapes, 64-byte-aligned data, a payload
//!   checksum, atomic writes, optional memory-mapped use.
//! - [`raw`]: a versioned little-endian blob read in place from `&'static [u8]` (no_std).
//! - `onnx` (feature `onnx`): export as an ONNX model (`Gemm` and `Relu`) for deployment
//!   runtimes; written, never read back as a model.
//!
//! Loading never trusts a file: every name, shape, dtype, offset and checksum is checked
//! against the network's compile-time shapes before a single parameter is used, and the first
//! thing wrong is reported with the file's name.

#[cfg(feature = "onnx")]
pub mod onnx;
pub mod raw;
#[cfg(feature = "std")]
pub mod safetensors;

pub use raw::RawError;
#[cfg(feature = "std")]
pub use safetensors::{MappedModel, inspect, load, load_into, save, save_with_metadata};

#[cfg(feature = "std")]
pub use std_errors::{ModelFileError, Problem, load_raw, save_raw};

#[cfg(feature = "std")]
mod std_errors {
    use super::raw::{self, RawError};
    use crate::atomic_file::write_atomic;
    use crate::model::Network;
    use std::fmt;
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};
    use std::prelude::rust_2024::*;

    /// A model file that could not be written or used, and why.
    #[derive(Debug)]
    pub struct ModelFileError {
        /// The file.
        pub path: PathBuf,
        /// What is wrong with it.
        pub problem: Problem,
    }

    impl ModelFileError {
        pub(crate) fn new(path: &Path, problem: Problem) -> Self {
            Self {
                path: path.to_path_buf(),
                problem,
            }
        }
    }

    /// What is wrong with a model file.
    #[derive(Debug)]
    pub enum Problem {
        /// Reading or writing failed.
        Io(io::Error),
        /// The path is a directory or another non-file.
        NotAFile,
        /// Not a valid safetensors file (header, JSON, offsets, lengths).
        Parse(String),
        /// A tensor the network needs is absent.
        MissingTensor(String),
        /// The file has a tensor the network does not.
        UnexpectedTensor(String),
        /// A tensor has the wrong shape.
        Shape {
            /// Tensor name.
            name: String,
            /// The network's shape.
            expected: Vec<usize>,
            /// The file's shape.
            found: Vec<usize>,
        },
        /// A tensor is not f32.
        Dtype {
            /// Tensor name.
            name: String,
            /// The file's dtype.
            found: String,
        },
        /// The header (names, shapes, offsets, metadata) does not match its recorded checksum.
        HeaderChecksum {
            /// CRC-32 recorded in the header.
            expected: u32,
            /// CRC-32 of the header.
            found: u32,
        },
        /// The data does not match the recorded checksum.
        Checksum {
            /// CRC-32 recorded in the header.
            expected: u32,
            /// CRC-32 of the data.
            found: u32,
        },
        /// A tensor holds a NaN or an infinity: no trained model does.
        NonFinite {
            /// Tensor name.
            name: String,
            /// Index of the first such element.
            element: usize,
            /// Its value.
            value: f32,
        },
        /// A training checkpoint where a model file was expected.
        IsCheckpoint,
        /// A raw blob problem.
        Raw(RawError),
        /// A tensor has another dtype than the format needs (int8 model files).
        DtypeOf {
            /// Tensor name.
            name: String,
            /// The dtype the format needs.
            expected: &'static str,
            /// The file's dtype.
            found: String,
        },
        /// An int8 model that cannot be used (ranges, shapes, scales; see
        /// [`crate::quant::check`]).
        Quant(crate::quant::QuantError),
        /// Not a usable checkpoint (not one at all, or for another run), or a checkpoint that
        /// must not be written.
        Checkpoint(String),
        /// The network cannot be exported to ONNX.
        #[cfg(feature = "onnx")]
        Onnx(super::onnx::OnnxError),
    }

    impl fmt::Display for ModelFileError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}: {}", self.path.display(), self.problem)
        }
    }

    impl fmt::Display for Problem {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Problem::Io(e) => write!(f, "{e}"),
                Problem::NotAFile => write!(f, "not a regular file"),
                Problem::Parse(e) => write!(f, "not a valid safetensors model file: {e}"),
                Problem::MissingTensor(name) => write!(f, "missing tensor {name:?}"),
                Problem::UnexpectedTensor(name) => {
                    write!(
                        f,
                        "unexpected tensor {name:?}: the network has no such parameter"
                    )
                }
                Problem::Shape {
                    name,
                    expected,
                    found,
                } => {
                    write!(
                        f,
                        "tensor {name:?} has shape {found:?}, the network needs {expected:?}"
                    )
                }
                Problem::Dtype { name, found } => {
                    write!(f, "tensor {name:?} is {found}, the network needs F32")
                }
                Problem::HeaderChecksum { expected, found } => write!(
                    f,
                    "header checksum mismatch (recorded {expected:08x}, header {found:08x}): the file is corrupted"
                ),
                Problem::Checksum { expected, found } => write!(
                    f,
                    "checksum mismatch (recorded {expected:08x}, data {found:08x}): the file is corrupted"
                ),
                Problem::NonFinite {
                    name,
                    element,
                    value,
                } => write!(
                    f,
                    "tensor {name:?} holds {value} at element {element}: a model's weights must be finite"
                ),
                Problem::IsCheckpoint => write!(
                    f,
                    "a training checkpoint, not a model file: resume its run from it, or use the model file that run saves"
                ),
                Problem::Raw(e) => write!(f, "{e}"),
                Problem::DtypeOf {
                    name,
                    expected,
                    found,
                } => write!(
                    f,
                    "tensor {name:?} is {found}, the int8 model needs {expected}"
                ),
                Problem::Quant(e) => write!(f, "unusable int8 model: {e}"),
                Problem::Checkpoint(e) => write!(f, "checkpoint: {e}"),
                #[cfg(feature = "onnx")]
                Problem::Onnx(e) => write!(f, "{e}"),
            }
        }
    }

    impl std::error::Error for ModelFileError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            match &self.problem {
                Problem::Io(e) => Some(e),
                Problem::Raw(e) => Some(e),
                Problem::Quant(e) => Some(e),
                #[cfg(feature = "onnx")]
                Problem::Onnx(e) => Some(e),
                _ => None,
            }
        }
    }

    /// Writes `net` as a raw blob (see [`raw`]) to `path`, atomically.
    pub fn save_raw<N: Network>(path: &Path, net: &N) -> Result<(), ModelFileError> {
        write_atomic(path, |out| {
            let mut result = Ok(());
            raw::write::<N>(
                |i| net.tensor(i),
                |bytes| {
                    if result.is_ok() {
                        result = out.write_all(bytes);
                    }
                },
            );
            result
        })
        .map_err(|e| ModelFileError::new(path, Problem::Io(e)))
    }

    /// Reads a raw blob from `path` into fresh parameters.
    pub fn load_raw<N: Network>(path: &Path) -> Result<Box<N>, ModelFileError> {
        let bytes = super::safetensors::open(path, raw::blob_len::<N>() as u64)?;
        let mut net = N::zeroed_box();
        raw::load_into(&bytes, &mut *net)
            .map_err(|e| ModelFileError::new(path, Problem::Raw(e)))?;
        Ok(net)
    }
}
