//! Model files as the commands take them: a raw blob if the file starts with the blob's magic,
//! else safetensors.

use constnet::MnistMlp;
use constnet::format::{self, ModelFileError};
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

/// Loads a model file of either format, checked against the network.
pub fn load(path: &Path) -> Result<Box<MnistMlp>, ModelFileError> {
    if is_raw_blob(path) {
        format::load_raw::<MnistMlp>(path)
    } else {
        format::load::<MnistMlp>(path)
    }
}
