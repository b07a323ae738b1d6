//! Reads a trace.dat through [`exitscope_tracedat::read`] into a sink that does what
//! `exitscope report`'s event statistics do (count records per event name, keep the text),
//! and prints `records seconds records/s` on one line. Used by `scripts/bench-tracedat.sh`.
//!
//! `cargo run --release -p exitscope-tracedat --example bench_read -- FILE [RUNS]`

use std::collections::HashMap;
use std::time::Instant;

use exitscope_model::{Flow, Record, RecordKind, RecordSink};

#[derive(Default)]
struct EventStats {
    per_name: HashMap<String, u64>,
    text_bytes: u64,
    records: u64,
}

impl RecordSink for EventStats {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.records += 1;
        if let RecordKind::Event { name, text, .. } = rec.kind {
            self.text_bytes += text.len() as u64;
            match self.per_name.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    self.per_name.insert(name.to_string(), 1);
                }
            }
        }
        Flow::Continue
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: bench_read FILE [RUNS]");
        std::process::exit(2);
    };
    let runs: u32 = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let t0 = Instant::now();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench_read: {path}: {e}");
            std::process::exit(1);
        }
    };
    let load = t0.elapsed().as_secs_f64();
    let mut best = f64::MAX;
    let mut records = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let mut sink = EventStats::default();
        match exitscope_tracedat::read(&bytes, path, &mut sink) {
            Ok(s) => records = s.records,
            Err(e) => {
                eprintln!("bench_read: {path}: {e}");
                std::process::exit(1);
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let total = best + load;
    println!("{records} {total:.3} {:.0}", records as f64 / total);
}
