//! Fuzz the perf.data reader: whatever the bytes, `read` must not panic, hang or allocate
//! without bound; an error must name a byte offset (`byte 0x...: ...`), and a successful
//! read must have pushed exactly the records its summary counts.
//!
//! `cargo +nightly fuzz run perfdata fuzz/corpus/perfdata` (seed the corpus with the files
//! of tests/data/perfdata/*.data).
#![no_main]

use exitscope_model::{Flow, Record, RecordKind, RecordSink};
use libfuzzer_sys::fuzz_target;

struct Count(u64, u64);

impl RecordSink for Count {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.0 += 1;
        // Touch the rendered text so rendering bugs surface.
        if let RecordKind::Event { name, text, .. } = rec.kind {
            self.1 += (name.len() + text.len()) as u64;
        }
        Flow::Continue
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = exitscope_perfdata::is_perf_data(data);
    let mut sink = Count(0, 0);
    match exitscope_perfdata::read(data, "fuzz", &mut sink) {
        Ok(s) => {
            assert_eq!(s.records, sink.0);
            let events: u64 = s.event_counts.iter().map(|(_, n)| n).sum();
            assert_eq!(events + s.lost_markers, s.records);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("byte 0x"), "error without an offset: {msg}");
        }
    }
});
