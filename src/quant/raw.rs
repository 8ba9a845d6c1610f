//! The raw int8 blob: a quantized network as a versioned, 64-byte-aligned little-endian image
//! that a `no_std` program embeds with `include_bytes!` and runs in place (no copy, no
//! allocator).
//!
//! Layout, version 1 (integers little-endian):
//!
//! ```text
//! offset  size
//! 0       8    magic "CNETQ8\0\0"
//! 8       4    version (1)
//! 12      4    layer count L
//! 16      8    total length of the blob in bytes
//! 24      4    CRC-32 (IEEE) of bytes [64, total length)
//! 28      36   zero
//! 64      64·L the layer table, one entry per layer:
//!              u32 inputs, u32 outputs, i32 input zero point, f32 input scale,
//!              u32 output kind (1: int8 with ReLU, 2: i32 logits), i32 output zero point,
//!              f32 output scale, u32 zero, then u32 byte offsets of the layer's six sections
//!              (weights, bias, kernel bias, multiplier, shift, weight scale), u32 zero ×2
//! …            the sections, each at a multiple of 64, in table order: the packed weights
//!              (i8, see `kernels::int8`), then five arrays of padded_rows(outputs) values
//!              (i32, i32, i32, i32, f32)
//! ```
//!
//! Reading checks the magic, the version, the layer count, the length, the checksum, that
//! every offset is exactly where the writer puts it, then everything [`super::check`] checks.
//! [`view`] is zero-copy and needs the blob on a 4-byte boundary (embed it in a
//! `#[repr(align(64))]` wrapper) and a little-endian CPU.

use super::{QLayer, QuantError, QuantNet};
use crate::format::raw::{StartError, check_start};
use crate::kernels::int8::{Output, packed_len, padded_rows};
use core::fmt;

/// The first eight bytes of a blob.
pub const MAGIC: [u8; 8] = *b"CNETQ8\0\0";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 64;
const ENTRY: usize = 64;
const ALIGN: usize = 64;
const SECTIONS: usize = 6;

/// Why bytes are not a usable blob (before the network's own checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// Shorter than its header and table.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// Not an int8 blob.
    BadMagic,
    /// A version this code does not read.
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
    },
    /// The header's total length differs from the blob's.
    Length {
        /// Length in the header.
        header: u64,
        /// Actual length.
        actual: usize,
    },
    /// The checksum does not match: the blob is corrupted.
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the bytes.
        found: u32,
    },
    /// A layer's output kind is not 1 or 2.
    OutputKind {
        /// Layer.
        layer: usize,
        /// The kind.
        found: u32,
    },
    /// A section is not where the layout puts it.
    Offset {
        /// Layer.
        layer: usize,
        /// Section (0 weights … 5 weight scale).
        section: usize,
        /// The offset in the table.
        offset: u32,
    },
    /// Zero-copy needs the blob on a 4-byte boundary.
    Misaligned,
    /// Zero-copy views of little-endian values need a little-endian CPU.
    BigEndianHost,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlobError::Truncated { needed, found } => write!(
                f,
                "truncated: {found} bytes, the header and table need {needed}"
            ),
            BlobError::BadMagic => write!(f, "not a constnet int8 blob (bad magic bytes)"),
            BlobError::UnsupportedVersion { found } => write!(
                f,
                "int8 blob version {found}; this build reads version {VERSION}"
            ),
            BlobError::Length { header, actual } => {
                write!(f, "{actual} bytes, the header says {header}")
            }
            BlobError::Checksum { expected, found } => write!(
                f,
                "checksum mismatch (header {expected:08x}, data {found:08x}): the blob is corrupted"
            ),
            BlobError::OutputKind { layer, found } => {
                write!(f, "layer {layer}: output kind {found} is not 1 or 2")
            }
            BlobError::Offset {
                layer,
                section,
                offset,
            } => write!(
                f,
                "layer {layer}: section {section} at offset {offset}, not where the layout puts it"
            ),
            BlobError::Misaligned => write!(
                f,
                "the blob does not start on a 4-byte boundary (embed it in an aligned wrapper)"
            ),
            BlobError::BigEndianHost => {
                write!(f, "int8 blobs are read in place on little-endian CPUs only")
            }
        }
    }
}

impl From<StartError> for BlobError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Truncated { needed, found } => BlobError::Truncated { needed, found },
            StartError::BadMagic => BlobError::BadMagic,
            StartError::UnsupportedVersion { found } => BlobError::UnsupportedVersion { found },
        }
    }
}

impl From<BlobError> for QuantError {
    fn from(e: BlobError) -> Self {
        QuantError::Blob(e)
    }
}

/// The byte length of each section of a layer.
fn section_lens(inp: usize, out: usize) -> [usize; SECTIONS] {
    let rows = 4 * padded_rows(out);
    [packed_len(out, inp), rows, rows, rows, rows, rows]
}

/// The offsets of every section of a network with these widths, and the total length.
fn layout<const L: usize>(dims: &[usize]) -> ([[usize; SECTIONS]; L], usize) {
    let mut at = (HEADER + ENTRY * L).next_multiple_of(ALIGN);
    let mut offsets = [[0; SECTIONS]; L];
    for (l, offsets) in offsets.iter_mut().enumerate() {
        for (o, len) in offsets.iter_mut().zip(section_lens(dims[l], dims[l + 1])) {
            *o = at;
            at = (at + len).next_multiple_of(ALIGN);
        }
    }
    (offsets, at)
}

/// The length of the blob of a network with these widths (input first, `L + 1` of them).
pub fn blob_len<const L: usize>(dims: &[usize]) -> usize {
    layout::<L>(dims).1
}

/// Writes `net` as a blob through `sink` (in pieces, in order; no allocation).
pub fn write<const L: usize>(net: &QuantNet<'_, L>, mut sink: impl FnMut(&[u8])) {
    let dims = dims_of(net);
    let (offsets, total) = layout::<L>(&dims);
    let mut crc = crc32fast::Hasher::new();
    body(net, &offsets, |b| crc.update(b));
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(L as u32).to_le_bytes());
    header[16..24].copy_from_slice(&(total as u64).to_le_bytes());
    header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
    sink(&header);
    body(net, &offsets, sink);
}

fn dims_of<const L: usize>(net: &QuantNet<'_, L>) -> [usize; 17] {
    let mut dims = [0; 17];
    assert!(L < dims.len(), "raw::write: at most 16 layers");
    dims[0] = net.inputs();
    for (d, l) in dims[1..].iter_mut().zip(net.layers()) {
        *d = l.out;
    }
    dims
}

/// Everything after the header: the table, then the sections with their padding.
fn body<const L: usize>(
    net: &QuantNet<'_, L>,
    offsets: &[[usize; SECTIONS]; L],
    mut sink: impl FnMut(&[u8]),
) {
    for (l, off) in net.layers().iter().zip(offsets) {
        let mut e = [0u8; ENTRY];
        let (kind, zp) = match l.output {
            Output::Int8 { zero_point, .. } => (1u32, zero_point),
            Output::Int32 => (2, 0),
        };
        let words: [u32; 8] = [
            l.inp as u32,
            l.out as u32,
            l.input_zero_point as u32,
            l.input_scale.to_bits(),
            kind,
            zp as u32,
            l.output_scale.to_bits(),
            0,
        ];
        let offsets = off.map(|o| o as u32);
        for (i, w) in words.iter().chain(&offsets).enumerate() {
            e[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        sink(&e);
    }
    let mut at = HEADER + ENTRY * L;
    let zeros = [0u8; ALIGN];
    for (l, off) in net.layers().iter().zip(offsets) {
        sink(&zeros[..off[0] - at]);
        sink(bytemuck::cast_slice(l.weights));
        at = off[0] + l.weights.len();
        let sections: [&[u32]; 5] = [
            bytemuck::cast_slice(l.bias),
            bytemuck::cast_slice(l.kernel_bias),
            bytemuck::cast_slice(l.multiplier),
            bytemuck::cast_slice(l.shift),
            bytemuck::cast_slice(l.weight_scale),
        ];
        for (values, &o) in sections.iter().zip(&off[1..]) {
            sink(&zeros[..o - at]);
            for v in values.iter() {
                sink(&v.to_le_bytes());
            }
            at = o + 4 * values.len();
        }
    }
    let end = at.next_multiple_of(ALIGN);
    sink(&zeros[..end - at]);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Views a blob in place as a network with the widths `dims` (input first), after checking
/// everything (see the module docs).
pub fn view<'a, const L: usize>(
    bytes: &'a [u8],
    dims: &[usize],
) -> Result<QuantNet<'a, L>, QuantError> {
    if dims.len() != L + 1 {
        return Err(QuantError::LayerCount {
            expected: L,
            found: dims.len().saturating_sub(1),
        });
    }
    check_header::<L>(bytes)?;
    if cfg!(target_endian = "big") {
        return Err(BlobError::BigEndianHost.into());
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(4) {
        return Err(BlobError::Misaligned.into());
    }
    for l in 0..L {
        let e = HEADER + ENTRY * l;
        let found = (u32_at(bytes, e) as usize, u32_at(bytes, e + 4) as usize);
        let expected = (dims[l], dims[l + 1]);
        if found != expected {
            return Err(QuantError::Shape {
                layer: l,
                expected,
                found,
            });
        }
    }
    let (offsets, total) = layout::<L>(dims);
    if total != bytes.len() {
        return Err(BlobError::Length {
            header: total as u64,
            actual: bytes.len(),
        }
        .into());
    }
    let mut layers = [None; L];
    for (l, slot) in layers.iter_mut().enumerate() {
        *slot = Some(layer(bytes, l, dims[l], dims[l + 1], &offsets[l])?);
    }
    QuantNet::new(layers.map(|l| l.expect("every layer was read")), dims)
}

/// Magic, version, count, length and checksum.
fn check_header<const L: usize>(bytes: &[u8]) -> Result<(), QuantError> {
    let needed = HEADER + ENTRY * L;
    check_start(bytes, (&MAGIC, VERSION), HEADER, needed).map_err(BlobError::from)?;
    if bytes.len() < needed {
        return Err(BlobError::Truncated {
            needed,
            found: bytes.len(),
        }
        .into());
    }
    let count = u32_at(bytes, 12) as usize;
    if count != L {
        return Err(QuantError::LayerCount {
            expected: L,
            found: count,
        });
    }
    let header = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if header != bytes.len() as u64 {
        return Err(BlobError::Length {
            header,
            actual: bytes.len(),
        }
        .into());
    }
    let expected = u32_at(bytes, 24);
    let found = crc32fast::hash(&bytes[HEADER..]);
    if expected != found {
        return Err(BlobError::Checksum { expected, found }.into());
    }
    Ok(())
}

/// One layer's table entry and sections.
fn layer<'a>(
    bytes: &'a [u8],
    l: usize,
    inp: usize,
    out: usize,
    offsets: &[usize; SECTIONS],
) -> Result<QLayer<'a>, QuantError> {
    let e = HEADER + ENTRY * l;
    for (s, &expected) in offsets.iter().enumerate() {
        let offset = u32_at(bytes, e + 32 + 4 * s);
        if offset as usize != expected {
            return Err(BlobError::Offset {
                layer: l,
                section: s,
                offset,
            }
            .into());
        }
    }
    let output = match u32_at(bytes, e + 16) {
        1 => Output::Int8 {
            zero_point: u32_at(bytes, e + 20) as i32,
            relu: true,
        },
        2 => Output::Int32,
        found => return Err(BlobError::OutputKind { layer: l, found }.into()),
    };
    let lens = section_lens(inp, out);
    let section = |s: usize| &bytes[offsets[s]..][..lens[s]];
    // Aligned (the blob is, and offsets are multiples of 64) and whole multiples of 4.
    let words = |s: usize| {
        bytemuck::try_cast_slice::<u8, i32>(section(s)).map_err(|_| BlobError::Misaligned)
    };
    Ok(QLayer {
        inp,
        out,
        weights: bytemuck::cast_slice(section(0)),
        bias: words(1)?,
        kernel_bias: words(2)?,
        multiplier: words(3)?,
        shift: words(4)?,
        weight_scale: bytemuck::try_cast_slice(section(5)).map_err(|_| BlobError::Misaligned)?,
        input_scale: f32::from_bits(u32_at(bytes, e + 12)),
        input_zero_point: u32_at(bytes, e + 8) as i32,
        output_scale: f32::from_bits(u32_at(bytes, e + 24)),
        output,
    })
}
