//! How the team's threads wait for each other: a barrier between the phases of a step, and a
//! gate where the workers wait while thread 0 runs steps alone.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A barrier that spins briefly, then yields, then sleeps. On an idle machine the other
/// threads arrive within microseconds and the wait costs nanoseconds, not a futex round trip
/// (which matters at thousands of steps per second); on a busy machine a waiter soon stops
/// burning the CPU time the threads it waits for need (as OpenMP runtimes spin for a bounded
/// time, then block).
pub(super) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    sleepers: Mutex<()>,
    wake: Condvar,
}

/// How long a waiter spins before it yields, and yields before it sleeps.
const SPIN: Duration = Duration::from_micros(20);
const YIELD: Duration = Duration::from_micros(200);

impl SpinBarrier {
    pub(super) fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    pub(super) fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            // Under the lock, so a thread between its last check and its sleep cannot miss it.
            let _sleepers = self.sleepers.lock().expect("barrier lock");
            self.generation.fetch_add(1, Ordering::Release);
            self.wake.notify_all();
            return;
        }
        let passed = || self.generation.load(Ordering::Acquire) != generation;
        let start = Instant::now();
        let mut spins = 0u32;
        while !passed() {
            spins += 1;
            if !spins.is_multiple_of(64) {
                spin_loop();
                continue;
            }
            let waited = start.elapsed();
            if waited < SPIN {
                spin_loop();
            } else if waited < YIELD {
                std::thread::yield_now();
            } else {
                let mut sleepers = self.sleepers.lock().expect("barrier lock");
                while !passed() {
                    sleepers = self.wake.wait(sleepers).expect("barrier lock");
                }
                return;
            }
        }
    }
}

/// Where the workers wait while thread 0 runs the team's steps alone (see [`super::pace`]).
///
/// Thread 0 asks them to park after a step before that step's first barrier; they see it after
/// the step's last one and wait here until thread 0 resumes them at a later batch of the epoch
/// or ends the epoch. Every park is followed by exactly one resume, so each worker counts its
/// parks and waits until as many resumes have happened.
pub(super) struct Gate {
    /// The global step after which the workers park (`u64::MAX`: none so far). Steps only
    /// grow, so a worker can never mistake an old request for a new one.
    park_after: AtomicU64,
    /// Resumes so far, and the batch the last one resumes at (`None`: the epoch is over).
    resumed: Mutex<(u64, Option<u64>)>,
    wake: Condvar,
}

impl Gate {
    pub(super) fn new() -> Self {
        Self {
            park_after: AtomicU64::new(u64::MAX),
            resumed: Mutex::new((0, None)),
            wake: Condvar::new(),
        }
    }

    /// Thread 0: the workers are to park after global step `step` (call before its first
    /// barrier, which publishes the request).
    pub(super) fn park_after(&self, step: u64) {
        self.park_after.store(step, Ordering::Relaxed);
    }

    /// A worker, after global step `step`'s last barrier: whether it is to park now.
    pub(super) fn parks_after(&self, step: u64) -> bool {
        self.park_after.load(Ordering::Relaxed) == step
    }

    /// A worker parks (its `parks`-th time, counted here) until thread 0 resumes the team:
    /// returns the batch to go on with, or `None` when the epoch is over.
    pub(super) fn wait(&self, parks: &mut u64) -> Option<u64> {
        *parks += 1;
        let mut resumed = self.resumed.lock().expect("gate lock");
        while resumed.0 < *parks {
            resumed = self.wake.wait(resumed).expect("gate lock");
        }
        resumed.1
    }

    /// Thread 0 resumes the parked workers at `batch` (`None`: the epoch is over).
    pub(super) fn resume(&self, batch: Option<u64>) {
        let mut resumed = self.resumed.lock().expect("gate lock");
        *resumed = (resumed.0 + 1, batch);
        self.wake.notify_all();
    }
}
