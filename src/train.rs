//! Training on MNIST-style data: epochs of shuffled batches, evaluation, progress reports.
//!
//! A [`Run`] owns everything a training run needs (parameters, gradients, optimizer state, the
//! batch workspace and the sample order), all allocated once in [`Run::new`]. An epoch then
//! loads each batch straight from the dataset's bytes into the workspace and calls
//! [`crate::train_step`]: nothing is allocated per batch or per epoch.
//!
//! Randomness is derived from the seed per purpose and position ([`crate::data::derived_rng`]):
//! the initial parameters, each epoch's order and each step's dropout mask. A run is therefore
//! bit-for-bit reproducible on the same build and machine.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::data::Split;
use crate::data::batch::{derived_rng, fill_batch, shuffle, stream};
use crate::kernels::Simd;
use crate::layers::{Dropout, Init};
use crate::loss::argmax;
use crate::model::{Network, NetworkView, Workspace, train_step};
use crate::optim::{Adam, AdamConfig, Optimizer, Schedule, Sgd, SgdConfig};
use std::fmt;
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
    /// Mean loss of the batches since the last report.
    pub loss: f32,
    /// Training throughput so far in this epoch.
    pub samples_per_sec: f64,
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
    /// Called after every batch (keep it cheap): batches done of `batches`, samples trained
    /// and seconds elapsed in this epoch.
    fn progress(
        &mut self,
        _epoch: u32,
        _batch: u64,
        _batches: u64,
        _samples: usize,
        _seconds: f64,
    ) {
    }
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
        /// The loss value.
        loss: f32,
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
            } => write!(
                f,
                "the loss became {loss} at epoch {epoch}, batch {batch} (step {step}); training stopped: lower --lr, or add gradient clipping"
            ),
        }
    }
}

impl std::error::Error for TrainError {}

/// The optimizer a run uses, chosen at run time.
pub enum AnyOptimizer<N> {
    /// SGD state.
    Sgd(Box<Sgd<N>>),
    /// Adam state.
    Adam(Box<Adam<N>>),
}

impl<N: Network> Optimizer<N> for AnyOptimizer<N> {
    fn step<K: crate::Backend>(&mut self, params: &mut N, grads: &N, lr: f32) {
        match self {
            AnyOptimizer::Sgd(o) => o.step::<K>(params, grads, lr),
            AnyOptimizer::Adam(o) => o.step::<K>(params, grads, lr),
        }
    }
    fn steps_taken(&self) -> u64 {
        match self {
            AnyOptimizer::Sgd(o) => o.steps_taken(),
            AnyOptimizer::Adam(o) => o.steps_taken(),
        }
    }
}

/// A training run in progress.
pub struct Run<N: Network> {
    /// The parameters.
    pub net: Box<N>,
    grads: Box<N>,
    /// The optimizer and its state.
    pub optimizer: AnyOptimizer<N>,
    ws: Box<N::Workspace<BATCH>>,
    order: Vec<u32>,
    /// The recipe.
    pub config: Config,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps completed.
    pub step: u64,
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
        let order = (0..train_len as u32).collect();
        Self {
            net,
            grads: N::zeroed_box(),
            optimizer,
            ws: N::Workspace::<BATCH>::zeroed_box(),
            order,
            config,
            epoch: 0,
            step: 0,
        }
    }

    /// Batches per epoch (the last one may be partial, as with PyTorch's DataLoader).
    pub fn batches_per_epoch(&self) -> u64 {
        self.order.len().div_ceil(BATCH) as u64
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
        mut after_step: impl FnMut(&Self) -> Result<(), Box<dyn std::error::Error>>,
    ) -> Result<(f32, f64), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let epoch = self.epoch + 1;
        let batches = self.batches_per_epoch();
        let schedule = self.schedule();
        shuffle(&mut self.order, self.config.seed, u64::from(self.epoch));
        let first_batch = self.step - u64::from(self.epoch) * batches;
        let (mut total, mut since, mut since_n) = (0.0f64, 0.0f64, 0u64);
        let mut seen = 0usize;
        for b in first_batch..batches {
            let indices =
                &self.order[b as usize * BATCH..((b as usize + 1) * BATCH).min(self.order.len())];
            let batch = indices.len();
            fill_batch::<_, Simd>(&mut *self.ws, train.pixels(), train.labels(), indices);
            let lr = schedule.lr(self.config.lr, self.step);
            let mut dropout_rng = derived_rng(self.config.seed, stream::DROPOUT, self.step);
            let mut dropout = Dropout {
                p: self.config.dropout,
                rng: &mut dropout_rng,
            };
            let dropout = (self.config.dropout > 0.0).then_some(&mut dropout);
            let loss = train_step::<N, Simd, _, _, BATCH>(
                &mut self.net,
                &mut self.grads,
                &mut self.optimizer,
                &mut self.ws,
                batch,
                lr,
                dropout,
            );
            if !loss.is_finite() {
                return Err(Box::new(TrainError::NonFinite {
                    epoch,
                    batch: b + 1,
                    step: self.step,
                    loss,
                }));
            }
            self.step += 1;
            total += f64::from(loss) * batch as f64;
            since += f64::from(loss);
            since_n += 1;
            seen += batch;
            after_step(self)?;
            report.progress(epoch, b + 1, batches, seen, start.elapsed().as_secs_f64());
            if (b + 1) % self.config.log_every.max(1) == 0 || b + 1 == batches {
                let samples_per_sec = seen as f64 / start.elapsed().as_secs_f64();
                report.batch(&BatchReport {
                    epoch,
                    batch: b + 1,
                    batches,
                    loss: (since / since_n as f64) as f32,
                    samples_per_sec,
                });
                (since, since_n) = (0.0, 0);
            }
        }
        self.epoch += 1;
        let seconds = start.elapsed().as_secs_f64();
        Ok(((total / seen.max(1) as f64) as f32, seconds))
    }
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
    mut after_step: impl FnMut(&Run<N>) -> Result<(), Box<dyn std::error::Error>>,
    mut after_epoch: impl FnMut(&Run<N>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Evaluation, Box<dyn std::error::Error>> {
    let mut eval_ws = N::Workspace::<BATCH>::zeroed_box();
    let mut last = None;
    while run.epoch < run.config.epochs {
        let (train_loss, seconds) = run.train_epoch(train, report, &mut after_step)?;
        let evaluation = evaluate(run.net.view(), test, &mut eval_ws);
        report.epoch(&EpochReport {
            epoch: run.epoch,
            train_loss,
            test_accuracy: evaluation.accuracy(),
            seconds,
        });
        after_epoch(run)?;
        last = Some(evaluation);
    }
    Ok(last.unwrap_or_else(|| evaluate(run.net.view(), test, &mut eval_ws)))
}
