//! Shared helpers of the perf.data tests.
#![allow(dead_code)]

pub mod writer;

use std::path::{Path, PathBuf};
use std::process::Command;

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink};

/// `tests/data` at the repository root.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// A kernel event format file recorded from the build machine (`tests/data/tracedat/formats`).
pub fn kernel_format(name: &str) -> String {
    let p = data_dir().join("tracedat/formats").join(format!("{name}.format"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Prints `SKIP: reason` and returns; fails instead under `EXITSCOPE_REQUIRE_HW=1`.
pub fn skip(reason: &str) {
    if std::env::var_os("EXITSCOPE_REQUIRE_HW").is_some_and(|v| v == "1") {
        panic!("EXITSCOPE_REQUIRE_HW=1 but: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// The `perf` binary, when it runs.
pub fn perf() -> Option<&'static str> {
    let ok = Command::new("perf").arg("version").output().is_ok_and(|o| o.status.success());
    ok.then_some("perf")
}

/// Event name → event texts in order, from `perf script`'s default output
/// (`comm tid [cpu] time: kvm:kvm_pio: text`).
pub fn parse_perf_script(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut per: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in text.lines() {
        let Some(at) = line.find(" kvm:") else { continue };
        let rest = &line[at + 1..];
        let Some((event, text)) = rest.split_once(": ") else { continue };
        let name = event.trim_end_matches(':').trim_start_matches("kvm:").to_string();
        per.entry(name).or_default().push(text.trim_end().to_string());
    }
    per
}

/// Event name → event texts in order, from this reader.
pub fn read_events(
    bytes: &[u8],
    name: &str,
) -> (exitscope_perfdata::Summary, std::collections::BTreeMap<String, Vec<String>>) {
    let mut c = Collect::default();
    let s = exitscope_perfdata::read(bytes, name, &mut c).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(c.diagnostics.is_empty(), "{name}: {:?}", c.diagnostics);
    let mut per: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (n, text) in c.events {
        per.entry(n).or_default().push(text.trim_end().to_string());
    }
    (s, per)
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("exitscope-perfdata-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Keeps every record's event name and text, and every diagnostic.
#[derive(Default)]
pub struct Collect {
    pub events: Vec<(String, String)>,
    pub lost: Vec<Option<u64>>,
    pub diagnostics: Vec<Diagnostic>,
    pub tasks: Vec<Option<(String, u32)>>,
    pub timestamps: Vec<Option<u64>>,
    pub cpus: Vec<Option<u32>>,
}

impl RecordSink for Collect {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        match rec.kind {
            RecordKind::Event { name, text, .. } => {
                self.events.push((name.to_string(), text.to_string()));
                self.tasks.push(rec.task.map(|t| (t.comm.to_string(), t.pid)));
                self.timestamps.push(rec.timestamp);
                self.cpus.push(rec.cpu);
            }
            RecordKind::Lost { count } => self.lost.push(count),
            _ => {}
        }
        Flow::Continue
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.diagnostics.push(d);
        Flow::Continue
    }
}
