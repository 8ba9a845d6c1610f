//! Model files as the commands take them: a raw blob if the file starts with the blob's magic,
//! else safetensors; f32 or int8 (an int8 blob's magic, or the int8 key in the safetensors
//! metadata).

use crate::arch::{Arch, Mlp512x256, Mlp800, Mlp1024x512, Mlp2048x1024};
use constnet::format::{self, ModelFileError, Problem};
use constnet::quant::{self, MNIST_DIMS, QuantMnistModel};
use constnet::{MnistMlp, MnistMlpBn, Network, Params};
use std::error::Error;
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

/// Loads a f32 model file of either format, checked against the network `N`.
pub fn load<N: Network>(path: &Path) -> Result<Box<N>, ModelFileError> {
    if is_raw_blob(path) {
        format::load_raw::<N>(path)
    } else {
        format::load::<N>(path)
    }
}

/// Loads a f32 model file of the reference network. A safetensors file of the reference
/// network with batch norms (`train --arch reference-bn`) is folded on load into the plain
/// network, which computes the same logits at no extra cost.
pub fn load_reference(path: &Path) -> Result<Box<MnistMlp>, ModelFileError> {
    let plain = load::<MnistMlp>(path);
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

/// A f32 network of any of the architectures ([`Arch`]).
pub enum Net {
    /// 256,128,64.
    Reference(Box<MnistMlp>),
    /// 512,256.
    H512x256(Box<Mlp512x256>),
    /// 800.
    H800(Box<Mlp800>),
    /// 1024,512.
    H1024x512(Box<Mlp1024x512>),
    /// 2048,1024.
    H2048x1024(Box<Mlp2048x1024>),
}

/// Runs `$body` with `$n` the `&Box<N>` a [`Net`] holds.
macro_rules! with_net {
    ($net:expr, $n:ident => $body:expr) => {
        match $net {
            $crate::model_file::Net::Reference($n) => $body,
            $crate::model_file::Net::H512x256($n) => $body,
            $crate::model_file::Net::H800($n) => $body,
            $crate::model_file::Net::H1024x512($n) => $body,
            $crate::model_file::Net::H2048x1024($n) => $body,
        }
    };
}
pub(crate) use with_net;

impl Net {
    /// Its architecture.
    pub fn arch(&self) -> Arch {
        match self {
            Net::Reference(_) => Arch::Reference,
            Net::H512x256(_) => Arch::H512x256,
            Net::H800(_) => Arch::H800,
            Net::H1024x512(_) => Arch::H1024x512,
            Net::H2048x1024(_) => Arch::H2048x1024,
        }
    }
}

/// Loads a f32 model file of any architecture ([`Arch::of_file`]) and format.
pub fn load_net(path: &Path) -> Result<Net, Box<dyn Error>> {
    Ok(match Arch::of_file(path)? {
        Arch::Reference => Net::Reference(load_reference(path)?),
        Arch::H512x256 => Net::H512x256(load(path)?),
        Arch::H800 => Net::H800(load(path)?),
        Arch::H1024x512 => Net::H1024x512(load(path)?),
        Arch::H2048x1024 => Net::H2048x1024(load(path)?),
    })
}

/// A model of either kind.
pub enum Model {
    /// A f32 network.
    F32(Net),
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

/// Loads a model file of any kind, architecture and format.
pub fn load_any(path: &Path) -> Result<Model, Box<dyn Error>> {
    if quant::file::is_int8(path) {
        Ok(quant::file::load::<4>(path, &MNIST_DIMS).map(Model::Int8)?)
    } else {
        load_net(path).map(Model::F32)
    }
}
