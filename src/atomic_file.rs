//! Replacing a file so that a crash never leaves it half-written, and only a file that may be
//! replaced.
//!
//! The new bytes go to a temporary file in the target's directory, are flushed to the disk
//! (`fsync`), and the temporary is renamed over the target; then the directory itself is synced
//! so the rename survives a power cut. At every instant the target holds either the complete
//! old file or the complete new one. A failure removes the temporary and leaves the target
//! untouched.
//!
//! What the target is ([`resolve`]):
//!
//! - a symbolic link to a regular file: the file it points to is replaced, the link stays;
//! - an existing regular file: its permission bits and owner carry over to the new file (a
//!   0600 model stays 0600);
//! - a file with other hard links, or one whose owner cannot be given to the new file: the
//!   new bytes are still written to the temporary first, then copied *into* the file in place,
//!   so every link sees them and the owner stays. That copy is not atomic: a crash during it
//!   leaves the file partly written (the same as `cp` onto an existing file);
//! - anything else (a directory, a FIFO, a device such as `/proc/self/fd/1`, a socket, a
//!   dangling link) is refused before a byte is written.
//!
//! Temporaries are named `.NAME.tmp-PID-N` (`NAME` shortened if the whole would exceed 255
//! bytes). While one is being written it is listed, so a
//! signal handler can remove it ([`remove_temporaries`]); temporaries of `NAME` left by
//! processes that no longer exist (killed with SIGKILL, a power cut) are removed when `NAME` is
//! next written.
#![forbid(unsafe_code)]

use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::prelude::rust_2024::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// What a temporary adds to the target's name: `.`, `.tmp-`, a pid (≤ 10 digits), `-` and a
/// counter (≤ 20 digits).
const TEMP_OVERHEAD: usize = 1 + 5 + 10 + 1 + 20;

/// The file a write to `path` replaces.
#[derive(Debug)]
pub struct Target {
    /// Where the bytes go: `path`, or the file a symbolic link at `path` points to.
    pub path: PathBuf,
    /// The existing file's metadata, if there is one.
    pub existing: Option<Metadata>,
}

fn refused(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// What writing to `path` would replace, or why it must not be written.
pub fn resolve(path: &Path) -> io::Result<Target> {
    if path.as_os_str().is_empty() {
        return Err(refused("an empty path is not a file name"));
    }
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") || path.file_name().is_none() {
        return Err(refused("names a directory, not a file"));
    }
    let not_regular = |meta: &Metadata| {
        refused(format_args!(
            "{}, not a regular file: refusing to replace it",
            crate::files::kind(meta)
        ))
    };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Target {
            path: path.to_path_buf(),
            existing: None,
        }),
        Err(e) => Err(e),
        Ok(link) if link.file_type().is_symlink() => match fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Target {
                path: fs::canonicalize(path)?,
                existing: Some(meta),
            }),
            Ok(meta) => Err(not_regular(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(refused(
                "a symbolic link to a file that does not exist: refusing to write through it",
            )),
            Err(e) => Err(e),
        },
        Ok(meta) if meta.is_file() => Ok(Target {
            path: path.to_path_buf(),
            existing: Some(meta),
        }),
        Ok(meta) => Err(not_regular(&meta)),
    }
}

/// The directory a file is in (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Checks, before any work, that [`write_atomic`] could write `path`: the target may be
/// replaced, its directory exists and takes a new file (tried by creating and removing the
/// temporary), and the temporary's name is not too long. Returns the target.
pub fn check_target(path: &Path) -> io::Result<Target> {
    let target = resolve(path)?;
    let dir = dir_of(&target.path);
    if !dir.is_dir() {
        return Err(refused(format_args!(
            "directory {} does not exist",
            dir.display()
        )));
    }
    let temp = temp_path(&target.path)?;
    let probe = File::create_new(&temp).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create a file in {}: {e}", dir.display()),
        )
    })?;
    let copy = target
        .existing
        .as_ref()
        .map_or(Ok(false), |meta| in_place(meta, &probe));
    drop(probe);
    let _ = fs::remove_file(&temp);
    if copy? {
        // The bytes will be copied into the file itself: it must open for writing.
        fs::OpenOptions::new().write(true).open(&target.path)?;
    }
    Ok(target)
}

/// Whether the existing file is rewritten in place rather than replaced by `new` (a
/// temporary just created): it has other hard links, or an owner this process cannot give
/// `new`. Gives `new` that owner when it can.
fn in_place(meta: &Metadata, new: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Ok(true);
        }
        let ours = new.metadata()?;
        if (ours.uid(), ours.gid()) == (meta.uid(), meta.gid()) {
            return Ok(false);
        }
        Ok(std::os::unix::fs::fchown(new, Some(meta.uid()), Some(meta.gid())).is_err())
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, new);
        Ok(false)
    }
}

/// Writes `path` atomically with the bytes `write` produces (see the module docs for what is
/// replaced and what is refused).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let target = resolve(path)?;
    remove_stale_temporaries(&target.path);
    let temp = temp_path(&target.path)?;
    active().push(temp.clone());
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create_new(&temp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        match &target.existing {
            Some(meta) if in_place(meta, &file)? => {
                drop(file);
                copy_into(&temp, &target.path)?;
                fs::remove_file(&temp)
            }
            Some(meta) => {
                // After in_place's chown, which may clear set-id bits.
                file.set_permissions(meta.permissions())?;
                file.sync_all()?;
                drop(file);
                fs::rename(&temp, &target.path)?;
                sync_dir(&target.path)
            }
            None => {
                file.sync_all()?;
                drop(file);
                fs::rename(&temp, &target.path)?;
                sync_dir(&target.path)
            }
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    active().retain(|t| *t != temp);
    result
}

/// Copies the finished temporary into `target` in place (all its links see the new bytes).
fn copy_into(temp: &Path, target: &Path) -> io::Result<()> {
    let mut from = File::open(temp)?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(target)?;
    io::copy(&mut from, &mut to)?;
    to.sync_all()
}

/// The temporaries being written now.
fn active() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporaries this process is writing (for a signal handler about to exit);
/// returns those removed.
pub fn remove_temporaries() -> Vec<PathBuf> {
    active()
        .iter()
        .filter(|t| fs::remove_file(t).is_ok())
        .cloned()
        .collect()
}

/// The start of every temporary of `path`: `.NAME.tmp-`, with `NAME` shortened (at a character
/// boundary) so that the whole temporary name fits in `NAME_MAX` bytes.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut keep = name.len().min(NAME_MAX - TEMP_OVERHEAD);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!(".{}.tmp-", &name[..keep])
}

/// A name beside `path` that no other writer uses: hidden, with the process id and a counter.
/// Refuses a file name longer than `NAME_MAX` bytes, which no rename could create.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let len = path.file_name().map_or(0, |n| n.as_encoded_bytes().len());
    if len > NAME_MAX {
        return Err(refused(format_args!(
            "file name of {len} bytes is too long (at most {NAME_MAX})"
        )));
    }
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ok(path.with_file_name(format!("{}{pid}-{unique}", temp_prefix(path))))
}

/// Removes temporaries of `path` whose writer no longer runs (where that can be told: with
/// `/proc`); returns how many.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(dir_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, n)) = file.strip_prefix(&prefix).and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if pid != std::process::id() && !alive && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing on every platform; where they can't, the rename
    // is still atomic, only its durability across a power cut is up to the OS.
    match File::open(dir_of(path)) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// Writes all of `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |out| out.write_all(bytes))
}
