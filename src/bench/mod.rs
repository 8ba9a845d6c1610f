//! `constnet bench`: the performance of this build on this machine, in one table.
//!
//! Measured in one run, so every figure can be read against the others: the FMA peak of one
//! core (the physical limit), each product of a batch-64 training step of the reference
//! network in GFLOP/s and as a share of that peak, a per-phase breakdown of one step, the step
//! itself, a whole epoch (batch assembly, training, optimizer; evaluation excluded), the test
//! set's inference, and single-sample inference next to the time it takes merely to stream the
//! network's weights once, both with the weights in cache (a tight inference loop) and in main
//! memory (an occasional inference).
//!
//! Every figure is the median of repeated timings; the spread is the median absolute deviation
//! as a share of the median (the machine's noise). The criterion benches (`benches/`) are the
//! developer-facing tool; this is the user-facing one.
#![forbid(unsafe_code)]

use std::prelude::rust_2024::*;

use crate::data::Split;
use crate::data::augment::Augment;
use crate::kernels::{self, Backend, FmaPeak, Isa, Simd, SoftmaxXent, Stream, Transpose};
use crate::model::{Network, NetworkView, Workspace, load_u8_batch};
use crate::optim::{Adam, AdamConfig};
use crate::params::Params;
use crate::step::{forward_backward, train_step};
use crate::train::{self, BATCH, Config, Report, Run};
use crate::{AlignedVec, Init, MnistMlp};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

mod int8;
mod product;

pub use int8::Int8Figures;
pub use product::{Kind, Product, WIDTHS};

/// A timing: median seconds per run and the noise.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Median seconds per run.
    pub median: f64,
    /// Median absolute deviation over the median.
    pub spread: f64,
    /// Runs timed.
    pub runs: usize,
}

/// Times `f`: warms up, then takes samples of enough runs to last ≥ 1 ms each, for about
/// `budget`, and returns the median time per run.
pub fn measure(budget: Duration, mut f: impl FnMut()) -> Timing {
    let warm = Instant::now();
    let mut once = 0;
    while once < 3 || warm.elapsed() < budget / 10 {
        f();
        once += 1;
    }
    let per_run = warm.elapsed().as_secs_f64() / once as f64;
    let batch = ((1e-3 / per_run).ceil() as usize).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 500) {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    let median = median(&mut samples);
    let mut deviations: Vec<f64> = samples.iter().map(|s| (s - median).abs()).collect();
    Timing {
        median,
        spread: self::median(&mut deviations) / median,
        runs: samples.len() * batch,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One product of a training step.
#[derive(Clone, Debug)]
pub struct KernelRow {
    /// `forward/784x256/b64` and so on.
    pub name: String,
    /// Floating-point operations per call.
    pub flops: f64,
    /// The timing.
    pub timing: Timing,
}

/// Everything `constnet bench` measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The kernel path every figure but `paths` was measured on.
    pub isa: Isa,
    /// Threads used for the epoch.
    pub threads: usize,
    /// One core's FMA peak on `isa`, GFLOP/s.
    pub fma_peak: f64,
    /// Every path this CPU supports, measured in the same run.
    pub paths: Vec<PathFigures>,
    /// Each product of a batch-64 step.
    pub kernels: Vec<KernelRow>,
    /// Each phase of a batch-64 step, single thread: name and timing.
    pub phases: Vec<(String, Timing)>,
    /// One training step at batch 64, single thread.
    pub step: Timing,
    /// One epoch of the reference recipe (training only), on one thread.
    pub epoch_single: Timing,
    /// One epoch of the reference recipe (training only), with `threads` threads.
    pub epoch: Timing,
    /// The same epoch with every sample warped on the fly (the augmented recipe's affine and
    /// elastic warps), with `threads` threads: the augmentation's cost is the difference.
    pub epoch_augmented: Timing,
    /// Whether the epoch ran on the real MNIST training set (else synthetic bytes).
    pub real_data: bool,
    /// Inference over the 10,000 test images, single thread.
    pub test_set: Timing,
    /// One-sample inference.
    pub one_sample: Timing,
    /// One-sample inference with the weights evicted from the caches first.
    pub one_sample_cold: Timing,
    /// Streaming the network's weights once.
    pub stream_weights: Timing,
    /// Streaming the network's weights once from main memory (caches evicted first).
    pub stream_weights_cold: Timing,
    /// The same network quantized to int8.
    pub int8: Int8Figures,
}

/// The figures that compare the kernel paths.
#[derive(Clone, Debug)]
pub struct PathFigures {
    /// The path.
    pub isa: Isa,
    /// One core's FMA peak with its vectors, GFLOP/s.
    pub fma_peak: f64,
    /// The largest product, `forward/784x256/b64`.
    pub forward_fc1: Timing,
    /// One training step at batch 64.
    pub step: Timing,
    /// One-sample inference, weights in cache.
    pub one_sample: Timing,
}

/// Floating-point operations of one sample's training step (forward, input and weight
/// gradients) in the reference network: 63.1 GFLOP per epoch of 60,000.
const FLOPS_PER_SAMPLE: f64 = 1.052e6;

/// The noise of a timing, as "±x.y%".
fn noise(t: &Timing) -> String {
    format!("±{:.1}%", 100.0 * t.spread)
}

/// Rounds of the FMA peak loop per timed call.
const PEAK_ITERS: usize = 200_000;

/// One core's FMA peak on backend `K` with `lanes` lanes, GFLOP/s.
fn fma_peak<K: Backend>(budget: Duration, lanes: usize) -> f64 {
    let op = || FmaPeak {
        iters: black_box(PEAK_ITERS),
        m: black_box(0.999),
        a: black_box(1e-3),
    };
    let t = measure(budget, || {
        black_box(K::run(op()));
    });
    op().flops(lanes) as f64 / t.median / 1e9
}

/// [`PathFigures`] of backend `K`, the path `isa`.
fn path_figures<K: Backend>(isa: Isa, budget: Duration, train_split: &Split) -> PathFigures {
    let mut product = Product::new(Kind::Forward, 0, BATCH);
    let forward_fc1 = measure(budget, || product.run::<K>());
    let mut rng = crate::data::derived_rng(0, 0, 0);
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng);
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<BATCH>::zeroed_box();
    let indices: Vec<u32> = (0..BATCH as u32).collect();
    load_u8_batch::<_, K>(
        &mut *ws,
        train_split.pixels(),
        train_split.labels(),
        &indices,
    );
    let step = measure(budget, || {
        black_box(train_step::<K, MnistMlp, _, BATCH>(
            &mut net, &mut grads, &mut *adam, &mut ws, BATCH, 1e-4, None,
        ));
    });
    let x = first_image(train_split);
    let mut out = [0.0f32; 10];
    let view = net.view();
    let one_sample = measure(budget, || view.forward_one::<K>(black_box(&x), &mut out));
    PathFigures {
        isa,
        fma_peak: fma_peak::<K>(budget, isa.lanes()),
        forward_fc1,
        step,
        one_sample,
    }
}

/// Image 0 of `split` as network input.
fn first_image(split: &Split) -> AlignedVec {
    let pixels: Vec<f32> = split
        .images()
        .image(0)
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    AlignedVec::from_slice(&pixels)
}

/// [`path_figures`] for every path this CPU supports.
fn all_paths(budget: Duration, train_split: &Split) -> Vec<PathFigures> {
    kernels::supported()
        .map(|isa| match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => path_figures::<kernels::Avx512>(isa, budget, train_split),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => path_figures::<kernels::Avx2>(isa, budget, train_split),
            #[cfg(target_arch = "x86_64")]
            Isa::Sse2 => path_figures::<kernels::Sse2>(isa, budget, train_split),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Portable => path_figures::<kernels::Portable>(isa, budget, train_split),
            _ => path_figures::<kernels::Scalar>(isa, budget, train_split),
        })
        .collect()
}

struct Silent;

impl Report for Silent {
    fn batch(&mut self, _: &train::BatchReport) {}
    fn epoch(&mut self, _: &train::EpochReport) {}
}

/// Bytes to touch to push the weights out of every cache: twice the last-level cache as the
/// OS reports it (64 MiB if it does not), at most 1 GiB.
fn eviction_bytes() -> usize {
    let mut largest = 32 << 20;
    for index in 0..8 {
        let path = format!("/sys/devices/system/cpu/cpu0/cache/index{index}/size");
        if let Ok(text) = std::fs::read_to_string(path) {
            let text = text.trim();
            let (digits, unit) = text.split_at(
                text.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(text.len()),
            );
            let scale = match unit {
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                _ => 1,
            };
            largest = largest.max(digits.parse::<usize>().unwrap_or(0) * scale);
        }
    }
    (2 * largest).min(1 << 30)
}

/// A deterministic byte pattern standing in for images.
fn pattern(n: usize, salt: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt) >> 24) as u8)
        .collect()
}

/// A split of `count` synthetic 28×28 images, for when MNIST is not at hand.
pub fn synthetic_split(count: usize) -> Split {
    let mut images = vec![0, 0, 8, 3];
    for d in [count as u32, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(pattern(count * 784, 1));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((count as u32).to_be_bytes());
    labels.extend((0..count).map(|i| (i % 10) as u8));
    Split::from_idx_bytes(images, labels, 784, 10).expect("a valid synthetic split")
}

/// Runs every measurement. `train` and `test` are the MNIST splits if available (`real_data`
/// says whether they are real); `budget` is the time per figure.
pub fn run(
    train_split: &Split,
    test_split: &Split,
    real_data: bool,
    threads: usize,
    budget: Duration,
) -> BenchReport {
    let isa = kernels::selected();
    let fma_peak = fma_peak::<Simd>(budget, isa.lanes());
    let (kernels, mut phases) = step_phases(budget, train_split);
    let (step, update) = step_and_update(budget, train_split);
    phases.push(("optimizer (Adam: step − step without)".into(), update));
    let none = Augment::NONE;
    let epoch_single = epochs(train_split, 1, none, budget);
    let epoch = if threads > 1 {
        epochs(train_split, threads, none, budget)
    } else {
        epoch_single
    };
    let epoch_augmented = epochs(train_split, threads, Config::augmented().augment, budget);
    let inference = inference(budget, train_split, test_split);
    BenchReport {
        int8: inference.int8,
        isa,
        threads,
        fma_peak,
        paths: all_paths(budget, train_split),
        kernels,
        phases,
        step,
        epoch_single,
        epoch,
        epoch_augmented,
        real_data,
        test_set: inference.test_set,
        one_sample: inference.one_sample,
        one_sample_cold: inference.one_sample_cold,
        stream_weights: inference.stream_weights,
        stream_weights_cold: inference.stream_weights_cold,
    }
}

/// Deterministic floats in [-0.5, 0.5) on cache lines.
fn fill(n: usize, salt: u32) -> AlignedVec {
    let values: Vec<f32> = pattern(n, salt)
        .iter()
        .map(|&b| f32::from(b) / 255.0 - 0.5)
        .collect();
    AlignedVec::from_slice(&values)
}

/// A batch of scattered samples of `split`, as an epoch gathers them.
fn scattered_batch(split: &Split) -> Vec<u32> {
    (0..BATCH as u32)
        .map(|i| i * 97 % split.count as u32)
        .collect()
}

/// Each product of a batch-64 step (forward, then backward last layer first), and the step's
/// phases built from them: batch assembly, forward per layer, loss, backward per layer
/// (input gradient, transpose of the input, weight gradient stored).
fn step_phases(budget: Duration, train_split: &Split) -> (Vec<KernelRow>, Vec<(String, Timing)>) {
    let b = BATCH;
    let mut kernels = Vec::new();
    let mut time = |kind: Kind, layer: usize| {
        let mut product = Product::new(kind, layer, b);
        let timing = measure(budget, || product.run::<Simd>());
        let (name, flops) = (product.name(), product.flops());
        kernels.push(KernelRow {
            name,
            flops,
            timing,
        });
        timing
    };
    let mut phases = vec![(
        "batch assembly (u8 → f32, both layouts)".into(),
        batch_assembly(budget, train_split),
    )];
    for l in 0..4 {
        phases.push((format!("forward fc{}", l + 1), time(Kind::Forward, l)));
    }
    phases.push(("loss (softmax cross-entropy)".into(), loss(budget)));
    for l in (0..4).rev() {
        let mut total = 0.0;
        if l > 0 {
            total += time(Kind::InputGrad, l).median + transpose(budget, WIDTHS[l]).median;
        }
        let t = time(Kind::WeightGrad, l);
        let median = total + t.median;
        phases.push((format!("backward fc{}", l + 1), Timing { median, ..t }));
    }
    (kernels, phases)
}

/// Loading a scattered batch of u8 images into the workspace's two f32 layouts.
fn batch_assembly(budget: Duration, split: &Split) -> Timing {
    let mut ws = <MnistMlp as Network>::Workspace::<BATCH>::zeroed_box();
    let indices = scattered_batch(split);
    measure(budget, || {
        load_u8_batch::<_, Simd>(&mut *ws, split.pixels(), split.labels(), &indices);
    })
}

/// The fused softmax cross-entropy over a batch.
fn loss(budget: Duration) -> Timing {
    let b = BATCH;
    let (logits, mut dlogits) = (fill(10 * b, 4), AlignedVec::zeroed(10 * b));
    let labels: Vec<u32> = (0..b as u32).map(|j| j % 10).collect();
    measure(budget, || {
        black_box(Simd::run(SoftmaxXent {
            classes: 10,
            batch: b,
            logits: black_box(&logits),
            labels: &labels,
            dlogits: &mut dlogits,
            whole_batch: b,
        }));
    })
}

/// Transposing a layer input of `rows` features to batch-major rows.
fn transpose(budget: Duration, rows: usize) -> Timing {
    let cols = BATCH;
    let (x, mut x_rows) = (fill(rows * cols, 7), AlignedVec::zeroed(cols * rows));
    measure(budget, || {
        let (src, dst) = (black_box(&x[..]), &mut x_rows[..]);
        Simd::run(Transpose {
            rows,
            cols,
            src,
            dst,
        })
    })
}

/// One whole training step on a real batch ([`train_step`]: the Adam update as one pass after
/// the backward), and what the update adds to it: the step minus forward and backward alone
/// (which store the gradients instead).
fn step_and_update(budget: Duration, split: &Split) -> (Timing, Timing) {
    let mut rng = crate::data::derived_rng(0, 0, 0);
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng);
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<BATCH>::zeroed_box();
    load_u8_batch::<_, Simd>(
        &mut *ws,
        split.pixels(),
        split.labels(),
        &scattered_batch(split),
    );
    let step = measure(budget, || {
        black_box(train_step::<Simd, MnistMlp, _, BATCH>(
            &mut net, &mut grads, &mut *adam, &mut ws, BATCH, 1e-4, None,
        ));
    });
    let without = measure(budget, || {
        black_box(forward_backward::<Simd, MnistMlp, BATCH>(
            &net, &mut grads, &mut ws, BATCH, None,
        ));
    });
    let update = Timing {
        median: (step.median - without.median).max(0.0),
        spread: step.spread.max(without.spread),
        runs: step.runs.min(without.runs),
    };
    (step, update)
}

/// Whole epochs of the reference recipe on `threads` threads (training only): at least 3, up
/// to 10 within four budgets.
fn epochs(split: &Split, threads: usize, augment: Augment, budget: Duration) -> Timing {
    let config = Config {
        threads,
        augment,
        ..Config::default()
    };
    let mut run = Run::<MnistMlp>::new(config, split.count).expect("the reference recipe");
    let mut epochs = Vec::new();
    let start = Instant::now();
    while epochs.len() < 3 || (start.elapsed() < budget * 4 && epochs.len() < 10) {
        let (_, seconds) = run
            .train_epoch(split, &mut Silent, |_| Ok(()))
            .expect("an epoch");
        epochs.push(seconds);
    }
    let runs = epochs.len();
    let m = median(&mut epochs);
    let mut dev: Vec<f64> = epochs.iter().map(|e| (e - m).abs()).collect();
    Timing {
        median: m,
        spread: median(&mut dev) / m,
        runs,
    }
}

/// The inference figures of [`BenchReport`].
struct Inference {
    test_set: Timing,
    one_sample: Timing,
    one_sample_cold: Timing,
    stream_weights: Timing,
    stream_weights_cold: Timing,
    int8: Int8Figures,
}

/// The test set's inference and one-sample inference, beside streaming the weights once,
/// with the weights in cache and in main memory.
fn inference(budget: Duration, train_split: &Split, test_split: &Split) -> Inference {
    let mut rng = crate::data::derived_rng(0, 0, 0);
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut rng);
    let mut ws = <MnistMlp as Network>::Workspace::<BATCH>::zeroed_box();
    let test_set = measure(budget, || {
        black_box(train::evaluate(net.view(), test_split, &mut ws));
    });
    let x = first_image(test_split);
    let mut out = [0.0f32; 10];
    let view = net.view();
    let mut one = || view.forward_one::<Simd>(black_box(&x), &mut out);
    let weights: Vec<&[f32]> = (0..MnistMlp::TENSORS).map(|i| net.tensor(i)).collect();
    let mut stream = || {
        black_box(Simd::run(Stream(black_box(&weights))));
    };
    Inference {
        test_set,
        one_sample: measure(budget, &mut one),
        stream_weights: measure(budget, &mut stream),
        one_sample_cold: cold(&mut one),
        stream_weights_cold: cold(&mut stream),
        int8: int8::figures(&net, train_split, test_split, budget),
    }
}

/// Times `f` with the caches flushed first: touches a buffer twice the size of the last-level
/// cache before each of 11 runs.
fn cold(f: &mut dyn FnMut()) -> Timing {
    let mut evict = vec![0u8; eviction_bytes()];
    let mut times = Vec::new();
    for _ in 0..11 {
        for line in evict.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&evict);
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    let m = median(&mut times);
    let mut dev: Vec<f64> = times.iter().map(|t| (t - m).abs()).collect();
    Timing {
        median: m,
        spread: median(&mut dev) / m,
        runs: times.len(),
    }
}

impl BenchReport {
    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "constnet bench: kernels {}, {} thread(s) for the epoch",
            self.isa, self.threads
        );
        let _ = writeln!(
            s,
            "FMA peak, one core: {:.1} GFLOP/s on {}\n",
            self.fma_peak,
            self.isa.name()
        );
        self.write_products(&mut s);
        self.write_phases(&mut s);
        self.write_training(&mut s);
        self.write_inference(&mut s);
        self.write_paths(&mut s);
        s
    }

    fn write_products(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "{:<28} {:>10} {:>9} {:>10} {:>8}",
            "product (batch 64)", "µs", "GFLOP/s", "% of peak", "noise"
        );
        for k in &self.kernels {
            let gflops = k.flops / k.timing.median / 1e9;
            let _ = writeln!(
                s,
                "{:<28} {:>10.2} {:>9.1} {:>9.0}% {:>8}",
                k.name,
                1e6 * k.timing.median,
                gflops,
                100.0 * gflops / self.fma_peak,
                noise(&k.timing)
            );
        }
    }

    fn write_phases(&self, s: &mut String) {
        let total: f64 = self.phases.iter().map(|p| p.1.median).sum();
        let _ = writeln!(
            s,
            "\n{:<46} {:>10} {:>8}",
            "one step, by phase (batch 64)", "µs", "share"
        );
        for (name, t) in &self.phases {
            let (us, share) = (1e6 * t.median, 100.0 * t.median / total);
            let _ = writeln!(s, "{name:<46} {us:>10.1} {share:>7.1}%");
        }
        let _ = writeln!(s, "{:<46} {:>10.1}\n", "sum of phases", 1e6 * total);
    }

    /// The training step and the epochs, with their rates and shares of the FMA peak (of one
    /// core for one thread, of `threads` cores for more).
    fn write_training(&self, s: &mut String) {
        let rate = |samples: f64, t: &Timing, cores: usize| {
            let gflops = samples * FLOPS_PER_SAMPLE / t.median / 1e9;
            let share = 100.0 * gflops / (self.fma_peak * cores as f64);
            format!(
                "{:>8.0} samples/s {gflops:>6.1} GFLOP/s {share:>4.0}% pk  {}",
                samples / t.median,
                noise(t)
            )
        };
        let _ = writeln!(
            s,
            "training step, batch 64:   {:>8.1} µs  {}",
            1e6 * self.step.median,
            rate(BATCH as f64, &self.step, 1)
        );
        let data = if self.real_data {
            "MNIST"
        } else {
            "synthetic data"
        };
        let mut epochs = vec![(1, &self.epoch_single)];
        if self.threads > 1 {
            epochs.push((self.threads, &self.epoch));
        }
        for (threads, t) in epochs {
            let _ = writeln!(
                s,
                "one epoch, {threads} thread(s):   {:>8.3} s   {}  ({data}, median of {})",
                t.median,
                rate(60000.0, t, threads),
                t.runs
            );
        }
        if self.threads > 1 {
            let speedup = self.epoch_single.median / self.epoch.median;
            let _ = writeln!(s, "epoch speed-up, {} threads: {speedup:.2}×", self.threads);
        }
        let (plain, augmented) = (self.epoch.median, self.epoch_augmented.median);
        let _ = writeln!(
            s,
            "augmented epoch, {} thread(s): {augmented:>6.3} s   {:+.1} % for the affine and elastic warps  {}",
            self.threads,
            100.0 * (augmented / plain - 1.0),
            noise(&self.epoch_augmented)
        );
    }

    fn write_inference(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "test set, 10,000 images:   {:>8.2} ms  {}",
            1e3 * self.test_set.median,
            noise(&self.test_set)
        );
        let runs = [
            ("cache", &self.one_sample, &self.stream_weights),
            ("memory", &self.one_sample_cold, &self.stream_weights_cold),
        ];
        for (place, one, stream) in runs {
            let _ = writeln!(
                s,
                "one-sample inference:      {:>8.2} µs  {}   weights in {place}; streaming them: {:.2} µs, ratio {:.2}",
                1e6 * one.median,
                noise(one),
                1e6 * stream.median,
                one.median / stream.median
            );
        }
        let q = &self.int8;
        let _ = writeln!(
            s,
            "int8 ({}): test set {:.2} ms {}, {:.1}x f32; one sample {:.2} µs {}, {:.1}x f32; weights in memory {:.2} µs {}",
            q.path,
            1e3 * q.test_set.median,
            noise(&q.test_set),
            self.test_set.median / q.test_set.median,
            1e6 * q.one_sample.median,
            noise(&q.one_sample),
            self.one_sample.median / q.one_sample.median,
            1e6 * q.one_sample_cold.median,
            noise(&q.one_sample_cold),
        );
    }

    fn write_paths(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<10} {:>10} {:>22} {:>22} {:>12}",
            "path", "FMA peak", "forward 784x256 b64", "training step b64", "one sample"
        );
        for p in &self.paths {
            let gflops = Product::new(Kind::Forward, 0, BATCH).flops() / p.forward_fc1.median / 1e9;
            let _ = writeln!(
                s,
                "{:<10} {:>8.1} G {:>9.1} µs {:>5.0}% pk {:>9.1} µs {:>5.1}x   {:>9.2} µs",
                p.isa.name(),
                p.fma_peak,
                1e6 * p.forward_fc1.median,
                100.0 * gflops / p.fma_peak,
                1e6 * p.step.median,
                p.step.median / self.step.median,
                1e6 * p.one_sample.median
            );
        }
    }

    /// The report as JSON.
    pub fn json(&self) -> String {
        use serde_json::json;
        let timing = |t: &Timing| json!({ "median_s": t.median, "mad_over_median": t.spread, "runs": t.runs });
        let value = json!({
            "simd": self.isa.name(),
            "lanes": self.isa.lanes(),
            "threads": self.threads,
            "fma_peak_gflops": self.fma_peak,
            "paths": self.paths.iter().map(|p| json!({
                "simd": p.isa.name(),
                "fma_peak_gflops": p.fma_peak,
                "forward_784x256_b64": timing(&p.forward_fc1),
                "train_step_b64": timing(&p.step),
                "one_sample_inference": timing(&p.one_sample),
            })).collect::<Vec<_>>(),
            "kernels": self.kernels.iter().map(|k| json!({
                "name": k.name,
                "flops": k.flops,
                "gflops": k.flops / k.timing.median / 1e9,
                "fraction_of_peak": k.flops / k.timing.median / 1e9 / self.fma_peak,
                "timing": timing(&k.timing),
            })).collect::<Vec<_>>(),
            "phases": self.phases.iter().map(|(n, t)| json!({ "name": n, "timing": timing(t) })).collect::<Vec<_>>(),
            "train_step_b64": timing(&self.step),
            "samples_per_second_step": 64.0 / self.step.median,
            "epoch_one_thread": timing(&self.epoch_single),
            "epoch": timing(&self.epoch),
            "epoch_augmented": timing(&self.epoch_augmented),
            "augmentation_overhead": self.epoch_augmented.median / self.epoch.median - 1.0,
            "epoch_real_mnist": self.real_data,
            "test_set_inference": timing(&self.test_set),
            "one_sample_inference": timing(&self.one_sample),
            "stream_weights": timing(&self.stream_weights),
            "one_sample_inference_cold": timing(&self.one_sample_cold),
            "stream_weights_cold": timing(&self.stream_weights_cold),
            "int8": json!({
                "path": self.int8.path.name(),
                "test_set_inference": timing(&self.int8.test_set),
                "one_sample_inference": timing(&self.int8.one_sample),
                "one_sample_inference_cold": timing(&self.int8.one_sample_cold),
            }),
        });
        serde_json::to_string_pretty(&value).expect("JSON")
    }
}
