//! What a run tells its caller: progress within an epoch, the end of an epoch, and why it
//! stopped early.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use std::fmt;
use std::path::PathBuf;

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
    /// Accuracy after the epoch on the first [`TRAIN_ACCURACY_SAMPLES`](super::TRAIN_ACCURACY_SAMPLES)
    /// training samples, in [0, 1].
    pub train_accuracy: f64,
    /// Test-set accuracy after the epoch, in [0, 1].
    pub test_accuracy: f64,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Optimizer steps done since the run began.
    pub steps: u64,
    /// Samples per epoch (the training split's size).
    pub samples: usize,
    /// Validation accuracy after the epoch, in [0, 1], with a validation split.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch's training loop (evaluation excluded), in seconds.
    pub seconds: f64,
    /// Steps of the epoch that one thread ran alone, because the other threads were slower
    /// than doing their parts itself (another process kept their cores busy); same results.
    pub steps_alone: u64,
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
    /// The loss, a gradient or an updated parameter became NaN or infinite.
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
                    "the loss, a gradient or a parameter became {loss} at epoch {epoch}, batch {batch} (step {}); \
                     training stopped (a lower learning rate or gradient clipping may help)",
                    step + 1
                )?;
                match checkpoint {
                    Some((path, at)) => write!(
                        f,
                        "; the last good checkpoint is {} (step {at})",
                        path.display()
                    ),
                    None => write!(f, "; no checkpoint was written"),
                }
            }
        }
    }
}

impl std::error::Error for TrainError {}
