//! Fuzz the trace.dat reader: parsing, the merged record stream into the whole analysis, and
//! the kernel-style text rendering must never panic, whatever the bytes; the call trees
//! built from its function-graph records conserve time (as in `ftrace_text`).
//!
//! `cargo +nightly fuzz run tracedat corpus/tracedat` (seed the corpus with the files of
//! tests/data/tracedat/*.dat).
#![no_main]

use exitscope_analyze::calls::{CallSink, RootCall};
use exitscope_analyze::funcs::FuncTable;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputFormat, InputSink, InputSummary};
use libfuzzer_sys::fuzz_target;

struct Conserved;

impl CallSink for Conserved {
    fn root(&mut self, root: &RootCall, _funcs: &FuncTable) {
        if let Err(e) = root.check_conservation() {
            panic!("time not conserved: {e}\n{root:#?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
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
