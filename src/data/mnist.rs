//! The MNIST dataset on disk: four IDX files in one directory, raw or gzip-compressed.
//!
//! Where: a directory the caller names, else `$MNIST_DIR`, else `./data/mnist` ([`data_dir`]). Each file is
//! looked for under both common spellings (`train-images-idx3-ubyte` and
//! `train-images.idx3-ubyte`), raw first, then `.gz`. A `.gz` file is decompressed once into a
//! cache (`.constnet-cache/` beside it, or the user's cache directory when the data directory is
//! read-only), written atomically and re-validated, then memory-mapped like a raw file: never
//! decompressed per run. Every file is validated before use; every error names the file; an
//! empty split (no images) is refused.
//!
//! The cache is fresh by content, not by date: beside each cached file `NAME` a record
//! `NAME.source` holds the length and CRC-32 of the `.gz` it came from and of the cached bytes.
//! The cache is used only if the `.gz` now has that length and CRC (a `.gz` replaced by
//! another with an older date, by `cp -p`, `tar` or `rsync -t`, is decompressed again) and the
//! cache itself still has its recorded length and CRC (a cache rewritten in place is replaced).
//! Checking costs one CRC pass over each file per run (a few milliseconds for MNIST).
#![forbid(unsafe_code)]

use super::dataset::{Dataset, Rows, SharedData};
use super::idx::{self, IdxError, Images};
use super::mmap::Bytes;
use crate::atomic_file::write_atomic;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::prelude::rust_2024::*;
use std::sync::Arc;

/// The four files, by their canonical (hyphenated) names.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Where the files come from, for the error that says how to get them.
pub const SOURCE_HINT: &str = "download them (the .gz files are fine) from a mirror of Yann LeCun's MNIST page, \
e.g. https://ossci-datasets.s3.amazonaws.com/mnist/, into that directory";

/// Why the dataset could not be opened.
#[derive(Debug)]
pub enum DataError {
    /// Some of the four files are in none of their forms.
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// Canonical names of the files looked for: all four, or the test set's two.
        wanted: &'static [&'static str],
        /// Canonical names of the files not found.
        missing: Vec<&'static str>,
    },
    /// A file could not be read (or the cache written).
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A path names a directory (or something else) where a file should be.
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A `.gz` file is not valid gzip data.
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's complaint.
        source: io::Error,
    },
    /// A split has no samples: nothing to train on or to evaluate.
    Empty {
        /// The image file (the `.gz` cache for a `.gz`).
        path: PathBuf,
    },
    /// A file is not a valid IDX file of the right kind.
    Idx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: IdxError,
    },
    /// An image file and its label file do not belong together.
    Pair {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// What is wrong.
        source: IdxError,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Missing {
                dir,
                wanted,
                missing,
            } => {
                // The first line names the directory alone: a program that knows how the
                // directory was chosen can say so after it.
                writeln!(f, "MNIST files not found in {}", dir.display())?;
                let count = if wanted.len() == 4 { "four" } else { "two" };
                writeln!(
                    f,
                    "  expected these {count} files, raw or .gz, with '-' or '.' before idx:"
                )?;
                for &name in *wanted {
                    let mark = if missing.contains(&name) {
                        "missing"
                    } else {
                        "found"
                    };
                    writeln!(f, "    {name:<26} {mark}")?;
                }
                write!(f, "  to get them: {SOURCE_HINT}")
            }
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::NotAFile { path } => write!(f, "{}: not a regular file", path.display()),
            DataError::Gzip { path, source } => {
                write!(f, "{}: corrupt gzip data: {source}", path.display())
            }
            DataError::Empty { path } => write!(
                f,
                "{}: holds no images (its header says 0): a dataset needs at least one sample",
                path.display()
            ),
            DataError::Idx { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Pair {
                images,
                labels,
                source,
            } => {
                write!(f, "{} and {}: {source}", images.display(), labels.display())
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::Gzip { source, .. } => Some(source),
            DataError::Idx { source, .. } | DataError::Pair { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How [`data_dir`] chose the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirSource {
    /// The caller named it (a command-line flag, say).
    Given,
    /// `$MNIST_DIR`.
    Env,
    /// Neither: `./data/mnist`.
    Default,
}

/// The data directory: `given` if any, else `$MNIST_DIR` (unless empty), else
/// `./data/mnist`; with how it was chosen.
pub fn data_dir(given: Option<&Path>) -> (PathBuf, DirSource) {
    if let Some(dir) = given {
        return (dir.to_path_buf(), DirSource::Given);
    }
    match std::env::var_os("MNIST_DIR") {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), DirSource::Env),
        _ => (PathBuf::from("data/mnist"), DirSource::Default),
    }
}

/// One half of the dataset: images and their labels, validated.
pub struct Split {
    images: Arc<Bytes>,
    labels: Arc<Bytes>,
    /// Number of samples.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// The image file read (the cache, for a `.gz`).
    pub images_path: PathBuf,
    /// The label file read.
    pub labels_path: PathBuf,
}

impl Split {
    /// A split held in memory, from the bytes of an IDX image file and an IDX label file
    /// (validated like files on disk).
    pub fn from_idx_bytes(
        images: Vec<u8>,
        labels: Vec<u8>,
        pixels: usize,
        classes: usize,
    ) -> Result<Self, IdxError> {
        let parsed = idx::parse_images(&images)?;
        idx::check_pair(&parsed, idx::parse_labels(&labels)?, pixels, classes)?;
        let (count, rows, cols) = (parsed.count, parsed.rows, parsed.cols);
        let (images, labels) = (
            Arc::new(Bytes::Owned(images)),
            Arc::new(Bytes::Owned(labels)),
        );
        let memory = PathBuf::from("<memory>");
        Ok(Split {
            images,
            labels,
            count,
            rows,
            cols,
            images_path: memory.clone(),
            labels_path: memory,
        })
    }

    /// All pixels, `count · rows · cols` bytes, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.images[16..]
    }

    /// All labels, one byte per sample.
    pub fn labels(&self) -> &[u8] {
        &self.labels[8..]
    }

    /// The images as a parsed view.
    pub fn images(&self) -> Images<'_> {
        Images {
            count: self.count,
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels(),
        }
    }
}

impl Dataset for Split {
    fn len(&self) -> usize {
        self.count
    }
    fn features(&self) -> usize {
        self.rows * self.cols
    }
    fn rows(&self) -> Rows<'_> {
        Rows::U8(self.pixels())
    }
    fn labels(&self) -> &[u8] {
        Split::labels(self)
    }
    /// The split's bytes, shared: what a worker thread keeps for an epoch (cloning it does not
    /// allocate).
    fn shared(&self) -> SharedData {
        SharedData::from_idx(Arc::clone(&self.images), 16, Arc::clone(&self.labels), 8)
    }
}

/// MNIST: 60,000 training and 10,000 test samples.
pub struct Mnist {
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// The directory the files came from.
    pub dir: PathBuf,
    /// Every file read: the four files as found (raw or `.gz`) and the caches of the `.gz`
    /// ones. An output must never be one of them.
    pub files: Vec<PathBuf>,
}

/// How to open the dataset.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Memory-map the files (the default) or read them into memory.
    pub map: bool,
    /// Pixels per image the network takes.
    pub pixels: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            map: true,
            pixels: 784,
            classes: 10,
        }
    }
}

impl Mnist {
    /// Finds, validates and maps the four files in `dir`.
    pub fn open(dir: &Path, options: OpenOptions) -> Result<Self, DataError> {
        let paths = find_all(dir, &FILES)?;
        let train = open_split(&paths[0], FILES[0], &paths[1], FILES[1], options)?;
        let test = open_split(&paths[2], FILES[2], &paths[3], FILES[3], options)?;
        let mut files = paths.clone();
        for split in [&train, &test] {
            for path in [&split.images_path, &split.labels_path] {
                if !files.contains(path) {
                    files.push(path.clone());
                }
            }
        }
        Ok(Self {
            train,
            test,
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Finds, validates and maps only the test set's two files in `dir`: what evaluation and
    /// prediction need (the training files are 47 MB more).
    pub fn open_test(dir: &Path, options: OpenOptions) -> Result<Split, DataError> {
        let paths = find_all(dir, &FILES[2..])?;
        open_split(&paths[0], FILES[2], &paths[1], FILES[3], options)
    }
}

/// The paths of `names` in `dir`, or which of them are missing.
fn find_all(dir: &Path, names: &'static [&'static str]) -> Result<Vec<PathBuf>, DataError> {
    let found: Vec<Option<PathBuf>> = names
        .iter()
        .map(|name| find(dir, name))
        .collect::<Result<_, _>>()?;
    let missing: Vec<&'static str> = names
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(&n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            wanted: names,
            missing,
        });
    }
    Ok(found.into_iter().flatten().collect())
}

/// The path of `name` in `dir` under either spelling, raw or `.gz`, if any.
fn find(dir: &Path, name: &str) -> Result<Option<PathBuf>, DataError> {
    let dotted = name.replacen("-idx", ".idx", 1);
    for candidate in [
        name.to_string(),
        dotted.clone(),
        format!("{name}.gz"),
        format!("{dotted}.gz"),
    ] {
        let path = dir.join(candidate);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => return Ok(Some(path)),
            Ok(_) => return Err(DataError::NotAFile { path }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(DataError::Io { path, source }),
        }
    }
    Ok(None)
}

fn open_split(
    images_path: &Path,
    images_name: &str,
    labels_path: &Path,
    labels_name: &str,
    options: OpenOptions,
) -> Result<Split, DataError> {
    let (images_path, images) = open_file(images_path, images_name, options, |b| {
        idx::parse_images(b).map(|_| ())
    })?;
    let (labels_path, labels) = open_file(labels_path, labels_name, options, |b| {
        idx::parse_labels(b).map(|_| ())
    })?;
    let parsed = idx::parse_images(&images).map_err(|source| DataError::Idx {
        path: images_path.clone(),
        source,
    })?;
    let label_bytes = idx::parse_labels(&labels).map_err(|source| DataError::Idx {
        path: labels_path.clone(),
        source,
    })?;
    idx::check_pair(&parsed, label_bytes, options.pixels, options.classes).map_err(|source| {
        DataError::Pair {
            images: images_path.clone(),
            labels: labels_path.clone(),
            source,
        }
    })?;
    let (count, rows, cols) = (parsed.count, parsed.rows, parsed.cols);
    if count == 0 {
        return Err(DataError::Empty { path: images_path });
    }
    Ok(Split {
        images: Arc::new(images),
        labels: Arc::new(labels),
        count,
        rows,
        cols,
        images_path,
        labels_path,
    })
}

/// Opens one file (through the decompressed cache for a `.gz`) and validates it with `check`.
fn open_file(
    path: &Path,
    name: &str,
    options: OpenOptions,
    check: impl Fn(&[u8]) -> Result<(), IdxError>,
) -> Result<(PathBuf, Bytes), DataError> {
    let path = if path.extension().is_some_and(|e| e == "gz") {
        cached(path, name, &check)?
    } else {
        path.to_path_buf()
    };
    let bytes = if options.map {
        Bytes::map(&path, MAX_DECOMPRESSED)
    } else {
        Bytes::read(&path, MAX_DECOMPRESSED)
    };
    let bytes = bytes.map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    check(&bytes).map_err(|source| DataError::Idx {
        path: path.clone(),
        source,
    })?;
    Ok((path, bytes))
}

/// The length and CRC-32 of some bytes: what identifies a `.gz` and its cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Digest {
    len: u64,
    crc: u32,
}

impl Digest {
    fn of(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        }
    }

    /// The digest of a whole file, read in chunks (at most `cap` bytes).
    fn of_file(path: &Path, cap: u64) -> io::Result<Self> {
        let (file, _) = crate::files::open_regular(path, cap)?;
        let mut reader = file.take(cap);
        let (mut hasher, mut len, mut buffer) =
            (crc32fast::Hasher::new(), 0u64, vec![0u8; 1 << 16]);
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                return Ok(Self {
                    len,
                    crc: hasher.finalize(),
                });
            }
            hasher.update(&buffer[..n]);
            len += n as u64;
        }
    }
}

/// What `NAME.source` records: the `.gz` a cache came from and the cache's own bytes.
#[derive(Debug, PartialEq, Eq)]
struct CacheRecord {
    gz: Digest,
    idx: Digest,
}

const RECORD_MAGIC: &str = "constnet .gz cache 1";

impl CacheRecord {
    fn path(cache: &Path) -> PathBuf {
        let mut name = cache.file_name().unwrap_or_default().to_os_string();
        name.push(".source");
        cache.with_file_name(name)
    }

    fn text(&self) -> String {
        format!(
            "{RECORD_MAGIC}\ngz {} {:08x}\nidx {} {:08x}\n",
            self.gz.len, self.gz.crc, self.idx.len, self.idx.crc
        )
    }

    fn read(cache: &Path) -> Option<Self> {
        let text = crate::files::read_regular(&Self::path(cache), 4096).ok()?;
        let text = String::from_utf8(text).ok()?;
        let mut lines = text.lines();
        if lines.next()? != RECORD_MAGIC {
            return None;
        }
        let mut digest = |key: &str| -> Option<Digest> {
            let mut words = lines.next()?.split(' ');
            (words.next()? == key).then_some(())?;
            let len = words.next()?.parse().ok()?;
            let crc = u32::from_str_radix(words.next()?, 16).ok()?;
            Some(Digest { len, crc })
        };
        Some(Self {
            gz: digest("gz")?,
            idx: digest("idx")?,
        })
    }
}

/// The decompressed copy of `gz`: the cache if its record matches `gz` and itself (see the
/// module docs), else made anew.
fn cached(
    gz: &Path,
    name: &str,
    check: &impl Fn(&[u8]) -> Result<(), IdxError>,
) -> Result<PathBuf, DataError> {
    let gz_digest = Digest::of_file(gz, MAX_DECOMPRESSED).map_err(|source| DataError::Io {
        path: gz.to_path_buf(),
        source,
    })?;
    let dirs = cache_dirs(gz);
    for dir in &dirs {
        let cache = dir.join(name);
        let Some(record) = CacheRecord::read(&cache).filter(|r| r.gz == gz_digest) else {
            continue;
        };
        let intact = Bytes::map(&cache, MAX_DECOMPRESSED)
            .is_ok_and(|b| Digest::of(&b) == record.idx && check(&b).is_ok());
        if intact {
            return Ok(cache);
        }
    }
    // Decompress into the first cache directory that accepts the file.
    let mut last_error = None;
    for dir in &dirs {
        let cache = dir.join(name);
        let created = !dir.exists();
        if fs::create_dir_all(dir).is_err() {
            continue;
        }
        let result = decompress(gz, &cache).and_then(|()| {
            let bytes = Bytes::map(&cache, MAX_DECOMPRESSED).map_err(|source| DataError::Io {
                path: cache.clone(),
                source,
            })?;
            check(&bytes).map_err(|source| DataError::Idx {
                path: gz.to_path_buf(),
                source,
            })?;
            let record = CacheRecord {
                gz: gz_digest,
                idx: Digest::of(&bytes),
            };
            let path = CacheRecord::path(&cache);
            crate::atomic_file::write_bytes_atomic(&path, record.text().as_bytes())
                .map_err(|source| DataError::Io { path, source })
        });
        match result {
            Ok(()) => return Ok(cache),
            Err(e) => {
                // A bad .gz leaves nothing behind: no cache file, no new directory.
                if matches!(e, DataError::Idx { .. }) {
                    let _ = fs::remove_file(&cache);
                }
                if created {
                    let _ = fs::remove_dir(dir);
                }
                match e {
                    DataError::Gzip { .. } | DataError::Idx { .. } => return Err(e),
                    other => last_error = Some(other),
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| DataError::Io {
        path: gz.to_path_buf(),
        source: io::Error::other("no writable cache directory for the decompressed file"),
    }))
}

/// The most a `.gz` file may decompress to, and the most any data file may hold (MNIST's
/// largest file is 47 MB): a corrupted or hostile file cannot fill the disk or the memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// What went wrong in [`gunzip`].
#[derive(Debug)]
pub enum GunzipError {
    /// The input is not valid gzip data (or decompresses to more than the limit).
    Gzip(io::Error),
    /// The output could not be written.
    Write(io::Error),
}

/// Decompresses gzip data from `input` into `output`, refusing to produce more than `limit`
/// bytes. Returns the decompressed length. This is the one decoder behind the `.gz` cache,
/// fuzzed as is.
pub fn gunzip(
    input: impl Read,
    mut output: impl io::Write,
    limit: u64,
) -> Result<u64, GunzipError> {
    let mut decoder = flate2::read::GzDecoder::new(input);
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = decoder.read(&mut buffer).map_err(GunzipError::Gzip)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        if total > limit {
            return Err(GunzipError::Gzip(io::Error::other(format!(
                "decompresses to more than {limit} bytes"
            ))));
        }
        output.write_all(&buffer[..n]).map_err(GunzipError::Write)?;
    }
}

/// Cache directories for a `.gz` file: beside it, then under the user's cache directory.
fn cache_dirs(gz: &Path) -> Vec<PathBuf> {
    let parent = gz
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut dirs = vec![parent.join(".constnet-cache")];
    // The XDG spec: an empty or relative $XDG_CACHE_HOME counts as unset (an empty one used to
    // put the cache in ./constnet/).
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let user = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")));
    if let Some(user) = user {
        // One directory per data directory, so two datasets never share a cache.
        let absolute = fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
        let key = crc32fast::hash(absolute.to_string_lossy().as_bytes());
        dirs.push(user.join("constnet").join(format!("mnist-{key:08x}")));
    }
    dirs
}

/// Decompresses `gz` into `out` atomically.
fn decompress(gz: &Path, out: &Path) -> Result<(), DataError> {
    let (file, _) =
        crate::files::open_regular(gz, MAX_DECOMPRESSED).map_err(|source| DataError::Io {
            path: gz.to_path_buf(),
            source,
        })?;
    let mut gzip_error = None;
    let result = write_atomic(out, |w| {
        match gunzip(io::BufReader::new(file), w, MAX_DECOMPRESSED) {
            Ok(_) => Ok(()),
            Err(GunzipError::Write(e)) => Err(e),
            Err(GunzipError::Gzip(e)) => {
                let message = io::Error::new(e.kind(), e.to_string());
                gzip_error = Some(e);
                Err(message)
            }
        }
    });
    match (result, gzip_error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(source)) => Err(DataError::Gzip {
            path: gz.to_path_buf(),
            source,
        }),
        (Err(source), None) => Err(DataError::Io {
            path: out.to_path_buf(),
            source,
        }),
    }
}
