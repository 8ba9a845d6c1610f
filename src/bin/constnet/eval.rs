//! `constnet eval`: test accuracy, per-class accuracy and the confusion matrix of a model file.

use crate::args::DataDir;
use crate::model_file::{self, Model, with_net};
use constnet::data::mnist::Split;
use constnet::kernels::int8::Int8Path;
use constnet::train::{self, Evaluation};
use constnet::{Network, Workspace};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

/// Test accuracy, per-class accuracy and the confusion matrix of a model
#[derive(clap::Args)]
#[command(
    after_help = "Give --model twice (e.g. a f32 model and its int8 quantization) to print                   the accuracies side by side, each with its difference from the first."
)]
pub struct Args {
    /// The model file: f32 or int8 (from `constnet quantize`), safetensors or a raw blob;
    /// repeat it to compare models
    #[arg(long, value_name = "PATH", required = true, action = clap::ArgAction::Append)]
    model: Vec<PathBuf>,
    #[command(flatten)]
    data: DataDir,
    /// Read the data files instead of memory-mapping them
    #[arg(long)]
    no_mmap: bool,
    /// Print the results as JSON (one object per model, one per line), for programs
    #[arg(long)]
    json: bool,
}

/// A f32 network's evaluation on `test`.
fn evaluate<N: Network>(net: &N, test: &Split) -> Evaluation {
    let mut ws = N::Workspace::<{ train::BATCH }>::zeroed_box();
    train::evaluate(net.view(), test, &mut ws)
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let test = args.data.open_test(!args.no_mmap)?;
    let models = args
        .model
        .iter()
        .map(|path| model_file::load_any(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut first = None;
    for (path, model) in args.model.iter().zip(&models) {
        let start = Instant::now();
        let e = match model {
            Model::F32(net) => with_net!(net, n => evaluate(&**n, &test)),
            Model::Int8(q) => train::evaluate_int8(&q.view(), Int8Path::selected(), &test),
        };
        let seconds = start.elapsed().as_secs_f64();
        if args.json {
            let per_class: Vec<f64> = (0..10).map(|c| e.class_accuracy(c)).collect();
            let json = serde_json::json!({
                "model": path.display().to_string(),
                "kind": model.kind(),
                "accuracy": e.accuracy(),
                "correct": e.correct,
                "total": e.total,
                "seconds": seconds,
                "per_class": per_class,
                "confusion": e.confusion,
            });
            say!("{json}");
        } else if models.len() == 1 {
            say!("model: {} ({})", path.display(), model.kind());
            print_table(&e, seconds);
        } else {
            let accuracy = 100.0 * e.accuracy();
            let versus = match first {
                None => String::new(),
                Some(a) => format!("  ({:+.2} points)", accuracy - a),
            };
            say!(
                "{:<4} {:>6.2}% ({}/{}) in {:>6.1} ms{versus}  {}",
                model.kind(),
                accuracy,
                e.correct,
                e.total,
                1e3 * seconds,
                path.display()
            );
            first.get_or_insert(accuracy);
        }
    }
    Ok(())
}

fn print_table(e: &Evaluation, seconds: f64) {
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
}
