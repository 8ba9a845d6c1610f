//! Links the firmware for the MPS2 AN386 board and checks the files it compiles in.
//!
//! - `memory.x` goes where cortex-m-rt's `link.x` finds it, and `-Tlink.x` is passed to the
//!   linker here rather than in `.cargo/config.toml`, so the link works whatever RUSTFLAGS are.
//! - `$CONSTNET_MODEL` (a raw blob: int8 from `constnet quantize --raw`, which sets the cfg
//!   `model_int8`, or f32 from `constnet export --raw`) and, with the default `test-set`
//!   feature, `$CONSTNET_IMAGES` (1,000 × 784 bytes of pixels) and `$CONSTNET_LABELS` (1,000
//!   bytes, 0–9) are checked and handed to `include_bytes!` as absolute paths in
//!   `FIRMWARE_MODEL`, `FIRMWARE_IMAGES` and `FIRMWARE_LABELS`. A relative path is taken from
//!   this crate's directory (where cargo runs build scripts), so prefer absolute ones.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Images the test set holds; `src/main.rs` has the same number in its types.
const IMAGES: u64 = 1000;
const PIXELS: u64 = 28 * 28;

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    if !target.starts_with("thumbv7em-") {
        fail(&format!(
            "this firmware builds for thumbv7em-none-eabihf, not {target}: run cargo from \
             examples/cortex-m4 (its .cargo/config.toml sets the target) or pass \
             --target thumbv7em-none-eabihf"
        ));
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");

    let model = input(
        "CONSTNET_MODEL",
        "the raw model blob (constnet export --raw)",
    );
    let bytes = fs::read(&model).unwrap_or_else(|e| fail(&format!("{}: {e}", model.display())));
    println!("cargo:rustc-check-cfg=cfg(model_int8)");
    if bytes.starts_with(b"CNETQ8\0\0") {
        println!("cargo:rustc-cfg=model_int8");
    } else if !bytes.starts_with(b"CNETRAW\0") {
        fail(&format!(
            "{} is not a raw constnet blob (no CNETQ8 or CNETRAW magic): make one with \
             `constnet quantize --model M.safetensors --raw --out M.int8.cnet` (int8) or \
             `constnet export --model M.safetensors --raw --out M.cnet` (f32)",
            model.display()
        ));
    }
    println!("cargo:rustc-env=FIRMWARE_MODEL={}", model.display());

    if env::var_os("CARGO_FEATURE_TEST_SET").is_some() {
        let images = input("CONSTNET_IMAGES", "1,000 raw 784-byte MNIST images");
        expect_len(&images, IMAGES * PIXELS);
        println!("cargo:rustc-env=FIRMWARE_IMAGES={}", images.display());
        let labels = input("CONSTNET_LABELS", "the 1,000 labels, one byte each");
        expect_len(&labels, IMAGES);
        let bytes =
            fs::read(&labels).unwrap_or_else(|e| fail(&format!("{}: {e}", labels.display())));
        if let Some(i) = bytes.iter().position(|&l| l > 9) {
            fail(&format!(
                "{}: byte {i} is {}, not a digit label 0–9",
                labels.display(),
                bytes[i]
            ));
        }
        println!("cargo:rustc-env=FIRMWARE_LABELS={}", labels.display());
    }
}

/// The absolute path in environment variable `var`; rebuilds when it or the file changes.
fn input(var: &str, what: &str) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    let Some(path) = env::var_os(var).filter(|p| !p.is_empty()) else {
        fail(&format!(
            "set {var} to the path of {what} (see examples/cortex-m4/README.md; \
             run-test.sh makes all three files)"
        ));
    };
    let path = fs::canonicalize(&path)
        .unwrap_or_else(|e| fail(&format!("{var}={}: {e}", Path::new(&path).display())));
    println!("cargo:rerun-if-changed={}", path.display());
    path
}

fn expect_len(path: &Path, len: u64) {
    let found = fs::metadata(path)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())))
        .len();
    if found != len {
        fail(&format!(
            "{} has {found} bytes; the firmware embeds exactly {len}",
            path.display()
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
