//! Arbitrary bytes through the text parser and the whole analysis: no panic, every line
//! accounted for, and statistics that stay consistent.
#![no_main]

use exitscope_analyze::{Analysis, AnalysisOptions, InputCounts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = Analysis::new(AnalysisOptions::default());
    a.begin_input("fuzz", "ftrace-text");
    let s = exitscope_ftrace::parse_reader("fuzz", data, &mut a).expect("reading a slice cannot fail");
    assert_eq!(s.lines, s.record_lines + s.ignored_lines + s.error_lines);
    assert_eq!(s.bytes, data.len() as u64);
    a.end_input(&InputCounts { lines: s.lines, records: s.records, ..Default::default() });
    let report = a.finish();
    fn check(n: &exitscope_analyze::report::TreeNode) {
        if let (Some(min), Some(max)) = (n.min_ns, n.max_ns) {
            assert!(min <= max);
            assert!(n.p50_ns.is_some_and(|p| p >= min && p <= max));
        }
        for c in &n.children {
            check(c);
        }
    }
    report.tree.iter().for_each(check);
});
