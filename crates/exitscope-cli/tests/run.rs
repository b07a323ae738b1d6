//! `exitscope run` on this machine: the whole experiment (bench + record + report). Needs root,
//! tracefs and /dev/kvm; prints `SKIP: <reason>` without them (a failure under
//! `EXITSCOPE_REQUIRE_HW=1`).

mod common;

use common::{Need, exitscope};

fn skip() -> bool {
    common::skip_unless(&[Need::Kvm, Need::Tracefs])
}

fn tracefs_state() -> Vec<(String, String)> {
    ["current_tracer", "tracing_on", "set_event", "set_event_pid", "buffer_size_kb"]
        .iter()
        .map(|f| {
            let p = format!("/sys/kernel/tracing/{f}");
            (f.to_string(), std::fs::read_to_string(p).unwrap_or_default())
        })
        .collect()
}

/// `exits_per_iteration` of `test` in a bench JSON document.
fn exits_per_iteration(bench: &serde_json::Value, test: &str) -> f64 {
    let results = bench["results"].as_array().expect("bench results");
    let r = results.iter().find(|r| r["test"] == test).expect("the test's result");
    r["exits_per_iteration"].as_f64().expect("a number")
}

/// The exits/iter figure of `# bench TEST, untraced: ... N exits/iter` in `run`'s output.
fn printed_exits_per_iteration(stdout: &str, test: &str) -> Option<f64> {
    let line = stdout.lines().find(|l| l.starts_with(&format!("# bench {test}, untraced:")))?;
    let before = line.split(" exits/iter").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

#[test]
fn run_records_explains_and_keeps_its_files() {
    if skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("exitscope-runtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let before = tracefs_state();
    let out =
        exitscope(&["run", "inl_from_kernel", "--color", "never", "-o", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(tracefs_state(), before, "tracefs changed");
    assert!(stdout.contains("# bench inl_from_kernel, untraced:"), "{stdout}");
    assert!(stdout.contains("# bench inl_from_kernel, traced"), "{stdout}");
    // Hardware figure: an occasional timer or host interrupt exit moves it off 1.00, so it is
    // read from the bench's JSON and checked against a tolerance, never as printed text.
    let bench: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    let per_iter = exits_per_iteration(&bench, "inl_from_kernel");
    println!("run inl_from_kernel: {per_iter:.4} exits/iter");
    assert!((0.95..=1.05).contains(&per_iter), "{per_iter} exits/iter\n{stdout}");
    for f in ["trace.dat", "bench.json", "traced-bench.json", "report.json", "report.html"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let reasons = &report["exits"]["reasons"];
    let io = reasons.as_array().unwrap().iter().find(|r| r["reason"] == "IO");
    let io_count = io.and_then(|r| r["count"].as_u64()).unwrap_or(0);
    // Every iteration of the traced run's measured loop made one port read (calibration rounds
    // made more), however many fit into the loop on a loaded machine.
    let traced: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("traced-bench.json")).unwrap())
            .unwrap();
    let iterations = traced["results"][0]["iterations"].as_u64().unwrap();
    assert!(
        io_count >= iterations && iterations >= 64,
        "{io_count} IO, {iterations} iterations: {reasons}"
    );
    // The harness's own signalling port I/O is kept apart, not counted as the experiment's.
    assert!(report["exits"]["harness_exits"].as_u64().unwrap() >= 1, "{}", report["exits"]);
    // Either mode is fine; it must say which one ran.
    assert!(
        stdout.contains("recorded kvm tracepoints") || stdout.contains("recorded function_graph")
    );
    println!("run inl_from_kernel: {io_count} IO exits recorded");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_without_output_dir_leaves_no_files_and_explains_silent_exits() {
    if skip() {
        return;
    }
    let run_dirs = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("exitscope-run-"))
            .collect()
    };
    let before = run_dirs();
    let out = exitscope(&["run", "cpuid", "--color", "never"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# bench cpuid, untraced:"), "{stdout}");
    // On hosts where CPUID does not exit to this KVM the bench says so. The figure is parsed
    // from the printed line with a tolerance (a stray interrupt exit is not a CPUID exit).
    let per_iter = printed_exits_per_iteration(&stdout, "cpuid");
    println!("run cpuid: {per_iter:?} exits/iter");
    if per_iter.is_some_and(|e| e < 0.05) {
        assert!(stdout.contains("does not exit"), "{stdout}");
    }
    let after = run_dirs();
    assert!(
        after.is_subset(&before),
        "temporary run directories left: {:?}",
        after.difference(&before)
    );
}

#[test]
fn run_unknown_test_is_a_usage_error_before_tracing() {
    let out = exitscope(&["run", "no_such_test"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown test \"no_such_test\"") && err.contains("inl_from_kernel"),
        "{err}"
    );
    assert!(!err.contains("recording"), "nothing may be recorded: {err}");
}
