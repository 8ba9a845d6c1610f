//! Data-parallel training: a team of threads that split each batch, in lockstep.
//!
//! Plain algorithm, for every step of an epoch, with T threads (the caller's is thread 0):
//!
//! ```text
//! phase A, every thread t:   load its shard of the batch (samples [t·n/T, (t+1)·n/T)),
//!                            forward, loss, backward → grads[t]      (parameters read-only)
//! barrier
//! phase B, thread 0 only:    grads[0] = Σ_t (n_t/n)·grads[t], in t order; optimizer update
//! barrier
//! ```
//!
//! The split of the batch, the order of the reduction and every random stream are fixed by the
//! seed, the step and the thread count alone, so a run is bit-for-bit reproducible for a given
//! thread count (one thread is exactly the single-threaded step).
//!
//! The workers are created with the run and live as long as it does: between epochs they wait
//! on a barrier; within an epoch the two barriers per step spin briefly, then sleep.
//! Nothing is allocated per step or per epoch: each thread's workspace and gradients are made
//! once, the dataset's bytes reach the workers as reference-counted clones, and locks, barriers
//! and atomics do not allocate. Sharing is plain safe Rust: the parameters sit in an `RwLock`
//! (read by everyone in phase A, written by thread 0 in phase B), each thread's gradients in
//! their own `RwLock`.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::data::batch::{derived_rng, fill_batch, stream};
use crate::data::mnist::SharedSplit;
use crate::kernels::Simd;
use crate::layers::Dropout;
use crate::model::{Network, Workspace, forward_backward};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

/// A barrier that spins briefly, then sleeps. On an idle machine the other threads arrive
/// within microseconds and the wait costs nanoseconds, not a futex round trip (which matters
/// at thousands of steps per second); on a busy machine a waiter stops burning the CPU time the
/// threads it waits for need.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    sleepers: Mutex<()>,
    wake: Condvar,
}

/// Spins before sleeping: a few tens of microseconds.
const SPINS: u32 = 1 << 15;

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            // Under the lock, so a thread between its last check and its sleep cannot miss it.
            let _sleepers = self.sleepers.lock().expect("barrier lock");
            self.generation.fetch_add(1, Ordering::Release);
            self.wake.notify_all();
            return;
        }
        for _ in 0..SPINS {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            spin_loop();
        }
        let mut sleepers = self.sleepers.lock().expect("barrier lock");
        while self.generation.load(Ordering::Acquire) == generation {
            sleepers = self.wake.wait(sleepers).expect("barrier lock");
        }
    }
}

/// Floats of gradient combined per chunk (16 KiB: the chunk of each thread's gradients stays
/// in L1 while it is summed).
const REDUCE_CHUNK: usize = 4096;

/// What the threads need to run an epoch; cheap to clone (no allocation).
#[derive(Clone)]
pub(crate) struct Job {
    /// The training data.
    pub data: SharedSplit,
    /// Samples per batch.
    pub batch: usize,
    /// Batches of the epoch to run: `first..batches`.
    pub first: u64,
    /// Batches in the epoch.
    pub batches: u64,
    /// The global step of batch `first`.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// Dropout probability (0: none).
    pub dropout: f32,
}

/// Per-thread buffers and shared state.
struct Shared<N: Network, const B: usize> {
    threads: usize,
    params: RwLock<Box<N>>,
    grads: Vec<RwLock<Box<N>>>,
    workspaces: Vec<Mutex<Box<N::Workspace<B>>>>,
    losses: Vec<AtomicU32>,
    order: RwLock<Vec<u32>>,
    job: Mutex<Option<Job>>,
    start: Barrier,
    step: SpinBarrier,
    abort: AtomicBool,
    shutdown: AtomicBool,
}

/// The parameters and the threads that train them.
pub(crate) struct Team<N: Network, const B: usize> {
    shared: Arc<Shared<N, B>>,
    workers: Vec<JoinHandle<()>>,
}

impl<N: Network, const B: usize> Team<N, B> {
    /// A team of `threads` threads (the caller counts as one) around `params`, with every
    /// buffer allocated here, for a training set of `train_len` samples.
    pub fn new(threads: usize, params: Box<N>, train_len: usize) -> Self {
        assert!(threads >= 1 && threads <= B, "threads must be in 1..={B}");
        let shared = Arc::new(Shared {
            threads,
            params: RwLock::new(params),
            grads: (0..threads).map(|_| RwLock::new(N::zeroed_box())).collect(),
            workspaces: (0..threads)
                .map(|_| Mutex::new(N::Workspace::<B>::zeroed_box()))
                .collect(),
            losses: (0..threads).map(|_| AtomicU32::new(0)).collect(),
            order: RwLock::new((0..train_len as u32).collect()),
            job: Mutex::new(None),
            start: Barrier::new(threads),
            step: SpinBarrier::new(threads),
            abort: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|t| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("constnet-worker-{t}"))
                    .spawn(move || worker(&shared, t))
                    .expect("spawn a training thread")
            })
            .collect();
        Self { shared, workers }
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Training samples (the length of the sample order).
    pub fn train_len(&self) -> usize {
        self.shared.order.read().expect("order lock").len()
    }

    /// The parameters, for reading.
    pub fn params(&self) -> RwLockReadGuard<'_, Box<N>> {
        self.shared
            .params
            .read()
            .expect("a training thread panicked")
    }

    /// The parameters, for writing (between epochs).
    pub fn params_mut(&self) -> RwLockWriteGuard<'_, Box<N>> {
        self.shared
            .params
            .write()
            .expect("a training thread panicked")
    }

    /// Reshuffles the sample order for `epoch` of the run seeded `seed`.
    pub fn shuffle(&self, seed: u64, epoch: u64) {
        crate::data::shuffle(
            &mut self.shared.order.write().expect("order lock"),
            seed,
            epoch,
        );
    }

    /// Starts an epoch: the workers begin phase A of its first batch.
    pub fn start(&self, job: Job) {
        self.shared.abort.store(false, Ordering::Relaxed);
        *self.shared.job.lock().expect("job lock") = Some(job);
        self.shared.start.wait();
    }

    /// Phase A for thread 0: its shard of batch `b`. Returns the batch's size.
    pub fn phase_a(&self, job: &Job, b: u64) -> usize {
        shard(&self.shared, job, b, 0)
    }

    /// The barrier between the phases.
    pub fn barrier(&self) {
        self.shared.step.wait();
    }

    /// Phase B: reduces the gradients into thread 0's, in thread order, weighted by shard
    /// size, and hands them with the parameters to `update`. Returns what `update` returns and
    /// the batch's mean loss.
    pub fn phase_b<R>(&self, batch: usize, update: impl FnOnce(&mut N, &N) -> R) -> (R, f32) {
        let threads = self.shared.threads;
        let weight = |t: usize| {
            let (lo, hi) = bounds(batch, threads, t);
            (hi - lo) as f32 / batch.max(1) as f32
        };
        let total = (0..threads)
            .map(|t| weight(t) * f32::from_bits(self.shared.losses[t].load(Ordering::Relaxed)))
            .sum();
        let mut g0 = self.shared.grads[0].write().expect("gradient lock");
        if threads > 1 {
            // One pass: g0 = w0·g0 + w1·g1 + …, in thread order, a cache-sized chunk at a time
            // so each chunk of g0 is read and written once.
            let others: [Option<RwLockReadGuard<'_, Box<N>>>; B] = core::array::from_fn(|t| {
                (1..threads)
                    .contains(&t)
                    .then(|| self.shared.grads[t].read().expect("gradient lock"))
            });
            for i in 0..N::TENSORS {
                for (c, chunk) in g0.tensor_mut(i).chunks_mut(REDUCE_CHUNK).enumerate() {
                    let w0 = weight(0);
                    chunk.iter_mut().for_each(|g| *g *= w0);
                    for (t, gt) in others.iter().enumerate().take(threads).skip(1) {
                        let (wt, gt) = (weight(t), gt.as_ref().expect("a gradient guard"));
                        for (a, &b) in chunk.iter_mut().zip(&gt.tensor(i)[c * REDUCE_CHUNK..]) {
                            *a += wt * b;
                        }
                    }
                }
            }
        }
        let mut params = self.shared.params.write().expect("parameter lock");
        (update(&mut params, &g0), total)
    }

    /// Stops the workers' current epoch after the step they are in (call between phase B's
    /// barrier and the next phase A, only if that next step exists).
    pub fn abort(&self) {
        self.shared.abort.store(true, Ordering::Relaxed);
        self.shared.step.wait();
    }
}

impl<N: Network, const B: usize> Drop for Team<N, B> {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        if !self.workers.is_empty() {
            self.shared.start.wait();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The samples of batch slot range `[lo, hi)` that thread `t` of `threads` takes.
fn bounds(batch: usize, threads: usize, t: usize) -> (usize, usize) {
    (t * batch / threads, (t + 1) * batch / threads)
}

/// Phase A for thread `t`: loads its shard of batch `b` and computes its gradients and loss.
/// Returns the batch's size.
fn shard<N: Network, const B: usize>(shared: &Shared<N, B>, job: &Job, b: u64, t: usize) -> usize {
    let order = shared.order.read().expect("order lock");
    let start = b as usize * job.batch;
    let indices = &order[start..(start + job.batch).min(order.len())];
    let (lo, hi) = bounds(indices.len(), shared.threads, t);
    let mut ws = shared.workspaces[t].lock().expect("workspace lock");
    fill_batch::<_, Simd>(
        &mut **ws,
        job.data.pixels(),
        job.data.labels(),
        &indices[lo..hi],
    );
    let step = job.step + (b - job.first);
    // Thread 0 draws from the same stream as a single-threaded run.
    let mut rng = derived_rng(job.seed, stream::DROPOUT + ((t as u64) << 8), step);
    let mut dropout = Dropout {
        p: job.dropout,
        rng: &mut rng,
    };
    let dropout = (job.dropout > 0.0).then_some(&mut dropout);
    let params = shared.params.read().expect("parameter lock");
    let mut grads = shared.grads[t].write().expect("gradient lock");
    let loss = forward_backward::<N, Simd, _, B>(&params, &mut grads, &mut ws, hi - lo, dropout);
    shared.losses[t].store(loss.to_bits(), Ordering::Relaxed);
    indices.len()
}

std::thread_local! {
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the training team's workers (for tools that watch
/// what those threads do, such as an allocation counter).
pub fn on_worker_thread() -> bool {
    WORKER.with(std::cell::Cell::get)
}

/// A worker's life: wait for an epoch, run its shard of every step in lockstep, repeat.
fn worker<N: Network, const B: usize>(shared: &Shared<N, B>, t: usize) {
    WORKER.with(|w| w.set(true));
    loop {
        shared.start.wait();
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let job = shared
            .job
            .lock()
            .expect("job lock")
            .clone()
            .expect("an epoch to run");
        for b in job.first..job.batches {
            shard(shared, &job, b, t);
            shared.step.wait();
            if shared.abort.load(Ordering::Relaxed) {
                break;
            }
            shared.step.wait();
        }
    }
}
