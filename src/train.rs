//! Training on MNIST-style data: epochs of shuffled batches, evaluation, progress reports.
//!
//! A [`Run`] owns everything a training run needs (parameters, gradients, optimizer state, the
//! batch workspaces, the sample order and the worker threads), all allocated once in
//! [`Run::new`]. An epoch then loads each batch straight from the dataset's bytes into the
//! workspaces and takes a step on every thread ([`crate::parallel`]): nothing is allocated per
//! batch or per epoch.
//!
//! Randomness is derived from the seed per purpose and position ([`crate::data::derived_rng`]):
//! the initial parameters, each epoch's order and each step's dropout mask. A run is therefore
//! bit-for-bit reproducible on the same build and machine.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::atomic_file::write_bytes_atomic;
use crate::data::Split;
use crate::data::batch::{derived_rng, fill_batch, stream};
use crate::format::safetensors::{Entry, copy_f32, decode, encode, tensor_bytes};
use crate::format::{ModelFileError, Problem};
use crate::kernels::Simd;
use crate::layers::Init;
use crate::loss::argmax;
use crate::model::{Network, NetworkView, Workspace};
use crate::optim::{Adam, AdamConfig, AnyOptimizer, Optimizer, Schedule, Sgd, SgdConfig};
use crate::parallel::{Job, StepOutcome, Team};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Samples per training batch: the reference recipe's 64.
pub const BATCH: usize = 64;

/// Which optimizer to train with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerChoice {
    /// SGD with momentum (and optional Nesterov / weight decay).
    Sgd(SgdConfig),
    /// Adam or AdamW.
    Adam(AdamConfig),
}

/// How the learning rate evolves, in epochs (turned into a per-step [`Schedule`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScheduleChoice {
    /// Constant.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: u32,
        /// Factor per decay.
        gamma: f32,
    },
    /// Cosine decay to 0 over the whole run, per step.
    Cosine,
}

impl OptimizerChoice {
    /// Every kind of optimizer with its default hyperparameters, in the order the CLI lists
    /// them: SGD with momentum 0.9, Adam, and AdamW with PyTorch's decay of 0.01.
    pub const ALL: [OptimizerChoice; 3] = [
        OptimizerChoice::Sgd(SgdConfig {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
            clip_grad_norm: 0.0,
        }),
        OptimizerChoice::Adam(AdamConfig::DEFAULT),
        OptimizerChoice::Adam(AdamConfig::ADAMW),
    ];

    /// The kind's lowercase name, which `Display` writes and `FromStr` reads: `sgd`, `adam`,
    /// or `adamw` for Adam with decoupled weight decay.
    pub const fn name(&self) -> &'static str {
        match self {
            OptimizerChoice::Sgd(_) => "sgd",
            OptimizerChoice::Adam(a) if a.decoupled => "adamw",
            OptimizerChoice::Adam(_) => "adam",
        }
    }
}

impl fmt::Display for OptimizerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OptimizerChoice {
    type Err = ParseOptimizerError;

    /// The kind named `name`, with its default hyperparameters (its entry in
    /// [`OptimizerChoice::ALL`]).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or(ParseOptimizerError)
    }
}

/// The name given to [`OptimizerChoice`]'s `FromStr` is none of [`OptimizerChoice::ALL`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptimizerError;

impl fmt::Display for ParseOptimizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = OptimizerChoice::ALL.iter().map(|o| o.name()).collect();
        write!(f, "unknown optimizer, expected one of {}", names.join(", "))
    }
}

impl std::error::Error for ParseOptimizerError {}

impl ScheduleChoice {
    /// Every schedule, in the order the CLI lists them; `step` with its default, ×0.5 every 3
    /// epochs.
    pub const ALL: [ScheduleChoice; 3] = [
        ScheduleChoice::Constant,
        ScheduleChoice::Step {
            every: 3,
            gamma: 0.5,
        },
        ScheduleChoice::Cosine,
    ];

    /// The schedule's lowercase name, which `Display` writes and `FromStr` reads.
    pub const fn name(&self) -> &'static str {
        match self {
            ScheduleChoice::Constant => "constant",
            ScheduleChoice::Step { .. } => "step",
            ScheduleChoice::Cosine => "cosine",
        }
    }
}

impl fmt::Display for ScheduleChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ScheduleChoice {
    type Err = ParseScheduleError;

    /// The schedule named `name`, with its default parameters (its entry in
    /// [`ScheduleChoice::ALL`]).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or(ParseScheduleError)
    }
}

/// The name given to [`ScheduleChoice`]'s `FromStr` is none of [`ScheduleChoice::ALL`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseScheduleError;

impl fmt::Display for ParseScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = ScheduleChoice::ALL.iter().map(|s| s.name()).collect();
        write!(f, "unknown schedule, expected one of {}", names.join(", "))
    }
}

impl std::error::Error for ParseScheduleError {}

/// A training recipe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Passes over the training set.
    pub epochs: u32,
    /// Base learning rate.
    pub lr: f32,
    /// Optimizer.
    pub optimizer: OptimizerChoice,
    /// Learning-rate schedule.
    pub schedule: ScheduleChoice,
    /// Seed of every random choice.
    pub seed: u64,
    /// Dropout probability on hidden activations (0 disables it).
    pub dropout: f32,
    /// Parameter initialisation.
    pub init: Init,
    /// Report a batch line every this many batches.
    pub log_every: u64,
    /// Threads splitting each batch (1: single-threaded). Results are bit-for-bit reproducible
    /// for a given count, and differ in rounding between counts.
    pub threads: usize,
}

impl Default for Config {
    /// The reference recipe: Adam, lr 1e-3, 10 epochs, constant rate, seed 0, PyTorch init.
    fn default() -> Self {
        Self {
            epochs: 10,
            lr: 1e-3,
            optimizer: OptimizerChoice::Adam(AdamConfig::DEFAULT),
            schedule: ScheduleChoice::Constant,
            seed: 0,
            dropout: 0.0,
            init: Init::PyTorch,
            log_every: 100,
            threads: 1,
        }
    }
}

impl fmt::Display for Config {
    /// The recipe in one line, as `constnet train` prints it, e.g. "adam, lr 0.001, constant
    /// schedule, 10 epochs, batch 64, seed 0, 2 threads". `log_every` is not part of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let optimizer = self.optimizer;
        let clip = match optimizer {
            OptimizerChoice::Sgd(s) => {
                let nesterov = if s.nesterov { "nesterov, " } else { "" };
                write!(
                    f,
                    "{optimizer} (momentum {}, {nesterov}weight decay {})",
                    s.momentum, s.weight_decay
                )?;
                s.clip_grad_norm
            }
            OptimizerChoice::Adam(a) => {
                match a.weight_decay {
                    wd if a.decoupled => write!(f, "{optimizer} (weight decay {wd})")?,
                    wd if wd > 0.0 => write!(f, "{optimizer} (L2 {wd})")?,
                    _ => write!(f, "{optimizer}")?,
                }
                a.clip_grad_norm
            }
        };
        write!(f, ", lr {}, {}", self.lr, self.schedule)?;
        match self.schedule {
            ScheduleChoice::Step { every, gamma } => write!(f, " (×{gamma} every {every} epochs)")?,
            ScheduleChoice::Cosine => write!(f, " to 0")?,
            ScheduleChoice::Constant => {}
        }
        write!(
            f,
            " schedule, {} epochs, batch {BATCH}, seed {}",
            self.epochs, self.seed
        )?;
        if self.init != Init::default() {
            write!(f, ", {} init", self.init)?;
        }
        if self.dropout > 0.0 {
            write!(f, ", dropout {}", self.dropout)?;
        }
        if clip > 0.0 {
            write!(f, ", gradient norm clipped to {clip}")?;
        }
        match self.threads {
            1 => write!(f, ", 1 thread"),
            n => write!(f, ", {n} threads"),
        }
    }
}

/// Progress within an epoch.
#[derive(Clone, Copy, Debug)]
pub struct BatchReport {
    /// Epoch, from 1.
    pub epoch: u32,
    /// Batches done in this epoch.
    pub batch: u64,
    /// Batches per epoch.
    pub batches: u64,
    /// Mean loss of the batches since the last [`Report::batch`] call.
    pub loss: f32,
    /// Training throughput so far in this epoch.
    pub samples_per_sec: f64,
    /// The learning rate of the last batch's step (the schedule's rate at that step).
    pub lr: f32,
}

/// The end of an epoch.
#[derive(Clone, Copy, Debug)]
pub struct EpochReport {
    /// Epoch, from 1.
    pub epoch: u32,
    /// Mean training loss over the epoch.
    pub train_loss: f32,
    /// Test-set accuracy after the epoch, in [0, 1].
    pub test_accuracy: f64,
    /// Wall time of the epoch's training loop (evaluation excluded), in seconds.
    pub seconds: f64,
}

/// Receives progress; the CLI prints it.
pub trait Report {
    /// Called after every batch (keep it cheap).
    fn progress(&mut self, _report: &BatchReport) {}
    /// Called every `log_every` batches and at the end of an epoch.
    fn batch(&mut self, report: &BatchReport);
    /// Called after each epoch's evaluation.
    fn epoch(&mut self, report: &EpochReport);
}

/// Why training stopped early.
#[derive(Debug)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    NonFinite {
        /// Epoch, from 1.
        epoch: u32,
        /// Batch within the epoch, from 1.
        batch: u64,
        /// Optimizer steps completed before it.
        step: u64,
        /// The loss (NaN also when a gradient was not finite).
        loss: f32,
        /// The last checkpoint written, and its step.
        checkpoint: Option<(PathBuf, u64)>,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::NonFinite {
                epoch,
                batch,
                step,
                loss,
                checkpoint,
            } => {
                write!(
                    f,
                    "the loss or a gradient became {loss} at epoch {epoch}, batch {batch} (step {}); \
                     training stopped (lower --lr, or use --clip-grad-norm)",
                    step + 1
                )?;
                match checkpoint {
                    Some((path, at)) => write!(
                        f,
                        "; the last good checkpoint is {} (step {at})",
                        path.display()
                    ),
                    None => write!(f, "; no checkpoint was written (--checkpoint-every N)"),
                }
            }
        }
    }
}

impl std::error::Error for TrainError {}

/// A training run in progress.
pub struct Run<N: Network> {
    /// The parameters, the optimizer and the threads that train them (see
    /// [`crate::parallel`]).
    team: Team<N, BATCH>,
    /// The recipe.
    pub config: Config,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps completed.
    pub step: u64,
    /// The last checkpoint written (or resumed from), and its step.
    pub last_checkpoint: Option<(PathBuf, u64)>,
}

impl<N: Network> Run<N> {
    /// A fresh run: parameters initialised from the seed, everything allocated.
    pub fn new(config: Config, train_len: usize) -> Self {
        let mut init_rng = derived_rng(config.seed, stream::INIT, 0);
        let net = N::new_boxed(config.init, &mut init_rng);
        let optimizer = match config.optimizer {
            OptimizerChoice::Sgd(c) => AnyOptimizer::Sgd(Sgd::new_boxed(c)),
            OptimizerChoice::Adam(c) => AnyOptimizer::Adam(Adam::new_boxed(c)),
        };
        Self {
            team: Team::new(config.threads.clamp(1, BATCH), net, optimizer, train_len),
            config,
            epoch: 0,
            step: 0,
            last_checkpoint: None,
        }
    }

    /// Threads splitting each batch.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// The parameters (shared with the training threads, so behind a lock guard).
    pub fn net(&self) -> impl std::ops::Deref<Target = N> + '_ {
        Params(self.team.params())
    }

    /// The parameters, for changing them between epochs.
    pub fn net_mut(&mut self) -> impl std::ops::DerefMut<Target = N> + '_ {
        ParamsMut(self.team.params_mut())
    }

    /// Writes the whole state of the run to `path`, atomically: parameters, optimizer state,
    /// position (epoch, step) and recipe. Randomness needs no state of its own: every
    /// generator is derived from (seed, purpose, epoch or step). Resuming from this file
    /// continues bit-for-bit as if the run had not stopped.
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<(), ModelFileError> {
        let at = |problem| ModelFileError {
            path: path.to_path_buf(),
            problem,
        };
        // A diverged run must not replace the last good checkpoint with infinities.
        let finite = (0..N::TENSORS).all(|i| self.net().tensor(i).iter().all(|x| x.is_finite()));
        if !finite {
            return Err(at(Problem::Checkpoint(format!(
                "the parameters are no longer finite at step {}: training diverged; this file still holds the last good checkpoint",
                self.step
            ))));
        }
        let bytes = self.checkpoint_bytes().map_err(at)?;
        write_bytes_atomic(path, &bytes).map_err(|e| at(Problem::Io(e)))?;
        self.last_checkpoint = Some((path.to_path_buf(), self.step));
        Ok(())
    }

    /// The bytes [`Run::save_checkpoint`] writes.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>, Problem> {
        let net = self.net();
        let mut entries = entries_of("model", &*net);
        let mut meta = checkpoint_metadata(&self.config);
        let optimizer = self.team.optimizer();
        match &*optimizer {
            AnyOptimizer::Adam(adam) => {
                let (m, v) = adam.moments();
                entries.extend(entries_of("adam.m", m));
                entries.extend(entries_of("adam.v", v));
                meta.insert("optimizer.t".into(), adam.steps_taken().to_string());
            }
            AnyOptimizer::Sgd(sgd) => {
                entries.extend(entries_of("sgd.velocity", sgd.velocity()));
                meta.insert("optimizer.t".into(), sgd.steps_taken().to_string());
            }
        }
        meta.insert("epoch".into(), self.epoch.to_string());
        meta.insert("step".into(), self.step.to_string());
        meta.insert("train_len".into(), self.team.train_len().to_string());
        encode(&entries, meta)
    }

    /// Continues a run from a checkpoint written by [`Run::save_checkpoint`], on a training
    /// set of `train_len` samples (which must be the one the run started on).
    pub fn resume(path: &Path, train_len: usize) -> Result<Self, ModelFileError> {
        let bytes = super::format::safetensors::open(path)?;
        let mut run = Self::resume_bytes(&bytes, train_len).map_err(|problem| ModelFileError {
            path: path.to_path_buf(),
            problem,
        })?;
        run.last_checkpoint = Some((path.to_path_buf(), run.step));
        Ok(run)
    }

    /// [`Run::resume`] from the bytes of a checkpoint file.
    pub fn resume_bytes(bytes: &[u8], train_len: usize) -> Result<Self, Problem> {
        let bad = |what: String| Problem::Checkpoint(what);
        let decoded = decode(bytes)?;
        let meta = &decoded.metadata;
        if meta.get(CHECKPOINT_KEY).map(String::as_str) != Some("1") {
            return Err(bad(
                "not a constnet checkpoint (a model file? use it with eval or predict)".into(),
            ));
        }
        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| bad(format!("metadata lacks {key:?}")))
        };
        let int = |key: &str| {
            get(key)?
                .parse::<u64>()
                .map_err(|_| bad(format!("metadata {key:?} is not a number")))
        };
        let config = config_from_metadata(meta).map_err(bad)?;
        let recorded_len = int("train_len")? as usize;
        if recorded_len != train_len {
            return Err(bad(format!(
                "it was written for a training set of {recorded_len} samples; this one has {train_len}"
            )));
        }
        let mut run = Self::new(config, train_len);
        let fill = |prefix: &str, net: &mut N| -> Result<(), Problem> {
            for i in 0..N::TENSORS {
                let info = N::tensor_info(i);
                let name = format!("{prefix}/{}", info.name);
                copy_f32(
                    tensor_bytes(&decoded, &name, info.shape)?,
                    net.tensor_mut(i),
                );
            }
            Ok(())
        };
        fill("model", &mut run.net_mut())?;
        let t = int("optimizer.t")?;
        let mut filled = Ok(());
        run.team.with_optimizer_mut(|optimizer| {
            filled = match optimizer {
                AnyOptimizer::Adam(adam) => {
                    let (m, v, steps) = adam.state_mut();
                    *steps = t;
                    fill("adam.m", m).and_then(|()| fill("adam.v", v))
                }
                AnyOptimizer::Sgd(sgd) => {
                    let (velocity, steps) = sgd.state_mut();
                    *steps = t;
                    fill("sgd.velocity", velocity)
                }
            }
        });
        filled?;
        run.epoch = u32::try_from(int("epoch")?).map_err(|_| bad("epoch out of range".into()))?;
        run.step = int("step")?;
        if run.step > u64::from(run.config.epochs) * run.batches_per_epoch()
            || run.step < u64::from(run.epoch) * run.batches_per_epoch()
        {
            return Err(bad(format!(
                "step {} does not fit epoch {}",
                run.step, run.epoch
            )));
        }
        Ok(run)
    }

    /// Batches per epoch (the last one may be partial, as with PyTorch's DataLoader).
    pub fn batches_per_epoch(&self) -> u64 {
        self.team.train_len().div_ceil(BATCH) as u64
    }

    /// The per-step schedule for this run.
    pub fn schedule(&self) -> Schedule {
        let per_epoch = self.batches_per_epoch();
        match self.config.schedule {
            ScheduleChoice::Constant => Schedule::Constant,
            ScheduleChoice::Step { every, gamma } => Schedule::Step {
                every: u64::from(every) * per_epoch,
                gamma,
            },
            ScheduleChoice::Cosine => Schedule::Cosine {
                total: u64::from(self.config.epochs) * per_epoch,
            },
        }
    }

    /// Trains one epoch on `train`, reporting every `log_every` batches; returns the epoch's
    /// mean loss and its wall time in seconds. `after_step` runs after every optimizer step
    /// (checkpoints hook in there).
    pub fn train_epoch(
        &mut self,
        train: &Split,
        report: &mut dyn Report,
        mut after_step: impl FnMut(&mut Self) -> Result<(), Box<dyn std::error::Error>>,
    ) -> Result<(f32, f64), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let epoch = self.epoch + 1;
        let batches = self.batches_per_epoch();
        let schedule = self.schedule();
        let first = self.step - u64::from(self.epoch) * batches;
        self.team.shuffle(self.config.seed, u64::from(self.epoch));
        let job = Job {
            data: train.shared(),
            batch: BATCH,
            first,
            batches,
            step: self.step,
            seed: self.config.seed,
            dropout: self.config.dropout,
            lr: self.config.lr,
            schedule,
        };
        self.team.start(job.clone());
        let (mut total, mut since, mut since_n) = (0.0f64, 0.0f64, 0u64);
        let mut seen = 0usize;
        for b in first..batches {
            let StepOutcome {
                batch,
                loss,
                finite,
            } = self.team.step(&job, b);
            let outcome = if finite {
                self.step += 1;
                total += f64::from(loss) * batch as f64;
                since += f64::from(loss);
                since_n += 1;
                seen += batch;
                after_step(self)
            } else {
                // A finite loss with non-finite gradients is reported as NaN: the step failed.
                let loss = if loss.is_finite() { f32::NAN } else { loss };
                let checkpoint = self.last_checkpoint.clone();
                Err(Box::new(TrainError::NonFinite {
                    epoch,
                    batch: b + 1,
                    step: self.step,
                    loss,
                    checkpoint,
                })
                .into())
            };
            if let Err(e) = outcome {
                if b + 1 < batches {
                    self.team.abort();
                }
                return Err(e);
            }
            let progress = BatchReport {
                epoch,
                batch: b + 1,
                batches,
                loss: (since / since_n as f64) as f32,
                samples_per_sec: seen as f64 / start.elapsed().as_secs_f64(),
                lr: schedule.lr(self.config.lr, self.step - 1),
            };
            report.progress(&progress);
            if (b + 1) % self.config.log_every.max(1) == 0 || b + 1 == batches {
                report.batch(&progress);
                (since, since_n) = (0.0, 0);
            }
        }
        self.epoch += 1;
        let seconds = start.elapsed().as_secs_f64();
        Ok(((total / seen.max(1) as f64) as f32, seconds))
    }
}

/// Read access to a run's parameters.
struct Params<'a, N>(std::sync::RwLockReadGuard<'a, Box<N>>);

impl<N> std::ops::Deref for Params<'_, N> {
    type Target = N;
    fn deref(&self) -> &N {
        &self.0
    }
}

/// Write access to a run's parameters.
struct ParamsMut<'a, N>(std::sync::RwLockWriteGuard<'a, Box<N>>);

impl<N> std::ops::Deref for ParamsMut<'_, N> {
    type Target = N;
    fn deref(&self) -> &N {
        &self.0
    }
}

impl<N> std::ops::DerefMut for ParamsMut<'_, N> {
    fn deref_mut(&mut self) -> &mut N {
        &mut self.0
    }
}

/// A network's tensors named `prefix/name`, for a checkpoint.
fn entries_of<'a, N: Network>(prefix: &str, net: &'a N) -> Vec<Entry<'a>> {
    (0..N::TENSORS)
        .map(|i| {
            let info = N::tensor_info(i);
            Entry {
                name: format!("{prefix}/{}", info.name),
                shape: info.shape.to_vec(),
                values: net.tensor(i),
            }
        })
        .collect()
}

/// The metadata key that marks a checkpoint (value: format version "1").
pub const CHECKPOINT_KEY: &str = "constnet.checkpoint";

/// Floats are recorded by their bits, so a resumed run uses exactly the same values.
fn float(x: f32) -> String {
    format!("{:08x}", x.to_bits())
}

/// The recipe as checkpoint metadata.
fn checkpoint_metadata(c: &Config) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(CHECKPOINT_KEY.into(), "1".into());
    m.insert("epochs".into(), c.epochs.to_string());
    m.insert("lr".into(), float(c.lr));
    m.insert("seed".into(), c.seed.to_string());
    m.insert("dropout".into(), float(c.dropout));
    m.insert("log_every".into(), c.log_every.to_string());
    m.insert("threads".into(), c.threads.to_string());
    m.insert("init".into(), c.init.to_string());
    let schedule = match c.schedule {
        ScheduleChoice::Step { every, gamma } => {
            format!("{} {every} {}", c.schedule, float(gamma))
        }
        ScheduleChoice::Constant | ScheduleChoice::Cosine => c.schedule.to_string(),
    };
    m.insert("schedule".into(), schedule);
    // The name is the kind (`adamw` is Adam with `decoupled`); the fields say it all again, so
    // checkpoints that wrote `adam` for AdamW still read back the same.
    let optimizer = match c.optimizer {
        OptimizerChoice::Adam(a) => format!(
            "{} {} {} {} {} {} {}",
            c.optimizer,
            float(a.beta1),
            float(a.beta2),
            float(a.eps),
            float(a.weight_decay),
            a.decoupled,
            float(a.clip_grad_norm)
        ),
        OptimizerChoice::Sgd(g) => format!(
            "{} {} {} {} {}",
            c.optimizer,
            float(g.momentum),
            float(g.weight_decay),
            g.nesterov,
            float(g.clip_grad_norm)
        ),
    };
    m.insert("optimizer".into(), optimizer);
    m
}

/// The recipe back from checkpoint metadata.
fn config_from_metadata(m: &HashMap<String, String>) -> Result<Config, String> {
    let get = |key: &str| {
        m.get(key)
            .map(String::as_str)
            .ok_or(format!("metadata lacks {key:?}"))
    };
    let number = |key: &str| {
        get(key)?
            .parse::<u64>()
            .map_err(|_| format!("metadata {key:?} is not a number"))
    };
    let bits = |s: &str| {
        u32::from_str_radix(s, 16)
            .map(f32::from_bits)
            .map_err(|_| format!("bad float {s:?}"))
    };
    let flag = |s: &str| s.parse::<bool>().map_err(|_| format!("bad flag {s:?}"));
    let fields = |key: &str| get(key).map(|v| v.split(' ').collect::<Vec<_>>());
    let init: Init = get("init")?
        .parse()
        .map_err(|e| format!("metadata \"init\": {e}"))?;
    let schedule = fields("schedule")?;
    let kind = |name: &str| {
        name.parse::<ScheduleChoice>()
            .map_err(|e| format!("metadata \"schedule\": {e}"))
    };
    let schedule = match (kind(schedule[0])?, &schedule[1..]) {
        (ScheduleChoice::Step { .. }, [every, gamma]) => ScheduleChoice::Step {
            every: every.parse().map_err(|_| "bad step schedule".to_string())?,
            gamma: bits(gamma)?,
        },
        (s @ (ScheduleChoice::Constant | ScheduleChoice::Cosine), []) => s,
        _ => return Err(format!("bad schedule {schedule:?}")),
    };
    let optimizer = fields("optimizer")?;
    let kind = optimizer[0]
        .parse::<OptimizerChoice>()
        .map_err(|e| format!("metadata \"optimizer\": {e}"))?;
    let optimizer = match (kind, &optimizer[1..]) {
        (OptimizerChoice::Adam(_), [b1, b2, eps, wd, decoupled, clip]) => {
            OptimizerChoice::Adam(AdamConfig {
                beta1: bits(b1)?,
                beta2: bits(b2)?,
                eps: bits(eps)?,
                weight_decay: bits(wd)?,
                decoupled: flag(decoupled)?,
                clip_grad_norm: bits(clip)?,
            })
        }
        (OptimizerChoice::Sgd(_), [momentum, wd, nesterov, clip]) => {
            OptimizerChoice::Sgd(SgdConfig {
                momentum: bits(momentum)?,
                weight_decay: bits(wd)?,
                nesterov: flag(nesterov)?,
                clip_grad_norm: bits(clip)?,
            })
        }
        _ => return Err(format!("bad optimizer {optimizer:?}")),
    };
    Ok(Config {
        epochs: u32::try_from(number("epochs")?).map_err(|_| "epochs out of range".to_string())?,
        lr: bits(get("lr")?)?,
        optimizer,
        schedule,
        seed: number("seed")?,
        dropout: bits(get("dropout")?)?,
        init,
        log_every: number("log_every")?,
        threads: number("threads")?.clamp(1, BATCH as u64) as usize,
    })
}

/// Test-set results: accuracy, per-class accuracy and the confusion matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Samples predicted correctly.
    pub correct: usize,
    /// Samples evaluated.
    pub total: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
}

impl Evaluation {
    /// Fraction correct, in [0, 1].
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// Fraction correct among samples of class `c`.
    pub fn class_accuracy(&self, c: usize) -> f64 {
        let row = &self.confusion[c];
        f64::from(row[c]) / f64::from(row.iter().sum::<u32>().max(1))
    }
}

/// Runs the network over a split in batches of [`BATCH`] and compares with the labels.
pub fn evaluate<'a, V: NetworkView<'a>>(
    view: V,
    split: &Split,
    ws: &mut <V::Net as Network>::Workspace<BATCH>,
) -> Evaluation {
    let classes = V::Net::OUTPUT;
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut predictions = [0u32; BATCH];
    let indices: Vec<u32> = (0..split.count as u32).collect();
    for chunk in indices.chunks(BATCH) {
        let batch = chunk.len();
        fill_batch::<_, Simd>(ws, split.pixels(), split.labels(), chunk);
        view.forward::<Simd, crate::Rng, BATCH>(ws, batch, None);
        argmax(classes, batch, ws.logits(batch), &mut predictions[..batch]);
        for (&p, &label) in predictions[..batch].iter().zip(ws.labels(batch)) {
            confusion[label as usize][p as usize] += 1;
        }
    }
    let correct = (0..classes).map(|c| confusion[c][c] as usize).sum();
    Evaluation {
        correct,
        total: split.count,
        confusion,
    }
}

/// Trains `run` for its remaining epochs, evaluating on `test` after each.
pub fn fit<N: Network>(
    run: &mut Run<N>,
    train: &Split,
    test: &Split,
    report: &mut dyn Report,
    mut after_step: impl FnMut(&mut Run<N>) -> Result<(), Box<dyn std::error::Error>>,
    mut after_epoch: impl FnMut(&Run<N>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Evaluation, Box<dyn std::error::Error>> {
    let mut eval_ws = N::Workspace::<BATCH>::zeroed_box();
    let mut last = None;
    while run.epoch < run.config.epochs {
        let (train_loss, seconds) = run.train_epoch(train, report, &mut after_step)?;
        let evaluation = evaluate(run.net().view(), test, &mut eval_ws);
        report.epoch(&EpochReport {
            epoch: run.epoch,
            train_loss,
            test_accuracy: evaluation.accuracy(),
            seconds,
        });
        after_epoch(run)?;
        last = Some(evaluation);
    }
    Ok(last.unwrap_or_else(|| evaluate(run.net().view(), test, &mut eval_ws)))
}
