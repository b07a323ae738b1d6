//! Shared helpers: analysing the seed traces, golden files with a bless variable.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use exitscope_analyze::calls::CallSink;
use exitscope_analyze::report::Report;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::RecordSink;
use exitscope_model::{InputSink, InputSummary};

/// `tests/data/seed/` at the workspace root.
pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().join("tests/data/seed")
}

/// Text of seed file `name`.
pub fn seed(name: &str) -> String {
    std::fs::read_to_string(seed_dir().join(name)).unwrap()
}

/// Analyse `(name, text)` inputs together, handing calls and records to the extra sinks.
pub fn analyse_with(
    inputs: &[(&str, &str)],
    calls: Option<&mut dyn CallSink>,
    records: Option<&mut dyn RecordSink>,
    mut begin: impl FnMut(usize),
) -> Report {
    let mut a = Analysis::new(AnalysisOptions::default());
    if let Some(c) = calls {
        a.add_call_sink(c);
    }
    if let Some(r) = records {
        a.add_record_sink(r);
    }
    for (i, (name, text)) in inputs.iter().enumerate() {
        begin(i);
        a.begin_input(name, exitscope_model::InputFormat::FtraceText);
        let s = exitscope_ftrace::parse_reader(name, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    }
    a.finish()
}

/// Analyse seed files by name.
pub fn analyse_seed(names: &[&str]) -> Report {
    analyse_seed_with(names, AnalysisOptions::default())
}

/// Analyse seed files by name with `opts`.
pub fn analyse_seed_with(names: &[&str], opts: AnalysisOptions) -> Report {
    let mut a = Analysis::new(opts);
    for name in names {
        let text = seed(name);
        a.begin_input(name, exitscope_model::InputFormat::FtraceText);
        let s = exitscope_ftrace::parse_reader(name, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    }
    a.finish()
}

/// Compare `actual` with the golden file `expected`: the one golden runner,
/// `exitscope_testkit::golden` (a missing golden fails unless blessing).
pub fn check_golden(expected: &Path, actual: &str) {
    exitscope_testkit::golden(actual, expected);
}
