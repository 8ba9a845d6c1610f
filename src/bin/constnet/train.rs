//! `constnet train`: the recipe flags, the run (fresh or resumed), checkpoints and the saved
//! model. What it prints, and how, is [`crate::progress`]'s.

use crate::arch::{self, Arch, with_arch};
use crate::args::{self, DataDir};
use crate::progress::{Console, Output};
use crate::record::{self, MetricsLog};
use crate::signals::{self, Interrupted};
use clap::error::ErrorKind;
use constnet::data::augment::{Affine, Augment, Elastic};
use constnet::data::mnist::Mnist;
use constnet::train::{
    self, Config, Evaluation, OptimizerChoice, RecipeChoice, Run, ScheduleChoice,
};
use constnet::{Init, MnistMlpBn, Network, atomic_file, format};
use serde_json::{Value, json};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train on MNIST, evaluate after each epoch, save the model
#[derive(clap::Args)]
#[command(
    after_help = "The defaults are the reference recipe. A loss or gradient that becomes NaN \
                      or infinite stops training with an error naming the epoch, the step and the \
                      last checkpoint."
)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Read the data files instead of memory-mapping them
    #[arg(long)]
    no_mmap: bool,
    /// Fail when the data directory has none of the four files, instead of downloading MNIST
    /// into it
    #[cfg(feature = "download")]
    #[arg(long)]
    no_download: bool,
    /// The model file to write
    #[arg(long, value_name = "PATH", default_value = "model.safetensors")]
    out: PathBuf,
    /// Also save the model after each epoch
    #[arg(long)]
    save_every_epoch: bool,
    /// Write a checkpoint every N steps (model, optimizer state, position), atomically
    #[arg(long, value_name = "N", value_parser = args::at_least_one::<u64>, allow_negative_numbers = true)]
    checkpoint_every: Option<u64>,
    /// The checkpoint file [default: --out with extension .ckpt]
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Continue the run saved in a checkpoint, bit for bit, with the checkpoint's recipe
    #[arg(long, value_name = "PATH")]
    resume: Option<PathBuf>,
    /// Print a loss line every N batches
    #[arg(long, value_name = "N", default_value_t = Config::default().log_every,
          value_parser = args::at_least_one::<u64>, allow_negative_numbers = true)]
    log_every: u64,
    /// Print only the final line (and errors)
    #[arg(long, short, conflicts_with = "json")]
    quiet: bool,
    /// Print JSON lines instead: one object per log line, epoch and result, for programs
    #[arg(long)]
    json: bool,
    /// Which model --out holds: the last epoch's, or the best validation epoch's (needs --val)
    #[arg(long, value_name = "WHICH", default_value = "last",
          value_parser = ["last", "best"])]
    keep: String,
    /// The network: reference (784→256→128→64→10) or reference-bn (the same with batch
    /// normalization after each hidden layer, trained on one thread; its model file is folded
    /// into the reference network by eval, predict, quantize and export). Give it again with
    /// --resume
    #[arg(long, value_name = "NAME", default_value = "reference",
          value_parser = ["reference", "reference-bn"])]
    arch: String,
    // Last: its help heading applies to the flags that follow it.
    #[command(flatten)]
    recipe: Recipe,
}

/// The recipe: what a checkpoint records and a resumed run keeps. clap refuses these flags
/// with `--resume` as the group "recipe", so adding one here is all it takes.
#[derive(clap::Args)]
#[group(id = "recipe", conflicts_with = "resume")]
#[command(next_help_heading = "Recipe (refused with --resume, which keeps the checkpoint's)")]
struct Recipe {
    /// The recipe the other flags change: reference (the defaults shown) or augmented
    /// (affine + elastic augmentation, 100 epochs, cosine schedule)
    // Not the id `recipe`: that is the group's.
    #[arg(long = "recipe", value_name = "NAME", default_value_t = RecipeChoice::Reference,
          value_parser = args::one_of(&RecipeChoice::ALL))]
    base: RecipeChoice,
    /// Passes over the training set [default: 10, augmented 100]
    #[arg(long, value_name = "N", value_parser = args::at_least_one::<u32>,
          allow_negative_numbers = true)]
    epochs: Option<u32>,
    /// Base learning rate
    #[arg(long, value_name = "X", default_value_t = Config::default().lr,
          value_parser = args::positive, allow_negative_numbers = true)]
    lr: f32,
    /// Optimizer
    #[arg(long, value_name = "NAME", default_value_t = Config::default().optimizer,
          value_parser = args::one_of(&OptimizerChoice::ALL))]
    optimizer: OptimizerChoice,
    /// Momentum of sgd and rmsprop [default: sgd 0.9, rmsprop 0]
    #[arg(long, value_name = "M", value_parser = args::fraction, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// RMSprop's smoothing constant α [default: 0.99]
    #[arg(long, value_name = "A", value_parser = args::fraction, allow_negative_numbers = true)]
    alpha: Option<f32>,
    /// RMSprop: divide by the centered second moment
    #[arg(long)]
    centered: bool,
    /// Weight decay: L2 with sgd, adam and rmsprop, decoupled with adamw [default: 0, adamw 0.01]
    #[arg(long, value_name = "W", value_parser = args::non_negative, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// Learning-rate schedule [default: constant, augmented cosine]
    #[arg(long, value_name = "NAME", value_parser = args::one_of(&ScheduleChoice::ALL))]
    schedule: Option<ScheduleChoice>,
    /// With --schedule step: epochs between decays
    #[arg(long, value_name = "E", default_value_t = step_default().0,
          value_parser = args::at_least_one::<u32>, allow_negative_numbers = true)]
    step_every: u32,
    /// With --schedule step: factor per decay
    #[arg(long, value_name = "G", default_value_t = step_default().1,
          value_parser = args::positive, allow_negative_numbers = true)]
    gamma: f32,
    /// Dropout on hidden activations, 0 ≤ P < 1
    #[arg(long, value_name = "P", default_value_t = Config::default().dropout,
          value_parser = args::fraction, allow_negative_numbers = true)]
    dropout: f32,
    /// Clip the gradients' global L2 norm to X [default: off]
    #[arg(long, value_name = "X", value_parser = args::positive, allow_negative_numbers = true)]
    clip_grad_norm: Option<f32>,
    /// Parameter initialisation
    #[arg(long, value_name = "NAME", default_value_t = Config::default().init,
          value_parser = args::one_of(&Init::ALL))]
    init: Init,
    /// With --init normal: the weights' standard deviation [default: 0.01]
    #[arg(long, value_name = "S", value_parser = args::positive, allow_negative_numbers = true)]
    init_std: Option<f32>,
    /// Seed of every random choice
    #[arg(long, value_name = "S", default_value_t = Config::default().seed)]
    seed: u64,
    /// Threads splitting each batch; a run is reproducible for a given N [default: all cores]
    #[arg(long, value_name = "N", value_parser = args::threads, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// Samples per batch, 1 to 256 (the batch workspaces' compiled size)
    #[arg(long, value_name = "N", default_value_t = Config::default().batch,
          value_parser = args::batch_size, allow_negative_numbers = true)]
    batch_size: usize,
    /// Hold out the last N samples of a fixed shuffle of the training set for validation
    #[arg(long, value_name = "N", default_value_t = 0)]
    val: usize,
    /// Warp each training sample on the fly [default: none, augmented both]
    #[arg(long, value_name = "KIND", value_parser = ["none", "affine", "elastic", "both"])]
    augment: Option<String>,
    /// Affine warp: rotation range, degrees [default: 10]
    #[arg(long, value_name = "DEG", value_parser = args::non_negative, allow_negative_numbers = true)]
    rotate: Option<f32>,
    /// Affine warp: translation range, pixels [default: 2]
    #[arg(long, value_name = "PX", value_parser = args::non_negative, allow_negative_numbers = true)]
    translate: Option<f32>,
    /// Affine warp: scale range, a fraction [default: 0.1]
    #[arg(long, value_name = "F", value_parser = args::fraction, allow_negative_numbers = true)]
    scale: Option<f32>,
    /// Affine warp: shear range, degrees [default: 10]
    #[arg(long, value_name = "DEG", value_parser = args::non_negative, allow_negative_numbers = true)]
    shear: Option<f32>,
    /// Elastic distortion: the displacement field's scale α, pixels [default: 34]
    #[arg(long, value_name = "A", value_parser = args::non_negative, allow_negative_numbers = true)]
    elastic_alpha: Option<f32>,
    /// Elastic distortion: the smoothing Gaussian's σ, pixels [default: 4]
    #[arg(long, value_name = "S", value_parser = args::non_negative, allow_negative_numbers = true)]
    elastic_sigma: Option<f32>,
    /// The network's hidden widths: 256,128,64 (the reference), 512,256, 800, 1024,512 or
    /// 2048,1024
    #[arg(long, value_name = "WIDTHS", default_value = "256,128,64", value_parser = Arch::parse)]
    hidden: Arch,
}

impl Recipe {
    /// The augmentation: `--augment` (or the recipe's) with the parameters given, each
    /// refused for a kind that does not use it.
    fn augment(&self, base: Augment) -> Result<Augment, Box<dyn Error>> {
        let kind = self.augment.as_deref().unwrap_or(base.name());
        let (affine, elastic) = match kind {
            "affine" => (true, false),
            "elastic" => (false, true),
            "both" => (true, true),
            _ => (false, false),
        };
        let refuse = |flag: &str| {
            let message = format!("{flag} needs --augment with that warp, not {kind}");
            crate::usage_error("train", ErrorKind::ArgumentConflict, message)
        };
        let affine_flags = [self.rotate, self.translate, self.scale, self.shear];
        if !affine && affine_flags.iter().any(Option::is_some) {
            return Err(refuse("--rotate, --translate, --scale, --shear"));
        }
        if !elastic && (self.elastic_alpha.is_some() || self.elastic_sigma.is_some()) {
            return Err(refuse("--elastic-alpha, --elastic-sigma"));
        }
        let a = base.affine.unwrap_or(Affine::DEFAULT);
        let e = base.elastic.unwrap_or(Elastic::DEFAULT);
        Ok(Augment {
            affine: affine.then(|| Affine {
                rotate: self.rotate.unwrap_or(a.rotate),
                translate: self.translate.unwrap_or(a.translate),
                scale: self.scale.unwrap_or(a.scale),
                shear: self.shear.unwrap_or(a.shear),
            }),
            elastic: elastic.then(|| Elastic {
                alpha: self.elastic_alpha.unwrap_or(e.alpha),
                sigma: self.elastic_sigma.unwrap_or(e.sigma),
            }),
        })
    }
}

/// `--schedule step`'s defaults: the library's `step`.
fn step_default() -> (u32, f32) {
    ScheduleChoice::ALL
        .into_iter()
        .find_map(|s| match s {
            ScheduleChoice::Step { every, gamma } => Some((every, gamma)),
            _ => None,
        })
        .expect("ScheduleChoice::ALL has a step schedule")
}

impl Recipe {
    /// The training configuration these flags describe; the optimizer's own defaults fill what
    /// they leave out.
    fn config(&self, log_every: u64) -> Result<Config, Box<dyn Error>> {
        let base = self.base.config();
        let mut optimizer = self.optimizer;
        let clip = self.clip_grad_norm.unwrap_or(0.0);
        // Each flag sets the optimizer's field of its name, if it has one.
        let flags = [
            ("--alpha", "alpha", self.alpha.map(Value::from)),
            (
                "--centered",
                "centered",
                self.centered.then_some(Value::from(true)),
            ),
            ("--momentum", "momentum", self.momentum.map(Value::from)),
            (
                "--weight-decay",
                "weight_decay",
                self.weight_decay.map(Value::from),
            ),
            (
                "--clip-grad-norm",
                "clip_grad_norm",
                Some(Value::from(clip)),
            ),
        ];
        for (flag, field, value) in flags {
            let Some(value) = value else { continue };
            optimizer = optimizer.with_field(field, value).ok_or_else(|| {
                let kinds = OptimizerChoice::kinds_with(field);
                let kinds = match kinds.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                    None => "none".to_string(),
                };
                let message = format!(
                    "{flag} applies to --optimizer {kinds} only, not {}",
                    self.optimizer
                );
                crate::usage_error("train", ErrorKind::ArgumentConflict, message)
            })?;
        }
        let init = match (self.init, self.init_std) {
            (Init::Normal { std }, given) => Init::Normal {
                std: given.unwrap_or(std),
            },
            (other, None) => other,
            (other, Some(_)) => {
                let message = format!("--init-std applies to --init normal only, not {other}");
                return Err(crate::usage_error(
                    "train",
                    ErrorKind::ArgumentConflict,
                    message,
                ));
            }
        };
        let schedule = match self.schedule.unwrap_or(base.schedule) {
            ScheduleChoice::Step { .. } => ScheduleChoice::Step {
                every: self.step_every,
                gamma: self.gamma,
            },
            other => other,
        };
        Ok(Config {
            epochs: self.epochs.unwrap_or(base.epochs),
            val: self.val,
            augment: self.augment(base.augment)?,
            lr: self.lr,
            optimizer,
            schedule,
            seed: self.seed,
            dropout: self.dropout,
            init,
            log_every,
            threads: self
                .threads
                .unwrap_or_else(|| args::all_cores().min(self.batch_size)),
            batch: self.batch_size,
        })
    }
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    if args.arch == "reference-bn" {
        if args.recipe.hidden != Arch::Reference {
            return Err("--arch reference-bn is the reference network (--hidden 256,128,64) with batch norms".into());
        }
        return run_as::<MnistMlpBn>(args);
    }
    // A resumed run's network is the checkpoint's.
    let arch = match &args.resume {
        Some(path) => Arch::of_file(path)?,
        None => args.recipe.hidden,
    };
    with_arch!(arch, N => run_as::<N>(args))
}

/// `run` on the network `N`.
fn run_as<N: Network>(args: Args) -> Result<(), Box<dyn Error>> {
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| args.out.with_extension("ckpt"));
    let (mut run, mnist) = start::<N>(&args, &checkpoint)?;
    let output = match (args.quiet, args.json) {
        (true, _) => Output::Quiet,
        (_, true) => Output::Json,
        _ => Output::Text,
    };
    let mut console = Console::new(output);
    let log_path = record::log_path(&args.out);
    console.log = Some(MetricsLog::open(
        &log_path,
        &run.config,
        args.resume.is_some(),
    )?);
    announce(&console, &run, &mnist, args.resume.as_deref());
    let start = Instant::now();
    signals::graceful();
    let evaluation = fit(&mut run, &mnist, &mut console, &args, &checkpoint)?;
    if args.keep == "last" {
        save(&run, &args.out, Some(evaluation.accuracy()))?;
    }
    if let Some(signal) = signals::requested() {
        let message = format!(
            "after the last step; the model was saved to {}",
            args.out.display()
        );
        return Err(Interrupted { signal, message }.into());
    }
    let seconds = start.elapsed().as_secs_f64();
    finish(
        &mut console,
        &args,
        run.epoch,
        evaluation.accuracy(),
        seconds,
    )
}

/// The run the flags ask for (new, or resumed from its checkpoint) and the data, once the
/// outputs are known to be writable and none of them is a data file.
fn start<N: Network>(args: &Args, checkpoint: &Path) -> Result<(Run<N>, Mnist), Box<dyn Error>> {
    let mut config = args.recipe.config(args.log_every)?;
    // Batch statistics are taken over the whole batch: one thread unless asked otherwise
    // (which the run then refuses, saying why).
    if N::BATCH_NORMS > 0 && args.recipe.threads.is_none() {
        config.threads = 1;
    }
    let keep_best_without_val = |val: usize| {
        if args.keep == "best" && val == 0 {
            let message = "--keep best needs a validation split (--val N)";
            return Err(crate::usage_error(
                "train",
                ErrorKind::MissingRequiredArgument,
                message,
            ));
        }
        Ok(())
    };
    if args.resume.is_none() {
        keep_best_without_val(config.val)?;
    }
    let outputs = check_outputs(args, checkpoint)?;
    let mnist = open_data(args)?;
    refuse_data_files(&outputs, &mnist)?;
    let run = match &args.resume {
        Some(path) => {
            let mut run = Run::<N>::resume(path, mnist.train.count)?;
            run.config.log_every = args.log_every;
            run
        }
        None => Run::<N>::new(config, mnist.train.count)?,
    };
    keep_best_without_val(run.config.val)?;
    Ok((run, mnist))
}

/// The last line: where the model, the metrics log and the plot are (the plot drawn now).
fn finish(
    console: &mut Console,
    args: &Args,
    epochs: u32,
    accuracy: f64,
    seconds: f64,
) -> Result<(), Box<dyn Error>> {
    let log_path = record::log_path(&args.out);
    let log = console.log.take().map(MetricsLog::finish).transpose()?;
    let plot = log.as_deref().map(record::plot_path);
    if let (Some(log), Some(plot)) = (&log, &plot) {
        crate::plot::draw(log, plot)?;
    }
    let text = format!(
        "saved {} (test accuracy {:.2}%, {epochs} epochs in {seconds:.1} s), metrics {}, plot {}",
        args.out.display(),
        100.0 * accuracy,
        log_path.display(),
        plot.as_deref().unwrap_or(&log_path).display(),
    );
    let json = json!({
        "event": "saved",
        "metrics": log.as_ref().map(|p| p.display().to_string()),
        "plot": plot.as_ref().map(|p| p.display().to_string()),
        "path": args.out.display().to_string(),
        "test_accuracy": accuracy,
        "epochs": epochs,
        "seconds": seconds,
    });
    console.result(text, json);
    Ok(())
}

/// The dataset; downloaded first (with a line saying so) when the directory has none of its
/// files. A partial set stays an error: it is something to look at, not to overwrite.
fn open_data(args: &Args) -> Result<Mnist, Box<dyn Error>> {
    match args.data.open(!args.no_mmap) {
        #[cfg(feature = "download")]
        Err(e) if e.all_missing() && !args.no_download => {
            let dir = &args.data.dir;
            eprintln!(
                "MNIST is not in {} ({}): downloading it (--no-download refuses)",
                dir.display(),
                args.data.chosen_by()
            );
            crate::download::fetch(crate::download::Dataset::Mnist, dir)?;
            Ok(args.data.open(!args.no_mmap)?)
        }
        result => Ok(result?),
    }
}

/// The run's remaining epochs, with checkpoints and per-epoch saves as asked.
fn fit<N: Network>(
    run: &mut Run<N>,
    mnist: &Mnist,
    console: &mut Console,
    args: &Args,
    checkpoint: &Path,
) -> Result<Evaluation, Box<dyn Error>> {
    // A resumed run starts its best afresh: the checkpoint does not record it.
    let mut best_val = f64::NEG_INFINITY;
    train::fit(
        run,
        &mnist.train,
        &mnist.test,
        console,
        |run| {
            if args.checkpoint_every.is_some_and(|n| run.steps % n == 0) {
                run.save_checkpoint(checkpoint)?;
            }
            stop_if_signalled(run, args)
        },
        |run, report| {
            let best = report.val_accuracy.is_some_and(|v| v > best_val);
            if best {
                best_val = report.val_accuracy.unwrap_or(best_val);
            }
            // With --keep best, --out is written (atomically) each time validation improves.
            if args.save_every_epoch || (args.keep == "best" && best) {
                save(run, &args.out, Some(report.test_accuracy))?;
            }
            stop_if_signalled(run, args)
        },
    )
}

/// After a step or an epoch: a SIGINT or SIGTERM stops the run here, saying what was kept.
fn stop_if_signalled<N: Network>(run: &Run<N>, args: &Args) -> Result<(), Box<dyn Error>> {
    let Some(signal) = signals::requested() else {
        return Ok(());
    };
    let checkpoint = match run.last_checkpoint() {
        Some((path, step)) => format!(
            "kept the last checkpoint {} (step {step}); continue with --resume {}",
            path.display(),
            path.display()
        ),
        None => "no checkpoint was written (--checkpoint-every N writes them)".into(),
    };
    let out = args.out.display();
    let model = if args.save_every_epoch && run.epoch > 0 {
        format!("{out} holds the model saved after epoch {}", run.epoch)
    } else {
        format!("{out} was not written")
    };
    let message = format!(
        "stopped at epoch {}, step {}; {checkpoint}; {model}",
        run.epoch + 1,
        run.steps
    );
    Err(Interrupted { signal, message }.into())
}

/// What is about to run: build, data and recipe (and where a resumed run resumes).
fn announce<N: Network>(console: &Console, run: &Run<N>, mnist: &Mnist, resume: Option<&Path>) {
    let version = env!("CARGO_PKG_VERSION");
    let kernels = constnet::kernels::selected().name();
    let arch = Arch::of::<N>();
    let norms = if N::BATCH_NORMS > 0 {
        " with batch norms"
    } else {
        ""
    };
    console.line(format_args!(
        "constnet {version}: kernels {kernels}, network {}{norms} ({} parameters)",
        arch.layers(),
        N::PARAMS
    ));
    let (dir, train_len, test_len) = (mnist.dir.display(), mnist.train.count, mnist.test.count);
    console.line(format_args!(
        "data: {dir} ({train_len} train, {test_len} test)"
    ));
    console.line(format_args!("recipe: {}", run.config));
    if let Some(path) = resume {
        console.line(format_args!(
            "resumed from {} at epoch {}, step {}",
            path.display(),
            run.epoch + 1,
            run.steps
        ));
    }
    console.event(json!({
        "event": "start",
        "version": version,
        "kernels": kernels,
        "network": arch.layers(),
        "parameters": N::PARAMS,
        "data": dir.to_string(),
        "train": train_len,
        "test": test_len,
        "recipe": run.config.to_string(),
        "resumed_from": resume.map(|p| p.display().to_string()),
        "epoch": run.epoch,
        "step": run.steps,
    }));
}

/// Saves the run's model with its training record, unless its parameters are not finite: a
/// diverged run must not replace a good model.
fn save<N: Network>(run: &Run<N>, out: &Path, accuracy: Option<f64>) -> Result<(), Box<dyn Error>> {
    if !run.is_finite() {
        return Err(format!(
            "{}: not saved: the parameters are no longer finite after step {} (training diverged)",
            out.display(),
            run.steps
        )
        .into());
    }
    let mut metadata = record::metadata(&run.config, run.epoch, accuracy);
    metadata.insert(arch::HIDDEN_KEY.into(), Arch::of::<N>().name());
    format::save_with_metadata(out, run.net(), metadata)?;
    Ok(())
}

/// Fails early, before hours of training, if an output cannot be written: `--out` (and the
/// checkpoint, if checkpoints are on) must be a file name in an existing, writable directory,
/// not a directory, FIFO or device, with a temporary name that fits, and the two must differ
/// (and differ from the checkpoint being resumed). Returns the outputs, by flag.
fn check_outputs<'a>(
    args: &'a Args,
    checkpoint: &'a Path,
) -> Result<Vec<(&'static str, &'a Path)>, Box<dyn Error>> {
    let check = |flag: &str, path: &Path| {
        atomic_file::check_target(path)
            .map(|t| identity(&t.path))
            .map_err(|e| format!("{flag} {:?}: {e}", path.display().to_string()))
    };
    let out = check("--out", &args.out)?;
    // The metrics log and its plot are named after --out.
    let log = record::log_path(&args.out);
    check("the metrics log", &log)?;
    check("the metrics plot", &record::plot_path(&log))?;
    let mut outputs = vec![("--out", args.out.as_path())];
    if args.checkpoint_every.is_some() {
        if check("--checkpoint", checkpoint)? == out {
            let message = format!(
                "--out and the checkpoint name the same file, {}: give --checkpoint another path",
                args.out.display()
            );
            return Err(crate::usage_error(
                "train",
                ErrorKind::ArgumentConflict,
                message,
            ));
        }
        outputs.push(("--checkpoint", checkpoint));
    }
    if let Some(resume) = &args.resume
        && identity(resume) == out
    {
        let message = format!(
            "--out {} is the checkpoint being resumed: give --out another path",
            args.out.display()
        );
        return Err(crate::usage_error(
            "train",
            ErrorKind::ArgumentConflict,
            message,
        ));
    }
    Ok(outputs)
}

/// A file's path with its directory made canonical (through links): two paths to one file
/// have one identity, whether or not the file exists yet.
fn identity(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let target = std::fs::canonicalize(path).ok();
    target.unwrap_or_else(|| dir.join(path.file_name().unwrap_or_default()))
}

/// Refuses outputs that are one of the data files (or their `.gz` caches), by path or by
/// inode (a hard link).
fn refuse_data_files(outputs: &[(&str, &Path)], mnist: &Mnist) -> Result<(), Box<dyn Error>> {
    for (flag, path) in outputs {
        if let Some(data) = mnist.files.iter().find(|d| same_file(path, d)) {
            return Err(format!(
                "{flag} {}: is the data file {}: refusing to overwrite training data",
                path.display(),
                data.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            (x.dev(), x.ino()) == (y.dev(), y.ino())
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => identity(a) == identity(b),
        _ => false,
    }
}
