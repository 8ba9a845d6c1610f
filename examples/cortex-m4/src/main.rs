//! constnet on a Cortex-M4: the MNIST network (int8, or f32) compiled into the firmware, run
//! from flash with no allocator, checked on the first 1,000 MNIST test images under QEMU
//! (`mps2-an386`).
//!
//! With the default `test-set` feature it classifies the embedded images and prints over
//! semihosting, on stdout, exactly two lines:
//!
//! ```text
//! correct: 968/1000
//! fnv1a32: 0x1234abcd
//! ```
//!
//! the number of predictions equal to the embedded labels, and the [`fnv1a32`] checksum of the
//! 1,000 predicted digits in image order, one byte each (0–9). On semihosting stderr it also
//! writes one line, `predictions: ` and the 1,000 digits as ASCII, so that a test can name the
//! images where another build of the library disagrees. Then it exits through semihosting with
//! status 0. A panic or fault prints its message on stderr and exits with status 1.
//!
//! Without `test-set`, it classifies one blank image and prints `blank image: D`.
//!
//! Either way a last stderr line gives the time the classifications took on the board's
//! 25 MHz timer and the stack's high-water mark, e.g.
//! `time: 1000 images in 85241367 ticks (3409654 us); stack: 5640 bytes`. Under QEMU the
//! timer follows the host's clock, so this is emulation time, not Cortex-M4 time; with
//! `-icount shift=0` QEMU advances it 1 ns per instruction, and it counts instructions.
#![no_std]
#![no_main]

mod board;
mod classify;

use classify::{Classifier, Model};
use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, heprintln, hprintln};

/// The 1,000 test images (784 bytes each) and their labels; build.rs checks the lengths.
#[cfg(feature = "test-set")]
mod test_set {
    /// Images, and so labels and predictions.
    pub const COUNT: usize = 1000;
    /// The pixels of the images, one after another.
    pub static IMAGES: &[u8; COUNT * super::classify::PIXELS] =
        include_bytes!(env!("FIRMWARE_IMAGES"));
    /// The digit in each image.
    pub static LABELS: &[u8; COUNT] = include_bytes!(env!("FIRMWARE_LABELS"));
}

#[entry]
fn main() -> ! {
    board::start_timer();
    let model = match Model::load() {
        Ok(model) => model,
        Err(e) => {
            heprintln!("the compiled-in model is unusable: {}", e);
            exit_failure();
        }
    };
    let start = board::ticks();
    let images = run(&model);
    let ticks = start.wrapping_sub(board::ticks());
    heprintln!(
        "time: {} images in {} ticks ({} us); stack: {} bytes",
        images,
        ticks,
        ticks / (board::TICKS_PER_SECOND / 1_000_000),
        board::stack_used()
    );
    debug::exit(debug::EXIT_SUCCESS);
    // Only reached without a debugger to stop us.
    loop {
        cortex_m::asm::wfi();
    }
}

/// Classifies the test set and reports, as the module documentation says; returns the number
/// of images.
#[cfg(feature = "test-set")]
fn run(model: &impl Classifier) -> usize {
    use test_set::{COUNT, IMAGES, LABELS};
    let (images, _) = IMAGES.as_chunks::<{ classify::PIXELS }>();
    let mut predictions = [0u8; COUNT];
    for (digit, image) in predictions.iter_mut().zip(images) {
        *digit = model.classify(image);
    }
    let correct = predictions
        .iter()
        .zip(LABELS.iter())
        .filter(|(p, l)| p == l)
        .count();
    hprintln!("correct: {}/{}", correct, COUNT);
    hprintln!("fnv1a32: {:#010x}", fnv1a32(&predictions));
    // As ASCII digits, in one write.
    let mut ascii = predictions;
    for d in &mut ascii {
        *d += b'0';
    }
    heprintln!(
        "predictions: {}",
        core::str::from_utf8(&ascii).unwrap_or("?")
    );
    COUNT
}

/// The digit the model sees in an all-black image: keeps the model and the kernels in the
/// firmware without the test set.
#[cfg(not(feature = "test-set"))]
fn run(model: &impl Classifier) -> usize {
    let blank = core::hint::black_box([0u8; classify::PIXELS]);
    hprintln!("blank image: {}", model.classify(&blank));
    1
}

/// 32-bit FNV-1a of `bytes`: start from 0x811c9dc5; for each byte, XOR it in, then multiply
/// by 0x01000193 (wrapping). Over the predicted digits (values 0–9, one byte per image, in
/// image order) it is the firmware's checksum; `host/` computes the same.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn exit_failure() -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    heprintln!("panic: {}", info);
    exit_failure()
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    heprintln!("hard fault: {:?}", frame);
    exit_failure()
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    heprintln!("unexpected exception or interrupt {}", irqn);
    exit_failure()
}
