//! `exitscope export --perfetto -o trace.pftrace`: Perfetto's native TrackEvent protobuf, run
//! on the fixtures and decoded with the `perfetto_trace_pb2` module of PyPI's `perfetto`
//! wheel (`tests/helpers/pftrace_check.py`, which also checks the sequence rules and the
//! nesting of every track), compared with `report --json` of the same inputs.
//!
//! Needs python3 with `pip install perfetto protobuf` (`.ci/run` installs them); without
//! them the decoding tests print `SKIP: <reason>`. `EXITSCOPE_TP_SHELL=/path/to/
//! trace_processor_shell` also loads each export in Perfetto's trace processor.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{TempDir, command, exitscope, ok_stdout, root};
use serde_json::Value;

/// Why the decoder cannot run here, if it cannot.
fn decoder_missing() -> Option<String> {
    let script = root().join("crates/exitscope-cli/tests/helpers/pftrace_check.py");
    match Command::new("python3").arg(&script).arg("--probe").output() {
        Err(e) => Some(format!("no python3: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "{} (pip install --break-system-packages perfetto protobuf)",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn can_decode() -> bool {
    let test = std::thread::current().name().unwrap_or("pftrace").to_owned();
    exitscope_testkit::skip_unless(&test, decoder_missing())
}

/// Export `inputs` to `dir/name` and decode it.
fn export(dir: &TempDir, name: &str, inputs: &[&str]) -> Value {
    let out = dir.join(name);
    let mut args = vec!["export", "--perfetto"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["-o", out.to_str().unwrap()]);
    ok_stdout(&args);
    let script = root().join("crates/exitscope-cli/tests/helpers/pftrace_check.py");
    let o = Command::new("python3").arg(script).arg(&out).output().unwrap();
    assert!(o.status.success(), "pftrace_check.py: {}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["errors"], Value::Array(vec![]), "{inputs:?}: {}", v["errors"]);
    v
}

fn report(inputs: &[&str]) -> Value {
    let mut args = vec!["report", "--json"];
    args.extend_from_slice(inputs);
    serde_json::from_str(&ok_stdout(&args)).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// The decoded file draws every root and every exit of the report, says so in its summary,
/// and annotates every exit.
fn assert_counts_match(p: &Value, r: &Value, what: &str) {
    let exits = r["exits"]["exits"].as_u64().unwrap_or(0);
    assert_eq!(p["roots"], r["roots"], "{what}: roots");
    let drawn = p["exit_slices"].as_u64().unwrap() + p["exit_instants"].as_u64().unwrap();
    assert_eq!(drawn, exits, "{what}: exits");
    assert_eq!(p["summary"]["exits"], exits, "{what}");
    assert_eq!(p["summary"]["exits_without_time"], 0, "{what}");
    assert_eq!(p["summary"]["roots"], r["roots"], "{what}");
    assert_eq!(p["summary"]["call_slices"], p["call_slices"], "{what}");
    assert_eq!(p["exits_missing_annotations"], 0, "{what}");
    // The reasons drawn are the report's.
    let mut want: Vec<String> = r["exits"]["reasons"]
        .as_array()
        .map(|a| a.iter().map(|x| x["reason"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    want.sort();
    assert_eq!(strings(&p["exit_reasons"]), want, "{what}");
}

/// Exits/s counters: per reason, the values times the window add up to the report's count.
fn assert_rates_match(p: &Value, r: &Value, what: &str) {
    let window = p["summary"]["rate_window_ns"].as_f64().unwrap();
    let got: BTreeMap<String, f64> = p["counters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, pts)| {
            let sum: f64 = pts.as_array().unwrap().iter().map(|x| x[1].as_f64().unwrap()).sum();
            (k.clone(), sum * window / 1e9)
        })
        .collect();
    let want: BTreeMap<String, f64> = r["exits"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (format!("exits/s {}", x["reason"].as_str().unwrap()), x["count"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(got, want, "{what}");
}

#[test]
fn seed_graphs_nest_on_cpu_tracks_with_one_exit_slice_per_exit() {
    if !can_decode() {
        return;
    }
    let dir = TempDir::new("pftrace-seed");
    for (seed, cpus) in
        [("cpuid-amd", ["cpu 182", "cpu 98"]), ("cpuid-intel", ["cpu 25", "cpu 60"])]
    {
        let f = format!("tests/data/seed/{seed}.fgraph.txt");
        let p = export(&dir, &format!("{seed}.pftrace"), &[&f]);
        let r = report(&[&f]);
        assert_counts_match(&p, &r, seed);
        // The seeds name no task: one track per CPU, as many call slices as the JSON timeline.
        let json: Value = serde_json::from_str(&ok_stdout(&["export", "--perfetto", &f])).unwrap();
        assert_eq!(p["call_slices"], json["otherData"]["slices"], "{seed}");
        assert_eq!(strings(&p["call_tracks"]), cpus, "{seed}");
        // The CPUs the JSON timeline has tracks for.
        let mut json_cpus: Vec<String> = json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap().to_lowercase())
            .collect();
        json_cpus.sort();
        assert_eq!(json_cpus, cpus, "{seed}");
        assert!(p["max_depth"].as_u64().unwrap() >= 3, "{seed}: nested: {}", p["max_depth"]);
        assert_eq!(p["summary"]["synthetic_time"], true);
        // No timestamps, no rates.
        assert_eq!(p["counters"], Value::Object(Default::default()));
        let keys = strings(&p["exit_annotation_keys"]);
        for k in ["reason", "source", "duration_ns", "phase_before_ns", "phase_run_ns", "evidence"]
        {
            assert!(keys.iter().any(|x| x == k), "{seed}: {k} not in {keys:?}");
        }
        assert!(strings(&p["root_annotation_keys"]).contains(&"function".to_string()));
    }
}

#[test]
fn function_graph_trace_dat_gets_vcpu_thread_tracks_and_rates() {
    if !can_decode() {
        return;
    }
    let dir = TempDir::new("pftrace-fgraph");
    let f = "tests/data/tracedat/funcgraph-v7-zstd.dat";
    let p = export(&dir, "fgraph.perfetto-trace", &[f]);
    let r = report(&[f]);
    assert_counts_match(&p, &r, f);
    assert_rates_match(&p, &r, f);
    let vcpus = ["vcpu 0 (1000)", "vcpu 1 (1001)"];
    assert_eq!(strings(&p["thread_tracks"]), vcpus);
    assert_eq!(strings(&p["exit_tracks_under"]), vcpus);
    assert_eq!(p["summary"]["synthetic_time"], false);
    assert_eq!(p["summary"]["clipped_slices"], 0);
    // The kvm_exit inside each exit gives the vendor's name and code.
    let keys = strings(&p["exit_annotation_keys"]);
    for k in ["raw_reason", "code", "isa", "rip", "phase_run_ns", "duration_ns", "task"] {
        assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
    }
    // The kvm_entry/kvm_exit records are instants beside the calls.
    assert_eq!(
        p["event_instants"],
        r["events"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>()
    );
}

#[test]
fn event_traces_get_exit_slices_lost_markers_and_rates() {
    if !can_decode() {
        return;
    }
    let dir = TempDir::new("pftrace-events");
    // kvm_exit → kvm_entry pairs (perf kvm stat record on VMX): slices with durations.
    let f = "tests/data/perfdata/kvm-stat-vmx.data";
    let p = export(&dir, "vmx.pftrace", &[f]);
    let r = report(&[f]);
    assert_counts_match(&p, &r, f);
    assert_rates_match(&p, &r, f);
    assert_eq!(p["exit_instants"], 0, "every pair has a duration");
    let tracks = strings(&p["thread_tracks"]);
    assert!(!tracks.is_empty() && tracks.iter().all(|t| t.starts_with("vcpu ")), "{tracks:?}");
    assert_eq!(strings(&p["exit_tracks_under"]), tracks);
    // Reason-specific tracepoints (PVM), with 48009 events dropped on CPU 0: instants, and
    // the lost marker.
    let f = "tests/data/tracedat/kvm-drops-v7-zstd.dat";
    let p = export(&dir, "drops.pftrace", &[f]);
    let r = report(&[f]);
    assert_counts_match(&p, &r, f);
    assert_rates_match(&p, &r, f);
    assert_eq!(p["exit_slices"], 0);
    assert_eq!(p["lost_markers"], r["lost_events"]["markers"]);
    assert_eq!(p["lost_markers"], 1);
    // Text events with the columns cut in every way: the pairs that have a task go on its
    // vCPU track, the others on their CPU's.
    let f = "tests/data/fgraph/events-trimmed-columns.txt";
    let p = export(&dir, "trimmed.pftrace", &[f]);
    let r = report(&[f]);
    assert_counts_match(&p, &r, f);
    assert_eq!(strings(&p["thread_tracks"]), ["vcpu 0 (4321)"]);
    // Two inputs: two processes, the counts add up.
    let (a, b) = ("tests/data/seed/cpuid-amd.fgraph.txt", "tests/data/perfdata/kvm-stat-vmx.data");
    let p = export(&dir, "two.pftrace", &[a, b]);
    let r = report(&[a, b]);
    assert_counts_match(&p, &r, "two inputs");
}

#[test]
fn the_format_follows_the_flag_or_the_extension() {
    let dir = TempDir::new("pftrace-format");
    let seed = "tests/data/seed/cpuid-amd.fgraph.txt";
    let file = dir.join("a.pftrace");
    ok_stdout(&["export", "--perfetto", seed, "-o", file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    // A Trace: field 1, length-delimited, holding a packet that starts with its timestamp.
    assert_eq!(bytes[0], 0x0a);
    // The same bytes on stdout with --format, whatever the name.
    let out = exitscope(&["export", "--perfetto", "--format", "pftrace", seed]);
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);
    let other = dir.join("a.bin");
    ok_stdout(&[
        "export",
        "--perfetto",
        "--format",
        "pftrace",
        seed,
        "-o",
        other.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&other).unwrap(), bytes);
    // .json (and stdout by default) stay Chrome JSON.
    let json = dir.join("a.json");
    ok_stdout(&["export", "--perfetto", seed, "-o", json.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["displayTimeUnit"], "ns");
    let v: Value = serde_json::from_str(&ok_stdout(&["export", "--perfetto", seed])).unwrap();
    assert!(v["traceEvents"].is_array());
    // A bad input fails before anything is written.
    let bad = command()
        .args([
            "export",
            "--perfetto",
            "no-such-file.txt",
            "-o",
            dir.join("b.pftrace").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(!dir.join("b.pftrace").exists());
}

/// Opt-in: `EXITSCOPE_TP_SHELL=/path/to/trace_processor_shell` loads the exports in Perfetto's
/// trace processor and checks what it imported against the report.
#[test]
fn trace_processor_imports_the_export() {
    let shell = std::env::var_os("EXITSCOPE_TP_SHELL");
    let missing = match &shell {
        None => Some("EXITSCOPE_TP_SHELL is not set (path to a trace_processor_shell)".to_string()),
        Some(p) if !std::path::Path::new(p).is_file() => {
            Some(format!("EXITSCOPE_TP_SHELL={} is not a file", p.to_string_lossy()))
        }
        Some(_) => None,
    };
    if !exitscope_testkit::skip_unless("trace_processor_imports_the_export", missing) {
        return;
    }
    let shell = shell.unwrap();
    let dir = TempDir::new("pftrace-tp");
    let query = dir.join("q.sql");
    std::fs::write(
        &query,
        "select \
           (select count(*) from slice s join track t on s.track_id = t.id \
              where t.name = 'exits') as exits, \
           (select count(*) from slice s join track t on s.track_id = t.id where s.depth = 0 \
              and (t.name is null or t.name not in ('exits', 'events', 'lost events', \
              'exitscope'))) as roots, \
           (select count(*) from args where key = 'debug.reason') as reasons, \
           (select count(*) from counter) as counters, \
           (select count(*) from thread where name like 'vcpu %') as vcpu_threads, \
           (select ifnull(sum(value), 0) from stats where severity in ('error', 'data_loss') \
              and value > 0) as errors;\n",
    )
    .unwrap();
    for f in [
        "tests/data/seed/cpuid-amd.fgraph.txt",
        "tests/data/tracedat/funcgraph-v7-zstd.dat",
        "tests/data/perfdata/kvm-stat-vmx.data",
        "tests/data/tracedat/kvm-drops-v7-zstd.dat",
    ] {
        let out = dir.join("t.pftrace");
        ok_stdout(&["export", "--perfetto", f, "-o", out.to_str().unwrap()]);
        let o = Command::new(&shell).arg("-q").arg(&query).arg(&out).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{f}: {}{text}", String::from_utf8_lossy(&o.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let head = lines.iter().position(|l| l.contains("\"exits\"")).expect(&text);
        let vals: Vec<u64> = lines[head + 1]
            .split(',')
            .map(|v| v.trim().trim_matches('"').parse().unwrap())
            .collect();
        let r = report(&[f]);
        let exits = r["exits"]["exits"].as_u64().unwrap_or(0);
        println!("{f}: trace_processor: {text}");
        assert_eq!(vals[0], exits, "{f}: exit slices");
        assert_eq!(vals[1], r["roots"].as_u64().unwrap(), "{f}: roots");
        assert_eq!(vals[2], exits, "{f}: exits with a reason annotation");
        assert_eq!(vals[5], 0, "{f}: trace_processor import errors");
    }
}
