//! Throughput of `exitscope report`'s pipeline (parse + call trees + statistics) on one core.
//!
//! First a kvm_exit/kvm_entry event trace (four vCPU threads, several exit reasons; size
//! `EXITSCOPE_BENCH_EVENTS_MB`, default 1000), whose peak resident memory is printed before
//! anything else runs: the exit statistics keep bounded histograms, never every duration, so
//! it must stay far below 100 MB however long the trace. Then seed-shaped function_graph
//! traces (the AMD and Intel `vcpu_enter_guest` exits of `tests/data/seed`, with varying
//! durations, several CPUs and the occasional task-switch banner) of two sizes. Each is
//! analysed from a file on one thread; MB/s, lines/s and the peak resident memory are printed.
//!
//! `cargo bench -p exitscope-cli --bench report_throughput` (size: `EXITSCOPE_BENCH_MB`, default
//! 400; the small run is a quarter of it).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use exitscope_analyze::{Analysis, AnalysisOptions};

const SEED_AMD: &str = include_str!("../../../tests/data/seed/cpuid-amd.fgraph.txt");
const SEED_INTEL: &str = include_str!("../../../tests/data/seed/cpuid-intel.fgraph.txt");

/// The graph lines of the seed files, split into (prefix before the duration, duration ns,
/// rest) so durations can be varied.
fn templates() -> Vec<Vec<(String, Option<u64>, String)>> {
    let mut blocks = Vec::new();
    for text in [SEED_AMD, SEED_INTEL] {
        let mut block = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (cpu, rest) = line.split_once(')').expect("cpu column");
            let _ = cpu;
            let (dur, body) = rest.split_once('|').expect("duration column");
            let ns = dur
                .trim()
                .strip_suffix(" us")
                .map(|d| exitscope_ftrace::line::parse_duration(d, "us").expect("duration"));
            block.push((String::new(), ns, body.to_string()));
            if body.trim() == "}" && line.contains("|  }") {
                blocks.push(std::mem::take(&mut block));
            }
        }
        if !block.is_empty() {
            blocks.push(block);
        }
    }
    blocks
}

fn generate(path: &str, target_bytes: u64) -> (u64, u64) {
    let blocks = templates();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create"));
    let mut bytes = 0u64;
    let mut lines = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0usize;
    let mut line = String::with_capacity(128);
    while bytes < target_bytes {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let cpu = (rng % 4) as u32 * 33;
        let block = &blocks[i % blocks.len()];
        i += 1;
        if i.is_multiple_of(1000) {
            line.clear();
            line.push_str(&format!(
                " ------------------------------------------\n {cpu:3}) qemu-sy-{}  =>  qemu-sy-{} \n ------------------------------------------\n\n",
                1000 + i % 7,
                1000 + (i + 1) % 7
            ));
            w.write_all(line.as_bytes()).expect("write");
            bytes += line.len() as u64;
            lines += 4;
        }
        // Scale all durations of one exit by the same factor so totals stay consistent.
        let scale = 900 + (rng >> 40) % 300; // 0.9x .. 1.2x
        for (_, ns, body) in block {
            line.clear();
            match ns {
                Some(ns) => {
                    let v = ns * scale / 1000;
                    line.push_str(&format!(
                        " {cpu:3})   {}.{:03} us    |{body}\n",
                        v / 1000,
                        v % 1000
                    ));
                }
                None => line.push_str(&format!(" {cpu:3})               |{body}\n")),
            }
            w.write_all(line.as_bytes()).expect("write");
            bytes += line.len() as u64;
            lines += 1;
        }
    }
    w.flush().expect("flush");
    (bytes, lines)
}

/// kvm_exit/kvm_entry pairs as `trace_pipe` prints them (5.10+ formats), four vCPU threads
/// on four CPUs, reasons in proportions a busy guest shows.
fn generate_events(path: &str, target_bytes: u64) -> (u64, u64) {
    const REASONS: &[(&str, u64)] = &[
        ("EPT_VIOLATION", 3_000),
        ("CPUID", 1_000),
        ("IO_INSTRUCTION", 9_000),
        ("MSR_WRITE", 800),
        ("EXTERNAL_INTERRUPT", 600),
        ("HLT", 40_000),
    ];
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create"));
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut ts = 1_000_000_000u64; // 1 s, in ns
    let mut line = String::with_capacity(256);
    while bytes < target_bytes {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let vcpu = rng % 4;
        let (reason, base) = REASONS[((rng >> 8) % REASONS.len() as u64) as usize];
        let handling = base + (rng >> 20) % base;
        let us = |t: u64| format!("{}.{:06}", t / 1_000_000_000, (t / 1000) % 1_000_000);
        line.clear();
        line.push_str(&format!(
            " CPU {vcpu}/KVM-{} [{vcpu:03}] d..1. {}: kvm_exit: vcpu {vcpu} reason {reason} rip 0xffffffff81000000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n CPU {vcpu}/KVM-{} [{vcpu:03}] d..1. {}: kvm_entry: vcpu {vcpu}, rip 0xffffffff81000002\n",
            2000 + vcpu,
            us(ts),
            2000 + vcpu,
            us(ts + handling)
        ));
        ts += handling + 500 + (rng >> 40) % 5_000;
        w.write_all(line.as_bytes()).expect("write");
        bytes += line.len() as u64;
        lines += 2;
    }
    w.flush().expect("flush");
    (bytes, lines)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time this thread has run, from the scheduler's own accounting (ns). On a shared
/// machine wall time also counts time the thread waited for a core.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn run(path: &str) -> (f64, f64, u64, u64) {
    let cpu0 = thread_cpu_ns();
    let t = Instant::now();
    let mut a = Analysis::new(AnalysisOptions::default());
    // The whole input path of `exitscope report`: sniffing and streaming through ingest.
    let s = exitscope_ingest::read_path(path, &mut a, &exitscope_ingest::Options::default())
        .expect("read")
        .summary;
    let report = a.finish();
    let secs = t.elapsed().as_secs_f64();
    let cpu_secs = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    assert_eq!(report.diagnostic_counts.errors, 0, "{:?}", report.diagnostics);
    assert!(report.roots > 0 || report.exits.as_ref().is_some_and(|e| e.exits > 0));
    (secs, cpu_secs, s.bytes, s.lines)
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only run when benchmarking.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: u64 =
        std::env::var("EXITSCOPE_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let dir = std::env::temp_dir().join(format!("exitscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    println!(
        "exitscope report throughput, one thread; load average: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    // Events first, so that the process's peak RSS is theirs.
    let events_mb: u64 = std::env::var("EXITSCOPE_BENCH_EVENTS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    if events_mb > 0 {
        let path = dir.join(format!("kvm-events-{events_mb}MB.txt"));
        let path = path.to_str().expect("utf-8 path");
        let (bytes, lines) = generate_events(path, events_mb * 1_000_000);
        let (secs, cpu, b, l) = run(path);
        assert_eq!((b, l), (bytes, lines));
        println!("kvm_exit/kvm_entry event text (4 vCPU threads, 6 reasons):");
        println!(
            "  {:>6.1} MB, {:>9} lines: wall {:>6.1} MB/s | per CPU-second {:>6.1} MB/s | peak RSS {} MB (goal < 100 MB)",
            bytes as f64 / 1e6,
            lines,
            bytes as f64 / 1e6 / secs,
            bytes as f64 / 1e6 / cpu,
            peak_rss_kb() / 1024
        );
        std::fs::remove_file(path).ok();
    }
    println!("seed-shaped function_graph text:");
    for size in [mb / 4, mb] {
        let path = dir.join(format!("seed-shaped-{size}MB.txt"));
        let path = path.to_str().expect("utf-8 path");
        let (bytes, lines) = generate(path, size * 1_000_000);
        // Warm the page cache, then measure the best of 3.
        let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let (secs, cpu, b, l) = run(path);
            assert_eq!((b, l), (bytes, lines));
            best = best.min(secs);
            best_cpu = best_cpu.min(cpu);
        }
        println!(
            "  {:>6.1} MB, {:>9} lines: wall {:>6.1} MB/s {:>5.2} M lines/s | per CPU-second {:>6.1} MB/s {:>5.2} M lines/s | peak RSS {} MB",
            bytes as f64 / 1e6,
            lines,
            bytes as f64 / 1e6 / best,
            lines as f64 / 1e6 / best,
            bytes as f64 / 1e6 / best_cpu,
            lines as f64 / 1e6 / best_cpu,
            peak_rss_kb() / 1024
        );
        std::fs::remove_file(path).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}
