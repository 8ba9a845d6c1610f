//! Which optimizer a run trains with, chosen at run time: the one list of optimizers that
//! the command line, recipes and checkpoints see.
//!
//! The list itself is `with_optimizers!` in `optim/mod.rs`: [`OptimizerChoice`] is made from
//! it, and each optimizer's hyperparameters describe themselves through [`Hyperparameters`].
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

// Everything the optimizer list names (`with_optimizers!`), for the enum made from it.
use super::*;
use crate::params::Params;
use core::fmt;

/// What an optimizer's hyperparameters say about themselves.
pub trait Hyperparameters: Copy {
    /// The optimizer's lowercase name (`--optimizer`, checkpoints).
    fn name(&self) -> &'static str;

    /// The global gradient norm gradients are clipped to (0: none).
    fn clip_grad_norm(&self) -> f32;

    /// The first value out of its range, if any.
    fn check(&self) -> Result<(), OutOfRange>;

    /// The optimizer in words, as a recipe's one line starts: "sgd (momentum 0.9, …)".
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// A fresh optimizer with these hyperparameters, its state on the heap.
    fn build<P: Params>(self) -> AnyOptimizer<P>;
}

/// A hyperparameter outside what training accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutOfRange {
    /// Its name.
    pub field: &'static str,
    /// Its value.
    pub value: f32,
    /// What it must be.
    pub must_be: &'static str,
}

/// `Err` naming `field` unless `ok`.
pub(crate) fn require(
    ok: bool,
    field: &'static str,
    value: f32,
    must_be: &'static str,
) -> Result<(), OutOfRange> {
    if ok {
        Ok(())
    } else {
        Err(OutOfRange {
            field,
            value,
            must_be,
        })
    }
}

/// A fraction in [0, 1) (momentum, decay rates).
pub(crate) fn fraction(field: &'static str, value: f32) -> Result<(), OutOfRange> {
    require((0.0..1.0).contains(&value), field, value, "in [0, 1)")
}

/// A finite number > 0 (ε).
pub(crate) fn positive(field: &'static str, value: f32) -> Result<(), OutOfRange> {
    require(
        value.is_finite() && value > 0.0,
        field,
        value,
        "a finite number > 0",
    )
}

/// A finite number ≥ 0 (weight decay, the clipping norm).
pub(crate) fn non_negative(field: &'static str, value: f32) -> Result<(), OutOfRange> {
    require(
        value.is_finite() && value >= 0.0,
        field,
        value,
        "a finite number >= 0",
    )
}

/// The [`OptimizerChoice`] enum and its presets from the list.
macro_rules! choice_enum {
    (() $($(#[$doc:meta])* $name:ident: $o:ident, $c:ident, $s:ident, [$($p:expr),*];)*) => {
        /// Which optimizer to train with.
        #[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum OptimizerChoice {
            $($(#[$doc])* $name($c),)*
        }

        impl OptimizerChoice {
            /// Every kind of optimizer with its default hyperparameters, in the order the CLI
            /// lists them: SGD with momentum 0.9, Adam, AdamW with PyTorch's decay of 0.01,
            /// and RMSprop.
            pub const ALL: [OptimizerChoice; [$($(stringify!($p),)*)*].len()] =
                [$($(OptimizerChoice::$name($p),)*)*];
        }
    };
}
with_optimizers!(choice_enum!());

impl OptimizerChoice {
    /// The kind's lowercase name, which `Display` writes and `FromStr` reads: `sgd`, `adam`,
    /// `adamw` for Adam with decoupled weight decay, or `rmsprop`.
    pub fn name(&self) -> &'static str {
        each!(OptimizerChoice, self, c => c.name())
    }

    /// The global gradient norm gradients are clipped to (0: none).
    pub fn clip_grad_norm(&self) -> f32 {
        each!(OptimizerChoice, self, c => c.clip_grad_norm())
    }

    /// The first hyperparameter out of its range, if any.
    pub fn check(&self) -> Result<(), OutOfRange> {
        non_negative("clip_grad_norm", self.clip_grad_norm())?;
        each!(OptimizerChoice, self, c => c.check())
    }

    /// The optimizer in words (see [`Hyperparameters::describe`]).
    pub fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        each!(OptimizerChoice, self, c => c.describe(f))
    }

    /// A fresh optimizer of this kind for parameters `P`, on the heap.
    pub fn build<P: Params>(&self) -> AnyOptimizer<P> {
        each!(OptimizerChoice, *self, c => c.build())
    }

    /// These hyperparameters with the one named `field` (its name in the config struct, as
    /// checkpoints write it) set to `value`; `None` if this optimizer has no such field, or
    /// `value` does not fit it. Through serde, so a new optimizer's fields need no code here.
    pub fn with_field(&self, field: &str, value: impl serde::Serialize) -> Option<Self> {
        let mut tree = serde_json::to_value(self).ok()?;
        let fields = tree.as_object_mut()?.values_mut().next()?.as_object_mut()?;
        *fields.get_mut(field)? = serde_json::to_value(value).ok()?;
        serde_json::from_value(tree).ok()
    }

    /// The names of the optimizers in [`OptimizerChoice::ALL`] that have a hyperparameter
    /// named `field`.
    pub fn kinds_with(field: &str) -> Vec<&'static str> {
        let has = |c: &Self| {
            let tree = serde_json::to_value(c).ok();
            let fields = tree
                .as_ref()
                .and_then(|t| t.as_object()?.values().next()?.as_object());
            fields.is_some_and(|f| f.contains_key(field))
        };
        Self::ALL
            .iter()
            .filter(|c| has(c))
            .map(Self::name)
            .collect()
    }
}

crate::names::text_by_name!(OptimizerChoice, ParseOptimizerError, "optimizer");
