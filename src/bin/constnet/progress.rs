//! What `constnet train` prints. Text: log lines on stdout, and on a terminal a progress bar
//! on stderr under them (indicatif clears the bar, prints the line, redraws it). `--quiet`:
//! only the result. `--json`: one JSON object per line on stdout instead of each text line.
//!
//! The bar takes two lines so that it fits any width: the bar itself stretches or shrinks
//! (indicatif's `wide_bar`), and the figures below it are cut at the right edge
//! (`wide_msg`). Piped (stderr not a terminal) there is no bar, only the lines.
//!
//! ```text
//! epoch 1 [===============>                  ] 412/938 [3s<4s]
//!   loss 0.2817  lr 1.00e-3  86,231 samples/s
//! ```

use crate::record::MetricsLog;
use constnet::train::{BatchReport, EpochReport, Report};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use serde_json::{Value, json};
use std::fmt::Display;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What `train` prints on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Lines of text (and the bar, on a terminal).
    Text,
    /// The result line only.
    Quiet,
    /// JSON lines.
    Json,
}

/// Prints a training run in the chosen [`Output`]; the run reports to it through [`Report`].
pub struct Console {
    output: Output,
    /// Whether to draw a bar: stderr is a terminal and the output is not quiet.
    draws_bar: bool,
    /// The current epoch's bar, from its first batch to its evaluation.
    bar: Option<ProgressBar>,
    /// When the bar's figures were last updated (at most 20 times a second, as indicatif
    /// draws, so formatting them costs nothing next to a batch).
    updated: Instant,
    /// The metrics log, which gets every logged step and epoch whatever the output.
    pub log: Option<MetricsLog>,
}

impl Console {
    pub fn new(output: Output) -> Self {
        Self {
            output,
            draws_bar: output != Output::Quiet && std::io::stderr().is_terminal(),
            bar: None,
            updated: Instant::now(),
            log: None,
        }
    }

    /// A line of text, printed with [`Output::Text`] only.
    pub fn line(&self, text: impl Display) {
        if self.output == Output::Text {
            self.print(text);
        }
    }

    /// A JSON object, printed with [`Output::Json`] only.
    pub fn event(&self, value: Value) {
        if self.output == Output::Json {
            self.print(value);
        }
    }

    /// The result: the text line, or with `--json` its object.
    pub fn result(&self, text: impl Display, value: Value) {
        match self.output {
            Output::Json => self.print(value),
            Output::Text | Output::Quiet => self.print(text),
        }
    }

    /// Prints a line on stdout, above the bar if there is one.
    fn print(&self, line: impl Display) {
        match &self.bar {
            Some(bar) => bar.suspend(|| say!("{line}")),
            None => say!("{line}"),
        }
    }
}

impl Report for Console {
    fn progress(&mut self, r: &BatchReport) {
        if !self.draws_bar {
            return;
        }
        let bar = self
            .bar
            .get_or_insert_with(|| epoch_bar(r.epoch, r.batches));
        if r.batch < r.batches && self.updated.elapsed() < Duration::from_millis(50) {
            return;
        }
        self.updated = Instant::now();
        bar.set_position(r.batch);
        bar.set_message(format!(
            "loss {:.4}  lr {:.2e}  {} samples/s",
            r.loss,
            r.lr,
            thousands(r.samples_per_sec)
        ));
    }

    fn batch(&mut self, r: &BatchReport) {
        if let Some(log) = &mut self.log {
            log.step(r);
        }
        let (epoch, batch, batches) = (r.epoch, r.batch, r.batches);
        self.line(format_args!(
            "epoch {epoch}  batch {batch}/{batches}  loss {:.4}",
            r.loss
        ));
        self.event(json!({
            "event": "batch",
            "epoch": epoch,
            "batch": batch,
            "batches": batches,
            "loss": shortest(r.loss),
            "lr": shortest(r.lr),
            "samples_per_sec": r.samples_per_sec.round() as u64,
        }));
    }

    fn epoch(&mut self, r: &EpochReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(log) = &mut self.log {
            log.epoch(r);
        }
        let val = match r.val_accuracy {
            Some(v) => format!("validation accuracy {:.2}%, ", 100.0 * v),
            None => String::new(),
        };
        // Steps run on one thread: the other cores were busy (see the library's `parallel`).
        let alone = match r.steps_alone {
            0 => String::new(),
            n => format!(" ({n} steps on one thread: the other cores were busy)"),
        };
        self.line(format_args!(
            "epoch {}: train loss {:.4}, train accuracy {:.2}%, {val}test accuracy {:.2}%, {:.2} s{alone}",
            r.epoch,
            r.train_loss,
            100.0 * r.train_accuracy,
            100.0 * r.test_accuracy,
            r.seconds
        ));
        self.event(json!({
            "event": "epoch",
            "epoch": r.epoch,
            "train_loss": shortest(r.train_loss),
            "train_accuracy": r.train_accuracy,
            "val_accuracy": r.val_accuracy,
            "test_accuracy": r.test_accuracy,
            "seconds": r.seconds,
            "steps_alone": r.steps_alone,
        }));
    }
}

/// A bar for one epoch of `batches` batches, on stderr; dropped (a failed run), it clears
/// itself so that the error is printed on a clean line.
fn epoch_bar(epoch: u32, batches: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {pos}/{len} [{elapsed}<{eta}]\n  {wide_msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(batches), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(format!("epoch {epoch}"))
        .with_finish(ProgressFinish::AndClear)
}

/// A rate with thousands separators: 86,231.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// An f32 as the shortest decimal that reads back as the same f32 (0.9628, not
/// 0.9628000259399414); null if it is not finite.
pub fn shortest(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(86230.7), "86,231");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(shortest(0.9628).to_string(), "0.9628");
        assert_eq!(shortest(1e-3).to_string(), "0.001");
        assert_eq!(shortest(f32::NAN), Value::Null);
    }
}
