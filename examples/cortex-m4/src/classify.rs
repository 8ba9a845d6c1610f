//! The compiled-in model and the one function the firmware needs from it: the digit in a
//! 28×28 image. The model is int8 ([`Int8Mlp`], `constnet quantize --raw`) or f32
//! ([`F32Mlp`], `constnet export --raw`): build.rs reads the blob's magic and sets the cfg
//! `model_int8` for an int8 one; [`Model`] names the one compiled in. Nothing else in the
//! firmware depends on the model's kind.

use core::fmt::Display;

/// Pixels in one MNIST image.
pub const PIXELS: usize = 28 * 28;

/// A model that names the digit in an image.
pub trait Classifier: Sized {
    /// Views the compiled-in blob, checking it once (header, shapes, ranges, CRC).
    fn load() -> Result<Self, impl Display>;
    /// The digit 0–9 in `pixels` (row-major, 0 = black, 255 = white).
    fn classify(&self, pixels: &[u8; PIXELS]) -> u8;
}

/// Bytes on a 64-byte boundary, so the blob's tensors can be read in place.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The model blob, copied at compile time into an aligned static that stays in flash.
/// `FIRMWARE_MODEL` is `$CONSTNET_MODEL` made absolute by build.rs.
static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("FIRMWARE_MODEL")));

/// The model compiled in.
#[cfg(model_int8)]
pub type Model = Int8Mlp;
/// The model compiled in.
#[cfg(not(model_int8))]
pub type Model = F32Mlp;

/// The int8 [`constnet::quant::QuantMnist`], run in place from flash with the scalar int8
/// kernel (the best int8 path on this target): exact integer arithmetic, so every host path
/// must give the same digits.
#[cfg(model_int8)]
#[derive(Clone, Copy)]
pub struct Int8Mlp(constnet::quant::QuantMnist<'static>);

#[cfg(model_int8)]
impl Classifier for Int8Mlp {
    fn load() -> Result<Self, impl Display> {
        constnet::quant::raw::view::<4>(&BLOB.0, &constnet::quant::MNIST_DIMS).map(Int8Mlp)
    }
    /// The host's computation exactly: the pixels are the int8 input, `classify` on the
    /// selected int8 path, first index of the largest logit. Activations live on the stack.
    fn classify(&self, pixels: &[u8; PIXELS]) -> u8 {
        let path = constnet::kernels::int8::Int8Path::selected();
        self.0.classify(path, pixels) as u8
    }
}

/// The f32 [`constnet::MnistMlp`], run in place from flash with the library's SIMD kernels (on
/// this target, `wide`'s portable fallback: no FMA, two roundings per multiply-add).
#[cfg(not(model_int8))]
#[derive(Clone, Copy)]
pub struct F32Mlp(<constnet::MnistMlp as constnet::Network>::View<'static>);

#[cfg(not(model_int8))]
impl Classifier for F32Mlp {
    fn load() -> Result<Self, impl Display> {
        constnet::format::raw::view::<constnet::MnistMlp>(&BLOB.0).map(F32Mlp)
    }
    /// The host's computation exactly (`examples/embedded.rs`): pixels / 255 as f32,
    /// `forward_one::<Simd>`, first index of the largest logit. Activations live on the stack.
    fn classify(&self, pixels: &[u8; PIXELS]) -> u8 {
        use constnet::NetworkView;
        let mut x = [0.0f32; PIXELS];
        for (x, &p) in x.iter_mut().zip(pixels) {
            *x = f32::from(p) / 255.0;
        }
        let mut logits = [0.0f32; 10];
        self.0.forward_one::<constnet::Simd>(&x, &mut logits);
        let mut digit = [0u32];
        constnet::logits::argmax(10, 1, &logits, &mut digit);
        digit[0] as u8
    }
}
