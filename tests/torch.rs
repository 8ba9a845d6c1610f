//! PyTorch reads constnet's batch-norm model files: a network trained by `constnet train --arch
//! reference-bn` loads into a `torch.nn.Module` with the same attribute names through
//! `load_state_dict(strict=True)` (names, shapes, dtypes: `num_batches_tracked` int64), and in
//! evaluation mode gets the test accuracy `constnet eval` reports, its logits within
//! 1e-4 × max(1, |logit|) of constnet's (tests/torch_check.py, when Python has torch, numpy and
//! safetensors; .ci/run makes such a venv).
//!
//! Why 1e-4: `eval` folds each norm into the dense layer before it (w·γ/√(var+ε) and its
//! bias) where PyTorch normalises after the product, and the two sum in other orders, so the
//! logits differ by rounding that grows with training: measured 2.9e-6 after 1 epoch (logits
//! within ±10), 7.5e-6 after 10 and 1.3e-5 after 100 (±57), relative to max(1, |logit|).
//! An argmax can then flip only on a near tie: the accuracies must be equal up to the number
//! of images whose two largest logits are that close (none, in these runs).

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::format::safetensors::{self as st, Dtype, Entry, TypedEntry};
use constnet::{MnistMlp, MnistMlpBn, Network, Params, Simd, Workspace};
use std::path::Path;
use std::process::{Command, Output};

const TOLERANCE: f32 = 1e-4;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn constnet(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .output()
        .expect("run constnet");
    assert!(
        out.status.success(),
        "constnet {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
    out
}

/// tests/torch_check.py on a model file (the test-set logits in `logits`).
fn check(python: &str, model: &Path, data: &Path, logits: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torch_check.py");
    Command::new(python)
        .arg(&script)
        .args([model, data, logits])
        .arg(TOLERANCE.to_string())
        .output()
        .expect("run the Python check")
}

/// The logits `eval` computes (the norms folded into the reference network) on every test
/// image, image by image, and how many are right.
fn constnet_logits(net: &MnistMlpBn, mnist: &Mnist) -> (Vec<f32>, usize) {
    const B: usize = constnet::train::BATCH;
    let mut plain = MnistMlp::zeroed_box();
    constnet::fold_batch_norms(net, &mut *plain).unwrap();
    let mut ws = <MnistMlp as Network>::Workspace::<B>::zeroed_box();
    let count = mnist.test.count;
    let (mut logits, mut correct) = (Vec::new(), 0);
    for start in (0..count).step_by(B) {
        let indices: Vec<u32> = (start as u32..count.min(start + B) as u32).collect();
        let b = indices.len();
        let (pixels, labels) = (mnist.test.pixels(), mnist.test.labels());
        constnet::load_u8_batch::<_, Simd>(&mut *ws, pixels, labels, &indices);
        plain.forward::<Simd, B>(&mut ws, b, None);
        let z = ws.logits(b);
        let mut predictions = [0u32; B];
        constnet::logits::argmax(10, b, z, &mut predictions[..b]);
        for j in 0..b {
            logits.extend((0..10).map(|c| z[c * b + j]));
            correct += usize::from(predictions[j] == ws.labels(b)[j]);
        }
    }
    (logits, correct)
}

/// Images whose two largest logits are close enough that logits within the tolerance could
/// order them the other way: the only ones on which torch may predict another class.
fn near_ties(logits: &[f32]) -> usize {
    let slack = |z: f32| TOLERANCE * z.abs().max(1.0);
    (logits.chunks_exact(10))
        .filter(|z| {
            let mut sorted = z.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted[0] - sorted[1] <= slack(sorted[0]) + slack(sorted[1])
        })
        .count()
}

/// The model file `net` would be, with its tensors changed by `edit` first.
fn write_edited(net: &MnistMlpBn, path: &Path, edit: impl FnOnce(&mut Vec<TypedEntry>)) {
    let mut entries: Vec<TypedEntry> = (0..MnistMlpBn::TENSORS)
        .map(|i| {
            let info = MnistMlpBn::tensor_info(i);
            let (name, shape) = (info.name.into(), info.shape.to_vec());
            Entry {
                name,
                shape,
                values: net.tensor(i),
            }
            .typed()
        })
        .collect();
    entries.extend(st::tracked_entries("", net));
    edit(&mut entries);
    std::fs::write(
        path,
        st::encode_typed(&entries, Default::default()).unwrap(),
    )
    .unwrap();
}

/// Trains the reference network with batch norms for one epoch through the command (or takes
/// `$CONSTNET_TORCH_MODEL`), and has PyTorch load it strictly and run the 10,000 test images:
/// the same number right as `constnet eval`, the logits within the tolerance. A file whose
/// counts are float32 or that lacks a tensor is refused.
#[test]
fn torch_loads_a_batch_norm_model_strictly_and_gets_the_same_test_accuracy() {
    let Some(python) = python_with("torch, numpy, safetensors.torch") else {
        eprintln!(
            "skipped: no Python with torch, numpy and safetensors (set CONSTNET_PYTHON to one; \
             .ci/run makes a venv)"
        );
        return;
    };
    let data = mnist_dir();
    let tmp = TempDir::new("torch");
    let model = match std::env::var_os("CONSTNET_TORCH_MODEL").filter(|p| !p.is_empty()) {
        Some(path) => path.into(),
        None => {
            let model = tmp.path("bn.safetensors");
            let args = [
                "train",
                "--arch",
                "reference-bn",
                "--epochs",
                "1",
                "--quiet",
            ];
            let paths = [model.as_os_str(), data.as_os_str()].map(|p| p.to_str().unwrap());
            constnet(&[&args[..], &["--out", paths[0], "--data", paths[1]]].concat());
            model
        }
    };
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let out = constnet(&["eval", "--json", "--model", m, "--data", d]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let eval_correct = json["correct"].as_u64().unwrap() as usize;

    let net = constnet::format::load::<MnistMlpBn>(&model).unwrap();
    let mnist = Mnist::open(&data, OpenOptions::default()).unwrap();
    let (logits, correct) = constnet_logits(&net, &mnist);
    assert_eq!(correct, eval_correct, "these logits are not eval's");
    let ties = near_ties(&logits);
    let count = mnist.test.count;
    println!("constnet eval: {eval_correct}/{count} test images right ({ties} near ties)");
    let logits_file = tmp.path("logits.f32");
    let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&logits_file, bytes).unwrap();

    let run = check(&python, &model, &data, &logits_file);
    let stdout = text(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "{python} tests/torch_check.py: {stdout}{}",
        text(&run.stderr)
    );
    for (k, n) in net.batches_tracked().iter().enumerate() {
        let line = format!("  bn{}.num_batches_tracked torch.int64 [] = {n}\n", k + 1);
        assert!(stdout.contains(&line), "lacks {line:?}: {stdout}");
    }
    for line in [
        "  fc1.weight torch.float32 [256, 784]\n",
        "  bn3.running_var torch.float32 [64]\n",
    ] {
        assert!(stdout.contains(line), "lacks {line:?}: {stdout}");
    }
    let torch_correct: usize = (stdout.lines())
        .find_map(|l| l.strip_prefix("torch: ")?.split('/').next()?.parse().ok())
        .expect("torch's count");
    assert!(
        torch_correct.abs_diff(eval_correct) <= ties,
        "torch {torch_correct} right, constnet eval {eval_correct} ({ties} near ties)"
    );

    // load_state_dict would cast a float count silently: the script refuses it by dtype, and
    // strict loading refuses a file that lacks a tensor.
    let edited = tmp.path("edited.safetensors");
    write_edited(&net, &edited, |entries| {
        let count = entries.last_mut().unwrap();
        count.dtype = Dtype::F32;
        count.bytes = (net.batches_tracked()[2] as f32).to_le_bytes().to_vec();
    });
    let run = check(&python, &edited, &data, &logits_file);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a float count: {stderr}");
    assert!(
        stderr.contains("bn3.num_batches_tracked: torch.float32"),
        "{stderr}"
    );
    write_edited(&net, &edited, |entries| {
        entries.retain(|e| e.name != "bn2.running_var")
    });
    let run = check(&python, &edited, &data, &logits_file);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a missing tensor: {stderr}");
    assert!(
        stderr.contains("strict") && stderr.contains("bn2.running_var"),
        "{stderr}"
    );
}
