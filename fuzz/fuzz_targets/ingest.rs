//! Fuzz the ingest layer: sniffing, gzip/zstd decompression, and the hand-off to the text and
//! trace.dat readers must never panic, whatever the bytes; an accepted input holds records.
//!
//! `cargo +nightly fuzz run ingest fuzz/corpus/ingest` (seed with tests/data files, plain and
//! compressed).
#![no_main]

use exitscope_ingest::{Discard, Options, read_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(got) = read_bytes("fuzz", data, &mut Discard, &Options::default()) {
        assert!(got.summary.records > 0, "an input without records must be NoTrace");
    }
});
