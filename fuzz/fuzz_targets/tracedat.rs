//! Fuzz the trace.dat reader: parsing, the merged record stream into a sink, and the
//! kernel-style text rendering must never panic, whatever the bytes.
//!
//! `cargo +nightly fuzz run tracedat fuzz/corpus/tracedat` (seed the corpus with the files of
//! tests/data/tracedat/*.dat).
#![no_main]

use exitscope_model::{Flow, Record, RecordSink};
use libfuzzer_sys::fuzz_target;

struct Count(u64);

impl RecordSink for Count {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        // Touch the borrowed data so rendering bugs surface.
        if let exitscope_model::RecordKind::Event { name, text } = rec.kind {
            self.0 += (name.len() + text.len()) as u64;
        }
        Flow::Continue
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = exitscope_tracedat::is_trace_dat(data);
    let _ = exitscope_tracedat::read(data, "fuzz", &mut Count(0));
    if let Ok(t) = exitscope_tracedat::TraceDat::parse(data) {
        let _ = exitscope_tracedat::text::write_text(&t, exitscope_tracedat::text::Layout::Graph, &mut std::io::sink());
    }
});
