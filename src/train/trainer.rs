//! The common case in one call: a recipe, a few changes to it, a dataset, a trained network.
//!
//! [`Trainer`] hides what [`super::fit`] and [`super::Run`] expose for experts (the kernel
//! path, the generators, the batch workspaces, the threads, the hooks between steps): it
//! creates the run, trains every epoch on the best kernel path and returns the network with
//! what each epoch measured. The same recipe and data give the same bits as the explicit path.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use super::{BatchReport, Config, EpochReport, Evaluation, Report, Run};
use crate::data::Dataset;
use crate::model::Network;
use std::error::Error;

/// Trains a network on a dataset with a recipe ([`Config`]), changed by the builder methods.
///
/// ```
/// use constnet::data::InMemory;
/// use constnet::prelude::*;
/// use constnet::train::{Config, Trainer};
///
/// constnet::network! {
///     /// 4 features → 8 hidden → 2 classes.
///     pub struct Tiny { fc1: Dense<4, 8>, fc2: Dense<8, 2> }
/// }
///
/// // Class 1 when the first feature is the larger of the first two.
/// let (mut rows, mut labels) = (Vec::new(), Vec::new());
/// for i in 0..200u32 {
///     let (a, b) = ((i * 37 % 101) as f32 / 100.0, (i * 61 % 97) as f32 / 96.0);
///     rows.extend([a, b, 0.5, 1.0]);
///     labels.push(u8::from(a > b));
/// }
/// let data = InMemory::from_f32(rows, labels, 4)?;
/// let trained = Trainer::new(Config::reference())
///     .epochs(30)
///     .seed(1)
///     .batch_size(16)
///     .lr(0.01)
///     .fit::<Tiny>(&data)?;
/// assert!(trained.evaluation.accuracy() > 0.9);
/// let class = trained.net.classify(&[0.9, 0.1, 0.5, 1.0]);
/// assert_eq!(class, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Trainer {
    config: Config,
}

/// What [`Trainer::fit`] returns: the trained network, its last evaluation and every epoch's
/// report.
pub struct Trained<N> {
    /// The parameters after the last epoch.
    pub net: Box<N>,
    /// The last epoch's evaluation on the test data (on the training data with
    /// [`Trainer::fit`]).
    pub evaluation: Evaluation,
    /// What each epoch measured, in order.
    pub epochs: Vec<EpochReport>,
}

impl Trainer {
    /// A trainer for `config` with one thread (call [`Trainer::threads`] for more).
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// Passes over the training data.
    pub fn epochs(mut self, epochs: u32) -> Self {
        self.config.epochs = epochs;
        self
    }

    /// The seed of every random choice (initialisation, order, dropout).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// The base learning rate.
    pub fn lr(mut self, lr: f32) -> Self {
        self.config.lr = lr;
        self
    }

    /// Samples per batch, 1 to [`super::MAX_BATCH`].
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.config.batch = batch;
        self
    }

    /// Threads splitting each batch (results are reproducible for a given count).
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = threads;
        self
    }

    /// The recipe as changed so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Trains a network `N` on `train`, measuring it on `train` after each epoch.
    pub fn fit<N: Network>(
        &self,
        train: &(impl Dataset + ?Sized),
    ) -> Result<Trained<N>, Box<dyn Error>> {
        self.fit_and_test(train, train)
    }

    /// Trains a network `N` on `train`, measuring it on `test` after each epoch.
    ///
    /// Fails on a recipe value training cannot use ([`Config::validate`]), on data that do not
    /// fit the network ([`crate::data::DatasetError`]) and when training diverges
    /// ([`super::TrainError`]).
    pub fn fit_and_test<N: Network>(
        &self,
        train: &(impl Dataset + ?Sized),
        test: &(impl Dataset + ?Sized),
    ) -> Result<Trained<N>, Box<dyn Error>> {
        crate::data::dataset::check(test, N::INPUT, N::OUTPUT)?;
        let mut run = Run::<N>::new(self.config, train.len())?;
        let mut epochs = Vec::new();
        let evaluation = super::fit(
            &mut run,
            train,
            test,
            &mut Silent,
            |_| Ok(()),
            |_, report| {
                epochs.push(*report);
                Ok(())
            },
        )?;
        // Copied into a box of its own: a network can be too large for a stack temporary.
        let mut net = N::zeroed_box();
        net.flat_mut().copy_from_slice(run.net().flat());
        Ok(Trained {
            net,
            evaluation,
            epochs,
        })
    }
}

impl Config {
    /// The reference recipe ([`Config::default`]): Adam, lr 1e-3, batch 64, 10 epochs,
    /// constant rate, seed 0, PyTorch's initialisation, one thread.
    pub fn reference() -> Self {
        Self::default()
    }
}

/// A report that prints nothing.
struct Silent;

impl Report for Silent {
    fn batch(&mut self, _: &BatchReport) {}
    fn epoch(&mut self, _: &EpochReport) {}
}
