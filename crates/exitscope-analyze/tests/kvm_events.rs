//! Golden tests for the kvm_events sink: `tests/data/kvm_events/<case>/input.txt` (event lines
//! written from the kernel's print formats, or recorded) → `expected.txt` (the table) and
//! `expected.json`. `EXITSCOPE_BLESS=1` rewrites the expected files; a failure names
//! `expected_file:line`. Key numbers are also asserted by hand below, so a bless cannot
//! hide a wrong pairing.

use std::path::{Path, PathBuf};

use exitscope_analyze::kvm_events::{KvmEventReport, KvmEventStats, TimingSource, render_table};
use exitscope_model::{Record, RecordKind, RecordSink, Task};

/// Test-only splitter for plain event lines (`comm-pid [cpu] flags ts: name: text`) and
/// `CPU:N [LOST n EVENTS]`. The real parser is exitscope-ftrace's; this knows just enough.
fn split_line(line_no: u64, line: &str) -> Option<Record<'_>> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    if let Some(rest) = t.strip_prefix("CPU:") {
        let (cpu, rest) = rest.split_once(' ')?;
        let n = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
        return Some(Record {
            line: line_no,
            cpu: cpu.parse().ok(),
            task: None,
            timestamp: None,
            kind: RecordKind::Lost { count: n.parse().ok() },
        });
    }
    // The CPU field: the first "[digits]".
    let open = t.match_indices('[').map(|(i, _)| i).find(|&i| {
        t[i + 1..]
            .find(']')
            .is_some_and(|j| j > 0 && t[i + 1..i + 1 + j].bytes().all(|b| b.is_ascii_digit()))
    })?;
    let close = open + 1 + t[open + 1..].find(']')?;
    let cpu: u32 = t[open + 1..close].parse().ok()?;
    let task_s = t[..open].trim_end();
    let dash = task_s.rfind('-')?;
    let task = Task { comm: &task_s[..dash], pid: task_s[dash + 1..].parse().ok()? };
    // Then optional flags, then "secs.usecs:".
    let rest = &t[close + 1..];
    let colon = rest.find(": ")?;
    let ts_s = rest[..colon].split_whitespace().last()?;
    let (secs, frac) = ts_s.split_once('.')?;
    let frac9 = format!("{frac:0<9}");
    let timestamp = secs.parse::<u64>().ok()? * 1_000_000_000 + frac9[..9].parse::<u64>().ok()?;
    let body = &rest[colon + 2..];
    let (name, text) = body.split_once(':')?;
    Some(Record {
        line: line_no,
        cpu: Some(cpu),
        task: Some(task),
        timestamp: Some(timestamp),
        kind: RecordKind::Event { name: name.trim(), text: text.trim_start() },
    })
}

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kvm_events").join(case)
}

fn analyze(case: &str) -> KvmEventReport {
    let input = std::fs::read_to_string(case_dir(case).join("input.txt")).unwrap();
    let mut sink = KvmEventStats::new();
    let mut n = 0;
    for (i, line) in input.lines().enumerate() {
        if let Some(rec) = split_line(i as u64 + 1, line) {
            sink.record(&rec);
            n += 1;
        }
    }
    assert!(n > 0, "{case}: no records");
    sink.finish()
}

/// Compare with the expected file, or write it under EXITSCOPE_BLESS=1.
fn golden(case: &str, file: &str, actual: &str) {
    let path = case_dir(case).join(file);
    if std::env::var_os("EXITSCOPE_BLESS").is_some() || !path.exists() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| expected.lines().count().min(actual.lines().count()) + 1, |i| i + 1);
        let tmp = std::env::temp_dir().join(format!("exitscope-{case}-{file}"));
        std::fs::write(&tmp, actual).unwrap();
        panic!(
            "{}:{line}: output differs (actual saved to {}; EXITSCOPE_BLESS=1 rewrites)",
            path.display(),
            tmp.display()
        );
    }
}

fn check_goldens(case: &str) -> KvmEventReport {
    let report = analyze(case);
    let mut table = Vec::new();
    render_table(&report, &mut table).unwrap();
    golden(case, "expected.txt", &String::from_utf8(table).unwrap());
    golden(case, "expected.json", &(serde_json::to_string_pretty(&report).unwrap() + "\n"));
    report
}

/// (reason, count, paired, min, max, p50) for compact assertions.
fn row(r: &KvmEventReport, reason: &str) -> (u64, u64, Option<u64>, Option<u64>, Option<u64>) {
    let x =
        r.exit_reasons.iter().find(|x| x.reason == reason).unwrap_or_else(|| panic!("no {reason}"));
    (x.count, x.paired, x.min_ns, x.max_ns, x.p50_ns)
}

#[test]
fn vmx_5_10_pairs_per_vcpu_thread() {
    let r = check_goldens("vmx-5.10");
    assert_eq!(r.timing, TimingSource::ExitEntryPairs);
    assert_eq!(r.isa.as_deref(), Some("vmx"));
    assert_eq!(row(&r, "EPT_VIOLATION"), (2, 2, Some(4000), Some(6000), Some(4000)));
    assert_eq!(row(&r, "CPUID"), (3, 2, Some(1000), Some(2000), Some(1000)));
    assert_eq!(row(&r, "MSR_WRITE"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(row(&r, "EXTERNAL_INTERRUPT"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(row(&r, "HLT"), (1, 1, Some(100_000), Some(100_000), Some(100_000)));
    assert_eq!(row(&r, "IO_INSTRUCTION"), (1, 1, Some(3000), Some(3000), Some(3000)));
    assert_eq!(row(&r, "EPT_VIOLATION FAILED_VMENTRY"), (1, 0, None, None, None));
    assert_eq!(r.total_exits, 10);
    assert_eq!(r.total_handling_ns, Some(118_000));
    assert_eq!((r.unpaired_exits, r.unmatched_entries, r.lost_events), (2, 2, 3));
    assert_eq!(r.events["kvm_exit"], 10);
    assert_eq!(r.events["kvm_entry"], 10);
    let ept = r.exit_reasons.iter().find(|x| x.reason == "EPT_VIOLATION").unwrap();
    assert_eq!((ept.mean_ns, ept.p90_ns, ept.total_ns), (Some(5000), Some(6000), Some(10_000)));
    assert_eq!(r.exit_reasons[0].reason, "CPUID", "most samples first");
}

#[test]
fn vmx_5_6_old_formats() {
    let r = check_goldens("vmx-5.6");
    assert_eq!(row(&r, "EPT_VIOLATION"), (3, 3, Some(2000), Some(10_000), Some(3000)));
    assert_eq!(row(&r, "IO_INSTRUCTION"), (1, 1, Some(20_000), Some(20_000), Some(20_000)));
    assert_eq!((r.unpaired_exits, r.unmatched_entries), (0, 0));
}

#[test]
fn svm_5_8_lowercase_names_with_spaces() {
    let r = check_goldens("svm-5.8");
    assert_eq!(r.isa.as_deref(), Some("svm"));
    assert_eq!(row(&r, "npf"), (2, 2, Some(5000), Some(7000), Some(5000)));
    assert_eq!(row(&r, "PF excp"), (1, 1, Some(4000), Some(4000), Some(4000)));
    assert_eq!(row(&r, "io"), (1, 1, Some(30_000), Some(30_000), Some(30_000)));
    assert_eq!(row(&r, "msr"), (1, 1, Some(2000), Some(2000), Some(2000)));
    assert_eq!(row(&r, "interrupt"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(row(&r, "hlt"), (1, 1, Some(50_000), Some(50_000), Some(50_000)));
    assert_eq!(row(&r, "cpuid"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!((r.unpaired_exits, r.unmatched_entries), (0, 0));
}

#[test]
fn svm_6_x_with_hex_unknown_code() {
    let r = check_goldens("svm-6.x");
    assert_eq!(row(&r, "npf"), (3, 3, Some(1000), Some(3000), Some(2000)));
    assert_eq!(row(&r, "vmgexit"), (1, 1, Some(10_000), Some(10_000), Some(10_000)));
    assert_eq!(row(&r, "0x4ff"), (1, 1, Some(1000), Some(1000), Some(1000)));
    assert_eq!(row(&r, "avic_unaccelerated_access"), (1, 1, Some(2000), Some(2000), Some(2000)));
}

#[test]
fn tracecmd_plugin_vocabulary_is_normalised() {
    let r = check_goldens("tracecmd-plugin");
    assert_eq!(row(&r, "npf"), (2, 2, Some(4000), Some(6000), Some(4000)));
    assert_eq!(row(&r, "io"), (1, 1, Some(10_000), Some(10_000), Some(10_000)));
    assert_eq!(row(&r, "PF excp"), (1, 1, Some(3000), Some(3000), Some(3000)));
    assert_eq!(row(&r, "UNKNOWN (1234)"), (1, 1, Some(1000), Some(1000), Some(1000)));
}

#[test]
fn pvm_counts_reason_tracepoints_without_handling_time() {
    let r = check_goldens("pvm-reason-tracepoints");
    assert_eq!(r.timing, TimingSource::ReasonTracepoints);
    assert!(!r.handling_time_available);
    assert_eq!(row(&r, "CPUID"), (4, 0, None, None, None));
    assert_eq!(row(&r, "IO"), (2, 0, None, None, None));
    assert_eq!(row(&r, "MMIO"), (2, 0, None, None, None));
    assert_eq!(row(&r, "MSR"), (1, 0, None, None, None));
    assert_eq!(r.userspace_exits, 2);
    assert_eq!(r.events["kvm_cpuid"], 4);
    assert_eq!(r.events["kvm_mmio"], 3);
    let cpuid = r.exit_reasons.iter().find(|x| x.reason == "CPUID").unwrap();
    let ia = cpuid.inter_arrival.as_ref().unwrap();
    assert_eq!((ia.count, ia.min_ns, ia.max_ns, ia.p50_ns), (3, 3000, 5000, 3000));
    assert!(cpuid.rate_per_s.is_some());
    assert!(r.notes.iter().any(|n| n.contains("handling time is unavailable")));
    // The JSON shape the report --json documents.
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["events"]["kvm_cpuid"], 4);
    let first = &v["exit_reasons"][0];
    assert_eq!(first["reason"], "CPUID");
    assert!(first["total_ns"].is_null() && first["p99_ns"].is_null());
    assert!(first["histogram"].as_array().unwrap().is_empty());
}

#[test]
fn splitter_reads_the_context_variants() {
    let r = split_line(
        1,
        "<...>-35787 [038] d...  2825.959000: kvm_exit: vcpu 1 reason npf rip 0x1 info 1 0",
    )
    .unwrap();
    assert_eq!(r.task, Some(Task { comm: "<...>", pid: 35787 }));
    assert_eq!(r.timestamp, Some(2_825_959_000_000));
    let r =
        split_line(1, "  kworker/3:1-12  [003]    140.314684: kvm_pio: pio_read at 0x21").unwrap();
    assert_eq!(r.task.unwrap().comm, "kworker/3:1");
    assert_eq!(r.kind, RecordKind::Event { name: "kvm_pio", text: "pio_read at 0x21" });
}
