//! The raw parameter blob: a versioned, 64-byte-aligned little-endian image of a network's
//! tensors that a `no_std` program embeds with `include_bytes!` and runs in place.
//!
//! Layout, version 1 (integers little-endian):
//!
//! ```text
//! offset  size
//! 0       8    magic "CNETRAW\0"
//! 8       4    version (1)
//! 12      4    tensor count T
//! 16      8    total length of the blob in bytes
//! 24      4    CRC-32 (IEEE) of bytes [payload offset, total length)
//! 28      4    zero
//! 32      8    payload offset: where the first tensor starts (a multiple of 64)
//! 40      24   zero
//! 64      32·T the tensor table, one entry per tensor in the network's order:
//!              u32 rank (1 or 2), u32 dim0, u32 dim1 (1 for rank 1), u32 zero,
//!              u64 byte offset of its data (a multiple of 64), u64 element count
//! …            zero padding, then each tensor's f32 values at its offset
//! ```
//!
//! Reading checks the magic, the version, the count, every shape against the network's
//! compile-time shapes, that offsets are aligned, in order, in bounds and do not overlap, the
//! total length, the checksum and that every value is finite, and reports the first thing
//! wrong. [`view`] is zero-copy
//! when the blob starts on a 4-byte boundary (embed it in a `#[repr(align(64))]` wrapper);
//! [`load_into`] copies from any alignment.
#![forbid(unsafe_code)]

use crate::model::Network;
use core::fmt;

/// The first eight bytes of a blob.
pub const MAGIC: [u8; 8] = *b"CNETRAW\0";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 64;
const ENTRY: usize = 32;
const ALIGN: usize = 64;

/// Why bytes are not a valid blob for the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawError {
    /// Shorter than its header and table.
    Truncated {
        /// Bytes the header and table need.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The magic bytes are wrong: not a constnet blob.
    BadMagic,
    /// A version this code does not read.
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
    },
    /// The blob holds another number of tensors than the network has.
    TensorCount {
        /// Tensors of the network.
        expected: usize,
        /// Tensors in the blob.
        found: u32,
    },
    /// The header's total length differs from the blob's.
    Length {
        /// Length in the header.
        header: u64,
        /// Actual length.
        actual: usize,
    },
    /// A tensor's shape differs from the network's.
    Shape {
        /// Tensor index.
        index: usize,
        /// Its name in the network.
        name: &'static str,
        /// The blob's shape.
        found: [u32; 2],
    },
    /// A tensor's offset is misaligned, overlaps the previous one or runs past the end.
    Offset {
        /// Tensor index.
        index: usize,
        /// The offset in the table.
        offset: u64,
    },
    /// The payload checksum does not match: the blob is corrupted.
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the payload.
        found: u32,
    },
    /// A tensor holds a NaN or an infinity: no trained model does.
    NonFinite {
        /// Tensor index.
        index: usize,
        /// Its name in the network.
        name: &'static str,
        /// Index of the first such element.
        element: usize,
    },
    /// Zero-copy needs the blob to start on a 4-byte boundary (this one is at `address % 4`).
    Misaligned {
        /// The blob's address modulo 4.
        address_mod_4: usize,
    },
    /// Zero-copy views of little-endian floats need a little-endian CPU; use [`load_into`].
    BigEndianHost,
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RawError::Truncated { needed, found } => write!(
                f,
                "truncated: {found} bytes, the header and table need {needed}"
            ),
            RawError::BadMagic => write!(f, "not a constnet parameter blob (bad magic bytes)"),
            RawError::UnsupportedVersion { found } => write!(
                f,
                "blob version {found}; this build reads version {VERSION}"
            ),
            RawError::TensorCount { expected, found } => {
                write!(f, "{found} tensors; the network has {expected}")
            }
            RawError::Length { header, actual } => {
                write!(f, "{actual} bytes, the header says {header}")
            }
            RawError::Shape { index, name, found } => {
                write!(
                    f,
                    "tensor {index} ({name}) has shape {}×{}, not the network's",
                    found[0], found[1]
                )
            }
            RawError::Offset { index, offset } => {
                write!(
                    f,
                    "tensor {index} at offset {offset} is misaligned, overlapping or out of bounds"
                )
            }
            RawError::Checksum { expected, found } => {
                write!(
                    f,
                    "checksum mismatch (header {expected:08x}, payload {found:08x}): the blob is corrupted"
                )
            }
            RawError::NonFinite {
                index,
                name,
                element,
            } => write!(
                f,
                "tensor {index} ({name}) holds a NaN or an infinity at element {element}: a model's weights must be finite"
            ),
            RawError::Misaligned { address_mod_4 } => write!(
                f,
                "the blob starts at an address ≡ {address_mod_4} mod 4; embed it in a #[repr(align(64))] wrapper for zero-copy use, or copy it with load_into"
            ),
            RawError::BigEndianHost => write!(
                f,
                "zero-copy views need a little-endian CPU; copy with load_into"
            ),
        }
    }
}

impl core::error::Error for RawError {}

/// Where tensor `i` of `N` goes in a blob, and the payload offset and total length.
fn layout<N: Network>() -> (usize, impl Fn(usize) -> usize, usize) {
    let payload = (HEADER + ENTRY * N::TENSORS).next_multiple_of(ALIGN);
    let offset = move |i: usize| {
        (0..i).fold(payload, |at, t| {
            (at + 4 * N::tensor_info(t).len()).next_multiple_of(ALIGN)
        })
    };
    let last = N::TENSORS - 1;
    let total = offset(last) + 4 * N::tensor_info(last).len();
    (payload, offset, total)
}

/// The size in bytes of `N`'s blob.
pub fn blob_len<N: Network>() -> usize {
    layout::<N>().2
}

/// Writes the blob of the tensors `tensor(i)` (in `N`'s order) through `emit`, chunk by chunk
/// (no allocation: `emit` may write to a file or fill a buffer).
pub fn write<'a, N: Network>(tensor: impl Fn(usize) -> &'a [f32], mut emit: impl FnMut(&[u8])) {
    let (payload, offset, total) = layout::<N>();
    let mut crc = crc32fast::Hasher::new();
    let mut at = payload;
    for i in 0..N::TENSORS {
        crc.update(&[0u8; ALIGN][..offset(i) - at]);
        for x in tensor(i) {
            crc.update(&x.to_le_bytes());
        }
        at = offset(i) + 4 * N::tensor_info(i).len();
    }
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(N::TENSORS as u32).to_le_bytes());
    header[16..24].copy_from_slice(&(total as u64).to_le_bytes());
    header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
    header[32..40].copy_from_slice(&(payload as u64).to_le_bytes());
    emit(&header);
    for i in 0..N::TENSORS {
        let info = N::tensor_info(i);
        let (d0, d1) = (
            info.shape[0] as u32,
            info.shape.get(1).map_or(1, |&d| d as u32),
        );
        let mut entry = [0u8; ENTRY];
        entry[..4].copy_from_slice(&(info.shape.len() as u32).to_le_bytes());
        entry[4..8].copy_from_slice(&d0.to_le_bytes());
        entry[8..12].copy_from_slice(&d1.to_le_bytes());
        entry[16..24].copy_from_slice(&(offset(i) as u64).to_le_bytes());
        entry[24..32].copy_from_slice(&(info.len() as u64).to_le_bytes());
        emit(&entry);
    }
    let mut at = HEADER + ENTRY * N::TENSORS;
    for i in 0..N::TENSORS {
        let pad = offset(i) - at;
        emit(&[0u8; ALIGN][..pad]);
        for chunk in tensor(i).chunks(256) {
            let mut bytes = [0u8; 1024];
            for (b, x) in bytes.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&x.to_le_bytes());
            }
            emit(&bytes[..4 * chunk.len()]);
        }
        at = offset(i) + 4 * N::tensor_info(i).len();
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

/// What is wrong with the start of a blob (its magic and version), in either raw format.
pub(crate) enum StartError {
    /// Shorter than its header and table (`needed` bytes).
    Truncated { needed: usize, found: usize },
    /// Not this format's magic bytes.
    BadMagic,
    /// Another version than this build reads.
    UnsupportedVersion { found: u32 },
}

/// Checks a blob's first bytes: `magic`, then (from `header` bytes on) `version` at offset 8.
/// `needed` is what the whole header and table take, for the message.
pub(crate) fn check_start(
    bytes: &[u8],
    (magic, version): (&[u8; 8], u32),
    header: usize,
    needed: usize,
) -> Result<(), StartError> {
    let truncated = StartError::Truncated {
        needed,
        found: bytes.len(),
    };
    if bytes.len() < magic.len() {
        return Err(truncated);
    }
    if bytes[..magic.len()] != *magic {
        return Err(StartError::BadMagic);
    }
    if bytes.len() < header {
        return Err(truncated);
    }
    let found = u32_at(bytes, 8);
    if found != version {
        return Err(StartError::UnsupportedVersion { found });
    }
    Ok(())
}

impl From<StartError> for RawError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Truncated { needed, found } => RawError::Truncated { needed, found },
            StartError::BadMagic => RawError::BadMagic,
            StartError::UnsupportedVersion { found } => RawError::UnsupportedVersion { found },
        }
    }
}

/// Validates `blob` for network `N` and returns each tensor's byte range.
fn check<N: Network>(
    blob: &[u8],
) -> Result<impl Fn(usize) -> core::ops::Range<usize> + '_, RawError> {
    let needed = HEADER + ENTRY * N::TENSORS;
    check_start(blob, (&MAGIC, VERSION), HEADER, needed)?;
    let count = u32_at(blob, 12);
    if count as usize != N::TENSORS {
        return Err(RawError::TensorCount {
            expected: N::TENSORS,
            found: count,
        });
    }
    if blob.len() < needed {
        return Err(RawError::Truncated {
            needed,
            found: blob.len(),
        });
    }
    let total = u64_at(blob, 16);
    if total != blob.len() as u64 {
        return Err(RawError::Length {
            header: total,
            actual: blob.len(),
        });
    }
    let payload = u64_at(blob, 32);
    if !payload.is_multiple_of(ALIGN as u64) || payload < needed as u64 || payload > total {
        return Err(RawError::Offset {
            index: 0,
            offset: payload,
        });
    }
    check_entries::<N>(blob, payload, total)?;
    let expected = u32_at(blob, 24);
    let found = crc32fast::hash(&blob[payload as usize..]);
    if expected != found {
        return Err(RawError::Checksum { expected, found });
    }
    let range = move |i: usize| {
        let start = u64_at(blob, HEADER + ENTRY * i + 16) as usize;
        start..start + 4 * N::tensor_info(i).len()
    };
    check_finite::<N>(blob, range)?;
    Ok(range)
}

/// Checks that every value of every tensor (at `range(i)`) is finite.
fn check_finite<N: Network>(
    blob: &[u8],
    range: impl Fn(usize) -> core::ops::Range<usize>,
) -> Result<(), RawError> {
    for i in 0..N::TENSORS {
        let non_finite = blob[range(i)]
            .chunks_exact(4)
            .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
        if let Some(element) = non_finite {
            return Err(RawError::NonFinite {
                index: i,
                name: N::tensor_info(i).name,
                element,
            });
        }
    }
    Ok(())
}

/// Checks each tensor's entry in the header of `blob`: `N`'s shape, and an aligned offset
/// after the previous tensor's end (the first at `payload` or later) within the `total` bytes.
fn check_entries<N: Network>(blob: &[u8], payload: u64, total: u64) -> Result<(), RawError> {
    let mut end = payload;
    for i in 0..N::TENSORS {
        let e = HEADER + ENTRY * i;
        let info = N::tensor_info(i);
        let (rank, d0, d1) = (u32_at(blob, e), u32_at(blob, e + 4), u32_at(blob, e + 8));
        let want = (
            info.shape.len() as u32,
            info.shape[0] as u32,
            info.shape.get(1).map_or(1, |&d| d as u32),
        );
        if (rank, d0, d1) != want || u64_at(blob, e + 24) != info.len() as u64 {
            return Err(RawError::Shape {
                index: i,
                name: info.name,
                found: [d0, d1],
            });
        }
        let offset = u64_at(blob, e + 16);
        let bytes = 4 * info.len() as u64;
        if !offset.is_multiple_of(ALIGN as u64)
            || offset < end
            || offset.checked_add(bytes).is_none_or(|stop| stop > total)
        {
            return Err(RawError::Offset { index: i, offset });
        }
        end = offset + bytes;
    }
    Ok(())
}

/// A zero-copy view of `N`'s parameters inside `blob`.
pub fn view<N: Network>(blob: &[u8]) -> Result<N::View<'_>, RawError> {
    let range = check::<N>(blob)?;
    if cfg!(target_endian = "big") {
        return Err(RawError::BigEndianHost);
    }
    let mut tensors: [&[f32]; 64] = [&[]; 64];
    assert!(
        N::TENSORS <= tensors.len(),
        "raw::view supports networks of up to 32 layers"
    );
    for (i, t) in tensors.iter_mut().enumerate().take(N::TENSORS) {
        *t = bytemuck::try_cast_slice(&blob[range(i)]).map_err(|_| RawError::Misaligned {
            address_mod_4: blob.as_ptr() as usize % 4,
        })?;
    }
    Ok(N::view_from_tensors(&tensors[..N::TENSORS]).expect("shapes were checked"))
}

/// Copies `N`'s parameters from `blob` (any alignment, any endianness) into `net`.
pub fn load_into<N: Network>(blob: &[u8], net: &mut N) -> Result<(), RawError> {
    let range = check::<N>(blob)?;
    for i in 0..N::TENSORS {
        for (x, b) in net
            .tensor_mut(i)
            .iter_mut()
            .zip(blob[range(i)].chunks_exact(4))
        {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    Ok(())
}
