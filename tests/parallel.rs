//! Data-parallel training: reproducible to the bit for a given thread count, the same training
//! as one thread up to rounding, and able to learn.

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::parallel::Pacing;
use constnet::train::{BatchReport, Config, EpochReport, OptimizerChoice, Report, Run};
use constnet::{AdamConfig, MnistMlp, Network, Workspace};

struct Losses(Vec<f32>);

impl Report for Losses {
    fn batch(&mut self, r: &BatchReport) {
        self.0.push(r.loss);
    }
    fn epoch(&mut self, _: &EpochReport) {}
}

fn synthetic(tag: &str, train: u32) -> (TempDir, Mnist) {
    let tmp = TempDir::new(tag);
    write_synthetic_mnist(&tmp.0, train, 10);
    let mnist = Mnist::open(&tmp.0, OpenOptions::default()).unwrap();
    (tmp, mnist)
}

fn train(mnist: &Mnist, threads: usize, epochs: u32, dropout: f32) -> (Run<MnistMlp>, Vec<f32>) {
    let config = Config {
        threads,
        dropout,
        log_every: 1,
        epochs,
        ..Config::default()
    };
    let mut run = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
    let mut losses = Losses(Vec::new());
    for _ in 0..epochs {
        run.train_epoch(&mnist.train, &mut losses, |_| Ok(()))
            .unwrap();
    }
    (run, losses.0)
}

fn bits(run: &Run<MnistMlp>) -> Vec<u32> {
    param_bits(run.net())
}

#[test]
fn each_thread_count_is_reproducible_to_the_bit() {
    // 1000 samples: 15 full batches and a partial one of 40 (split 13/13/14 across 3 threads).
    let (_tmp, mnist) = synthetic("repro", 1000);
    for threads in [1, 2, 3] {
        let (a, la) = train(&mnist, threads, 2, 0.1);
        let (b, lb) = train(&mnist, threads, 2, 0.1);
        assert!(bits(&a) == bits(&b), "{threads} threads: two runs differ");
        assert_eq!(la, lb);
        assert_eq!(a.threads(), threads);
    }
}

#[test]
fn more_threads_train_the_same_up_to_rounding() {
    let (_tmp, mnist) = synthetic("same", 640);
    // Without dropout (whose streams are per thread), two threads compute the same gradients
    // as one: the sums over the batch run over the samples in the same order whatever the
    // split, and shards of 32 are whole vectors, so even the rounding is the same.
    let (one, l1) = train(&mnist, 1, 1, 0.0);
    let (two, l2) = train(&mnist, 2, 1, 0.0);
    assert!(
        (l1[0] - l2[0]).abs() <= 1e-5 * l1[0],
        "first losses {} vs {}",
        l1[0],
        l2[0]
    );
    for (a, b) in l1.iter().zip(&l2) {
        assert!((a - b).abs() <= 0.01 * a, "losses {a} vs {b}");
    }
    let (n1, n2) = (one.net(), two.net());
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for i in 0..MnistMlp::TENSORS {
        for (a, b) in n1.tensor(i).iter().zip(n2.tensor(i)) {
            diff += f64::from(a - b).powi(2);
            norm += f64::from(*a).powi(2);
        }
    }
    assert!(
        diff.sqrt() < 0.01 * norm.sqrt(),
        "parameters drifted apart: {} vs norm {}",
        diff.sqrt(),
        norm.sqrt()
    );
    assert!(
        bits(&one) == bits(&two),
        "two threads should give the bits of one (shards of 32 are whole vectors)"
    );
}

#[test]
fn two_threads_learn_the_real_data() {
    let mnist = Mnist::open(&mnist_dir(), OpenOptions::default()).unwrap();
    let config = Config {
        threads: 2,
        ..Config::default()
    };
    let mut run = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
    run.train_epoch(&mnist.train, &mut Losses(Vec::new()), |_| Ok(()))
        .unwrap();
    let mut ws = <MnistMlp as Network>::Workspace::<64>::zeroed_box();
    let accuracy =
        constnet::train::evaluate(constnet::Network::view(run.net()), &mnist.test, &mut ws)
            .accuracy();
    assert!(
        accuracy > 0.95,
        "one epoch on two threads: {:.2}%",
        100.0 * accuracy
    );
}

/// Trains `config` for `epochs` with the given pacing; `fail_at` makes the step hook fail once
/// after that many steps (the epoch is aborted and then run on to its end).
fn train_paced(
    mnist: &Mnist,
    config: &Config,
    pacing: Pacing,
    fail_at: Option<u64>,
) -> (Run<MnistMlp>, Vec<f32>) {
    let mut run = Run::<MnistMlp>::new(*config, mnist.train.count).unwrap();
    run.set_pacing(pacing);
    let mut losses = Losses(Vec::new());
    let mut fail_at = fail_at;
    while run.epoch < config.epochs {
        let result = run.train_epoch(&mnist.train, &mut losses, |run| {
            if fail_at == Some(run.steps) {
                fail_at = None;
                return Err("a hook that fails once".into());
            }
            Ok(())
        });
        assert!(result.is_ok() || fail_at.is_none(), "{result:?}");
    }
    (run, losses.0)
}

#[test]
fn who_runs_which_part_changes_no_bit() {
    // Alternate parks the workers every three steps and resumes them three steps later, so
    // thread 0 runs every part of a third of the steps (across epoch ends, a partial last batch,
    // dropout's per-part streams, augmentation's per-part warpers, and gradient clipping's extra
    // barriers); aborting an epoch with the workers parked or not must release them.
    let (_tmp, mnist) = synthetic("pace", 1000);
    for (threads, clip, augment) in [
        (2, 0.0, false),
        (3, 0.0, true),
        (2, 1.0, false),
        (3, 0.5, true),
    ] {
        let mut config = Config {
            threads,
            dropout: 0.1,
            log_every: 1,
            epochs: 2,
            augment: if augment {
                Config::augmented().augment
            } else {
                Config::default().augment
            },
            ..Config::default()
        };
        config.optimizer = match config.optimizer {
            OptimizerChoice::Adam(adam) => OptimizerChoice::Adam(AdamConfig {
                clip_grad_norm: clip,
                ..adam
            }),
            other => panic!("the default optimizer is Adam, not {other:?}"),
        };
        let (team, team_losses) = train_paced(&mnist, &config, Pacing::Team, None);
        for fail_at in [None, Some(5), Some(8), Some(17)] {
            let (mixed, losses) = train_paced(&mnist, &config, Pacing::Alternate, fail_at);
            assert!(
                bits(&team) == bits(&mixed),
                "{threads} threads, clip {clip}, augment {augment}, failing at {fail_at:?}: \
                 parking the workers changed the parameters"
            );
            if fail_at.is_none() {
                assert_eq!(team_losses, losses);
                assert!(mixed.steps_alone() > 0 && mixed.steps_alone() < mixed.steps);
            }
        }
        assert_eq!(team.steps_alone(), 0);
    }
}
