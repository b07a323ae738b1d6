//! What the CLI's ingest layer will do with a perf.data, shown without the CLI: sniff the
//! magic, read into the one `Analysis` through `InputSink`, get the report.

mod common;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputFormat, InputSink, InputSummary};

fn analyse(name: &str, bytes: &[u8]) -> exitscope_analyze::report::Report {
    let mut a = Analysis::new(AnalysisOptions::default());
    // The magic tells the formats apart.
    assert!(exitscope_perfdata::is_perf_data(bytes));
    assert!(!exitscope_tracedat::is_trace_dat(bytes));
    a.begin_input(name, InputFormat::PerfData);
    let s = exitscope_perfdata::read(bytes, name, &mut a).expect("reads");
    a.end_input(&InputSummary {
        bytes: bytes.len() as u64,
        records: s.records,
        error_lines: s.skipped_samples + s.unknown_events,
        ..Default::default()
    });
    a.finish()
}

#[test]
fn recorded_perf_data_gives_the_event_counts_of_perf_script() {
    let dir = common::data_dir().join("perfdata");
    let bytes = std::fs::read(dir.join("kvm-file.data")).unwrap();
    let report = analyse("kvm-file.data", &bytes);
    let script = std::fs::read_to_string(dir.join("kvm-file.script")).unwrap();
    let theirs: std::collections::BTreeMap<String, u64> =
        common::parse_perf_script(&script).into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
    assert_eq!(report.events, theirs);
    // PVM: no kvm_exit, so exits are counted from the reason tracepoints.
    let exits = report.exits.as_ref().expect("exits");
    assert_eq!(exits.source, "tracepoints");
    let reasons: Vec<&str> = exits.reasons.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.contains(&"CPUID") && reasons.contains(&"IO"), "{reasons:?}");
    let input = &report.inputs[0];
    assert_eq!((input.format.as_str(), input.records), ("perf-data", 21));
}

#[test]
fn perf_kvm_stat_style_file_gives_handling_times_with_percentiles() {
    let bytes = std::fs::read(common::data_dir().join("perfdata/kvm-stat-vmx.data")).unwrap();
    let report = analyse("kvm-stat-vmx.data", &bytes);
    let exits = report.exits.expect("exits");
    let cpuid = exits.reasons.iter().find(|r| r.reason == "CPUID").expect("CPUID row");
    // perf kvm stat report on this file: CPUID 13 samples, min 1.02us, max 2.39us.
    let h = cpuid.handling.as_ref().expect("handling time");
    assert_eq!((cpuid.count, h.min_ns / 10, h.max_ns / 10), (13, 102, 239));
    assert!(h.p50_ns >= h.min_ns && h.p99_ns <= h.max_ns, "percentiles added");
}
