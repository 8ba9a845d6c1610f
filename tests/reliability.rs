//! Issue 11, "reliability, round two": one test per class of broken promise, each through the
//! real `constnet` binary where a user would meet it (or the library API where that is the
//! contract). Every test here failed on the code before the fix, except those marked
//! "guards": they pin fixes that had already landed.

mod common;

use common::*;
use constnet::format::{self, Problem, safetensors};
use constnet::train::checkpoint::{self, CheckpointProblem};
use constnet::train::{Config, Run};
use constnet::{Init, MnistMlp, Network, Params};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn constnet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_constnet"));
    command.env_remove("MNIST_DIR");
    command
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running (a hang).
fn wait_at_most(case: &str, mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{case}: still running after {limit:?} (blocked?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `constnet args` in `dir` with a time limit; returns (exit code, stdout, stderr).
fn run(case: &str, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let child = constnet()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_at_most(case, child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{case}: panicked: {stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// `constnet args` must fail with `code`, naming every word of `words` on stderr.
fn refuses(case: &str, dir: &Path, args: &[&str], code: i32, words: &[&str]) -> String {
    let (status, stdout, stderr) = run(case, dir, args);
    assert_eq!(status, Some(code), "{case}: exit status; stderr: {stderr}");
    for word in words {
        assert!(
            stderr.contains(word),
            "{case}: stderr lacks {word:?}: {stderr}"
        );
    }
    stdout
}

/// A temporary directory with synthetic MNIST (`train`, `test` samples) in `data/`.
fn with_data(tag: &str, train: u32, test: u32) -> TempDir {
    let tmp = TempDir::new(tag);
    fs::create_dir(tmp.path("data")).unwrap();
    write_synthetic_mnist(&tmp.path("data"), train, test);
    tmp
}

fn model_bytes(seed: u64) -> Vec<u8> {
    safetensors::to_bytes(&*MnistMlp::new_boxed(Init::PyTorch, &mut rng(seed))).unwrap()
}

/// Whether `dir` holds a hidden temporary (`.NAME.tmp-PID-N`).
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

// 1. The .gz cache is fresh by content.
#[test]
fn gz_cache_follows_the_gz_content_not_its_date() {
    use constnet::data::mnist::{Mnist, OpenOptions};
    let tmp = TempDir::new("gz-fresh");
    let data = tmp.path("data");
    fs::create_dir(&data).unwrap();
    let open = || Mnist::open(&data, OpenOptions::default()).unwrap();
    let compress_all = |train: u32, salt_dir: &Path| {
        write_synthetic_mnist(salt_dir, train, 10);
        for name in constnet::data::mnist::FILES {
            let raw = fs::read(salt_dir.join(name)).unwrap();
            fs::write(data.join(format!("{name}.gz")), gzip(&raw)).unwrap();
            fs::remove_file(salt_dir.join(name)).unwrap();
        }
    };
    let scratch = tmp.path("scratch");
    fs::create_dir(&scratch).unwrap();
    compress_all(30, &scratch);
    assert_eq!(open().train.count, 30);
    // Another dataset's .gz files, dated long before the cache (as cp -p, tar and rsync -t
    // leave them).
    compress_all(40, &scratch);
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for name in constnet::data::mnist::FILES {
        let file = fs::File::options()
            .write(true)
            .open(data.join(format!("{name}.gz")))
            .unwrap();
        file.set_modified(old).unwrap();
    }
    let mnist = open();
    assert_eq!(mnist.train.count, 40, "the cache of the old .gz was used");
    // A cache rewritten in place with valid IDX data of the same shape is replaced too.
    let cache = mnist.train.images_path.clone();
    drop(mnist);
    let mut bytes = fs::read(&cache).unwrap();
    let expected = bytes.clone();
    bytes[100] ^= 0xff;
    let modified = fs::metadata(&cache).unwrap().modified().unwrap();
    fs::write(&cache, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&cache)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let mnist = open();
    assert_eq!(
        mnist.train.pixels(),
        &expected[16..],
        "a cache rewritten in place was used"
    );
}

// 2. Guards: a run whose parameters stop being finite saves nothing, with --save-every-epoch
// and with checkpoints; the library refuses such a checkpoint.
#[test]
fn a_non_finite_model_is_never_saved() {
    let tmp = with_data("nonfinite", 20, 10);
    let good = model_bytes(1);
    fs::write(tmp.path("m.safetensors"), &good).unwrap();
    // SGD's weight decay of 1e38 times lr 1000 overflows every weight on the first update.
    let diverge = [
        "train",
        "--data",
        "data",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "1000",
        "--weight-decay",
        "1e38",
        "--out",
        "m.safetensors",
    ];
    let mut args = diverge.to_vec();
    args.push("--save-every-epoch");
    refuses("--save-every-epoch", &tmp.0, &args, 1, &["NaN", "step 1"]);
    assert_eq!(fs::read(tmp.path("m.safetensors")).unwrap(), good);
    let mut args = diverge.to_vec();
    args.extend(["--checkpoint-every", "1", "--checkpoint", "c.ckpt"]);
    refuses(
        "checkpoints",
        &tmp.0,
        &args,
        1,
        &["no checkpoint was written"],
    );
    assert!(!tmp.path("c.ckpt").exists());
    assert_eq!(fs::read(tmp.path("m.safetensors")).unwrap(), good);
    let mut run = Run::<MnistMlp>::new(Config::default(), 20).unwrap();
    run.model_mut().0.flat_mut()[7] = f32::INFINITY;
    let err = run.save_checkpoint(&tmp.path("x.ckpt")).unwrap_err();
    assert!(err.to_string().contains("no longer finite"), "{err}");
    assert!(!tmp.path("x.ckpt").exists());
}

// 3. --out writes through symbolic links, keeps mode and hard links, and refuses what is not
// a regular file and the data files.
#[test]
fn out_writes_through_links_keeps_mode_and_refuses_non_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = with_data("out-target", 20, 10);
    let old = model_bytes(2);
    let train = |out: &str| {
        let (status, _, stderr) = run(
            out,
            &tmp.0,
            &[
                "train", "--data", "data", "--epochs", "1", "--quiet", "--out", out,
            ],
        );
        assert_eq!(status, Some(0), "{out}: {stderr}");
    };
    let is_new_model = |path: &Path| {
        let bytes = fs::read(path).unwrap();
        assert_ne!(bytes, old, "{} was not rewritten", path.display());
        format::load::<MnistMlp>(path).unwrap();
    };
    // A symbolic link: its target gets the model, the link stays a link.
    fs::write(tmp.path("real.safetensors"), &old).unwrap();
    std::os::unix::fs::symlink("real.safetensors", tmp.path("link.safetensors")).unwrap();
    train("link.safetensors");
    let link = fs::symlink_metadata(tmp.path("link.safetensors")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    is_new_model(&tmp.path("real.safetensors"));
    // A 0600 file stays 0600.
    fs::write(tmp.path("private.safetensors"), &old).unwrap();
    fs::set_permissions(
        tmp.path("private.safetensors"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    train("private.safetensors");
    let mode = fs::metadata(tmp.path("private.safetensors"))
        .unwrap()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    is_new_model(&tmp.path("private.safetensors"));
    // A hard link: both names see the new model.
    fs::write(tmp.path("a.safetensors"), &old).unwrap();
    fs::hard_link(tmp.path("a.safetensors"), tmp.path("b.safetensors")).unwrap();
    train("a.safetensors");
    assert_eq!(fs::metadata(tmp.path("a.safetensors")).unwrap().nlink(), 2);
    is_new_model(&tmp.path("b.safetensors"));
    assert!(temporaries(&tmp.0).is_empty(), "{:?}", temporaries(&tmp.0));
    // Not regular files: refused before training, left as they are.
    mkfifo(&tmp.path("fifo"));
    for out in ["fifo", "/proc/self/fd/1"] {
        let stdout = refuses(
            out,
            &tmp.0,
            &["train", "--data", "data", "--epochs", "1", "--out", out],
            1,
            &[out, "not a regular file", "refusing to replace it"],
        );
        assert!(
            !stdout.contains("epoch 1"),
            "{out}: trained first: {stdout}"
        );
    }
    assert!(
        fs::symlink_metadata(tmp.path("fifo"))
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    // The data files, by name, through a link, or by a hard link.
    let images = "data/train-images-idx3-ubyte";
    let before = fs::read(tmp.path(images)).unwrap();
    fs::hard_link(tmp.path(images), tmp.path("linked-images")).unwrap();
    for out in [images, "data/t10k-labels-idx1-ubyte", "linked-images"] {
        refuses(
            out,
            &tmp.0,
            &["train", "--data", "data", "--epochs", "1", "--out", out],
            1,
            &[out, "is the data file", "refusing to overwrite"],
        );
    }
    assert_eq!(fs::read(tmp.path(images)).unwrap(), before);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

// 4. Guards: the checkpoint header is under the checksum, and its recipe is validated.
#[test]
fn checkpoint_headers_are_checksummed_and_validated() {
    let config = Config {
        epochs: 2,
        ..Config::default()
    };
    let run = Run::<MnistMlp>::new(config, 100).unwrap();
    let bytes = run.checkpoint_bytes().unwrap();
    Run::<MnistMlp>::resume_bytes(&bytes, 100).unwrap();
    // One bit of the header's JSON flipped (a digit of a value, not its syntax).
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let json = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let at = 8 + json.find("\"seed\":\"").unwrap() + "\"seed\":\"".len();
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x01;
    let err = Run::<MnistMlp>::resume_bytes(&flipped, 100).err().unwrap();
    assert!(
        matches!(err, CheckpointProblem::File(Problem::HeaderChecksum { .. })),
        "{err}"
    );
    // Impossible values, written with valid checksums, are refused by name.
    let decoded = safetensors::decode(&bytes).unwrap();
    let header = checkpoint::decode_header(&decoded.metadata).unwrap();
    for (field, change) in [
        (
            "dropout",
            &(|c: &mut Config| c.dropout = 1.0) as &dyn Fn(&mut Config),
        ),
        ("dropout", &|c: &mut Config| c.dropout = -0.5),
        ("lr", &|c: &mut Config| c.lr = -1.0),
        ("threads", &|c: &mut Config| c.threads = 0),
    ] {
        let mut bad = header.clone();
        change(&mut bad.config);
        let meta = checkpoint::encode_header(&bad);
        let err = checkpoint::decode_header(&meta).unwrap_err();
        assert!(
            matches!(&err, CheckpointProblem::Recipe(e) if e.to_string().contains(field)),
            "{field}: {err}"
        );
    }
    // JSON has no NaN: a NaN is written as null, which is refused by name too.
    let mut bad = header.clone();
    bad.config.lr = f32::NAN;
    let err = checkpoint::decode_header(&checkpoint::encode_header(&bad)).unwrap_err();
    assert!(
        matches!(&err, CheckpointProblem::Metadata(e) if e.contains("\"lr\"")),
        "{err}"
    );
}

/// A model file whose tensor `index` holds `value` at element 3, with valid checksums.
fn model_with(index: usize, value: f32) -> Vec<u8> {
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(3));
    net.tensor_mut(index)[3] = value;
    let entries: Vec<safetensors::Entry<'_>> = (0..MnistMlp::TENSORS)
        .map(|i| safetensors::Entry {
            name: MnistMlp::tensor_info(i).name.into(),
            shape: MnistMlp::tensor_info(i).shape.to_vec(),
            values: net.tensor(i),
        })
        .collect();
    safetensors::encode(&entries, Default::default()).unwrap()
}

// 5. Non-finite weights are refused at load, by tensor name, by every command.
#[test]
fn non_finite_weights_are_refused_with_the_tensor_name() {
    let tmp = with_data("nan-weights", 20, 10);
    fs::write(tmp.path("nan.safetensors"), model_with(2, f32::NAN)).unwrap();
    fs::write(tmp.path("inf.safetensors"), model_with(5, f32::INFINITY)).unwrap();
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(4));
    net.tensor_mut(6)[0] = f32::NEG_INFINITY;
    let mut blob = Vec::new();
    format::raw::write::<MnistMlp>(|i| net.tensor(i), |b| blob.extend_from_slice(b));
    fs::write(tmp.path("inf.cnet"), blob).unwrap();
    for (file, tensor) in [
        ("nan.safetensors", "fc2.weight"),
        ("inf.safetensors", "fc3.bias"),
        ("inf.cnet", "fc4.weight"),
    ] {
        for args in [
            &["eval", "--model", file, "--data", "data"][..],
            &["info", "--model", file],
            &["export", "--model", file, "--raw", "--out", "x.cnet"],
            &["predict", "--model", file, "--index", "0", "--data", "data"],
        ] {
            refuses(file, &tmp.0, args, 1, &[file, tensor]);
        }
        assert!(!tmp.path("x.cnet").exists());
    }
}

// 6. Empty datasets are refused, for training and for evaluation.
#[test]
fn empty_datasets_are_refused() {
    let tmp = with_data("empty", 0, 10);
    refuses(
        "empty training set",
        &tmp.0,
        &["train", "--data", "data", "--epochs", "1"],
        1,
        &["train-images-idx3-ubyte", "no images"],
    );
    assert!(!tmp.path("model.safetensors").exists());
    write_synthetic_mnist(&tmp.path("data"), 20, 0);
    fs::write(tmp.path("m.safetensors"), model_bytes(5)).unwrap();
    let stdout = refuses(
        "empty test set",
        &tmp.0,
        &["eval", "--model", "m.safetensors", "--data", "data"],
        1,
        &["t10k-images-idx3-ubyte", "no images"],
    );
    assert!(!stdout.contains("0/0"), "{stdout}");
}

// 7. Outputs that cannot be written are refused before training, not after it.
#[test]
fn unwritable_outputs_are_refused_before_training() {
    let tmp = with_data("out-early", 20, 10);
    let long = "x".repeat(256);
    let cases: [(&str, &[&str], i32, &[&str]); 7] = [
        (
            "directory absent",
            &["--out", "nodir/m.safetensors"],
            1,
            &["nodir", "does not exist"],
        ),
        (
            "a directory",
            &["--out", "newdir/"],
            1,
            &["newdir/", "names a directory"],
        ),
        (
            "unwritable directory",
            &["--out", "/proc/constnet-test.safetensors"],
            1,
            &["/proc/constnet-test.safetensors"],
        ),
        ("name too long", &["--out", &long], 1, &["too long"]),
        (
            "checkpoint directory absent",
            &["--checkpoint-every", "1", "--checkpoint", "nodir/c.ckpt"],
            1,
            &["--checkpoint", "does not exist"],
        ),
        (
            "checkpoint is --out",
            &["--out", "run.ckpt", "--checkpoint-every", "1"],
            2,
            &["--out", "checkpoint", "same file"],
        ),
        ("empty --out", &["--out", ""], 2, &["--out"]),
    ];
    for (case, extra, code, words) in cases {
        let mut args = vec!["train", "--data", "data", "--epochs", "1"];
        args.extend_from_slice(extra);
        let stdout = refuses(case, &tmp.0, &args, code, words);
        assert!(
            !stdout.contains("epoch 1"),
            "{case}: trained first: {stdout}"
        );
    }
    assert!(temporaries(&tmp.0).is_empty());
    // A name of 250 bytes is refused before training: the metrics log's name, NAME.metrics.jsonl,
    // would not fit in 255 bytes.
    let long = "y".repeat(250);
    let stdout = refuses(
        "250 bytes",
        &tmp.0,
        &["train", "--data", "data", "--epochs", "1", "--out", &long],
        1,
        &["metrics log", "too long"],
    );
    assert!(!stdout.contains("epoch 1"), "trained first: {stdout}");
    // One of 240 bytes is fine: its temporary's name, longer than 255 bytes, is shortened.
    let long = "y".repeat(240);
    let (status, _, stderr) = run(
        "240 bytes",
        &tmp.0,
        &[
            "train", "--data", "data", "--epochs", "1", "-q", "--out", &long,
        ],
    );
    assert_eq!(status, Some(0), "{stderr}");
    assert!(tmp.path(&long).is_file());
}

// 8. Inputs: a FIFO or a device is refused at once (no hang), and sizes are capped.
#[test]
fn non_regular_and_oversized_inputs_are_refused_without_blocking() {
    let tmp = with_data("fifo-in", 20, 10);
    mkfifo(&tmp.path("fifo"));
    for args in [
        &["eval", "--model", "fifo", "--data", "data"][..],
        &["info", "--model", "fifo"],
        &["export", "--model", "fifo", "--raw", "--out", "x.cnet"],
        &[
            "predict", "--model", "fifo", "--index", "0", "--data", "data",
        ],
        &["eval", "--model", "/dev/zero", "--data", "data"],
        &["train", "--resume", "fifo", "--data", "data"],
    ] {
        refuses(args[2], &tmp.0, args, 1, &[args[2], "not a regular file"]);
    }
    // A model file larger than any model of this network (sparse: costs no disk).
    let big = fs::File::create(tmp.path("big.safetensors")).unwrap();
    big.set_len(64 << 20).unwrap();
    refuses(
        "oversized model",
        &tmp.0,
        &["eval", "--model", "big.safetensors", "--data", "data"],
        1,
        &["big.safetensors", "more than the"],
    );
    // An IDX file that is a FIFO.
    let labels = tmp.path("data/t10k-labels-idx1-ubyte");
    fs::remove_file(&labels).unwrap();
    mkfifo(&labels);
    refuses(
        "IDX FIFO",
        &tmp.0,
        &["train", "--data", "data", "--no-mmap"],
        1,
        &["t10k-labels-idx1-ubyte", "not a regular file"],
    );
    // The helper the image reader calls.
    let err = constnet::files::read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("character device"), "{err}");
    let err = constnet::files::read_regular(&tmp.path("big.safetensors"), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
}

/// Starts a long training run in `tmp` that writes a checkpoint every 2 steps, and waits until
/// the first one exists.
fn start_long_run(tmp: &TempDir) -> Child {
    let child = constnet()
        .args([
            "train",
            "--data",
            "data",
            "--epochs",
            "1000",
            "--checkpoint-every",
            "2",
            "--checkpoint",
            "run.ckpt",
            "--out",
            "run.safetensors",
        ])
        .current_dir(&tmp.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !tmp.path("run.ckpt").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no checkpoint after 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

// 9. SIGINT and SIGTERM stop a run cleanly: exit 130/143, a word on what was kept, no
// temporaries; stale temporaries of dead processes are removed.
#[test]
fn signals_stop_cleanly_and_stale_temporaries_are_removed() {
    let tmp = with_data("signals", 2000, 10);
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = start_long_run(&tmp);
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = wait_at_most(signal, child, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by SIG{signal}"))
                && stderr.contains("kept the last checkpoint")
                && stderr.contains("run.ckpt")
                && stderr.contains("run.safetensors was not written"),
            "SIG{signal}: {stderr}"
        );
        assert!(temporaries(&tmp.0).is_empty(), "{:?}", temporaries(&tmp.0));
        // What it kept resumes.
        Run::<MnistMlp>::resume(&tmp.path("run.ckpt"), 2000).unwrap();
        fs::remove_file(tmp.path("run.ckpt")).unwrap();
    }
    // A temporary of a process that no longer exists (no pid reaches 2^22 + 100 on Linux) is
    // removed when its file is next written; one of a live process (pid 1) is not.
    let stale = ".m.safetensors.tmp-4194404-0";
    let live = ".m.safetensors.tmp-1-0";
    fs::write(tmp.path(stale), b"half a model").unwrap();
    fs::write(tmp.path(live), b"being written").unwrap();
    let (status, _, stderr) = run(
        "stale",
        &tmp.0,
        &[
            "train",
            "--data",
            "data",
            "--epochs",
            "1",
            "-q",
            "--out",
            "m.safetensors",
        ],
    );
    assert_eq!(status, Some(0), "{stderr}");
    assert!(!tmp.path(stale).exists(), "a stale temporary was left");
    assert!(
        tmp.path(live).exists(),
        "a live process's temporary was removed"
    );
}

// 11. The smaller ones.
#[test]
fn bench_with_damaged_data_reports_the_damage() {
    let tmp = with_data("bench", 20, 10);
    let labels = tmp.path("data/train-labels-idx1-ubyte");
    fs::write(&labels, b"garbage").unwrap();
    refuses(
        "damaged",
        &tmp.0,
        &["bench", "--data", "data", "--seconds", "0.01"],
        1,
        &["train-labels-idx1-ubyte", "not an IDX file"],
    );
    refuses(
        "absent",
        &tmp.0,
        &["bench", "--data", "nodir", "--seconds", "0.01"],
        1,
        &["nodir", "not found"],
    );
}

#[test]
fn checkpoints_and_blobs_say_what_they_are() {
    let tmp = with_data("what-is-it", 20, 10);
    let run = Run::<MnistMlp>::new(Config::default(), 20).unwrap();
    run.save_checkpoint(&tmp.path("c.ckpt")).unwrap();
    for args in [
        &["eval", "--model", "c.ckpt", "--data", "data"][..],
        &[
            "predict", "--model", "c.ckpt", "--index", "0", "--data", "data",
        ],
    ] {
        refuses(
            args[0],
            &tmp.0,
            args,
            1,
            &["c.ckpt", "a training checkpoint", "--resume"],
        );
    }
    format::save_raw(&tmp.path("m.cnet"), &*MnistMlp::zeroed_box()).unwrap();
    refuses(
        "resume a blob",
        &tmp.0,
        &["train", "--resume", "m.cnet", "--data", "data"],
        1,
        &["m.cnet", "raw parameter blob"],
    );
}

#[test]
fn an_empty_xdg_cache_home_counts_as_unset() {
    let tmp = TempDir::new("xdg");
    let data = tmp.path("data");
    fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 20, 10);
    // eval reads the test split only: its labels come compressed.
    let raw = fs::read(data.join("t10k-labels-idx1-ubyte")).unwrap();
    fs::write(data.join("t10k-labels-idx1-ubyte.gz"), gzip(&raw)).unwrap();
    fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    // The cache cannot go beside the data: a file holds the directory's name.
    fs::write(data.join(".constnet-cache"), b"").unwrap();
    fs::create_dir(tmp.path("home")).unwrap();
    fs::create_dir(tmp.path("work")).unwrap();
    fs::write(tmp.path("m.safetensors"), model_bytes(6)).unwrap();
    let out = constnet()
        .args(["eval", "--model", "../m.safetensors", "--data", "../data"])
        .current_dir(tmp.path("work"))
        .env("XDG_CACHE_HOME", "")
        .env("HOME", tmp.path("home"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !tmp.path("work/constnet").exists(),
        "cached into ./constnet"
    );
    assert!(tmp.path("home/.cache/constnet").is_dir());
}

// Guards: the library's documented panics and checks.
#[test]
#[should_panic(expected = "a training step needs 1 to 64 samples, not 0")]
fn train_step_with_an_empty_batch_says_why() {
    use constnet::{Adam, AdamConfig, Simd, Workspace};
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(7));
    let (mut grads, mut adam) = (
        MnistMlp::zeroed_box(),
        Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT),
    );
    let mut ws = <MnistMlp as Network>::Workspace::<64>::zeroed_box();
    constnet::train_step::<Simd, _, _, 64>(
        &mut *net,
        &mut *grads,
        &mut *adam,
        &mut ws,
        0,
        1e-3,
        None,
    );
}

#[test]
fn dropout_refuses_probabilities_outside_0_1() {
    let mut r = constnet::data::derived_rng(0, 0, 0);
    for p in [1.0, -0.5, 1.5, f32::NAN, f32::INFINITY] {
        assert!(
            constnet::layers::Dropout::new(p, &mut r).is_err(),
            "p = {p}"
        );
    }
    assert!(constnet::layers::Dropout::new(0.5, &mut r).is_ok());
}
