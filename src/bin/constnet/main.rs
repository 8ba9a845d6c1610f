//! The `constnet` command: train, evaluate, predict, inspect and export the reference MNIST
//! network. Argument parsing and printing only; the work is in the library.
//!
//! Exit codes: 0 success, 1 a runtime failure (a bad file, missing data, training diverged),
//! 2 a usage error (unknown flag, bad value).
#![forbid(unsafe_code)]

use constnet::data::mnist::{self, Mnist, OpenOptions};
use constnet::format;
use constnet::train::{
    self, BatchReport, Config, EpochReport, OptimizerChoice, Report, Run, ScheduleChoice,
};
use constnet::{AdamConfig, Init, MnistMlp, Network, SgdConfig, Simd, Workspace};
use lexopt::prelude::*;
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
constnet: train and run a 784→256→128→64→10 MLP on MNIST with SIMD kernels

Usage: constnet <command> [options]

Commands:
  train     train on MNIST, evaluate after each epoch, save the model
  eval      test accuracy, per-class accuracy and confusion matrix of a model
  predict   classify a test-set image or a 28×28 grayscale PGM/PNG file
  info      the SIMD path compiled in, the network, and a model file's header
  export    write a model as a raw blob for no_std programs (--raw)
  bench     measure this machine: FMA peak, kernels, a step, an epoch, inference

Run 'constnet <command> --help' for its options.
Data: --data DIR, else $MNIST_DIR, else ./data/mnist (the four IDX files, raw or .gz).";

const TRAIN_USAGE: &str = "\
Usage: constnet train [options]

Trains the reference network (the default recipe: Adam, lr 1e-3, batch 64, 10 epochs,
constant rate, seed 0), evaluates on the test set after each epoch and saves the model.

Options:
  --epochs N               passes over the training set (default 10)
  --lr X                   base learning rate (default 0.001)
  --optimizer NAME         sgd | adam | adamw (default adam)
  --momentum M             SGD momentum (default 0.9 with sgd)
  --weight-decay W         L2 (sgd, adam) or decoupled (adamw, default 0.01) weight decay
  --schedule NAME          constant | step | cosine (default constant)
  --step-every E           with step: epochs between decays (default 3)
  --gamma G                with step: factor per decay (default 0.5)
  --dropout P              dropout on hidden activations, 0 ≤ P < 1 (default 0)
  --clip-grad-norm X       clip the gradients' global L2 norm to X (default: off)
  --threads N              threads splitting each batch (default: all cores); results are
                           reproducible for a given N
  --init NAME              pytorch | he | xavier (default pytorch)
  --seed S                 seed of every random choice (default 0)
  --data DIR               MNIST directory
  --out PATH               model file to write (default model.safetensors)
  --save-every-epoch       also save the model after each epoch
  --checkpoint-every N     write a checkpoint every N steps (model, optimizer state,
                           position), atomically
  --checkpoint PATH        the checkpoint file (default: --out with extension .ckpt)
  --resume PATH            continue the run saved in a checkpoint, bit for bit (its recipe
                           is used; recipe options are refused)
  --no-mmap                read the data files instead of memory-mapping them
  --log-every N            print a loss line every N batches (default 100)
  -h, --help               this help

A loss or gradient that becomes NaN or infinite stops training with an error naming the
epoch, the step and the last checkpoint.";

const BENCH_USAGE: &str = "\
Usage: constnet bench [--data DIR] [--threads N] [--seconds S] [--json]

Measures this build on this machine, in one run: the FMA peak of one core, each product of a
batch-64 training step (GFLOP/s and share of the peak), a per-phase breakdown of one step, the
step, a whole epoch (training only; with --threads, default all cores), inference over the
10,000 test images and one-sample inference next to the time to stream the weights once.
Uses MNIST if found (--data, $MNIST_DIR, ./data/mnist), else synthetic images of the same
size. Each figure is a median over about S seconds (default 1); --json prints JSON.";

const EVAL_USAGE: &str = "\
Usage: constnet eval --model PATH [--data DIR] [--no-mmap]

Test accuracy, per-class accuracy and the confusion matrix of a model file (safetensors or a
raw blob).";

const PREDICT_USAGE: &str = "\
Usage: constnet predict --model PATH (--index N [--data DIR] | --image FILE [--invert])

Classifies test-set image N, or a 28×28 grayscale PGM or PNG file (white digit on black, as
in MNIST; --invert for black on white). Prints the top 3 classes and draws the image.";

const INFO_USAGE: &str = "\
Usage: constnet info [--model PATH]

The SIMD instruction set the kernels were compiled for, the network's shape, and the header
of a model file: tensors, offsets, alignment, metadata and checksum.";

const EXPORT_USAGE: &str = "\
Usage: constnet export --model PATH --raw [--out PATH]

Writes the model's parameters as a raw, versioned, 64-byte-aligned little-endian blob (default
name: the model's with extension .cnet) for programs that embed it with include_bytes! and
run it without std (see examples/embedded.rs).";

/// `println!` that ignores a closed stdout (`constnet eval | head`) instead of panicking: the
/// command carries on (a training run still saves its model).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same care.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// How a command failed: a usage error (exit 2) or a runtime failure (exit 1).
enum Failure {
    Usage(String),
    Run(Box<dyn Error>),
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::Usage(e.to_string())
    }
}

impl<E: Error + 'static> From<E> for Failure
where
    E: NotLexopt,
{
    fn from(e: E) -> Self {
        Failure::Run(Box::new(e))
    }
}

/// Errors that are runtime failures (everything but lexopt's).
trait NotLexopt {}
impl NotLexopt for constnet::data::DataError {}
impl NotLexopt for format::ModelFileError {}
impl NotLexopt for constnet::image::ImageError {}
impl NotLexopt for std::io::Error {}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

fn main() -> ExitCode {
    // Before anything else: a binary built for AVX2/AVX-512 must not reach a vector
    // instruction on a CPU without them.
    let missing = constnet::cpu::missing_features();
    if !missing.is_empty() {
        eprintln!(
            "constnet: this binary was compiled for CPU features this processor lacks: {}.\n\
             Rebuild it on this machine (cargo build --release), or for the x86-64 baseline with\n\
             RUSTFLAGS=\"-C target-cpu=x86-64\".",
            missing.join(", ")
        );
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("constnet: {message}\nRun 'constnet --help' for usage.");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("constnet: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), Failure> {
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next()? {
        Some(Value(command)) => command.string()?,
        Some(Short('h') | Long("help")) | None => {
            say!("{USAGE}");
            return Ok(());
        }
        Some(Long("version")) => {
            say!("constnet {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(other) => return Err(other.unexpected().into()),
    };
    match command.as_str() {
        "train" => train_command(&mut parser),
        "eval" => eval_command(&mut parser),
        "predict" => predict_command(&mut parser),
        "info" => info_command(&mut parser),
        "export" => export_command(&mut parser),
        "bench" => bench_command(&mut parser),
        other => Err(usage(format!(
            "unknown command '{other}' (train, eval, predict, info, export, bench)"
        ))),
    }
}

/// Parses a flag's value, rejecting what `ok` refuses with `why`.
fn value<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
    ok: impl Fn(&T) -> bool,
    why: &str,
) -> Result<T, Failure>
where
    T::Err: Error + Send + Sync + 'static,
{
    let text = parser.value()?.string()?;
    match text.parse::<T>() {
        Ok(v) if ok(&v) => Ok(v),
        Ok(_) => Err(usage(format!("invalid value '{text}' for '{flag}': {why}"))),
        Err(e) => Err(usage(format!("invalid value '{text}' for '{flag}': {e}"))),
    }
}

fn open_data(dir: Option<&Path>, map: bool) -> Result<Mnist, Failure> {
    let (dir, chosen_by) = mnist::data_dir(dir);
    Ok(Mnist::open(
        &dir,
        chosen_by,
        OpenOptions {
            map,
            ..OpenOptions::default()
        },
    )?)
}

/// Loads a model file: a raw blob if it starts with the blob magic, else safetensors.
fn load_model(path: &Path) -> Result<Box<MnistMlp>, Failure> {
    let mut magic = [0u8; 8];
    let is_raw = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == format::raw::MAGIC);
    Ok(if is_raw {
        format::load_raw::<MnistMlp>(path)?
    } else {
        format::load::<MnistMlp>(path)?
    })
}

fn train_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut config = Config {
        threads: all_cores(),
        ..Config::default()
    };
    let (mut optimizer, mut momentum, mut weight_decay, mut clip) =
        ("adam".to_string(), None, None, 0.0);
    let (mut schedule, mut step_every, mut gamma) = ("constant".to_string(), 3u32, 0.5f32);
    let (mut data, mut out, mut save_every_epoch, mut map) =
        (None, PathBuf::from("model.safetensors"), false, true);
    let (mut checkpoint_every, mut checkpoint, mut resume) = (0u64, None, None);
    // Options that change the recipe, which a resumed run takes from its checkpoint.
    let mut recipe = Vec::new();
    while let Some(arg) = parser.next()? {
        if let Long(name) = arg {
            const RECIPE: &[&str] = &[
                "epochs",
                "lr",
                "optimizer",
                "momentum",
                "weight-decay",
                "schedule",
                "step-every",
                "gamma",
                "dropout",
                "clip-grad-norm",
                "init",
                "seed",
                "threads",
            ];
            if RECIPE.contains(&name) {
                recipe.push(format!("--{name}"));
            }
        }
        match arg {
            Long("threads") => {
                let ok = |&n: &usize| (1..=64).contains(&n);
                config.threads = value(parser, "--threads", ok, "in 1..=64")?
            }
            Long("epochs") => {
                config.epochs = value(parser, "--epochs", |&e: &u32| e > 0, "at least 1")?
            }
            Long("lr") => {
                config.lr = value(
                    parser,
                    "--lr",
                    |&x: &f32| x.is_finite() && x > 0.0,
                    "a finite number > 0",
                )?
            }
            Long("optimizer") => optimizer = parser.value()?.string()?,
            Long("momentum") => {
                momentum = Some(value(
                    parser,
                    "--momentum",
                    |&m: &f32| (0.0..1.0).contains(&m),
                    "in [0, 1)",
                )?)
            }
            Long("weight-decay") => {
                let ok = |&w: &f32| w.is_finite() && w >= 0.0;
                weight_decay = Some(value(parser, "--weight-decay", ok, "a finite number ≥ 0")?)
            }
            Long("clip-grad-norm") => {
                clip = value(
                    parser,
                    "--clip-grad-norm",
                    |&x: &f32| x.is_finite() && x > 0.0,
                    "a finite number > 0",
                )?
            }
            Long("schedule") => schedule = parser.value()?.string()?,
            Long("step-every") => {
                step_every = value(parser, "--step-every", |&e: &u32| e > 0, "at least 1")?
            }
            Long("gamma") => {
                gamma = value(
                    parser,
                    "--gamma",
                    |&g: &f32| g.is_finite() && g > 0.0,
                    "a finite number > 0",
                )?
            }
            Long("dropout") => {
                config.dropout = value(
                    parser,
                    "--dropout",
                    |&p: &f32| (0.0..1.0).contains(&p),
                    "in [0, 1)",
                )?
            }
            Long("init") => {
                config.init = match parser.value()?.string()?.as_str() {
                    "pytorch" => Init::PyTorch,
                    "he" => Init::He,
                    "xavier" => Init::Xavier,
                    other => {
                        return Err(usage(format!(
                            "unknown --init '{other}' (pytorch, he, xavier)"
                        )));
                    }
                }
            }
            Long("seed") => config.seed = value(parser, "--seed", |_: &u64| true, "")?,
            Long("data") => data = Some(PathBuf::from(parser.value()?)),
            Long("out") => out = PathBuf::from(parser.value()?),
            Long("save-every-epoch") => save_every_epoch = true,
            Long("checkpoint-every") => {
                checkpoint_every =
                    value(parser, "--checkpoint-every", |&n: &u64| n > 0, "at least 1")?
            }
            Long("checkpoint") => checkpoint = Some(PathBuf::from(parser.value()?)),
            Long("resume") => resume = Some(PathBuf::from(parser.value()?)),
            Long("no-mmap") => map = false,
            Long("log-every") => {
                config.log_every = value(parser, "--log-every", |&n: &u64| n > 0, "at least 1")?
            }
            Short('h') | Long("help") => {
                say!("{TRAIN_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    config.optimizer = match optimizer.as_str() {
        "sgd" => OptimizerChoice::Sgd(SgdConfig {
            momentum: momentum.unwrap_or(0.9),
            weight_decay: weight_decay.unwrap_or(0.0),
            nesterov: false,
            clip_grad_norm: clip,
        }),
        "adam" => OptimizerChoice::Adam(AdamConfig {
            weight_decay: weight_decay.unwrap_or(0.0),
            clip_grad_norm: clip,
            ..AdamConfig::DEFAULT
        }),
        "adamw" => OptimizerChoice::Adam(AdamConfig {
            weight_decay: weight_decay.unwrap_or(0.01),
            clip_grad_norm: clip,
            ..AdamConfig::ADAMW
        }),
        other => {
            return Err(usage(format!(
                "unknown --optimizer '{other}' (sgd, adam, adamw)"
            )));
        }
    };
    if momentum.is_some() && optimizer != "sgd" {
        return Err(usage("--momentum applies to --optimizer sgd only"));
    }
    config.schedule = match schedule.as_str() {
        "constant" => ScheduleChoice::Constant,
        "step" => ScheduleChoice::Step {
            every: step_every,
            gamma,
        },
        "cosine" => ScheduleChoice::Cosine,
        other => {
            return Err(usage(format!(
                "unknown --schedule '{other}' (constant, step, cosine)"
            )));
        }
    };
    if resume.is_some() && !recipe.is_empty() {
        return Err(usage(format!(
            "{} cannot be combined with --resume: a resumed run keeps its checkpoint's recipe",
            recipe.join(", ")
        )));
    }
    check_writable(&out)?;
    let checkpoint = checkpoint.unwrap_or_else(|| out.with_extension("ckpt"));
    if checkpoint_every > 0 {
        check_writable(&checkpoint)?;
    }

    let mnist = open_data(data.as_deref(), map)?;
    let mut run = match &resume {
        Some(path) => {
            let mut run = Run::<MnistMlp>::resume(path, mnist.train.count)?;
            run.config.log_every = config.log_every;
            run
        }
        None => Run::<MnistMlp>::new(config, mnist.train.count),
    };
    say!(
        "constnet {}: kernels {}, network 784→256→128→64→10 ({} parameters)",
        env!("CARGO_PKG_VERSION"),
        constnet::simd_backend(),
        MnistMlp::PARAMS
    );
    say!(
        "data: {} ({} train, {} test)",
        mnist.dir.display(),
        mnist.train.count,
        mnist.test.count
    );
    say!("recipe: {}", run.config);
    if let Some(path) = &resume {
        say!(
            "resumed from {} at epoch {}, step {}",
            path.display(),
            run.epoch + 1,
            run.step
        );
    }
    let mut console = Console::new();
    let start = Instant::now();
    let evaluation = train::fit(
        &mut run,
        &mnist.train,
        &mnist.test,
        &mut console,
        |run| {
            if checkpoint_every > 0 && run.step % checkpoint_every == 0 {
                run.save_checkpoint(&checkpoint)?;
            }
            Ok(())
        },
        |run| {
            if save_every_epoch {
                format::save(&out, &*run.net())?;
            }
            Ok(())
        },
    )
    .map_err(Failure::Run)?;
    format::save(&out, &*run.net())?;
    say!(
        "saved {} (test accuracy {:.2}%, {} epochs in {:.1} s)",
        out.display(),
        100.0 * evaluation.accuracy(),
        run.epoch,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The number of cores, capped at the batch size.
fn all_cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(train::BATCH)
}

/// Fails early, before hours of training, if the model file cannot be written.
fn check_writable(out: &Path) -> Result<(), Failure> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if out.is_dir() {
        return Err(Failure::Run(
            format!("{}: is a directory, not a model file", out.display()).into(),
        ));
    }
    if !dir.is_dir() {
        return Err(Failure::Run(
            format!(
                "{}: directory {} does not exist",
                out.display(),
                dir.display()
            )
            .into(),
        ));
    }
    Ok(())
}

/// Progress on the console: a progress bar on a terminal, plain lines otherwise.
struct Console {
    tty: bool,
    last_draw: Instant,
    drawn: bool,
}

impl Console {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
            drawn: false,
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

impl Report for Console {
    fn progress(&mut self, r: &BatchReport) {
        if !self.tty || self.last_draw.elapsed().as_millis() < 100 {
            return;
        }
        self.last_draw = Instant::now();
        let (epoch, batch, batches) = (r.epoch, r.batch, r.batches);
        let filled = (30 * batch / batches.max(1)) as usize;
        let bar: String = (0..30)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        eprint!(
            "\r\x1b[2K  epoch {epoch} [{bar}] {batch}/{batches}  {:.0} samples/s",
            r.samples_per_sec
        );
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    fn batch(&mut self, r: &BatchReport) {
        self.clear();
        say!(
            "epoch {}  batch {}/{}  loss {:.4}",
            r.epoch,
            r.batch,
            r.batches,
            r.loss
        );
    }

    fn epoch(&mut self, r: &EpochReport) {
        self.clear();
        say!(
            "epoch {}: train loss {:.4}, test accuracy {:.2}%, {:.2} s",
            r.epoch,
            r.train_loss,
            100.0 * r.test_accuracy,
            r.seconds
        );
    }
}

fn eval_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let (mut model, mut data, mut map) = (None, None, true);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("model") => model = Some(PathBuf::from(parser.value()?)),
            Long("data") => data = Some(PathBuf::from(parser.value()?)),
            Long("no-mmap") => map = false,
            Short('h') | Long("help") => {
                say!("{EVAL_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let model_path = model.ok_or_else(|| usage("eval needs --model PATH"))?;
    let net = load_model(&model_path)?;
    let mnist = open_data(data.as_deref(), map)?;
    let mut ws = <MnistMlp as Network>::Workspace::<{ train::BATCH }>::zeroed_box();
    let start = Instant::now();
    let e = train::evaluate(net.view(), &mnist.test, &mut ws);
    let seconds = start.elapsed().as_secs_f64();
    say!("model: {}", model_path.display());
    say!(
        "test accuracy: {:.2}% ({}/{}) in {:.1} ms",
        100.0 * e.accuracy(),
        e.correct,
        e.total,
        1e3 * seconds
    );
    say!("per class:");
    for c in 0..10 {
        say_part!("  {c}: {:6.2}%", 100.0 * e.class_accuracy(c));
        if c % 5 == 4 {
            say!();
        }
    }
    say!("confusion matrix (rows: true digit, columns: predicted):");
    say!(
        "       {}",
        (0..10).map(|c| format!("{c:>6}")).collect::<String>()
    );
    for (t, row) in e.confusion.iter().enumerate() {
        say!(
            "  {t:>3}  {}",
            row.iter().map(|n| format!("{n:>6}")).collect::<String>()
        );
    }
    Ok(())
}

fn predict_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let (mut model, mut data, mut index, mut image, mut invert) = (None, None, None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("model") => model = Some(PathBuf::from(parser.value()?)),
            Long("data") => data = Some(PathBuf::from(parser.value()?)),
            Long("index") => index = Some(value(parser, "--index", |_: &usize| true, "")?),
            Long("image") => image = Some(PathBuf::from(parser.value()?)),
            Long("invert") => invert = true,
            Short('h') | Long("help") => {
                say!("{PREDICT_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let model_path = model.ok_or_else(|| usage("predict needs --model PATH"))?;
    let (pixels, source, label) = match (index, &image) {
        (Some(i), None) => {
            let mnist = open_data(data.as_deref(), true)?;
            if i >= mnist.test.count {
                return Err(usage(format!(
                    "--index {i} is past the test set's {} images",
                    mnist.test.count
                )));
            }
            let pixels: Vec<f32> = mnist
                .test
                .images()
                .image(i)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect();
            (
                pixels,
                format!("test image {i}"),
                Some(mnist.test.labels()[i]),
            )
        }
        (None, Some(path)) => (
            constnet::image::read_grayscale(path, 28, 28, invert)?,
            path.display().to_string(),
            None,
        ),
        _ => {
            return Err(usage(
                "predict needs exactly one of --index N and --image FILE",
            ));
        }
    };
    let net = load_model(&model_path)?;
    let mut logits = [0.0f32; 10];
    net.forward_one::<Simd>(&pixels, &mut logits);
    let mut probabilities = [0.0f32; 10];
    constnet::loss::softmax(&logits, &mut probabilities);
    let mut ranked: Vec<usize> = (0..10).collect();
    ranked.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    match label {
        Some(l) => say!("{source} (label {l}):"),
        None => say!("{source}:"),
    }
    for &c in &ranked[..3] {
        say!("  {c}  {:6.2}%", 100.0 * probabilities[c]);
    }
    const RAMP: &[u8] = b" .:-=+*#%@";
    for row in pixels.chunks(28) {
        let line: String = row
            .iter()
            .flat_map(|&p| {
                let ch =
                    RAMP[((p.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32).round()) as usize] as char;
                [ch, ch]
            })
            .collect();
        say!("  |{line}|");
    }
    let mean = pixels.iter().sum::<f32>() / pixels.len() as f32;
    if image.is_some() && mean > 0.5 {
        say!("note: the image is mostly light; MNIST digits are light on dark, try --invert");
    }
    Ok(())
}

fn info_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut model = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("model") => model = Some(PathBuf::from(parser.value()?)),
            Short('h') | Long("help") => {
                say!("{INFO_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    say!("constnet {}", env!("CARGO_PKG_VERSION"));
    say!(
        "kernels: {} ({} f32 lanes, register tile {}×{})",
        constnet::simd_backend(),
        constnet::kernels::LANES,
        constnet::kernels::MR,
        constnet::kernels::NR
    );
    say!(
        "network: 784→256→128→64→10, ReLU between layers, {} parameters",
        MnistMlp::PARAMS
    );
    for i in 0..MnistMlp::TENSORS {
        let t = MnistMlp::tensor_info(i);
        say!("  {:<12} {:?}", t.name, t.shape);
    }
    let Some(path) = model else { return Ok(()) };
    let mut magic = [0u8; 8];
    if std::fs::File::open(&path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == format::raw::MAGIC
    {
        format::load_raw::<MnistMlp>(&path)?;
        say!(
            "model file: {} (raw blob, version {}, {} bytes, checksum verified)",
            path.display(),
            format::raw::VERSION,
            format::raw::blob_len::<MnistMlp>()
        );
        return Ok(());
    }
    let s = format::inspect(&path)?;
    say!(
        "model file: {} (safetensors, {} bytes)",
        path.display(),
        s.file_len
    );
    say!(
        "  header: {} bytes; data starts at byte {} ({}64-byte aligned)",
        s.header_len,
        8 + s.header_len,
        if (8 + s.header_len) % 64 == 0 {
            ""
        } else {
            "not "
        }
    );
    let checksum = s.metadata.get(format::safetensors::CHECKSUM_KEY);
    match (checksum, s.verified) {
        (Some(c), true) => say!("  checksum: crc32 {c}, verified"),
        _ => say!("  checksum: none recorded (not written by constnet)"),
    }
    let mut keys: Vec<_> = s.metadata.iter().collect();
    keys.sort();
    for (k, v) in keys {
        say!("  metadata: {k} = {v}");
    }
    for t in &s.tensors {
        say!(
            "  tensor {:<12} {} {:?} bytes {}..{}",
            t.name,
            t.dtype,
            t.shape,
            t.offsets.0,
            t.offsets.1
        );
    }
    match format::load::<MnistMlp>(&path) {
        Ok(_) => say!("  matches the network: yes"),
        Err(e) => say!("  matches the network: no ({e})"),
    }
    Ok(())
}

fn export_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let (mut model, mut out, mut raw) = (None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("model") => model = Some(PathBuf::from(parser.value()?)),
            Long("out") => out = Some(PathBuf::from(parser.value()?)),
            Long("raw") => raw = true,
            Short('h') | Long("help") => {
                say!("{EXPORT_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let model = model.ok_or_else(|| usage("export needs --model PATH"))?;
    if !raw {
        return Err(usage(
            "export needs --raw (the raw blob is the only export format)",
        ));
    }
    let out = out.unwrap_or_else(|| model.with_extension("cnet"));
    let net = load_model(&model)?;
    format::save_raw(&out, &*net)?;
    say!(
        "wrote {} ({} bytes, raw blob version {})",
        out.display(),
        format::raw::blob_len::<MnistMlp>(),
        format::raw::VERSION
    );
    Ok(())
}

fn bench_command(parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let (mut data, mut threads, mut seconds, mut json) = (None, all_cores(), 1.0f64, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("data") => data = Some(PathBuf::from(parser.value()?)),
            Long("threads") => {
                let ok = |&n: &usize| (1..=64).contains(&n);
                threads = value(parser, "--threads", ok, "in 1..=64")?
            }
            Long("seconds") => {
                let ok = |&s: &f64| s.is_finite() && s > 0.0 && s <= 60.0;
                seconds = value(parser, "--seconds", ok, "in (0, 60]")?
            }
            Long("json") => json = true,
            Short('h') | Long("help") => {
                say!("{BENCH_USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let (dir, chosen_by) = mnist::data_dir(data.as_deref());
    let mnist = Mnist::open(&dir, chosen_by, OpenOptions::default());
    if !json {
        match &mnist {
            Ok(m) => say!("data: MNIST from {}", m.dir.display()),
            Err(_) => say!(
                "data: MNIST not found in {} ({chosen_by}); timing on synthetic images of the same size",
                dir.display()
            ),
        }
    }
    let synthetic;
    let (train, test, real) = match &mnist {
        Ok(m) => (&m.train, &m.test, true),
        Err(_) => {
            synthetic = (
                constnet::bench::synthetic_split(60000),
                constnet::bench::synthetic_split(10000),
            );
            (&synthetic.0, &synthetic.1, false)
        }
    };
    let budget = std::time::Duration::from_secs_f64(seconds);
    let report = constnet::bench::run(train, test, real, threads, budget);
    if json {
        say!("{}", report.json());
    } else {
        say_part!("{}", report.table());
    }
    Ok(())
}
