//! A file's bytes, memory-mapped (zero-copy) or read into memory.
//!
//! Mapping is what makes batches free of copies: pixels go from the page cache straight into
//! the batch buffer. Its hazard is that the bytes are only as stable as the file: if another
//! process truncates or rewrites a mapped file, later reads see the new bytes or fault the
//! process (SIGBUS). Lengths are validated when the file is opened, the `.gz` cache is written
//! atomically (a rename never changes a mapped inode), and [`Bytes::read`] exists for when the
//! files cannot be trusted to stay put (`constnet train --no-mmap`).

use crate::files::open_regular;
use memmap2::Mmap;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::prelude::rust_2024::*;

/// The bytes of a file.
pub enum Bytes {
    /// A read-only shared mapping.
    Mapped(Mmap),
    /// A copy in memory.
    Owned(Vec<u8>),
}

impl Bytes {
    /// Maps `path` read-only (an empty file is read, as it cannot be mapped), if it is a regular
    /// file of at most `cap` bytes (see [`crate::files`]).
    pub fn map(path: &Path, cap: u64) -> io::Result<Self> {
        let (file, len) = open_regular(path, cap)?;
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        // memmap2 requires that a file not be modified while mapped (reads would be undefined);
        // `Bytes::read` is the alternative when that cannot be guaranteed.
        // SAFETY: a read-only mapping of an input dataset, which constnet never writes and
        // documents must not be rewritten during a run.
        let map = unsafe { Mmap::map(&file)? };
        Ok(Bytes::Mapped(map))
    }

    /// Reads `path` into memory, if it is a regular file of at most `cap` bytes.
    pub fn read(path: &Path, cap: u64) -> io::Result<Self> {
        crate::files::read_regular(path, cap).map(Bytes::Owned)
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}
