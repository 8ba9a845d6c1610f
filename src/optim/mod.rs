//! Optimizers over a network's flat parameter block, and learning-rate schedules.
//!
//! An optimizer owns its state (Adam's moments, SGD's velocity, RMSprop's averages: at most
//! [`STATES`] blocks) as blocks of the same type as
//! the parameters ([`Params`]), so every state element lines up with its parameter and an
//! update is one fused pass over whole blocks, or over any part of them: threads each update
//! their own range ([`Optimizer::update_range`]). What one step does to a parameter is a
//! [`Rule`] (the step's constants), computed by [`Optimizer::begin_step`]; the arithmetic is
//! the rule's, on lanes and one float at a time, run by the kernel [`crate::kernels::Update`].
//! The learning rate comes in with each step, from a [`Schedule`].
//!
//! Adding an optimizer: a file here with its hyperparameters (and their
//! `Hyperparameters`), its state (an [`Optimizer`]) and its step (a [`crate::kernels::Step`]: the
//! constants, their lanes and the reference side by side), then one line in
//! `with_optimizers!` below. [`Rule`], [`AnyOptimizer`] and `OptimizerChoice` (the command
//! line, recipes and checkpoints) are made from that list. Flags set hyperparameters by field
//! name, so only a hyperparameter no optimizer had before needs a flag in the CLI's train
//! arguments; the tests that pin the CLI's visible list of optimizers (`tests/cli.rs`,
//! `tests/bad_input.rs`) and the README's copy of `--help` name the new one too.
#![forbid(unsafe_code)]

mod adam;
#[cfg(feature = "std")]
mod choice;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamStep};
#[cfg(feature = "std")]
pub use choice::{Hyperparameters, OptimizerChoice, OutOfRange, ParseOptimizerError};
pub use rmsprop::{RmsProp, RmsPropConfig, RmsPropStep};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig, SgdStep};

use crate::kernels::{Backend, STATES, SumSquares, Update, UpdateRule, Vector};
use crate::params::Params;
use core::ops::Range;

/// The optimizers: one line each, `Variant: Optimizer, Hyperparameters, Step, [presets]`,
/// the presets being what `--optimizer` offers. Passes the list, after `$args`, to `$then!`.
macro_rules! with_optimizers {
    ($then:ident!($($args:tt)*)) => {
        $then! {
            ($($args)*)
            /// SGD with momentum (and optional Nesterov / weight decay).
            Sgd: Sgd, SgdConfig, SgdStep, [SgdConfig::MOMENTUM];
            /// Adam or AdamW.
            Adam: Adam, AdamConfig, AdamStep, [AdamConfig::DEFAULT, AdamConfig::ADAMW];
            /// RMSprop.
            RmsProp: RmsProp, RmsPropConfig, RmsPropStep, [RmsPropConfig::DEFAULT];
        }
    };
}
pub(crate) use with_optimizers;

/// `match $value { $Enum::Variant($x) => $body, … }` over every optimizer (with `each_arm!`
/// in scope).
macro_rules! each {
    ($enum:ident, $value:expr, $x:ident => $body:expr) => {
        $crate::optim::with_optimizers!(each_arm!($enum, $value, $x => $body))
    };
}
#[cfg(feature = "std")]
pub(crate) use each;

/// [`each`]'s expansion, given the list.
macro_rules! each_arm {
    (($enum:ident, $value:expr, $x:ident => $body:expr)
     $($(#[$doc:meta])* $name:ident: $o:ident, $c:ident, $s:ident, [$($p:expr),*];)*) => {
        match $value {
            $($enum::$name($x) => $body,)*
        }
    };
}
#[cfg(feature = "std")]
pub(crate) use each_arm;

/// The [`Rule`] enum from the list.
macro_rules! rule_enum {
    (() $($(#[$doc:meta])* $name:ident: $o:ident, $c:ident, $s:ident, [$($p:expr),*];)*) => {
        /// What one step of an optimizer does to each parameter: one of the optimizers' rules.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Rule {
            $($(#[$doc])* $name($s),)*
        }
    };
}
with_optimizers!(rule_enum!());

impl UpdateRule for Rule {
    fn state_tensors(&self) -> [bool; STATES] {
        each!(Rule, self, r => r.state_tensors())
    }

    #[inline(always)]
    fn update<V: Vector>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: [&mut [f32]; STATES],
    ) -> bool {
        each!(Rule, self, r => r.update::<V>(params, grads, state))
    }

    fn reference(&self, params: &mut [f32], grads: &[f32], state: [&mut [f32]; STATES]) {
        each!(Rule, self, r => r.reference(params, grads, state))
    }
}

/// Something that updates parameters from gradients, one step at a time.
pub trait Optimizer<P: Params> {
    /// The global gradient norm gradients are clipped to before each update (0: none).
    fn clip_grad_norm(&self) -> f32;

    /// What step `t` (from 1) does to each parameter, with learning rate `lr` and every
    /// gradient multiplied by `grad_scale` first (gradient clipping; 1 for none).
    fn rule(&self, t: u64, lr: f32, grad_scale: f32) -> Rule;

    /// Counts a new step and returns its [`Optimizer::rule`].
    fn begin_step(&mut self, lr: f32, grad_scale: f32) -> Rule {
        let t = self.steps_taken() + 1;
        self.set_steps_taken(t);
        self.rule(t, lr, grad_scale)
    }

    /// The state blocks, mutably, in the order of [`Rule::state_tensors`]; empty where the
    /// optimizer keeps none.
    fn state_mut(&mut self) -> [&mut [f32]; STATES];

    /// The state blocks with their names in checkpoints (`"adam.m"`, …), as
    /// [`Optimizer::state_mut`] orders them; `("", [])` where the optimizer keeps none.
    fn state(&self) -> [(&'static str, &[f32]); STATES];

    /// How many updates have been applied.
    fn steps_taken(&self) -> u64;

    /// Sets the step count (to restore a checkpoint).
    fn set_steps_taken(&mut self, t: u64);

    /// Applies `rule` to the elements `range` of the parameters and the state: the update
    /// of one thread's part of a step. Returns whether those gradients were finite.
    fn update_range<K: Backend>(
        &mut self,
        rule: &Rule,
        params: &mut P,
        grads: &P,
        range: Range<usize>,
    ) -> bool {
        let [first, second, third] = self.state_mut().map(|s| part(s, range.clone()));
        let params = &mut params.flat_mut()[range.clone()];
        let grads = &grads.flat()[range];
        K::run(Update {
            rule,
            params,
            grads,
            first,
            second,
            third,
        })
    }

    /// One whole update: checks and clips the gradients' norm if asked, then updates every
    /// parameter. Returns `false` if a gradient was NaN or infinite: then the parameters are
    /// untouched when clipping is on (the norm is checked first) and poisoned otherwise (the
    /// check is fused into the update); either way the run must stop.
    fn step<K: Backend>(&mut self, params: &mut P, grads: &P, lr: f32) -> bool {
        let Some(grad_scale) = clip_scale::<K>(grads.flat(), self.clip_grad_norm()) else {
            return false;
        };
        let rule = self.begin_step(lr, grad_scale);
        self.update_range::<K>(&rule, params, grads, 0..P::LEN)
    }
}

/// The elements `range` of a state block, or the empty block of a state the optimizer does not
/// keep.
fn part(s: &mut [f32], range: Range<usize>) -> &mut [f32] {
    if s.is_empty() { s } else { &mut s[range] }
}

/// The [`AnyOptimizer`] enum from the list.
macro_rules! any_optimizer_enum {
    (() $($(#[$doc:meta])* $name:ident: $o:ident, $c:ident, $s:ident, [$($p:expr),*];)*) => {
        /// An optimizer chosen at run time, with its state on the heap.
        #[cfg(feature = "alloc")]
        pub enum AnyOptimizer<P> {
            $($(#[$doc])* $name(alloc::boxed::Box<$o<P>>),)*
        }

        #[cfg(feature = "alloc")]
        impl<P: Params> AnyOptimizer<P> {
            /// A fresh optimizer with the same kind and configuration.
            pub fn same_kind(&self) -> Self {
                match self {
                    $(AnyOptimizer::$name(o) => AnyOptimizer::$name($o::new_boxed(o.config)),)*
                }
            }
        }

        $(
            #[cfg(feature = "alloc")]
            impl<P> From<alloc::boxed::Box<$o<P>>> for AnyOptimizer<P> {
                fn from(o: alloc::boxed::Box<$o<P>>) -> Self {
                    AnyOptimizer::$name(o)
                }
            }
        )*
    };
}
with_optimizers!(any_optimizer_enum!());

#[cfg(feature = "alloc")]
impl<P: Params> AnyOptimizer<P> {
    /// Copies `from`'s step count and the elements `range` of its state. Both must be of the
    /// same kind.
    pub fn copy_state(&mut self, from: &Self, range: Range<usize>) {
        self.set_steps_taken(from.steps_taken());
        let sources = from.state().map(|(_, s)| s);
        for (dst, src) in self.state_mut().into_iter().zip(sources) {
            if !dst.is_empty() {
                dst[range.clone()].copy_from_slice(&src[range.clone()]);
            }
        }
    }
}

#[cfg(feature = "alloc")]
impl<P: Params> Optimizer<P> for AnyOptimizer<P> {
    fn clip_grad_norm(&self) -> f32 {
        each!(AnyOptimizer, self, o => o.clip_grad_norm())
    }
    fn rule(&self, t: u64, lr: f32, grad_scale: f32) -> Rule {
        each!(AnyOptimizer, self, o => o.rule(t, lr, grad_scale))
    }
    fn state_mut(&mut self) -> [&mut [f32]; STATES] {
        each!(AnyOptimizer, self, o => o.state_mut())
    }
    fn state(&self) -> [(&'static str, &[f32]); STATES] {
        each!(AnyOptimizer, self, o => o.state())
    }
    fn steps_taken(&self) -> u64 {
        each!(AnyOptimizer, self, o => o.steps_taken())
    }
    fn set_steps_taken(&mut self, t: u64) {
        each!(AnyOptimizer, self, o => o.set_steps_taken(t))
    }
}

/// The factor that brings the gradients' global L2 norm down to `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)`, capped at 1); 1 when `max_norm` is 0 (off);
/// `None` when the norm is not finite.
pub fn clip_scale<K: Backend>(grads: &[f32], max_norm: f32) -> Option<f32> {
    if max_norm <= 0.0 {
        return Some(1.0);
    }
    clip_scale_of(K::run(SumSquares(grads)), max_norm)
}

/// [`clip_scale`] from the gradients' sum of squares (summed by parts, for threads).
pub fn clip_scale_of(sum_squares: f32, max_norm: f32) -> Option<f32> {
    let norm = libm::sqrtf(sum_squares);
    norm.is_finite()
        .then(|| (max_norm / (norm + 1e-6)).min(1.0))
}
