//! The job users come for, on the real MNIST files: training reaches the accuracy it should,
//! and the `constnet` binary trains, evaluates, predicts, inspects and exports a model whose
//! embedded copy (examples/embedded.rs, built without std) predicts exactly what it does.

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::train::{self, BatchReport, Config, EpochReport, Report, Run, ScheduleChoice};
use constnet::{MnistMlp, Network, Simd, format, logits::argmax};
use std::path::Path;
use std::process::{Command, Stdio};

struct Quiet(Vec<EpochReport>);

impl Report for Quiet {
    fn batch(&mut self, _: &BatchReport) {}
    fn epoch(&mut self, report: &EpochReport) {
        self.0.push(*report);
    }
}

/// A shorter schedule than the reference (3 epochs, cosine to 0) must still pass 97 % on the
/// test set. A broken gradient, update or data path lands far below (an untrained network is
/// at ~10 %, a linear model at ~92 %).
#[test]
fn three_epochs_of_cosine_training_reach_97_percent() {
    let mnist = Mnist::open(&mnist_dir(), OpenOptions::default()).unwrap();
    let config = Config {
        epochs: 3,
        schedule: ScheduleChoice::Cosine,
        ..Config::default()
    };
    let mut run = Run::<MnistMlp>::new(config, mnist.train.count).unwrap();
    let mut report = Quiet(Vec::new());
    let evaluation = train::fit(
        &mut run,
        &mnist.train,
        &mnist.test,
        &mut report,
        |_| Ok(()),
        |_, _| Ok(()),
    )
    .unwrap();
    let accuracy = evaluation.accuracy();
    assert_eq!(report.0.len(), 3);
    assert!(
        report
            .0
            .windows(2)
            .all(|w| w[1].train_loss < w[0].train_loss),
        "training loss must fall every epoch"
    );
    assert!(
        accuracy >= 0.97,
        "test accuracy {:.2}% after 3 epochs",
        100.0 * accuracy
    );
    assert_eq!(run.steps, 3 * 938);
}

fn constnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .output()
        .expect("run constnet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes an 8-bit 28×28 PNG of `color` type (with `palette` for an indexed one).
fn write_png(path: &Path, color: png::ColorType, data: &[u8], palette: Option<Vec<u8>>) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, 28, 28);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    if let Some(palette) = palette {
        encoder.set_palette(palette);
    }
    encoder
        .write_header()
        .unwrap()
        .write_image_data(data)
        .unwrap();
}

fn top3(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with("  ") && l.ends_with('%'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_cli_trains_evaluates_predicts_inspects_and_exports() {
    let data = mnist_dir();
    let data = data.to_str().unwrap();
    let tmp = TempDir::new("cli");
    let model = tmp.path("model.safetensors");
    let model = model.to_str().unwrap();

    let (ok, out, err) = constnet(&["train", "--epochs", "1", "--data", data, "--out", model]);
    assert!(ok, "train failed: {err}");
    assert!(out.contains("epoch 1  batch 100/938  loss "), "{out}");
    assert!(out.contains("epoch 1  batch 938/938  loss "), "{out}");
    let epoch_line = out
        .lines()
        .find(|l| l.starts_with("epoch 1: train loss"))
        .expect(&out);
    assert!(
        epoch_line.contains("test accuracy")
            && (epoch_line.ends_with(" s") || epoch_line.ends_with("the other cores were busy)")),
        "{epoch_line}"
    );
    assert!(!err.contains("panicked"));
    let trained = out.lines().last().unwrap();
    assert!(
        trained.starts_with("saved ") && trained.contains("test accuracy"),
        "{trained}"
    );

    let (ok, out, err) = constnet(&["eval", "--model", model, "--data", data]);
    assert!(ok, "eval failed: {err}");
    let accuracy = out
        .lines()
        .find(|l| l.starts_with("test accuracy: "))
        .expect(&out);
    let percent = accuracy.split_whitespace().nth(2).unwrap();
    assert!(
        trained.contains(percent),
        "eval says {percent}, training said: {trained}"
    );
    assert!(
        out.contains("confusion matrix") && out.contains("per class:"),
        "{out}"
    );
    let matrix: usize = out
        .lines()
        .skip_while(|l| !l.starts_with("confusion matrix"))
        .skip(2)
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|n| n.parse::<usize>().unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    assert_eq!(
        matrix, 10000,
        "the confusion matrix counts every test image"
    );

    let (ok, by_index, err) =
        constnet(&["predict", "--model", model, "--data", data, "--index", "0"]);
    assert!(ok, "predict failed: {err}");
    assert!(
        by_index.starts_with("test image 0 (label 7):"),
        "{by_index}"
    );
    assert_eq!(top3(&by_index).len(), 3, "{by_index}");
    assert!(
        top3(&by_index)[0].trim_start().starts_with('7'),
        "{by_index}"
    );
    assert_eq!(
        by_index.lines().filter(|l| l.starts_with("  |")).count(),
        28,
        "the digit is drawn"
    );

    // The same image as PGM and as PNG files predicts the same.
    let mnist = Mnist::open(&mnist_dir(), OpenOptions::default()).unwrap();
    let pixels = mnist.test.images().image(0);
    let pgm = tmp.path("seven.pgm");
    let mut bytes = b"P5\n# test image 0\n28 28\n255\n".to_vec();
    bytes.extend_from_slice(pixels);
    std::fs::write(&pgm, bytes).unwrap();
    let png_path = tmp.path("seven.png");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&png_path).unwrap());
        let mut encoder = png::Encoder::new(file, 28, 28);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(pixels)
            .unwrap();
    }
    // And as users' files have it (issue 11, item 10): dark strokes on a transparent canvas
    // (gray+alpha), a palette PNG, a P5 PGM written with CRLF line ends. Each comes through
    // as the same 28×28 pixels, so each predicts exactly what --index does.
    let alpha_path = tmp.path("seven-alpha.png");
    let alpha: Vec<u8> = pixels.iter().flat_map(|&p| [0, p]).collect();
    write_png(&alpha_path, png::ColorType::GrayscaleAlpha, &alpha, None);
    let palette_path = tmp.path("seven-palette.png");
    let palette: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    write_png(
        &palette_path,
        png::ColorType::Indexed,
        pixels,
        Some(palette),
    );
    let crlf = tmp.path("seven-crlf.pgm");
    let mut bytes = b"P5\r\n28 28\r\n255\r\n".to_vec();
    bytes.extend_from_slice(pixels);
    std::fs::write(&crlf, bytes).unwrap();
    for image in [&pgm, &png_path, &alpha_path, &palette_path, &crlf] {
        let (ok, out, err) = constnet(&[
            "predict",
            "--model",
            model,
            "--image",
            image.to_str().unwrap(),
        ]);
        assert!(ok, "predict --image failed: {err}");
        assert_eq!(top3(&out), top3(&by_index), "{}", image.display());
    }
    // A photo-like JPEG: 3× larger, RGB, a dark digit on white. Inverted, fitted into 20×20
    // and centred, it is still a 7.
    let jpeg = tmp.path("seven-big.jpg");
    image::RgbImage::from_fn(84, 84, |x, y| {
        let v = 255 - pixels[(y / 3 * 28 + x / 3) as usize];
        image::Rgb([v, v, v])
    })
    .save(&jpeg)
    .unwrap();
    let (ok, out, err) = constnet(&[
        "predict",
        "--model",
        model,
        "--image",
        jpeg.to_str().unwrap(),
    ]);
    assert!(ok, "predict --image failed: {err}");
    assert!(
        out.contains("(84×84; inverted, fitted into 20×20, centred)"),
        "{out}"
    );
    assert!(top3(&out)[0].starts_with("  7 "), "{out}");

    let (ok, out, _) = constnet(&["info", "--model", model]);
    assert!(ok);
    assert!(
        out.contains("kernels: ")
            && out.contains("(64-byte aligned)")
            && out.contains(", verified"),
        "{out}"
    );
    assert!(out.contains("matches the network: yes"), "{out}");

    let blob = tmp.path("model.cnet");
    let (ok, out, err) = constnet(&[
        "export",
        "--model",
        model,
        "--raw",
        "--out",
        blob.to_str().unwrap(),
    ]);
    assert!(ok, "export failed: {err}");
    assert!(out.starts_with("wrote "), "{out}");
    let (ok, out, _) = constnet(&["eval", "--model", blob.to_str().unwrap(), "--data", data]);
    assert!(
        ok && out.contains(percent),
        "the blob evaluates like the model: {out}"
    );

    embedded_example_agrees(Path::new(model), &blob, &mnist);
}

/// Builds examples/embedded.rs with the blob compiled in and the library built without std,
/// feeds it the 10,000 test images and compares each prediction with the safetensors model's.
fn embedded_example_agrees(model: &Path, blob: &Path, mnist: &Mnist) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    // A separate target directory: the outer `cargo test` may still hold its own.
    let target = Path::new(manifest_dir)
        .join("target")
        .join("embedded-example");
    let build = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--no-default-features",
            "--features",
            "embed-model",
            "--example",
            "embedded",
        ])
        .current_dir(manifest_dir)
        .env("CONSTNET_MODEL", blob)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo build for the example");
    assert!(build.success(), "building examples/embedded.rs failed");
    let mut child = Command::new(target.join("release").join("examples").join("embedded"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the example");
    let images = mnist.test.pixels().to_vec();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &images));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    let embedded: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(embedded.len(), 10000);

    let net = format::load::<MnistMlp>(model).unwrap();
    let mut x = [0.0f32; 784];
    let mut logits = [0.0f32; 10];
    let mut digit = [0u32];
    for (i, &got) in embedded.iter().enumerate() {
        for (x, &p) in x.iter_mut().zip(mnist.test.images().image(i)) {
            *x = f32::from(p) / 255.0;
        }
        net.forward_one::<Simd>(&x, &mut logits);
        argmax(10, 1, &logits, &mut digit);
        assert_eq!(
            got, digit[0],
            "test image {i}: the embedded model says {got}, the safetensors model {}",
            digit[0]
        );
    }
}
