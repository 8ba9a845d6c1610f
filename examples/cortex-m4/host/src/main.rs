//! The host's side of `run-test.sh`: classifies the same images with the same raw blob through
//! the same library calls as the firmware (int8: `quant::raw::view`, `classify`; f32:
//! `raw::view`, `forward_one::<Simd>`, `argmax`), then compares with what the firmware printed
//! under QEMU.
//!
//! ```text
//! host-check --model M.cnet --images I.u8 --labels L.u8 \
//!     --firmware-out qemu.stdout --firmware-err qemu.stderr (--exact | --tolerance T)
//! ```
//!
//! The firmware's stdout must be `correct: C/N` and `fnv1a32: 0x…` (checked against its own
//! `predictions:` line on stderr). Each image where the two predictions differ is listed with
//! the host's two largest logits. With `--exact` any difference fails. With `--tolerance T` a
//! difference is excused when the host's top two logits are within T of each other (a near
//! tie that another rounding may flip); any other difference fails. Exit status 0 when the
//! check passes, 1 when it fails, 2 on bad arguments or unreadable files.
//!
//! An int8 model is integer arithmetic, the same on every kernel path: `--exact` holds on all
//! of them. For a f32 model, which arithmetic the host uses is constnet's kernel path, chosen
//! at run time:
//! `CONSTNET_SIMD=scalar` gives one lane and separate multiply and add, which is what the
//! Cortex-M4 build runs (its best path); the host's best path has FMA and, with AVX-512, 16
//! lanes, so sums are rounded differently.

use constnet::format::raw;
use constnet::kernels::int8::Int8Path;
use constnet::kernels::{self, Isa};
use constnet::quant;
use constnet::{MnistMlp, NetworkView, Simd, logits::argmax};
use std::process::ExitCode;

const PIXELS: usize = 28 * 28;

/// The checksum the firmware prints: 32-bit FNV-1a over the predicted digits, one byte each.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

struct Args {
    model: String,
    images: String,
    labels: String,
    firmware_out: String,
    firmware_err: String,
    /// None: exact.
    tolerance: Option<f32>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut model, mut images, mut labels, mut out, mut err) = (None, None, None, None, None);
    let mut tolerance = None;
    let mut exact = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--images" => images = Some(value()?),
            "--labels" => labels = Some(value()?),
            "--firmware-out" => out = Some(value()?),
            "--firmware-err" => err = Some(value()?),
            "--exact" => exact = true,
            "--tolerance" => {
                let v = value()?;
                let t: f32 = v.parse().map_err(|e| format!("--tolerance {v}: {e}"))?;
                if !(t >= 0.0 && t.is_finite()) {
                    return Err(format!("--tolerance {v}: must be a finite number ≥ 0"));
                }
                tolerance = Some(t);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if exact == tolerance.is_some() {
        return Err("give exactly one of --exact and --tolerance T".into());
    }
    let need = |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
    Ok(Args {
        model: need(model, "--model")?,
        images: need(images, "--images")?,
        labels: need(labels, "--labels")?,
        firmware_out: need(out, "--firmware-out")?,
        firmware_err: need(err, "--firmware-err")?,
        tolerance,
    })
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

/// What the firmware reported.
struct Firmware {
    correct: usize,
    count: usize,
    checksum: u32,
    predictions: Vec<u8>,
}

fn parse_firmware(stdout: &str, stderr: &str) -> Result<Firmware, String> {
    let mut lines = stdout.lines();
    let correct_line = lines.next().unwrap_or("");
    let checksum_line = lines.next().unwrap_or("");
    let bad = || {
        format!(
            "the firmware's stdout is not the two expected lines `correct: C/N`, `fnv1a32: 0x…`:\n{stdout}"
        )
    };
    let (correct, count) = correct_line
        .strip_prefix("correct: ")
        .and_then(|s| s.split_once('/'))
        .ok_or_else(bad)?;
    let checksum = checksum_line
        .strip_prefix("fnv1a32: 0x")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(bad)?;
    if lines.next().is_some() {
        return Err(bad());
    }
    let predictions = stderr
        .lines()
        .find_map(|l| l.strip_prefix("predictions: "))
        .ok_or("no `predictions:` line on the firmware's stderr")?
        .bytes()
        .map(|c| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            _ => Err(format!(
                "non-digit {:?} in the firmware's predictions",
                c as char
            )),
        })
        .collect::<Result<Vec<u8>, String>>()?;
    Ok(Firmware {
        correct: correct.parse().map_err(|_| bad())?,
        count: count.parse().map_err(|_| bad())?,
        checksum,
        predictions,
    })
}

/// The firmware's f32 computation (`examples/cortex-m4/src/classify.rs`): the digits and
/// each image's two largest logits.
fn classify_f32(
    model: <MnistMlp as constnet::Network>::View<'_>,
    images: &[u8],
) -> (Vec<u8>, Vec<(f32, f32)>) {
    let mut x = [0.0f32; PIXELS];
    let (mut host, mut top_two) = (Vec::new(), Vec::new());
    for image in images.chunks_exact(PIXELS) {
        for (x, &p) in x.iter_mut().zip(image) {
            *x = f32::from(p) / 255.0;
        }
        let mut logits = [0.0f32; 10];
        model.forward_one::<Simd>(&x, &mut logits);
        let mut digit = [0u32];
        argmax(10, 1, &logits, &mut digit);
        host.push(digit[0] as u8);
        let mut sorted = logits;
        sorted.sort_by(|a, b| b.total_cmp(a));
        top_two.push((sorted[0], sorted[1]));
    }
    (host, top_two)
}

/// The firmware's int8 computation: `classify` on the int8 path `CONSTNET_SIMD` selects, the
/// digit from the integer logits; the top two logits dequantized, for the report.
fn classify_int8(model: &quant::QuantMnist<'_>, images: &[u8]) -> (Vec<u8>, Vec<(f32, f32)>) {
    let path = Int8Path::selected();
    let (mut host, mut top_two) = (Vec::new(), Vec::new());
    for image in images.chunks_exact(PIXELS) {
        host.push(model.classify(path, image) as u8);
        let mut logits = [0i32; 10];
        model.forward_one(path, image, &mut logits);
        let mut sorted = logits.map(|l| l as f32 * model.logit_scale());
        sorted.sort_by(|a, b| b.total_cmp(a));
        top_two.push((sorted[0], sorted[1]));
    }
    (host, top_two)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("host-check: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(passed).
fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let blob = read(&args.model)?;
    // The views read the tensors in place: they need the bytes on a 4-byte boundary.
    let mut words = vec![0u32; blob.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..blob.len()].copy_from_slice(&blob);
    let blob = &bytemuck::cast_slice::<u32, u8>(&words)[..blob.len()];
    let images = read(&args.images)?;
    let labels = read(&args.labels)?;
    if images.len() != labels.len() * PIXELS {
        return Err(format!(
            "{} images ({} bytes) but {} labels",
            images.len() as f64 / PIXELS as f64,
            images.len(),
            labels.len()
        ));
    }
    let int8 = blob.starts_with(&quant::raw::MAGIC);
    let (host, top_two) = if int8 {
        let model = quant::raw::view::<4>(blob, &quant::MNIST_DIMS)
            .map_err(|e| format!("{}: {e}", args.model))?;
        classify_int8(&model, &images)
    } else {
        let model = raw::view::<MnistMlp>(blob).map_err(|e| format!("{}: {e}", args.model))?;
        classify_f32(model, &images)
    };
    let host_correct = host.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let n = labels.len();
    let isa = kernels::selected();
    let arithmetic = if int8 {
        format!("int8 on the {} path, exact", Int8Path::selected())
    } else {
        format!(
            "{isa}, {}",
            if matches!(isa, Isa::Avx512 | Isa::Avx2) {
                "fused multiply-add"
            } else {
                "separate multiply and add"
            }
        )
    };
    println!(
        "host ({arithmetic}): correct: {host_correct}/{n}, fnv1a32: {:#010x}",
        fnv1a32(&host)
    );

    let stdout = String::from_utf8_lossy(&read(&args.firmware_out)?).into_owned();
    let stderr = String::from_utf8_lossy(&read(&args.firmware_err)?).into_owned();
    let fw = parse_firmware(&stdout, &stderr)?;
    println!(
        "firmware (Cortex-M4 under QEMU): correct: {}/{}, fnv1a32: {:#010x}",
        fw.correct, fw.count, fw.checksum
    );

    let mut passed = true;
    if fw.count != n || fw.predictions.len() != n {
        println!(
            "FAIL: the firmware classified {} images ({} predictions), the host {n}",
            fw.count,
            fw.predictions.len()
        );
        return Ok(false);
    }
    let fw_correct = fw
        .predictions
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    if fw_correct != fw.correct || fnv1a32(&fw.predictions) != fw.checksum {
        println!(
            "FAIL: the firmware's summary does not match its own predictions \
             ({fw_correct} correct, fnv1a32 {:#010x})",
            fnv1a32(&fw.predictions)
        );
        passed = false;
    }

    let mut differing = 0;
    let mut unexcused = 0;
    for (i, (&h, &f)) in host.iter().zip(&fw.predictions).enumerate() {
        if h == f {
            continue;
        }
        differing += 1;
        let (first, second) = top_two[i];
        let margin = first - second;
        let excused = args.tolerance.is_some_and(|t| margin <= t);
        if !excused {
            unexcused += 1;
        }
        println!(
            "  image {i}: label {}, host {h}, firmware {f}; host's top two logits {first} and \
             {second} (margin {margin:.3e}){}",
            labels[i],
            if excused {
                ", within the tolerance"
            } else {
                ""
            }
        );
    }
    let smallest = top_two
        .iter()
        .map(|(a, b)| a - b)
        .fold(f32::INFINITY, f32::min);
    match args.tolerance {
        None => println!(
            "differing predictions: {differing} of {n} (exact check; the host's smallest \
             top-two margin is {smallest:.3e})"
        ),
        Some(t) => println!(
            "differing predictions: {differing} of {n}, {} within the tolerance (host's top \
             two logits at most {t} apart; the smallest margin is {smallest:.3e})",
            differing - unexcused
        ),
    }
    if unexcused > 0 {
        println!("FAIL: {unexcused} predictions differ");
        passed = false;
    } else if differing == 0 && (host_correct != fw.correct || fnv1a32(&host) != fw.checksum) {
        println!("FAIL: equal predictions but different summaries");
        passed = false;
    }
    Ok(passed)
}
