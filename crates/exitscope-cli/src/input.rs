//! Opening inputs: the one memory map of the binary (trace.dat is read zero-copy from it).

use std::fs::File;

use anyhow::Context;

use crate::exit::Failure;

/// Map `path` read-only.
pub fn map_file(path: &str) -> Result<memmap2::Mmap, Failure> {
    let file =
        File::open(path).with_context(|| format!("opening {path}")).map_err(Failure::input)?;
    // SAFETY: the map is read-only and private to this process; the reader only takes
    // `&[u8]` and checks every offset. A trace file truncated or rewritten by another
    // process while we read it would be undefined behaviour for the slice, which is the
    // documented risk of every mmap-based reader (ripgrep, object); trace files are
    // written once and not modified afterwards.
    let map = unsafe { memmap2::Mmap::map(&file) };
    map.with_context(|| format!("mapping {path}")).map_err(Failure::input)
}
