//! The native side of examples/web's agreement tests: loads a model blob the way the
//! WebAssembly module does, reads raw 784-byte images from stdin and prints, for each, the
//! predicted digit and the ten logits:
//!
//! ```text
//! 7 -3.0453954 -1.1306 … 11.48717
//! ```
//!
//! Two kinds of blob, told apart by their magic bytes:
//!
//! - f32 (`constnet export --raw`): `raw::load_into` into a `MnistMlp`, input `pixel / 255`,
//!   on the best SIMD path of this machine, chosen at run time (AVX2+FMA or AVX-512 on
//!   x86-64): the numbers the browser's results are compared against, with a tolerance.
//! - int8 (`constnet quantize --raw`): the checked int8 network, the pixels themselves as
//!   input, on the best int8 path of this machine (`Int8Path::selected`, e.g. AVX-512 VNNI;
//!   `CONSTNET_SIMD=scalar` forces the scalar one). Integer arithmetic is the same on every
//!   path, so the WebAssembly module (scalar int8 path) must print the very same digits and
//!   logits; the logits are the i32 logits times the network's logit scale, as f32.
//!
//! Logits print in Rust's shortest round-trip form. The kernels and the time per image go to
//! stderr.
//!
//! ```text
//! tail -c +17 t10k-images-idx3-ubyte | cargo run --release -- model.cnet
//! ```

use constnet::kernels::int8::Int8Path;
use constnet::quant::{self, MNIST_DIMS};
use constnet::{MnistMlp, Network, Params, Simd, format::raw, logits::argmax, simd_backend};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: constnet-web-native MODEL.cnet < images.u8");
        std::process::exit(2);
    };
    let mut images = Vec::new();
    std::io::stdin()
        .read_to_end(&mut images)
        .expect("read stdin");
    let mut out = BufWriter::new(std::io::stdout().lock());
    let (kernels, elapsed) = if quant::file::is_int8(Path::new(&path)) {
        run_int8(&path, &images, &mut out)
    } else {
        run_f32(&path, &images, &mut out)
    };
    out.flush().expect("write stdout");
    let images = images.len() / 784;
    eprintln!(
        "constnet-web-native: kernels {kernels}, {:.1} µs per image (converting, forward, printing)",
        elapsed.as_secs_f64() * 1e6 / images.max(1) as f64
    );
}

/// Prints the f32 network's answers; returns the kernel path's name and the time taken
/// after loading.
fn run_f32(path: &str, images: &[u8], out: &mut impl Write) -> (String, Duration) {
    let blob = std::fs::read(path).unwrap_or_else(|e| fail(path, &e));
    let mut net = MnistMlp::zeroed_box();
    if let Err(e) = raw::load_into::<MnistMlp>(&blob, &mut net) {
        fail(path, &e);
    }
    let mut x = [0.0f32; 784];
    let mut logits = [0.0f32; 10];
    let mut digit = [0u32];
    let start = Instant::now();
    for image in images.chunks_exact(784) {
        // As in training and in the WebAssembly module: x = pixel / 255.
        for (x, &p) in x.iter_mut().zip(image) {
            *x = f32::from(p) / 255.0;
        }
        net.forward_one::<Simd>(&x, &mut logits);
        argmax(10, 1, &logits, &mut digit);
        print_row(out, digit[0] as usize, &logits);
    }
    (simd_backend().to_string(), start.elapsed())
}

/// Prints the int8 network's answers; returns the int8 kernel path's name and the time taken
/// after loading.
fn run_int8(path: &str, images: &[u8], out: &mut impl Write) -> (String, Duration) {
    // The file loader checks the blob as the module's `quant::raw::view` does (it is that
    // view, over an aligned copy).
    let model = quant::file::load::<4>(Path::new(path), &MNIST_DIMS).unwrap_or_else(|e| {
        eprintln!("constnet-web-native: {e}");
        std::process::exit(1);
    });
    let net = model.view();
    let int8 = Int8Path::selected();
    let scale = net.logit_scale();
    let mut q = [0i32; 10];
    let mut logits = [0.0f32; 10];
    let start = Instant::now();
    for image in images.chunks_exact(784) {
        // As in `constnet eval` and in the WebAssembly module: the pixels are the input.
        net.forward_one(int8, image, &mut q);
        for (z, &q) in logits.iter_mut().zip(&q) {
            *z = q as f32 * scale;
        }
        print_row(out, quant::argmax(&q), &logits);
    }
    (format!("int8 {int8}"), start.elapsed())
}

fn print_row(out: &mut impl Write, digit: usize, logits: &[f32]) {
    write!(out, "{digit}").expect("write stdout");
    for z in logits {
        write!(out, " {z:?}").expect("write stdout");
    }
    writeln!(out).expect("write stdout");
}

fn fail(path: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("constnet-web-native: {path}: {e}");
    std::process::exit(1);
}
