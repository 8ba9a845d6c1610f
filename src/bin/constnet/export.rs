//! `constnet export --raw`: a model as the raw blob `no_std` programs embed.

use crate::model_file;
use constnet::{MnistMlp, format};
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
    /// The model file (safetensors or a raw blob)
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
    let net = model_file::load(&args.model)?;
    format::save_raw(&out, &*net)?;
    say!(
        "wrote {} ({} bytes, raw blob version {})",
        out.display(),
        format::raw::blob_len::<MnistMlp>(),
        format::raw::VERSION
    );
    Ok(())
}
