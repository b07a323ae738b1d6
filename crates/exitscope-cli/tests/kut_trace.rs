//! `exitscope record --kut` and `exitscope run --kut`: kvm-unit-tests' own `vmexit.flat`
//! booted in exitscope's VMM and traced (its vCPU threads only). The hardware tests need
//! root, tracefs, /dev/kvm and `../shared/kut/vmexit.flat` (or `EXITSCOPE_KUT_FLAT`); they
//! print `SKIP: <reason>` without them (a failure under `EXITSCOPE_REQUIRE_HW=1`).

mod common;

use std::path::PathBuf;

use common::{Need, TempDir, exitscope};
use serde_json::Value;

/// The image, when it and everything else the test needs are here.
fn flat() -> Option<String> {
    if common::skip_unless(&[Need::Kvm, Need::Tracefs]) {
        return None;
    }
    let path = std::env::var_os("EXITSCOPE_KUT_FLAT")
        .map_or_else(|| common::root().join("../shared/kut/vmexit.flat"), PathBuf::from);
    let test = std::thread::current().name().unwrap_or("test").to_owned();
    let missing =
        (!path.is_file()).then(|| format!("{} not found (set EXITSCOPE_KUT_FLAT)", path.display()));
    exitscope_testkit::skip_unless(&test, missing).then(|| path.to_string_lossy().into_owned())
}

fn tracefs_state() -> Vec<(String, String)> {
    ["current_tracer", "tracing_on", "set_event", "set_event_pid", "set_ftrace_pid"]
        .iter()
        .map(|f| {
            let p = format!("/sys/kernel/tracing/{f}");
            (f.to_string(), std::fs::read_to_string(p).unwrap_or_default())
        })
        .collect()
}

/// `TEST: N iterations in the guest` as `record --kut` and `run --kut` print it.
fn iterations(text: &str, test: &str) -> Option<u64> {
    let key = format!("{test}: ");
    text.match_indices(&key).find_map(|(at, _)| {
        let (n, tail) = text[at + key.len()..].split_once(' ')?;
        tail.starts_with("iterations in the guest").then(|| n.parse().ok())?
    })
}

/// Exits of `reason` in a report's JSON, and those on `key` (`port 0x4d0 in`).
fn exits(report: &Value, reason: &str, key: Option<&str>) -> u64 {
    let reasons = report["exits"]["reasons"].as_array().expect("exits.reasons");
    let Some(r) = reasons.iter().find(|r| r["reason"] == reason) else { return 0 };
    match key {
        None => r["count"].as_u64().unwrap(),
        Some(k) => r["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == k)
            .and_then(|n| n["count"].as_u64())
            .unwrap_or(0),
    }
}

#[test]
fn record_kut_traces_one_port_read_per_guest_iteration() {
    let Some(flat) = flat() else { return };
    let dir = TempDir::new("kut-record");
    let dat = dir.join("t.dat");
    let before = tracefs_state();
    let out =
        exitscope(&["record", "--kut", &flat, "inl_from_kernel", "-o", dat.to_str().unwrap()]);
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(tracefs_state(), before, "tracefs changed");
    // The guest's own lines, as they came, then its iteration count.
    assert!(stderr.lines().any(|l| l.starts_with("inl_from_kernel ")), "{stderr}");
    assert!(stderr.contains("QEMU status 1: PASS"), "{stderr}");
    let iters = iterations(&stderr, "inl_from_kernel").expect("the iteration line");

    let report = exitscope(&["report", "--json", dat.to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(0), "{}", common::stderr(&report));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    // ELCR reads (0x4d0) are inl_from_kernel's loop; each iteration is one exit, counted by
    // whichever source this kernel offers (function_graph or kvm_pio). Lost events, or
    // one of the boot's own reads, may move it a little.
    let elcr = exits(&report, "IO", Some("port 0x4d0 in"));
    let io = exits(&report, "IO", None);
    println!(
        "record --kut inl_from_kernel: {elcr} ELCR reads ({io} IO exits) for {iters} iterations"
    );
    let ratio = elcr as f64 / iters as f64;
    assert!((0.98..=1.02).contains(&ratio), "{elcr} ELCR exits for {iters} iterations");
    assert!(io >= elcr, "{io} {elcr}");
}

#[test]
fn run_kut_prints_the_guest_lines_and_the_explained_report() {
    let Some(flat) = flat() else { return };
    let dir = TempDir::new("kut-run");
    let before = tracefs_state();
    let out = exitscope(&["run", "--kut", &flat, "cpuid", "--color", "never", "-o", dir.str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(tracefs_state(), before, "tracefs changed");
    // Both boots' guest lines (untraced, then traced), then the report.
    let guest: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_once(' ').is_some_and(|(n, c)| n == "cpuid" && c.parse::<u64>().is_ok())
        })
        .collect();
    assert_eq!(guest.len(), 2, "{stdout}");
    let header = stdout.find("# exitscope run --kut").expect("the report's header");
    assert!(stdout.find("# traced boot").unwrap() < header, "{stdout}");
    assert!(stdout.contains("# bench cpuid, untraced:"), "{stdout}");
    assert!(stdout.contains("# bench cpuid, traced"), "{stdout}");
    assert!(
        stdout.contains("recorded kvm tracepoints") || stdout.contains("recorded function_graph"),
        "{stdout}"
    );
    for f in ["trace.dat", "bench.json", "traced-bench.json", "report.json", "report.html"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let (untraced, traced, report) =
        (read("bench.json"), read("traced-bench.json"), read("report.json"));
    assert_eq!(untraced["source"], "kvm-unit-tests");
    assert_eq!(untraced["results"][0]["status"], "ok");
    let t = &traced["kut"]["boots"][0]["tests"][0];
    assert_eq!(t["name"], "cpuid");
    let iters = t["window_iterations"].as_u64().expect("the guest's iterations");
    assert_eq!(iterations(&stdout, "cpuid"), Some(iters), "{stdout}");
    // Every guest CPUID is one exit (the boot adds a few of its own).
    let cpuid = exits(&report, "CPUID", None);
    println!("run --kut cpuid: {cpuid} CPUID exits for {iters} traced iterations");
    let ratio = cpuid as f64 / iters as f64;
    assert!((0.98..=1.02).contains(&ratio), "{cpuid} CPUID exits for {iters} iterations");
    // The console and firmware ports are the VMM's harness, not the experiment.
    assert!(report["exits"]["harness_exits"].as_u64().unwrap() > 0, "{}", report["exits"]);
}

#[test]
fn kut_usage_errors_are_caught_before_tracing() {
    for args in [
        &["run", "--kut", "/nonexistent/vmexit.flat", "cpuid"][..],
        &["record", "--kut", "/nonexistent/vmexit.flat", "cpuid"],
        &["record", "--kut", "x.flat", "--repeat", "2", "cpuid"],
        &["record", "--kut", "x.flat", "--pid", "1"],
        &["record", "--kut", "x.flat", "--", "true"],
        &["record", "inl_from_kernel"],
        &["run", "--kut", "x.flat", "--cpl", "0", "cpuid"],
        &["run", "--kut", "x.flat", "--smp", "0", "cpuid"],
        &["run", "cpuid", "inl_from_kernel"],
        &["run", "--smp", "2", "cpuid"],
    ] {
        let out = exitscope(args);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("recording"), "{args:?}: nothing may be recorded: {err}");
    }
    let out = exitscope(&["run", "--kut", "/nonexistent/vmexit.flat", "cpuid"]);
    assert!(common::stderr(&out).contains("/nonexistent/vmexit.flat"));
}
