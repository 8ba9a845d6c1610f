//! `constnet bench`: this build on this machine, from the FMA peak to a whole epoch.

use crate::args::{self, DataDir};
use constnet::data::DataError;
use std::error::Error;

/// Measure this machine: FMA peak, kernels, a step, an epoch, inference
#[derive(clap::Args)]
#[command(
    after_help = "In one run: the FMA peak of one core, each product of a batch-64 \
                      training step (GFLOP/s and share of the peak), a per-phase breakdown of one \
                      step, the step, a whole epoch (training only, on --threads), inference over \
                      the 10,000 test images, and one-sample inference next to the time to stream \
                      the weights once. On MNIST if found, else on synthetic images of the same \
                      size (only when the default directory has no MNIST: a --data or $MNIST_DIR directory must \
                      hold it, and damaged files are errors). Each figure is a median over about --seconds."
)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Threads for the epoch [default: all cores]
    #[arg(long, value_name = "N", value_parser = args::threads)]
    threads: Option<usize>,
    /// Seconds of measurement per figure
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = args::seconds)]
    seconds: f64,
    /// Print the report as JSON, for programs
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    // Synthetic images stand in only for MNIST absent from the default directory: a directory
    // named by --data or $MNIST_DIR, or files that are there but damaged, are errors.
    let mnist = match args.data.open(true) {
        Err(e) if args.data.explicit() || !matches!(e.error, DataError::Missing { .. }) => {
            return Err(e.into());
        }
        other => other,
    };
    if !args.json {
        match &mnist {
            Ok(m) => say!("data: MNIST from {}", m.dir.display()),
            Err(_) => say!(
                "data: MNIST not found in {} ({}); timing on synthetic images of the same size",
                args.data.dir.display(),
                args.data.chosen_by()
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
    let threads = args.threads.unwrap_or_else(args::all_cores);
    let budget = std::time::Duration::from_secs_f64(args.seconds);
    let report = constnet::bench::run(train, test, real, threads, budget);
    if args.json {
        say!("{}", report.json());
    } else {
        say_part!("{}", report.table());
    }
    Ok(())
}
