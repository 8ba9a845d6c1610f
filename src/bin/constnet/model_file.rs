//! Model files as the commands take them: a raw blob if the file starts with the blob's magic,
//! else safetensors; f32 or int8 (an int8 blob's magic, or the int8 key in the safetensors
//! metadata).

use constnet::format::{self, ModelFileError, Problem};
use constnet::quant::{self, MNIST_DIMS, QuantMnistModel};
use constnet::{MnistMlp, MnistMlpBn, Params};
use std::io::Read;
use std::path::Path;

/// Whether `path` starts with the raw blob's magic (false if it cannot be read: the
/// safetensors reader then reports why).
pub fn is_raw_blob(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    // Through the regular-file check: a FIFO must not block here (the loader refuses it).
    constnet::files::open_regular(path, u64::MAX)
        .and_then(|(mut f, _)| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == format::raw::MAGIC)
}

/// Loads a f32 model file of either format, checked against the network. A safetensors file
/// of the reference network with batch norms (`train --arch reference-bn`) is folded on load
/// into the plain network, which computes the same logits at no extra cost.
pub fn load(path: &Path) -> Result<Box<MnistMlp>, ModelFileError> {
    if is_raw_blob(path) {
        return format::load_raw::<MnistMlp>(path);
    }
    let plain = format::load::<MnistMlp>(path);
    match plain {
        Err(ref e) if matches!(&e.problem, Problem::UnexpectedTensor(name) if name.starts_with("bn")) =>
        {
            let Ok(with_bn) = format::load::<MnistMlpBn>(path) else {
                return plain;
            };
            let mut folded = MnistMlp::zeroed_box();
            constnet::fold_batch_norms(&*with_bn, &mut *folded)
                .expect("MnistMlpBn folds into MnistMlp");
            Ok(folded)
        }
        other => other,
    }
}

/// A model of either kind.
pub enum Model {
    /// The f32 network.
    F32(Box<MnistMlp>),
    /// The int8 network.
    Int8(QuantMnistModel),
}

impl Model {
    /// `"f32"` or `"int8"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::F32(_) => "f32",
            Model::Int8(_) => "int8",
        }
    }
}

/// Loads a model file of any kind and format.
pub fn load_any(path: &Path) -> Result<Model, ModelFileError> {
    if quant::file::is_int8(path) {
        quant::file::load::<4>(path, &MNIST_DIMS).map(Model::Int8)
    } else {
        load(path).map(Model::F32)
    }
}
