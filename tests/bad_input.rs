//! Bad input, tried as a user would, through the real `constnet` binary. Every case must exit
//! non-zero with a message that names the file (or flag) and the problem, must not panic, and
//! must write and delete nothing: the directory is snapshotted before and compared after.

mod common;

use common::*;
use constnet::{Init, MnistMlp, Network, format};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Every file under `dir` (recursively) with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                files.insert(format!("{name}/"), Vec::new());
                stack.push(path);
            } else if meta.is_file() {
                files.insert(
                    name,
                    fs::read(&path).unwrap_or_else(|_| b"<unreadable>".to_vec()),
                );
            } else {
                files.insert(name, b"<link>".to_vec());
            }
        }
    }
    files
}

/// Runs `constnet args` in `dir` and checks the failure: exit `code`, stderr naming every
/// word in `words`, no panic, the directory unchanged.
fn fails(case: &str, dir: &Path, args: &[&str], code: i32, words: &[&str]) {
    let before = snapshot(dir);
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{case}: exit status; stderr: {stderr}"
    );
    for word in words {
        assert!(
            stderr.contains(word),
            "{case}: stderr lacks {word:?}: {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{case}: panicked: {stderr}");
    assert!(
        stderr.starts_with("constnet: "),
        "{case}: not a constnet message: {stderr}"
    );
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{case}: files were written or deleted"
    );
    assert!(before == after, "{case}: a file changed");
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A data directory with one file damaged by `damage`; `train` on it must fail.
fn bad_data(case: &str, damage: impl Fn(&Path), file: &str, problem: &str) {
    let tmp = TempDir::new("bad-data");
    let data = tmp.path("data");
    fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 20, 10);
    damage(&data);
    let out = tmp.path("model.safetensors");
    fails(
        case,
        &tmp.0,
        &[
            "train",
            "--epochs",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        1,
        &[file, problem],
    );
}

fn rewrite(dir: &Path, name: &str, f: impl Fn(&mut Vec<u8>)) {
    let mut bytes = fs::read(dir.join(name)).unwrap();
    f(&mut bytes);
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn bad_idx_files() {
    let images = "train-images-idx3-ubyte";
    let labels = "train-labels-idx1-ubyte";
    bad_data(
        "wrong magic",
        |d| rewrite(d, images, |b| b[1] = 7),
        images,
        "not an IDX file",
    );
    bad_data(
        "wrong element type",
        |d| rewrite(d, images, |b| b[2] = 0x0D),
        images,
        "element type 0x0d",
    );
    bad_data(
        "truncated header",
        |d| rewrite(d, images, |b| b.truncate(10)),
        images,
        "truncated IDX header",
    );
    bad_data(
        "truncated data",
        |d| rewrite(d, images, |b| b.truncate(b.len() - 100)),
        images,
        "truncated",
    );
    bad_data(
        "overflowing dimensions",
        |d| rewrite(d, images, |b| b[4..16].copy_from_slice(&[0xff; 12])),
        images,
        "overflow",
    );
    bad_data(
        "counts differ",
        |d| fs::write(d.join(labels), idx_labels(&[1; 19])).unwrap(),
        labels,
        "20 images but 19 labels",
    );
    bad_data(
        "label of 10",
        |d| rewrite(d, labels, |b| b[8 + 4] = 10),
        labels,
        "label 10 at position 4",
    );
    bad_data(
        "empty file",
        |d| fs::write(d.join(labels), b"").unwrap(),
        labels,
        "truncated IDX header",
    );
    bad_data(
        "a directory",
        |d| {
            fs::remove_file(d.join(images)).unwrap();
            fs::create_dir(d.join(images)).unwrap();
        },
        images,
        "not a regular file",
    );
    if running_as_root() {
        // Root reads any file whatever its mode, so make it unreadable another way: a path
        // that cannot be resolved.
        bad_data(
            "unreadable file",
            |d| {
                fs::remove_file(d.join(images)).unwrap();
                std::os::unix::fs::symlink(d.join("loop"), d.join(images)).unwrap();
                std::os::unix::fs::symlink(d.join(images), d.join("loop")).unwrap();
            },
            images,
            "symbolic links",
        );
    } else {
        use std::os::unix::fs::PermissionsExt;
        bad_data(
            "unreadable file",
            |d| fs::set_permissions(d.join(images), fs::Permissions::from_mode(0o000)).unwrap(),
            images,
            "Permission denied",
        );
    }
    bad_data(
        "images and labels swapped",
        |d| {
            fs::rename(d.join(images), d.join("x")).unwrap();
            fs::rename(d.join(labels), d.join(images)).unwrap();
            fs::rename(d.join("x"), d.join(labels)).unwrap();
        },
        images,
        "this is a label file",
    );
    bad_data(
        "corrupted .gz",
        |d| {
            let raw = fs::read(d.join(labels)).unwrap();
            let mut gz = gzip(&raw);
            let n = gz.len();
            gz[n / 2] ^= 0x55;
            gz[n - 6] ^= 0x55;
            fs::write(d.join(format!("{labels}.gz")), gz).unwrap();
            fs::remove_file(d.join(labels)).unwrap();
        },
        &format!("{labels}.gz"),
        "corrupt gzip data",
    );
    bad_data(
        "missing files",
        |d| fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap(),
        "t10k-images-idx3-ubyte",
        "MNIST files not found",
    );
}

#[test]
fn bad_model_files() {
    let tmp = TempDir::new("bad-model");
    let data = tmp.path("data");
    fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 20, 10);
    let good =
        format::safetensors::to_bytes(&*MnistMlp::new_boxed(Init::PyTorch, &mut rng(70))).unwrap();
    let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let data_arg = data.to_str().unwrap().to_string();
    let case = |name: &str, bytes: Vec<u8>, problem: &str| {
        fs::write(tmp.path(name), bytes).unwrap();
        fails(
            name,
            &tmp.0,
            &["eval", "--model", name, "--data", &data_arg],
            1,
            &[name, problem],
        );
        fails(
            name,
            &tmp.0,
            &[
                "predict", "--model", name, "--index", "0", "--data", &data_arg,
            ],
            1,
            &[name, problem],
        );
    };
    case(
        "truncated.safetensors",
        good[..good.len() / 2].to_vec(),
        "not a valid safetensors",
    );
    let mut flipped = good.clone();
    flipped[8 + header + 1234] ^= 0x04;
    case("flipped.safetensors", flipped, "checksum mismatch");
    let mut past_end = good.clone();
    past_end[..8].copy_from_slice(&(good.len() as u64 + 1000).to_le_bytes());
    case("past-end.safetensors", past_end, "not a valid safetensors");
    case(
        "not-a-model.safetensors",
        b"<html>this is not a model</html>".to_vec(),
        "not a valid safetensors",
    );
    case("empty.safetensors", Vec::new(), "not a valid safetensors");

    // Structurally valid files with the wrong contents, written as PyTorch would.
    use safetensors::tensor::{Dtype, TensorView};
    let write = |shapes: &[(&str, Vec<usize>, Dtype)]| {
        let buffers: Vec<Vec<u8>> = shapes
            .iter()
            .map(|(_, s, d)| vec![0; s.iter().product::<usize>() * d.bitsize() / 8])
            .collect();
        let views: Vec<_> = shapes
            .iter()
            .zip(&buffers)
            .map(|((n, s, d), b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    };
    let reference: Vec<(&str, Vec<usize>, Dtype)> = (0..MnistMlp::TENSORS)
        .map(|i| {
            (
                MnistMlp::tensor_info(i).name,
                MnistMlp::tensor_info(i).shape.to_vec(),
                Dtype::F32,
            )
        })
        .collect();
    let mut shape = reference.clone();
    shape[0].1 = vec![256, 783];
    case(
        "wrong-shape.safetensors",
        write(&shape),
        "\"fc1.weight\" has shape [256, 783]",
    );
    let mut missing = reference.clone();
    missing.pop();
    case(
        "missing.safetensors",
        write(&missing),
        "missing tensor \"fc4.bias\"",
    );
    let mut dtype = reference.clone();
    dtype[1].2 = Dtype::F16;
    case(
        "wrong-dtype.safetensors",
        write(&dtype),
        "\"fc1.bias\" is F16",
    );
    // A raw blob with a damaged payload.
    let mut blob = Vec::new();
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(71));
    format::raw::write::<MnistMlp>(|i| net.tensor(i), |b| blob.extend_from_slice(b));
    let n = blob.len();
    blob[n - 10] ^= 1;
    case("damaged.cnet", blob, "checksum mismatch");

    // A model file where the output should go is not overwritten by a failing run.
    fs::write(tmp.path("keep.safetensors"), &good).unwrap();
    fails(
        "bad data with an existing model",
        &tmp.0,
        &[
            "train",
            "--data",
            "no-such-dir",
            "--no-download",
            "--out",
            "keep.safetensors",
        ],
        1,
        &["no-such-dir", "MNIST files not found"],
    );
}

#[test]
fn bad_flags_and_values() {
    let tmp = TempDir::new("bad-flags");
    let data = tmp.path("data");
    fs::create_dir(&data).unwrap();
    write_synthetic_mnist(&data, 20, 10);
    let d = data.to_str().unwrap();
    let usage = |case: &str, args: &[&str], words: &[&str]| fails(case, &tmp.0, args, 2, words);
    usage(
        "negative epochs",
        &["train", "--epochs", "-1", "--data", d],
        &["'-1'", "--epochs"],
    );
    usage(
        "zero epochs",
        &["train", "--epochs", "0", "--data", d],
        &["--epochs", "at least 1"],
    );
    usage(
        "lr of NaN",
        &["train", "--lr", "NaN", "--data", d],
        &["'NaN'", "--lr", "finite"],
    );
    usage(
        "negative lr",
        &["train", "--lr", "-0.1", "--data", d],
        &["--lr"],
    );
    usage(
        "unknown optimizer",
        &["train", "--optimizer", "lamb", "--data", d],
        &["lamb", "sgd, adam, adamw, rmsprop"],
    );
    usage(
        "unknown schedule",
        &["train", "--schedule", "linear"],
        &["linear", "constant, step, cosine"],
    );
    usage(
        "dropout of 1",
        &["train", "--dropout", "1"],
        &["--dropout", "[0, 1)"],
    );
    usage("unknown flag", &["train", "--epoch", "3"], &["--epoch"]);
    usage(
        "unknown command",
        &["fit"],
        &["unrecognized subcommand 'fit'"],
    );
    usage("eval without a model", &["eval"], &["--model"]);
    usage(
        "predict without an image",
        &["predict", "--model", "m"],
        &["--index <N>", "--image <FILE>"],
    );
    usage(
        "resume with a recipe flag",
        &["train", "--resume", "x.ckpt", "--lr", "0.1"],
        &["--lr", "--resume"],
    );
    usage(
        "export without a format",
        &["export", "--model", "m"],
        &["<--raw|--onnx>"],
    );

    // Images that are not images, or not files, or too large to be a digit.
    let model = tmp.path("m.safetensors");
    format::save(&model, &*MnistMlp::new_boxed(Init::PyTorch, &mut rng(72))).unwrap();
    fs::write(tmp.path("text.pgm"), b"hello").unwrap();
    // Found by the image fuzz target: a header that claims 28×637534236 pixels used to make the
    // decoder allocate 17 GB before the size was checked. Here with a valid checksum, as a
    // user's file would have it (the fuzzer's copy relies on fuzz builds skipping PNG CRCs).
    let mut huge = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut huge, 28, 28);
        encoder.set_color(png::ColorType::Grayscale);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&[0u8; 784])
            .unwrap();
    }
    huge[20..24].copy_from_slice(&637534236u32.to_be_bytes()); // IHDR height
    let crc = crc32fast::hash(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    fs::write(tmp.path("huge.png"), huge).unwrap();
    fs::write(tmp.path("huge.pgm"), b"P2\n28 4000000000\n255\n0 0 0").unwrap();
    let mut cut = b"P5\n28 28\n255\n".to_vec();
    cut.extend([0u8; 100]);
    fs::write(tmp.path("cut.pgm"), cut).unwrap();
    // 33 MiB of nothing (sparse): refused by its size before it is read.
    fs::File::create(tmp.path("vast.png"))
        .unwrap()
        .set_len(33 << 20)
        .unwrap();
    fs::create_dir(tmp.path("folder.png")).unwrap();
    let m = model.to_str().unwrap();
    for (file, problem) in [
        ("text.pgm", "not a PNG, JPEG or PGM"),
        ("huge.png", "image is 28×637534236"),
        ("huge.pgm", "image is 28×4000000000"),
        ("cut.pgm", "bad Pnm image"),
        ("vast.png", "an image file may have at most"),
        ("folder.png", "not a regular file"),
        // A device that never ends is not read forever.
        ("/dev/zero", "not a regular file"),
        ("absent.png", "No such file"),
    ] {
        fails(
            file,
            &tmp.0,
            &["predict", "--model", m, "--image", file],
            1,
            &[file, problem],
        );
    }
}
