//! A global allocator that counts allocations while armed.
//!
//! Install it in a test binary with
//! `#[global_allocator] static A: common::alloc_counter::Counting = common::alloc_counter::Counting;`
//! then wrap the code under test in [`count`] (allocations of the current thread only, so the
//! test harness's other threads cannot disturb it) or [`count_all_threads`] (every thread, for
//! code that runs worker threads; hold [`SERIAL`] so no other test runs meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Tests that count the workers' allocations take this lock (and so must every other test of
/// their binary that runs workers).
pub static SERIAL: Mutex<()> = Mutex::new(());
static ARMED_ALL: AtomicBool = AtomicBool::new(false);
static COUNT_ALL: AtomicUsize = AtomicUsize::new(0);

/// Counts allocations (and reallocations) on armed threads, then defers to the system allocator.
pub struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // Worker threads of constnet's training team, and the thread that armed the counter; not
    // the test harness's own threads, which allocate on their own schedule.
    if ARMED_ALL.load(Ordering::Relaxed)
        && (constnet::parallel::on_worker_thread() || ARMED.with(Cell::get))
    {
        COUNT_ALL.fetch_add(1, Ordering::Relaxed);
    }
    if ARMED.with(Cell::get) {
        COUNT.with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System`, which upholds the GlobalAlloc contract; the
// thread-local bookkeeping is const-initialised and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the number of allocations it made on this thread.
pub fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.with(Cell::get))
}

/// Runs `f` and returns its result with the number of allocations made meanwhile by this
/// thread and by constnet's training workers.
pub fn count_all_threads<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT_ALL.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    ARMED_ALL.store(true, Ordering::SeqCst);
    let r = f();
    ARMED_ALL.store(false, Ordering::SeqCst);
    ARMED.with(|a| a.set(false));
    (r, COUNT_ALL.load(Ordering::SeqCst))
}
