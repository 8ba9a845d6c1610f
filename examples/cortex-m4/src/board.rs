//! What the firmware measures about the MPS2 AN386 board: emulated time and stack depth.

use core::ptr;

/// Timer 1 of the CMSDK APB dual timer, clocked by the 25 MHz SYSCLK (AN386; QEMU
/// hw/arm/mps2.c and hw/timer/cmsdk-apb-dualtimer.c).
const DUALTIMER1: usize = 0x4000_2000;
const VALUE: usize = DUALTIMER1 + 0x04;
const CONTROL: usize = DUALTIMER1 + 0x08;
/// CONTROL: ENABLE (bit 7), 32-bit counter (bit 1); free-running (bit 6 clear), prescale 1,
/// interrupt off.
const ENABLE_32BIT_FREE_RUNNING: u32 = 0x82;
/// Timer ticks a second.
pub const TICKS_PER_SECOND: u32 = 25_000_000;

/// Starts the 32-bit down-counter; read it with [`ticks`]. It wraps every 171 s.
pub fn start_timer() {
    // SAFETY: CONTROL is the dual timer's control register on this board; the firmware does
    // not otherwise use the timer, and the write starts counting, with its interrupt disabled.
    unsafe { ptr::write_volatile(CONTROL as *mut u32, ENABLE_32BIT_FREE_RUNNING) };
}

/// The counter: it counts down, so elapsed ticks are `earlier.wrapping_sub(later)`.
pub fn ticks() -> u32 {
    // SAFETY: VALUE is the dual timer's read-only count register on this board.
    unsafe { ptr::read_volatile(VALUE as *const u32) }
}

unsafe extern "C" {
    // From cortex-m-rt's link.x: the lowest and highest address of the stack.
    static _stack_end: u32;
    static _stack_start: u32;
}

/// Bytes of stack used so far at most: cortex-m-rt's `paint-stack` fills the stack with
/// 0xCCCCCCCC at reset; the deepest word no longer painted marks the high-water point.
/// (Exact unless a used word happened to hold 0xCCCCCCCC.)
pub fn stack_used() -> usize {
    let bottom = &raw const _stack_end as usize;
    let top = &raw const _stack_start as usize;
    let mut at = bottom;
    // SAFETY: every word in [bottom, top) is RAM reserved for the stack by link.x; reading
    // it (volatile, as the compiler knows nothing of the paint) races with nothing.
    while at < top && unsafe { ptr::read_volatile(at as *const u32) } == 0xcccc_cccc {
        at += 4;
    }
    top - at
}
