//! Opening input files: regular files only, never more bytes than the format allows.
//!
//! Every file constnet reads (model files, checkpoints, IDX data, images) goes through
//! [`open_regular`] or [`read_regular`]. A FIFO, a device (`/dev/zero`), a socket or a
//! directory is refused from its metadata *before* it is opened, so nothing blocks on a FIFO and
//! nothing reads an endless device; the file is then opened non-blocking and checked again
//! through its descriptor, so a path swapped for a FIFO in between cannot hang the reader
//! either. The size cap is checked against the metadata, and reads stop at the cap in case the
//! file grows while it is read.
#![forbid(unsafe_code)]

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::prelude::rust_2024::*;

/// What kind of non-regular file `meta` describes, for the error message.
pub(crate) fn kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Checks `meta` (of the file behind a path or a descriptor): a regular file of at most `cap`
/// bytes.
fn check(meta: &Metadata, cap: u64) -> io::Result<u64> {
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({}), refused", kind(meta)),
        ));
    }
    if meta.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {cap} bytes this kind of file can have",
                meta.len()
            ),
        ));
    }
    Ok(meta.len())
}

/// Opens `path` for reading if it is a regular file of at most `cap` bytes; returns the file
/// and its length. Symbolic links are followed.
pub fn open_regular(path: &Path, cap: u64) -> io::Result<(File, u64)> {
    check(&fs::metadata(path)?, cap)?;
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Should the path have become a FIFO since the check, opening it must not wait for a
        // writer: the descriptor's own metadata is checked next.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let len = check(&file.metadata()?, cap)?;
    Ok((file, len))
}

/// Reads all of `path` if it is a regular file of at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_regular(path, cap)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew past the {cap} bytes this kind of file can have while it was read"),
        ));
    }
    Ok(bytes)
}
