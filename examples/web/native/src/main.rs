//! The native side of examples/web's agreement test: loads a raw model blob the way the
//! WebAssembly module does (`raw::load_into` into a `MnistMlp`), reads raw 784-byte images from
//! stdin and prints, for each, the predicted digit and the ten logits:
//!
//! ```text
//! 7 -3.0453954 -1.1306 … 11.48717
//! ```
//!
//! Its kernels are the best SIMD path of this machine, chosen at run time (AVX2+FMA or AVX-512
//! on x86-64): the numbers the browser's results are compared against. Logits print in Rust's shortest round-trip form.
//! The kernels and the time per image go to stderr.
//!
//! ```text
//! tail -c +17 t10k-images-idx3-ubyte | cargo run --release -- model.cnet
//! ```

use constnet::{MnistMlp, Network, Params, Simd, format::raw, logits::argmax, simd_backend};
use std::io::{BufWriter, Read, Write};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: constnet-web-native MODEL.cnet < images.u8");
        std::process::exit(2);
    };
    let blob = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("constnet-web-native: {path}: {e}");
        std::process::exit(1);
    });
    let mut net = MnistMlp::zeroed_box();
    if let Err(e) = raw::load_into::<MnistMlp>(&blob, &mut net) {
        eprintln!("constnet-web-native: {path}: {e}");
        std::process::exit(1);
    }
    let mut images = Vec::new();
    std::io::stdin()
        .read_to_end(&mut images)
        .expect("read stdin");
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut x = [0.0f32; 784];
    let mut logits = [0.0f32; 10];
    let mut digit = [0u32];
    let start = std::time::Instant::now();
    for image in images.chunks_exact(784) {
        // As in training and in the WebAssembly module: x = pixel / 255.
        for (x, &p) in x.iter_mut().zip(image) {
            *x = f32::from(p) / 255.0;
        }
        net.forward_one::<Simd>(&x, &mut logits);
        argmax(10, 1, &logits, &mut digit);
        write!(out, "{}", digit[0]).expect("write stdout");
        for z in logits {
            write!(out, " {z:?}").expect("write stdout");
        }
        writeln!(out).expect("write stdout");
    }
    out.flush().expect("write stdout");
    let images = images.len() / 784;
    eprintln!(
        "constnet-web-native: kernels {}, {:.1} µs per image (converting, forward, printing)",
        simd_backend(),
        start.elapsed().as_secs_f64() * 1e6 / images.max(1) as f64
    );
}
