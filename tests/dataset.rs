//! Training on any dataset: `train::fit` and the `Trainer` take MNIST's IDX files and rows in
//! memory alike. Learnable synthetic data in memory (bytes and floats) is learnt; the same
//! rows give the same bits through either implementation, with one thread and with two; data
//! that do not fit the network are refused with an error, not a panic.

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::data::{Dataset, DatasetError, InMemory};
use constnet::train::{self, BatchReport, Config, EpochReport, Report, Run, Trainer};
use constnet::{MnistMlp, Network};

constnet::network! {
    /// A small network on MNIST-sized rows, to keep the tests quick.
    pub struct Small { fc1: Dense<784, 64>, fc2: Dense<64, 10> }
}

struct Silent;

impl Report for Silent {
    fn batch(&mut self, _: &BatchReport) {}
    fn epoch(&mut self, _: &EpochReport) {}
}

/// `n` linearly separable samples: noise everywhere, and class `c` bright on features
/// `78c..78c + 78`.
fn separable(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = rng(seed);
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = (i * 7 + int(&mut rng, 0, 10)) % 10;
        for f in 0..784 {
            let bright = (78 * c..78 * c + 78).contains(&f);
            let (lo, hi) = if bright { (150, 256) } else { (0, 90) };
            rows.push(int(&mut rng, lo, hi) as u8);
        }
        labels.push(c as u8);
    }
    (rows, labels)
}

#[test]
fn the_trainer_learns_separable_data_in_memory_as_bytes_and_as_floats() {
    let (rows, labels) = separable(2000, 1);
    let (test_rows, test_labels) = separable(500, 2);
    let test = InMemory::from_u8(test_rows.clone(), test_labels.clone(), 784).unwrap();
    let bytes = InMemory::from_u8(rows.clone(), labels.clone(), 784).unwrap();
    let floats: Vec<f32> = rows.iter().map(|&p| f32::from(p) / 255.0).collect();
    let floats = InMemory::from_f32(floats, labels, 784).unwrap();
    let float_test: Vec<f32> = test_rows.iter().map(|&p| f32::from(p) / 255.0).collect();
    let float_test = InMemory::from_f32(float_test, test_labels, 784).unwrap();
    let trainer = Trainer::new(Config::reference())
        .epochs(2)
        .seed(3)
        .batch_size(32);
    for (name, train, test) in [("bytes", &bytes, &test), ("floats", &floats, &float_test)] {
        let trained = trainer.fit_and_test::<Small>(train, test).unwrap();
        assert_eq!(trained.epochs.len(), 2);
        let accuracy = trained.evaluation.accuracy();
        assert!(accuracy > 0.95, "{name}: test accuracy {accuracy}");
        assert!(trained.epochs.iter().all(|e| e.train_loss.is_finite()));
        // The network that comes back is the trained one.
        let correct = (0..500)
            .filter(|&i| {
                let x = &test_rows[i * 784..][..784];
                trained.net.predict(x) == usize::from(test.labels()[i])
            })
            .count();
        assert!(correct > 475, "{name}: {correct}/500 by predict");
    }
}

/// Training on the same bytes as IDX files (memory-mapped) and as `InMemory` rows gives the
/// same bits, with one thread and with two, at the reference batch and at another.
#[test]
fn the_same_rows_give_the_same_bits_from_idx_files_and_from_memory() {
    let tmp = TempDir::new("dataset-bits");
    let (pixels, labels, test_pixels, test_labels) = write_synthetic_mnist(&tmp.0, 300, 40);
    let mnist = Mnist::open(&tmp.0, OpenOptions::default()).unwrap();
    let memory = InMemory::from_u8(pixels, labels, 784).unwrap();
    let memory_test = InMemory::from_u8(test_pixels, test_labels, 784).unwrap();
    for (threads, batch) in [(1, 64), (2, 64), (2, 50)] {
        let config = Config {
            epochs: 2,
            seed: 9,
            threads,
            batch,
            val: 30,
            ..Config::default()
        };
        let mut from_files = Run::<MnistMlp>::new(config, 300).unwrap();
        let mut from_memory = Run::<MnistMlp>::new(config, 300).unwrap();
        let a = train::fit(
            &mut from_files,
            &mnist.train,
            &mnist.test,
            &mut Silent,
            |_| Ok(()),
            |_, _| Ok(()),
        )
        .unwrap();
        let b = train::fit(
            &mut from_memory,
            &memory,
            &memory_test,
            &mut Silent,
            |_| Ok(()),
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(a, b, "threads {threads}, batch {batch}");
        assert_eq!(
            param_bits(from_files.net()),
            param_bits(from_memory.net()),
            "threads {threads}, batch {batch}"
        );
    }
}

#[test]
fn data_that_do_not_fit_the_network_are_refused() {
    let shape = InMemory::from_u8(vec![0; 785], vec![1], 784).err().unwrap();
    assert!(matches!(shape, DatasetError::Shape { .. }), "{shape}");
    assert_eq!(
        InMemory::from_u8(Vec::new(), Vec::new(), 784).err(),
        Some(DatasetError::Empty)
    );
    let nan = InMemory::from_f32(vec![0.0, f32::NAN], vec![0], 2)
        .err()
        .unwrap();
    assert_eq!(
        nan,
        DatasetError::NonFinite {
            sample: 0,
            feature: 1
        }
    );
    let trainer = Trainer::new(Config::reference()).epochs(1);
    let narrow = InMemory::from_u8(vec![0; 20], vec![0, 1], 10).unwrap();
    let err = trainer.fit::<Small>(&narrow).err().unwrap();
    assert!(
        err.to_string()
            .contains("samples have 10 features; the network takes 784"),
        "{err}"
    );
    let label = InMemory::from_u8(vec![0; 2 * 784], vec![3, 10], 784).unwrap();
    let err = trainer.fit::<Small>(&label).err().unwrap();
    assert!(
        err.to_string()
            .contains("sample 1 has label 10; the network has 10 classes"),
        "{err}"
    );
    let floats = InMemory::from_f32(vec![0.5; 2 * 784], vec![3, 4], 784).unwrap();
    let err = Trainer::new(Config::augmented())
        .epochs(1)
        .fit::<Small>(&floats)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("augmentation warps byte images"),
        "{err}"
    );
    // A batch size out of range is a recipe error.
    let ok = InMemory::from_u8(vec![0; 2 * 784], vec![3, 4], 784).unwrap();
    for batch in [0, 257] {
        let err = trainer.batch_size(batch).fit::<Small>(&ok).err().unwrap();
        assert!(err.to_string().contains("batch is"), "{err}");
    }
    // A run is for the training set it was created for.
    let mut run = Run::<Small>::new(Config::default(), 3).unwrap();
    let err = run.train_epoch(&ok, &mut Silent, |_| Ok(())).err().unwrap();
    assert!(err.to_string().contains("has 2 samples"), "{err}");
    assert_eq!(Small::INPUT, ok.features());
}
