//! Data-parallel training: a team of threads that split each batch, in lockstep.
//!
//! Plain algorithm, for every step of an epoch, with T threads (the caller's is thread 0):
//!
//! ```text
//! phase A, every thread t:  load its shard of the batch (samples [t·n/T, (t+1)·n/T)),
//!                           forward, loss, backward → grads[t]
//! barrier
//! phase B, every thread t:  for its part P_t of every tensor (elements [t·len/T, (t+1)·len/T)):
//!                           g = Σ_u (n_u/n)·grads[u][P_t], in u order; optimizer update of P_t
//!                           in its own copy of the parameters and state; publish P_t
//! barrier
//! phase C, every thread t:  copy the other threads' published parts into its copy
//! ```
//!
//! Every element is reduced and updated by exactly one thread with the same arithmetic, so the
//! copies stay identical, and the split of the batch, the order of the reduction and every
//! random stream are fixed by the seed, the step and the thread count alone: a run is
//! bit-for-bit reproducible for a given thread count. One thread is exactly the
//! single-threaded step (no reduction, no copies).
//!
//! Why copies: the update (Adam: a square root and a division per parameter) is a quarter of a
//! step and the gradients a megabyte; done by one thread on shared parameters, it and the
//! traffic between the cores' caches made 2 threads barely faster than 1. Sharded, each thread
//! updates 1/T of the parameters and moves 1/T of the gradients.
//!
//! The workers are created with the run and live as long as it does: between epochs they wait
//! on a barrier; within an epoch the barriers spin briefly, then sleep. Nothing is allocated
//! per step or per epoch: every buffer is made once, the dataset's bytes reach the workers as
//! reference-counted clones, and locks, barriers and atomics do not allocate. Sharing is plain
//! safe Rust: each thread's buffers sit behind their own locks, taken by other threads only to
//! read in the phase where their owner does not write.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::data::batch::{derived_rng, fill_batch, stream};
use crate::data::mnist::SharedSplit;
use crate::kernels::{Backend, Simd};
use crate::layers::Dropout;
use crate::model::{Network, Workspace, forward_backward};
use crate::optim::{AnyOptimizer, Optimizer, PartUpdate, Schedule, part_range};
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{
    Arc, Barrier, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
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
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule (per step).
    pub schedule: Schedule,
}

/// How a step went, as thread 0 sees it after every thread is done with it.
pub(crate) struct StepOutcome {
    /// Samples in the batch.
    pub batch: usize,
    /// The batch's mean loss.
    pub loss: f32,
    /// Whether every gradient (and the loss) was finite.
    pub finite: bool,
}

/// Each thread's buffers, indexed by thread, and what the threads share.
struct Shared<N: Network, const B: usize> {
    threads: usize,
    /// Each thread's copy of the parameters (thread 0's is the run's).
    replicas: Vec<RwLock<Box<N>>>,
    /// Each thread's freshly updated part, for the others to copy (unused with one thread).
    published: Vec<RwLock<Box<N>>>,
    grads: Vec<RwLock<Box<N>>>,
    /// Each thread's reduced gradient (its part only; unused with one thread).
    sums: Vec<Mutex<Box<N>>>,
    /// Each thread's copy of the optimizer, authoritative for its part.
    optimizers: Vec<Mutex<AnyOptimizer<N>>>,
    workspaces: Vec<Mutex<Box<N::Workspace<B>>>>,
    losses: Vec<AtomicU32>,
    finite: Vec<AtomicBool>,
    /// Each thread's share of the squared gradient norm, when clipping.
    norms: Vec<AtomicU32>,
    order: RwLock<Vec<u32>>,
    job: Mutex<Option<Job>>,
    start: Barrier,
    step: SpinBarrier,
    abort: AtomicBool,
    shutdown: AtomicBool,
}

/// The parameters, the optimizer and the threads that train them.
pub(crate) struct Team<N: Network, const B: usize> {
    shared: Arc<Shared<N, B>>,
    workers: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a training thread panicked")
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().expect("a training thread panicked")
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().expect("a training thread panicked")
}

/// Copies part `part` of `parts` of every tensor of `src` into `dst`.
fn copy_part<N: Network>(dst: &mut N, src: &N, part: usize, parts: usize) {
    for i in 0..N::TENSORS {
        let r = part_range(src.tensor(i).len(), part, parts);
        dst.tensor_mut(i)[r.clone()].copy_from_slice(&src.tensor(i)[r]);
    }
}

impl<N: Network, const B: usize> Team<N, B> {
    /// A team of `threads` threads (the caller counts as one) around `params` and `optimizer`,
    /// with every buffer allocated here, for a training set of `train_len` samples.
    pub fn new(
        threads: usize,
        params: Box<N>,
        optimizer: AnyOptimizer<N>,
        train_len: usize,
    ) -> Self {
        assert!(threads >= 1 && threads <= B, "threads must be in 1..={B}");
        let copies = |n: usize| if threads > 1 { n } else { 0 };
        let mut replicas = vec![RwLock::new(params)];
        replicas.extend((1..threads).map(|_| RwLock::new(N::zeroed_box())));
        let mut optimizers = vec![Mutex::new(optimizer)];
        for _ in 1..threads {
            let twin = lock(&optimizers[0]).same_kind();
            optimizers.push(Mutex::new(twin));
        }
        let shared = Arc::new(Shared {
            threads,
            replicas,
            published: (0..copies(threads))
                .map(|_| RwLock::new(N::zeroed_box()))
                .collect(),
            grads: (0..threads).map(|_| RwLock::new(N::zeroed_box())).collect(),
            sums: (0..copies(threads))
                .map(|_| Mutex::new(N::zeroed_box()))
                .collect(),
            optimizers,
            workspaces: (0..threads)
                .map(|_| Mutex::new(N::Workspace::<B>::zeroed_box()))
                .collect(),
            losses: (0..threads).map(|_| AtomicU32::new(0)).collect(),
            finite: (0..threads).map(|_| AtomicBool::new(true)).collect(),
            norms: (0..threads).map(|_| AtomicU32::new(0)).collect(),
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
        let team = Self { shared, workers };
        team.broadcast();
        team
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Training samples (the length of the sample order).
    pub fn train_len(&self) -> usize {
        read(&self.shared.order).len()
    }

    /// The parameters, for reading.
    pub fn params(&self) -> RwLockReadGuard<'_, Box<N>> {
        read(&self.shared.replicas[0])
    }

    /// The parameters, for writing between epochs (the other threads' copies follow at the
    /// start of the next epoch).
    pub fn params_mut(&self) -> RwLockWriteGuard<'_, Box<N>> {
        write(&self.shared.replicas[0])
    }

    /// The optimizer with the whole of its state gathered from every thread (each updates
    /// its own part of it during an epoch): for checkpoints, between steps.
    pub fn optimizer(&self) -> impl std::ops::Deref<Target = AnyOptimizer<N>> + '_ {
        self.gather()
    }

    /// Changes the optimizer (between epochs, say to restore a checkpoint): `f` sees the
    /// whole state, and every thread gets the result.
    pub fn with_optimizer_mut(&self, f: impl FnOnce(&mut AnyOptimizer<N>)) {
        f(&mut self.gather());
        self.broadcast();
    }

    /// Thread 0's optimizer, completed with the parts the other threads updated.
    fn gather(&self) -> MutexGuard<'_, AnyOptimizer<N>> {
        let threads = self.shared.threads;
        let mut first = lock(&self.shared.optimizers[0]);
        for (u, other) in self.shared.optimizers.iter().enumerate().skip(1) {
            first.copy_state(&lock(other), u, threads);
        }
        first
    }

    /// Gives every thread thread 0's parameters and optimizer state. Workers must be idle.
    fn broadcast(&self) {
        let first = lock(&self.shared.optimizers[0]);
        let params = read(&self.shared.replicas[0]);
        for t in 1..self.shared.threads {
            lock(&self.shared.optimizers[t]).copy_state(&first, 0, 1);
            copy_part(&mut **write(&self.shared.replicas[t]), &params, 0, 1);
        }
    }

    /// Reshuffles the sample order for `epoch` of the run seeded `seed`.
    pub fn shuffle(&self, seed: u64, epoch: u64) {
        crate::data::shuffle(&mut write(&self.shared.order), seed, epoch);
    }

    /// Starts an epoch: brings every thread's copies up to date and releases the workers into
    /// its first step.
    pub fn start(&self, job: Job) {
        // The parameters may have been changed through thread 0's copy since the last epoch,
        // and each thread holds the freshest state of its own part of the optimizer.
        drop(self.gather());
        self.broadcast();
        self.shared.abort.store(false, Ordering::Relaxed);
        *lock(&self.shared.job) = Some(job);
        self.shared.start.wait();
    }

    /// Thread 0's part of step `b` of `job`; returns once every thread has finished the step.
    pub fn step(&self, job: &Job, b: u64) -> StepOutcome {
        let shared = &*self.shared;
        let (batch, loss) = step(shared, job, b, 0).expect("thread 0 does not abort itself");
        let finite = shared.finite.iter().all(|f| f.load(Ordering::Relaxed)) && loss.is_finite();
        StepOutcome {
            batch,
            loss,
            finite,
        }
    }

    /// Stops the workers' current epoch after the step they are in (call after a step, only if
    /// another step of the epoch follows).
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

/// The samples `[lo, hi)` of a batch of `batch` that thread `t` of `threads` trains on.
fn bounds(batch: usize, threads: usize, t: usize) -> (usize, usize) {
    let r = part_range(batch, t, threads);
    (r.start, r.end)
}

/// Thread `t`'s share of the batch, which weighs its gradients and loss.
fn weight(batch: usize, threads: usize, t: usize) -> f32 {
    let (lo, hi) = bounds(batch, threads, t);
    (hi - lo) as f32 / batch.max(1) as f32
}

/// Floats of gradient combined per chunk (16 KiB: the chunk stays in L1 while it is summed).
const REDUCE_CHUNK: usize = 4096;

/// Step `b` of `job` on thread `t`: phases A, B and C with the barriers between them. Returns
/// the batch's size and mean loss, or `None` if the epoch was aborted before this step's update.
fn step<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    job: &Job,
    b: u64,
    t: usize,
) -> Option<(usize, f32)> {
    let threads = shared.threads;
    let batch = shard(shared, job, b, t);
    shared.step.wait();
    if shared.abort.load(Ordering::Relaxed) {
        return None;
    }
    // Read between the barriers: after the next one, the other threads go on to the next
    // step's losses.
    let loss = (0..threads)
        .map(|u| {
            weight(batch, threads, u) * f32::from_bits(shared.losses[u].load(Ordering::Relaxed))
        })
        .sum::<f32>();
    let lr = job.schedule.lr(job.lr, job.step + (b - job.first));
    let finite = if threads == 1 {
        let mut optimizer = lock(&shared.optimizers[0]);
        optimizer.step::<Simd>(&mut write(&shared.replicas[0]), &read(&shared.grads[0]), lr)
    } else {
        update_part(shared, batch, t, lr)
    };
    shared.finite[t].store(finite, Ordering::Relaxed);
    shared.step.wait();
    if threads > 1 && shared.finite.iter().all(|f| f.load(Ordering::Relaxed)) {
        // Phase C: take the other threads' fresh parts.
        let mut mine = write(&shared.replicas[t]);
        for (u, published) in shared.published.iter().enumerate() {
            if u != t {
                copy_part(&mut **mine, &read(published), u, threads);
            }
        }
    }
    Some((batch, loss))
}

/// Phase B on thread `t` of several: reduce and update its part, and publish it.
fn update_part<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    batch: usize,
    t: usize,
    lr: f32,
) -> bool {
    let threads = shared.threads;
    let mut sum = lock(&shared.sums[t]);
    {
        // One pass over the part: sum = w0·g0 + w1·g1 + …, in thread order, a cache-sized
        // chunk at a time.
        let grads: [Option<RwLockReadGuard<'_, Box<N>>>; B] =
            core::array::from_fn(|u| (u < threads).then(|| read(&shared.grads[u])));
        for i in 0..N::TENSORS {
            let r = part_range(sum.tensor(i).len(), t, threads);
            let start = r.start;
            for (c, chunk) in sum.tensor_mut(i)[r].chunks_mut(REDUCE_CHUNK).enumerate() {
                let at = start + c * REDUCE_CHUNK;
                for (u, g) in grads.iter().enumerate().take(threads) {
                    let (w, g) = (
                        weight(batch, threads, u),
                        &g.as_ref().expect("a guard").tensor(i)[at..],
                    );
                    if u == 0 {
                        chunk.iter_mut().zip(g).for_each(|(s, &g)| *s = w * g);
                    } else {
                        chunk.iter_mut().zip(g).for_each(|(s, &g)| *s += w * g);
                    }
                }
            }
        }
    }
    let mut optimizer = lock(&shared.optimizers[t]);
    let clip = optimizer.clip_grad_norm();
    let scale = if clip > 0.0 {
        // The norm is global: every thread publishes its part's share, then all agree.
        let squares = (0..N::TENSORS)
            .map(|i| {
                let part = &sum.tensor(i)[part_range(sum.tensor(i).len(), t, threads)];
                Simd::run(crate::kernels::SumSquares(part))
            })
            .sum::<f32>();
        shared.norms[t].store(squares.to_bits(), Ordering::Relaxed);
        shared.step.wait();
        let norm = libm::sqrtf(
            shared
                .norms
                .iter()
                .map(|n| f32::from_bits(n.load(Ordering::Relaxed)))
                .sum(),
        );
        norm.is_finite().then(|| (clip / (norm + 1e-6)).min(1.0))
    } else {
        Some(1.0)
    };
    let Some(scale) = scale else {
        return false;
    };
    optimizer.begin_step();
    let mut mine = write(&shared.replicas[t]);
    let update = PartUpdate {
        lr,
        grad_scale: scale,
        part: t,
        parts: threads,
    };
    let finite = optimizer.update_part::<Simd>(&mut mine, &sum, &update);
    copy_part(&mut **write(&shared.published[t]), &mine, t, threads);
    finite
}

/// Phase A for thread `t`: loads its shard of batch `b` and computes its gradients and loss.
/// Returns the batch's size.
fn shard<N: Network, const B: usize>(shared: &Shared<N, B>, job: &Job, b: u64, t: usize) -> usize {
    let order = read(&shared.order);
    let start = b as usize * job.batch;
    let indices = &order[start..(start + job.batch).min(order.len())];
    let (lo, hi) = bounds(indices.len(), shared.threads, t);
    let mut ws = lock(&shared.workspaces[t]);
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
    let params = read(&shared.replicas[t]);
    let mut grads = write(&shared.grads[t]);
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

/// A worker's life: wait for an epoch, run its part of every step in lockstep, repeat.
fn worker<N: Network, const B: usize>(shared: &Shared<N, B>, t: usize) {
    WORKER.with(|w| w.set(true));
    loop {
        shared.start.wait();
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let job = lock(&shared.job).clone().expect("an epoch to run");
        for b in job.first..job.batches {
            if step(shared, &job, b, t).is_none() {
                break;
            }
        }
    }
}
