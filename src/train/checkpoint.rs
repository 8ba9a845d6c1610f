//! Checkpoints: the whole state of a run in one file, so it can continue bit for bit.
//!
//! A checkpoint is a safetensors file (see [`crate::format::safetensors`]) holding the
//! parameters (`model/fc1.weight`, …) and the optimizer's state (`adam.m/fc1.weight`, …) with
//! the run's position (epoch, step, the optimizer's step count) and its recipe in the header's
//! metadata. The data and the header each carry a CRC-32, so a flipped bit anywhere is refused,
//! and every recipe value is validated again on resume ([`Config::validate`]). Randomness needs
//! no state of its own: every generator is derived from (seed, purpose, epoch or step).
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use super::{Config, InvalidConfig, Run};
use crate::atomic_file::write_bytes_atomic;
use crate::format::Problem;
use crate::format::safetensors::{self, Decoded, Entry};
use crate::model::Network;
use crate::optim::Optimizer;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::format::safetensors::CHECKPOINT_KEY;
/// The format version written and read: 2 has the header under a checksum, 3 the recipe in
/// JSON.
const VERSION: &str = "3";

/// A checkpoint that could not be written or used.
#[derive(Debug)]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub problem: CheckpointProblem,
}

/// What is wrong with a checkpoint.
#[derive(Debug)]
pub enum CheckpointProblem {
    /// The file cannot be read or written, or is not a valid, intact safetensors file.
    File(Problem),
    /// A safetensors file, but not a constnet checkpoint of this version.
    NotACheckpoint(String),
    /// A metadata value is missing or unreadable.
    Metadata(String),
    /// The recipe holds a value training cannot use.
    Recipe(InvalidConfig),
    /// It belongs to another training set.
    Dataset {
        /// Samples of the training set it was written for.
        recorded: usize,
        /// Samples of this one.
        found: usize,
    },
    /// Its position does not fit its recipe.
    Position(String),
    /// The run's parameters are not finite: it must not replace a good checkpoint.
    Diverged {
        /// Steps taken.
        step: u64,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointProblem::File(p) => write!(f, "{p}"),
            CheckpointProblem::NotACheckpoint(what) => {
                write!(f, "not a constnet checkpoint: {what}")
            }
            CheckpointProblem::Metadata(what) => write!(f, "checkpoint metadata: {what}"),
            CheckpointProblem::Recipe(e) => write!(f, "checkpoint recipe: {e}"),
            CheckpointProblem::Dataset { recorded, found } => write!(
                f,
                "checkpoint: it was written for a training set of {recorded} samples; this one has {found}"
            ),
            CheckpointProblem::Position(what) => write!(f, "checkpoint: {what}"),
            CheckpointProblem::Diverged { step } => write!(
                f,
                "the parameters are no longer finite at step {step}: training diverged; this file still holds the last good checkpoint"
            ),
        }
    }
}

impl std::error::Error for CheckpointError {}

impl<N: Network> Run<N> {
    /// Writes the whole state of the run to `path`, atomically: parameters, optimizer state,
    /// position and recipe. Resuming from this file continues bit for bit as if the run had not
    /// stopped. A diverged run (non-finite parameters) is refused, so the last good checkpoint
    /// stays.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), CheckpointError> {
        let at = |problem| CheckpointError {
            path: path.to_path_buf(),
            problem,
        };
        if !self.is_finite() {
            return Err(at(CheckpointProblem::Diverged { step: self.steps }));
        }
        let bytes = self
            .checkpoint_bytes()
            .map_err(|p| at(CheckpointProblem::File(p)))?;
        write_bytes_atomic(path, &bytes)
            .map_err(|e| at(CheckpointProblem::File(Problem::Io(e))))?;
        self.set_last_checkpoint(path.to_path_buf());
        Ok(())
    }

    /// The bytes [`Run::save_checkpoint`] writes.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>, Problem> {
        // The model's buffers (batch norms' running statistics) too; the optimizer's state
        // covers the parameters only.
        let mut entries = entries_of::<N>("model", self.net().storage(), N::TENSORS);
        let optimizer = self.optimizer();
        for (name, state) in optimizer.state() {
            if !state.is_empty() {
                entries.extend(entries_of::<N>(name, state, N::PARAM_TENSORS));
            }
        }
        let header = Header {
            config: self.config,
            train_len: self.train_len(),
            epoch: self.epoch,
            steps: self.steps,
            optimizer_steps: self.optimizer_steps(),
        };
        let mut typed: Vec<_> = entries.iter().map(safetensors::Entry::typed).collect();
        typed.extend(safetensors::tracked_entries("model", self.net()));
        let mut meta = encode_header(&header);
        let (loss_sum, samples) = self.epoch_loss;
        meta.insert(EPOCH_LOSS_SUM.into(), loss_sum.to_string());
        meta.insert(EPOCH_SAMPLES.into(), samples.to_string());
        safetensors::encode_typed(&typed, meta)
    }

    /// Continues a run from a checkpoint written by [`Run::save_checkpoint`], on a training
    /// set of `train_len` samples (which must be the one the run started on).
    pub fn resume(path: &Path, train_len: usize) -> Result<Self, CheckpointError> {
        let at = |problem| CheckpointError {
            path: path.to_path_buf(),
            problem,
        };
        let cap = safetensors::max_file_len::<N>();
        let bytes =
            safetensors::open(path, cap).map_err(|e| at(CheckpointProblem::File(e.problem)))?;
        let run = Self::resume_bytes(&bytes, train_len).map_err(at)?;
        run.set_last_checkpoint(path.to_path_buf());
        Ok(run)
    }

    /// [`Run::resume`] from the bytes of a checkpoint file.
    pub fn resume_bytes(bytes: &[u8], train_len: usize) -> Result<Self, CheckpointProblem> {
        if bytes.starts_with(&crate::format::raw::MAGIC) {
            return Err(CheckpointProblem::NotACheckpoint(
                "a raw parameter blob: a model for inference, not a training run".into(),
            ));
        }
        let decoded = safetensors::decode(bytes).map_err(CheckpointProblem::File)?;
        let header = decode_header(&decoded.metadata)?;
        if header.train_len != train_len {
            return Err(CheckpointProblem::Dataset {
                recorded: header.train_len,
                found: train_len,
            });
        }
        let mut run = Self::new(header.config, train_len).map_err(CheckpointProblem::Recipe)?;
        run.epoch = header.epoch;
        run.steps = header.steps;
        run.epoch_loss = epoch_loss(&decoded.metadata, train_len)?;
        let t = header.optimizer_steps;
        let (net, optimizer) = run.model_mut();
        fill::<N>(&decoded, "model", net.storage_mut(), N::TENSORS)?;
        let tracked =
            safetensors::read_tracked::<N>(&decoded, "model").map_err(CheckpointProblem::File)?;
        net.batches_tracked_mut().copy_from_slice(&tracked);
        optimizer.set_steps_taken(t);
        let names = optimizer.state().map(|(name, _)| name);
        let mut expected = N::TENSORS + N::BATCH_NORMS;
        for (name, block) in names.into_iter().zip(optimizer.state_mut()) {
            if !block.is_empty() {
                fill::<N>(&decoded, name, block, N::PARAM_TENSORS)?;
                expected += N::PARAM_TENSORS;
            }
        }
        // Every tensor was read by name: one more means another network (batch norms
        // resumed without them, say), which must not be dropped silently.
        if decoded.tensors.len() != expected {
            return Err(CheckpointProblem::NotACheckpoint(format!(
                "it holds {} tensors where this network's run has {expected}: a run of another \
                 network (train --arch)",
                decoded.tensors.len()
            )));
        }
        Ok(run)
    }
}

/// Metadata keys of the current epoch's loss so far (its sum weighted by samples, shortest
/// round-trip decimal) and its samples, so a resumed epoch reports the mean over all of it.
const EPOCH_LOSS_SUM: &str = "epoch.loss_sum";
const EPOCH_SAMPLES: &str = "epoch.samples";

/// The current epoch's loss so far as recorded; (0, 0) in a checkpoint written before it
/// was (the resumed epoch then reports the mean over the steps after the resume).
fn epoch_loss(
    meta: &HashMap<String, String>,
    train_len: usize,
) -> Result<(f64, usize), CheckpointProblem> {
    let (Some(sum), Some(samples)) = (meta.get(EPOCH_LOSS_SUM), meta.get(EPOCH_SAMPLES)) else {
        return Ok((0.0, 0));
    };
    let sum = sum
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0);
    let samples = samples.parse::<usize>().ok().filter(|&n| n <= train_len);
    match (sum, samples) {
        (Some(sum), Some(samples)) => Ok((sum, samples)),
        _ => Err(CheckpointProblem::Metadata(format!(
            "{EPOCH_LOSS_SUM} and {EPOCH_SAMPLES} must be a finite sum >= 0 and at most the \
             training set's samples"
        ))),
    }
}

/// A checkpoint's header: the recipe and the run's position, as recorded in its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The recipe.
    pub config: Config,
    /// Samples of the training set the run trains on.
    pub train_len: usize,
    /// Epochs completed.
    pub epoch: u32,
    /// Optimizer steps completed.
    pub steps: u64,
    /// The optimizer's own step count (Adam's `t`).
    pub optimizer_steps: u64,
}

/// Reads and validates a checkpoint's header from its metadata: the format version, every
/// recipe value ([`Config::validate`]) and a position that fits the recipe. The metadata is
/// under the file's header checksum, so this only ever sees what a writer wrote; the checks
/// are for writers of other versions, and for the fuzzer.
pub fn decode_header(meta: &HashMap<String, String>) -> Result<Header, CheckpointProblem> {
    match meta.get(CHECKPOINT_KEY).map(String::as_str) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(CheckpointProblem::NotACheckpoint(format!(
                "format version {v}, this build reads version {VERSION}"
            )));
        }
        None => {
            return Err(CheckpointProblem::NotACheckpoint(
                "no checkpoint metadata (a model file? use it with eval or predict)".into(),
            ));
        }
    }
    let int = |key: &str| number(meta, key).map_err(CheckpointProblem::Metadata);
    let config = config_from_metadata(meta).map_err(CheckpointProblem::Metadata)?;
    config.validate().map_err(CheckpointProblem::Recipe)?;
    let header = Header {
        config,
        train_len: usize::try_from(int("train_len")?)
            .map_err(|_| CheckpointProblem::Metadata("train_len out of range".into()))?,
        epoch: u32::try_from(int("epoch")?)
            .map_err(|_| CheckpointProblem::Metadata("epoch out of range".into()))?,
        steps: int("step")?,
        optimizer_steps: int("optimizer.t")?,
    };
    let (step, epoch, epochs) = (header.steps, header.epoch, u64::from(config.epochs));
    let per_epoch = header.train_len.div_ceil(config.batch) as u64;
    let fits = per_epoch > 0
        && u64::from(epoch) <= epochs
        && step <= epochs * per_epoch
        && step >= u64::from(epoch) * per_epoch
        && (step < (u64::from(epoch) + 1) * per_epoch || u64::from(epoch) == epochs);
    if !fits {
        return Err(CheckpointProblem::Position(format!(
            "step {step} does not fit epoch {epoch} of {epochs} with {per_epoch} batches per epoch"
        )));
    }
    Ok(header)
}

/// The metadata [`decode_header`] reads back as `header`.
pub fn encode_header(header: &Header) -> HashMap<String, String> {
    let mut meta = checkpoint_metadata(&header.config);
    meta.insert("optimizer.t".into(), header.optimizer_steps.to_string());
    meta.insert("epoch".into(), header.epoch.to_string());
    meta.insert("step".into(), header.steps.to_string());
    meta.insert("train_len".into(), header.train_len.to_string());
    meta
}

/// The first `tensors` tensors of a block named `prefix/name`, for a checkpoint.
fn entries_of<'a, N: Network>(prefix: &str, block: &'a [f32], tensors: usize) -> Vec<Entry<'a>> {
    (0..tensors)
        .map(|i| {
            let info = N::tensor_info(i);
            Entry {
                name: format!("{prefix}/{}", info.name),
                shape: info.shape.to_vec(),
                values: &block[info.range()],
            }
        })
        .collect()
}

/// Fills the first `tensors` tensors of a block from the tensors named `prefix/name`.
fn fill<N: Network>(
    decoded: &Decoded<'_>,
    prefix: &str,
    block: &mut [f32],
    tensors: usize,
) -> Result<(), CheckpointProblem> {
    for i in 0..tensors {
        let info = N::tensor_info(i);
        let name = format!("{prefix}/{}", info.name);
        let bytes = safetensors::tensor_bytes(decoded, &name, info.shape)
            .map_err(CheckpointProblem::File)?;
        safetensors::copy_f32(bytes, &mut block[info.range()]);
    }
    Ok(())
}

/// The recipe as checkpoint metadata: one key per [`Config`] field, its value in JSON. Floats
/// go through `f64`, whose shortest decimal form reads back to the same bits.
fn checkpoint_metadata(c: &Config) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = recipe_fields(c)
        .into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect();
    m.insert(CHECKPOINT_KEY.into(), VERSION.into());
    m
}

/// The recipe back from checkpoint metadata, from the keys that name a [`Config`] field; a
/// field the file lacks (it predates the field) is the default's.
fn config_from_metadata(m: &HashMap<String, String>) -> Result<Config, String> {
    let mut fields = serde_json::Map::new();
    for key in recipe_fields(&Config::default()).keys() {
        if let Some(value) = m.get(key) {
            let value = serde_json::from_str(value)
                .map_err(|e| format!("metadata {key:?} is not JSON: {e}"))?;
            fields.insert(key.clone(), value);
        }
    }
    serde_json::from_value(serde_json::Value::Object(fields.clone())).map_err(|e| {
        // serde does not say which field it was: the first that fails on its own.
        let fails_alone = |(key, value): &(&String, &serde_json::Value)| {
            let mut one = recipe_fields(&Config::default());
            one.insert((*key).clone(), (*value).clone());
            serde_json::from_value::<Config>(serde_json::Value::Object(one)).is_err()
        };
        match fields.iter().find(fails_alone) {
            Some((key, _)) => format!("metadata {key:?}: {e}"),
            None => format!("recipe: {e}"),
        }
    })
}

/// A recipe's fields by name, as JSON values.
fn recipe_fields(c: &Config) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => unreachable!("a Config serialises to a JSON object"),
    }
}

/// A whole number in the metadata, with an error naming the key.
fn number(m: &HashMap<String, String>, key: &str) -> Result<u64, String> {
    let value = m.get(key).ok_or(format!("metadata lacks {key:?}"))?;
    value
        .parse::<u64>()
        .map_err(|_| format!("metadata {key:?} is not a number"))
}
