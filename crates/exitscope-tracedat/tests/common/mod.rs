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
            RecordKind::Event { name, text, .. } => {
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

/// One parsed line of `trace-cmd report -t -N`.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Event { ts: u64, cpu: u32, comm: String, pid: u32, name: String, text: String },
    Dropped { cpu: u32, count: Option<u64> },
}

/// The lines of a stored `trace-cmd report -t -N`, with the instance-buffer prefixes removed.
pub fn parse_report(text: &str, buffers: &[String]) -> Vec<Line> {
    let mut out = Vec::new();
    for raw in text.lines() {
        if raw.starts_with("cpus=") || raw.trim().is_empty() {
            continue;
        }
        let mut l = raw;
        for b in buffers.iter().filter(|b| !b.is_empty()) {
            if let Some(r) = l.strip_prefix(b.as_str()).and_then(|r| r.strip_prefix(": ")) {
                l = r;
            }
        }
        if let Some(r) = l.strip_prefix("CPU:") {
            let (cpu, rest) = r.split_once(' ').unwrap();
            let count =
                rest.trim_start_matches('[').split_once(' ').and_then(|(n, _)| n.parse().ok());
            out.push(Line::Dropped { cpu: cpu.parse().unwrap(), count });
            continue;
        }
        // "%16s-%-5d [%03d] secs.nsecs: name:<pad to 22> text"
        let open = l.find(" [").unwrap();
        let task = l[..open].trim();
        let dash = task.rfind('-').unwrap();
        let (comm, pid) = (&task[..dash], task[dash + 1..].trim().parse::<u32>().unwrap());
        let close = l[open..].find(']').unwrap() + open;
        let cpu: u32 = l[open + 2..close].parse().unwrap();
        let rest = l[close + 1..].trim_start();
        let colon = rest.find(": ").unwrap();
        let (secs, nsecs) = rest[..colon].split_once('.').unwrap();
        let ts = secs.parse::<u64>().unwrap() * 1_000_000_000 + nsecs.parse::<u64>().unwrap();
        let rest = &rest[colon + 2..];
        let c2 = rest.find(':').unwrap();
        let name = rest[..c2].to_string();
        // The name and its colon are padded to 21 columns, then one space.
        let skip = (c2 + 1).max(21) + 1;
        let text = rest.get(skip..).unwrap_or("").to_string();
        out.push(Line::Event { ts, cpu, comm: comm.to_string(), pid, name, text });
    }
    out
}
