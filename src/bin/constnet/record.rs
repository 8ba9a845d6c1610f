//! The training record `train` leaves beside the model: a JSON-lines metrics log
//! (`model.metrics.jsonl`: a `start` line, then a `step` line per logged step and an `epoch`
//! line per epoch), the curves drawn from it (`model.metrics.svg`), and the model file's
//! metadata (recipe, seed, threads, version, accuracy, date).
//!
//! A resumed run appends to the log, so it holds the whole run; a fresh run replaces it.

use crate::progress::shortest;
use constnet::train::{BatchReport, Config, EpochReport};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The metrics log of `model`: the same path with extension `.metrics.jsonl`.
pub fn log_path(model: &Path) -> PathBuf {
    model.with_extension("metrics.jsonl")
}

/// The plot of a metrics log: `x.metrics.jsonl` → `x.metrics.svg`.
pub fn plot_path(log: &Path) -> PathBuf {
    log.with_extension("svg")
}

/// The open metrics log.
pub struct MetricsLog {
    path: PathBuf,
    file: BufWriter<File>,
    start: Instant,
    /// The first write error, reported once at the end instead of stopping training.
    failed: Option<io::Error>,
}

impl MetricsLog {
    /// Opens the log (appending for a resumed run) and writes the `start` line.
    pub fn open(path: &Path, config: &Config, resumed: bool) -> Result<Self, String> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(resumed)
            .truncate(!resumed)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut log = Self {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            start: Instant::now(),
            failed: None,
        };
        log.write(json!({
            "kind": "start",
            "version": env!("CARGO_PKG_VERSION"),
            "date": utc_now(),
            "recipe": config.to_string(),
            "seed": config.seed,
            "threads": config.threads,
            "resumed": resumed,
        }));
        Ok(log)
    }

    /// A logged step.
    pub fn step(&mut self, r: &BatchReport) {
        let step = u64::from(r.epoch - 1) * r.batches + r.batch;
        let time = self.start.elapsed().as_secs_f64();
        self.write(json!({
            "kind": "step",
            "epoch": r.epoch,
            "batch": r.batch,
            "step": step,
            "loss": shortest(r.loss),
            "lr": shortest(r.lr),
            "samples_per_sec": r.samples_per_sec.round(),
            "time": time,
        }));
    }

    /// An epoch's end.
    pub fn epoch(&mut self, r: &EpochReport) {
        let time = self.start.elapsed().as_secs_f64();
        self.write(json!({
            "kind": "epoch",
            "epoch": r.epoch,
            "step": r.steps,
            "train_loss": shortest(r.train_loss),
            "train_accuracy": r.train_accuracy,
            "val_accuracy": r.val_accuracy,
            "test_accuracy": r.test_accuracy,
            "lr": shortest(r.lr),
            "seconds": r.seconds,
            "steps_alone": r.steps_alone,
            "samples_per_sec": (r.samples as f64 / r.seconds.max(1e-9)).round(),
            "time": time,
        }));
    }

    /// Flushes the log; the path written, or the first error.
    pub fn finish(mut self) -> Result<PathBuf, String> {
        let flushed = self.file.flush();
        match self.failed.take().map_or(flushed, Err) {
            Ok(()) => Ok(self.path),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    /// One line, flushed so that the log is readable while training runs.
    fn write(&mut self, value: Value) {
        if self.failed.is_none()
            && let Err(e) = writeln!(self.file, "{value}").and_then(|()| self.file.flush())
        {
            self.failed = Some(e);
        }
    }
}

/// The model file's training record, under `constnet.*` keys of its `__metadata__`.
pub fn metadata(
    config: &Config,
    epochs: u32,
    test_accuracy: Option<f64>,
) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut put = |k: &str, v: String| m.insert(format!("constnet.{k}"), v);
    put("version", env!("CARGO_PKG_VERSION").into());
    put("date", utc_now());
    put("recipe", config.to_string());
    put("seed", config.seed.to_string());
    put("threads", config.threads.to_string());
    put("batch", config.batch.to_string());
    put("epochs", epochs.to_string());
    if let Some(a) = test_accuracy {
        put("test_accuracy", format!("{a:.4}"));
    }
    m
}

/// Now, in UTC, as ISO 8601 (`2026-12-07T06:15:00Z`); `$SOURCE_DATE_EPOCH` (the
/// reproducible-builds convention) replaces "now", so that the same run can write the same
/// bytes.
pub fn utc_now() -> String {
    let fixed = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let secs = fixed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    iso8601(secs)
}

/// Seconds since 1970 as an ISO 8601 UTC time: the civil-from-days algorithm of Howard
/// Hinnant's `chrono`-compatible date paper, which needs no calendar tables.
fn iso8601(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(iso8601(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn paths() {
        let log = log_path(Path::new("out/model.safetensors"));
        assert_eq!(log, Path::new("out/model.metrics.jsonl"));
        assert_eq!(plot_path(&log), Path::new("out/model.metrics.svg"));
    }
}
