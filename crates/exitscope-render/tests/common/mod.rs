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

/// Compare `actual` with the golden file `expected` (inferno's scheme): a mismatch names
/// `expected_file:line` and saves the actual output next to the target dir; `EXITSCOPE_BLESS=1`
/// rewrites the golden instead. A missing golden fails unless blessing.
pub fn check_golden(expected: &Path, actual: &str) {
    if std::env::var_os("EXITSCOPE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
        std::fs::write(expected, actual).unwrap();
        eprintln!("blessed {}", expected.display());
        return;
    }
    let Ok(want) = std::fs::read_to_string(expected) else {
        panic!(
            "{}: missing golden file; run with EXITSCOPE_BLESS=1 to create it",
            expected.display()
        );
    };
    if want == actual {
        return;
    }
    let saved = std::env::temp_dir()
        .join(format!("exitscope-actual-{}", expected.file_name().unwrap().to_string_lossy()));
    std::fs::write(&saved, actual).unwrap();
    let (w, a): (Vec<&str>, Vec<&str>) = (want.lines().collect(), actual.lines().collect());
    let line = w.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(w.len().min(a.len()));
    panic!(
        "{}:{}: golden mismatch\n  expected: {:?}\n    actual: {:?}\n(actual output saved to {}; \
         EXITSCOPE_BLESS=1 to accept)",
        expected.display(),
        line + 1,
        w.get(line).unwrap_or(&"<end of file>"),
        a.get(line).unwrap_or(&"<end of file>"),
        saved.display()
    );
}
