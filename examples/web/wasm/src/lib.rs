//! constnet's reference network as a WebAssembly module, for browsers and node.
//!
//! The module has no imports and no allocator: every buffer is a `static`, and JavaScript
//! reads and writes them through the pointers the exports return (`examples/web/constnet.js`
//! is the loader). One page's life:
//!
//! ```text
//! copy the raw blob to model_buffer() (at most model_capacity() bytes)
//! load_model(KIND_F32, len)   -> 0, or an error code (ERR_*) and no model
//! write 784 pixels to input_buffer()  (u8, white digit on black, as in MNIST)
//! classify()                  -> the digit, or -1 without a model
//! read 10 f32 at logits() and probabilities()
//! ```
//!
//! The blob is the one `constnet export --raw` writes (`constnet::format::raw`). `load_model`
//! checks it with `raw::load_into` (magic, version, shapes, offsets, length, checksum) and
//! copies the parameters into this module's own static network, so the upload buffer may be
//! overwritten afterwards without touching the loaded model.
//!
//! Model kinds: `load_model` takes a kind so that other parameter formats can be added beside
//! the f32 one without changing the interface. Kind 1 is reserved for an int8 network; this
//! build answers it with [`ERR_UNSUPPORTED_KIND`].
//!
//! Two builds are made from this file: one with `-C target-feature=+simd128` (`wide` then uses
//! WebAssembly's 128-bit SIMD) and one without (scalar code). [`features`] says which.
#![no_std]

use constnet::format::raw::{self, RawError};
use constnet::{MnistMlp, Network, Params, Simd, logits};
use core::cell::UnsafeCell;

/// A parameter blob of f32 tensors in constnet's raw format (`constnet export --raw`).
pub const KIND_F32: u32 = 0;
/// Reserved for an int8 network; not implemented in this build.
pub const KIND_I8: u32 = 1;

/// `load_model` succeeded.
pub const OK: i32 = 0;
/// `load_model` was given a kind this build does not know (e.g. [`KIND_I8`]).
pub const ERR_UNSUPPORTED_KIND: i32 = 1;
/// `load_model` was given a length larger than `model_capacity()`.
pub const ERR_TOO_LARGE: i32 = 2;
/// The blob is shorter than its header and table ([`RawError::Truncated`]).
pub const ERR_TRUNCATED: i32 = 3;
/// Not a constnet blob ([`RawError::BadMagic`]).
pub const ERR_BAD_MAGIC: i32 = 4;
/// A blob version this build does not read ([`RawError::UnsupportedVersion`]).
pub const ERR_VERSION: i32 = 5;
/// Another number of tensors than `MnistMlp` has ([`RawError::TensorCount`]).
pub const ERR_TENSOR_COUNT: i32 = 6;
/// The header's length differs from the blob's ([`RawError::Length`]).
pub const ERR_LENGTH: i32 = 7;
/// A tensor's shape is not `MnistMlp`'s ([`RawError::Shape`]).
pub const ERR_SHAPE: i32 = 8;
/// A tensor offset is misaligned, overlapping or out of bounds ([`RawError::Offset`]).
pub const ERR_OFFSET: i32 = 9;
/// The payload checksum does not match ([`RawError::Checksum`]).
pub const ERR_CHECKSUM: i32 = 10;
/// [`RawError::Misaligned`] or [`RawError::BigEndianHost`]: zero-copy conditions that
/// `load_into` does not have, so this build never reports it.
pub const ERR_OTHER: i32 = 11;
/// A weight is NaN or infinite ([`RawError::NonFinite`]).
pub const ERR_NON_FINITE: i32 = 12;

/// Bytes the upload buffer holds: the f32 `MnistMlp` blob is 971,392 bytes.
pub const MODEL_CAPACITY: usize = 1 << 20;
/// Pixels of one input image, 28×28.
pub const PIXELS: usize = 784;
/// Classes, the digits 0–9.
pub const CLASSES: usize = 10;

/// A static that only this module's exports touch.
///
/// WebAssembly without the threads proposal runs one thread per instance, and every export
/// runs to completion before JavaScript can call another, so no two references to the inside
/// are ever live at once.
#[repr(C, align(64))]
struct Global<T>(UnsafeCell<T>);

// SAFETY: this module is built without the `atomics` target feature, so an instance's memory
// is used by one thread only (see `Global`); `Sync` is only what a `static` requires.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    /// The value, exclusively.
    ///
    /// # Safety
    /// - No other reference from `get` may be live: each export calls it at most once per
    ///   static and drops the reference before returning.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller promises exclusivity; the pointer is valid for the program's life.
        unsafe { &mut *self.0.get() }
    }
}

/// Where JavaScript copies a model blob before `load_model`.
static UPLOAD: Global<[u8; MODEL_CAPACITY]> = Global::new([0; MODEL_CAPACITY]);
/// The loaded f32 parameters.
static NET: Global<MnistMlp> = Global::new(MnistMlp::ZEROED);
/// The kind loaded in `NET`, or -1 for none.
static LOADED: Global<i32> = Global::new(-1);
/// The image `classify` reads: u8 pixels, row by row.
static INPUT: Global<[u8; PIXELS]> = Global::new([0; PIXELS]);
/// The last call's logits and their softmax.
static OUTPUT: Global<Output> = Global::new(Output {
    logits: [0.0; CLASSES],
    probabilities: [0.0; CLASSES],
});

struct Output {
    logits: [f32; CLASSES],
    probabilities: [f32; CLASSES],
}

/// The interface version of these exports; the loader checks it.
#[unsafe(no_mangle)]
pub extern "C" fn abi_version() -> u32 {
    1
}

/// Bit 0: built with simd128.
#[unsafe(no_mangle)]
pub extern "C" fn features() -> u32 {
    u32::from(cfg!(target_feature = "simd128"))
}

/// The upload buffer's address (64-byte aligned).
#[unsafe(no_mangle)]
pub extern "C" fn model_buffer() -> *mut u8 {
    UPLOAD.0.get().cast()
}

/// The upload buffer's size in bytes.
#[unsafe(no_mangle)]
pub extern "C" fn model_capacity() -> usize {
    MODEL_CAPACITY
}

/// Checks the first `len` bytes of the upload buffer as a model of `kind` and loads it.
/// Returns [`OK`] or an `ERR_*` code; after an error no model is loaded.
#[unsafe(no_mangle)]
pub extern "C" fn load_model(kind: u32, len: usize) -> i32 {
    // SAFETY: each static is borrowed once here and released on return.
    let (upload, net, loaded) = unsafe { (UPLOAD.get(), NET.get(), LOADED.get()) };
    *loaded = -1;
    if kind != KIND_F32 {
        return ERR_UNSUPPORTED_KIND;
    }
    let Some(blob) = upload.get(..len) else {
        return ERR_TOO_LARGE;
    };
    match raw::load_into::<MnistMlp>(blob, net) {
        Ok(()) => {
            *loaded = kind as i32;
            OK
        }
        Err(e) => error_code(&e),
    }
}

fn error_code(e: &RawError) -> i32 {
    match e {
        RawError::Truncated { .. } => ERR_TRUNCATED,
        RawError::BadMagic => ERR_BAD_MAGIC,
        RawError::UnsupportedVersion { .. } => ERR_VERSION,
        RawError::TensorCount { .. } => ERR_TENSOR_COUNT,
        RawError::Length { .. } => ERR_LENGTH,
        RawError::Shape { .. } => ERR_SHAPE,
        RawError::Offset { .. } => ERR_OFFSET,
        RawError::Checksum { .. } => ERR_CHECKSUM,
        RawError::NonFinite { .. } => ERR_NON_FINITE,
        RawError::Misaligned { .. } | RawError::BigEndianHost => ERR_OTHER,
    }
}

/// The kind of the loaded model, or -1 for none.
#[unsafe(no_mangle)]
pub extern "C" fn model_kind() -> i32 {
    // SAFETY: borrowed once, released on return.
    unsafe { *LOADED.get() }
}

/// The input buffer's address: 784 u8 pixels, row by row, 0 = background, 255 = ink.
#[unsafe(no_mangle)]
pub extern "C" fn input_buffer() -> *mut u8 {
    INPUT.0.get().cast()
}

/// Classifies the input buffer: returns the digit, or -1 if no model is loaded. The logits and
/// probabilities of this call are then at `logits()` and `probabilities()`.
#[unsafe(no_mangle)]
pub extern "C" fn classify() -> i32 {
    // SAFETY: each static is borrowed once here and released on return.
    let (net, loaded, input, output) =
        unsafe { (NET.get(), *LOADED.get(), INPUT.get(), OUTPUT.get()) };
    if loaded != KIND_F32 as i32 {
        return -1;
    }
    // The same conversion as training and examples/embedded.rs: x = pixel / 255.
    let mut x = [0.0f32; PIXELS];
    for (x, &p) in x.iter_mut().zip(input.iter()) {
        *x = f32::from(p) / 255.0;
    }
    net.forward_one::<Simd>(&x, &mut output.logits);
    logits::softmax(&output.logits, &mut output.probabilities);
    let mut digit = [0u32];
    logits::argmax(CLASSES, 1, &output.logits, &mut digit);
    digit[0] as i32
}

/// The address of the last call's 10 logits (f32).
#[unsafe(no_mangle)]
pub extern "C" fn logits() -> *const f32 {
    // SAFETY: only the address is taken; no reference outlives this line.
    unsafe { OUTPUT.get().logits.as_ptr() }
}

/// The address of the last call's 10 probabilities (f32, softmax of the logits).
#[unsafe(no_mangle)]
pub extern "C" fn probabilities() -> *const f32 {
    // SAFETY: only the address is taken; no reference outlives this line.
    unsafe { OUTPUT.get().probabilities.as_ptr() }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A panic would be a bug (shapes are fixed, inputs are checked): trap, which JavaScript
    // sees as a RuntimeError.
    core::arch::wasm32::unreachable()
}
