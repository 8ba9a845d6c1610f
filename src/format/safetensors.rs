//! Model files in the safetensors format, readable by PyTorch's `load_state_dict`.
//!
//! Tensor names and shapes are the network's (for the reference network exactly the PyTorch
//! model's `state_dict`: `fc1.weight` \[256, 784\], `fc1.bias` \[256\], …), f32 little-endian. The
//! `safetensors` crate writes and parses the format; on top of it this module
//!
//! - pads the JSON header with spaces so the data starts on a 64-byte boundary (the format
//!   allows trailing whitespace; the crate alone aligns to 8), with its keys sorted so the same
//!   model always gives the same bytes,
//! - records a CRC-32 of the data section in `__metadata__` under [`CHECKSUM_KEY`], and one of
//!   the header itself (names, shapes, offsets, metadata) under [`HEADER_CHECKSUM_KEY`], and
//!   verifies both on load (files without them, such as PyTorch's, load unverified),
//! - writes atomically, and checks names, shapes and dtypes against the network on load,
//!   reporting the first mismatch.

use super::{ModelFileError, Problem};
use crate::atomic_file::write_bytes_atomic;
use crate::data::Bytes;
use crate::model::Network;
pub use safetensors::tensor::Dtype;
use safetensors::tensor::{SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;
use std::prelude::rust_2024::*;

/// The `__metadata__` key holding the CRC-32 of the data section, as 8 hex digits.
pub const CHECKSUM_KEY: &str = "constnet.crc32";
/// The `__metadata__` key holding the CRC-32 of the header's canonical JSON without this key.
pub const HEADER_CHECKSUM_KEY: &str = "constnet.header_crc32";
/// The `__metadata__` key that marks a training checkpoint; its value is the format version.
/// A checkpoint is not a model file: loading one as a model says so.
pub const CHECKPOINT_KEY: &str = "constnet.checkpoint";
/// The most header bytes a file may have beyond its tensors' data (a constnet model's header
/// is about 1 KB; PyTorch's are smaller): caps what is read of a file named as a model.
pub const MAX_HEADER: u64 = 1 << 20;
const DATA_ALIGN: usize = 64;

/// One tensor to write: name, shape, values.
pub struct Entry<'a> {
    /// Its name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values (f32).
    pub values: &'a [f32],
}

/// Serialises tensors and metadata (the checksum is added here) into file bytes whose data
/// section starts on a 64-byte boundary.
pub fn encode(
    entries: &[Entry<'_>],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, Problem> {
    let typed: Vec<TypedEntry> = entries.iter().map(Entry::typed).collect();
    encode_typed(&typed, metadata)
}

impl Entry<'_> {
    /// The entry as f32 little-endian bytes.
    pub fn typed(&self) -> TypedEntry {
        TypedEntry {
            name: self.name.clone(),
            dtype: Dtype::F32,
            shape: self.shape.clone(),
            bytes: self.values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The name of batch normalization `k`'s count of training batches, with `prefix/` before it
/// if `prefix` is not empty (checkpoints): `bn1.num_batches_tracked`.
pub fn tracked_name<N: Network>(prefix: &str, k: usize) -> String {
    let name = N::batch_norm_name(k);
    match prefix {
        "" => format!("{name}.num_batches_tracked"),
        _ => format!("{prefix}/{name}.num_batches_tracked"),
    }
}

/// Each batch normalization's `num_batches_tracked` as PyTorch stores it: an int64 scalar
/// (shape `[]`).
pub fn tracked_entries<N: Network>(prefix: &str, net: &N) -> Vec<TypedEntry> {
    (0..N::BATCH_NORMS)
        .map(|k| TypedEntry {
            name: tracked_name::<N>(prefix, k),
            dtype: Dtype::I64,
            shape: Vec::new(),
            bytes: net.batches_tracked()[k].to_le_bytes().to_vec(),
        })
        .collect()
}

/// Reads each batch normalization's `num_batches_tracked` (int64 scalars, not negative).
pub fn read_tracked<N: Network>(decoded: &Decoded<'_>, prefix: &str) -> Result<Vec<u64>, Problem> {
    (0..N::BATCH_NORMS)
        .map(|k| {
            let name = tracked_name::<N>(prefix, k);
            let view = decoded
                .tensors
                .tensor(&name)
                .map_err(|_| Problem::MissingTensor(name.clone()))?;
            if view.dtype() != Dtype::I64 {
                let found = format!("{:?}", view.dtype());
                return Err(Problem::Dtype { name, found });
            }
            if !view.shape().is_empty() {
                let found = view.shape().to_vec();
                return Err(Problem::Shape {
                    name,
                    expected: Vec::new(),
                    found,
                });
            }
            let bytes: [u8; 8] = view
                .data()
                .try_into()
                .map_err(|_| Problem::Parse(format!("{name}: an int64 scalar is 8 bytes")))?;
            u64::try_from(i64::from_le_bytes(bytes))
                .map_err(|_| Problem::Parse(format!("{name} is negative")))
        })
        .collect()
}

/// One tensor of any dtype to write: its little-endian bytes.
pub struct TypedEntry {
    /// Its name in the file.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, little-endian.
    pub bytes: Vec<u8>,
}

/// [`encode`] for tensors of any dtype.
pub fn encode_typed(
    entries: &[TypedEntry],
    mut metadata: HashMap<String, String>,
) -> Result<Vec<u8>, Problem> {
    let views = || -> Result<Vec<(String, TensorView<'_>)>, Problem> {
        entries
            .iter()
            .map(|e| {
                Ok((
                    e.name.clone(),
                    TensorView::new(e.dtype, e.shape.clone(), &e.bytes).map_err(parse_problem)?,
                ))
            })
            .collect()
    };
    metadata.insert("format".into(), "pt".into());
    // The data section does not depend on the metadata, so its checksum can be taken from a
    // first serialisation and recorded in the second.
    let first = safetensors::serialize(views()?, Some(metadata.clone())).map_err(parse_problem)?;
    let crc = crc32fast::hash(&first[data_start(&first)?..]);
    metadata.insert(CHECKSUM_KEY.into(), format!("{crc:08x}"));
    let file = safetensors::serialize(views()?, Some(metadata)).map_err(parse_problem)?;
    let header: serde_json::Value = serde_json::from_slice(&file[8..data_start(&file)?])
        .map_err(|e| Problem::Parse(e.to_string()))?;
    let header_crc = header_checksum(header)?;
    metadata_insert(&file, HEADER_CHECKSUM_KEY, &format!("{header_crc:08x}"))
}

/// The CRC-32 of a header's compact JSON (keys sorted) without [`HEADER_CHECKSUM_KEY`].
fn header_checksum(mut header: serde_json::Value) -> Result<u32, Problem> {
    if let Some(meta) = header
        .get_mut("__metadata__")
        .and_then(serde_json::Value::as_object_mut)
    {
        meta.remove(HEADER_CHECKSUM_KEY);
    }
    let json = serde_json::to_vec(&header).map_err(|e| Problem::Parse(e.to_string()))?;
    Ok(crc32fast::hash(&json))
}

/// The file with `key = value` added to its header's metadata, in canonical form.
fn metadata_insert(file: &[u8], key: &str, value: &str) -> Result<Vec<u8>, Problem> {
    let start = data_start(file)?;
    let mut header: serde_json::Value =
        serde_json::from_slice(&file[8..start]).map_err(|e| Problem::Parse(e.to_string()))?;
    header["__metadata__"][key] = serde_json::Value::String(value.into());
    let mut json = serde_json::to_vec(&header).map_err(|e| Problem::Parse(e.to_string()))?;
    json.resize((8 + json.len()).next_multiple_of(DATA_ALIGN) - 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + file.len() - start);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&file[start..]);
    Ok(out)
}

/// Where the data section starts, from a header the crate has validated.
fn data_start(bytes: &[u8]) -> Result<usize, Problem> {
    let (n, _) = SafeTensors::read_metadata(bytes).map_err(parse_problem)?;
    Ok(8 + n)
}

fn parse_problem(e: safetensors::SafeTensorError) -> Problem {
    Problem::Parse(e.to_string())
}

/// A parsed file whose checksums (if recorded) have been verified.
pub struct Decoded<'a> {
    /// The tensors.
    pub tensors: SafeTensors<'a>,
    /// `__metadata__`.
    pub metadata: HashMap<String, String>,
    /// Whether the file carried a checksum (and it matched).
    pub verified: bool,
}

/// Parses and verifies file bytes.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, Problem> {
    let tensors = SafeTensors::deserialize(bytes).map_err(parse_problem)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(parse_problem)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if let Some(recorded) = metadata.get(HEADER_CHECKSUM_KEY) {
        let expected = u32::from_str_radix(recorded, 16)
            .map_err(|_| Problem::Parse(format!("header checksum {recorded:?} is not hex")))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes[8..data_start(bytes)?])
            .map_err(|e| Problem::Parse(e.to_string()))?;
        let found = header_checksum(json)?;
        if expected != found {
            return Err(Problem::HeaderChecksum { expected, found });
        }
    }
    let verified = match metadata.get(CHECKSUM_KEY) {
        None => false,
        Some(recorded) => {
            let expected = u32::from_str_radix(recorded, 16)
                .map_err(|_| Problem::Parse(format!("checksum {recorded:?} is not hex")))?;
            let found = crc32fast::hash(&bytes[data_start(bytes)?..]);
            if expected != found {
                return Err(Problem::Checksum { expected, found });
            }
            true
        }
    };
    Ok(Decoded {
        tensors,
        metadata,
        verified,
    })
}

/// The tensor `name` with `shape`, as little-endian f32 bytes.
pub fn tensor_bytes<'a>(
    decoded: &Decoded<'a>,
    name: &str,
    shape: &[usize],
) -> Result<&'a [u8], Problem> {
    let data = typed_tensor(decoded, name, Dtype::F32, shape, |found| Problem::Dtype {
        name: name.to_string(),
        found,
    })?;
    if let Some((element, value)) = first_non_finite(data) {
        return Err(Problem::NonFinite {
            name: name.to_string(),
            element,
            value,
        });
    }
    Ok(data)
}

/// The bytes of tensor `name`, which must be there, with `dtype` (else the problem is
/// `wrong_dtype` of the file's dtype) and `shape`.
pub(crate) fn typed_tensor<'a>(
    decoded: &Decoded<'a>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    wrong_dtype: impl FnOnce(String) -> Problem,
) -> Result<&'a [u8], Problem> {
    let view = decoded
        .tensors
        .tensor(name)
        .map_err(|_| Problem::MissingTensor(name.to_string()))?;
    if view.dtype() != dtype {
        return Err(wrong_dtype(format!("{:?}", view.dtype())));
    }
    if view.shape() != shape {
        return Err(Problem::Shape {
            name: name.to_string(),
            expected: shape.to_vec(),
            found: view.shape().to_vec(),
        });
    }
    Ok(view.data())
}

/// The first NaN or infinity in little-endian f32 bytes: its index and value.
pub fn first_non_finite(bytes: &[u8]) -> Option<(usize, f32)> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .enumerate()
        .find(|(_, x)| !x.is_finite())
}

/// The most bytes a safetensors file for `N` is read: a checkpoint's three flat parameter
/// blocks (the parameters and Adam's two moments) and a header. A model file has one block;
/// the cap lets a checkpoint given as a model be read far enough to be named as one.
pub fn max_file_len<N: Network>() -> u64 {
    3 * 4 * N::PARAMS as u64 + MAX_HEADER
}

/// Checks that the file holds exactly `N`'s tensors with the right shapes and dtype.
fn check_tensors<N: Network>(decoded: &Decoded<'_>) -> Result<(), Problem> {
    if decoded.metadata.contains_key(CHECKPOINT_KEY) {
        return Err(Problem::IsCheckpoint);
    }
    for i in 0..N::TENSORS {
        let info = N::tensor_info(i);
        tensor_bytes(decoded, info.name, info.shape)?;
    }
    read_tracked::<N>(decoded, "")?;
    let mut names = decoded.tensors.names();
    names.sort_unstable();
    let known = |n: &str| {
        (0..N::TENSORS).any(|i| N::tensor_info(i).name == n)
            || (0..N::BATCH_NORMS).any(|k| tracked_name::<N>("", k) == n)
    };
    if let Some(extra) = names.into_iter().find(|n| !known(n)) {
        return Err(Problem::UnexpectedTensor(extra.to_string()));
    }
    Ok(())
}

/// Copies little-endian f32 bytes into `out`.
pub fn copy_f32(bytes: &[u8], out: &mut [f32]) {
    for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Saves `net` to `path` atomically.
pub fn save<N: Network>(path: &Path, net: &N) -> Result<(), ModelFileError> {
    save_with_metadata(path, net, HashMap::new())
}

/// Saves `net` to `path` atomically, with `metadata` in the header's `__metadata__` (a
/// training record: recipe, seed, version, accuracy, date; PyTorch ignores it, and
/// [`inspect`] returns it).
pub fn save_with_metadata<N: Network>(
    path: &Path,
    net: &N,
    metadata: HashMap<String, String>,
) -> Result<(), ModelFileError> {
    let at = |problem| ModelFileError::new(path, problem);
    let bytes = to_bytes_with_metadata(net, metadata).map_err(at)?;
    write_bytes_atomic(path, &bytes).map_err(|e| at(Problem::Io(e)))
}

/// The bytes of `net`'s model file.
pub fn to_bytes<N: Network>(net: &N) -> Result<Vec<u8>, Problem> {
    to_bytes_with_metadata(net, HashMap::new())
}

/// The bytes of `net`'s model file, with `metadata` recorded in its header.
pub fn to_bytes_with_metadata<N: Network>(
    net: &N,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, Problem> {
    let mut entries: Vec<TypedEntry> = (0..N::TENSORS)
        .map(|i| {
            let info = N::tensor_info(i);
            Entry {
                name: info.name.into(),
                shape: info.shape.to_vec(),
                values: net.tensor(i),
            }
            .typed()
        })
        .collect();
    entries.extend(tracked_entries("", net));
    encode_typed(&entries, metadata)
}

/// Loads a model file into `net`, checking everything first (`net` is untouched on error).
pub fn load_into<N: Network>(path: &Path, net: &mut N) -> Result<(), ModelFileError> {
    let bytes = open(path, max_file_len::<N>())?;
    load_bytes_into(&bytes, net).map_err(|problem| ModelFileError::new(path, problem))
}

/// Loads model file bytes into `net`, checking everything first (`net` is untouched on error).
pub fn load_bytes_into<N: Network>(bytes: &[u8], net: &mut N) -> Result<(), Problem> {
    let decoded = decode(bytes)?;
    check_tensors::<N>(&decoded)?;
    let tracked = read_tracked::<N>(&decoded, "")?;
    for i in 0..N::TENSORS {
        let info = N::tensor_info(i);
        copy_f32(
            tensor_bytes(&decoded, info.name, info.shape)?,
            net.tensor_mut(i),
        );
    }
    net.batches_tracked_mut().copy_from_slice(&tracked);
    Ok(())
}

/// Loads a model file into fresh parameters on the heap.
pub fn load<N: Network>(path: &Path) -> Result<Box<N>, ModelFileError> {
    let mut net = N::zeroed_box();
    load_into(path, &mut *net)?;
    Ok(net)
}

/// Maps a file for reading if it is a regular file of at most `cap` bytes (see
/// [`crate::files`]), with errors naming it.
pub fn open(path: &Path, cap: u64) -> Result<Bytes, ModelFileError> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(ModelFileError::new(path, Problem::NotAFile)),
        Ok(_) => {}
        Err(e) => return Err(ModelFileError::new(path, Problem::Io(e))),
    }
    Bytes::map(path, cap).map_err(|e| ModelFileError::new(path, Problem::Io(e)))
}

/// A memory-mapped model file, validated once, whose parameters are used in place.
pub struct MappedModel {
    bytes: Bytes,
}

impl MappedModel {
    /// Maps and validates `path` for network `N`.
    ///
    /// The mapping is only as stable as the file; model files are replaced atomically by
    /// rename, which leaves an existing mapping on the old contents.
    pub fn open<N: Network>(path: &Path) -> Result<Self, ModelFileError> {
        let at = |problem| ModelFileError::new(path, problem);
        let bytes = open(path, max_file_len::<N>())?;
        let decoded = decode(&bytes).map_err(at)?;
        check_tensors::<N>(&decoded).map_err(at)?;
        // Zero-copy needs 4-byte-aligned little-endian floats: check once here.
        let aligned = (0..N::TENSORS).all(|i| {
            let info = N::tensor_info(i);
            tensor_bytes(&decoded, info.name, info.shape)
                .is_ok_and(|b| bytemuck::try_cast_slice::<u8, f32>(b).is_ok())
        });
        if !aligned || cfg!(target_endian = "big") {
            return Err(at(Problem::Parse(
                "tensor data is not 4-byte aligned little-endian f32: load it with load() instead"
                    .into(),
            )));
        }
        drop(decoded);
        Ok(Self { bytes })
    }

    /// The parameters, in place in the mapping.
    pub fn view<N: Network>(&self) -> N::View<'_> {
        let decoded = decode(&self.bytes).expect("validated in open");
        let tensors: Vec<&[f32]> = (0..N::TENSORS)
            .map(|i| {
                let info = N::tensor_info(i);
                bytemuck::cast_slice(
                    tensor_bytes(&decoded, info.name, info.shape).expect("validated in open"),
                )
            })
            .collect();
        N::view_from_tensors(&tensors).expect("validated in open")
    }
}

/// One tensor as a file's header describes it.
pub struct TensorEntry {
    /// Name.
    pub name: String,
    /// Dtype, as safetensors spells it (`F32`).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub offsets: (usize, usize),
}

/// What `constnet info` shows of a model file.
pub struct Summary {
    /// Header length in bytes (the data starts 8 bytes later).
    pub header_len: usize,
    /// The tensors in file order.
    pub tensors: Vec<TensorEntry>,
    /// `__metadata__`.
    pub metadata: HashMap<String, String>,
    /// Whether a recorded checksum matched (false: none recorded).
    pub verified: bool,
    /// File size.
    pub file_len: usize,
}

/// The most bytes [`inspect`] reads of a safetensors file of any network.
pub const MAX_INSPECT: u64 = 1 << 30;

/// Reads a model file's header and verifies its checksum, for display (a file of any network,
/// up to [`MAX_INSPECT`] bytes).
pub fn inspect(path: &Path) -> Result<Summary, ModelFileError> {
    let at = |problem| ModelFileError::new(path, problem);
    let bytes = open(path, MAX_INSPECT)?;
    let decoded = decode(&bytes).map_err(at)?;
    let (n, header) = SafeTensors::read_metadata(&bytes).map_err(|e| at(parse_problem(e)))?;
    let mut tensors: Vec<_> = header
        .tensors()
        .into_iter()
        .map(|(name, info)| TensorEntry {
            name,
            dtype: format!("{:?}", info.dtype),
            shape: info.shape.clone(),
            offsets: info.data_offsets,
        })
        .collect();
    tensors.sort_by_key(|t| t.offsets);
    Ok(Summary {
        header_len: n,
        tensors,
        metadata: decoded.metadata,
        verified: decoded.verified,
        file_len: bytes.len(),
    })
}
