//! Reading a digit as users have it (a PNG, JPEG or PGM of any size and colour type) and
//! turning it into an MNIST-style 28×28 input.
//!
//! The steps, each for a reason:
//! 1. Decode with the `image` crate (PNG, JPEG, PNM), refusing a header that claims more than
//!    [`MAX_SIDE`] pixels a side before anything is allocated for it.
//! 2. To gray (Rec. 709 luma), with alpha composited over the background the image implies:
//!    white under dark strokes (a drawing on a transparent canvas), black under light ones.
//! 3. MNIST digits are light on dark: the image is inverted when its border is mostly light.
//! 4. MNIST's own preprocessing: the digit's bounding box scaled to fit 20×20 (aspect kept,
//!    anti-aliased), then placed in 28×28 with its centre of mass at the centre. An image that
//!    already has MNIST's form (28×28, digit within 20×20) is only re-centred, so the test set's
//!    images come through unchanged.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use image::imageops::{self, FilterType};
use image::{ImageBuffer, ImageFormat, ImageReader, Limits, Luma};
use std::borrow::Cow;
use std::fmt;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// The network's input side (MNIST: 28).
pub const SIDE: usize = 28;
/// The box MNIST fits each digit into.
const BOX: u32 = 20;
/// The largest image file read: a photo of a digit is far smaller.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 8192;
/// A pixel brighter than this (after inversion) belongs to the digit's bounding box; above
/// JPEG noise, below MNIST's faintest anti-aliased edges that matter.
const INK: f32 = 0.1;

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

/// A digit ready for the network, and what was done to get it.
#[derive(Clone, Debug, PartialEq)]
pub struct Digit {
    /// 28×28 pixels, row by row, in [0, 1], light on dark.
    pub pixels: Vec<f32>,
    /// The file's width and height.
    pub size: (u32, u32),
    /// Whether it was inverted (a dark digit on a light background).
    pub inverted: bool,
    /// Whether its bounding box was rescaled into 20×20 (false: only re-centred).
    pub rescaled: bool,
}

/// How to decide on inversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Polarity {
    /// Invert when the border is mostly light.
    #[default]
    Auto,
    /// Always invert (a dark digit on a light background).
    Invert,
    /// Never invert.
    Keep,
}

/// Reads `path` as a digit. Refuses what is not a regular file (a FIFO or `/dev/zero` would
/// be read forever) and files over [`MAX_FILE_BYTES`].
pub fn read_digit(path: &Path, polarity: Polarity) -> Result<Digit, ImageError> {
    let fail = |problem: String| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        let len = meta.len();
        return Err(fail(format!(
            "{len} bytes; an image file may have at most {MAX_FILE_BYTES}"
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail("the file grew past the size limit while read".into()));
    }
    decode(&bytes, polarity).map_err(fail)
}

/// [`read_digit`] on a file's bytes; the error says what is wrong.
pub fn decode(bytes: &[u8], polarity: Polarity) -> Result<Digit, String> {
    let bytes = crlf_pgm(bytes);
    let format = match image::guess_format(&bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Pnm)) => f,
        _ => return Err("not a PNG, JPEG or PGM/PPM image".into()),
    };
    let reader = || {
        let mut r = ImageReader::with_format(Cursor::new(&bytes[..]), format);
        let mut limits = Limits::default();
        limits.max_alloc = Some(512 << 20);
        r.limits(limits);
        r
    };
    let bad = |e: image::ImageError| format!("bad {format:?} image: {e}");
    // The header alone first (it allocates nothing for the pixels): a claimed size is refused
    // here, with the size in the message.
    let (w, h) = reader().into_dimensions().map_err(bad)?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!(
            "image is {w}×{h}; each side must be 1 to {MAX_SIDE} pixels"
        ));
    }
    let image = reader().decode().map_err(bad)?;
    let gray = composite(&image);
    Ok(to_mnist(gray, (w, h), polarity))
}

/// A P5 PGM written with CRLF line ends has "\r\n" after its maximum value where the format
/// allows one whitespace byte; read as written, every pixel would move by one. When the
/// raster is then exactly one byte too long, the '\r' is dropped.
fn crlf_pgm(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.starts_with(b"P5") {
        return Cow::Borrowed(bytes);
    }
    let mut fields = Vec::new();
    let mut at = 2;
    while fields.len() < 3 && at < bytes.len() {
        match bytes[at] {
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b if b.is_ascii_whitespace() => at += 1,
            _ => {
                let start = at;
                while at < bytes.len() && bytes[at].is_ascii_digit() {
                    at += 1;
                }
                match std::str::from_utf8(&bytes[start..at])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(v) => fields.push(v),
                    None => return Cow::Borrowed(bytes),
                }
            }
        }
    }
    let [w, h, max] = fields[..] else {
        return Cow::Borrowed(bytes);
    };
    let raster = w
        .saturating_mul(h)
        .saturating_mul(if max > 255 { 2 } else { 1 });
    let rest = bytes.len().saturating_sub(at) as u64;
    if bytes.get(at..at + 2) == Some(b"\r\n") && rest == raster.saturating_add(2) {
        let mut fixed = bytes.to_vec();
        fixed.remove(at);
        return Cow::Owned(fixed);
    }
    Cow::Borrowed(bytes)
}

/// Gray levels in [0, 1] with alpha composited over the implied background: white if the
/// visible pixels are mostly dark (dark strokes on a transparent canvas), else black.
fn composite(image: &image::DynamicImage) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    let la = image.to_luma_alpha32f();
    let (mut sum, mut weight) = (0.0f64, 0.0f64);
    for p in la.pixels() {
        let [l, a] = p.0;
        if a > 0.5 {
            sum += f64::from(l);
            weight += 1.0;
        }
    }
    let background = if weight == 0.0 || sum / weight < 0.5 {
        1.0
    } else {
        0.0
    };
    ImageBuffer::from_fn(la.width(), la.height(), |x, y| {
        let [l, a] = la.get_pixel(x, y).0;
        let (l, a) = (l.clamp(0.0, 1.0), a.clamp(0.0, 1.0));
        Luma([a * l + (1.0 - a) * background])
    })
}

/// Inversion, bounding box into 20×20, centre of mass to the centre of 28×28.
fn to_mnist(
    mut gray: ImageBuffer<Luma<f32>, Vec<f32>>,
    size: (u32, u32),
    polarity: Polarity,
) -> Digit {
    let (w, h) = gray.dimensions();
    let border: Vec<f32> = gray
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x + 1 == w || *y + 1 == h)
        .map(|(_, _, p)| p.0[0])
        .collect();
    let light = border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    let inverted = match polarity {
        Polarity::Auto => light,
        Polarity::Invert => true,
        Polarity::Keep => false,
    };
    if inverted {
        gray.pixels_mut().for_each(|p| p.0[0] = 1.0 - p.0[0]);
    }
    let Some((x0, y0, x1, y1)) = ink_box(&gray) else {
        // Blank: nothing to fit or centre.
        let blank = vec![0.0; SIDE * SIDE];
        return Digit {
            pixels: blank,
            size,
            inverted,
            rescaled: false,
        };
    };
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let mnist_form = (w, h) == (SIDE as u32, SIDE as u32) && bw <= BOX && bh <= BOX;
    let mut canvas = ImageBuffer::<Luma<f32>, Vec<f32>>::new(SIDE as u32, SIDE as u32);
    if mnist_form {
        canvas = gray;
    } else {
        let digit = imageops::crop_imm(&gray, x0, y0, bw, bh).to_image();
        let scale = BOX as f32 / bw.max(bh) as f32;
        let (nw, nh) = (
            ((bw as f32 * scale).round() as u32).clamp(1, BOX),
            ((bh as f32 * scale).round() as u32).clamp(1, BOX),
        );
        let small = imageops::resize(&digit, nw, nh, FilterType::Triangle);
        let at = |n: u32| i64::from((SIDE as u32 - n) / 2);
        imageops::replace(&mut canvas, &small, at(nw), at(nh));
    }
    let pixels = centred(&canvas);
    Digit {
        pixels,
        size,
        inverted,
        rescaled: !mnist_form,
    }
}

/// The smallest box holding every pixel above [`INK`], as (x0, y0, x1, y1), if any.
fn ink_box(gray: &ImageBuffer<Luma<f32>, Vec<f32>>) -> Option<(u32, u32, u32, u32)> {
    gray.enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > INK)
        .fold(None, |b, (x, y, _)| {
            Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            })
        })
}

/// The 28×28 canvas moved by whole pixels so that its centre of mass is at (14, 14), where
/// MNIST's are (every test image's rounds to it), clamped to [0, 1].
fn centred(canvas: &ImageBuffer<Luma<f32>, Vec<f32>>) -> Vec<f32> {
    let (mut m, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in canvas.enumerate_pixels() {
        let v = f64::from(p.0[0]);
        (m, mx, my) = (m + v, mx + v * f64::from(x), my + v * f64::from(y));
    }
    let shift = |c: f64| {
        if m > 0.0 {
            (14.0 - c / m).round() as i64
        } else {
            0
        }
    };
    let (dx, dy) = (shift(mx), shift(my));
    let n = SIDE as i64;
    let mut out = vec![0.0f32; SIDE * SIDE];
    for (x, y, p) in canvas.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + dx, i64::from(y) + dy);
        if (0..n).contains(&tx) && (0..n).contains(&ty) {
            out[(ty * n + tx) as usize] = p.0[0].clamp(0.0, 1.0);
        }
    }
    out
}
