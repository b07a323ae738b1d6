//! Arbitrary bytes through the text parser and the whole analysis. Invariants: no panic,
//! every line accounted for (record, ignored or error), and time conserved in every call
//! tree the builder hands out (self times add up to the root's duration, no call's
//! children longer than it, interrupt time in interrupt subtrees only).
//!
//! `cargo +nightly fuzz run ftrace_text corpus/ftrace_text` (seed the corpus with
//! tests/data/seed/*.txt and tests/data/fgraph/*.txt).
#![no_main]

use exitscope_analyze::calls::{CallSink, RootCall};
use exitscope_analyze::funcs::FuncTable;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputFormat, InputSink, InputSummary};
use libfuzzer_sys::fuzz_target;

struct Conserved(u64);

impl CallSink for Conserved {
    fn root(&mut self, root: &RootCall, _funcs: &FuncTable) {
        self.0 += 1;
        if let Err(e) = root.check_conservation() {
            panic!("time not conserved: {e}\n{root:#?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut conserved = Conserved(0);
    let mut a = Analysis::new(AnalysisOptions::default());
    a.add_call_sink(&mut conserved);
    a.begin_input("fuzz", InputFormat::FtraceText);
    let s = exitscope_ftrace::parse_reader("fuzz", data, &mut a).expect("reading a slice cannot fail");
    assert_eq!(s.lines, s.record_lines + s.ignored_lines + s.error_lines, "every line accounted for");
    assert_eq!(s.bytes, data.len() as u64);
    a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    let report = a.finish();
    assert_eq!(report.roots, conserved.0);
    fn check(n: &exitscope_analyze::report::TreeNode) {
        if let (Some(min), Some(max)) = (n.min_ns, n.max_ns) {
            assert!(min <= max);
            assert!(n.p50_ns.is_some_and(|p| p >= min && p <= max));
        }
        if let (Some(total), Some(self_ns)) = (n.total_ns, n.self_ns) {
            assert!(self_ns <= total);
        }
        for c in &n.children {
            check(c);
        }
    }
    report.tree.iter().for_each(check);
});
