//! `constnet info`: the SIMD paths this CPU runs, the network, and a model file's header.

use crate::arch::{Arch, with_arch};
use crate::model_file;
use constnet::{MnistMlp, Network, format};
use std::error::Error;
use std::path::{Path, PathBuf};

/// The SIMD paths this CPU runs, the network, and a model file's header
#[derive(clap::Args)]
#[command(
    after_help = "A model file's header: tensors, offsets, alignment, metadata and \
                      checksum."
)]
pub struct Args {
    /// A model file to inspect (safetensors or a raw blob)
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    say!("constnet {}", env!("CARGO_PKG_VERSION"));
    say!("kernels: {}", constnet::kernels::selected());
    let supported: Vec<&str> = constnet::kernels::supported().map(|i| i.name()).collect();
    say!(
        "  this CPU supports: {} (choose with CONSTNET_SIMD={})",
        supported.join(", "),
        supported.join("|")
    );
    say!(
        "network: 784→256→128→64→10, ReLU between layers, {} parameters",
        MnistMlp::PARAMS
    );
    for i in 0..MnistMlp::TENSORS {
        let t = MnistMlp::tensor_info(i);
        say!("  {:<12} {:?}", t.name, t.shape);
    }
    let others: Vec<String> = Arch::ALL[1..].iter().map(|a| a.layers()).collect();
    say!("  other networks (--hidden): {}", others.join(", "));
    match args.model {
        Some(path) if model_file::is_raw_blob(&path) => raw_blob(&path),
        Some(path) => safetensors(&path),
        None => Ok(()),
    }
}

fn raw_blob(path: &Path) -> Result<(), Box<dyn Error>> {
    let arch = Arch::of_file(path)?;
    say!(
        "model file: {} (raw blob, version {}, {} bytes, checksum verified, network {})",
        path.display(),
        format::raw::VERSION,
        with_arch!(arch, N => format::raw::blob_len::<N>()),
        arch.layers()
    );
    Ok(())
}

fn safetensors(path: &Path) -> Result<(), Box<dyn Error>> {
    let s = format::inspect(path)?;
    say!(
        "model file: {} (safetensors, {} bytes)",
        path.display(),
        s.file_len
    );
    let start = 8 + s.header_len;
    let aligned = if start % 64 == 0 { "" } else { "not " };
    say!(
        "  header: {} bytes; data starts at byte {start} ({aligned}64-byte aligned)",
        s.header_len,
    );
    let checksum = s.metadata.get(format::safetensors::CHECKSUM_KEY);
    match (checksum, s.verified) {
        (Some(c), true) => say!("  checksum: crc32 {c}, verified"),
        _ => say!("  checksum: none recorded (not written by constnet)"),
    }
    training_record(&s.metadata);
    // The rest of the metadata (the training record is above, the checksums were verified).
    let mut keys: Vec<_> = s
        .metadata
        .iter()
        .filter(|(k, _)| !k.starts_with("constnet."))
        .collect();
    keys.sort();
    for (k, v) in keys {
        say!("  metadata: {k} = {v}");
    }
    for t in &s.tensors {
        say!(
            "  tensor {:<12} {} {:?} bytes {}..{}",
            t.name,
            t.dtype,
            t.shape,
            t.offsets.0,
            t.offsets.1
        );
    }
    // Loaded as eval and predict load it: batch norms folded into their layers.
    match crate::model_file::load_net(path).map(|net| net.arch()) {
        Ok(a) => {
            let norms = s.tensors.iter().any(|t| t.name.starts_with("bn"));
            let folded = if norms { ", batch norms folded in" } else { "" };
            say!(
                "  matches the network: yes, {} ({} parameters{folded})",
                a.layers(),
                a.params()
            );
            Ok(())
        }
        Err(e) => {
            say!("  matches the network: no");
            Err(e)
        }
    }
}

/// The training record `constnet train` writes into the metadata, if there is one.
fn training_record(metadata: &std::collections::HashMap<String, String>) {
    let get = |k: &str| metadata.get(&format!("constnet.{k}")).map(String::as_str);
    let Some(version) = get("version") else {
        return;
    };
    say!(
        "  trained: by constnet {version} on {}",
        get("date").unwrap_or("?")
    );
    say!("    recipe: {}", get("recipe").unwrap_or("?"));
    if let Some(hidden) = get("hidden") {
        say!("    network: hidden {hidden}");
    }
    say!(
        "    seed {}, threads {}, epochs {}",
        get("seed").unwrap_or("?"),
        get("threads").unwrap_or("?"),
        get("epochs").unwrap_or("?")
    );
    if let Some(a) = get("test_accuracy").and_then(|a| a.parse::<f64>().ok()) {
        say!("    test accuracy: {:.2}%", 100.0 * a);
    }
}
