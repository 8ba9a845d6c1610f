//! What several commands parse: the MNIST directory (`--data`, `$MNIST_DIR`), numbers checked
//! against their allowed range, and names of the library's enums (their `Display` and
//! `FromStr` are the only table of names).
//!
//! A checker returns the reason a value is refused; clap prints it after the flag and the
//! value ("invalid value '0' for '--epochs <N>': at least 1") and exits with status 2.

use clap::builder::{OsStringValueParser, PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};
use constnet::data::mnist::{self, DirSource, Mnist, OpenOptions};
use constnet::data::{DataError, Split};
use std::fmt::{self, Display};
use std::path::PathBuf;
use std::str::FromStr;

/// One of `all`, by the name its `Display` writes; clap lists the names in help and in errors.
pub fn one_of<T>(all: &[T]) -> impl TypedValueParser<Value = T>
where
    T: Display + FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|v| PossibleValue::new(v.to_string())))
        .try_map(|name| name.parse::<T>())
}

/// A whole number of at least 1 (epochs, steps, batches).
pub fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
    T::Err: Display,
{
    checked(text, |n: &T| *n >= T::from(1), "at least 1")
}

/// A finite number > 0 (learning rate, decay factor, clipping norm).
pub fn positive(text: &str) -> Result<f32, String> {
    checked(
        text,
        |x: &f32| x.is_finite() && *x > 0.0,
        "a finite number > 0",
    )
}

/// A finite number ≥ 0 (weight decay).
pub fn non_negative(text: &str) -> Result<f32, String> {
    checked(
        text,
        |x: &f32| x.is_finite() && *x >= 0.0,
        "a finite number ≥ 0",
    )
}

/// A fraction in [0, 1) (dropout, momentum).
pub fn fraction(text: &str) -> Result<f32, String> {
    checked(text, |x: &f32| (0.0..1.0).contains(x), "in [0, 1)")
}

/// A thread count, 1 to 64.
pub fn threads(text: &str) -> Result<usize, String> {
    checked(text, |n: &usize| (1..=64).contains(n), "in 1..=64")
}

/// A training batch size, 1 to the compiled maximum.
pub fn batch_size(text: &str) -> Result<usize, String> {
    const MAX: usize = constnet::train::MAX_BATCH;
    let why = format!("in 1..={MAX}");
    // Parsed signed, so that a negative size is told the range too.
    let n = checked(text, |n: &i64| (1..=MAX as i64).contains(n), &why)?;
    Ok(n as usize)
}

/// A duration in seconds, in (0, 60].
pub fn seconds(text: &str) -> Result<f64, String> {
    checked(
        text,
        |s: &f64| s.is_finite() && *s > 0.0 && *s <= 60.0,
        "in (0, 60]",
    )
}

fn checked<T: FromStr>(text: &str, ok: impl Fn(&T) -> bool, why: &str) -> Result<T, String>
where
    T::Err: Display,
{
    match text.parse::<T>() {
        Ok(value) if ok(&value) => Ok(value),
        Ok(_) => Err(why.into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The number of cores, capped at the batch size: the default of `--threads`.
pub fn all_cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(constnet::train::BATCH)
}

/// Where the MNIST files are: `--data DIR`, else `$MNIST_DIR`, else `./data/mnist`, and which
/// of the three chose it (error messages say so).
///
/// clap reads `$MNIST_DIR` into `--data` (and shows it in the help); the choice itself is the
/// library's [`mnist::data_dir`], told whether the flag was on the command line. Hand-written
/// `Args` because a derived struct cannot see where a value came from.
#[derive(Clone, Debug)]
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
    /// Which of the three chose it.
    pub source: DirSource,
}

impl DataDir {
    /// Whether the directory was named (by --data or $MNIST_DIR) rather than the default.
    pub fn explicit(&self) -> bool {
        self.source != DirSource::Default
    }

    /// How the directory was chosen, in the words of the command line.
    pub fn chosen_by(&self) -> &'static str {
        match self.source {
            DirSource::Given => "from --data",
            DirSource::Env => "from MNIST_DIR",
            DirSource::Default => "the default; set --data or MNIST_DIR to change it",
        }
    }

    /// Opens and validates the four files, memory-mapped if `map`.
    pub fn open(&self, map: bool) -> Result<Mnist, DataDirError> {
        let options = OpenOptions {
            map,
            ..OpenOptions::default()
        };
        Mnist::open(&self.dir, options).map_err(|error| self.error(error))
    }

    /// Opens and validates only the test set's two files.
    pub fn open_test(&self, map: bool) -> Result<Split, DataDirError> {
        let options = OpenOptions {
            map,
            ..OpenOptions::default()
        };
        Mnist::open_test(&self.dir, options).map_err(|error| self.error(error))
    }

    fn error(&self, error: DataError) -> DataDirError {
        DataDirError {
            error,
            chosen_by: self.chosen_by(),
        }
    }
}

/// The library's [`DataError`] in the command line's words: a missing file's message says how
/// the directory was chosen and which flags choose another.
#[derive(Debug)]
pub struct DataDirError {
    /// The library's error.
    pub error: DataError,
    /// [`DataDir::chosen_by`].
    pub chosen_by: &'static str,
}

impl DataDirError {
    /// Whether the directory holds none of the files looked for.
    pub fn all_missing(&self) -> bool {
        matches!(&self.error, DataError::Missing { wanted, missing, .. } if missing.len() == wanted.len())
    }
}

impl Display for DataDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DataError::Missing { .. } = self.error else {
            return write!(f, "{}", self.error);
        };
        // The library's first line names the directory; how it was chosen goes after it.
        let text = self.error.to_string();
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        write!(
            f,
            "{first} ({})\n{rest}, or point --data / MNIST_DIR at a directory that has them",
            self.chosen_by
        )
    }
}

impl std::error::Error for DataDirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl clap::Args for DataDir {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            Arg::new("data")
                .long("data")
                .value_name("DIR")
                .env("MNIST_DIR")
                .hide_env_values(true)
                // Not PathBuf's parser: it refuses an empty $MNIST_DIR, which means "unset".
                .value_parser(OsStringValueParser::new().map(PathBuf::from))
                .help("Directory of the four MNIST files, raw or .gz [default: ./data/mnist]"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for DataDir {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flag = match matches.value_source("data") {
            Some(ValueSource::CommandLine) => matches.get_one::<PathBuf>("data"),
            // From $MNIST_DIR or absent: the library reads the variable the same way.
            _ => None,
        };
        let (dir, source) = mnist::data_dir(flag.map(PathBuf::as_path));
        Ok(Self { dir, source })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
