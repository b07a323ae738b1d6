//! Golden tests: every record of each recorded fixture equals what `trace-cmd report -t -N`
//! printed for it (stored next to the fixture): event name, timestamp (ns), CPU, task,
//! and the print-fmt rendering of the fields. Per-event counts and first/last timestamps
//! are checked separately so a failure says which property broke.

mod common;

use std::collections::BTreeMap;

use common::{Collect, Line, Rec, data_dir, parse_report};

fn check(fixture: &str) {
    let dir = data_dir();
    let bytes = std::fs::read(dir.join(format!("{fixture}.dat"))).unwrap();
    let report = std::fs::read_to_string(dir.join(format!("{fixture}.report"))).unwrap();
    assert!(exitscope_tracedat::is_trace_dat(&bytes));
    let mut sink = Collect::default();
    let sum = exitscope_tracedat::read(&bytes, fixture, &mut sink).unwrap();
    assert!(sink.1.is_empty(), "diagnostics: {:?}", sink.1);
    let want = parse_report(&report, &sum.buffers);
    let got: Vec<Line> = sink
        .0
        .iter()
        .map(|r| match r {
            Rec::Event { ts, cpu, comm, pid, name, text } => Line::Event {
                ts: *ts,
                cpu: *cpu,
                comm: comm.clone(),
                pid: *pid,
                name: name.clone(),
                text: text.clone(),
            },
            Rec::Lost { cpu, count } => Line::Dropped { cpu: *cpu, count: *count },
            other => panic!("unexpected record {other:?}"),
        })
        .collect();

    // Per-event-name counts.
    let count = |v: &[Line]| {
        let mut m = BTreeMap::new();
        for l in v {
            if let Line::Event { name, .. } = l {
                *m.entry(name.clone()).or_insert(0u64) += 1;
            }
        }
        m
    };
    assert_eq!(count(&got), count(&want), "{fixture}: per-event counts");
    let sum_counts: BTreeMap<String, u64> = sum.event_counts.iter().cloned().collect();
    assert_eq!(sum_counts, count(&want), "{fixture}: summary counts");
    // First and last timestamps.
    let ts = |v: &[Line]| {
        let t: Vec<u64> = v
            .iter()
            .filter_map(|l| if let Line::Event { ts, .. } = l { Some(*ts) } else { None })
            .collect();
        (t.first().copied(), t.last().copied())
    };
    assert_eq!(ts(&got), ts(&want), "{fixture}: first/last timestamps");
    // Every line: order, task, CPU, timestamp and rendered fields.
    assert_eq!(got.len(), want.len(), "{fixture}: number of lines");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{fixture}: line {i}");
    }
}

#[test]
fn v7_zstd_matches_trace_cmd_report() {
    check("kvm-v7-zstd");
}

#[test]
fn v7_uncompressed_matches_trace_cmd_report() {
    check("kvm-v7-none");
}

#[test]
fn v6_matches_trace_cmd_report() {
    check("kvm-v6");
}

#[test]
fn v7_with_dropped_events_matches_trace_cmd_report() {
    check("kvm-drops-v7-zstd");
}

#[test]
fn fields_are_read_by_name() {
    let bytes = std::fs::read(data_dir().join("kvm-v7-zstd.dat")).unwrap();
    let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
    let mut m = t.merge().unwrap();
    let (mut pio, mut exec) = (0, 0);
    while let Some(it) = m.next_event().unwrap() {
        let exitscope_tracedat::Merged::Event(e) = it else { continue };
        match t.format_of(e.payload).map(|f| f.name.as_str()) {
            Some("kvm_pio") => {
                // "pio_write at 0x10 size 1 count 1 val 0x41"
                assert_eq!(t.field_int(e.payload, "port"), Some(0x10));
                assert_eq!(t.field_int(e.payload, "val"), Some(0x41));
                assert_eq!(t.field_int(e.payload, "rw"), Some(1));
                pio += 1;
            }
            Some("sched_process_exec") => {
                let f = t.field_str(e.payload, "filename").unwrap();
                assert!(f.starts_with('/'), "{f}");
                exec += 1;
            }
            _ => {}
        }
    }
    assert_eq!((pio, exec), (20, 40));
}
