//! Shared test helpers: an owning record sink and fixture paths.
#![allow(dead_code, missing_docs)]

use std::path::PathBuf;

use exitscope_model::{Flow, Record, RecordKind, RecordSink};

/// Directory of the trace.dat fixtures.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tracedat")
}

/// An owned copy of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    Event { ts: u64, cpu: u32, comm: String, pid: u32, name: String, text: String },
    Entry { ts: u64, cpu: u32, pid: u32, func: String, depth: u32 },
    Exit { ts: u64, cpu: u32, pid: u32, func: String, depth: u32, duration: Option<u64> },
    Lost { cpu: u32, count: Option<u64> },
    Other,
}

#[derive(Default)]
pub struct Collect(pub Vec<Rec>, pub Vec<String>);

impl RecordSink for Collect {
    fn record(&mut self, r: &Record<'_>) -> Flow {
        let ts = r.timestamp.unwrap_or(0);
        let cpu = r.cpu.unwrap_or(0);
        let (comm, pid) = r.task.map_or((String::new(), 0), |t| (t.comm.to_string(), t.pid));
        self.0.push(match r.kind {
            RecordKind::Event { name, text } => {
                Rec::Event { ts, cpu, comm, pid, name: name.into(), text: text.into() }
            }
            RecordKind::Entry { func, depth } => {
                Rec::Entry { ts, cpu, pid, func: func.to_string(), depth }
            }
            RecordKind::Exit { func, duration, depth } => Rec::Exit {
                ts,
                cpu,
                pid,
                func: func.map(|f| f.to_string()).unwrap_or_default(),
                depth,
                duration,
            },
            RecordKind::Lost { count } => Rec::Lost { cpu, count },
            _ => Rec::Other,
        });
        Flow::Continue
    }
    fn diagnostic(&mut self, d: exitscope_model::Diagnostic) -> Flow {
        self.1.push(d.to_string());
        Flow::Continue
    }
}
