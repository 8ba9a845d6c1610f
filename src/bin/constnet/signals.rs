//! SIGINT (Ctrl-C) and SIGTERM: stop cleanly, say what was kept, exit 130 or 143.
//!
//! signal-hook delivers the signals to a thread of ours (its handler only writes to a pipe),
//! so the reaction is ordinary code. While training runs it is *graceful*: the first signal is
//! only recorded, the training loop sees it after the step in progress ([`requested`]), stops
//! the threads and reports the last checkpoint; a checkpoint or model being written is
//! finished first, so nothing is half-written. Outside training (reading data, decompressing a
//! `.gz`, evaluating), and on a second signal, the thread itself removes the temporary files
//! being written ([`constnet::atomic_file::remove_temporaries`]), says so and exits at once.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether the main thread stops by itself at the next step.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

/// Starts the thread that receives SIGINT and SIGTERM. Without it (where signal-hook cannot
/// register them) the signals keep their default action.
pub fn install() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let first = SIGNAL
                        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if first && GRACEFUL.load(Ordering::SeqCst) {
                        continue;
                    }
                    exit_now(signal, first);
                }
            });
        drop(spawned);
    }
}

/// Removes the temporaries being written, says so, and exits with the signal's status.
fn exit_now(signal: i32, first: bool) -> ! {
    let removed = constnet::atomic_file::remove_temporaries();
    let again = if first { "" } else { " again" };
    let mut message = format!("constnet: interrupted{again} by {}", name(signal));
    if removed.is_empty() {
        message.push_str(": stopped; no file was being written");
    } else {
        let list: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        message.push_str(&format!(
            ": stopped; removed the unfinished temporary {}; the files it was to replace are unchanged",
            list.join(", ")
        ));
    }
    eprintln!("{message}");
    std::process::exit(128 + signal)
}

/// Leaves the first signal to the main thread from now on (training checks [`requested`]
/// after every step, and once more after saving).
pub fn graceful() {
    GRACEFUL.store(true, Ordering::SeqCst);
}

/// The signal received, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The conventional name of a signal.
pub fn name(signal: i32) -> &'static str {
    match signal {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// Training stopped by a signal; the message says what was kept. The exit status is
/// 128 + the signal.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal.
    pub signal: i32,
    /// What was kept and what was not.
    pub message: String,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted by {}: {}", name(self.signal), self.message)
    }
}

impl std::error::Error for Interrupted {}
