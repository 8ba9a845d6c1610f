//! The validation split (fixed, disjoint from training, reported per epoch) and the Gaussian
//! initialisations.

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::train::{self, BatchReport, Config, EpochReport, Report, Run};
use constnet::{Init, MnistMlp, Network};

struct Epochs(Vec<EpochReport>);

impl Report for Epochs {
    fn batch(&mut self, _: &BatchReport) {}
    fn epoch(&mut self, r: &EpochReport) {
        self.0.push(*r);
    }
}

#[test]
fn the_validation_split_is_fixed_disjoint_and_reported() {
    let tmp = TempDir::new("val");
    let data = tmp.path("data");
    std::fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 300, 50);
    let mnist = Mnist::open(&data, OpenOptions::default()).unwrap();
    let config = |seed| Config {
        epochs: 2,
        val: 60,
        seed,
        ..Config::default()
    };
    let a = Run::<MnistMlp>::new(config(1), 300).unwrap();
    let b = Run::<MnistMlp>::new(config(2), 300).unwrap();
    // The same samples for every seed: the tail of one fixed shuffle.
    assert_eq!(a.validation(), b.validation());
    let mut order = vec![0u32; 300];
    constnet::data::batch::validation_split(&mut order);
    assert_eq!(a.validation(), &order[240..]);
    let mut sorted = a.validation().to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 60);
    // Training runs over the other 240: four batches an epoch.
    assert_eq!(a.batches_per_epoch(), 4);
    assert!(
        Run::<MnistMlp>::new(
            Config {
                val: 300,
                ..config(1)
            },
            300
        )
        .is_err()
    );

    let mut run = Run::<MnistMlp>::new(config(1), 300).unwrap();
    let mut epochs = Epochs(Vec::new());
    let mut seen = Vec::new();
    train::fit(
        &mut run,
        &mnist.train,
        &mnist.test,
        &mut epochs,
        |_| Ok(()),
        |_, r| {
            seen.push(r.val_accuracy);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(epochs.0.len(), 2);
    for (r, s) in epochs.0.iter().zip(&seen) {
        let v = r.val_accuracy.expect("a validation accuracy");
        assert!((0.0..=1.0).contains(&v));
        // A multiple of 1/60: measured on the 60 held-out samples.
        assert!(((v * 60.0) - (v * 60.0).round()).abs() < 1e-9, "{v}");
        assert_eq!(Some(v), *s);
    }
    // Without a split there is none.
    let mut run = Run::<MnistMlp>::new(
        Config {
            val: 0,
            ..config(1)
        },
        300,
    )
    .unwrap();
    let mut epochs = Epochs(Vec::new());
    train::fit(
        &mut run,
        &mnist.train,
        &mnist.test,
        &mut epochs,
        |_| Ok(()),
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(epochs.0.iter().all(|r| r.val_accuracy.is_none()));
}

/// Mean, standard deviation and the fraction within one deviation of the weights of tensor `i`.
fn moments(values: &[f32], std: f64) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let within = values.iter().filter(|v| f64::from(v.abs()) < std).count() as f64 / n;
    (mean, var.sqrt(), within)
}

#[test]
fn gaussian_initialisations_have_their_standard_deviations() {
    for (init, std_of) in [
        (
            Init::Normal { std: 0.05 },
            (|_: usize| 0.05) as fn(usize) -> f64,
        ),
        (Init::HeNormal, |inp: usize| (2.0 / inp as f64).sqrt()),
    ] {
        let net = MnistMlp::new_boxed(init, &mut rng(7));
        // fc1: 200,704 weights, fc2: 32,768.
        for (layer, inp) in [(0usize, 784usize), (1, 256)] {
            let std = std_of(inp);
            let (mean, got, within) = moments(net.tensor(2 * layer), std);
            assert!(
                mean.abs() < 0.02 * std,
                "{init:?} fc{}: mean {mean}",
                layer + 1
            );
            assert!(
                (got / std - 1.0).abs() < 0.02,
                "{init:?} fc{}: std {got} vs {std}",
                layer + 1
            );
            // A Gaussian has 68.27 % within one deviation (a uniform of that std: 57.7 %).
            assert!(
                (within - 0.6827).abs() < 0.01,
                "{init:?}: {within} within 1σ"
            );
            assert!(
                net.tensor(2 * layer + 1).iter().all(|&b| b == 0.0),
                "biases are 0"
            );
        }
    }
    // The draw is the seed's: the same seed, the same weights.
    let (a, b) = (
        MnistMlp::new_boxed(Init::HeNormal, &mut rng(8)),
        MnistMlp::new_boxed(Init::HeNormal, &mut rng(8)),
    );
    assert_exact("same seed", a.tensor(0), b.tensor(0));
}

#[test]
fn init_names_and_the_normal_std_round_trip_through_a_recipe() {
    assert_eq!("he-normal".parse::<Init>(), Ok(Init::HeNormal));
    assert_eq!(
        "normal".parse::<Init>(),
        Ok(Init::Normal {
            std: Init::NORMAL_STD
        })
    );
    let config = Config {
        init: Init::Normal { std: 0.02 },
        ..Config::default()
    };
    assert!(
        config.to_string().contains("normal init (std 0.02)"),
        "{config}"
    );
    let bad = Config {
        init: Init::Normal { std: -1.0 },
        ..Config::default()
    };
    assert!(bad.validate().is_err());
}
