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

/// Hand the pages of `map[from..to]` (already read) back to the kernel, so that reading a
/// file much larger than memory keeps only the chunks in flight resident. Returns `to`, the
/// next `from`. Failure only means the pages stay resident until the map is dropped.
pub(crate) fn release(map: &memmap2::Mmap, from: usize, to: usize) -> usize {
    if to > from {
        // SAFETY: the map is a read-only private file mapping, so MADV_DONTNEED only drops
        // clean page-cache pages: a later access (another chunk sharing the edge page, or
        // none) faults the same file bytes back in. No byte a live reference points to can
        // change, which is the hazard memmap2 guards by making this advice `unsafe` (it
        // discards writes in writable private maps).
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
        };
    }
    to.max(from)
}
