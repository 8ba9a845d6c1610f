//! A training recipe: the configuration of a run, its text forms (shared by the command line
//! and checkpoints) and its checks.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::data::augment::{Affine, Augment, Elastic};
use crate::layers::Init;
use crate::optim::{AdamConfig, Schedule};
pub use crate::optim::{OptimizerChoice, ParseOptimizerError};
use std::fmt;

/// Samples per training batch in the reference recipe ([`Config::batch`]'s default), and per
/// evaluation batch.
pub const BATCH: usize = 64;

/// The largest training batch ([`Config::batch`]): the batch workspaces are allocated this
/// large whatever the batch, so that one compiled size serves every batch. A workspace holds
/// a batch of `n` packed in its first `n` columns, so a smaller batch touches only that part,
/// and computes the same bits as in a workspace of exactly its size.
pub const MAX_BATCH: usize = 256;

/// How the learning rate evolves, in epochs (turned into a per-step [`Schedule`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

crate::names::text_by_name!(ScheduleChoice, ParseScheduleError, "schedule");

/// A training recipe. Checkpoints record it field by field through serde (a field they lack
/// reads as [`Config::default`]'s), so a new field needs no code there.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// Samples held out of training for validation: the last `val` of a fixed shuffle of the
    /// training set (0: none).
    pub val: usize,
    /// Augmentation of each training sample (none by default).
    pub augment: Augment,
    /// Samples per training batch, 1 to [`MAX_BATCH`] ([`BATCH`] by default).
    pub batch: usize,
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
            val: 0,
            augment: Augment::NONE,
            batch: BATCH,
        }
    }
}

impl fmt::Display for Config {
    /// The recipe in one line, as `constnet train` prints it, e.g. "adam, lr 0.001, constant
    /// schedule, 10 epochs, batch 64, seed 0, 2 threads". `log_every` is not part of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.optimizer.describe(f)?;
        write!(f, ", lr {}, {}", self.lr, self.schedule)?;
        match self.schedule {
            ScheduleChoice::Step { every, gamma } => write!(f, " (×{gamma} every {every} epochs)")?,
            ScheduleChoice::Cosine => write!(f, " to 0")?,
            ScheduleChoice::Constant => {}
        }
        write!(
            f,
            " schedule, {} epochs, batch {}, seed {}",
            self.epochs, self.batch, self.seed
        )?;
        match self.init {
            Init::PyTorch => {}
            Init::Normal { std } => write!(f, ", normal init (std {std})")?,
            init => write!(f, ", {init} init")?,
        }
        if self.dropout > 0.0 {
            write!(f, ", dropout {}", self.dropout)?;
        }
        if let Some(a) = self.augment.affine {
            write!(
                f,
                ", affine (±{}°, ±{} px, ±{} scale, ±{}° shear)",
                a.rotate, a.translate, a.scale, a.shear
            )?;
        }
        if let Some(e) = self.augment.elastic {
            write!(f, ", elastic (α {}, σ {})", e.alpha, e.sigma)?;
        }
        if self.val > 0 {
            write!(f, ", {} validation samples", self.val)?;
        }
        let clip = self.optimizer.clip_grad_norm();
        if clip > 0.0 {
            write!(f, ", gradient norm clipped to {clip}")?;
        }
        match self.threads {
            1 => write!(f, ", 1 thread"),
            n => write!(f, ", {n} threads"),
        }
    }
}

impl ScheduleChoice {
    /// The per-step schedule of a run of `epochs` epochs of `per_epoch` steps.
    pub fn per_step(&self, epochs: u32, per_epoch: u64) -> Schedule {
        match *self {
            ScheduleChoice::Constant => Schedule::Constant,
            ScheduleChoice::Step { every, gamma } => Schedule::Step {
                every: u64::from(every) * per_epoch,
                gamma,
            },
            ScheduleChoice::Cosine => Schedule::Cosine {
                total: u64::from(epochs) * per_epoch,
            },
        }
    }
}

/// A named recipe: the whole [`Config`] a `--recipe` starts from (other flags change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipeChoice {
    /// [`Config::default`], unchanged: Adam, lr 1e-3, 10 epochs, constant rate.
    Reference,
    /// [`Config::augmented`]: affine and elastic augmentation, 100 epochs, cosine schedule.
    Augmented,
}

impl RecipeChoice {
    /// Every recipe, in the order the CLI lists them.
    pub const ALL: [RecipeChoice; 2] = [RecipeChoice::Reference, RecipeChoice::Augmented];

    /// The recipe's lowercase name, which `Display` writes and `FromStr` reads.
    pub const fn name(self) -> &'static str {
        match self {
            RecipeChoice::Reference => "reference",
            RecipeChoice::Augmented => "augmented",
        }
    }

    /// The recipe's configuration.
    pub fn config(self) -> Config {
        match self {
            RecipeChoice::Reference => Config::default(),
            RecipeChoice::Augmented => Config::augmented(),
        }
    }
}

crate::names::text_by_name!(RecipeChoice, ParseRecipeError, "recipe");

impl Config {
    /// The augmented recipe: the reference recipe with every training sample warped on the fly
    /// (a random affine warp, [`Affine::DEFAULT`], and Simard's elastic distortion,
    /// [`Elastic::DEFAULT`]), 100 epochs and a cosine schedule, since a network that never sees
    /// the same image twice needs more passes and a decaying rate to settle.
    pub fn augmented() -> Self {
        Self {
            epochs: 100,
            schedule: ScheduleChoice::Cosine,
            augment: Augment {
                affine: Some(Affine::DEFAULT),
                elastic: Some(Elastic::DEFAULT),
            },
            ..Self::default()
        }
    }
}

/// A recipe value outside what training accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidConfig {
    /// The field.
    pub field: &'static str,
    /// Its value, as text.
    pub value: String,
    /// What it must be.
    pub must_be: &'static str,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}; it must be {}",
            self.field, self.value, self.must_be
        )
    }
}

impl std::error::Error for InvalidConfig {}

impl Config {
    /// Checks every value: what the command line refuses is refused here too, for recipes
    /// that come from elsewhere (a checkpoint, a program).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field, value: &dyn fmt::Display, must_be| {
            Err(InvalidConfig {
                field,
                value: value.to_string(),
                must_be,
            })
        };
        let finite_positive = |x: f32| x.is_finite() && x > 0.0;
        let unit = |x: f32| (0.0..1.0).contains(&x);
        if self.epochs == 0 {
            return bad("epochs", &self.epochs, "at least 1");
        }
        if !finite_positive(self.lr) {
            return bad("lr", &self.lr, "a finite number > 0");
        }
        if let Init::Normal { std } = self.init
            && !finite_positive(std)
        {
            return bad("init std", &std, "a finite number > 0");
        }
        if !unit(self.dropout) {
            return bad("dropout", &self.dropout, "in [0, 1)");
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return bad("batch", &self.batch, "in 1..=256");
        }
        if !(1..=crate::parallel::MAX_THREADS.min(self.batch)).contains(&self.threads) {
            return bad(
                "threads",
                &self.threads,
                "in 1..=16 and at most the batch size",
            );
        }
        if let Err(why) = self.augment.validate() {
            return bad("augment", &self.augment.name(), why);
        }
        if self.log_every == 0 {
            return bad("log_every", &self.log_every, "at least 1");
        }
        if let ScheduleChoice::Step { every, gamma } = self.schedule {
            if every == 0 {
                return bad("step schedule's every", &every, "at least 1");
            }
            if !finite_positive(gamma) {
                return bad("step schedule's gamma", &gamma, "a finite number > 0");
            }
        }
        self.optimizer.check().map_err(|e| InvalidConfig {
            field: e.field,
            value: e.value.to_string(),
            must_be: e.must_be,
        })
    }
}
