use exitscope_host::{Fingerprint, Virtualization};
use exitscope_stats::Verdict;

use super::bench::{BenchResults, BenchTest, LoadError, parse};
use super::*;

/// Ten repeats of inl_from_vmm-like figures (cycles per iteration).
const A10: [f64; 10] = [
    97_774.2, 96_120.5, 98_310.0, 97_001.8, 99_045.3, 96_877.1, 97_540.6, 98_102.9, 97_260.4,
    96_650.0,
];

fn host(microcode: &str) -> Fingerprint {
    let mut f = Fingerprint {
        exitscope_version: Some("0.1.0".into()),
        virtualization: Some(Virtualization::Pvm),
        ..Default::default()
    };
    f.cpu.model_name = Some("AMD EPYC".into());
    f.cpu.microcode = Some(microcode.into());
    f
}

fn test(name: &str, samples: &[f64]) -> BenchTest {
    BenchTest {
        test: name.into(),
        cpl: Some(3),
        status: "ok".into(),
        reason: None,
        samples: samples.to_vec(),
        dropped_samples: 0,
        exit_kind: Some("io-user".into()),
    }
}

fn results(source: &str, microcode: &str, tests: Vec<BenchTest>) -> BenchResults {
    BenchResults { source: source.into(), host: host(microcode), repeat: Some(10), tests }
}

#[test]
fn ten_percent_slower_everywhere_is_a_significant_regression() {
    let a = results("a.json", "0x1", vec![test("inl_from_vmm", &A10)]);
    let b = results("b.json", "0x1", vec![test("inl_from_vmm", &A10.map(|v| v * 1.1))]);
    let c = compare_bench(&a, &b, 0.95);
    assert!(c.environment.is_empty() && c.unlike.is_empty());
    let r = &c.rows[0];
    assert_eq!(r.verdict, Verdict::Slower);
    let ci = r.shift.as_ref().unwrap().ci.unwrap();
    assert!(ci.low > 0.0, "{ci:?}");
    let pct = r.shift_ci_percent.unwrap();
    assert!(pct[0] > 5.0 && pct[1] < 15.0, "{pct:?}");
    assert!((r.ratio.unwrap() - 1.1).abs() < 1e-9);
    assert!((r.delta.unwrap() - 0.1 * r.a.as_ref().unwrap().median).abs() < 1e-6);
    assert!((0.09..0.11).contains(&r.relative_shift().unwrap()));
    assert_eq!(c.regressions_above(0.05).len(), 1);
    assert!(c.regressions_above(0.20).is_empty(), "a 10 % shift is not above 20 %");
    // The reverse is faster, and faster is never a regression.
    let back = compare_bench(&b, &a, 0.95);
    assert_eq!(back.rows[0].verdict, Verdict::Faster);
    assert!(back.regressions_above(0.0).is_empty());
}

#[test]
fn the_same_repeats_reordered_are_no_difference() {
    let mut shuffled = A10;
    shuffled.reverse();
    shuffled.swap(2, 7);
    let a = results("a.json", "0x1", vec![test("inl_from_vmm", &A10)]);
    let b = results("b.json", "0x1", vec![test("inl_from_vmm", &shuffled)]);
    let c = compare_bench(&a, &b, 0.95);
    assert_eq!(c.rows[0].verdict, Verdict::NoSignificantDifference);
    assert_eq!(c.rows[0].delta, Some(0.0));
    assert!(c.regressions_above(0.05).is_empty());
    assert!(c.rows[0].note.is_none());
}

#[test]
fn rows_that_cannot_be_compared_say_why() {
    let mut skipped = test("mov_dr", &[]);
    skipped.status = "skipped".into();
    skipped.reason = Some("needs CPL0".into());
    let mut cpl0 = test("cpuid", &A10);
    cpl0.cpl = Some(0);
    let a = results("a.json", "0x1", vec![skipped, test("cpuid", &A10), test("nop", &[0.1, -0.2])]);
    let b = results("b.json", "0x2", vec![test("mov_dr", &A10), cpl0, test("vmcall", &A10)]);
    let mut both = test("mov_cr8", &[]);
    both.status = "skipped".into();
    both.reason = Some("needs CPL0".into());
    let c = compare_bench(
        &results("a.json", "0x1", vec![both.clone()]),
        &results("b.json", "0x1", vec![both]),
        0.95,
    );
    assert_eq!(c.rows[0].note.as_deref(), Some("skipped (needs CPL0) in A and B"));
    let c = compare_bench(&a, &b, 0.95);
    let names: Vec<&str> = c.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["mov_dr", "cpuid", "nop", "vmcall"]);
    let row = |n: &str| c.rows.iter().find(|r| r.name == n).unwrap();
    assert_eq!(row("mov_dr").verdict, Verdict::InsufficientData);
    assert_eq!(row("mov_dr").note.as_deref(), Some("A: skipped (needs CPL0)"));
    assert!(row("mov_dr").a.is_none() && row("mov_dr").b.is_some());
    assert!(row("cpuid").note.as_deref().unwrap().contains("A ran at CPL3, B at CPL0"));
    assert_eq!(row("nop").note.as_deref(), Some("not run in B"));
    assert_eq!(row("vmcall").note.as_deref(), Some("not run in A"));
    assert_eq!(c.unlike, ["microcode"]);
}

#[test]
fn too_few_repeats_are_insufficient_not_a_verdict() {
    let a = results("a", "0x1", vec![test("cpuid", &A10[..3])]);
    let b = results(
        "b",
        "0x1",
        vec![test("cpuid", &A10[..3].iter().map(|v| v * 2.0).collect::<Vec<_>>())],
    );
    let r = &compare_bench(&a, &b, 0.95).rows[0];
    assert_eq!(r.verdict, Verdict::InsufficientData);
    assert!(r.note.as_deref().unwrap().contains("too few"), "{:?}", r.note);
    assert!(r.a.as_ref().unwrap().median_ci.is_none());
}

#[test]
fn histograms_compare_through_the_same_rows() {
    // Two per-reason latency histograms (bucket ns, count), as a trace comparison passes them.
    let a = Samples::from_counts([(1000.0, 90_000), (1100.0, 9_000), (4000.0, 1_000)]).unwrap();
    let b = Samples::from_counts([(1100.0, 90_000), (1200.0, 9_000), (4000.0, 1_000)]).unwrap();
    let r = compare_samples("CPUID", "ns", &a, &b, 0.95);
    assert_eq!((r.verdict, r.unit.as_str()), (Verdict::Slower, "ns"));
    assert_eq!(r.shift.as_ref().unwrap().estimate, 100.0);
    assert_eq!(r.a.as_ref().unwrap().n, 100_000);
    let same = compare_samples("CPUID", "ns", &a, &a, 0.95);
    assert_eq!(same.verdict, Verdict::NoSignificantDifference);
}

#[test]
fn json_document_has_the_documented_fields() {
    let a = results("a.json", "0x1", vec![test("cpuid", &A10)]);
    let b = results("b.json", "0x2", vec![test("cpuid", &A10.map(|v| v + 5000.0))]);
    let v = serde_json::to_value(compare_bench(&a, &b, 0.95)).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["confidence"], 0.95);
    assert_eq!(v["unlike"], serde_json::json!(["microcode"]));
    assert_eq!(v["environment"][0]["field"], "cpu.microcode");
    assert_eq!(v["environment"][0]["severity"], "unlike");
    let row = &v["rows"][0];
    assert_eq!(row["verdict"], "slower");
    for key in ["a", "b", "delta", "ratio", "shift", "shift_ci_percent", "note"] {
        assert!(row.get(key).is_some(), "{key}");
    }
    assert!(row["shift"]["ci"]["low"].as_f64().unwrap() > 0.0);
    assert_eq!(row["a"]["n"], 10);
    assert!(row["a"]["median_ci"]["confidence"].as_f64().unwrap() > 0.95);
    assert!(v["a"]["host"]["cpu"]["microcode"] == "0x1");
}

#[test]
fn bench_documents_load_and_bad_ones_say_where() {
    let doc = br#"{"schema_version":1,"host":{"kvm_flavour":"pvm","exitscope_version":"0.1.0",
        "cpu":{"microcode":"0x1000065"}},"repeat":10,"results":[
        {"test":"cpuid","cpl":3,"status":"ok","samples":[1.0,null,2.0],"cycles_median":1.5},
        {"test":"mov_dr","cpl":3,"status":"skipped","reason":"needs CPL0","samples":[]}]}"#;
    let r = parse(doc, "x.json").unwrap();
    assert_eq!(r.host.cpu.microcode.as_deref(), Some("0x1000065"));
    assert_eq!((r.repeat, r.tests.len()), (Some(10), 2));
    assert_eq!(
        (r.tests[0].samples.as_slice(), r.tests[0].dropped_samples),
        ([1.0, 2.0].as_slice(), 1)
    );
    assert_eq!(r.find("mov_dr").unwrap().reason.as_deref(), Some("needs CPL0"));
    // A document from before fingerprints: the host is empty, not an error.
    let old =
        parse(br#"{"host":{"kvm_flavour":"vmx","cpu_model":"x"},"results":[]}"#, "o").unwrap();
    assert!(old.host.is_empty());

    let e = parse(b"# tracer: function_graph\n", "t.txt").unwrap_err().to_string();
    assert!(e.starts_with("t.txt:1:1: not JSON; compare reads"), "{e}");
    // Text that starts like a JSON number is not taken for one.
    let e = parse(b"\n  98)   0.080 us  |  f();\n", "g.txt").unwrap_err().to_string();
    assert!(e.starts_with("g.txt:2:3: not JSON") && e.ends_with("expected `{`"), "{e}");
    assert!(parse(b"", "e.json").unwrap_err().to_string().starts_with("e.json:1:0: not JSON"));
    let e = parse(b"{\n \"host\": {},\n \"mode\": 3\n}", "m.json").unwrap_err().to_string();
    assert!(
        e.starts_with("m.json:4:1: not an exitscope bench document") && e.contains("results"),
        "{e}"
    );
    let e = parse(br#"{"results":[{"test":"cpuid","status":"ok","samples":["a"]}]}"#, "s.json")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.json:1:") && e.contains("invalid type"), "{e}");

    let dir = std::env::temp_dir().join(format!("exitscope-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = bench::load(&dir).unwrap_err();
    assert!(matches!(e, LoadError::NoBenchJson { .. }) && e.to_string().contains("run -o"), "{e}");
    std::fs::write(dir.join("bench.json"), doc).unwrap();
    let r = bench::load(&dir).unwrap();
    assert!(r.source.ends_with("bench.json"));
    std::fs::remove_dir_all(&dir).unwrap();
    let e = bench::load(&dir.join("nope.json")).unwrap_err();
    assert!(matches!(e, LoadError::Io { .. }) && e.to_string().contains("nope.json"), "{e}");
}

#[test]
fn the_empty_loop_is_compared_but_never_gated() {
    let nop = |v: &[f64]| BenchTest { exit_kind: Some("none".into()), ..test("nop", v) };
    let a = results("a", "0x1", vec![nop(&[0.1, 0.2, -0.1, 0.0, 0.3, 0.2, 0.1, -0.2, 0.0, 0.1])]);
    let b = results("b", "0x1", vec![nop(&[3.1, 2.9, 3.3, 3.0, 2.8, 3.2, 3.1, 3.0, 2.9, 3.4])]);
    let c = compare_bench(&a, &b, 0.95);
    assert_eq!(c.rows[0].verdict, Verdict::Slower);
    assert!(!c.rows[0].gated && c.rows[0].note.as_deref().unwrap().contains("not gated"));
    assert!(c.regressions_above(0.05).is_empty());
}

#[test]
fn an_oversubscribed_machine_is_a_warning() {
    let mut a = results("a", "0x1", vec![test("cpuid", &A10)]);
    a.host.loadavg = Some([17.68, 21.27, 20.59]);
    a.host.online_cpus = Some("0-1".into());
    let mut b = a.clone();
    b.host.loadavg = Some([0.5, 0.4, 0.3]);
    let c = compare_bench(&a, &b, 0.95);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("A ran with load average 17.68 on 2 CPUs"),
        "{:?}",
        c.warnings
    );
    // Unknown CPU count: no claim.
    b.host.online_cpus = None;
    b.host.loadavg = Some([99.0, 0.0, 0.0]);
    assert_eq!(compare_bench(&b, &b, 0.95).warnings, Vec::<String>::new());
}

/// A reason whose handling times are `values` (ns).
fn reason(values: impl IntoIterator<Item = u64>) -> exitscope_analyze::exits::ReasonStats {
    let mut d = exitscope_analyze::histogram::DurationStats::default();
    for v in values {
        d.add(Some(v));
    }
    exitscope_analyze::exits::ReasonStats {
        reason: "IO".into(),
        count: d.count,
        handling: exitscope_analyze::histogram::Distribution::of(&d, 512),
        ..Default::default()
    }
}

#[test]
fn trace_rows_from_histograms() {
    let base: Vec<u64> = (0..200).map(|i| 2000 + (i * 37) % 500).collect();
    let a = reason(base.iter().copied());
    // Every exit 10 % slower.
    let b = reason(base.iter().map(|v| v * 11 / 10));
    let row = trace::reason_row("IO", Some(&a), Some(&b), [Some(1), Some(1)], 0.95);
    assert_eq!(row.measure.as_deref(), Some("handling"));
    assert_eq!(row.verdict, Verdict::Slower, "{row:?}");
    assert!(row.shift.as_ref().unwrap().ci.unwrap().low > 0.0, "{row:?}");
    assert!(row.resolution.unwrap().exact);
    let same = trace::reason_row("IO", Some(&a), Some(&a), [Some(1), Some(1)], 0.95);
    assert_eq!(same.verdict, Verdict::NoSignificantDifference);
    assert_eq!(same.delta, Some(0.0));
    // The same exits at microsecond timestamps (the kernel's text) against nanoseconds: the
    // finer side is rounded to the coarser step, and the rounding is not a shift.
    let micro = reason(base.iter().map(|v| (v + 500) / 1000 * 1000));
    let mixed = trace::reason_row("IO", Some(&a), Some(&micro), [Some(1), Some(1000)], 0.95);
    assert_eq!(mixed.verdict, Verdict::NoSignificantDifference, "{mixed:?}");
    assert!(mixed.note.as_deref().unwrap().contains("A's values rounded to 1000 ns"), "{mixed:?}");
    assert_eq!(mixed.resolution.unwrap().timestamp_ns, Some(1000));
    // A reason only one side has.
    let only = trace::reason_row("IO", Some(&a), None, [Some(1), Some(1)], 0.95);
    assert_eq!(only.verdict, Verdict::InsufficientData);
    assert!(only.note.as_deref().unwrap().contains("no such exit in B"), "{only:?}");
}

#[test]
fn trace_rows_regroup_many_distinct_values() {
    // More distinct values than the pairwise differences allow: regrouped into coarser
    // buckets, said in the resolution, and a 10 % shift still found.
    let base: Vec<u64> = (0..20_000).map(|i| 10_000 + (i * 7919) % 90_000).collect();
    let a = reason(base.iter().copied());
    let b = reason(base.iter().map(|v| v * 11 / 10));
    let row = trace::reason_row("IO", Some(&a), Some(&b), [Some(1), Some(1)], 0.95);
    let res = row.resolution.unwrap();
    assert!(!res.exact);
    assert!(res.buckets_per_octave.unwrap() < 512, "{res:?}");
    assert_eq!(row.verdict, Verdict::Slower, "{row:?}");
    let pct = row.shift_ci_percent.unwrap();
    assert!(pct[0] > 5.0 && pct[1] < 15.0, "{pct:?}");
}
