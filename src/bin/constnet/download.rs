//! `constnet download`: fetches MNIST or Fashion-MNIST, and what `train` calls when its data
//! directory is empty.
//!
//! For each of the four `.gz` files: the mirrors in order until one gives the file whose
//! SHA-256 is the published one. Bytes go to `.NAME.part` in the target directory; a cut
//! transfer resumes from there with an HTTP `Range` request (on the same mirror, then on the
//! next); a finished file is hashed, fsynced and renamed into place, so `NAME` is only ever the
//! complete, verified file. A file already there is kept if its digest is right.
//!
//! `$CONSTNET_MIRROR` (base URLs separated by spaces) replaces the built-in mirrors, and
//! `$CONSTNET_MIRROR_SHA256SUMS` (a `sha256sum`-format file) the built-in digests: for a local
//! mirror of other data, and for the tests, which serve files on 127.0.0.1.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A dataset's files and where they are published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// Handwritten digits (LeCun, Cortes, Burges)
    Mnist,
    /// Zalando's clothing images, in MNIST's format and sizes
    FashionMnist,
}

impl Dataset {
    /// The name users know it by.
    pub fn title(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    /// The public mirrors, most reliable first.
    fn mirrors(self) -> &'static [&'static str] {
        match self {
            Dataset::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            Dataset::FashionMnist => &[
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            ],
        }
    }

    /// The four files and their published SHA-256 digests (the same that torchvision's and
    /// TensorFlow Datasets' loaders check).
    fn files(self) -> [(&'static str, &'static str); 4] {
        match self {
            Dataset::Mnist => [
                (
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ],
            Dataset::FashionMnist => [
                (
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ],
        }
    }
}

/// The largest file accepted (Fashion-MNIST's largest is 26 MB): a wrong or hostile server
/// cannot fill the disk.
const MAX_BYTES: u64 = 64 << 20;

/// Attempts per mirror, each resuming where the last was cut, while each makes progress.
const ATTEMPTS: usize = 3;

/// Download MNIST or Fashion-MNIST, checking every file's published SHA-256
#[derive(clap::Args)]
#[command(
    after_help = "Mirrors are tried in order; a cut transfer resumes (HTTP Range). Files \
                  already present with the right digest are kept.\n$CONSTNET_MIRROR (base \
                  URLs, space-separated) replaces the mirrors, $CONSTNET_MIRROR_SHA256SUMS (a \
                  sha256sum file) their digests."
)]
pub struct Args {
    /// The dataset
    #[arg(value_enum, default_value_t = Dataset::Mnist)]
    dataset: Dataset,
    /// Where to put the files [default: mnist: $MNIST_DIR, else ./data/mnist;
    /// fashion-mnist: ./data/fashion-mnist]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let dir = args.dir.unwrap_or_else(|| match args.dataset {
        Dataset::Mnist => constnet::data::mnist::data_dir(None).0,
        Dataset::FashionMnist => PathBuf::from("data/fashion-mnist"),
    });
    fetch(args.dataset, &dir)?;
    say!("{} is in {}", args.dataset.title(), dir.display());
    Ok(())
}

/// Makes sure `dir` holds the dataset's four verified `.gz` files (or their raw forms).
pub fn fetch(dataset: Dataset, dir: &Path) -> Result<(), Box<dyn Error>> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create it: {e}", dir.display()))?;
    let (mirrors, digests) = sources(dataset)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("constnet/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    for (name, published) in dataset.files() {
        let digest = digests
            .iter()
            .find(|(n, _)| n == name)
            .map_or(published, |(_, d)| d.as_str());
        let target = dir.join(name);
        if present_raw(dir, name) {
            continue;
        }
        if target.is_file() {
            if sha256_file(&target)? == digest {
                continue;
            }
            note(format_args!(
                "{}: SHA-256 is not the published one; downloading it again",
                target.display()
            ));
        }
        fetch_file(&agent, &mirrors, name, digest, &target)?;
    }
    Ok(())
}

/// (file name, SHA-256 in hex) pairs.
type Digests = Vec<(String, String)>;

/// The mirrors and digests in force: the built-in ones or those of the environment.
fn sources(dataset: Dataset) -> Result<(Vec<String>, Digests), Box<dyn Error>> {
    let mirrors = match std::env::var("CONSTNET_MIRROR") {
        Ok(list) if !list.trim().is_empty() => {
            list.split_whitespace().map(str::to_string).collect()
        }
        _ => dataset.mirrors().iter().map(|m| m.to_string()).collect(),
    };
    let digests = match std::env::var_os("CONSTNET_MIRROR_SHA256SUMS") {
        Some(path) if !path.is_empty() => read_sums(Path::new(&path))?,
        _ => Vec::new(),
    };
    Ok((mirrors, digests))
}

/// A `sha256sum` file: `<64 hex digits>  <name>` per line.
fn read_sums(path: &Path) -> Result<Digests, Box<dyn Error>> {
    let text = fs::read_to_string(path)
        .map_err(|e| format!("{} (CONSTNET_MIRROR_SHA256SUMS): {e}", path.display()))?;
    let mut sums = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(d), Some(n)) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                sums.push((
                    n.trim_start_matches('*').to_string(),
                    d.to_ascii_lowercase(),
                ));
            }
            _ => {
                let at = i + 1;
                return Err(format!(
                    "{}: line {at}: expected '<sha256>  <file name>'",
                    path.display()
                )
                .into());
            }
        }
    }
    Ok(sums)
}

/// Whether the uncompressed file is already there, under either spelling (as the reader
/// accepts it).
fn present_raw(dir: &Path, gz_name: &str) -> bool {
    let raw = gz_name.trim_end_matches(".gz");
    let dotted = raw.replacen("-idx", ".idx", 1);
    dir.join(raw).is_file() || dir.join(&dotted).is_file() || dir.join(dotted + ".gz").is_file()
}

/// Fetches one file from the first mirror that gives the right bytes.
fn fetch_file(
    agent: &ureq::Agent,
    mirrors: &[String],
    name: &str,
    digest: &str,
    target: &Path,
) -> Result<(), Box<dyn Error>> {
    let part = target.with_file_name(format!(".{name}.part"));
    let mut failures = Vec::new();
    for mirror in mirrors {
        let url = format!("{}/{name}", mirror.trim_end_matches('/'));
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let before = fs::metadata(&part).map_or(0, |m| m.len());
            match transfer(agent, &url, &part, before) {
                Ok(()) => break Ok(()),
                Err(Failure::Cut(e)) if attempt < ATTEMPTS => {
                    let now = fs::metadata(&part).map_or(0, |m| m.len());
                    note(format_args!("{url}: {e}; resuming at byte {now}"));
                    if now <= before {
                        break Err(e);
                    }
                }
                Err(Failure::Cut(e) | Failure::Fatal(e)) => break Err(e),
            }
        };
        let outcome = outcome.and_then(|()| {
            let found = sha256_file(&part)?;
            if found == digest {
                Ok(())
            } else {
                let _ = fs::remove_file(&part);
                Err(format!("SHA-256 mismatch: got {found}, published {digest}").into())
            }
        });
        match outcome {
            Ok(()) => {
                install(&part, target)?;
                note(format_args!("{name}: SHA-256 verified"));
                return Ok(());
            }
            Err(e) => {
                note(format_args!("{url}: {e}"));
                failures.push(format!("  {url}: {e}"));
            }
        }
    }
    let partial = if part.exists() {
        format!(
            "\n  the partial download {} resumes on the next run",
            part.display()
        )
    } else {
        String::new()
    };
    Err(format!(
        "{}: could not download it from any mirror:\n{}{partial}",
        target.display(),
        failures.join("\n")
    )
    .into())
}

/// Why a transfer stopped: cut (worth resuming) or failed for good on this mirror.
enum Failure {
    Cut(Box<dyn Error>),
    Fatal(Box<dyn Error>),
}

/// One GET of `url` into `part`, from byte `offset` (a Range request when it is not 0).
fn transfer(agent: &ureq::Agent, url: &str, part: &Path, offset: u64) -> Result<(), Failure> {
    let fatal = |e: String| Failure::Fatal(e.into());
    let mut request = agent.get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let mut response = match request.call() {
        Ok(r) => r,
        // The part is already complete (or longer than the file): start over.
        Err(ureq::Error::StatusCode(416)) => {
            let _ = fs::remove_file(part);
            return Err(Failure::Cut("the server refused the resume range".into()));
        }
        Err(ureq::Error::StatusCode(code)) => return Err(fatal(format!("HTTP status {code}"))),
        Err(e) => return Err(Failure::Cut(e.into())),
    };
    let resumed = offset > 0 && response.status().as_u16() == 206;
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let start = if resumed { offset } else { 0 };
    let total = length.map(|l| l + start);
    if total.is_some_and(|t| t > MAX_BYTES) {
        return Err(fatal(format!("the file is larger than {MAX_BYTES} bytes")));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!resumed)
        .open(part)
        .map_err(|e| fatal(format!("{}: {e}", part.display())))?;
    file.seek(io::SeekFrom::Start(start))
        .map_err(|e| fatal(format!("{}: {e}", part.display())))?;
    let bar = bar(url, total, start);
    let mut reader = response.body_mut().as_reader();
    let copied = copy(&mut reader, &mut file, &bar, start);
    bar.finish_and_clear();
    match copied {
        Ok(n) if total.is_none_or(|t| t == n) => file
            .sync_all()
            .map_err(|e| fatal(format!("{}: {e}", part.display()))),
        Ok(n) => Err(Failure::Cut(
            format!("the transfer stopped after {n} bytes").into(),
        )),
        Err(CopyError::Read(e)) => Err(Failure::Cut(format!("the transfer was cut: {e}").into())),
        Err(CopyError::Write(e)) => Err(fatal(format!("{}: {e}", part.display()))),
        Err(CopyError::TooLarge) => {
            let _ = fs::remove_file(part);
            Err(fatal(format!("the file is larger than {MAX_BYTES} bytes")))
        }
    }
}

/// What stopped a copy.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
    TooLarge,
}

/// Copies the body to the part file; returns the part's length.
fn copy(
    reader: &mut impl Read,
    file: &mut File,
    bar: &ProgressBar,
    start: u64,
) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 1 << 16];
    let mut done = start;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // What did arrive is kept for the resume.
                let _ = file.flush();
                return Err(CopyError::Read(e));
            }
        };
        done += n as u64;
        if done > MAX_BYTES {
            return Err(CopyError::TooLarge);
        }
        file.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        bar.set_position(done);
    }
}

/// Renames the verified part into place and makes the rename durable.
fn install(part: &Path, target: &Path) -> Result<(), Box<dyn Error>> {
    fs::rename(part, target).map_err(|e| format!("{}: {e}", target.display()))?;
    if let Some(dir) = target.parent().and_then(|d| File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
fn sha256_file(path: &Path) -> Result<String, Box<dyn Error>> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A byte bar on stderr when it is a terminal, else a line saying what is fetched.
fn bar(url: &str, total: Option<u64>, start: u64) -> ProgressBar {
    note(format_args!("downloading {url}"));
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "  [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}<{eta}]",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(style);
    bar.set_position(start);
    bar
}

/// A line on stderr, where it does not mix with `--json` output on stdout.
fn note(line: impl std::fmt::Display) {
    eprintln!("{line}");
}
