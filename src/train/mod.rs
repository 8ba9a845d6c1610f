//! Training: epochs of shuffled batches over a dataset, evaluation, progress reports and
//! checkpoints.
//!
//! - [`config`]: the recipe ([`Config`]) and its text forms.
//! - [`run`]: a training run ([`Run`]) and its epochs.
//! - [`checkpoint`]: a run's whole state in a file, and resuming from it.
//! - [`eval`]: a network against a split's labels.
//! - [`report`]: what a run tells its caller.
//! - [`trainer`]: [`Trainer`], the common case in one call.
//!
//! Randomness is derived from the seed per purpose and position
//! ([`crate::data::derived_rng`]): the initial parameters, each epoch's order and each step's
//! dropout mask. A run is therefore bit-for-bit reproducible on the same build and machine.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod report;
pub mod run;
pub mod trainer;

pub use checkpoint::{CheckpointError, CheckpointProblem};
pub use config::{
    BATCH, Config, InvalidConfig, MAX_BATCH, OptimizerChoice, ParseOptimizerError,
    ParseRecipeError, ParseScheduleError, RecipeChoice, ScheduleChoice,
};
pub use eval::{Evaluation, evaluate, evaluate_first, evaluate_int8, evaluate_samples};
pub use report::{BatchReport, EpochReport, Report, TrainError};
pub use run::Run;
pub use trainer::{Trained, Trainer};

use std::prelude::rust_2024::*;

use crate::data::Dataset;
use crate::model::{Network, Workspace};
use std::error::Error;

/// How many training samples (the first ones) the training accuracy of each epoch is measured
/// on: as many as the MNIST test set, so it costs one more evaluation.
pub const TRAIN_ACCURACY_SAMPLES: usize = 10_000;

/// Trains `run` for its remaining epochs, evaluating on `test` (and on the run's validation
/// samples of `train`, if it holds some out) after each; `after_epoch` sees the report.
///
/// Any [`Dataset`] will do: MNIST's files ([`crate::data::Split`]) or rows in memory
/// ([`crate::data::InMemory`]); the same rows give the same bits either way. For the common
/// case without hooks, see [`Trainer`].
pub fn fit<N: Network>(
    run: &mut Run<N>,
    train: &(impl Dataset + ?Sized),
    test: &(impl Dataset + ?Sized),
    report: &mut dyn Report,
    mut after_step: impl FnMut(&Run<N>) -> Result<(), Box<dyn Error>>,
    mut after_epoch: impl FnMut(&Run<N>, &EpochReport) -> Result<(), Box<dyn Error>>,
) -> Result<Evaluation, Box<dyn Error>> {
    let mut eval_ws = N::Workspace::<BATCH>::zeroed_box();
    let mut last = None;
    while run.epoch < run.config.epochs {
        let alone_before = run.steps_alone();
        let (train_loss, seconds) = run.train_epoch(train, report, &mut after_step)?;
        let evaluation = evaluate(run.net().view(), test, &mut eval_ws);
        let val_accuracy = (!run.validation().is_empty()).then(|| {
            evaluate_samples(run.net().view(), train, run.validation(), &mut eval_ws).accuracy()
        });
        let on_train = evaluate_first(
            run.net().view(),
            train,
            TRAIN_ACCURACY_SAMPLES,
            &mut eval_ws,
        );
        let schedule = run.schedule();
        let epoch_report = EpochReport {
            epoch: run.epoch,
            train_loss,
            train_accuracy: on_train.accuracy(),
            test_accuracy: evaluation.accuracy(),
            lr: schedule.lr(run.config.lr, run.steps.saturating_sub(1)),
            steps: run.steps,
            samples: train.len(),
            val_accuracy,
            seconds,
            steps_alone: run.steps_alone() - alone_before,
        };
        report.epoch(&epoch_report);
        after_epoch(run, &epoch_report)?;
        last = Some(evaluation);
    }
    Ok(last.unwrap_or_else(|| evaluate(run.net().view(), test, &mut eval_ws)))
}
