//! The compiled-in model and the one function the firmware needs from it: the digit in a
//! 28×28 image. Another kind of model (an int8 one) slots in as a second implementation of
//! [`Classifier`] chosen in `main`; nothing else in the firmware depends on the model's kind.

use constnet::format::raw::{self, RawError};
use constnet::{MnistMlp, Network, NetworkView, Simd, logits::argmax};

/// Pixels in one MNIST image.
pub const PIXELS: usize = 28 * 28;

/// A model that names the digit in an image.
pub trait Classifier {
    /// The digit 0–9 in `pixels` (row-major, 0 = black, 255 = white).
    fn classify(&self, pixels: &[u8; PIXELS]) -> u8;
}

/// Bytes on a 64-byte boundary, so the blob's f32 tensors can be read in place.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The f32 model (`constnet export --raw`), copied at compile time into an aligned static that
/// stays in flash. `FIRMWARE_MODEL` is `$CONSTNET_MODEL` made absolute by build.rs.
static F32_BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("FIRMWARE_MODEL")));

/// The f32 [`MnistMlp`], run in place from flash with the library's SIMD kernels (on this
/// target, `wide`'s portable fallback: no FMA, two roundings per multiply-add).
#[derive(Clone, Copy)]
pub struct F32Mlp(<MnistMlp as Network>::View<'static>);

impl F32Mlp {
    /// Views the compiled-in blob; checks its header, shapes and CRC once (~1 MB read).
    pub fn load() -> Result<Self, RawError> {
        raw::view::<MnistMlp>(&F32_BLOB.0).map(F32Mlp)
    }
}

impl Classifier for F32Mlp {
    /// The host's computation exactly (`examples/embedded.rs`): pixels / 255 as f32,
    /// `forward_one::<Simd>`, first index of the largest logit. Activations live on the stack.
    fn classify(&self, pixels: &[u8; PIXELS]) -> u8 {
        let mut x = [0.0f32; PIXELS];
        for (x, &p) in x.iter_mut().zip(pixels) {
            *x = f32::from(p) / 255.0;
        }
        let mut logits = [0.0f32; 10];
        self.0.forward_one::<Simd>(&x, &mut logits);
        let mut digit = [0u32];
        argmax(10, 1, &logits, &mut digit);
        digit[0] as u8
    }
}
