//! Throughput of `exitscope report`'s pipeline (parse + call trees + statistics), on one
//! thread and with the parallel text reader on two.
//!
//! First a kvm_exit/kvm_entry event trace (four vCPU threads, several exit reasons; size
//! `EXITSCOPE_BENCH_EVENTS_MB`, default 1000), whose peak resident memory is printed before
//! anything else runs: the exit statistics keep bounded histograms, never every duration, so
//! it must stay far below 100 MB however long the trace. Then seed-shaped function_graph
//! traces (the AMD and Intel `vcpu_enter_guest` exits of `tests/data/seed`, with varying
//! durations, several CPUs and the occasional task-switch banner) of two sizes. Both come from
//! `exitscope_testkit::synth`. Each is analysed from a file; MB/s, lines/s and the peak
//! resident memory are printed.
//!
//! With two threads (`jobs 2`) the line the figures print also shows the CPU time of the
//! consumer (this thread: the analysis, which stays sequential) and of the whole process: on
//! an idle two-core machine the wall time is at least the larger of the consumer's time and
//! half the total, which is the speedup bound printed, whatever load the machine had.
//!
//! `cargo bench -p exitscope-cli --bench report_throughput` (size: `EXITSCOPE_BENCH_MB`, default
//! 400; the small run is a quarter of it).

use std::fs::File;
use std::time::Instant;

use exitscope_analyze::{Analysis, AnalysisOptions};

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

/// CPU time of the whole process, every thread (user + system, ns).
fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |v: libc::timeval| {
        u64::try_from(v.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(v.tv_usec).unwrap_or(0) * 1000
    };
    t(u.ru_utime) + t(u.ru_stime)
}

struct Run {
    wall: f64,
    /// This thread's CPU seconds (the consumer with jobs > 1).
    cpu: f64,
    /// The process's CPU seconds.
    total_cpu: f64,
    bytes: u64,
    lines: u64,
    json: String,
}

fn run(path: &str, jobs: usize) -> Run {
    let (cpu0, all0) = (thread_cpu_ns(), process_cpu_ns());
    let t = Instant::now();
    let mut a = Analysis::new(AnalysisOptions::default());
    // The whole input path of `exitscope report`: sniffing, then streaming through a buffer
    // (one job) or the mapped file in chunks (more).
    let mut opts = exitscope_ingest::Options::default();
    opts.jobs = jobs;
    let s = exitscope_ingest::read_path(path, &mut a, &opts).expect("read").summary;
    let report = a.finish();
    let wall = t.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    let total_cpu = (process_cpu_ns() - all0) as f64 / 1e9;
    assert_eq!(report.diagnostic_counts.errors, 0, "{:?}", report.diagnostics);
    assert!(report.roots > 0 || report.exits.as_ref().is_some_and(|e| e.exits > 0));
    let json = serde_json::to_string(&report).expect("json");
    Run { wall, cpu, total_cpu, bytes: s.bytes, lines: s.lines, json }
}

/// The figures of a one-thread and a two-thread run of the same file.
fn print_pair(bytes: u64, lines: u64, one: &Run, two: &Run) {
    let mb = bytes as f64 / 1e6;
    println!(
        "  {:>6.1} MB, {:>9} lines, -j 1: wall {:>6.1} MB/s {:>5.2} M lines/s | per CPU-second {:>6.1} MB/s {:>5.2} M lines/s",
        mb,
        lines,
        mb / one.wall,
        lines as f64 / 1e6 / one.wall,
        mb / one.cpu,
        lines as f64 / 1e6 / one.cpu,
    );
    let bound = two.cpu.max(two.total_cpu / 2.0);
    println!(
        "  {:>28} -j 2: wall {:>6.1} MB/s ({:.2}x) | CPU {:.2} s in all, consumer {:.2} s: on 2 idle cores >= {:.0} MB/s ({:.2}x of -j 1's CPU time)",
        "",
        mb / two.wall,
        one.wall / two.wall,
        two.total_cpu,
        two.cpu,
        mb / bound,
        one.cpu / bound,
    );
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
        let (bytes, lines) = exitscope_testkit::synth::events(
            &mut File::create(path).expect("create"),
            events_mb * 1_000_000,
        )
        .expect("write");
        let one = run(path, 1);
        assert_eq!((one.bytes, one.lines), (bytes, lines));
        println!("kvm_exit/kvm_entry event text (4 vCPU threads, 6 reasons):");
        println!(
            "  {:>6.1} MB, {:>9} lines: peak RSS {} MB after one thread (goal < 100 MB)",
            bytes as f64 / 1e6,
            lines,
            peak_rss_kb() / 1024
        );
        let two = run(path, 2);
        assert!(one.json == two.json, "-j 2 report differs from -j 1");
        print_pair(bytes, lines, &one, &two);
        std::fs::remove_file(path).ok();
    }
    println!("seed-shaped function_graph text:");
    for size in [mb / 4, mb] {
        let path = dir.join(format!("seed-shaped-{size}MB.txt"));
        let path = path.to_str().expect("utf-8 path");
        let (bytes, lines) = exitscope_testkit::synth::fgraph(
            &mut File::create(path).expect("create"),
            size * 1_000_000,
        )
        .expect("write");
        // Warm the page cache, then keep the best of 3 of each.
        let best = |jobs| {
            let mut best: Option<Run> = None;
            for _ in 0..3 {
                let r = run(path, jobs);
                assert_eq!((r.bytes, r.lines), (bytes, lines));
                if best.as_ref().is_none_or(|b| r.wall < b.wall) {
                    best = Some(r);
                }
            }
            best.expect("three runs")
        };
        let (one, two) = (best(1), best(2));
        assert!(one.json == two.json, "-j 2 report differs from -j 1");
        print_pair(bytes, lines, &one, &two);
        println!("  {:>28} peak RSS {} MB", "", peak_rss_kb() / 1024);
        std::fs::remove_file(path).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}
