//! `exitscope convert` (kernel-style event lines) of every trace.dat fixture, line for line
//! against the `trace-cmd report -t -N` text stored next to it: task, CPU, timestamp,
//! event name and rendered fields, and lost-event markers. trace-cmd prints nanoseconds;
//! the kernel prints `round(ns / 1000)` microseconds (`ns2usecs`), and so must convert.
//! Where trace-cmd and the kernel disagree, the kernel's own text of the same buffer
//! (`kvm-all-v7-zstd.kernel.txt`, the instance's `trace` file read before trace-cmd extracted
//! it) decides, and must match convert byte for byte.

mod common;

use common::{Line, data_dir, parse_report};
use exitscope_tracedat::TraceDat;
use exitscope_tracedat::text::{Layout, write_text};

/// One event line of convert's output, or a lost-events line.
#[derive(Debug, PartialEq, Eq)]
enum Conv {
    Event { us: u64, cpu: u32, comm: String, pid: u32, name: String, text: String },
    Lost { cpu: u32, count: Option<u64> },
}

/// `%16s-%-7d [%03d] FLAGS %5lu.%06lu: name: text` or `CPU:N [LOST n EVENTS]`.
fn parse_convert_line(l: &str) -> Conv {
    if let Some(r) = l.strip_prefix("CPU:") {
        let (cpu, rest) = r.split_once(' ').unwrap();
        let count = rest.strip_prefix("[LOST ").and_then(|r| r.split_once(' ')?.0.parse().ok());
        return Conv::Lost { cpu: cpu.parse().unwrap(), count };
    }
    let open = l.find(" [").unwrap();
    let task = l[..open].trim();
    let dash = task.rfind('-').unwrap();
    let (comm, pid) = (&task[..dash], task[dash + 1..].trim().parse::<u32>().unwrap());
    let close = l[open..].find(']').unwrap() + open;
    let cpu = l[open + 2..close].parse().unwrap();
    let rest = l[close + 1..].trim_start();
    let (_flags, rest) = rest.split_once(' ').unwrap();
    let rest = rest.trim_start();
    let (ts, rest) = rest.split_once(": ").unwrap();
    let (secs, usecs) = ts.split_once('.').unwrap();
    assert_eq!(usecs.len(), 6, "{l}");
    let us = secs.parse::<u64>().unwrap() * 1_000_000 + usecs.parse::<u64>().unwrap();
    let (name, text) = rest.split_once(": ").unwrap_or((rest.trim_end_matches(':'), ""));
    Conv::Event { us, cpu, comm: comm.into(), pid, name: name.into(), text: text.into() }
}

fn convert(fixture: &str) -> (String, Vec<String>, Vec<String>) {
    let bytes = std::fs::read(data_dir().join(format!("{fixture}.dat"))).unwrap();
    let t = TraceDat::parse(&bytes).unwrap();
    let mut out = Vec::new();
    let stats = write_text(&t, Layout::Events, &mut out).unwrap();
    let buffers = t.header.buffers.iter().map(|b| b.name.clone()).collect();
    (String::from_utf8(out).unwrap(), buffers, stats.warnings)
}

/// trace-cmd's `%ps` prints the symbol without the kernel's ` [module]` suffix.
fn without_module_suffix(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" [") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        match tail[2..].find(']') {
            Some(j) if tail[2..2 + j].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
                rest = &tail[3 + j..];
            }
            _ => {
                out.push_str(" [");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Events whose print fmt names kernel enum constants without a value: trace-cmd prints
/// the raw value in hex there (`hostclock 0x1`), the kernel the name (`hostclock tsc`).
const TRACE_CMD_UNRESOLVED_ENUMS: &[&str] = &["kvm_update_master_clock", "kvm_track_tsc"];

/// Compares convert's lines with the report's; returns how many lines differ only where
/// trace-cmd leaves an enum constant unresolved (checked against the kernel's text).
fn check(fixture: &str) -> usize {
    let (text, buffers, warnings) = convert(fixture);
    assert!(warnings.is_empty(), "{fixture}: {warnings:?}");
    let report = std::fs::read_to_string(data_dir().join(format!("{fixture}.report"))).unwrap();
    let want = parse_report(&report, &buffers);
    let got: Vec<Conv> =
        text.lines().filter(|l| !l.starts_with('#')).map(parse_convert_line).collect();
    assert_eq!(got.len(), want.len(), "{fixture}: number of lines");
    let kernel = std::fs::read_to_string(data_dir().join(format!("{fixture}.kernel.txt"))).ok();
    let kernel_lines: Option<Vec<&str>> =
        kernel.as_deref().map(|k| k.lines().filter(|l| !l.starts_with('#')).collect());
    let mut enum_lines = 0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let w = match w {
            Line::Dropped { cpu, count } => Conv::Lost { cpu: *cpu, count: *count },
            Line::Event { ts, cpu, comm, pid, name, text } => Conv::Event {
                // The report's nanoseconds, as the kernel prints them.
                us: ts / 1000 + u64::from(ts % 1000 >= 500),
                cpu: *cpu,
                comm: comm.clone(),
                pid: *pid,
                name: name.clone(),
                text: text.clone(),
            },
        };
        let same = match (g, &w) {
            (
                Conv::Event { us, cpu, comm, pid, name, text },
                Conv::Event { us: u2, cpu: c2, comm: m2, pid: p2, name: n2, text: t2 },
            ) => {
                let text = if name.starts_with("funcgraph_") {
                    without_module_suffix(text)
                } else {
                    text.clone()
                };
                (us, cpu, comm, pid, name, &text) == (u2, c2, m2, p2, n2, t2)
            }
            _ => *g == w,
        };
        if same {
            continue;
        }
        // Only an unresolved enum may differ, and then the kernel's own line decides.
        let Conv::Event { name, .. } = g else { panic!("{fixture}: line {i}: {g:?} != {w:?}") };
        assert!(
            TRACE_CMD_UNRESOLVED_ENUMS.contains(&name.as_str()),
            "{fixture}: line {i}:\n  convert:   {g:?}\n  trace-cmd: {w:?}"
        );
        let k = kernel_lines.as_ref().unwrap_or_else(|| panic!("{fixture}: no kernel text"));
        let ours = text.lines().filter(|l| !l.starts_with('#')).nth(i).unwrap();
        assert_eq!(ours, k[i], "{fixture}: line {i} against the kernel's text");
        enum_lines += 1;
    }
    enum_lines
}

#[test]
fn event_recordings_match_trace_cmd_report_line_for_line() {
    for f in ["kvm-v6", "kvm-v7-none", "kvm-v7-zstd", "kvm-drops-v7-zstd"] {
        assert_eq!(check(f), 0, "{f}");
    }
}

#[test]
fn function_graph_records_as_event_lines_match_trace_cmd_report() {
    for f in ["funcgraph-v6", "funcgraph-v7-zstd"] {
        assert_eq!(check(f), 0, "{f}");
    }
}

#[test]
fn every_kvm_event_matches_trace_cmd_and_the_kernel() {
    // Three lines differ from trace-cmd, which cannot resolve VDSO_CLOCKMODE_TSC (the kernel
    // prints `tsc`): kvm_update_master_clock twice, kvm_track_tsc once.
    assert_eq!(check("kvm-all-v7-zstd"), 3);
}

#[test]
fn every_kvm_event_matches_the_kernels_own_text_byte_for_byte() {
    let (text, _, warnings) = convert("kvm-all-v7-zstd");
    assert!(warnings.is_empty(), "{warnings:?}");
    let kernel = std::fs::read_to_string(data_dir().join("kvm-all-v7-zstd.kernel.txt")).unwrap();
    let ours: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let theirs: Vec<&str> = kernel.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.len(), 581);
    for (i, (o, k)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, k, "line {i} (kernel text line {})", i + 13);
    }
    // The cases the issue names, as the kernel printed them.
    for want in [
        "kvm_update_master_clock: masterclock 0 hostclock tsc offsetmatched 0",
        "kvm_track_tsc: vcpu_id 0 masterclock 0 offsetmatched 0 nr_online 1 hostclock tsc",
        "kvm_apicv_inhibit_changed: set reason=0, inhibits=0x1 DISABLED",
        // 1208.827008904 s: rounded up, where truncation printed ...008.
        "1208.827009: kvm_apicv_inhibit_changed",
    ] {
        assert!(text.contains(want), "{want}");
    }
}
