//! `constnet export --raw`: a model as the raw blob `no_std` programs embed.

use crate::model_file::{self, Model, with_net};
use constnet::{format, quant};
use std::error::Error;
use std::path::PathBuf;

/// Write a model as a raw blob for no_std programs
#[derive(clap::Args)]
#[command(
    after_help = "The blob is versioned, 64-byte aligned and little-endian, for programs \
                      that embed it with include_bytes! and run it without std (see \
                      examples/embedded.rs)."
)]
pub struct Args {
    /// The model file, f32 or int8 (safetensors or a raw blob)
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Write the raw blob (the only export format, so required)
    #[arg(long, required = true)]
    raw: bool,
    /// The file to write [default: the model's name with extension .cnet]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    debug_assert!(args.raw, "clap requires --raw");
    let out = args
        .out
        .unwrap_or_else(|| args.model.with_extension("cnet"));
    match model_file::load_any(&args.model)? {
        Model::F32(net) => {
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
        }
        Model::Int8(q) => {
            quant::file::save_raw(&out, &q)?;
            say!(
                "wrote {} ({} bytes, int8 raw blob version {})",
                out.display(),
                quant::raw::blob_len::<4>(&quant::MNIST_DIMS),
                quant::raw::VERSION
            );
        }
    }
    Ok(())
}
