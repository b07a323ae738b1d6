//! End-to-end tests of `exitscope report`: the seed's numbers, golden outputs for every
//! function_graph format variant, bad input, and the corpus of real captures.

mod common;

use common::{exitscope, golden, ok_stdout, root};
use serde_json::Value;

fn node<'a>(tree: &'a Value, function: &str) -> &'a Value {
    fn walk<'a>(n: &'a Value, f: &str) -> Option<&'a Value> {
        if n["function"] == f {
            return Some(n);
        }
        n["children"].as_array()?.iter().find_map(|c| walk(c, f))
    }
    let found = match tree.as_array() {
        Some(roots) => roots.iter().find_map(|r| walk(r, function)),
        None => walk(tree, function),
    };
    found.unwrap_or_else(|| panic!("no {function}"))
}

#[test]
fn seed_amd_json_has_the_seed_numbers() {
    let out = ok_stdout(&["report", "--json", "tests/data/seed/cpuid-amd.fgraph.txt"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 1);
    let tree = &v["tree"];
    let veg = node(tree, "vcpu_enter_guest");
    assert_eq!((veg["total_ns"].as_u64(), veg["self_ns"].as_u64()), (Some(4278), Some(541)));
    assert_eq!(veg["module"], "kvm");
    assert_eq!(node(veg, "svm_vcpu_run")["total_ns"], 2265);
    let root_ci =
        tree.as_array().unwrap().iter().find(|n| n["function"] == "cpuid_interception").unwrap();
    assert_eq!(root_ci["count"], 2);
    assert_eq!(root_ci["min_ns"], 1082);
    assert_eq!(root_ci["max_ns"], 2525);
    assert_eq!(root_ci["total_ns"], 3607);
    for key in ["incomplete", "orphans", "lost_events", "diagnostics"] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    golden(&out, "tests/data/seed/expected/report-amd.json");
}

#[test]
fn seed_intel_json_has_the_seed_numbers() {
    let out = ok_stdout(&["report", "--json", "tests/data/seed/cpuid-intel.fgraph.txt"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["total_ns"], 5684);
    let kec = v["tree"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["function"] == "kvm_emulate_cpuid")
        .unwrap();
    assert_eq!(
        (kec["count"].as_u64(), kec["min_ns"].as_u64(), kec["max_ns"].as_u64()),
        (Some(2), Some(1704), Some(5116))
    );
    golden(&out, "tests/data/seed/expected/report-intel.json");
}

#[test]
fn seed_terminal_tree_looks_like_the_seed() {
    let out = ok_stdout(&["report", "--color", "never", "tests/data/seed/cpuid-amd.fgraph.txt"]);
    assert!(out.contains("4.278 us    0.541 us  100.0%  vcpu_enter_guest [kvm]() {"), "{out}");
    golden(&out, "tests/data/seed/expected/report-amd.txt");
    let flat = ok_stdout(&[
        "report",
        "--flat",
        "--color",
        "never",
        "tests/data/seed/cpuid-intel.fgraph.txt",
    ]);
    golden(&flat, "tests/data/seed/expected/report-intel-flat.txt");
}

#[test]
fn both_seed_files_and_stdin_together() {
    let input = std::fs::read(root().join("tests/data/seed/cpuid-intel.fgraph.txt")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exitscope"))
        .args(["report", "--json", "tests/data/seed/cpuid-amd.fgraph.txt", "-"])
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(v["inputs"][1]["name"], "-");
    let veg =
        v["tree"].as_array().unwrap().iter().find(|n| n["function"] == "vcpu_enter_guest").unwrap();
    assert_eq!(
        (veg["count"].as_u64(), veg["min_ns"].as_u64(), veg["max_ns"].as_u64()),
        (Some(2), Some(4278), Some(5684))
    );
}

/// Every fixture in tests/data/fgraph: JSON and terminal tree against goldens.
#[test]
fn format_variant_goldens() {
    let dir = root().join("tests/data/fgraph");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".txt") && !n.contains(".expected"))
        .collect();
    names.sort();
    assert!(names.len() >= 17, "{names:?}");
    for name in names {
        let rel = format!("tests/data/fgraph/{name}");
        let stem = name.trim_end_matches(".txt");
        let out = exitscope(&["report", "--json", &rel]);
        assert!(out.status.success(), "{rel}: {}", String::from_utf8_lossy(&out.stderr));
        let json = String::from_utf8(out.stdout).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["diagnostic_counts"]["errors"], 0, "{rel}: {}", v["diagnostics"]);
        golden(&json, &format!("tests/data/fgraph/expected/{stem}.json"));
        let tree = ok_stdout(&["report", "--color", "never", &rel]);
        golden(&tree, &format!("tests/data/fgraph/expected/{stem}.tree"));
    }
}

#[test]
fn variant_facts_that_matter() {
    let j = |f: &str| -> Value {
        serde_json::from_str(&ok_stdout(&["report", "--json", &format!("tests/data/fgraph/{f}")]))
            .unwrap()
    };
    // trace_pipe: orphans at the start, one exit cut by LOST, an incomplete one at the end.
    let v = j("trace-pipe.txt");
    assert_eq!(v["orphans"]["count"], 3);
    assert_eq!(v["lost_events"]["events"], 37);
    assert_eq!(v["roots"], 1);
    assert_eq!(v["incomplete"]["count"], 4);
    // Overhead marks never change the number.
    let v = j("overhead-marks.txt");
    assert_eq!(node(&v["tree"], "dollar")["total_ns"], 3_594_274_000u64);
    assert_eq!(node(&v["tree"], "star")["total_ns"], 12_202_930u64);
    // No duration column: counts, null times.
    let v = j("no-duration.txt");
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["count"], 1);
    assert!(node(&v["tree"], "vcpu_enter_guest")["total_ns"].is_null());
    // Units.
    let v = j("duration-units.txt");
    assert_eq!(node(&v["tree"], "slow")["total_ns"], 1_500_000);
    assert_eq!(node(&v["tree"], "sleepy")["total_ns"], 2_000_000_000u64);
    assert_eq!(node(&v["tree"], "tiny")["total_ns"], 999);
    // Task switches: 4321 resumes and closes its own schedule(); 4322 migrates to CPU 1 and
    // closes vcpu_enter_guest there.
    let v = j("task-switch.txt");
    assert_eq!(node(&v["tree"], "schedule")["total_ns"], 9800);
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["total_ns"], 4278);
    assert_eq!(v["orphans"]["count"], 2, "4322's returns at the top have no entry");
    // Interrupts nested without markers are not the interrupted function's self time.
    let v = j("nested-irq.txt");
    assert_eq!(node(&v["tree"], "kvm_cpuid")["self_ns"], 500);
    assert_eq!(node(&v["tree"], "__sysvec_apic_timer_interrupt")["interrupt"], true);
    // Proc column: two tasks interleaved on two CPUs.
    let v = j("proc-column.txt");
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["self_ns"], 5684 - 2090 - 1840);
}

/// Issue 13: the classes real captures contain, one fixture each (goldens above), with the
/// numbers that matter asserted here.
#[test]
fn issue_13_classes() {
    let j = |f: &str| -> Value {
        serde_json::from_str(&ok_stdout(&["report", "--json", &format!("tests/data/fgraph/{f}")]))
            .unwrap()
    };
    let warnings = |v: &Value| -> Vec<String> {
        v["diagnostics"].as_array().unwrap().iter().map(|d| d["message"].to_string()).collect()
    };
    // (1) The interrupt printed before svm_vcpu_run's entry is inside it, once: the caller's
    // children no longer exceed it, and svm_vcpu_run's self time excludes the 325.2 µs.
    let v = j("irq-race-before-entry.txt");
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["self_ns"], 1000);
    let run = node(&v["tree"], "svm_vcpu_run");
    assert_eq!((run["total_ns"].as_u64(), run["self_ns"].as_u64()), (Some(328_700), Some(2500)));
    assert_eq!(run["children"][1]["function"], "__sysvec_apic_timer_interrupt");
    let w = warnings(&v);
    assert_eq!(w.len(), 1, "said once: {w:?}");
    assert!(w[0].contains("placed inside that call"), "{w:?}");
    // (1) The interrupt printed inside a 14 µs call it came after is placed after it.
    let v = j("irq-race-after-return.txt");
    let cpuid = node(&v["tree"], "kvm_emulate_cpuid");
    assert_eq!(
        (cpuid["self_ns"].as_u64(), cpuid["children"].as_array().unwrap().len()),
        (Some(13_200), 1)
    );
    assert_eq!(node(&v["tree"], "vcpu_enter_guest")["self_ns"], 3000);
    assert!(warnings(&v)[0].contains("placed after that call"));
    // (3) Every line with a timestamp and an event is read; pairs made where possible.
    let v = j("events-trimmed-columns.txt");
    assert_eq!(v["inputs"][0]["error_lines"], 0);
    assert_eq!(
        (v["events"]["kvm_exit"].as_u64(), v["events"]["kvm_entry"].as_u64()),
        (Some(7), Some(6))
    );
    let reasons = v["exits"]["reasons"].as_array().unwrap();
    let paired: u64 = reasons.iter().map(|r| r["handling"]["count"].as_u64().unwrap()).sum();
    assert_eq!((paired, v["exits"]["unpaired_exits"].as_u64()), (6, Some(1)));
    // (7) Valid lines are not unreadable: ftrace_dump latency format, function tracer,
    // trace-cmd report of an instance buffer (its lost-event markers counted).
    for (f, n) in
        [("ftrace-dump-latency.txt", 6), ("function-tracer.txt", 8), ("trace-cmd-instance.txt", 8)]
    {
        let v = j(f);
        assert_eq!(v["inputs"][0]["error_lines"], 0, "{f}");
        assert_eq!(v["inputs"][0]["records"], n, "{f}");
    }
    assert_eq!(j("function-tracer.txt")["events"]["function"], 7);
    let v = j("trace-cmd-instance.txt");
    assert_eq!(
        (v["lost_events"]["markers"].as_u64(), v["lost_events"]["events"].as_u64()),
        (Some(2), Some(17))
    );
    // (8) `} /* putname() */` closes putname: one root, nothing incomplete or orphaned.
    let v = j("tail-comment-parens.txt");
    assert_eq!(
        (v["roots"].as_u64(), v["incomplete"]["count"].as_u64(), v["orphans"]["count"].as_u64()),
        (Some(1), Some(0), Some(0))
    );
}

#[test]
fn bad_lines_are_reported_with_place_and_skipped_or_fatal_with_strict() {
    let dir = tempdir();
    let p = dir.join("bad.txt");
    std::fs::write(&p, " 0)   0.080 us    |  f();\n 0)   0.0x0 us    |  g();\n").unwrap();
    let p = p.to_str().unwrap();
    let out = exitscope(&["report", "--json", p]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt:2:7: error: expected a duration"), "{err}");
    assert!(err.contains("--strict"), "{err}");
    let out = exitscope(&["report", "--strict", p]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn not_a_trace_empty_binary_missing_are_clear_errors() {
    let dir = tempdir();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = exitscope(&["report", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));

    let prose = dir.join("prose.txt");
    std::fs::write(&prose, "Dear colleague,\nplease find the trace attached.\n").unwrap();
    let out = exitscope(&["report", prose.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no trace: none of its 2 lines"));

    let bin = dir.join("junk.bin");
    let junk: Vec<u8> =
        (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&bin, junk).unwrap();
    let out = exitscope(&["report", bin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    // Mostly not a trace (a script with a few `f() {` lines): read, but with a warning.
    let mostly = dir.join("page.js");
    std::fs::write(&mostly, "function f() {\n  var x = 1;\n  let y = 2;\n  g();\n}\n").unwrap();
    let out = exitscope(&["report", mostly.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is it an ftrace trace?"));

    let out = exitscope(&["report", "/nonexistent/trace.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/trace.txt"));

    let out = exitscope(&["report", "--no-such-flag", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn corpus_of_real_captures_parses_cleanly() {
    let dir = root().join("../shared/corpus/fgraph");
    if !dir.is_dir() {
        if std::env::var_os("EXITSCOPE_REQUIRE_CORPUS").is_some() {
            panic!("corpus missing at {}", dir.display());
        }
        println!("SKIP: corpus not found at {} (it lives beside the repository)", dir.display());
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 12);
    for f in &files {
        let out = exitscope(&["report", "--json", f.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["diagnostic_counts"]["errors"], 0, "{}: {}", f.display(), v["diagnostics"]);
        let name = f.file_name().unwrap().to_str().unwrap();
        match &name[..2] {
            // max_graph_depth cut: 1 s sleeps with the old 7-digit padding.
            "02" => assert_eq!(node(&v["tree"], "do_nanosleep")["total_ns"], 1_000_154_000u64),
            // No duration column at all.
            // No duration column, and the excerpt ends inside do_sys_open: the root is
            // incomplete and its finished children are counted as discarded, not analysed.
            "03" => {
                assert_eq!(v["incomplete"]["functions"][0]["function"], "do_sys_open");
                assert!(v["incomplete"]["discarded_calls"].as_u64().unwrap() >= 10);
                assert_eq!(v["roots"], 0);
            }
            // Starts mid-call: orphan returns, and xen upcalls nested as interrupts.
            "04" => {
                assert!(v["orphans"]["count"].as_u64().unwrap() > 0);
                assert_eq!(node(&v["tree"], "xen_evtchn_do_upcall")["interrupt"], true);
            }
            // Exit-only (tracing_thresh): every line an orphan with a name.
            "06" => assert_eq!(v["orphans"]["count"], 6),
            // trace-cmd report rendering.
            "09" => assert_eq!(node(&v["tree"], "do_IRQ")["count"], 5),
            // perf ftrace with a TAB prefix; the excerpt ends inside the irq handler.
            "25" => {
                assert_eq!(v["orphans"]["count"], 1);
                let cut: Vec<&str> = v["incomplete"]["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["function"].as_str().unwrap())
                    .collect();
                assert!(cut.contains(&"smp_irq_work_interrupt"), "{cut:?}");
            }
            "26" => assert_eq!(node(&v["tree"], "__kmalloc")["count"], 3),
            _ => {}
        }
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "exitscope-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
