//! Fuzz the trace.dat reader: parsing, the merged record stream into the whole analysis, and
//! the kernel-style text rendering must never panic, whatever the bytes; the call trees
//! built from its function-graph records conserve time (as in `ftrace_text`); a sink that
//! reads only what `parse_kvm_exit` gives of `kvm_exit` gets the same records, each decoded
//! exit what the rendered text parses to.
//!
//! `cargo +nightly fuzz run tracedat corpus/tracedat` (seed the corpus with the files of
//! tests/data/tracedat/*.dat).
#![no_main]

use exitscope_analyze::calls::{CallSink, RootCall};
use exitscope_analyze::funcs::FuncTable;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::exit::parse_kvm_exit;
use exitscope_model::{Flow, InputFormat, InputSink, InputSummary, Record, RecordKind, RecordSink, TextUse};
use libfuzzer_sys::fuzz_target;

struct Conserved;

impl CallSink for Conserved {
    fn root(&mut self, root: &RootCall, _funcs: &FuncTable) {
        if let Err(e) = root.check_conservation() {
            panic!("time not conserved: {e}\n{root:#?}");
        }
    }
}

/// Every event as (name, text, decoded exit), reading text as `text_use` says.
struct Events {
    text_use: TextUse,
    seen: Vec<(String, String, Option<String>)>,
}

impl RecordSink for Events {
    fn record(&mut self, r: &Record<'_>) -> Flow {
        if let RecordKind::Event { name, text, exit } = r.kind {
            self.seen.push((name.into(), text.into(), exit.map(|k| format!("{k:?}"))));
        }
        Flow::Continue
    }
    fn text_use(&self, e: &str) -> TextUse {
        if e == "kvm_exit" { self.text_use } else { TextUse::Always }
    }
    fn wants_text(&self, _: &Record<'_>) -> bool {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let mut all = Events { text_use: TextUse::Always, seen: Vec::new() };
    let mut parsed = Events { text_use: TextUse::Parsed, seen: Vec::new() };
    let a = exitscope_tracedat::read(data, "fuzz", &mut all).map(|s| s.records);
    let b = exitscope_tracedat::read(data, "fuzz", &mut parsed).map(|s| s.records);
    assert_eq!(a.is_ok(), b.is_ok());
    assert_eq!(all.seen.len(), parsed.seen.len());
    for (w, g) in all.seen.iter().zip(&parsed.seen) {
        assert_eq!(w.0, g.0);
        match &g.2 {
            // Decoded: what the text parses to, and no text.
            Some(exit) => {
                assert_eq!(Some(exit.clone()), parse_kvm_exit(&w.1).map(|k| format!("{k:?}")));
                assert!(g.1.is_empty());
            }
            None => assert_eq!(w.1, g.1),
        }
    }

    let _ = exitscope_tracedat::is_trace_dat(data);
    let mut conserved = Conserved;
    let mut a = Analysis::new(AnalysisOptions::default());
    a.add_call_sink(&mut conserved);
    a.begin_input("fuzz", InputFormat::TraceDat);
    if let Ok(s) = exitscope_tracedat::read(data, "fuzz", &mut a) {
        a.end_input(&InputSummary { records: s.records, ..Default::default() });
    }
    let _ = a.finish();
    if let Ok(t) = exitscope_tracedat::TraceDat::parse(data) {
        for layout in [exitscope_tracedat::text::Layout::Graph, exitscope_tracedat::text::Layout::Events] {
            let _ = exitscope_tracedat::text::write_text(&t, layout, &mut std::io::sink());
        }
    }
});
