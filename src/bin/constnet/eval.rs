//! `constnet eval`: test accuracy, per-class accuracy and the confusion matrix of a model file.

use crate::args::DataDir;
use crate::model_file;
use constnet::train::{self, Evaluation};
use constnet::{MnistMlp, Network, Workspace};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

/// Test accuracy, per-class accuracy and the confusion matrix of a model
#[derive(clap::Args)]
pub struct Args {
    /// The model file (safetensors or a raw blob)
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    #[command(flatten)]
    data: DataDir,
    /// Read the data files instead of memory-mapping them
    #[arg(long)]
    no_mmap: bool,
    /// Print the results as one JSON object, for programs
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let test = args.data.open_test(!args.no_mmap)?;
    let net = model_file::load(&args.model)?;
    let mut ws = <MnistMlp as Network>::Workspace::<{ train::BATCH }>::zeroed_box();
    let start = Instant::now();
    let e = train::evaluate(net.view(), &test, &mut ws);
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let per_class: Vec<f64> = (0..10).map(|c| e.class_accuracy(c)).collect();
        let json = serde_json::json!({
            "model": args.model.display().to_string(),
            "accuracy": e.accuracy(),
            "correct": e.correct,
            "total": e.total,
            "seconds": seconds,
            "per_class": per_class,
            "confusion": e.confusion,
        });
        say!("{json}");
    } else {
        say!("model: {}", args.model.display());
        print_table(&e, seconds);
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
