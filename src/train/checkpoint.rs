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

use super::{BATCH, Config, InvalidConfig, OptimizerChoice, Run, ScheduleChoice};
use crate::atomic_file::write_bytes_atomic;
use crate::data::augment::{Affine, Augment, Elastic};
use crate::format::Problem;
use crate::format::safetensors::{self, Decoded, Entry};
use crate::layers::Init;
use crate::model::Network;
use crate::optim::{AdamConfig, Optimizer, RmsPropConfig, SgdConfig};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::format::safetensors::CHECKPOINT_KEY;
/// The format version written and read: 2 has the header under a checksum.
const VERSION: &str = "2";

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
        safetensors::encode_typed(&typed, encode_header(&header))
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
    let int = |key: &str| Meta(meta).number(key).map_err(CheckpointProblem::Metadata);
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

/// Floats are recorded by their bits, so a resumed run uses exactly the same values.
fn float(x: f32) -> String {
    format!("{:08x}", x.to_bits())
}

/// The recipe as checkpoint metadata.
fn checkpoint_metadata(c: &Config) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert(CHECKPOINT_KEY.into(), VERSION.into());
    m.insert("epochs".into(), c.epochs.to_string());
    m.insert("lr".into(), float(c.lr));
    m.insert("seed".into(), c.seed.to_string());
    m.insert("dropout".into(), float(c.dropout));
    m.insert("log_every".into(), c.log_every.to_string());
    m.insert("threads".into(), c.threads.to_string());
    m.insert("batch".into(), c.batch.to_string());
    let init = match c.init {
        Init::Normal { std } => format!("{} {}", c.init, float(std)),
        other => other.to_string(),
    };
    m.insert("init".into(), init);
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
        OptimizerChoice::RmsProp(r) => format!(
            "{} {} {} {} {} {} {}",
            c.optimizer,
            float(r.alpha),
            float(r.eps),
            float(r.weight_decay),
            float(r.momentum),
            r.centered,
            float(r.clip_grad_norm)
        ),
    };
    m.insert("optimizer".into(), optimizer);
    // Written only when set, so checkpoints without them read as before.
    if c.val > 0 {
        m.insert("val".into(), c.val.to_string());
    }
    if let Some(a) = c.augment.affine {
        let ranges = [a.rotate, a.translate, a.scale, a.shear].map(float);
        m.insert("augment.affine".into(), ranges.join(" "));
    }
    if let Some(e) = c.augment.elastic {
        m.insert(
            "augment.elastic".into(),
            format!("{} {}", float(e.alpha), float(e.sigma)),
        );
    }
    m
}

/// The recipe back from checkpoint metadata.
fn config_from_metadata(m: &HashMap<String, String>) -> Result<Config, String> {
    let meta = Meta(m);
    let val = match m.get("val") {
        None => 0,
        Some(_) => {
            usize::try_from(meta.number("val")?).map_err(|_| "val out of range".to_string())?
        }
    };
    // Checkpoints written before the batch size was a choice trained with the reference's.
    let batch = match m.get("batch") {
        None => BATCH,
        Some(_) => {
            usize::try_from(meta.number("batch")?).map_err(|_| "batch out of range".to_string())?
        }
    };
    Ok(Config {
        batch,
        val,
        augment: augment_from(&meta)?,
        epochs: u32::try_from(meta.number("epochs")?)
            .map_err(|_| "epochs out of range".to_string())?,
        lr: bits(meta.get("lr")?)?,
        optimizer: optimizer_from(&meta.fields("optimizer")?)?,
        schedule: schedule_from(&meta.fields("schedule")?)?,
        seed: meta.number("seed")?,
        dropout: bits(meta.get("dropout")?)?,
        init: init_from(&meta.fields("init")?)?,
        log_every: meta.number("log_every")?,
        threads: usize::try_from(meta.number("threads")?)
            .map_err(|_| "threads out of range".to_string())?,
    })
}

/// Checkpoint metadata, read value by value with errors naming the key.
struct Meta<'a>(&'a HashMap<String, String>);

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or(format!("metadata lacks {key:?}"))
    }

    fn number(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .parse::<u64>()
            .map_err(|_| format!("metadata {key:?} is not a number"))
    }

    /// The value's space-separated fields.
    fn fields(&self, key: &str) -> Result<Vec<&str>, String> {
        self.get(key).map(|v| v.split(' ').collect())
    }

    /// An optional value of floats (by their bits).
    fn floats(&self, key: &str) -> Result<Option<Vec<f32>>, String> {
        self.0
            .get(key)
            .map(|v| v.split(' ').map(bits).collect())
            .transpose()
    }
}

/// A float recorded by [`float`].
fn bits(s: &str) -> Result<f32, String> {
    u32::from_str_radix(s, 16)
        .map(f32::from_bits)
        .map_err(|_| format!("bad float {s:?}"))
}

fn flag(s: &str) -> Result<bool, String> {
    s.parse::<bool>().map_err(|_| format!("bad flag {s:?}"))
}

fn init_from(init: &[&str]) -> Result<Init, String> {
    match (init[0].parse::<Init>(), &init[1..]) {
        (Ok(Init::Normal { .. }), [std]) => Ok(Init::Normal { std: bits(std)? }),
        (Ok(Init::Normal { .. }), _) => Err(format!("bad init {init:?}")),
        (Ok(named), []) => Ok(named),
        (Ok(_), _) => Err(format!("bad init {init:?}")),
        (Err(e), _) => Err(format!("metadata \"init\": {e}")),
    }
}

fn schedule_from(schedule: &[&str]) -> Result<ScheduleChoice, String> {
    let kind = schedule[0]
        .parse::<ScheduleChoice>()
        .map_err(|e| format!("metadata \"schedule\": {e}"))?;
    match (kind, &schedule[1..]) {
        (ScheduleChoice::Step { .. }, [every, gamma]) => Ok(ScheduleChoice::Step {
            every: every.parse().map_err(|_| "bad step schedule".to_string())?,
            gamma: bits(gamma)?,
        }),
        (s @ (ScheduleChoice::Constant | ScheduleChoice::Cosine), []) => Ok(s),
        _ => Err(format!("bad schedule {schedule:?}")),
    }
}

fn optimizer_from(optimizer: &[&str]) -> Result<OptimizerChoice, String> {
    let kind = optimizer[0]
        .parse::<OptimizerChoice>()
        .map_err(|e| format!("metadata \"optimizer\": {e}"))?;
    Ok(match (kind, &optimizer[1..]) {
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
        (OptimizerChoice::RmsProp(_), [alpha, eps, wd, momentum, centered, clip]) => {
            OptimizerChoice::RmsProp(RmsPropConfig {
                alpha: bits(alpha)?,
                eps: bits(eps)?,
                weight_decay: bits(wd)?,
                momentum: bits(momentum)?,
                centered: flag(centered)?,
                clip_grad_norm: bits(clip)?,
            })
        }
        _ => return Err(format!("bad optimizer {optimizer:?}")),
    })
}

fn augment_from(meta: &Meta<'_>) -> Result<Augment, String> {
    let affine = match meta.floats("augment.affine")?.as_deref() {
        None => None,
        Some(&[rotate, translate, scale, shear]) => Some(Affine {
            rotate,
            translate,
            scale,
            shear,
        }),
        Some(_) => return Err("bad metadata \"augment.affine\"".into()),
    };
    let elastic = match meta.floats("augment.elastic")?.as_deref() {
        None => None,
        Some(&[alpha, sigma]) => Some(Elastic { alpha, sigma }),
        Some(_) => return Err("bad metadata \"augment.elastic\"".into()),
    };
    Ok(Augment { affine, elastic })
}
