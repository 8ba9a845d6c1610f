//! Data-parallel training: a team of threads that split each step, in lockstep, over one copy
//! of the parameters and the optimizer state.
//!
//! Plain algorithm, for every step with T threads (the caller's is thread 0):
//!
//! ```text
//! phase A, every thread t:  load its shard of the batch (samples [t·n/T, (t+1)·n/T)),
//!                           forward, loss, and the backward pass's input gradients
//!                           → every layer's dz and input, in its own workspace
//! barrier
//! phase B, every thread t:  for its rows R_t of every layer: the weight and bias gradients,
//!                           summed over every thread's shard in shard order, then the
//!                           optimizer's update of those rows, one pass while they are in
//!                           cache
//! barrier
//! ```
//!
//! Nothing is copied or reduced between threads: phase A's data stays where it was written and
//! phase B reads it; each parameter is updated once, by the thread that owns its row, in the
//! one copy every thread reads in the next phase A. The sums over the batch run over the samples
//! in order whatever the split, so results are bit-for-bit reproducible for a given thread count
//! (and equal across thread counts when the shards are whole vectors long, as with batch 64 on
//! 1, 2 or 4 threads).
//!
//! Batch normalization needs the statistics of the whole batch in the middle of the forward
//! pass; a team does not split that, so a network with batch norms trains on one thread
//! (`Team::new` refuses more). Its weight and bias are then updated in phase B after the
//! dense layers' rows, and its running statistics after the step, while the thread is alone
//! with the model.
//!
//! With gradient clipping the norm must be known before any update: phase B then stores the
//! gradients of its rows, the threads add up their parts of the squared norm (barrier), thread 0
//! starts the optimizer's step with the clipping factor (barrier), and each thread updates its
//! rows (barrier).
//!
//! Contention. When another process keeps a core busy, a thread that shares it is descheduled
//! for milliseconds and every barrier waits for it. Thread 0 then parks the workers and runs
//! every thread's part of each step itself, in the same order (the same bits), trying the team
//! again now and then: `pace` says when, `barrier` is where they wait.
//!
//! Sharing. Each workspace sits behind its own lock, written by its thread in phase A and read
//! by all in phase B. The parameters and the optimizer state are written in phase B by disjoint
//! row ranges and read by all in phase A: `Model` holds them, and its two `unsafe` accessors
//! state the phase discipline the barriers guarantee. The workers are created with the run and
//! live as long as it does; between epochs they wait on a barrier. Nothing is allocated per
//! step or per epoch.
#![deny(unsafe_code)]

mod barrier;
mod pace;

use std::prelude::rust_2024::*;

use crate::data::augment::{Augment, AugmentError, Warper};
use crate::data::batch::{derived_rng, stream};
use crate::data::dataset::{Rows as DataRows, SharedData};
use crate::kernels::{
    Backend, MAX_SHARDS, STATES, Shard, Simd, SumSquares, Update, WeightGradients,
};
use crate::layers::Dropout;
use crate::model::{Network, Workspace, load_f32_batch, load_u8_batch, load_u8_images};
use crate::optim::{AnyOptimizer, Optimizer, Rule, Schedule, clip_scale_of};

use crate::step::forward_loss;
use barrier::{Gate, SpinBarrier};
pub use pace::Pacing;
use pace::{Pace, Plan};
use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most threads a team has: one shard of the batch each.
pub const MAX_THREADS: usize = MAX_SHARDS;

/// Why a network with batch normalization trains on one thread.
pub const BATCH_NORM_THREADS: &str = "1 for a network with batch normalization (its statistics \
     are taken over the whole batch, which the threads would split)";

/// The parameters, the optimizer with its state, and (for gradient clipping) the gradients:
/// one copy, shared by the team's threads in phases.
///
/// During an epoch nothing takes `&mut` to any of it. Phase A builds shared references (the
/// parameters for the passes, the optimizer's configuration for the step's rule); phase B
/// writes each thread's rows through raw pointers to the blocks' first floats, taken when the
/// epoch starts, while no reference to the model exists. The step count is kept here during an
/// epoch ([`Model::t`]) and written back to the optimizer when it ends, so counting steps needs
/// no `&mut` either.
pub(crate) struct Model<N> {
    params: Box<UnsafeCell<N>>,
    grads: Box<UnsafeCell<N>>,
    optimizer: UnsafeCell<AnyOptimizer<N>>,
    /// The first floats of the parameters, the gradients and the state blocks (null for a
    /// state block the optimizer does not keep), for phase B's rows.
    blocks: UnsafeCell<[*mut f32; 2 + STATES]>,
    /// The optimizer's step count during an epoch.
    t: std::sync::atomic::AtomicU64,
}

// SAFETY: the threads reach the model only through `read`, `exclusive` and `rows_mut`, whose
// contracts (phases separated by barriers, disjoint rows, exclusive access between epochs)
// rule out data races; the barriers' acquire/release orderings publish each phase's writes to
// the next phase's readers. The raw pointers point into the model's own heap blocks.
#[allow(unsafe_code)]
unsafe impl<N: Send + Sync> Sync for Model<N> {}
// SAFETY: as for `Sync`: the model owns what the pointers point to, so moving it to another
// thread moves the blocks with it.
#[allow(unsafe_code)]
unsafe impl<N: Send + Sync> Send for Model<N> {}

/// One thread's rows of the blocks and of the optimizer's state, mutably (empty for a state
/// block the optimizer does not keep).
struct Rows<'a> {
    params: &'a mut [f32],
    grads: &'a mut [f32],
    first: &'a mut [f32],
    second: &'a mut [f32],
    third: &'a mut [f32],
}

#[allow(unsafe_code)]
fn cell<T>(b: Box<T>) -> Box<UnsafeCell<T>> {
    // SAFETY: UnsafeCell<T> has the same layout as T (repr(transparent)).
    unsafe { Box::from_raw(Box::into_raw(b).cast::<UnsafeCell<T>>()) }
}

impl<N: Network> Model<N> {
    fn new(params: Box<N>, optimizer: AnyOptimizer<N>) -> Self {
        let t = optimizer.steps_taken();
        let model = Self {
            params: cell(params),
            grads: cell(N::zeroed_box()),
            optimizer: UnsafeCell::new(optimizer),
            blocks: UnsafeCell::new([std::ptr::null_mut(); 2 + STATES]),
            t: std::sync::atomic::AtomicU64::new(t),
        };
        // SAFETY: the model is new: nothing else can reach it.
        #[allow(unsafe_code)]
        unsafe {
            model.begin_epoch()
        };
        model
    }

    /// Takes the raw block pointers and the step count for an epoch.
    ///
    /// # Safety
    /// The caller must have exclusive access (the workers idle).
    #[allow(unsafe_code)]
    unsafe fn begin_epoch(&self) {
        // SAFETY: exclusive access (the caller's contract): these are the only references.
        unsafe {
            let optimizer = &mut *self.optimizer.get();
            self.t.store(optimizer.steps_taken(), Ordering::Relaxed);
            let [first, second, third] = optimizer.state_mut();
            let base = |s: &mut [f32]| {
                if s.is_empty() {
                    std::ptr::null_mut()
                } else {
                    s.as_mut_ptr()
                }
            };
            *self.blocks.get() = [
                (*self.params.get()).flat_mut().as_mut_ptr(),
                (*self.grads.get()).flat_mut().as_mut_ptr(),
                base(first),
                base(second),
                base(third),
            ];
        }
    }

    /// Writes the step count back to the optimizer when an epoch ends.
    ///
    /// # Safety
    /// The caller must have exclusive access (the workers idle).
    #[allow(unsafe_code)]
    unsafe fn end_epoch(&self) {
        // SAFETY: exclusive access (the caller's contract).
        unsafe { (*self.optimizer.get()).set_steps_taken(self.t.load(Ordering::Relaxed)) }
    }

    /// The parameters and the optimizer, for reading.
    ///
    /// # Safety
    /// No thread may write them while the borrow lives: call in phase A or while the workers
    /// are idle (the step count, which phase A changes, lives in an atomic outside them).
    #[allow(unsafe_code)]
    unsafe fn read(&self) -> (&N, &AnyOptimizer<N>) {
        // SAFETY: no writer exists while the borrow lives (the caller's contract).
        unsafe { (&*self.params.get(), &*self.optimizer.get()) }
    }

    /// The parameters and the optimizer, mutably.
    ///
    /// # Safety
    /// The caller must have exclusive access (the workers idle), and call
    /// [`Model::begin_epoch`] again before the next epoch.
    #[allow(unsafe_code, clippy::mut_from_ref)]
    unsafe fn exclusive(&self) -> (&mut N, &mut AnyOptimizer<N>) {
        // SAFETY: exclusive access (the caller's contract).
        unsafe {
            (*self.optimizer.get()).set_steps_taken(self.t.load(Ordering::Relaxed));
            (&mut *self.params.get(), &mut *self.optimizer.get())
        }
    }

    /// The elements `range` of the parameters, the gradients and the optimizer's state.
    ///
    /// # Safety
    /// In phase B only, when no reference to the model exists and every thread's ranges are
    /// disjoint from every other's.
    #[allow(unsafe_code, clippy::mut_from_ref)]
    unsafe fn rows_mut(&self, range: Range<usize>) -> Rows<'_> {
        assert!(
            range.start <= range.end && range.end <= N::LEN,
            "rows past the block"
        );
        // SAFETY: every non-null pointer is the first float of a block of N::LEN floats (taken
        // by `begin_epoch` from `flat_mut`), `range` lies inside it (asserted), and no other
        // reference to these elements exists while the slices live (the caller's contract).
        unsafe {
            let part = |base: *mut f32| -> &mut [f32] {
                if base.is_null() {
                    &mut []
                } else {
                    std::slice::from_raw_parts_mut(base.add(range.start), range.len())
                }
            };
            let [params, grads, first, second, third] = *self.blocks.get();
            Rows {
                params: part(params),
                grads: part(grads),
                first: part(first),
                second: part(second),
                third: part(third),
            }
        }
    }
}

/// What the threads need to run an epoch; cheap to clone (no allocation).
#[derive(Clone)]
pub(crate) struct Job {
    /// The training data.
    pub data: SharedData,
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
    /// The gradients' global norm is clipped to this (0: no clipping).
    pub clip_grad_norm: f32,
    /// The epoch (from 0), which seeds each sample's augmentation.
    pub epoch: u64,
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

/// What the threads share.
struct Shared<N: Network, const B: usize> {
    threads: usize,
    model: Model<N>,
    workspaces: Vec<RwLock<Box<N::Workspace<B>>>>,
    /// Each thread's shard: (first sample, samples) of the current batch.
    shards: Vec<Mutex<(usize, usize)>>,
    losses: Vec<AtomicU32>,
    finite: Vec<AtomicBool>,
    /// Each thread's share of the squared gradient norm, when clipping.
    norms: Vec<AtomicU32>,
    /// The current step's update, set by thread 0 before phase B.
    rule: Mutex<Option<Rule>>,
    /// The samples trained on (all of the training set, or what a validation split leaves).
    pool: Vec<u32>,
    /// Their order in the current epoch.
    order: RwLock<Vec<u32>>,
    /// Each thread's warper and its shard's warped images (empty without augmentation).
    augmenters: Vec<Mutex<Augmenter>>,
    job: Mutex<Option<Job>>,
    start: Barrier,
    step: SpinBarrier,
    /// Where the workers wait while thread 0 runs steps alone.
    gate: Gate,
    abort: AtomicBool,
    shutdown: AtomicBool,
}

/// A thread's augmentation: the warper and the images of its shard, warped.
struct Augmenter {
    warper: Box<Warper>,
    images: Vec<u8>,
}

/// The parameters, the optimizer and the threads that train them.
pub(crate) struct Team<N: Network, const B: usize> {
    shared: Arc<Shared<N, B>>,
    workers: Vec<JoinHandle<()>>,
    /// Whether the next steps run on a team or on thread 0 alone.
    pace: Pace,
    /// Whether `abort` released the parked workers from the epoch.
    released: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a training thread panicked")
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().expect("a training thread panicked")
}

impl<N: Network, const B: usize> Team<N, B> {
    /// A team of `threads` threads (the caller counts as one) around `params` and `optimizer`,
    /// with every buffer allocated here, training on the samples `pool` of a training set of
    /// square images, augmented per sample if `augment` is on.
    pub fn new(
        threads: usize,
        params: Box<N>,
        optimizer: AnyOptimizer<N>,
        pool: Vec<u32>,
        augment: Augment,
    ) -> Result<Self, AugmentError> {
        assert!(
            (1..=MAX_THREADS.min(B)).contains(&threads),
            "threads must be in 1..={}",
            MAX_THREADS.min(B)
        );
        assert!(N::BATCH_NORMS == 0 || threads == 1, "{BATCH_NORM_THREADS}");
        let shared = Arc::new(Shared {
            threads,
            model: Model::new(params, optimizer),
            workspaces: (0..threads)
                .map(|_| RwLock::new(N::Workspace::<B>::zeroed_box()))
                .collect(),
            shards: (0..threads).map(|_| Mutex::new((0, 0))).collect(),
            losses: (0..threads).map(|_| AtomicU32::new(0)).collect(),
            finite: (0..threads).map(|_| AtomicBool::new(true)).collect(),
            norms: (0..threads).map(|_| AtomicU32::new(0)).collect(),
            rule: Mutex::new(None),
            order: RwLock::new(pool.clone()),
            pool,
            augmenters: augmenters::<N, B>(threads, augment)?,
            job: Mutex::new(None),
            start: Barrier::new(threads),
            step: SpinBarrier::new(threads),
            gate: Gate::new(),
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
        Ok(Self {
            shared,
            workers,
            pace: Pace::new(threads, Pacing::from_env()),
            released: false,
        })
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Training samples (the length of the sample order).
    pub fn train_len(&self) -> usize {
        read(&self.shared.order).len()
    }

    /// The parameters and the optimizer (its step count up to date). Called by thread 0
    /// between steps or between epochs: then no thread writes them.
    pub fn model(&self) -> (&N, &AnyOptimizer<N>) {
        // SAFETY: only the team's owner, thread 0, calls this, outside any step of its own;
        // the workers are idle or in phase A, where nobody writes the model.
        #[allow(unsafe_code)]
        unsafe {
            self.shared.model.read()
        }
    }

    /// Optimizer steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.shared.model.t.load(Ordering::Relaxed)
    }

    /// The parameters and the optimizer, mutably, between epochs (the workers are idle:
    /// `&mut self` means no epoch is running).
    pub fn model_mut(&mut self) -> (&mut N, &mut AnyOptimizer<N>) {
        // SAFETY: no epoch runs (train_epoch borrows the team mutably for its whole length and
        // leaves the workers waiting at the start barrier), so no other thread touches it;
        // `start` calls `begin_epoch` again before the next one.
        #[allow(unsafe_code)]
        unsafe {
            self.shared.model.exclusive()
        }
    }

    /// Reshuffles the sample order for `epoch` of the run seeded `seed`: a permutation of the
    /// positions in the pool (the pool itself when it is the whole training set).
    pub fn shuffle(&mut self, seed: u64, epoch: u64) {
        let mut order = self
            .shared
            .order
            .write()
            .expect("a training thread panicked");
        crate::data::shuffle(&mut order, seed, epoch);
        for o in order.iter_mut() {
            *o = self.shared.pool[*o as usize];
        }
    }

    /// Starts an epoch: releases the workers into its first step.
    pub fn start(&mut self, job: Job) {
        // SAFETY: the workers are idle (`&mut self`: no epoch runs).
        #[allow(unsafe_code)]
        unsafe {
            self.shared.model.begin_epoch()
        };
        *lock(&self.shared.job) = Some(job);
        self.shared.start.wait();
        // Only now: a worker leaving an aborted epoch may not have seen the flag until it
        // reached the start barrier. The workers read it after the step's first barrier,
        // which thread 0 reaches after this.
        self.shared.abort.store(false, Ordering::Relaxed);
    }

    /// Thread 0's part of step `b` of `job` (or all of it, when the team runs alone: see
    /// [`pace`]); returns once every thread has finished the step.
    pub fn step(&mut self, job: &Job, b: u64) -> StepOutcome {
        let shared = &*self.shared;
        let plan = self.pace.plan(b + 1 < job.batches);
        let (parts, barrier) = match plan {
            Plan::Alone => (0..shared.threads, None),
            Plan::Resume => {
                shared.gate.resume(Some(b));
                (0..1, Some(&shared.step))
            }
            Plan::Team { park_after } => {
                if park_after {
                    shared.gate.park_after(job.step + (b - job.first));
                }
                (0..1, Some(&shared.step))
            }
        };
        let (batch, loss, waited) =
            step(shared, job, b, parts, barrier).expect("thread 0 does not abort itself");
        self.pace.record(plan, waited);
        if N::BATCH_NORMS > 0 {
            let ws = read(&shared.workspaces[0]);
            // SAFETY: a team with batch norms has one thread (`new` asserts it), so between
            // its steps nothing else touches the model; `begin_epoch` takes the block
            // pointers again, as `exclusive` requires.
            #[allow(unsafe_code)]
            unsafe {
                let (net, _) = shared.model.exclusive();
                net.update_running_stats(&ws, batch);
                shared.model.begin_epoch();
            }
        }
        let finite = shared.finite.iter().all(|f| f.load(Ordering::Relaxed)) && loss.is_finite();
        StepOutcome {
            batch,
            loss,
            finite,
        }
    }

    /// Stops the workers' current epoch after the step they are in (call after a step, only if
    /// another step of the epoch follows).
    pub fn abort(&mut self) {
        if self.pace.alone() {
            self.shared.gate.resume(None);
            self.released = true;
        } else {
            self.shared.abort.store(true, Ordering::Relaxed);
            self.shared.step.wait();
        }
    }

    /// How the team chooses between running as a team and on one thread, from the next
    /// epoch on.
    pub fn set_pacing(&mut self, pacing: Pacing) {
        self.pace.set_pacing(pacing);
    }

    /// Steps that thread 0 ran alone so far, the other threads being slower than doing their
    /// parts itself (see [`pace`]).
    pub fn steps_alone(&self) -> u64 {
        self.pace.steps_alone()
    }

    /// Ends an epoch (after its last step, or after `abort`): the workers are idle again.
    pub fn finish(&mut self) {
        if self.pace.alone() && !std::mem::take(&mut self.released) {
            self.shared.gate.resume(None);
        }
        self.pace.end_epoch();
        // SAFETY: the workers have left the epoch's steps and wait at the start barrier.
        #[allow(unsafe_code)]
        unsafe {
            self.shared.model.end_epoch()
        };
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

/// Parts `parts` of step `b` of `job`, on one thread: phases A and B, with the team's
/// `barrier` between them (`None` when one thread runs every part). Returns the batch's size,
/// its mean loss and the time spent waiting at the barrier, or `None` if the epoch was aborted
/// before this step's update.
fn step<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    job: &Job,
    b: u64,
    parts: Range<usize>,
    barrier: Option<&SpinBarrier>,
) -> Option<(usize, f32, Duration)> {
    let mut waited = Duration::ZERO;
    let mut sync = || {
        if let Some(barrier) = barrier {
            let start = Instant::now();
            barrier.wait();
            waited += start.elapsed();
        }
    };
    let step = job.step + (b - job.first);
    let lr = job.schedule.lr(job.lr, step);
    let mut batch = 0;
    for t in parts.clone() {
        batch = phase_a(shared, job, b, t);
        prefetch_shard(shared, job, b + 1, t);
    }
    let clip = job.clip_grad_norm;
    if parts.contains(&0) && clip == 0.0 {
        begin_step(shared, lr, 1.0);
    }
    sync();
    if shared.abort.load(Ordering::Relaxed) {
        return None;
    }
    // Read between the barriers: after the next one, the other threads go on to the next
    // step's losses.
    let loss = (0..shared.threads)
        .map(|u| {
            let samples = lock(&shared.shards[u]).1;
            samples as f32 / batch as f32 * f32::from_bits(shared.losses[u].load(Ordering::Relaxed))
        })
        .sum::<f32>();
    if clip == 0.0 {
        // Alone, the rows of every part in one pass (whole tiles, each input read once): a
        // gradient element sums the same samples in the same order whichever rows go with
        // it, so the bits are those of the parts.
        let (part, of) = if parts.len() > 1 {
            (0, 1)
        } else {
            (parts.start, shared.threads)
        };
        let finite = phase_b(shared, part, of, None);
        for t in parts {
            shared.finite[t].store(finite, Ordering::Relaxed);
        }
    } else {
        clipped_phase_b(shared, parts, lr, clip, &mut sync);
    }
    sync();
    Some((batch, loss, waited))
}

/// Thread 0 counts the optimizer's step and publishes its rule.
fn begin_step<N: Network, const B: usize>(shared: &Shared<N, B>, lr: f32, grad_scale: f32) {
    let t = shared.model.t.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: called by thread 0 in phase A (or between the barriers of a clipped step), where
    // nobody writes the model.
    #[allow(unsafe_code)]
    let (_, optimizer) = unsafe { shared.model.read() };
    *lock(&shared.rule) = Some(optimizer.rule(t, lr, grad_scale));
}

/// Phase A for thread `t`: loads its shard of batch `b`, runs forward, loss and the input
/// gradients. Returns the batch's size.
fn phase_a<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    job: &Job,
    b: u64,
    t: usize,
) -> usize {
    let order = read(&shared.order);
    let indices = batch_indices(&order, job, b);
    let batch = indices.len();
    let range = part_range_exact(batch, t, shared.threads);
    *lock(&shared.shards[t]) = (range.start, range.len());
    let mut ws = shared.workspaces[t]
        .write()
        .expect("a training thread panicked");
    if range.is_empty() {
        shared.losses[t].store(0f32.to_bits(), Ordering::Relaxed);
        return batch;
    }
    let samples = &indices[range.clone()];
    match (shared.augmenters.get(t), job.data.rows()) {
        (Some(augmenter), DataRows::U8(pixels)) => {
            let Augmenter { warper, images } = &mut *lock(augmenter);
            for (j, &i) in samples.iter().enumerate() {
                let n = N::INPUT;
                let (src, dst) = (&pixels[i as usize * n..][..n], &mut images[j * n..][..n]);
                warper.warp(src, dst, job.seed, job.epoch, u64::from(i));
            }
            load_u8_images::<_, Simd>(&mut **ws, images, job.data.labels(), samples);
        }
        (_, rows) => load_rows::<_, Simd>(&mut **ws, rows, job.data.labels(), samples),
    }
    let step = job.step + (b - job.first);
    // Thread 0 draws from the same stream as a single-threaded run.
    let mut rng = derived_rng(job.seed, stream::DROPOUT + ((t as u64) << 8), step);
    let mut dropout = (job.dropout > 0.0)
        .then(|| Dropout::new(job.dropout, &mut rng).expect("a checked probability"));
    // SAFETY: phase A: nobody writes the parameters (thread 0's begin_step comes after this
    // borrow ends and touches only the optimizer).
    #[allow(unsafe_code)]
    let (net, _) = unsafe { shared.model.read() };
    let loss = forward_loss::<Simd, N, B>(net, &mut ws, range.len(), batch, dropout.as_mut());
    net.backward_inputs::<Simd, B>(&mut ws, range.len());
    shared.losses[t].store(loss.to_bits(), Ordering::Relaxed);
    batch
}

/// The samples of batch `b` in the epoch's `order` (none past its end).
fn batch_indices<'a>(order: &'a [u32], job: &Job, b: u64) -> &'a [u32] {
    let start = (b as usize * job.batch).min(order.len());
    &order[start..(start + job.batch).min(order.len())]
}

/// Starts loading thread `t`'s samples of batch `b` (if the epoch has one) into the caches:
/// drawn from random places of the training set, they miss the caches otherwise. A 1-thread
/// MNIST epoch spent 6 % of its time gathering batches without this.
fn prefetch_shard<N: Network, const B: usize>(shared: &Shared<N, B>, job: &Job, b: u64, t: usize) {
    let order = read(&shared.order);
    let indices = batch_indices(&order, job, b);
    for &i in &indices[part_range_exact(indices.len(), t, shared.threads)] {
        job.data.rows().prefetch_row(i as usize, N::INPUT);
    }
}

/// Loads the samples at `indices` of a dataset's rows, bytes or floats, into the workspace.
pub(crate) fn load_rows<W: Workspace, K: Backend>(
    ws: &mut W,
    rows: DataRows<'_>,
    labels: &[u8],
    indices: &[u32],
) {
    match rows {
        DataRows::U8(pixels) => load_u8_batch::<W, K>(ws, pixels, labels, indices),
        DataRows::F32(rows) => load_f32_batch::<W, K>(ws, rows, labels, indices),
    }
}

/// One [`Augmenter`] per thread if `augment` is on (images are `N::INPUT` pixels, square),
/// none otherwise.
fn augmenters<N: Network, const B: usize>(
    threads: usize,
    augment: Augment,
) -> Result<Vec<Mutex<Augmenter>>, AugmentError> {
    if !augment.is_on() {
        return Ok(Vec::new());
    }
    let side = N::INPUT.isqrt();
    let (rows, cols) = if side * side == N::INPUT {
        (side, side)
    } else {
        (1, N::INPUT)
    };
    (0..threads)
        .map(|_| {
            Ok(Mutex::new(Augmenter {
                warper: Box::new(Warper::new(augment, rows, cols)?),
                images: vec![0; B * N::INPUT],
            }))
        })
        .collect()
}

/// Part `t` of `n` items split into `parts` nearly equal runs, in order.
fn part_range_exact(n: usize, t: usize, parts: usize) -> Range<usize> {
    t * n / parts..(t + 1) * n / parts
}

/// Phase B for part `t` of `of`: the weight and bias gradients of its rows of every layer,
/// summed over every thread's shard, applied with the step's rule (`store`: none — store them
/// in the gradients instead, for clipping). Returns whether they were finite.
fn phase_b<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    t: usize,
    of: usize,
    store: Option<()>,
) -> bool {
    let threads = shared.threads;
    let workspaces: [Option<RwLockReadGuard<'_, Box<N::Workspace<B>>>>; MAX_THREADS] =
        std::array::from_fn(|u| (u < threads).then(|| read(&shared.workspaces[u])));
    let shards: [(usize, usize); MAX_THREADS] = std::array::from_fn(|u| {
        if u < threads {
            *lock(&shared.shards[u])
        } else {
            (0, 0)
        }
    });
    let rule = *lock(&shared.rule);
    let mut finite = true;
    for l in 0..N::LAYERS {
        let (inp, out) = N::layer_dims(l);
        let rows = part_range_exact(out, t, of);
        if rows.is_empty() {
            continue;
        }
        let empty = Shard {
            dz: &[],
            x_rows: &[],
            batch: 0,
        };
        let mut parts = [empty; MAX_THREADS];
        for (u, part) in parts.iter_mut().enumerate().take(threads) {
            let ws = workspaces[u].as_ref().expect("a workspace of the team");
            let n = shards[u].1;
            *part = Shard {
                dz: &ws.dz(l, n)[rows.start * n..rows.end * n],
                x_rows: ws.x_rows(l, n),
                batch: n,
            };
        }
        let (w, b) = (
            N::tensor_info(2 * l).offset,
            N::tensor_info(2 * l + 1).offset,
        );
        // SAFETY: phase B; this thread's rows of this layer are its own (the rows of every
        // layer are split between the threads by `part_range_exact`), and nobody reads the
        // model until the barrier that ends the phase.
        #[allow(unsafe_code)]
        let (w, b) = unsafe {
            (
                shared
                    .model
                    .rows_mut(w + rows.start * inp..w + rows.end * inp),
                shared.model.rows_mut(b + rows.start..b + rows.end),
            )
        };
        let shards = &parts[..threads];
        finite &= weight_gradients(rows.len(), inp, shards, w, b, store, rule.as_ref());
    }
    if N::BATCH_NORMS > 0 {
        let ws = workspaces[0].as_ref().expect("a workspace of the team");
        finite &= batch_norm_phase_b(shared, &***ws, store, rule.as_ref());
    }
    finite
}

/// Phase B of a team with batch norms (one thread): their weights and biases, updated by
/// `rule` from the gradients in `ws` (`store`: stored in the gradients instead).
fn batch_norm_phase_b<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    ws: &N::Workspace<B>,
    store: Option<()>,
    rule: Option<&Rule>,
) -> bool {
    let mut finite = true;
    for k in 0..N::BATCH_NORMS {
        let (dweight, dbias) = ws.batch_norm_grads(k);
        let at = 2 * N::LAYERS + 2 * k;
        for (t, grads) in [(at, dweight), (at + 1, dbias)] {
            // SAFETY: phase B of a team of one thread: these elements are its own.
            #[allow(unsafe_code)]
            let rows = unsafe { shared.model.rows_mut(N::tensor_info(t).range()) };
            match (store, rule) {
                (Some(()), _) => rows.grads.copy_from_slice(grads),
                (None, Some(rule)) => {
                    finite &= Simd::run(Update {
                        rule,
                        params: rows.params,
                        grads,
                        first: rows.first,
                        second: rows.second,
                        third: rows.third,
                    })
                }
                (None, None) => unreachable!("thread 0 begins the step before phase B"),
            }
        }
    }
    finite
}

/// Rows `w` and `b` of a layer's weight and bias gradients, summed over `shards`: stored in
/// the gradients (`store`), or stored then applied by `rule` in one pass over the rows while
/// they are in cache. Applying each tile of gradients straight from the product's registers
/// gave the same bits, but measured slower: the Adam update of a whole step took 125 µs fused
/// against 64 µs as passes (Zen5 AVX-512, `constnet bench`), so the kernels no longer offer
/// it. Tried again with each tile's parameter and moment rows prefetched one tile ahead: a
/// 1-thread epoch took 0.37–0.39 s against 0.33 s. Returns whether the gradients (and
/// updated parameters) were finite.
fn weight_gradients(
    out: usize,
    inp: usize,
    shards: &[Shard<'_>],
    w: Rows<'_>,
    b: Rows<'_>,
    store: Option<()>,
    rule: Option<&Rule>,
) -> bool {
    Simd::run(WeightGradients {
        out,
        inp,
        shards,
        dw: &mut *w.grads,
        db: &mut *b.grads,
        mode: crate::kernels::Mode::Overwrite,
    });
    let mut finite = true;
    if store.is_none() {
        let rule = rule.expect("thread 0 begins the step before phase B");
        for r in [w, b] {
            finite &= Simd::run(Update {
                rule,
                params: r.params,
                grads: r.grads,
                first: r.first,
                second: r.second,
                third: r.third,
            });
        }
    }
    finite
}

/// Phase B with gradient clipping for parts `parts`: store their rows' gradients, agree on
/// the global norm (`sync` waits for the other threads), then update the rows. Sets each
/// part's finiteness.
fn clipped_phase_b<N: Network, const B: usize>(
    shared: &Shared<N, B>,
    parts: Range<usize>,
    lr: f32,
    clip: f32,
    sync: &mut impl FnMut(),
) {
    let threads = shared.threads;
    for t in parts.clone() {
        phase_b(shared, t, threads, Some(()));
        let mut squares = 0.0;
        for_own_rows::<N>(t, threads, |range| {
            // SAFETY: phase B; these rows are this part's own.
            #[allow(unsafe_code)]
            let rows = unsafe { shared.model.rows_mut(range) };
            squares += Simd::run(SumSquares(rows.grads));
        });
        shared.norms[t].store(f32::to_bits(squares), Ordering::Relaxed);
    }
    sync();
    let total = shared
        .norms
        .iter()
        .map(|n| f32::from_bits(n.load(Ordering::Relaxed)))
        .sum();
    let Some(scale) = clip_scale_of(total, clip) else {
        sync();
        for t in parts {
            shared.finite[t].store(false, Ordering::Relaxed);
        }
        return;
    };
    if parts.contains(&0) {
        begin_step(shared, lr, scale);
    }
    sync();
    let rule = lock(&shared.rule).expect("thread 0 began the step");
    for t in parts {
        let mut finite = true;
        for_own_rows::<N>(t, threads, |range| {
            // SAFETY: phase B; these rows are this part's own.
            #[allow(unsafe_code)]
            let rows = unsafe { shared.model.rows_mut(range) };
            finite &= Simd::run(Update {
                rule: &rule,
                params: rows.params,
                grads: rows.grads,
                first: rows.first,
                second: rows.second,
                third: rows.third,
            });
        });
        shared.finite[t].store(finite, Ordering::Relaxed);
    }
}

/// Calls `f` with each range of the flat block that holds thread `t`'s rows (weights and
/// biases of every layer).
fn for_own_rows<N: Network>(t: usize, threads: usize, mut f: impl FnMut(Range<usize>)) {
    for l in 0..N::LAYERS {
        let (inp, out) = N::layer_dims(l);
        let rows = part_range_exact(out, t, threads);
        let (w, b) = (
            N::tensor_info(2 * l).offset,
            N::tensor_info(2 * l + 1).offset,
        );
        f(w + rows.start * inp..w + rows.end * inp);
        f(b + rows.start..b + rows.end);
    }
    // Batch norms' weights and biases: thread 0's (the only thread of such a team).
    if t == 0 {
        for i in 2 * N::LAYERS..N::PARAM_TENSORS {
            f(N::tensor_info(i).range());
        }
    }
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
    let mut parks = 0;
    loop {
        shared.start.wait();
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let job = lock(&shared.job).clone().expect("an epoch to run");
        let mut b = job.first;
        while b < job.batches {
            if step(shared, &job, b, t..t + 1, Some(&shared.step)).is_none() {
                break;
            }
            b = if shared.gate.parks_after(job.step + (b - job.first)) {
                match shared.gate.wait(&mut parks) {
                    Some(resume_at) => resume_at,
                    None => break,
                }
            } else {
                b + 1
            };
        }
    }
}
