//! What `constnet train` prints: log lines on stdout and, on a terminal, a progress line on
//! stderr under them (cleared before each log line). Piped, only the lines.

use constnet::train::{BatchReport, EpochReport, Report};
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Prints a training run; the run reports to it through [`Report`].
pub struct Console {
    tty: bool,
    last_draw: Instant,
    drawn: bool,
}

impl Console {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
            drawn: false,
        }
    }

    /// A line on stdout, after clearing the progress line.
    pub fn line(&mut self, text: impl Display) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
        say!("{text}");
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
        let (epoch, batch, batches) = (r.epoch, r.batch, r.batches);
        self.line(format_args!(
            "epoch {epoch}  batch {batch}/{batches}  loss {:.4}",
            r.loss
        ));
    }

    fn epoch(&mut self, r: &EpochReport) {
        self.line(format_args!(
            "epoch {}: train loss {:.4}, test accuracy {:.2}%, {:.2} s",
            r.epoch,
            r.train_loss,
            100.0 * r.test_accuracy,
            r.seconds
        ));
    }
}
