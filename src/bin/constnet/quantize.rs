//! `constnet quantize`: post-training int8 quantization of a model file.

use crate::args::{self, DataDir};
use crate::model_file;
use constnet::kernels::int8::Int8Path;
use constnet::quant::{self, MNIST_DIMS};
use constnet::{MnistMlp, Network, Workspace, train};
use std::error::Error;
use std::path::PathBuf;

/// Quantize a model to int8 (weights per row, activations calibrated on training images)
#[derive(clap::Args)]
#[command(
    after_help = "Weights become int8 with one scale per output row; activations int8 with \
                  one scale per layer, from the largest value each layer reaches on the first \
                  N training images; biases int32; requantization by fixed-point multiplier and \
                  shift (TFLite / CMSIS-NN arithmetic). Then prints the test accuracy of both \
                  models. Run an int8 file with eval, predict or bench; export --raw makes its \
                  no_std blob."
)]
pub struct Args {
    /// The f32 model file (safetensors or a raw blob)
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Calibrate the activation ranges on the first N training images
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = args::at_least_one::<usize>)]
    calibrate: usize,
    /// The file to write [default: the model's name with extension .int8.safetensors, or
    /// .int8.cnet with --raw]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Write the raw no_std blob instead of safetensors
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    data: DataDir,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let mnist = args.data.open(true)?;
    let arch = crate::arch::Arch::of_file(&args.model)?;
    if arch != crate::arch::Arch::Reference {
        return Err(format!(
            "{}: int8 quantization handles the reference network 784→256→128→64→10, not {}",
            args.model.display(),
            arch.layers()
        )
        .into());
    }
    let net = model_file::load_reference(&args.model)?;
    let count = args.calibrate.min(mnist.train.count);
    let ranges = quant::calibrate(&*net, mnist.train.pixels(), count);
    let model = quant::quantize::<MnistMlp, 4>(&net, &ranges)?;
    let out = args.out.unwrap_or_else(|| {
        args.model.with_extension(if args.raw {
            "int8.cnet"
        } else {
            "int8.safetensors"
        })
    });
    if args.raw {
        quant::file::save_raw(&out, &model)?;
    } else {
        quant::file::save(&out, &model)?;
    }
    let ranges: Vec<String> = ranges.iter().map(|r| format!("{r:.3}")).collect();
    say!(
        "calibrated on {count} training images: activation ranges [0, {}]",
        ranges.join("], [0, ")
    );
    let mut ws = <MnistMlp as Network>::Workspace::<{ train::BATCH }>::zeroed_box();
    let f32_eval = train::evaluate(net.view(), &mnist.test, &mut ws);
    let int8_eval = train::evaluate_int8(&model.view(), Int8Path::selected(), &mnist.test);
    say!(
        "test accuracy: f32 {:.2}%, int8 {:.2}% ({:+.2} points)",
        100.0 * f32_eval.accuracy(),
        100.0 * int8_eval.accuracy(),
        100.0 * (int8_eval.accuracy() - f32_eval.accuracy())
    );
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    say!(
        "wrote {} ({bytes} bytes, int8 {}, layers {MNIST_DIMS:?})",
        out.display(),
        if args.raw { "raw blob" } else { "safetensors" }
    );
    Ok(())
}
