//! `constnet predict`: classify a test-set image or an image file, and draw it.

use crate::args::DataDir;
use crate::model_file::{self, Model, with_net};
use clap::error::ErrorKind;
use constnet::image::Polarity;
use constnet::kernels::int8::Int8Path;
use constnet::{Network, Simd};
use std::error::Error;
use std::path::PathBuf;

/// Classify a test-set image or a PNG, JPEG or PGM image of a digit
#[derive(clap::Args)]
#[command(
    after_help = "Prints the top 3 classes and draws the image as the network sees it. An \
                  image file of any size and colour type is turned into an MNIST digit: gray, \
                  alpha composited on the background it implies, inverted when its border is \
                  light (MNIST digits are light on dark), the digit fitted into 20×20 and its \
                  centre of mass centred in 28×28."
)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["index", "image"]))]
pub struct Args {
    /// The model file: f32 or int8, safetensors or a raw blob
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Classify test-set image N
    #[arg(long, value_name = "N")]
    index: Option<usize>,
    /// Classify a PNG, JPEG or PGM file (any size, colour type or background)
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Invert the image (a dark digit on light) whatever its border says
    #[arg(long, conflicts_with = "no_invert")]
    invert: bool,
    /// Never invert the image
    #[arg(long)]
    no_invert: bool,
    #[command(flatten)]
    data: DataDir,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let Image {
        pixels,
        source,
        label,
    } = match (args.index, &args.image) {
        (Some(i), _) => test_image(&args.data, i)?,
        (None, Some(path)) => {
            let polarity = match (args.invert, args.no_invert) {
                (true, _) => Polarity::Invert,
                (_, true) => Polarity::Keep,
                _ => Polarity::Auto,
            };
            let digit = constnet::image::read_digit(path, polarity)?;
            let (w, h) = digit.size;
            let mut done = Vec::new();
            if digit.inverted {
                done.push("inverted");
            }
            if digit.rescaled {
                done.push("fitted into 20×20");
            }
            done.push("centred");
            Image {
                pixels: digit.pixels,
                source: format!("{} ({w}×{h}; {})", path.display(), done.join(", ")),
                label: None,
            }
        }
        (None, None) => unreachable!("clap requires --index or --image"),
    };
    let mut logits = [0.0f32; 10];
    match model_file::load_any(&args.model)? {
        Model::F32(net) => with_net!(net, n => n.forward_one::<Simd>(&pixels, &mut logits)),
        Model::Int8(q) => {
            // The int8 input is the byte itself.
            let bytes: Vec<u8> = pixels
                .iter()
                .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let q = q.view();
            let mut ints = [0i32; 10];
            q.forward_one(Int8Path::selected(), &bytes, &mut ints);
            for (l, &i) in logits.iter_mut().zip(&ints) {
                *l = i as f32 * q.logit_scale();
            }
        }
    }
    let mut probabilities = [0.0f32; 10];
    constnet::logits::softmax(&logits, &mut probabilities);
    let mut ranked: Vec<usize> = (0..10).collect();
    ranked.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    match label {
        Some(l) => say!("{source} (label {l}):"),
        None => say!("{source}:"),
    }
    for &c in &ranked[..3] {
        say!("  {c}  {:6.2}%", 100.0 * probabilities[c]);
    }
    draw(&pixels);
    Ok(())
}

/// An image to classify.
struct Image {
    /// 28×28 pixels, row by row, in [0, 1].
    pixels: Vec<f32>,
    /// Where it comes from, for the output.
    source: String,
    /// Its label, for a test-set image.
    label: Option<u8>,
}

/// Test-set image `i`.
fn test_image(data: &DataDir, i: usize) -> Result<Image, Box<dyn Error>> {
    let test = data.open_test(true)?;
    if i >= test.count {
        let message = format!("--index {i} is past the test set's {} images", test.count);
        return Err(crate::usage_error(
            "predict",
            ErrorKind::ValueValidation,
            message,
        ));
    }
    let pixels = test.images().image(i);
    Ok(Image {
        pixels: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        source: format!("test image {i}"),
        label: Some(test.labels()[i]),
    })
}

/// Draws a 28×28 image in characters, two per pixel so that it keeps its shape.
fn draw(pixels: &[f32]) {
    const RAMP: &[u8] = b" .:-=+*#%@";
    for row in pixels.chunks(28) {
        let line: String = row
            .iter()
            .flat_map(|&p| {
                let level = (p.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32).round() as usize;
                [RAMP[level] as char; 2]
            })
            .collect();
        say!("  |{line}|");
    }
}
