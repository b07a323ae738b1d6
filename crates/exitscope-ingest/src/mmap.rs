//! The one memory map of exitscope: trace.dat files are read zero-copy from it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// Map `file` read-only.
pub(crate) fn map(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process; the reader only takes
    // `&[u8]` and checks every offset. A trace file truncated or rewritten by another
    // process while we read it would be undefined behaviour for the slice, which is the
    // documented risk of every mmap-based reader (ripgrep, object); trace files are
    // written once and not modified afterwards.
    unsafe { memmap2::Mmap::map(file) }
}
