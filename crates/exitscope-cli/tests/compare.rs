//! `exitscope compare A B` end to end, on fixed bench results (`tests/data/compare/`, see
//! its README entry) so the verdicts are deterministic, plus one live pair on this host.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn exitscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exitscope")).args(args).output().unwrap()
}

fn data(name: &str) -> String {
    exitscope_testkit::workspace_root()
        .join("tests/data/compare")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(o), err(o)))
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p =
            std::env::temp_dir().join(format!("exitscope-compare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let dir = Scratch::new("slower");
    let b = dir.path("b.json");
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
    let dir = Scratch::new("inputs");
    std::fs::create_dir_all(dir.path("run-a")).unwrap();
    std::fs::copy(data("pvm-a.bench.json"), dir.path("run-a/bench.json")).unwrap();
    let out = exitscope(&["compare", &dir.path("run-a"), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    assert!(text(&out).contains("run-a/bench.json"), "{}", text(&out));

    std::fs::create_dir_all(dir.path("empty")).unwrap();
    let out = exitscope(&["compare", &dir.path("empty"), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("no bench.json in this directory"), "{}", err(&out));

    let trace = exitscope_testkit::workspace_root().join("tests/data/seed/cpuid-amd.fgraph.txt");
    let out = exitscope(&["compare", trace.to_str().unwrap(), &data("pvm-a.bench.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(err(&out).contains("cpuid-amd.fgraph.txt:1:3: not JSON"), "{}", err(&out));

    let out = exitscope(&["compare", &dir.path("missing.json"), &data("pvm-a.bench.json")]);
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
    let dir = Scratch::new("live");
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
        std::fs::write(dir.path(name), &out.stdout).unwrap();
    }
    let out = exitscope(&["compare", "--json", &dir.path("a.json"), &dir.path("b.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", err(&out));
    let c = json(&out);
    // Same machine, same settings: whatever the timing noise, nothing unlike.
    assert_eq!(c["unlike"], serde_json::json!([]), "{}", c["environment"]);
    for r in rows(&c) {
        assert_eq!((r["a"]["n"].as_u64(), r["b"]["n"].as_u64()), (Some(6), Some(6)), "{r}");
        assert!(r["shift"]["ci"].is_object(), "six repeats per side give an interval: {r}");
    }
}
