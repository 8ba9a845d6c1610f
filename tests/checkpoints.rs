//! Crash safety of training: a run killed with SIGKILL in the middle of an epoch and resumed
//! from its last checkpoint ends bit-identical to an uninterrupted run; a kill during a
//! checkpoint write leaves the previous checkpoint intact; checkpoints round-trip every part
//! of a run's state.

mod common;

use common::*;
use constnet::Params;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::format::{self, Problem};
use constnet::train::{
    BatchReport, CheckpointProblem, Config, EpochReport, OptimizerChoice, Report, Run,
    ScheduleChoice,
};
use constnet::{MnistMlp, Network, RmsPropConfig, SgdConfig};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Silent;

impl Report for Silent {
    fn batch(&mut self, _: &BatchReport) {}
    fn epoch(&mut self, _: &EpochReport) {}
}

/// The binary, with the date it records in model files fixed (SOURCE_DATE_EPOCH), so that
/// two runs of the same training write the same bytes.
fn constnet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_constnet"));
    command.env("SOURCE_DATE_EPOCH", "1798761599");
    command
}

fn crc_of(path: &std::path::Path) -> String {
    format::inspect(path).unwrap().metadata[format::safetensors::CHECKSUM_KEY].clone()
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_bit_identical_parameters() {
    let data = mnist_dir();
    let data = data.to_str().unwrap();
    let tmp = TempDir::new("kill");
    let (a, b, ckpt) = (
        tmp.path("a.safetensors"),
        tmp.path("b.safetensors"),
        tmp.path("b.ckpt"),
    );
    let common_args = [
        "train",
        "--epochs",
        "2",
        "--seed",
        "5",
        "--schedule",
        "cosine",
        "--dropout",
        "0.1",
        "--data",
        data,
    ];

    let status = constnet()
        .args(common_args)
        .args(["--out", a.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the uninterrupted run failed");

    let mut child = constnet()
        .args(common_args)
        .args([
            "--out",
            b.to_str().unwrap(),
            "--checkpoint-every",
            "100",
            "--checkpoint",
            ckpt.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it in the middle of the second epoch, between two checkpoints.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the run ended before epoch 2, batch 500")
            .unwrap();
        if line.starts_with("epoch 2  batch 500/938") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !b.exists(),
        "the killed run must not have written its final model"
    );
    let checkpoint = Run::<MnistMlp>::resume(&ckpt, 60000).unwrap();
    // The last checkpoint is from the middle of epoch 2 (steps are counted from 1).
    assert!(
        checkpoint.steps > 938 && checkpoint.steps <= 938 + 500 && checkpoint.epoch == 1,
        "checkpoint at step {}",
        checkpoint.steps
    );
    drop(checkpoint);

    let out = constnet()
        .args([
            "train",
            "--resume",
            ckpt.to_str().unwrap(),
            "--data",
            data,
            "--out",
            b.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed from"));
    assert_eq!(
        crc_of(&a),
        crc_of(&b),
        "the resumed run's parameters differ from the uninterrupted run's"
    );
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "the model files differ"
    );
    // The resumed epoch reports the mean loss over the whole epoch, as the uninterrupted run.
    assert_eq!(
        last_epoch_loss(&a),
        last_epoch_loss(&b),
        "the resumed epoch's train loss differs from the uninterrupted run's"
    );
}

/// The train loss of the last epoch in the metrics log beside model file `model`.
fn last_epoch_loss(model: &std::path::Path) -> String {
    let log = std::fs::read_to_string(model.with_extension("metrics.jsonl")).unwrap();
    log.lines()
        .rfind(|l| l.contains("\"kind\":\"epoch\""))
        .and_then(|l| l.split("\"train_loss\":").nth(1))
        .map(|rest| rest.split([',', '}']).next().unwrap().to_string())
        .expect("an epoch record with a train loss")
}

#[test]
fn a_kill_during_a_checkpoint_write_leaves_the_previous_one_intact() {
    let data = mnist_dir();
    let tmp = TempDir::new("kill-save");
    let ckpt = tmp.path("c.ckpt");
    let mut caught_mid_write = 0;
    for attempt in 0..6 {
        // Checkpoint after every step: most of the run's time is spent writing them.
        let mut child = constnet()
            .args([
                "train",
                "--epochs",
                "1",
                "--data",
                data.to_str().unwrap(),
                "--out",
                tmp.path("c.safetensors").to_str().unwrap(),
            ])
            .args([
                "--checkpoint-every",
                "1",
                "--checkpoint",
                ckpt.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut saw_temporary = false;
        // Wait for a write in progress after the first checkpoint exists (and a little more
        // each attempt), then kill.
        while start.elapsed() < Duration::from_secs(20) {
            let in_progress = std::fs::read_dir(&tmp.0).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".c.ckpt.tmp")
            });
            if ckpt.exists() && in_progress && start.elapsed() > Duration::from_millis(50 * attempt)
            {
                saw_temporary = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            saw_temporary,
            "attempt {attempt}: never saw a checkpoint write in progress"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".c.ckpt.tmp"))
            .collect();
        caught_mid_write += usize::from(!left.is_empty());
        // Whatever the kill interrupted, the checkpoint is a complete, verified earlier one.
        let run = Run::<MnistMlp>::resume(&ckpt, 60000)
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert!(run.steps >= 1);
        for name in left {
            std::fs::remove_file(tmp.path(&name)).unwrap();
        }
    }
    assert!(
        caught_mid_write > 0,
        "no kill landed in the middle of a write; the test proved nothing"
    );
}

/// Saves and resumes in-process, for both optimizers, and checks every piece of state.
#[test]
fn checkpoints_round_trip_the_whole_run_state() {
    let tmp = TempDir::new("roundtrip");
    let data = tmp.path("data");
    std::fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 300, 50);
    let mnist = Mnist::open(&data, OpenOptions::default()).unwrap();
    let sgd = Config {
        epochs: 3,
        lr: 0.05,
        optimizer: OptimizerChoice::Sgd(SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: true,
            clip_grad_norm: 5.0,
        }),
        schedule: ScheduleChoice::Step {
            every: 1,
            gamma: 0.5,
        },
        seed: 11,
        dropout: 0.2,
        ..Config::default()
    };
    let adam = Config {
        epochs: 3,
        schedule: ScheduleChoice::Cosine,
        ..Config::default()
    };
    // All three RMSprop state blocks (square_avg, momentum buffer, grad_avg).
    let rmsprop = Config {
        epochs: 3,
        lr: 1e-3,
        optimizer: OptimizerChoice::RmsProp(RmsPropConfig {
            momentum: 0.5,
            centered: true,
            weight_decay: 1e-4,
            ..RmsPropConfig::DEFAULT
        }),
        init: constnet::Init::Normal { std: 0.03 },
        seed: 3,
        ..Config::default()
    };
    // Augmented samples are drawn from (seed, epoch, sample): a resumed run warps them alike.
    // A validation split changes which samples train.
    let augmented = Config {
        epochs: 3,
        val: 50,
        seed: 4,
        ..Config::augmented()
    };
    // With two threads, each updates the optimizer state of its rows: the checkpoint must hold
    // all of it, and the resumed run hand it on.
    for config in [
        adam,
        sgd,
        rmsprop,
        augmented,
        Config { threads: 2, ..adam },
        Config { threads: 2, ..sgd },
        Config {
            threads: 2,
            ..rmsprop
        },
        // Other batch sizes (6 and 4 batches per epoch, so step 7 is in epoch 2): the
        // checkpoint records the size and the resumed run keeps it. 50 splits into shards of
        // 25, not a whole number of vectors.
        Config {
            batch: 50,
            threads: 2,
            ..adam
        },
        Config { batch: 75, ..sgd },
    ] {
        let mut straight = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
        let mut stopped = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
        for _ in 0..3 {
            straight
                .train_epoch(&mnist.train, &mut Silent, |_| Ok(()))
                .unwrap();
        }
        // Stop the second run at step 7 (inside epoch 2 of 5-batch epochs, or of 4-batch ones
        // with 50 samples held out) and resume it.
        let stop_at = 7;
        let path = tmp.path("r.ckpt");
        let stop = |run: &Run<MnistMlp>| -> Result<(), Box<dyn std::error::Error>> {
            if run.steps == stop_at {
                run.save_checkpoint(&path)?;
                return Err("stop".into());
            }
            Ok(())
        };
        stopped
            .train_epoch(&mnist.train, &mut Silent, stop)
            .unwrap();
        assert!(
            stopped
                .train_epoch(&mnist.train, &mut Silent, stop)
                .is_err()
        );
        let mut resumed = Run::<MnistMlp>::resume(&path, mnist.train.count).unwrap();
        assert_eq!(
            (resumed.epoch, resumed.steps, resumed.config),
            (1, stop_at, config)
        );
        while resumed.epoch < 3 {
            resumed
                .train_epoch(&mnist.train, &mut Silent, |_| Ok(()))
                .unwrap();
        }
        for i in 0..MnistMlp::TENSORS {
            assert_exact(
                "resumed parameters",
                resumed.net().tensor(i),
                straight.net().tensor(i),
            );
        }
        // A checkpoint is refused for another training set and is not a model file.
        let err = Run::<MnistMlp>::resume(&path, 301).err().unwrap();
        assert!(
            matches!(
                err.problem,
                CheckpointProblem::Dataset {
                    recorded: 300,
                    found: 301
                }
            ),
            "{err}"
        );
        assert!(matches!(
            format::load::<MnistMlp>(&path).err().unwrap().problem,
            Problem::IsCheckpoint
        ));
    }
    // A model file is not a checkpoint.
    let model = tmp.path("m.safetensors");
    format::save(&model, &*MnistMlp::zeroed_box()).unwrap();
    let err = Run::<MnistMlp>::resume(&model, 300).err().unwrap();
    assert!(
        err.to_string().contains("not a constnet checkpoint"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_naming_the_epoch_the_step_and_the_last_checkpoint() {
    let tmp = TempDir::new("diverge");
    let data = tmp.path("data");
    std::fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 640, 50);
    let ckpt = tmp.path("d.ckpt");
    // Adam moves every weight by about lr per step: lr 1e30 overflows the activations within a
    // few steps, and the loss becomes infinite or NaN.
    let out = constnet()
        .args([
            "train",
            "--lr",
            "1e30",
            "--data",
            data.to_str().unwrap(),
            "--out",
            tmp.path("d.safetensors").to_str().unwrap(),
        ])
        .args([
            "--checkpoint-every",
            "1",
            "--checkpoint",
            ckpt.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("epoch 1, batch ") && stderr.contains("(step "),
        "{stderr}"
    );
    assert!(
        stderr.contains("last good checkpoint is") && stderr.contains("d.ckpt"),
        "{stderr}"
    );
    assert!(
        !tmp.path("d.safetensors").exists(),
        "a diverged run must not save its model"
    );
    // The checkpoint it names holds finite parameters.
    let run = Run::<MnistMlp>::resume(&ckpt, 640).unwrap();
    assert!((0..MnistMlp::TENSORS).all(|i| run.net().tensor(i).iter().all(|x| x.is_finite())));
}

/// The batch size is part of the recipe a checkpoint records: written, read back, validated
/// like the other values, and read as the reference's 64 from checkpoints that predate it.
#[test]
fn checkpoints_record_and_validate_the_batch_size() {
    use constnet::train::checkpoint::{Header, decode_header, encode_header};
    let header = |batch| Header {
        config: Config {
            batch,
            ..Config::default()
        },
        train_len: 1000,
        epoch: 0,
        steps: 3,
        optimizer_steps: 3,
    };
    let meta = encode_header(&header(100));
    assert_eq!(meta["batch"], "100");
    assert_eq!(decode_header(&meta).unwrap(), header(100));
    let mut old = encode_header(&header(64));
    old.remove("batch");
    assert_eq!(decode_header(&old).unwrap().config.batch, 64);
    for bad in [0, 257] {
        let err = decode_header(&encode_header(&header(bad))).unwrap_err();
        assert!(
            matches!(&err, CheckpointProblem::Recipe(e) if e.field == "batch"),
            "{err}"
        );
        assert!(err.to_string().contains("in 1..=256"), "{err}");
    }
    // The position is checked against the recorded size: 1000 samples in batches of 100 are
    // 10 steps per epoch, so step 12 is not in epoch 0.
    let mut far = encode_header(&header(100));
    far.insert("step".into(), "12".into());
    assert!(matches!(
        decode_header(&far),
        Err(CheckpointProblem::Position(_))
    ));
}

/// The recipe is recorded in JSON: every finite float reads back to the same bits, so a
/// resumed run uses exactly the values it started with.
#[test]
fn checkpoint_recipes_keep_every_float_bit_for_bit() {
    use constnet::optim::AdamConfig;
    use constnet::train::OptimizerChoice;
    use constnet::train::checkpoint::{Header, decode_header, encode_header};
    let mut bits = 0x9e37_79b9_u32;
    let mut checked = 0;
    while checked < 20_000 {
        bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let (lr, eps) = (
            f32::from_bits(bits & 0x7fff_ffff),
            f32::from_bits(bits.rotate_left(7) & 0x7fff_ffff),
        );
        if !(lr.is_finite() && lr > 0.0 && eps.is_finite() && eps > 0.0) {
            continue;
        }
        let header = Header {
            config: Config {
                lr,
                optimizer: OptimizerChoice::Adam(AdamConfig {
                    eps,
                    weight_decay: -0.0,
                    ..AdamConfig::DEFAULT
                }),
                ..Config::default()
            },
            train_len: 1000,
            epoch: 0,
            steps: 0,
            optimizer_steps: 0,
        };
        let back = decode_header(&encode_header(&header)).unwrap();
        assert_eq!(back.config.lr.to_bits(), lr.to_bits());
        let OptimizerChoice::Adam(a) = back.config.optimizer else {
            panic!("{:?}", back.config.optimizer)
        };
        assert_eq!(
            (a.eps.to_bits(), a.weight_decay.to_bits()),
            (eps.to_bits(), (-0.0f32).to_bits())
        );
        checked += 1;
    }
}
