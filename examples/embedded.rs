//! A model compiled into the program and run in place: what a `no_std` target does with a
//! trained constnet network, with no file system and no allocator.
//!
//! The parameters are a raw blob (`constnet export --raw`) embedded with `include_bytes!` in a
//! 64-byte-aligned static, viewed zero-copy by `constnet::format::raw::view`, and run by the
//! single-sample kernels. The library is built without `std` (`--no-default-features`); only
//! this file's `main` uses std, to read images from stdin and print the predicted digits.
//!
//! ```text
//! constnet export --model model.safetensors --raw --out model.cnet
//! tail -c +17 data/mnist/t10k-images-idx3-ubyte > images.u8      # raw 784-byte images
//! CONSTNET_MODEL=$PWD/model.cnet cargo run --release --no-default-features \
//!     --features embed-model --example embedded < images.u8
//! ```

use constnet::{MnistMlp, Network, NetworkView, Simd, format::raw, logits::argmax};
use std::io::{Read, Write};

/// Bytes aligned so the blob's f32 tensors can be read in place.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The model, compiled in. `CONSTNET_MODEL` is read when this example is compiled.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("CONSTNET_MODEL")));

/// The digit in one 28×28 image, using only the `no_std` API: the parameters stay in the
/// static, the activations on the stack.
fn classify(model: <MnistMlp as Network>::View<'static>, pixels: &[u8; 784]) -> u32 {
    let mut x = [0.0f32; 784];
    for (x, &p) in x.iter_mut().zip(pixels) {
        *x = f32::from(p) / 255.0;
    }
    let mut logits = [0.0f32; 10];
    model.forward_one::<Simd>(&x, &mut logits);
    let mut digit = [0u32];
    argmax(10, 1, &logits, &mut digit);
    digit[0]
}

fn main() {
    let model = match raw::view::<MnistMlp>(&MODEL.0) {
        Ok(view) => view,
        Err(e) => {
            eprintln!("embedded: the compiled-in model is unusable: {e}");
            std::process::exit(1);
        }
    };
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for image in input.chunks_exact(784) {
        writeln!(
            out,
            "{}",
            classify(model, image.try_into().expect("784 bytes"))
        )
        .expect("write stdout");
    }
}
