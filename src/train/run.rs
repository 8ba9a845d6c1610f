//! A training run: the parameters, the optimizer and the threads, and epochs over the data.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use super::{BatchReport, Config, InvalidConfig, MAX_BATCH, Report, TrainError};
use crate::data::batch::{derived_rng, stream};
use crate::data::dataset::{Dataset, DatasetError, Rows};
use crate::model::Network;
use crate::optim::{AnyOptimizer, Schedule};

use crate::parallel::{Job, StepOutcome, Team};
use std::cell::RefCell;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

/// A training run in progress.
///
/// A run owns everything training needs (parameters, optimizer state, the batch workspaces,
/// the sample order and the worker threads), all allocated once in [`Run::new`]: nothing is
/// allocated per batch or per epoch.
pub struct Run<N: Network> {
    /// The parameters, the optimizer and the threads that train them (see
    /// [`crate::parallel`]), with workspaces for the largest batch (see [`MAX_BATCH`]).
    team: Team<N, MAX_BATCH>,
    /// The recipe.
    pub config: Config,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps completed.
    pub steps: u64,
    /// The current epoch's steps so far: the sum of their losses weighted by their samples,
    /// and the samples (checkpointed, so a resumed epoch reports the whole epoch's mean).
    pub(super) epoch_loss: (f64, usize),
    /// The last checkpoint written (or resumed from), and the steps it holds.
    last_checkpoint: RefCell<Option<(PathBuf, u64)>>,
    /// Samples in the training set (validation split included).
    train_len: usize,
    /// The validation samples (`config.val` of them), held out of training.
    validation: Vec<u32>,
}

impl<N: Network> Run<N> {
    /// A fresh run on a training set of `train_len` samples: parameters initialised from the
    /// seed, everything allocated. Fails on a recipe value training cannot use.
    pub fn new(config: Config, train_len: usize) -> Result<Self, InvalidConfig> {
        config.validate()?;
        let bad = |field, value: &dyn std::fmt::Display, must_be| InvalidConfig {
            field,
            value: value.to_string(),
            must_be,
        };
        if config.val >= train_len {
            return Err(bad("val", &config.val, "below the training set's size"));
        }
        if N::BATCH_NORMS > 0 && config.threads > 1 {
            let must_be = crate::parallel::BATCH_NORM_THREADS;
            return Err(bad("threads", &config.threads, must_be));
        }
        let mut init_rng = derived_rng(config.seed, stream::INIT, 0);
        let net = N::new_boxed(config.init, &mut init_rng);
        let optimizer = config.optimizer.build::<N>();
        // Without a validation split the pool is the training set in order, as it always was.
        let mut pool: Vec<u32> = (0..train_len as u32).collect();
        if config.val > 0 {
            crate::data::batch::validation_split(&mut pool);
        }
        let validation = pool.split_off(train_len - config.val);
        let team =
            Team::new(config.threads, net, optimizer, pool, config.augment).map_err(|e| {
                let must_be = "usable on this network's input (square images up to 32×32)";
                bad("augment", &e, must_be)
            })?;
        Ok(Self {
            team,
            config,
            epoch: 0,
            steps: 0,
            epoch_loss: (0.0, 0),
            last_checkpoint: RefCell::new(None),
            train_len,
            validation,
        })
    }

    /// Threads splitting each batch.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Samples in the training set, the validation split included.
    pub fn train_len(&self) -> usize {
        self.train_len
    }

    /// The validation samples (indices into the training set), held out of training; empty
    /// without `--val`.
    pub fn validation(&self) -> &[u32] {
        &self.validation
    }

    /// The parameters.
    pub fn net(&self) -> &N {
        self.team.model().0
    }

    /// The optimizer, with its state. (During an epoch its step count lags: the threads
    /// count steps in [`Run::optimizer_steps`], and write it back when the epoch ends.)
    pub fn optimizer(&self) -> &AnyOptimizer<N> {
        self.team.model().1
    }

    /// The optimizer's step count (the `t` of Adam's bias corrections).
    pub fn optimizer_steps(&self) -> u64 {
        self.team.steps_taken()
    }

    /// The parameters and the optimizer, for changing them between epochs (to restore a
    /// checkpoint, say).
    pub fn model_mut(&mut self) -> (&mut N, &mut AnyOptimizer<N>) {
        self.team.model_mut()
    }

    /// The last checkpoint written (or resumed from), and the steps it holds.
    pub fn last_checkpoint(&self) -> Option<(PathBuf, u64)> {
        self.last_checkpoint.borrow().clone()
    }

    /// Records the checkpoint just written (or resumed from).
    pub(crate) fn set_last_checkpoint(&self, path: PathBuf) {
        *self.last_checkpoint.borrow_mut() = Some((path, self.steps));
    }

    /// How the threads choose between running as a team and on one thread (the results are
    /// the same bits either way); by default `CONSTNET_PACE`'s, else by measurement.
    pub fn set_pacing(&mut self, pacing: crate::parallel::Pacing) {
        self.team.set_pacing(pacing);
    }

    /// Steps that one thread ran alone so far, the team's other threads being slower than
    /// doing their parts itself (the results are the same).
    pub fn steps_alone(&self) -> u64 {
        self.team.steps_alone()
    }

    /// Batches per epoch over the samples trained on (the last one may be partial, as with
    /// PyTorch's DataLoader).
    pub fn batches_per_epoch(&self) -> u64 {
        self.team.train_len().div_ceil(self.config.batch) as u64
    }

    /// The per-step learning-rate schedule of this run.
    pub fn schedule(&self) -> Schedule {
        (self.config.schedule).per_step(self.config.epochs, self.batches_per_epoch())
    }

    /// Whether every parameter is finite (a run whose updates overflowed must not be saved).
    pub fn is_finite(&self) -> bool {
        self.net().flat().iter().all(|x| x.is_finite())
    }

    /// Trains one epoch on `train` (the dataset the run was created for: `train_len`
    /// samples), reporting progress; returns the epoch's mean loss and its wall time in
    /// seconds. `after_step` runs after every optimizer step (checkpoints hook in there; it
    /// sees the run but cannot change it, since the other threads are already on the next
    /// step). Fails before training if the dataset does not fit the network or the run.
    pub fn train_epoch(
        &mut self,
        train: &(impl Dataset + ?Sized),
        report: &mut dyn Report,
        mut after_step: impl FnMut(&Self) -> Result<(), Box<dyn Error>>,
    ) -> Result<(f32, f64), Box<dyn Error>> {
        self.check_data(train)?;
        let start = Instant::now();
        let job = self.job(train);
        self.team.shuffle(self.config.seed, u64::from(self.epoch));
        self.team.start(job.clone());
        let result = self.steps_of(&job, start, report, &mut after_step);
        self.team.finish();
        let (total, seen) = result?;
        self.epoch += 1;
        self.epoch_loss = (0.0, 0);
        Ok((
            (total / seen.max(1) as f64) as f32,
            start.elapsed().as_secs_f64(),
        ))
    }

    /// Refuses a training set that does not fit the network, is not the size the run was
    /// created for, or holds floats where augmentation needs byte images.
    fn check_data(&self, train: &(impl Dataset + ?Sized)) -> Result<(), Box<dyn Error>> {
        crate::data::dataset::check(train, N::INPUT, N::OUTPUT)?;
        if train.len() != self.train_len {
            let message = format!(
                "the training set has {} samples; this run was created for {}",
                train.len(),
                self.train_len
            );
            return Err(message.into());
        }
        if self.config.augment.is_on() && matches!(train.rows(), Rows::F32(_)) {
            return Err(DatasetError::AugmentNeedsBytes.into());
        }
        Ok(())
    }

    /// What the threads need for the rest of the current epoch.
    fn job(&self, train: &(impl Dataset + ?Sized)) -> Job {
        let batches = self.batches_per_epoch();
        Job {
            data: train.shared(),
            batch: self.config.batch,
            first: self.steps - u64::from(self.epoch) * batches,
            batches,
            step: self.steps,
            seed: self.config.seed,
            dropout: self.config.dropout,
            lr: self.config.lr,
            schedule: self.schedule(),
            clip_grad_norm: self.config.optimizer.clip_grad_norm(),
            epoch: u64::from(self.epoch),
        }
    }

    /// The steps of an epoch: returns the sum of the batches' losses (weighted by their
    /// sizes) and the samples trained.
    fn steps_of(
        &mut self,
        job: &Job,
        start: Instant,
        report: &mut dyn Report,
        after_step: &mut impl FnMut(&Self) -> Result<(), Box<dyn Error>>,
    ) -> Result<(f64, usize), Box<dyn Error>> {
        let (mut total, mut seen) = self.epoch_loss;
        let (mut since, mut since_n, mut trained) = (0.0f64, 0u64, 0usize);
        for b in job.first..job.batches {
            let StepOutcome {
                batch,
                loss,
                finite,
            } = self.team.step(job, b);
            let outcome = if finite {
                self.steps += 1;
                (total, since, since_n, seen, trained) = (
                    total + f64::from(loss) * batch as f64,
                    since + f64::from(loss),
                    since_n + 1,
                    seen + batch,
                    trained + batch,
                );
                self.epoch_loss = (total, seen);
                after_step(self)
            } else {
                Err(self.diverged(b, loss).into())
            };
            if let Err(e) = outcome {
                if b + 1 < job.batches {
                    self.team.abort();
                }
                return Err(e);
            }
            let progress = BatchReport {
                epoch: self.epoch + 1,
                batch: b + 1,
                batches: job.batches,
                loss: (since / since_n as f64) as f32,
                samples_per_sec: trained as f64 / start.elapsed().as_secs_f64(),
                lr: job.schedule.lr(job.lr, self.steps - 1),
            };
            report.progress(&progress);
            if (b + 1) % self.config.log_every.max(1) == 0 || b + 1 == job.batches {
                report.batch(&progress);
                (since, since_n) = (0.0, 0);
            }
        }
        Ok((total, seen))
    }

    /// The error of a step whose loss, gradients or updated parameters were not finite.
    fn diverged(&self, b: u64, loss: f32) -> TrainError {
        // A finite loss with non-finite gradients is reported as NaN: the step failed.
        let loss = if loss.is_finite() { f32::NAN } else { loss };
        TrainError::NonFinite {
            epoch: self.epoch + 1,
            batch: b + 1,
            step: self.steps,
            loss,
            checkpoint: self.last_checkpoint(),
        }
    }
}
