//! Exits from kvm tracepoints: `tests/data/kvm_events/<case>/input.txt` (event lines written
//! from the kernels' print formats, or recorded; the header of each says which) through the
//! real text parser and the analysis, against `expected.exits.json` (the report's `exits`
//! member; `EXITSCOPE_BLESS=1` rewrites it). Key numbers are also asserted by hand, so a bless
//! cannot hide a wrong pairing.

use std::path::{Path, PathBuf};

use exitscope_analyze::exits::{ExitsReport, ReasonStats};
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputFormat, InputSink, InputSummary};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kvm_events").join(case)
}

fn analyse(case: &str) -> (ExitsReport, std::collections::BTreeMap<String, u64>) {
    let input = std::fs::read(case_dir(case).join("input.txt")).unwrap();
    let mut a = Analysis::new(AnalysisOptions::default());
    a.begin_input(case, InputFormat::FtraceText);
    let s = exitscope_ftrace::parse_reader(case, input.as_slice(), &mut a).unwrap();
    assert_eq!(s.error_lines, 0, "{case}: every line is readable");
    a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    let r = a.finish();
    let ex = r.exits.expect("an exits view");
    let json = serde_json::to_string_pretty(&ex).unwrap() + "\n";
    exitscope_testkit::golden(&json, case_dir(case).join("expected.exits.json"));
    (ex, r.events)
}

fn row<'r>(ex: &'r ExitsReport, reason: &str) -> &'r ReasonStats {
    ex.reasons.iter().find(|x| x.reason == reason).unwrap_or_else(|| panic!("no {reason}: {ex:#?}"))
}

/// (count, paired, min, max, p50) of the handling time.
fn handling(ex: &ExitsReport, reason: &str) -> (u64, u64, Option<u64>, Option<u64>, Option<u64>) {
    let x = row(ex, reason);
    let h = x.handling.as_ref();
    (
        x.count,
        h.map_or(0, |h| h.count),
        h.map(|h| h.min_ns),
        h.map(|h| h.max_ns),
        h.map(|h| h.p50_ns),
    )
}

#[test]
fn vmx_5_10_pairs_per_vcpu_thread() {
    let (ex, events) = analyse("vmx-5.10");
    assert_eq!(ex.source, "kvm_exit");
    assert_eq!(ex.isa.as_deref(), Some("vmx"));
    // EPT_VIOLATION FAILED_VMENTRY is an EPT_NPF exit too (one vocabulary); it never paired.
    assert_eq!(handling(&ex, "EPT_NPF"), (3, 2, Some(4000), Some(6000), Some(4000)));
    let names: Vec<&str> = row(&ex, "EPT_NPF").vendor.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["EPT_VIOLATION", "EPT_VIOLATION FAILED_VMENTRY"]);
    assert_eq!(handling(&ex, "CPUID"), (3, 2, Some(1000), Some(2000), Some(1000)));
    assert_eq!(handling(&ex, "MSR_WRITE"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(handling(&ex, "EXTERNAL_INTERRUPT"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(handling(&ex, "HLT"), (1, 1, Some(100_000), Some(100_000), Some(100_000)));
    assert_eq!(handling(&ex, "IO"), (1, 1, Some(3000), Some(3000), Some(3000)));
    assert_eq!(ex.exits, 10);
    let total: u64 =
        ex.reasons.iter().filter_map(|r| r.handling.as_ref()).map(|h| h.total_ns).sum();
    assert_eq!(total, 118_000);
    assert_eq!((ex.unpaired_exits, ex.unmatched_entries), (2, 2));
    assert_eq!((events["kvm_exit"], events["kvm_entry"]), (10, 10));
    let ept = row(&ex, "EPT_NPF").handling.as_ref().unwrap();
    assert_eq!((ept.mean_ns, ept.p90_ns, ept.total_ns), (5000, 6000, 10_000));
    assert_eq!(ex.timestamp_resolution_ns, Some(1000), "trace text prints microseconds");
}

#[test]
fn vmx_5_6_old_formats() {
    let (ex, _) = analyse("vmx-5.6");
    assert_eq!(handling(&ex, "EPT_NPF"), (3, 3, Some(2000), Some(10_000), Some(3000)));
    assert_eq!(handling(&ex, "IO"), (1, 1, Some(20_000), Some(20_000), Some(20_000)));
    assert_eq!((ex.unpaired_exits, ex.unmatched_entries), (0, 0));
}

#[test]
fn svm_5_8_lowercase_names_with_spaces() {
    let (ex, _) = analyse("svm-5.8");
    assert_eq!(ex.isa.as_deref(), Some("svm"));
    assert_eq!(handling(&ex, "EPT_NPF"), (2, 2, Some(5000), Some(7000), Some(5000)));
    assert_eq!(handling(&ex, "EXCEPTION"), (1, 1, Some(4000), Some(4000), Some(4000)));
    assert_eq!(row(&ex, "EXCEPTION").vendor[0].name, "PF excp");
    assert_eq!(handling(&ex, "IO"), (1, 1, Some(30_000), Some(30_000), Some(30_000)));
    assert_eq!(handling(&ex, "EXTERNAL_INTERRUPT"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(handling(&ex, "HLT"), (1, 1, Some(50_000), Some(50_000), Some(50_000)));
    assert_eq!(handling(&ex, "CPUID"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!((ex.unpaired_exits, ex.unmatched_entries), (0, 0));
}

#[test]
fn svm_6_x_with_hex_unknown_code() {
    let (ex, _) = analyse("svm-6.x");
    assert_eq!(handling(&ex, "EPT_NPF"), (3, 3, Some(1000), Some(3000), Some(2000)));
    assert_eq!(handling(&ex, "VMGEXIT"), (1, 1, Some(10_000), Some(10_000), Some(10_000)));
    assert_eq!(handling(&ex, "0x4ff"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(handling(&ex, "APIC"), (1, 1, Some(2000), Some(2000), Some(2000)));
}

#[test]
fn tracecmd_plugin_vocabulary_meets_the_kernels() {
    let (ex, _) = analyse("tracecmd-plugin");
    assert_eq!(handling(&ex, "EPT_NPF"), (2, 2, Some(4000), Some(6000), Some(4000)));
    assert_eq!(row(&ex, "EPT_NPF").vendor[0].name, "EXIT_NPF");
    assert_eq!(handling(&ex, "IO"), (1, 1, Some(10_000), Some(10_000), Some(10_000)));
    assert_eq!(handling(&ex, "EXCEPTION"), (1, 1, Some(3000), Some(3000), Some(3000)));
    assert_eq!(handling(&ex, "UNKNOWN (1234)"), (1, 1, Some(1000), Some(1000), Some(1000)));
}

#[test]
fn pvm_counts_reason_tracepoints_without_handling_time() {
    let (ex, events) = analyse("pvm-reason-tracepoints");
    assert_eq!(ex.source, "tracepoints");
    assert!(!ex.handling_time_available);
    for (reason, n) in [("CPUID", 4), ("IO", 2), ("MMIO", 2), ("MSR_READ", 1)] {
        let x = row(&ex, reason);
        assert_eq!((x.count, x.handling.is_none(), x.by_tracepoint), (n, true, n), "{reason}");
    }
    assert_eq!(row(&ex, "IO").keys[0].name, "port 0x21 in");
    assert_eq!(ex.userspace_exits, 2);
    assert_eq!((events["kvm_cpuid"], events["kvm_mmio"]), (4, 3));
    let cpuid = row(&ex, "CPUID");
    let ia = cpuid.inter_arrival.as_ref().unwrap();
    assert_eq!((ia.count, ia.min_ns, ia.max_ns, ia.p50_ns), (3, 3000, 5000, 3000));
    assert!(cpuid.rate_per_s.is_some());
    assert!(ex.notes.iter().any(|n| n.contains("handling time is unavailable")), "{:?}", ex.notes);
    assert!(ex.notes.iter().any(|n| n.contains("kvm_emulate_insn")), "{:?}", ex.notes);
    // The JSON shape report --json documents: one distribution shape, null when unknown.
    let v = serde_json::to_value(&ex).unwrap();
    let first = &v["reasons"][0];
    assert_eq!(first["reason"], "CPUID");
    assert!(first["handling"].is_null() && first["total"].is_null());
    assert_eq!(first["inter_arrival"]["histogram"]["sub_buckets"], 512);
    assert_eq!(first["inter_arrival"]["histogram"]["exact"], true);
}

#[test]
fn harness_signalling_is_kept_apart() {
    let text = "\
 bench-7 [001] 1.000000: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
 bench-7 [001] 1.000010: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0
 bench-7 [001] 1.000020: kvm_pio: pio_write at 0x3f0 size 4 count 1 val 0x0
";
    let mut o = AnalysisOptions::default();
    o.harness_ports = vec![0x3f0, 0x3f1];
    let mut a = Analysis::new(o);
    a.begin_input("t", InputFormat::FtraceText);
    exitscope_ftrace::parse_reader("t", text.as_bytes(), &mut a).unwrap();
    a.end_input(&InputSummary::default());
    let ex = a.finish().exits.unwrap();
    assert_eq!((ex.exits, ex.harness_exits), (2, 1));
    assert!(ex.notes.iter().any(|n| n.contains("0x3f0")), "{:?}", ex.notes);
}
