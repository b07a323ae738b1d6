//! End-to-end tests of `exitscope report --exits` and `exitscope diff` against golden files.
//!
//! Goldens live in `tests/data/<case>/expected.*`; `EXITSCOPE_BLESS=1 cargo test` rewrites
//! them. A mismatch names `expected_file:line`.

mod common;

use common::{exitscope as run, ok_stdout as stdout_ok};

/// The one golden runner (`exitscope_testkit::golden`), arguments in this file's order.
fn golden(expected: &str, actual: &str) {
    exitscope_testkit::golden(actual, expected);
}

const AMD: &str = "tests/data/seed/cpuid-amd.fgraph.txt";
const INTEL: &str = "tests/data/seed/cpuid-intel.fgraph.txt";
const IOCTL: &str = "tests/data/ioctl-run/input.fgraph.txt";
const IOCTL_EVENTS: &str = "tests/data/ioctl-run-events/input.fgraph.txt";

fn exits_json(file: &str) -> String {
    let out = stdout_ok(&["report", "--exits", "--json", file]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    serde_json::to_string_pretty(&v["exits"]).unwrap() + "\n"
}

#[test]
fn report_exits_seed_goldens() {
    let amd = stdout_ok(&["report", "--exits", "--color", "never", AMD]);
    golden("tests/data/exits-seed/expected.amd.txt", &amd);
    golden(
        "tests/data/exits-seed/expected.intel.txt",
        &stdout_ok(&["report", "--exits", "--color", "never", INTEL]),
    );
    golden("tests/data/exits-seed/expected.amd.exits.json", &exits_json(AMD));
    golden("tests/data/exits-seed/expected.intel.exits.json", &exits_json(INTEL));
    // What the goldens must say, independent of layout.
    assert!(amd.contains("CPUID"));
    for v in ["4.278 us", "0.160 us", "2.265 us", "1.312 us", "0.541 us"] {
        assert!(amd.contains(v), "{v} missing:\n{amd}");
    }
    for (file, phases) in
        [(AMD, [160, 2265, 1312, 541, 4278]), (INTEL, [856, 2090, 1949, 789, 5684])]
    {
        let v: serde_json::Value =
            serde_json::from_str(&stdout_ok(&["report", "--exits", "--json", file])).unwrap();
        let r = &v["exits"]["reasons"][0];
        assert_eq!(r["reason"], "CPUID");
        assert_eq!(r["count"], 1);
        let got: Vec<u64> = ["before", "run", "after", "other", "total"]
            .iter()
            .map(|p| r[p]["mean_ns"].as_u64().unwrap())
            .collect();
        assert_eq!(got, phases, "{file}");
    }
}

/// The exit view is part of every report that has exits, `--exits` or not (it only picks the
/// terminal view).
#[test]
fn report_json_always_carries_the_exit_view() {
    let v: serde_json::Value =
        serde_json::from_str(&stdout_ok(&["report", "--json", AMD])).unwrap();
    assert_eq!(v["exits"]["exits"], 1);
    assert_eq!(v["exits"]["reasons"][0]["reason"], "CPUID");
    let plain: serde_json::Value = serde_json::from_str(&stdout_ok(&[
        "report",
        "--json",
        "tests/data/fgraph/duration-units.txt",
    ]))
    .unwrap();
    assert!(plain.get("exits").is_none(), "no run call, no kvm event: no exit view");
}

#[test]
fn report_exits_big_root_goldens() {
    golden(
        "tests/data/ioctl-run/expected.exits.txt",
        &stdout_ok(&["report", "--exits", "--color", "never", IOCTL]),
    );
    golden("tests/data/ioctl-run/expected.exits.json", &exits_json(IOCTL));
    let v: serde_json::Value = serde_json::from_str(&exits_json(IOCTL)).unwrap();
    assert_eq!((v["exits"].as_u64(), v["split_roots"].as_u64()), (Some(9), Some(2)));
    let reasons: Vec<(&str, u64)> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(reasons, [("CPUID", 6), ("IO", 2), ("EXTERNAL_INTERRUPT", 1)]);
}

#[test]
fn report_exits_with_event_comments() {
    golden(
        "tests/data/ioctl-run-events/expected.exits.txt",
        &stdout_ok(&["report", "--exits", "--color", "never", IOCTL_EVENTS]),
    );
    golden("tests/data/ioctl-run-events/expected.exits.json", &exits_json(IOCTL_EVENTS));
    let v: serde_json::Value = serde_json::from_str(&exits_json(IOCTL_EVENTS)).unwrap();
    let mut reasons: Vec<(String, u64)> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_string(), r["by_event"].as_u64().unwrap()))
        .collect();
    reasons.sort();
    // 0x403 is printed raw by an old kernel; above 0xff it can only be SVM's vmgexit.
    let want = ["CPUID", "EXTERNAL_INTERRUPT", "IO", "MMIO", "MSR_WRITE", "VMGEXIT"];
    assert_eq!(reasons.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), want);
    assert!(reasons.iter().all(|r| r.1 == 1), "{reasons:?}");
    // The exit view and the event table are two views of one statistic: they name every
    // reason alike, with the same counts.
    let names = |text: &str, col: usize| -> std::collections::BTreeSet<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let (first, c) = (*w.first()?, *w.get(col)?);
                want.contains(&first).then(|| (first.to_string(), c.to_string()))
            })
            .collect()
    };
    let phases = stdout_ok(&["report", "--exits", "--color", "never", IOCTL_EVENTS]);
    let table = stdout_ok(&["report", "--color", "never", IOCTL_EVENTS]);
    let in_phases = names(&phases, 1);
    // The event table of a graph without timestamps is its one summary line:
    // `VM exits in the function graph: 6 (CPUID 1, IO 1, ...)`.
    let summary = table.lines().find(|l| l.starts_with("VM exits in the function graph")).unwrap();
    let list = summary.split_once('(').and_then(|(_, r)| r.split_once(')')).unwrap().0;
    let in_table: std::collections::BTreeSet<(String, String)> = list
        .split(", ")
        .filter_map(|x| x.split_once(' ').map(|(r, c)| (r.to_string(), c.to_string())))
        .collect();
    assert_eq!(in_phases.len(), want.len(), "{phases}");
    assert_eq!(in_phases, in_table, "phase view:\n{phases}\nevent table:\n{table}");
}

#[test]
fn diff_seed_goldens() {
    let text = stdout_ok(&["diff", "--color", "never", AMD, INTEL]);
    golden("tests/data/diff-seed/expected.txt", &text);
    golden(
        "tests/data/diff-seed/expected.sort-delta.txt",
        &stdout_ok(&["diff", "--color", "never", "--sort", "delta", AMD, INTEL]),
    );
    let json = stdout_ok(&["diff", "--json", AMD, INTEL]);
    golden("tests/data/diff-seed/expected.json", &json);
    assert!(text.contains("positive means B is slower"));
    let first = text.lines().find(|l| l.contains("vcpu_enter_guest")).unwrap();
    for v in ["4.278 us (1)", "5.684 us (1)", "+1.406 us", "\u{d7}1.33"] {
        assert!(first.contains(v), "{v} missing in {first}");
    }
    assert!(text.contains("svm_vcpu_run [kvm_amd] \u{2194} vmx_vcpu_run [kvm_intel]"));
    assert!(text.contains("handle_exit [kvm_amd] \u{2194} vmx_handle_exit [kvm_intel]"));
    assert!(text.lines().any(|l| l.contains("vmx_sync_pir_to_irr") && l.contains("only in B")));

    // The JSON carries the same pairs.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 1);
    let root = &v["tree"][0];
    assert_eq!(
        (root["a"]["mean_ns"].as_u64(), root["b"]["mean_ns"].as_u64()),
        (Some(4278), Some(5684))
    );
    assert_eq!((root["delta_ns"].as_i64(), root["ratio"].as_f64()), (Some(1406), Some(1.3287)));
    let find = |n: &serde_json::Value, f: &str| -> Option<serde_json::Value> {
        fn walk(n: &serde_json::Value, f: &str) -> Option<serde_json::Value> {
            if n["a"]["function"] == f || n["b"]["function"] == f {
                return Some(n.clone());
            }
            n["children"].as_array()?.iter().find_map(|c| walk(c, f))
        }
        walk(n, f)
    };
    let run = find(root, "vmx_vcpu_run").unwrap();
    assert_eq!(
        (run["a"]["function"].as_str(), run["a"]["mean_ns"].as_u64()),
        (Some("svm_vcpu_run"), Some(2265))
    );
    assert_eq!(run["b"]["mean_ns"].as_u64(), Some(2090));
    let he = find(root, "vmx_handle_exit").unwrap();
    assert_eq!(
        (he["a"]["function"].as_str(), he["a"]["mean_ns"].as_u64()),
        (Some("handle_exit"), Some(1232))
    );
    assert_eq!(he["b"]["mean_ns"].as_u64(), Some(1840));
    assert_eq!(find(root, "vmx_sync_pir_to_irr").unwrap()["status"], "only_b");
    let slow = &v["tree"][1];
    let msr = find(slow, "__kvm_get_msr").unwrap();
    assert_eq!(
        (msr["status"].as_str(), msr["a"]["mean_ns"].as_u64(), msr["b"]["mean_ns"].as_u64()),
        (Some("both"), Some(1443), Some(3104))
    );
    let pmu = find(slow, "kvm_pmu_is_valid_msr").unwrap();
    assert_eq!(pmu["status"], "both");
}

#[test]
fn diff_big_root_against_seed_golden() {
    golden(
        "tests/data/ioctl-run/expected.diff-vs-seed-amd.txt",
        &stdout_ok(&["diff", "--color", "never", AMD, IOCTL]),
    );
}

#[test]
fn diff_fail_above_is_a_check() {
    let o = run(&["diff", "--fail-above", "10%", AMD, INTEL]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vcpu_enter_guest") && err.contains("+32.9%"), "{err}");
    assert!(!o.stdout.is_empty(), "the diff is still printed");
    let o = run(&["diff", "--fail-above", "150", AMD, INTEL]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["diff", "--fail-above", "ten", AMD, INTEL]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn diff_map_file_and_no_normalize() {
    let dir = std::env::temp_dir().join(format!("exitscope-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("map.toml");
    std::fs::write(
        &map,
        "[[alias]]\ncanonical = \"set_or_get_cr8\"\nfunctions = [\"kvm_set_cr8 [kvm]\", \"clear_atomic_switch_msr [kvm_intel]\"]\n",
    )
    .unwrap();
    let map_s = map.to_str().unwrap();
    let text = stdout_ok(&["diff", "--color", "never", "--map", map_s, AMD, INTEL]);
    assert!(
        text.contains("kvm_set_cr8 [kvm] \u{2194} clear_atomic_switch_msr [kvm_intel]"),
        "{text}"
    );
    std::fs::write(&map, "[[alias]]\ncanonical = \n").unwrap();
    let o = run(&["diff", "--map", map_s, AMD, INTEL]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("map.toml") && err.contains("line 2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);

    let raw = stdout_ok(&["diff", "--color", "never", "--no-normalize", AMD, INTEL]);
    assert!(raw.contains("names compared as they are"));
    assert!(raw.lines().any(|l| l.contains("svm_vcpu_run") && l.contains("only in A")));
    // Same trace twice: nothing differs.
    let same = stdout_ok(&["diff", "--json", "--no-normalize", AMD, AMD]);
    let v: serde_json::Value = serde_json::from_str(&same).unwrap();
    assert_eq!(v["tree"][0]["delta_ns"], 0);
}

#[test]
fn diff_bad_inputs_exit_2() {
    let o = run(&["diff", AMD, "tests/data/does-not-exist.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does-not-exist"));
    let o = run(&["diff", AMD]);
    assert_eq!(o.status.code(), Some(2));
}
