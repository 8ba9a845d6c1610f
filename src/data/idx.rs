//! The IDX format of the MNIST files, parsed from bytes (no_std, no allocation).
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! offset 0   u8 0, u8 0          magic: two zero bytes
//! offset 2   u8 type             0x08 = unsigned byte (the only type MNIST uses)
//! offset 3   u8 rank             3 for images (count, rows, cols), 1 for labels (count)
//! offset 4   u32 × rank          dimensions
//! then       count·rows·cols bytes (images) or count bytes (labels), nothing after
//! ```
//!
//! The parser checks each of those fields, computes sizes with checked arithmetic, and requires
//! the length to match exactly. Errors say what is wrong; the file name is added by the caller
//! that knows it ([`crate::data::DataError`]).
#![forbid(unsafe_code)]

use core::fmt;

/// Why bytes are not a valid IDX file of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdxError {
    /// Fewer bytes than the header needs.
    TruncatedHeader {
        /// Header bytes the declared rank needs.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The first two bytes are not zero: not an IDX file.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The element type is not unsigned byte (0x08).
    WrongType {
        /// The type byte found.
        found: u8,
    },
    /// The number of dimensions is not what the kind needs.
    WrongRank {
        /// What was expected: 3 for images, 1 for labels.
        expected: u8,
        /// What the header says.
        found: u8,
    },
    /// The dimensions multiply to more than the address space.
    SizeOverflow {
        /// The dimensions.
        dims: [u32; 3],
    },
    /// The data is shorter or longer than the dimensions say.
    LengthMismatch {
        /// Bytes the header implies, header included.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Images of the wrong size for the network.
    WrongImageSize {
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
        /// Pixels the network takes.
        expected: usize,
    },
    /// The image and label files hold different numbers of items.
    CountMismatch {
        /// Images in the image file.
        images: usize,
        /// Labels in the label file.
        labels: usize,
    },
    /// A label is not a valid class.
    LabelOutOfRange {
        /// Position of the label.
        index: usize,
        /// Its value.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IdxError::TruncatedHeader { needed, found } => {
                write!(
                    f,
                    "truncated IDX header: {found} bytes, the header needs {needed}"
                )
            }
            IdxError::BadMagic { found } => write!(
                f,
                "not an IDX file: it starts with {:02x} {:02x} {:02x} {:02x}, an IDX file with 00 00",
                found[0], found[1], found[2], found[3]
            ),
            IdxError::WrongType { found } => {
                write!(
                    f,
                    "IDX element type 0x{found:02x}, expected 0x08 (unsigned byte)"
                )
            }
            IdxError::WrongRank { expected, found } => {
                let kind = |rank| match rank {
                    3 => "an image file (3 dimensions)",
                    1 => "a label file (1 dimension)",
                    _ => "an IDX file of another kind",
                };
                write!(
                    f,
                    "this is {} with {found} dimension(s); expected {}",
                    kind(found),
                    kind(expected)
                )
            }
            IdxError::SizeOverflow { dims } => {
                write!(
                    f,
                    "dimensions {}×{}×{} overflow the address space",
                    dims[0], dims[1], dims[2]
                )
            }
            IdxError::LengthMismatch { expected, found } if found < expected => {
                write!(f, "truncated: {found} bytes, the header says {expected}")
            }
            IdxError::LengthMismatch { expected, found } => {
                write!(
                    f,
                    "{found} bytes, the header says {expected}: {} extra bytes at the end",
                    found - expected
                )
            }
            IdxError::WrongImageSize {
                rows,
                cols,
                expected,
            } => {
                write!(
                    f,
                    "images are {rows}×{cols} = {} pixels; the network takes {expected}",
                    rows * cols
                )
            }
            IdxError::CountMismatch { images, labels } => {
                write!(f, "{images} images but {labels} labels")
            }
            IdxError::LabelOutOfRange {
                index,
                label,
                classes,
            } => {
                write!(
                    f,
                    "label {label} at position {index} is not a class (0..={})",
                    classes - 1
                )
            }
        }
    }
}

impl core::error::Error for IdxError {}

/// A parsed image file: `count` images of `rows × cols` bytes, row-major, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Images<'a> {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count · rows · cols` pixel bytes.
    pub pixels: &'a [u8],
}

impl<'a> Images<'a> {
    /// Pixels of one image.
    pub fn image(&self, i: usize) -> &'a [u8] {
        let size = self.rows * self.cols;
        &self.pixels[i * size..][..size]
    }
}

/// Parses an IDX image file (rank 3, unsigned bytes).
pub fn parse_images(bytes: &[u8]) -> Result<Images<'_>, IdxError> {
    let (dims, data) = parse(bytes, 3)?;
    Ok(Images {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels: data,
    })
}

/// Parses an IDX label file (rank 1, unsigned bytes) and returns the labels.
pub fn parse_labels(bytes: &[u8]) -> Result<&[u8], IdxError> {
    let (_, data) = parse(bytes, 1)?;
    Ok(data)
}

/// Checks that images and labels belong together: images of `pixels` pixels, as many labels
/// as images, every label below `classes`.
pub fn check_pair(
    images: &Images<'_>,
    labels: &[u8],
    pixels: usize,
    classes: usize,
) -> Result<(), IdxError> {
    if images.rows * images.cols != pixels {
        return Err(IdxError::WrongImageSize {
            rows: images.rows,
            cols: images.cols,
            expected: pixels,
        });
    }
    if images.count != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images.count,
            labels: labels.len(),
        });
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes)
    {
        return Err(IdxError::LabelOutOfRange {
            index,
            label,
            classes,
        });
    }
    Ok(())
}

/// Validates the header for `rank` dimensions and returns the dimensions (missing ones are 1)
/// and the data bytes.
fn parse(bytes: &[u8], rank: u8) -> Result<([usize; 3], &[u8]), IdxError> {
    let Some(&magic) = bytes.first_chunk::<4>() else {
        return Err(IdxError::TruncatedHeader {
            needed: 4 + 4 * usize::from(rank),
            found: bytes.len(),
        });
    };
    if magic[0] != 0 || magic[1] != 0 {
        return Err(IdxError::BadMagic { found: magic });
    }
    if magic[2] != 0x08 {
        return Err(IdxError::WrongType { found: magic[2] });
    }
    if magic[3] != rank {
        return Err(IdxError::WrongRank {
            expected: rank,
            found: magic[3],
        });
    }
    let header = 4 + 4 * usize::from(rank);
    if bytes.len() < header {
        return Err(IdxError::TruncatedHeader {
            needed: header,
            found: bytes.len(),
        });
    }
    let mut raw = [1u32; 3];
    for (d, chunk) in raw.iter_mut().zip(bytes[4..header].chunks_exact(4)) {
        *d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let dims = raw.map(|d| d as usize);
    let expected = dims[0]
        .checked_mul(dims[1])
        .and_then(|n| n.checked_mul(dims[2]))
        .and_then(|n| n.checked_add(header))
        .ok_or(IdxError::SizeOverflow { dims: raw })?;
    if bytes.len() != expected {
        return Err(IdxError::LengthMismatch {
            expected,
            found: bytes.len(),
        });
    }
    Ok((dims, &bytes[header..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: [u8; 4], dims: &[u32]) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&magic);
        for (i, d) in dims.iter().enumerate() {
            h[4 + 4 * i..8 + 4 * i].copy_from_slice(&d.to_be_bytes());
        }
        h
    }

    #[test]
    fn parses_a_small_image_file() {
        let mut bytes = header([0, 0, 8, 3], &[2, 2, 3]).to_vec();
        bytes.extend(0..12u8);
        let images = parse_images(&bytes).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.image(1), &[6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn rejects_each_malformed_field() {
        let good = header([0, 0, 8, 3], &[1, 1, 1]);
        assert!(matches!(
            parse_images(&good[..3]),
            Err(IdxError::TruncatedHeader { .. })
        ));
        assert!(matches!(
            parse_images(&header([1, 0, 8, 3], &[1, 1, 1])),
            Err(IdxError::BadMagic { .. })
        ));
        assert!(matches!(
            parse_images(&header([0, 0, 9, 3], &[1, 1, 1])),
            Err(IdxError::WrongType { found: 9 })
        ));
        assert!(matches!(
            parse_labels(&good),
            Err(IdxError::WrongRank {
                expected: 1,
                found: 3
            })
        ));
        assert!(matches!(
            parse_images(&good[..12]),
            Err(IdxError::TruncatedHeader {
                needed: 16,
                found: 12
            })
        ));
        assert!(matches!(
            parse_images(&good),
            Err(IdxError::LengthMismatch {
                expected: 17,
                found: 16
            })
        ));
        let huge = header([0, 0, 8, 3], &[u32::MAX, u32::MAX, u32::MAX]);
        assert!(matches!(
            parse_images(&huge),
            Err(IdxError::SizeOverflow { .. })
        ));
    }

    #[test]
    fn checks_pairs() {
        let pixels = [0u8; 8];
        let images = Images {
            count: 2,
            rows: 2,
            cols: 2,
            pixels: &pixels,
        };
        assert!(check_pair(&images, &[1, 9], 4, 10).is_ok());
        assert_eq!(
            check_pair(&images, &[1], 4, 10),
            Err(IdxError::CountMismatch {
                images: 2,
                labels: 1
            })
        );
        assert_eq!(
            check_pair(&images, &[1, 10], 4, 10),
            Err(IdxError::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10
            })
        );
        assert_eq!(
            check_pair(&images, &[1, 2], 784, 10),
            Err(IdxError::WrongImageSize {
                rows: 2,
                cols: 2,
                expected: 784
            })
        );
    }
}
