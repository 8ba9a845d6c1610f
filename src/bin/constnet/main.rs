//! The `constnet` command: train, evaluate, predict, inspect and export the reference MNIST
//! network, and measure this machine. Argument parsing and printing only; the work is in the
//! library.
//!
//! One module per command, each holding its `clap::Args` struct beside the `run` that uses it
//! (the layout of cargo's `src/bin/cargo/commands/`); `args` has what several commands parse,
//! `progress` the training output. This file holds the command list and the exit codes: 0
//! success (and `--help`, `--version`), 1 a runtime failure (a bad file, missing data, training
//! diverged), 2 a usage error (unknown flag, bad value), reported by clap with the command's
//! usage, 130 and 143 when stopped by SIGINT and SIGTERM (see `signals`).
#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout (`constnet eval | head`) instead of panicking: the
/// command carries on (a training run still saves its model).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same care.
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod arch;
mod args;
mod bench;
#[cfg(feature = "download")]
mod download;
mod eval;
mod export;
mod info;
mod model_file;
mod plot;
mod predict;
mod progress;
mod quantize;
mod record;
mod signals;
mod train;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};
use constnet::data::DataError;
use std::error::Error;
use std::process::ExitCode;

/// Train and run a 784→256→128→64→10 MLP on MNIST with SIMD kernels.
#[derive(Parser)]
#[command(name = "constnet", version, args_override_self = true)]
#[command(
    after_help = "Data: --data DIR, else $MNIST_DIR, else ./data/mnist (the four IDX files, raw \
                  or .gz).\nRun 'constnet help <COMMAND>' for a command's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    // Boxed: the recipe flags make it several times larger than the other commands.
    Train(Box<train::Args>),
    Eval(eval::Args),
    Predict(predict::Args),
    Info(info::Args),
    Export(export::Args),
    Quantize(quantize::Args),
    Bench(bench::Args),
    Plot(plot::Args),
    #[cfg(feature = "download")]
    Download(download::Args),
}

fn main() -> ExitCode {
    // Before anything else: a binary built with target-cpu flags for AVX2/AVX-512 must not
    // reach a vector instruction on a CPU without them.
    let missing = constnet::cpu::missing_features();
    if !missing.is_empty() {
        eprintln!(
            "constnet: this binary was compiled for CPU features this processor lacks: {}.\n\
             Rebuild it without RUSTFLAGS (cargo build --release): the kernels choose the best\n\
             instructions of the CPU at run time.",
            missing.join(", ")
        );
        return ExitCode::from(1);
    }
    // A forced kernel path must exist and run here: a usage error, before any work.
    if let Err(e) = constnet::kernels::from_env() {
        eprintln!("constnet: CONSTNET_SIMD: {e}");
        return ExitCode::from(2);
    }
    signals::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit_for_usage(&suggest_command_flag(e)),
    };
    let result = match cli.command {
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Quantize(args)) => quantize::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Plot(args)) => plot::run(args),
        #[cfg(feature = "download")]
        Some(Command::Download(args)) => download::run(args),
        None => Cli::command().print_help().map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => exit_for_usage(&usage),
            Err(e) if e.is::<signals::Interrupted>() => {
                eprintln!("constnet: {e}");
                let signal = e
                    .downcast_ref::<signals::Interrupted>()
                    .map_or(2, |i| i.signal);
                ExitCode::from(u8::try_from(128 + signal).unwrap_or(130))
            }
            Err(e) => {
                eprintln!("constnet: error: {e}");
                if let Some(hint) = hint(&*e) {
                    eprintln!("  {hint}");
                }
                ExitCode::from(1)
            }
        },
    }
}

/// What to do about a library error, in the command line's words (the library's messages name
/// no flags or commands).
fn hint(e: &(dyn Error + 'static)) -> Option<String> {
    use constnet::format::{ModelFileError, Problem};
    let missing = |e: &args::DataDirError| matches!(e.error, DataError::Missing { .. });
    if cfg!(feature = "download") && e.downcast_ref().is_some_and(missing) {
        return Some("or run 'constnet download --dir DIR' (MNIST or Fashion-MNIST)".into());
    }
    if e.is::<constnet::train::TrainError>() {
        return Some(
            "lower --lr or use --clip-grad-norm; --checkpoint-every N writes checkpoints to resume from"
                .into(),
        );
    }
    match e.downcast_ref::<ModelFileError>() {
        Some(ModelFileError {
            path,
            problem: Problem::IsCheckpoint,
        }) => Some(format!(
            "continue its run with 'constnet train --resume {}'",
            path.display()
        )),
        _ => None,
    }
}

/// Prints what clap reports, help and version on stdout (exit 0) or a usage error on stderr,
/// prefixed like every constnet message, with the command's usage (exit 2).
fn exit_for_usage(e: &clap::Error) -> ExitCode {
    if e.use_stderr() {
        eprint!("constnet: ");
    }
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// clap suggests a command's flag for a misspelt one only when the command is named
/// (`constnet train --epohcs 3`). Given without a command (`constnet --epohcs 3`), the flag is
/// offered to each command the same way, and those that know it or a similar one are named.
fn suggest_command_flag(mut e: clap::Error) -> clap::Error {
    let unsuggested = e.kind() == ErrorKind::UnknownArgument
        && e.get(ContextKind::SuggestedArg).is_none()
        && e.get(ContextKind::Suggested).is_none();
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let flag = arg.split('=').next().unwrap_or(arg).to_string();
    if !unsuggested || !flag.starts_with("--") {
        return e;
    }
    let cli = Cli::command();
    let valid = cli.get_styles().get_valid();
    let tips: Vec<StyledStr> = cli
        .get_subcommands()
        .filter_map(|command| {
            let name = command.get_name();
            let known = command
                .get_arguments()
                .any(|a| a.get_long() == Some(&flag[2..]));
            let similar = match Cli::try_parse_from(["constnet", name, &flag]) {
                Err(e) => e.get(ContextKind::SuggestedArg).cloned(),
                Ok(_) => None,
            };
            let flag = match (known, similar) {
                (true, _) => flag.clone(),
                (false, Some(ContextValue::String(similar))) => similar,
                _ => return None,
            };
            Some(format!("'{valid}constnet {name} {flag}{valid:#}' exists").into())
        })
        .collect();
    if !tips.is_empty() {
        e.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    }
    e
}

/// A usage error found after parsing (a combination of values clap cannot check), reported
/// as clap reports its own: with `command`'s usage line, exit status 2.
fn usage_error(command: &str, kind: ErrorKind, message: impl std::fmt::Display) -> Box<dyn Error> {
    let mut cli = Cli::command();
    cli.build();
    let command = cli
        .find_subcommand_mut(command)
        .expect("usage_error names a constnet command");
    Box::new(command.error(kind, message))
}
