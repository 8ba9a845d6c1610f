//! constnet's reference network as a WebAssembly module, for browsers and node.
//!
//! The module has no imports and no allocator: every buffer is a `static`, and JavaScript
//! reads and writes them through the pointers the exports return (`examples/web/constnet.js`
//! is the loader). One page's life:
//!
//! ```text
//! copy the raw blob to model_buffer() (at most model_capacity() bytes)
//! load_model(kind, len)       -> 0, or an error code (ERR_*) and no model
//! write 784 pixels to input_buffer()  (u8, white digit on black, as in MNIST)
//! classify()                  -> the digit, or -1 without a model
//! read 10 f32 at logits() and probabilities()
//! ```
//!
//! Two kinds of model:
//!
//! - [`KIND_F32`], the blob `constnet export --raw` writes (`constnet::format::raw`):
//!   `load_model` checks it with `raw::load_into` (magic, version, shapes, offsets, length,
//!   checksum) and copies the parameters into this module's own static network.
//! - [`KIND_I8`], the int8 blob `constnet quantize --raw` writes (`constnet::quant::raw`):
//!   `load_model` copies it into a static buffer of its own and keeps the checked view
//!   `quant::raw::view` returns (magic, version, shapes, offsets, length, checksum, and every
//!   range the int8 kernels rely on). `classify` feeds it the pixels themselves (the int8
//!   input is `p − 128` at scale 1/255, i.e. the f32 network's `p / 255`), as `constnet eval`
//!   does, and reports the i32 logits times the network's logit scale as f32.
//!
//! Either way the upload buffer may be overwritten afterwards without touching the loaded
//! model.
//!
//! Two builds are made from this file: one with `-C target-feature=+simd128` (`wide` then uses
//! WebAssembly's 128-bit SIMD) and one without (scalar code). [`features`] says which. The
//! int8 kernels have one path on wasm32, the scalar one ([`Int8Path::selected`] picks it):
//! integer arithmetic, so both builds give the native build's numbers exactly.
#![no_std]

use constnet::format::raw::{self, RawError};
use constnet::kernels::int8::Int8Path;
use constnet::quant::{self, MNIST_DIMS, QuantError, QuantMnist, raw::BlobError};
use constnet::{MnistMlp, Network, Params, Simd, logits};
use core::cell::UnsafeCell;

/// A parameter blob of f32 tensors in constnet's raw format (`constnet export --raw`).
pub const KIND_F32: u32 = 0;
/// An int8 network in constnet's raw int8 format (`constnet quantize --raw`).
pub const KIND_I8: u32 = 1;

/// `load_model` succeeded.
pub const OK: i32 = 0;
/// `load_model` was given a kind this build does not know (neither [`KIND_F32`] nor
/// [`KIND_I8`]).
pub const ERR_UNSUPPORTED_KIND: i32 = 1;
/// `load_model` was given a length larger than `model_capacity()`.
pub const ERR_TOO_LARGE: i32 = 2;
/// The blob is shorter than its header and table ([`RawError::Truncated`],
/// [`BlobError::Truncated`]).
pub const ERR_TRUNCATED: i32 = 3;
/// Not a constnet blob of the kind asked for ([`RawError::BadMagic`], [`BlobError::BadMagic`]).
pub const ERR_BAD_MAGIC: i32 = 4;
/// A blob version this build does not read ([`RawError::UnsupportedVersion`],
/// [`BlobError::UnsupportedVersion`]).
pub const ERR_VERSION: i32 = 5;
/// Another number of tensors (f32) or layers (int8) than `MnistMlp` has
/// ([`RawError::TensorCount`], [`QuantError::LayerCount`]).
pub const ERR_TENSOR_COUNT: i32 = 6;
/// The header's length differs from the blob's ([`RawError::Length`], [`BlobError::Length`]).
pub const ERR_LENGTH: i32 = 7;
/// A tensor's or layer's shape is not `MnistMlp`'s ([`RawError::Shape`],
/// [`QuantError::Shape`]).
pub const ERR_SHAPE: i32 = 8;
/// A tensor offset is misaligned, overlapping or out of bounds ([`RawError::Offset`],
/// [`BlobError::Offset`]).
pub const ERR_OFFSET: i32 = 9;
/// The payload checksum does not match ([`RawError::Checksum`], [`BlobError::Checksum`]).
pub const ERR_CHECKSUM: i32 = 10;
/// Misaligned or big-endian: zero-copy conditions this module always meets (its buffers are
/// 64-byte aligned, wasm32 is little-endian), so it never reports this.
pub const ERR_OTHER: i32 = 11;
/// A weight is NaN or infinite ([`RawError::NonFinite`]).
pub const ERR_NON_FINITE: i32 = 12;
/// An int8 value is out of the range the int8 kernels need: a weight of −128 or non-zero
/// padding, a bias, multiplier, shift or zero point out of range, a scale that is not a
/// positive finite number, or a kernel bias that does not match its bias
/// ([`QuantError::Weight`], `Range`, `Scale`, `KernelBias`).
pub const ERR_I8_RANGE: i32 = 13;
/// The int8 layers do not fit together: the first layer's input is not the image (scale
/// 1/255, zero point −128), a layer's input is not the previous layer's output, or a layer
/// outputs the wrong kind ([`QuantError::Input`], `Chain`, `OutputKind`,
/// [`BlobError::OutputKind`]).
pub const ERR_I8_LAYERS: i32 = 14;

/// Bytes the upload buffer holds: the f32 `MnistMlp` blob is 971,392 bytes.
pub const MODEL_CAPACITY: usize = 1 << 20;
/// Bytes the int8 model's own buffer holds: the int8 `MnistMlp` blob is 252,288 bytes.
pub const INT8_CAPACITY: usize = 256 << 10;
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
    ///   static and drops the reference before returning. The one reference kept across calls
    ///   is the shared view of `INT8` in `LOADED`, which `load_i8` requires gone.
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
/// The loaded int8 blob, copied out of `UPLOAD` so that uploads leave the model alone; only
/// the view in `LOADED` reads it.
static INT8: Global<[u8; INT8_CAPACITY]> = Global::new([0; INT8_CAPACITY]);
/// What `classify` runs.
static LOADED: Global<Loaded> = Global::new(Loaded::None);
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

/// The loaded model.
#[allow(
    clippy::large_enum_variant,
    reason = "one instance, a static; without an allocator there is nothing to box into"
)]
enum Loaded {
    /// None: `classify` returns -1.
    None,
    /// The f32 parameters in `NET`.
    F32,
    /// The checked view of the int8 blob in `INT8`.
    Int8(QuantMnist<'static>),
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
    let (upload, loaded) = unsafe { (UPLOAD.get(), LOADED.get()) };
    // Unloading drops the view of INT8, which `load_i8` may then overwrite.
    *loaded = Loaded::None;
    if kind != KIND_F32 && kind != KIND_I8 {
        return ERR_UNSUPPORTED_KIND;
    }
    let Some(blob) = upload.get(..len) else {
        return ERR_TOO_LARGE;
    };
    let result = if kind == KIND_F32 {
        load_f32(blob)
    } else {
        // SAFETY: no model is loaded (just above), so no view of INT8 is live.
        unsafe { load_i8(blob) }
    };
    match result {
        Ok(model) => {
            *loaded = model;
            OK
        }
        Err(code) => code,
    }
}

/// Copies a checked f32 blob into `NET`.
fn load_f32(blob: &[u8]) -> Result<Loaded, i32> {
    // SAFETY: borrowed once here, released on return.
    let net = unsafe { NET.get() };
    match raw::load_into::<MnistMlp>(blob, net) {
        Ok(()) => Ok(Loaded::F32),
        Err(e) => Err(raw_error_code(&e)),
    }
}

/// Copies an int8 blob into `INT8` and views it there, checked.
///
/// # Safety
/// - No view of `INT8` may be live: `LOADED` holds no int8 model.
unsafe fn load_i8(blob: &[u8]) -> Result<Loaded, i32> {
    // SAFETY: the caller promises that the only reference kept across calls is gone; the view
    // made here becomes it.
    let store = unsafe { INT8.get() };
    let Some(copy) = store.get_mut(..blob.len()) else {
        // Longer than an int8 MnistMlp blob can be: the checks say what it is instead.
        return Err(quant::raw::view::<4>(blob, &MNIST_DIMS)
            .map_or_else(|e| quant_error_code(&e), |_| ERR_TOO_LARGE));
    };
    copy.copy_from_slice(blob);
    let copy: &'static [u8] = copy;
    match quant::raw::view::<4>(copy, &MNIST_DIMS) {
        Ok(net) => Ok(Loaded::Int8(net)),
        Err(e) => Err(quant_error_code(&e)),
    }
}

fn raw_error_code(e: &RawError) -> i32 {
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

// Every variant by name, so that a new one fails this build until it has a code.
fn quant_error_code(e: &QuantError) -> i32 {
    match e {
        QuantError::Blob(b) => match b {
            BlobError::Truncated { .. } => ERR_TRUNCATED,
            BlobError::BadMagic => ERR_BAD_MAGIC,
            BlobError::UnsupportedVersion { .. } => ERR_VERSION,
            BlobError::Length { .. } => ERR_LENGTH,
            BlobError::Checksum { .. } => ERR_CHECKSUM,
            BlobError::Offset { .. } => ERR_OFFSET,
            BlobError::OutputKind { .. } => ERR_I8_LAYERS,
            BlobError::Misaligned | BlobError::BigEndianHost => ERR_OTHER,
        },
        QuantError::LayerCount { .. } => ERR_TENSOR_COUNT,
        QuantError::Shape { .. } | QuantError::TooWide { .. } | QuantError::Length { .. } => {
            ERR_SHAPE
        }
        QuantError::Weight { .. }
        | QuantError::Range { .. }
        | QuantError::Scale { .. }
        | QuantError::KernelBias { .. } => ERR_I8_RANGE,
        QuantError::Input | QuantError::Chain { .. } | QuantError::OutputKind { .. } => {
            ERR_I8_LAYERS
        }
    }
}

/// The kind of the loaded model ([`KIND_F32`] or [`KIND_I8`]), or -1 for none.
#[unsafe(no_mangle)]
pub extern "C" fn model_kind() -> i32 {
    // SAFETY: borrowed once, released on return.
    match unsafe { LOADED.get() } {
        Loaded::None => -1,
        Loaded::F32 => KIND_F32 as i32,
        Loaded::Int8(_) => KIND_I8 as i32,
    }
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
        unsafe { (NET.get(), LOADED.get(), INPUT.get(), OUTPUT.get()) };
    match loaded {
        Loaded::None => -1,
        Loaded::F32 => classify_f32(net, input, output),
        Loaded::Int8(q) => classify_i8(q, input, output),
    }
}

fn classify_f32(net: &MnistMlp, input: &[u8; PIXELS], output: &mut Output) -> i32 {
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

fn classify_i8(net: &QuantMnist<'_>, input: &[u8; PIXELS], output: &mut Output) -> i32 {
    // The int8 input is the pixel itself (x_q = p − 128 at scale 1/255), as `constnet eval`
    // feeds it.
    let mut q = [0i32; CLASSES];
    net.forward_one(Int8Path::selected(), input, &mut q);
    let scale = net.logit_scale();
    for (z, &q) in output.logits.iter_mut().zip(&q) {
        *z = q as f32 * scale;
    }
    logits::softmax(&output.logits, &mut output.probabilities);
    // The digit from the integers, as `QuantNet::classify` picks it.
    quant::argmax(&q) as i32
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
