//! `exitscope compare A B` end to end, on fixed bench results (`tests/data/compare/`, see
//! its README entry) so the verdicts are deterministic, plus one live pair on this host.

use std::process::Command;

use serde_json::Value;

mod common;

use common::{TempDir, exitscope, json, stderr as err, stdout as text};

fn data(name: &str) -> String {
    exitscope_testkit::workspace_root()
        .join("tests/data/compare")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn rows(c: &Value) -> &Vec<Value> {
    c["rows"].as_array().unwrap()
}

#[test]
fn two_runs_of_the_same_bench_here() {
    // Relative paths, so the golden does not depend on where the workspace is.
    let (a, b) = ("tests/data/compare/pvm-a.bench.json", "tests/data/compare/pvm-b.bench.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_exitscope"))
            .args(args)
            .current_dir(exitscope_testkit::workspace_root())
            .output()
            .unwrap()
    };
    let out = run(&["compare", "--json", a, b]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let c = json(&out);
    // Same machine, same settings, one run after the other.
    assert_eq!(c["unlike"], serde_json::json!([]), "{}", c["environment"]);
    let measured: Vec<&Value> = rows(&c).iter().filter(|r| r["shift"].is_object()).collect();
    assert_eq!(measured.len(), 7, "{c}");
    for r in &measured {
        assert_eq!((r["a"]["n"].as_u64(), r["b"]["n"].as_u64()), (Some(10), Some(10)), "{r}");
        // No test got significantly slower (the empty loop is not gated).
        assert!(r["verdict"] != "slower" || r["gated"] == false, "{r}");
    }
    let verdict = |name: &str| {
        measured.iter().find(|r| r["name"] == name).map(|r| r["verdict"].as_str().unwrap())
    };
    // The exits KVM handles in this kernel and in exitscope's VMM: no significant difference.
    for t in ["inl_from_kernel", "outl_to_kernel", "inl_from_vmm", "mmio_from_vmm"] {
        assert_eq!(verdict(t), Some("no-significant-difference"), "{t}");
    }
    // A gate at 5 % passes.
    let gate = run(&["compare", "--fail-above", "5%", a, b]);
    assert_eq!(gate.status.code(), Some(0), "{}{}", text(&gate), err(&gate));
    exitscope_testkit::golden(&text(&gate), "tests/data/compare/expected/pvm-a-vs-b.txt");
}

/// A's document with every sample of every test multiplied by `factor`.
fn scaled(a: &str, factor: f64) -> String {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(a).unwrap()).unwrap();
    for r in doc["results"].as_array_mut().unwrap() {
        if let Some(samples) = r["samples"].as_array_mut() {
            for s in samples {
                *s = Value::from(s.as_f64().unwrap() * factor);
            }
        }
    }
    doc.to_string()
}

#[test]
fn every_sample_ten_percent_slower_is_reported_slower() {
    let a = data("pvm-a.bench.json");
    let dir = TempDir::new("slower");
    let b = dir.arg("b.json");
    std::fs::write(&b, scaled(&a, 1.1)).unwrap();
    let c = json(&exitscope(&["compare", "--json", &a, &b]));
    let positive: Vec<&Value> =
        rows(&c).iter().filter(|r| r["a"]["median"].as_f64().is_some_and(|m| m > 100.0)).collect();
    assert!(positive.len() >= 4, "{c}");
    for r in &positive {
        assert_eq!(r["verdict"], "slower", "{r}");
        let ci = &r["shift"]["ci"];
        assert!(ci["low"].as_f64().unwrap() > 0.0, "interval must exclude 0: {r}");
        assert!((r["ratio"].as_f64().unwrap() - 1.1).abs() < 1e-9, "{r}");
    }
    // --fail-above: a significant 10 % regression fails a 5 % gate, not a 20 % one.
    let gate = exitscope(&["compare", "--fail-above", "5%", &a, &b]);
    assert_eq!(gate.status.code(), Some(1), "{}", err(&gate));
    assert!(err(&gate).contains("significantly slower than A by more than 5%"), "{}", err(&gate));
    assert!(err(&gate).contains(positive[0]["name"].as_str().unwrap()), "{}", err(&gate));
    assert_eq!(exitscope(&["compare", "--fail-above", "20", &a, &b]).status.code(), Some(0));
    // Faster is never a failure.
    assert_eq!(exitscope(&["compare", "--fail-above", "0", &b, &a]).status.code(), Some(0));
}

#[test]
fn pvm_against_a_vmx_host_is_an_unlike_comparison() {
    let out = exitscope(&["compare", &data("pvm-a.bench.json"), &data("vmx-spr.bench.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let t = text(&out);
    let warning = t.lines().find(|l| l.starts_with("warning: unlike comparison: different "));
    let warning = warning.unwrap_or_else(|| panic!("no unlike warning in\n{t}"));
    for what in [
        "CPU model",
        "microcode",
        "kernel",
        "virtualization",
        "mitigations",
        "KVM module",
        "KVM parameters",
    ] {
        assert!(warning.contains(what), "{what} missing: {warning}");
    }
    // The environment comes before the table.
    assert!(t.find("unlike comparison").unwrap() < t.find("A median").unwrap());
    assert!(t.contains("cpu.microcode") && t.contains("0x1000065 → 0x2b0005c0"), "{t}");
    assert!(t.contains("PVM → bare metal"), "{t}");
    // CPL3 here, CPL0 there: said per test.
    assert!(t.contains("note: inl_from_vmm: A ran at CPL3, B at CPL0"), "{t}");
    let c = json(&exitscope(&[
        "compare",
        "--json",
        &data("pvm-a.bench.json"),
        &data("vmx-spr.bench.json"),
    ]));
    assert!(c["unlike"].as_array().unwrap().len() >= 7, "{}", c["unlike"]);
}

#[test]
fn run_directories_and_bad_inputs() {
    let dir = TempDir::new("inputs");
    std::fs::create_dir_all(dir.arg("run-a")).unwrap();
    std::fs::copy(data("pvm-a.bench.json"), dir.arg("run-a/bench.json")).unwrap();
    let out = exitscope(&["compare", &dir.arg("run-a"), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert!(text(&out).contains("run-a/bench.json"), "{}", text(&out));

    std::fs::create_dir_all(dir.arg("empty")).unwrap();
    let out = exitscope(&["compare", &dir.arg("empty"), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("no bench.json in this directory, nor trace.dat"), "{}", err(&out));

    let trace = exitscope_testkit::workspace_root().join("tests/data/seed/cpuid-amd.fgraph.txt");
    let out = exitscope(&["compare", trace.to_str().unwrap(), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err(&out).contains("cpuid-amd.fgraph.txt is a trace and")
            && err(&out).contains("is a bench result: compare two of a kind"),
        "{}",
        err(&out)
    );
    let not_json = dir.arg("broken.json");
    std::fs::write(&not_json, "{ \"results\": [ }").unwrap();
    let out = exitscope(&["compare", &not_json, &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("broken.json:1:"), "{}", err(&out));

    let out = exitscope(&["compare", &dir.arg("missing.json"), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("missing.json"), "{}", err(&out));
    assert_eq!(exitscope(&["compare", "--fail-above", "x", "a", "b"]).status.code(), Some(2));
}

#[test]
fn live_pair_on_this_host_is_alike() {
    let kvm = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm");
    let missing = kvm.err().map(|e| format!("/dev/kvm unusable: {e}"));
    if !exitscope_testkit::skip_unless("live_pair_on_this_host_is_alike", missing) {
        return;
    }
    let dir = TempDir::new("live");
    for name in ["a.json", "b.json"] {
        let out = exitscope(&[
            "bench",
            "--json",
            "--quick",
            "--min-cycles",
            "2^22",
            "nop",
            "inl_from_kernel",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", err(&out));
        std::fs::write(dir.arg(name), &out.stdout).unwrap();
    }
    let out = exitscope(&["compare", "--json", &dir.arg("a.json"), &dir.arg("b.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let c = json(&out);
    // Same machine, same settings: whatever the timing noise, nothing unlike.
    assert_eq!(c["unlike"], serde_json::json!([]), "{}", c["environment"]);
    for r in rows(&c) {
        assert_eq!((r["a"]["n"].as_u64(), r["b"]["n"].as_u64()), (Some(6), Some(6)), "{r}");
        assert!(r["shift"]["ci"].is_object(), "six repeats per side give an interval: {r}");
    }
}

/// A trace's text with every time interval multiplied by `factor`: each timestamp moved to
/// `t0 + (t − t0) · factor` (microseconds, as the kernel's text prints them), so every
/// handling time and every gap between exits grows by that factor (± the 1 µs rounding).
fn scaled_trace(text: &str, factor: f64) -> String {
    let mut t0: Option<u64> = None;
    let mut out = String::new();
    for line in text.lines() {
        // ` comm-pid [cpu] flags SECONDS.MICROS: event...`
        let stamp = line.split_whitespace().nth(3).and_then(|s| s.strip_suffix(':'));
        let micros = stamp.and_then(|s| {
            let (sec, us) = s.split_once('.')?;
            Some(sec.parse::<u64>().ok()? * 1_000_000 + us.parse::<u64>().ok()?)
        });
        match (stamp, micros) {
            (Some(stamp), Some(us)) if !line.starts_with('#') => {
                let t0 = *t0.get_or_insert(us);
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let moved = t0 + ((us - t0) as f64 * factor).round() as u64;
                let new = format!("{}.{:06}:", moved / 1_000_000, moved % 1_000_000);
                out.push_str(&line.replacen(&format!("{stamp}:"), &new, 1));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn two_traces_from_one_fixture_do_not_differ() {
    let a = data("vmx-exits.txt");
    let dir = TempDir::new("traces-same");
    let b = dir.arg("b.txt");
    std::fs::copy(&a, &b).unwrap();
    let out = exitscope(&["compare", "--json", &a, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert!(!err(&out).contains("warning"), "the host line reads without warnings: {}", err(&out));
    let c = json(&out);
    assert_eq!(c["unlike"], serde_json::json!([]), "{}", c["environment"]);
    let rows = rows(&c);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for r in rows {
        assert_eq!(r["measure"], "handling", "{r}");
        assert_eq!((r["a"]["n"].as_u64(), r["b"]["n"].as_u64()), (Some(60), Some(60)), "{r}");
        assert_eq!(r["verdict"], "no-significant-difference", "{r}");
        assert_eq!(r["delta"].as_f64(), Some(0.0), "{r}");
        assert_eq!(r["resolution"]["exact"], true, "{r}");
        assert_eq!(r["resolution"]["timestamp_ns"], 1000, "kernel text prints µs: {r}");
    }
    let gate = exitscope(&["compare", "--fail-above", "5%", &a, &b]);
    assert_eq!(gate.status.code(), Some(0), "{}{}", text(&gate), err(&gate));
    let t = text(&gate);
    assert!(t.contains("environment: alike"), "{t}");
    assert!(t.contains("exit reason") && t.contains("exact@1us"), "{t}");
}

#[test]
fn every_exit_ten_percent_slower_in_a_trace_is_reported_slower() {
    let a = data("vmx-exits.txt");
    let dir = TempDir::new("traces-slower");
    let b = dir.arg("b.txt");
    std::fs::write(&b, scaled_trace(&std::fs::read_to_string(&a).unwrap(), 1.1)).unwrap();
    let c = json(&exitscope(&["compare", "--json", &a, &b]));
    let rows = rows(&c);
    assert_eq!(rows.len(), 3, "{c}");
    for r in rows {
        assert_eq!(r["verdict"], "slower", "{r}");
        let ci = &r["shift"]["ci"];
        assert!(ci["low"].as_f64().unwrap() > 0.0, "interval must exclude 0: {r}");
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((ratio - 1.1).abs() < 0.03, "{ratio}: {r}");
        let pct = r["shift_ci_percent"].as_array().unwrap();
        assert!(pct[0].as_f64().unwrap() > 2.0, "{r}");
    }
    let gate = exitscope(&["compare", "--fail-above", "5%", &a, &b]);
    assert_eq!(gate.status.code(), Some(1), "{}", err(&gate));
    assert!(err(&gate).contains("significantly slower than A by more than 5%"), "{}", err(&gate));
    assert!(err(&gate).contains("EPT_NPF"), "{}", err(&gate));
    assert_eq!(exitscope(&["compare", "--fail-above", "20%", &a, &b]).status.code(), Some(0));
    assert_eq!(exitscope(&["compare", "--fail-above", "0", &b, &a]).status.code(), Some(0));
}

#[test]
fn pvm_trace_against_a_recorded_vmx_trace_is_an_unlike_comparison() {
    // The VMX fixture's exits with this project's PVM bench host on the first line instead.
    let vmx = std::fs::read_to_string(data("vmx-exits.txt")).unwrap();
    let pvm: Value =
        serde_json::from_str(&std::fs::read_to_string(data("pvm-a.bench.json")).unwrap()).unwrap();
    let (_, rest) = vmx.split_once('\n').unwrap();
    let dir = TempDir::new("traces-unlike");
    let a = dir.arg("pvm.txt");
    std::fs::write(&a, format!("# exitscope host: {}\n{rest}", pvm["host"])).unwrap();
    let out = exitscope(&["compare", &a, &data("vmx-exits.txt")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let t = text(&out);
    let warning = t.lines().find(|l| l.starts_with("warning: unlike comparison: different "));
    let warning = warning.unwrap_or_else(|| panic!("no unlike warning in\n{t}"));
    for what in ["CPU model", "microcode", "kernel", "virtualization", "mitigations", "KVM module"]
    {
        assert!(warning.contains(what), "{what} missing: {warning}");
    }
    assert!(t.contains("PVM → bare metal"), "{t}");
    assert!(t.find("unlike comparison").unwrap() < t.find("exit reason").unwrap());
    // A trace without a host line: nothing to compare the environment with, and no guess.
    let bare = dir.arg("bare.txt");
    std::fs::write(&bare, rest).unwrap();
    let c = json(&exitscope(&["compare", "--json", &bare, &data("vmx-exits.txt")]));
    assert_eq!(c["a"]["host"]["cpu"]["vendor"], Value::Null, "{}", c["a"]);
    assert_eq!(c["b"]["host"]["cpu"]["vendor"], "GenuineIntel", "{}", c["b"]);
    let out = exitscope(&["compare", &bare, &data("vmx-exits.txt")]);
    assert!(text(&out).contains("A: ") && text(&out).contains("no environment recorded"));
}

#[test]
fn report_json_host_is_the_recording_host_or_null() {
    let out = exitscope(&["report", "--json", &data("vmx-exits.txt")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let r = json(&out);
    assert_eq!(r["host"]["cpu"]["model_name"], "Intel(R) Xeon(R) Gold 6442Y", "{}", r["host"]);
    assert_eq!(r["host"]["os"]["release"], "6.6.34");
    assert_eq!(r["diagnostic_counts"]["warnings"], 0, "{}", r["diagnostics"]);
    assert_eq!(r["diagnostic_counts"]["errors"], 0, "{}", r["diagnostics"]);
    let t = text(&exitscope(&["report", &data("vmx-exits.txt")]));
    assert!(
        t.starts_with(
            "# recorded on Intel(R) Xeon(R) Gold 6442Y (microcode 0x2b0005c0), kernel 6.6.34, \
             kvm_intel (bare metal)\n"
        ),
        "{t}"
    );
    // A trace that does not carry it: null, never this machine's.
    let seed = exitscope_testkit::workspace_root().join("tests/data/seed/cpuid-amd.fgraph.txt");
    let r = json(&exitscope(&["report", "--json", seed.to_str().unwrap()]));
    assert_eq!(r["host"], Value::Null);
    assert!(!text(&exitscope(&["report", seed.to_str().unwrap()])).contains("# recorded on"));
    // A broken host line is said, and the host is unknown.
    let dir = TempDir::new("bad-host");
    let bad = dir.arg("bad.txt");
    let fixture = std::fs::read_to_string(data("vmx-exits.txt")).unwrap();
    let (_, rest) = fixture.split_once('\n').unwrap();
    std::fs::write(&bad, format!("# exitscope host: {{\"cpu\": 3}}\n{rest}")).unwrap();
    let out = exitscope(&["report", "--json", &bad]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert_eq!(json(&out)["host"], Value::Null);
    assert!(
        err(&out).contains("bad.txt:1: the `# exitscope host:` line is not an exitscope"),
        "{}",
        err(&out)
    );
}

#[test]
fn run_directories_compare_bench_and_trace() {
    let dir = TempDir::new("run-dirs");
    let trace = exitscope_testkit::workspace_root().join("tests/data/tracedat/kvm-all-v7-zstd.dat");
    for d in ["a", "b"] {
        std::fs::create_dir_all(dir.arg(d)).unwrap();
        std::fs::copy(data("pvm-a.bench.json"), dir.arg(&format!("{d}/bench.json"))).unwrap();
        std::fs::copy(&trace, dir.arg(&format!("{d}/trace.dat"))).unwrap();
    }
    let out = exitscope(&["compare", "--json", &dir.arg("a"), &dir.arg("b")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let c = json(&out);
    let tests = rows(&c).iter().filter(|r| r["measure"].is_null()).count();
    let exits: Vec<&Value> = rows(&c).iter().filter(|r| !r["measure"].is_null()).collect();
    assert!(tests >= 7, "{c}");
    assert!(!exits.is_empty(), "{c}");
    for r in &exits {
        assert_eq!(r["resolution"]["timestamp_ns"], 1, "trace.dat is in ns: {r}");
        assert_ne!(r["verdict"], "slower", "{r}");
    }
    let t = text(&exitscope(&["compare", &dir.arg("a"), &dir.arg("b")]));
    assert!(t.find("A median").unwrap() < t.find("exit reason").unwrap(), "{t}");
}
