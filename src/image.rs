//! Reading one grayscale image (binary or ASCII PGM, or PNG) as network input.
//!
//! The image must be exactly the network's size (28×28 for MNIST) and grayscale; pixels are
//! scaled to [0, 1] by the file's maximum value, the way MNIST's bytes are scaled by 1/255.
//! MNIST digits are white on black; `invert` flips a black-on-white drawing.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why an image file cannot be used.
#[derive(Debug)]
pub struct ImageError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for ImageError {}

/// Reads `path` (PGM or PNG, by content) as `width × height` pixels in [0, 1].
pub fn read_grayscale(
    path: &Path,
    width: usize,
    height: usize,
    invert: bool,
) -> Result<Vec<f32>, ImageError> {
    let fail = |problem: String| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    decode(&bytes, width, height, invert).map_err(fail)
}

/// [`read_grayscale`] on the bytes of a file; the error says what is wrong.
pub fn decode(bytes: &[u8], width: usize, height: usize, invert: bool) -> Result<Vec<f32>, String> {
    // The declared size is checked against the network's before anything is allocated: a
    // header may claim billions of pixels.
    let size = |w: usize, h: usize| -> Result<(), String> {
        if (w, h) == (width, height) {
            Ok(())
        } else {
            Err(format!(
                "image is {w}×{h}, the network takes {width}×{height}"
            ))
        }
    };
    let pixels = if bytes.starts_with(b"\x89PNG") {
        decode_png(bytes, size)?
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        decode_pgm(bytes, size)?
    } else {
        return Err("not a PGM (P2/P5) or PNG image".into());
    };
    Ok(pixels
        .into_iter()
        .map(|p| if invert { 1.0 - p } else { p })
        .collect())
}

/// PGM: magic, width, height, maxval as whitespace-separated ASCII (with `#` comments), then
/// pixels as bytes (P5, two bytes big-endian when maxval > 255) or ASCII numbers (P2).
fn decode_pgm(
    bytes: &[u8],
    size: impl Fn(usize, usize) -> Result<(), String>,
) -> Result<Vec<f32>, String> {
    let mut at = 2;
    let mut field = |what: &str| -> Result<usize, String> {
        loop {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if at < bytes.len() && bytes[at] == b'#' {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
                continue;
            }
            break;
        }
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        std::str::from_utf8(&bytes[start..at])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("bad PGM header: no {what}"))
    };
    let (w, h) = (field("width")?, field("height")?);
    size(w, h)?;
    let max = field("maximum value")?;
    if max == 0 || max > 65535 {
        return Err(format!("bad PGM maximum value {max}"));
    }
    let count = w * h;
    let scale = 1.0 / max as f32;
    if bytes[1] == b'2' {
        let mut pixels = Vec::with_capacity(count);
        for _ in 0..count {
            let v = field("pixel").map_err(|_| "truncated PGM pixel data".to_string())?;
            pixels.push(v.min(max) as f32 * scale);
        }
        return Ok(pixels);
    }
    // P5: exactly one whitespace byte, then the raster.
    let data = bytes.get(at + 1..).unwrap_or(&[]);
    let depth = if max > 255 { 2 } else { 1 };
    if data.len() < count * depth {
        return Err(format!(
            "truncated PGM: {} pixel bytes, {w}×{h} needs {}",
            data.len(),
            count * depth
        ));
    }
    Ok(if depth == 1 {
        data[..count]
            .iter()
            .map(|&p| usize::from(p).min(max) as f32 * scale)
            .collect()
    } else {
        data[..2 * count]
            .chunks_exact(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])).min(max) as f32 * scale)
            .collect()
    })
}

/// At most this many bytes of PNG decoder memory: far more than any 28×28 image needs.
const PNG_MEMORY: usize = 1 << 20;

fn decode_png(
    bytes: &[u8],
    size: impl Fn(usize, usize) -> Result<(), String>,
) -> Result<Vec<f32>, String> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits { bytes: PNG_MEMORY },
    );
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let info = reader.info();
    size(info.width as usize, info.height as usize)?;
    let mut buffer = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => return Err(format!("PNG is {other:?}; a grayscale image is needed")),
    };
    let data = &buffer[..frame.buffer_size()];
    Ok(match frame.bit_depth {
        png::BitDepth::Sixteen => data
            .chunks_exact(2 * channels)
            .map(|p| f32::from(u16::from_be_bytes([p[0], p[1]])) / 65535.0)
            .collect(),
        _ => data
            .chunks_exact(channels)
            .map(|p| f32::from(p[0]) / 255.0)
            .collect(),
    })
}
