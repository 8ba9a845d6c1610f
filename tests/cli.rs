//! The `constnet` command line as a user meets it, through the real binary: help, version,
//! suggestions for misspelt flags, the values each flag accepts, `--data`'s `$MNIST_DIR`, and
//! `train`'s `--quiet` and `--json` output (one short epoch on the real MNIST files). The names
//! the flags accept are the library enums' `Display`/`FromStr`, checked here to round-trip.

mod common;

use common::*;
use constnet::Init;
use constnet::train::{OptimizerChoice, ScheduleChoice};
use serde_json::Value;
use std::process::Command;

/// What a run of `constnet` printed and how it exited.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn constnet(args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A usage error: exit 2, a constnet message on stderr holding every word, nothing on stdout.
fn usage_error(args: &[&str], words: &[&str]) -> String {
    let out = constnet(args, &[]);
    assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
    assert!(
        out.stderr.starts_with("constnet: error: "),
        "{}",
        out.stderr
    );
    for word in words {
        assert!(
            out.stderr.contains(word),
            "{args:?}: lacks {word:?}: {}",
            out.stderr
        );
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    out.stderr
}

#[test]
fn a_misspelt_flag_gets_a_suggestion() {
    usage_error(
        &["train", "--epohcs", "3"],
        &["'--epohcs'", "similar argument exists: '--epochs'"],
    );
    // Without the command, the tip names the command that has it.
    usage_error(
        &["--epohcs", "3"],
        &["'--epohcs'", "constnet train --epochs"],
    );
    usage_error(
        &["trian"],
        &["'trian'", "similar subcommand exists: 'train'"],
    );
}

#[test]
fn help_lists_a_commands_options_and_exits_0() {
    for args in [
        &["help", "train"][..],
        &["train", "--help"],
        &["train", "-h"],
    ] {
        let out = constnet(args, &[]);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        for word in [
            "Usage: constnet train [OPTIONS]",
            "--epochs <N>",
            "[default: 10]",
            "--optimizer <NAME>",
            "[possible values: sgd, adam, adamw, rmsprop]",
            "--data <DIR>",
            "[env: MNIST_DIR]",
            "--quiet",
            "--json",
            "Recipe (refused with --resume",
        ] {
            assert!(
                out.stdout.contains(word),
                "{args:?}: lacks {word:?}: {}",
                out.stdout
            );
        }
    }
    // With no command: the list of commands, as with --help.
    for args in [&[][..], &["--help"], &["help"]] {
        let out = constnet(args, &[]);
        assert_eq!(out.code, Some(0), "{args:?}");
        for command in [
            "train", "eval", "predict", "info", "export", "bench", "help",
        ] {
            assert!(
                out.stdout.contains(&format!("\n  {command} ")),
                "{}",
                out.stdout
            );
        }
    }
}

#[test]
fn version() {
    for flag in ["-V", "--version"] {
        let out = constnet(&[flag], &[]);
        assert_eq!(out.code, Some(0));
        assert_eq!(
            out.stdout.trim(),
            format!("constnet {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn enum_flags_list_their_possible_values() {
    usage_error(
        &["train", "--optimizer", "nope"],
        &[
            "'nope'",
            "--optimizer",
            "[possible values: sgd, adam, adamw, rmsprop]",
        ],
    );
    usage_error(
        &["train", "--schedule", "nope"],
        &["--schedule", "[possible values: constant, step, cosine]"],
    );
    usage_error(
        &["train", "--init", "nope"],
        &[
            "--init",
            "[possible values: pytorch, he, xavier, he-normal, normal]",
        ],
    );
    // Names are exact: no other case.
    usage_error(&["train", "--optimizer", "Adam"], &["'Adam'"]);
}

#[test]
fn values_are_checked_and_combinations_refused() {
    usage_error(&["train", "--threads", "0"], &["--threads", "in 1..=64"]);
    usage_error(&["train", "--threads", "65"], &["--threads", "in 1..=64"]);
    usage_error(&["train", "--momentum", "1"], &["--momentum", "in [0, 1)"]);
    usage_error(
        &["train", "--clip-grad-norm", "inf"],
        &["--clip-grad-norm", "a finite number > 0"],
    );
    usage_error(
        &["train", "--weight-decay", "-1"],
        &["--weight-decay", "a finite number ≥ 0"],
    );
    usage_error(
        &["train", "--log-every", "0"],
        &["--log-every", "at least 1"],
    );
    usage_error(&["bench", "--seconds", "61"], &["--seconds", "in (0, 60]"]);
    usage_error(
        &["train", "--momentum", "0.5"],
        &[
            "--momentum applies to --optimizer sgd and rmsprop only",
            "Usage: constnet train",
        ],
    );
    usage_error(
        &["train", "--centered"],
        &[
            "--centered applies to --optimizer rmsprop only",
            "Usage: constnet train",
        ],
    );
    usage_error(
        &["train", "--init-std", "0.1"],
        &["--init-std applies to --init normal only"],
    );
    usage_error(
        &["train", "--rotate", "5"],
        &["--rotate, --translate, --scale, --shear needs --augment"],
    );
    usage_error(
        &[
            "train",
            "--recipe",
            "augmented",
            "--augment",
            "affine",
            "--elastic-alpha",
            "3",
        ],
        &[
            "--elastic-alpha, --elastic-sigma needs --augment",
            "not affine",
        ],
    );
    usage_error(
        &["train", "--keep", "best"],
        &["--keep best needs a validation split (--val N)"],
    );
    usage_error(&["train", "--quiet", "--json"], &["--quiet", "--json"]);
    // Every recipe flag is refused with --resume, before or after it.
    for flag in [
        "--epochs",
        "--seed",
        "--threads",
        "--init",
        "--schedule",
        "--recipe",
        "--augment",
        "--val",
    ] {
        let value = match flag {
            "--init" => "he",
            "--schedule" => "cosine",
            "--recipe" => "augmented",
            "--augment" => "both",
            _ => "2",
        };
        usage_error(
            &["train", "--resume", "x.ckpt", flag, value],
            &[flag, "--resume"],
        );
        usage_error(
            &["train", flag, value, "--resume", "x.ckpt"],
            &[flag, "--resume"],
        );
    }
}

#[test]
fn resume_takes_the_flags_that_are_not_the_recipe() {
    let tmp = TempDir::new("cli-resume");
    let ckpt = tmp.path("absent.ckpt");
    let out = constnet(
        &[
            "train",
            "--resume",
            ckpt.to_str().unwrap(),
            "--log-every",
            "10",
            "--out",
            tmp.path("m.safetensors").to_str().unwrap(),
        ],
        &[("MNIST_DIR", mnist_dir().to_str().unwrap())],
    );
    // Parsing succeeded: the failure is the missing checkpoint, a runtime error.
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("absent.ckpt"), "{}", out.stderr);
}

#[test]
fn data_defaults_to_mnist_dir() {
    let from_env = constnet(&["eval", "--model", "x"], &[("MNIST_DIR", "/nonexistent")]);
    assert_eq!(from_env.code, Some(1), "{}", from_env.stderr);
    assert!(
        from_env
            .stderr
            .contains("MNIST files not found in /nonexistent (from MNIST_DIR)"),
        "{}",
        from_env.stderr
    );
    let flag = constnet(
        &["eval", "--model", "x", "--data", "/elsewhere"],
        &[("MNIST_DIR", "/nonexistent")],
    );
    assert!(
        flag.stderr.contains("/elsewhere (from --data)"),
        "{}",
        flag.stderr
    );
    // An empty variable is no variable: the default directory, relative to the current one.
    let tmp = TempDir::new("cli-data");
    let default = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(["eval", "--model", "x"])
        .env("MNIST_DIR", "")
        .current_dir(&tmp.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert_eq!(default.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("MNIST files not found in data/mnist (the default"),
        "{stderr}"
    );
}

#[test]
fn quiet_prints_only_the_final_line() {
    let tmp = TempDir::new("cli-quiet");
    let model = tmp.path("q.safetensors");
    let data = mnist_dir();
    let out = constnet(
        &[
            "train",
            "--epochs",
            "1",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with(&format!("saved {} (test accuracy ", model.display())),
        "{}",
        lines[0]
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(model.is_file());
}

#[test]
fn json_lines_parse() {
    let tmp = TempDir::new("cli-json");
    let model = tmp.path("j.safetensors");
    let data = mnist_dir();
    let (data, model_arg) = (data.to_str().unwrap(), model.to_str().unwrap());
    let out = constnet(
        &[
            "train",
            "--epochs",
            "1",
            "--json",
            "--log-every",
            "300",
            "--data",
            data,
            "--out",
            model_arg,
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let events: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "start", "batch", "batch", "batch", "batch", "epoch", "saved"
        ],
        "{}",
        out.stdout
    );
    assert_eq!(events[0]["train"], 60000);
    assert!(
        events[0]["recipe"]
            .as_str()
            .unwrap()
            .starts_with("adam, lr 0.001")
    );
    let batches: Vec<u64> = events[1..5]
        .iter()
        .map(|e| e["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [300, 600, 900, 938]);
    for batch in &events[1..5] {
        assert_eq!(batch["lr"], 0.001);
        assert!(batch["loss"].as_f64().unwrap() > 0.0);
    }
    let accuracy = events[5]["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "{}", events[5]);
    assert_eq!(events[6]["test_accuracy"], events[5]["test_accuracy"]);
    assert_eq!(events[6]["path"], model_arg);

    let out = constnet(
        &["eval", "--model", model_arg, "--data", data, "--json"],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let eval: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(out.stdout.lines().count(), 1);
    assert_eq!(eval["total"], 10000);
    assert_eq!(eval["accuracy"], events[5]["test_accuracy"]);
    let confusion: u64 = eval["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 10000);
}

/// `--batch-size N` trains with N samples per step (here one epoch on the first 3,000 MNIST
/// training images, against the first 2,000 test images), alone and on two threads; the
/// recipe line, the step count and the model's record say so; sizes outside 1..=256 are
/// usage errors naming the range.
#[test]
fn batch_size_trains_and_out_of_range_sizes_are_refused() {
    for bad in ["0", "257", "-3"] {
        usage_error(
            &["train", "--batch-size", bad],
            &["--batch-size", "in 1..=256"],
        );
    }
    usage_error(
        &["train", "--resume", "x.ckpt", "--batch-size", "32"],
        &["--batch-size", "--resume"],
    );
    let tmp = TempDir::new("cli-batch");
    let data = tmp.path("data");
    std::fs::create_dir(&data).unwrap();
    let mnist = constnet::data::Mnist::open(&mnist_dir(), Default::default()).unwrap();
    let part = |split: &constnet::data::Split, n: usize| {
        (
            idx_images(n as u32, 28, 28, &split.pixels()[..n * 784]),
            idx_labels(&split.labels()[..n]),
        )
    };
    let (images, labels) = part(&mnist.train, 3000);
    std::fs::write(data.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(data.join("train-labels-idx1-ubyte"), labels).unwrap();
    let (images, labels) = part(&mnist.test, 2000);
    std::fs::write(data.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    for (batch, threads, steps) in [("32", "1", 94), ("100", "2", 30), ("1", "1", 3000)] {
        let model = tmp.path(&format!("b{batch}.safetensors"));
        let out = constnet(
            &[
                "train",
                "--epochs",
                "1",
                "--json",
                "--batch-size",
                batch,
                "--threads",
                threads,
                "--data",
                data.to_str().unwrap(),
                "--out",
                model.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.code, Some(0), "batch {batch}: {}", out.stderr);
        let events: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let recipe = events[0]["recipe"].as_str().unwrap();
        assert!(recipe.contains(&format!("batch {batch},")), "{recipe}");
        let epoch = events.iter().find(|e| e["event"] == "epoch").unwrap();
        let log = std::fs::read_to_string(tmp.path(&format!("b{batch}.metrics.jsonl"))).unwrap();
        let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last["step"], steps, "{last}");
        let loss = epoch["train_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{epoch}");
        let accuracy = epoch["test_accuracy"].as_f64().unwrap();
        assert!(
            accuracy > 0.6,
            "batch {batch}: test accuracy {accuracy}, chance is 0.1"
        );
        let meta = constnet::format::inspect(&model).unwrap().metadata;
        assert_eq!(meta["constnet.batch"], batch);
    }
}

/// The flags' names are the library's: each round-trips through Display and FromStr, and
/// unknown names are refused with the list.
#[test]
fn library_names_round_trip() {
    for init in Init::ALL {
        assert_eq!(init.to_string().parse::<Init>(), Ok(init));
    }
    for optimizer in OptimizerChoice::ALL {
        assert_eq!(optimizer.to_string().parse(), Ok(optimizer));
    }
    for schedule in ScheduleChoice::ALL {
        assert_eq!(schedule.to_string().parse(), Ok(schedule));
    }
    let names = |all: Vec<String>| all.join(" ");
    assert_eq!(
        names(Init::ALL.map(|x| x.to_string()).to_vec()),
        "pytorch he xavier he-normal normal"
    );
    assert_eq!(
        names(OptimizerChoice::ALL.map(|x| x.to_string()).to_vec()),
        "sgd adam adamw rmsprop"
    );
    assert_eq!(
        names(ScheduleChoice::ALL.map(|x| x.to_string()).to_vec()),
        "constant step cosine"
    );
    let error = "He".parse::<Init>().unwrap_err().to_string();
    assert!(
        error.contains("pytorch, he, xavier, he-normal, normal"),
        "{error}"
    );
    let error = "lamb".parse::<OptimizerChoice>().unwrap_err().to_string();
    assert!(error.contains("sgd, adam, adamw, rmsprop"), "{error}");
    let error = "linear".parse::<ScheduleChoice>().unwrap_err().to_string();
    assert!(error.contains("constant, step, cosine"), "{error}");
}

/// `train` leaves a training record beside the model: a JSON-lines metrics log (a start line,
/// the logged steps, each epoch with training and test accuracy), its plot, and the recipe,
/// seed, threads, version, accuracy and date in the model's metadata, which `info` prints.
/// `constnet plot` redraws the plot from the log.
#[test]
fn train_writes_metrics_plot_and_a_model_record() {
    let tmp = TempDir::new("cli-record");
    let model = tmp.path("r.safetensors");
    let data = mnist_dir();
    let out = constnet(
        &[
            "train",
            "--epochs",
            "2",
            "--log-every",
            "400",
            "--seed",
            "3",
            "--threads",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = tmp.path("r.metrics.jsonl");
    let records: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    let steps = ["step"; 3];
    let want: Vec<&str> = [&["start"][..], &steps, &["epoch"], &steps, &["epoch"]].concat();
    assert_eq!(kinds, want);
    assert_eq!(records[0]["seed"], 3);
    assert_eq!(records[0]["threads"], 1);
    let step = &records[5];
    assert_eq!(
        (step["epoch"].as_u64(), step["step"].as_u64()),
        (Some(2), Some(938 + 400))
    );
    for key in ["loss", "lr", "samples_per_sec", "time"] {
        assert!(step[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {step}");
    }
    let last = records.last().unwrap();
    for key in [
        "train_loss",
        "train_accuracy",
        "test_accuracy",
        "lr",
        "seconds",
        "samples_per_sec",
        "time",
    ] {
        assert!(last[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {last}");
    }
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.95, "{last}");
    assert_eq!(last["step"], 2 * 938);
    assert!(
        last["val_accuracy"].is_null(),
        "no --val, no validation: {last}"
    );

    let svg = std::fs::read_to_string(tmp.path("r.metrics.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("training loss") && svg.contains("<polyline"));
    assert!(!svg.contains("validation"));

    // With a validation split, its accuracy is logged and drawn.
    let val_model = tmp.path("v.safetensors");
    let out = constnet(
        &[
            "train",
            "--epochs",
            "1",
            "--val",
            "1000",
            "--threads",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            val_model.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let val_log = std::fs::read_to_string(tmp.path("v.metrics.jsonl")).unwrap();
    let epoch: Value = serde_json::from_str(val_log.lines().last().unwrap()).unwrap();
    assert!(
        epoch["val_accuracy"].as_f64().is_some_and(|a| a > 0.9),
        "{epoch}"
    );
    let val_svg = std::fs::read_to_string(tmp.path("v.metrics.svg")).unwrap();
    assert!(val_svg.contains("validation (--val)"));

    let info = constnet(&["info", "--model", model.to_str().unwrap()], &[]);
    assert_eq!(info.code, Some(0), "{}", info.stderr);
    let accuracy = format!("{:.2}%", 100.0 * last["test_accuracy"].as_f64().unwrap());
    for word in [
        &format!("trained: by constnet {}", env!("CARGO_PKG_VERSION")),
        "recipe: adam, lr 0.001, constant schedule, 2 epochs",
        "seed 3, threads 1, epochs 2",
        &format!("test accuracy: {accuracy}"),
    ] {
        assert!(
            info.stdout.contains(word),
            "lacks {word:?}: {}",
            info.stdout
        );
    }

    let again = tmp.path("again.svg");
    let plot = constnet(
        &[
            "plot",
            log.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(plot.code, Some(0), "{}", plot.stderr);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), svg);
    // A log that is not one says where.
    let bad = tmp.path("bad.jsonl");
    std::fs::write(&bad, "{\"kind\":\"start\"}\nnot json\n").unwrap();
    let plot = constnet(&["plot", bad.to_str().unwrap()], &[]);
    assert_eq!(plot.code, Some(1), "{}", plot.stderr);
    assert!(plot.stderr.contains("bad.jsonl: line 2"), "{}", plot.stderr);
}
