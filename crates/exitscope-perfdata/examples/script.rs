//! Prints a perf.data's tracepoint samples the way `perf script` does by default
//! (`comm tid [cpu] secs.usecs: name: text`), for comparing the two by eye or with diff.
//!
//! `cargo run -p exitscope-perfdata --example script -- perf.data`

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink};

/// Event name → `system:name`, as perf script prints it.
struct Script(std::collections::HashMap<String, String>);

impl RecordSink for Script {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        let ts = rec.timestamp.unwrap_or(0);
        let (secs, usecs) = (ts / 1_000_000_000, ts % 1_000_000_000 / 1000);
        let (comm, tid) = rec.task.map_or(("?", 0), |t| (t.comm, t.pid));
        let cpu = rec.cpu.unwrap_or(0);
        match rec.kind {
            RecordKind::Event { name, text, .. } => {
                let name = self.0.get(name).map_or(name, String::as_str);
                println!("{comm:>16} {tid:>6} [{cpu:03}] {secs:>5}.{usecs:06}: {name:>20}: {text}")
            }
            RecordKind::Lost { count } => println!("LOST {count:?} on cpu {cpu}"),
            _ => {}
        }
        Flow::Continue
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        eprintln!("{d}");
        Flow::Continue
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: script PERF.DATA");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let data = match exitscope_perfdata::PerfData::parse(&bytes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("SCRIPT_ATTRS").is_some() {
        for a in data.attrs() {
            eprintln!("{a:x?}");
        }
    }
    let names = data.tracing_data().map_or_else(Default::default, |t| {
        t.formats.iter().map(|f| (f.name.clone(), format!("{}:{}", f.system, f.name))).collect()
    });
    match data.read_into(&path, &mut Script(names)) {
        Ok(s) => eprintln!("{s:?}"),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    }
}
