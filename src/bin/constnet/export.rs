//! `constnet export`: a model as the raw blob `no_std` programs embed (`--raw`), or as an ONNX
//! model for deployment runtimes (`--onnx`).

use crate::model_file::{self, Model, with_net};
use constnet::{Network, atomic_file, format, quant};
use std::error::Error;
use std::path::{Path, PathBuf};

/// Write a model as a raw blob for no_std programs, or as ONNX
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["raw", "onnx"])))]
#[command(
    after_help = "The raw blob is versioned, 64-byte aligned and little-endian, for programs \
                  that embed it with include_bytes! and run it without std (see \
                  examples/embedded.rs).\nThe ONNX model (IR 8, opset 17) takes \"input\", float \
                  [N, 784]: the pixels / 255; it gives \"logits\", float [N, 10]: one Gemm per \
                  layer, Relu between them, the weights named as in the safetensors file."
)]
pub struct Args {
    /// The model file, f32 or int8 (safetensors or a raw blob); f32 only for --onnx
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Write the raw blob (extension .cnet)
    #[arg(long)]
    raw: bool,
    /// Write an ONNX model (extension .onnx), for onnxruntime, tract and other runtimes
    #[arg(long)]
    onnx: bool,
    /// The file to write [default: the model's name with extension .cnet or .onnx]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    debug_assert!(args.raw != args.onnx, "clap requires one of --raw, --onnx");
    let extension = if args.onnx { "onnx" } else { "cnet" };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.with_extension(extension));
    check_out(&out, &args.model)?;
    match (model_file::load_any(&args.model)?, args.onnx) {
        (Model::F32(net), true) => with_net!(&net, n => onnx(&out, &**n)),
        (Model::Int8(_), true) => Err(format!(
            "{}: an int8 model: ONNX export takes f32 models (export the model it was quantized from)",
            args.model.display()
        )
        .into()),
        (Model::F32(net), false) => {
            let bytes = with_net!(&net, n => {
                format::save_raw(&out, &**n)?;
                std::fs::metadata(&out)?.len()
            });
            say!(
                "wrote {} ({bytes} bytes, raw blob version {}, network {})",
                out.display(),
                format::raw::VERSION,
                net.arch().layers()
            );
            Ok(())
        }
        (Model::Int8(q), false) => {
            quant::file::save_raw(&out, &q)?;
            say!(
                "wrote {} ({} bytes, int8 raw blob version {})",
                out.display(),
                quant::raw::blob_len::<4>(&quant::MNIST_DIMS),
                quant::raw::VERSION
            );
            Ok(())
        }
    }
}

/// Fails before any work if `out` cannot be written (see [`atomic_file::check_target`]) or
/// is the model being exported.
fn check_out(out: &Path, model: &Path) -> Result<(), Box<dyn Error>> {
    atomic_file::check_target(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    if canonical(out).is_some() && canonical(out) == canonical(model) {
        return Err(format!(
            "--out {}: is the model file being exported: give --out another path",
            out.display()
        )
        .into());
    }
    Ok(())
}

#[cfg(feature = "onnx")]
fn onnx<N: Network>(out: &Path, net: &N) -> Result<(), Box<dyn Error>> {
    use format::onnx::{self, IR_VERSION, OPSET};
    onnx::save(out, net)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    say!(
        "wrote {} ({bytes} bytes, ONNX IR {IR_VERSION}, opset {OPSET})",
        out.display()
    );
    Ok(())
}

#[cfg(not(feature = "onnx"))]
fn onnx<N: Network>(out: &Path, _: &N) -> Result<(), Box<dyn Error>> {
    Err(format!(
        "{}: not written: this constnet was built without ONNX export (cargo feature onnx)",
        out.display()
    )
    .into())
}
