//! `constnet predict`: classify a test-set image or an image file, and draw it.

use crate::args::DataDir;
use crate::model_file::{self, Model};
use clap::error::ErrorKind;
use constnet::kernels::int8::Int8Path;
use constnet::{Network, Simd};
use std::error::Error;
use std::path::PathBuf;

/// Classify a test-set image or a 28×28 grayscale PGM/PNG file
#[derive(clap::Args)]
#[command(
    after_help = "Prints the top 3 classes and draws the image. MNIST digits are white on \
                      black; --invert reads a black digit on white."
)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["index", "image"]))]
pub struct Args {
    /// The model file: f32 or int8, safetensors or a raw blob
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Classify test-set image N
    #[arg(long, value_name = "N")]
    index: Option<usize>,
    /// Classify a 28×28 grayscale PGM or PNG file
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// The image is a dark digit on a light background
    #[arg(long)]
    invert: bool,
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
        (None, Some(path)) => Image {
            pixels: constnet::image::read_grayscale(path, 28, 28, args.invert)?,
            source: path.display().to_string(),
            label: None,
        },
        (None, None) => unreachable!("clap requires --index or --image"),
    };
    let mut logits = [0.0f32; 10];
    match model_file::load_any(&args.model)? {
        Model::F32(net) => net.forward_one::<Simd>(&pixels, &mut logits),
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
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32;
    if args.image.is_some() && mean > 0.5 {
        say!("note: the image is mostly light; MNIST digits are light on dark, try --invert");
    }
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
    let mnist = data.open(true)?;
    if i >= mnist.test.count {
        let message = format!(
            "--index {i} is past the test set's {} images",
            mnist.test.count
        );
        return Err(crate::usage_error(
            "predict",
            ErrorKind::ValueValidation,
            message,
        ));
    }
    let pixels = mnist.test.images().image(i);
    Ok(Image {
        pixels: pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
        source: format!("test image {i}"),
        label: Some(mnist.test.labels()[i]),
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
