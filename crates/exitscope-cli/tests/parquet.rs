//! `export --parquet` read back by DuckDB and by Spark (local mode), and `merge`: the engines'
//! per-reason counts equal `report --json` exactly, and their nearest-rank p50/p99 over
//! `exits.parquet` agree with exitscope's within the histogram's stated error. The queries
//! are docs/fleet.md's, run verbatim by `tests/helpers/fleet_query.py`, over a fleet of
//! synthetic hosts (two kernels, two microcodes, two periods, one host slower in the second).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{TempDir, exitscope, ok_stdout, root, stderr};
use exitscope_testkit::synth::{HostSpec, kvm_event_trace};

/// (host, kernel, microcode).
const HOSTS: &[(&str, &str, &str)] = &[
    ("web-01", "6.1.0-fleet-a", "0xa1"),
    ("web-02", "6.1.0-fleet-a", "0xa1"),
    ("db-01", "6.6.0-fleet-b", "0xb2"),
    ("db-02", "6.6.0-fleet-b", "0xb2"),
];
const PERIODS: &[&str] = &["w48", "w49"];
/// The host that is slower in the second period, and by how much.
const SLOW: (&str, f64) = ("db-01", 1.5);

struct Fleet {
    dir: TempDir,
    /// (period, host, trace path).
    traces: Vec<(String, String, PathBuf)>,
}

impl Fleet {
    fn root(&self) -> PathBuf {
        self.dir.join("fleet")
    }

    fn trace_args(&self, keep: impl Fn(&str, &str) -> bool) -> Vec<String> {
        self.traces
            .iter()
            .filter(|(p, h, _)| keep(p, h))
            .map(|t| t.2.to_str().unwrap().to_string())
            .collect()
    }
}

/// Traces, fingerprints and one export directory per period and host.
fn fleet() -> Fleet {
    let dir = TempDir::new("parquet-fleet");
    let mut traces = Vec::new();
    for (pi, period) in PERIODS.iter().enumerate() {
        for (hi, &(host, kernel, microcode)) in HOSTS.iter().enumerate() {
            let slow = pi == 1 && host == SLOW.0;
            let spec = HostSpec {
                seed: 1000 + (pi * 10 + hi) as u64,
                // One host past the exact limit (4096 values) in its own report.
                exits: if hi == 3 { 5000 } else { 4000 },
                vcpus: 2 + hi as u32 % 2,
                slowdown: if slow { SLOW.1 } else { 1.0 },
            };
            let trace = dir.join(&format!("traces/{period}/{host}.txt"));
            std::fs::create_dir_all(trace.parent().unwrap()).unwrap();
            // The recording host as `exitscope record` writes it: the trace's first line.
            let fp = serde_json::json!({
                "hostname": host,
                "os": {"release": kernel},
                "cpu": {"vendor": "GenuineIntel", "microcode": microcode},
            });
            let tag = format!("# {}{fp}\n", exitscope_host::TAG_PREFIX);
            std::fs::write(&trace, tag + &kvm_event_trace(&spec)).unwrap();
            let out = dir.join(&format!("fleet/{period}/{host}"));
            let o =
                exitscope(&["export", "--parquet", out.to_str().unwrap(), trace.to_str().unwrap()]);
            assert!(o.status.success(), "export: {}", stderr(&o));
            assert!(
                stderr(&o).contains(&format!("wrote {} exit rows", spec.exits)),
                "{}",
                stderr(&o)
            );
            traces.push((period.to_string(), host.to_string(), trace));
        }
    }
    Fleet { dir, traces }
}

/// `report --json` of `files` analysed at once.
fn report(files: &[String]) -> Value {
    let mut args = vec!["report", "--json"];
    args.extend(files.iter().map(String::as_str));
    serde_json::from_str(&ok_stdout(&args)).unwrap()
}

/// `merge [--by host]` of one `report --json` per trace (as NAME=FILE when by host).
fn merged(fleet: &Fleet, by_host: bool) -> Value {
    let mut args: Vec<String> = vec!["merge".into()];
    if by_host {
        args.extend(["--by".into(), "host".into()]);
    }
    for (p, h, t) in &fleet.traces {
        let json = fleet.dir.join(&format!("reports/{p}-{h}.json"));
        if !json.exists() {
            std::fs::create_dir_all(json.parent().unwrap()).unwrap();
            let o =
                exitscope(&["report", "--json", t.to_str().unwrap(), "-o", json.to_str().unwrap()]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
        args.push(if by_host {
            format!("{h}={}", json.display())
        } else {
            json.to_str().unwrap().to_string()
        });
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&ok_stdout(&args)).unwrap()
}

/// Run docs/fleet.md's queries on `engine`.
fn query(engine: &str, fleet: &Fleet) -> Value {
    let o = Command::new("python3")
        .arg(root().join("crates/exitscope-cli/tests/helpers/fleet_query.py"))
        .args([engine, root().join("docs/fleet.md").to_str().unwrap()])
        .arg(fleet.root())
        .args(PERIODS)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{engine}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The worst relative difference seen, for the figure the test prints.
#[derive(Default)]
struct Agreement {
    checked: usize,
    exact: usize,
    worst: f64,
}

impl Agreement {
    /// exitscope's percentile `ours` of distribution `dist` against the engine's `theirs`:
    /// equal while the histogram is exact, else a bucket's lower bound within 1/sub_buckets.
    fn check(&mut self, what: &str, ours: u64, theirs: u64, dist: &Value) {
        self.checked += 1;
        let h = &dist["histogram"];
        if h["exact"].as_bool().unwrap() {
            assert_eq!(ours, theirs, "{what}: exact histogram");
            self.exact += 1;
            return;
        }
        let sub = h["sub_buckets"].as_f64().unwrap();
        let rel = (theirs as f64 - ours as f64) / theirs as f64;
        assert!(
            ours <= theirs && rel <= 1.0 / sub,
            "{what}: exitscope {ours}, engine {theirs} (rel {rel:.5}, bound {:.5})",
            1.0 / sub
        );
        self.worst = self.worst.max(rel);
    }
}

fn reasons(report: &Value) -> BTreeMap<String, Value> {
    report["exits"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every check against one engine's answers.
fn check_engine(engine: &str, fleet: &Fleet, got: &Value) {
    let mut agree = Agreement::default();
    // The whole fleet: counts exactly, percentiles within the stated error.
    let all = report(&fleet.trace_args(|_, _| true));
    let want = reasons(&all);
    let rows = got["per_reason"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{engine}: reasons {rows:?}");
    for row in rows {
        let name = row["reason"].as_str().unwrap();
        let r = &want[name];
        let h = &r["handling"];
        assert_eq!(
            (u(&row["exits"]), u(&row["timed"])),
            (u(&r["count"]), u(&h["count"])),
            "{engine} {name}"
        );
        agree.check(&format!("{engine} {name} p50"), u(&h["p50_ns"]), u(&row["p50_ns"]), h);
        agree.check(&format!("{engine} {name} p99"), u(&h["p99_ns"]), u(&row["p99_ns"]), h);
    }
    // Per host: the hosts of `merge --by host`.
    let by_host = merged(fleet, true);
    let hosts: BTreeMap<String, BTreeMap<String, Value>> = by_host["merged"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_string(), reasons(&h["report"])))
        .collect();
    assert_eq!(hosts.len(), HOSTS.len());
    let rows = got["per_host_reason"].as_array().unwrap();
    assert_eq!(rows.len(), HOSTS.len() * want.len(), "{engine}: one row per host and reason");
    for row in rows {
        let (host, name) = (row["host"].as_str().unwrap(), row["reason"].as_str().unwrap());
        let h = &hosts[host][name]["handling"];
        assert_eq!(u(&row["timed"]), u(&h["count"]), "{engine} {host} {name}");
        agree.check(&format!("{engine} {host} {name} p50"), u(&h["p50_ns"]), u(&row["p50_ns"]), h);
        agree.check(&format!("{engine} {host} {name} p99"), u(&h["p99_ns"]), u(&row["p99_ns"]), h);
    }
    // By kernel and microcode: each group is the merge of its hosts' reports.
    let rows = got["by_kernel_microcode"].as_array().unwrap();
    for &(kernel, microcode) in &[("6.1.0-fleet-a", "0xa1"), ("6.6.0-fleet-b", "0xb2")] {
        let files: Vec<String> = HOSTS
            .iter()
            .filter(|h| h.1 == kernel)
            .flat_map(|h| fleet.trace_args(|_, host| host == h.0))
            .collect();
        let group = reasons(&report(&files));
        for (name, r) in &group {
            let row = rows
                .iter()
                .find(|x| {
                    x["kernel_release"] == kernel
                        && x["microcode"] == microcode
                        && x["reason"] == name.as_str()
                })
                .unwrap_or_else(|| {
                    panic!("{engine}: no row for {kernel} {microcode} {name}: {rows:?}")
                });
            let h = &r["handling"];
            assert_eq!(u(&row["exits"]), u(&h["count"]), "{engine} {kernel} {name}");
            agree.check(
                &format!("{engine} {kernel} {name} p99"),
                u(&h["p99_ns"]),
                u(&row["p99_ns"]),
                h,
            );
        }
    }
    // The host whose p99 moved, and only it, for every reason, by about its slowdown.
    let moved = got["p99_moved"].as_array().unwrap();
    assert_eq!(moved.len(), want.len(), "{engine}: moved {moved:?}");
    for m in moved {
        assert_eq!(m["host"], SLOW.0, "{engine}: {m}");
        let pct = m["change_pct"].as_f64().unwrap();
        assert!((35.0..65.0).contains(&pct), "{engine}: {m}");
    }
    check_preempted(engine, fleet, got, &want);
    println!(
        "{engine}: {} percentiles agree with exitscope's ({} exact, worst relative difference of \
         the bucketed ones {:.4} %, bound {:.4} %); queries took {} s",
        agree.checked,
        agree.exact,
        agree.worst * 100.0,
        100.0 / 512.0,
        got["seconds"]
    );
}

/// Exits the synthetic traces switch out (two `sched_switch` lines each, HLT exits only).
fn switched_out(fleet: &Fleet, host: Option<&str>) -> u64 {
    fleet
        .traces
        .iter()
        .filter(|(_, h, _)| host.is_none_or(|x| x == h))
        .map(|(_, _, t)| {
            let text = std::fs::read_to_string(t).unwrap();
            text.lines().filter(|l| l.contains("sched_switch: prev_comm=qemu")).count() as u64
        })
        .sum()
}

/// The `preempted` and `vm_pid` queries: the switched-out HLT exits and only they are left
/// out, every exit names its VM.
fn check_preempted(engine: &str, fleet: &Fleet, got: &Value, want: &BTreeMap<String, Value>) {
    let per_reason = got["per_reason"].as_array().unwrap();
    let rows = got["p99_not_preempted"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{engine}: {rows:?}");
    let out = switched_out(fleet, None);
    assert!(out > 0);
    for row in rows {
        let name = row["reason"].as_str().unwrap();
        let timed = u(&want[name]["handling"]["count"]);
        if name == "HLT" {
            assert_eq!(u(&row["timed"]), timed - out, "{engine}: HLT without the preempted");
        } else {
            assert_eq!(u(&row["timed"]), timed, "{engine} {name}");
            let all = per_reason.iter().find(|r| r["reason"] == name).unwrap();
            assert_eq!((&row["p50_ns"], &row["p99_ns"]), (&all["p50_ns"], &all["p99_ns"]));
        }
    }
    let rows = got["preempted_by_vm"].as_array().unwrap();
    assert_eq!(rows.len(), HOSTS.len() * want.len(), "{engine}: {rows:?}");
    for row in rows {
        let (host, name) = (row["host"].as_str().unwrap(), row["reason"].as_str().unwrap());
        assert_eq!(
            u(&row["vm_pid"]),
            u64::from(exitscope_testkit::synth::VM_PID),
            "{engine}: {row}"
        );
        let want_out = if name == "HLT" { switched_out(fleet, Some(host)) } else { 0 };
        assert_eq!(u(&row["preempted"]), want_out, "{engine} {host} {name}");
        // Exits before a trace's first sched_switch cannot say.
        assert!(u(&row["known"]) <= u(&row["exits"]) && u(&row["known"]) > 0, "{row}");
    }
}

fn python_module(m: &str) -> Option<String> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {m}")])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| format!("python3 module `{m}` not installed (pip install {m})"))
}

fn java() -> Option<String> {
    let ok = Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    (!ok).then(|| "no java (apt-get install openjdk-17-jre-headless)".to_string())
}

#[test]
fn duckdb_reads_the_fleet_export() {
    if !exitscope_testkit::skip_unless("duckdb_reads_the_fleet_export", python_module("duckdb")) {
        return;
    }
    let fleet = fleet();
    let got = query("duckdb", &fleet);
    check_engine("duckdb", &fleet, &got);
}

#[test]
fn spark_reads_the_fleet_export() {
    let missing = java().or_else(|| python_module("pyspark"));
    if !exitscope_testkit::skip_unless("spark_reads_the_fleet_export", missing) {
        return;
    }
    let fleet = fleet();
    let got = query("spark", &fleet);
    check_engine("spark", &fleet, &got);
}

/// A merge of per-host reports is the report of all inputs at once (counts exactly,
/// percentiles within the stated error), through the CLI.
#[test]
fn merge_of_host_reports_equals_one_report_of_everything() {
    let fleet = fleet();
    let all = reasons(&report(&fleet.trace_args(|_, _| true)));
    let m = merged(&fleet, false);
    assert_eq!(m["merged"]["reports"], fleet.traces.len() as u64);
    assert_eq!(m["inputs"].as_array().unwrap().len(), fleet.traces.len());
    let got = reasons(&m);
    assert_eq!(got.keys().collect::<Vec<_>>(), all.keys().collect::<Vec<_>>());
    let mut agree = Agreement::default();
    for (name, r) in &got {
        let a = &all[name];
        for k in ["count", "by_event", "by_tracepoint"] {
            assert_eq!(r[k], a[k], "{name} {k}");
        }
        for k in ["count", "total_ns", "min_ns", "max_ns", "mean_ns"] {
            assert_eq!(r["handling"][k], a["handling"][k], "{name} handling {k}");
        }
        for p in ["p50_ns", "p90_ns", "p99_ns"] {
            agree.check(
                &format!("merge {name} {p}"),
                u(&r["handling"][p]),
                u(&a["handling"][p]),
                &r["handling"],
            );
        }
    }
    // Merged documents merge again, keeping the hosts.
    let by = merged(&fleet, true);
    let again = fleet.dir.join("by-host.json");
    std::fs::write(&again, by.to_string()).unwrap();
    let twice: Value =
        serde_json::from_str(&ok_stdout(&["merge", "--by", "host", again.to_str().unwrap()]))
            .unwrap();
    assert_eq!(twice["merged"]["hosts"].as_array().unwrap().len(), HOSTS.len());
    assert_eq!(twice["exits"]["exits"], by["exits"]["exits"]);
}

#[test]
fn bad_inputs_name_the_file_and_position() {
    let dir = TempDir::new("parquet-bad");
    let bad = dir.join("host1.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"roots\": \"many\"}").unwrap();
    let o = exitscope(&["merge", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("host1.json:1:"), "{}", stderr(&o));
    // --parquet writes a directory: -o is refused before anything is written.
    let trace = dir.join("t.txt");
    let spec = HostSpec { seed: 1, exits: 3, vcpus: 1, slowdown: 1.0 };
    std::fs::write(&trace, kvm_event_trace(&spec)).unwrap();
    let out = dir.join("out");
    let o = exitscope(&["export", "--parquet", out.to_str().unwrap(), trace.to_str().unwrap()])
        .status
        .success();
    assert!(o);
    let again = dir.join("again");
    let o = exitscope(&[
        "export",
        "--parquet",
        again.to_str().unwrap(),
        "-o",
        dir.join("x").to_str().unwrap(),
        trace.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("-o does not apply"), "{}", stderr(&o));
    // Nothing half-written.
    assert!(out.join("exits.parquet").exists());
    assert!(!Path::new(&again.join("exits.parquet")).exists());
}

/// `vm_pid` and `preempted` of the fixtures made for them, read back by DuckDB: event text with
/// the `record-tgid` column and `sched_switch`es, a function graph with task switches inside
/// `vcpu_enter_guest`, and a trace.dat with exitscope's tgids option (which `trace-cmd report`
/// still reads).
#[test]
fn duckdb_reads_vm_pid_and_preempted() {
    if !exitscope_testkit::skip_unless("duckdb_reads_vm_pid_and_preempted", python_module("duckdb"))
    {
        return;
    }
    let dir = TempDir::new("parquet-preempted");
    let dat = dir.join("sched.dat");
    let fx = exitscope_tracedat::write::fixture::kvm_sched_tgids(
        7,
        exitscope_tracedat::Compression::Zstd,
    );
    std::fs::write(&dat, fx.to_bytes()).unwrap();
    if Command::new("trace-cmd").arg("--version").output().is_ok() {
        let o = Command::new("trace-cmd").args(["report", "-N", "-i"]).arg(&dat).output().unwrap();
        assert!(o.status.success(), "trace-cmd: {}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stderr.is_empty(), "trace-cmd: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(text.matches("sched_switch:").count(), 2, "{text}");
        assert_eq!(text.matches("kvm_exit:").count(), 4, "{text}");
    } else {
        println!("SKIP: trace-cmd report of the tgids fixture: trace-cmd not installed");
    }
    let inputs = [
        ("events", root().join("tests/data/fgraph/events-tgid-sched.txt")),
        ("graph", root().join("tests/data/fgraph/task-switch-in-exit.txt")),
        ("dat", dat),
    ];
    let mut got = BTreeMap::new();
    for (name, input) in &inputs {
        let out = dir.join(name);
        let o = exitscope(&["export", "--parquet", out.to_str().unwrap(), input.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let sql = format!(
            "SELECT reason, vcpu_tid, vm_pid, preempted, duration_ns FROM \
             read_parquet('{}/exits.parquet') ORDER BY seq",
            out.display()
        );
        let py = format!(
            "import duckdb, json\nrows = duckdb.sql({sql:?}).fetchall()\nprint(json.dumps(rows))"
        );
        let o = Command::new("python3").args(["-c", &py]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
        got.insert(*name, rows);
    }
    let want = serde_json::json!({
        "events": [
            ["CPUID", 4243, 4240, null, 2000],
            ["HLT", 4242, 4240, true, 810000],
            ["CPUID", 4243, 4240, false, 2000],
            ["IO", 5101, null, true, 60000],
            ["CPUID", 4243, 4240, false, null],
        ],
        "graph": [
            ["CPUID", 4242, null, false, 5684],
            ["HLT", 4242, null, true, 817000],
            ["CPUID", 4243, null, true, 65000],
        ],
        // In the order the exits ended (`seq`).
        "dat": [
            ["CPUID", 4243, 4240, false, 300],
            ["HLT", 4242, 4240, true, 8100],
            ["CPUID", 4242, 4240, false, 200],
            ["CPUID", 4244, null, false, null],
        ],
    });
    for (name, rows) in &got {
        assert_eq!(rows, &want[*name], "{name}");
    }
    // perf.data: every sample names its process (the test writer's VM, pid 4000, threads
    // 4001 and 4002); no sched_switch recorded, so preempted is unknown.
    let out = dir.join("perf");
    let perf = root().join("tests/data/perfdata/kvm-stat-vmx.data");
    let o = exitscope(&["export", "--parquet", out.to_str().unwrap(), perf.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sql = format!(
        "SELECT vm_pid, vcpu_tid, count(preempted) AS known, count(*) AS n FROM \
         read_parquet('{}/exits.parquet') GROUP BY ALL ORDER BY vcpu_tid",
        out.display()
    );
    let py = format!("import duckdb, json\nprint(json.dumps(duckdb.sql({sql:?}).fetchall()))");
    let o = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows, serde_json::json!([[4000, 4001, 0, 20], [4000, 4002, 0, 20]]));
}

/// `merge` of `top --json` lines: the intervals of one capture, written by top's own writer,
/// merge into the report of the whole capture (counts exactly, percentiles within the stated
/// error); two such files merged by host keep each host; a file of report documents one after
/// another merges too.
#[test]
fn merge_of_top_intervals_equals_the_report_of_the_capture() {
    use exitscope_analyze::AnalysisOptions;
    use exitscope_analyze::live::LiveExits;
    let dir = TempDir::new("merge-top");
    let mut traces = Vec::new();
    for (h, host) in ["web-01", "web-02"].iter().enumerate() {
        let spec = HostSpec { seed: 40 + h as u64, exits: 6000, vcpus: 2, slowdown: 1.0 };
        let text = kvm_event_trace(&spec);
        let trace = dir.join(&format!("{host}.txt"));
        std::fs::write(&trace, &text).unwrap();
        // Cut after every 500th exit: no exit straddles a boundary.
        let mut live = LiveExits::new(AnalysisOptions::default(), "trace_pipe");
        let mut parser = exitscope_ftrace::TextParser::new("trace_pipe");
        let mut jsonl = Vec::new();
        let (mut n, mut secs) = (0, 0);
        for (i, l) in text.lines().enumerate() {
            parser.line(l.as_bytes(), i as u64 + 1, &mut live);
            if l.contains("kvm_entry:") {
                n += 1;
                if n % 500 == 0 {
                    secs += 1;
                    let iv = live.cut(std::time::Duration::from_secs(secs));
                    exitscope_render::top::write_json_line(&iv, &mut jsonl).unwrap();
                }
            }
        }
        let top = dir.join(&format!("top-{host}.jsonl"));
        std::fs::write(&top, jsonl).unwrap();
        traces.push((host.to_string(), trace, top));
    }
    let mut agree = Agreement::default();
    for (host, trace, top) in &traces {
        let want = report(&[trace.to_str().unwrap().to_string()]);
        let got: Value =
            serde_json::from_str(&ok_stdout(&["merge", top.to_str().unwrap()])).unwrap();
        assert_eq!(got["merged"]["reports"], 12, "{host}: one report per interval");
        assert_eq!(got["exits"]["exits"], want["exits"]["exits"]);
        assert_eq!(got["events"], want["events"]);
        let (g, w) = (reasons(&got), reasons(&want));
        assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
        for (name, r) in &g {
            assert_eq!(r["count"], w[name]["count"], "{host} {name}");
            for k in ["count", "total_ns", "min_ns", "max_ns", "mean_ns"] {
                assert_eq!(r["handling"][k], w[name]["handling"][k], "{host} {name} {k}");
            }
            for p in ["p50_ns", "p99_ns"] {
                agree.check(
                    &format!("{host} {name} {p}"),
                    u(&r["handling"][p]),
                    u(&w[name]["handling"][p]),
                    &r["handling"],
                );
            }
        }
    }
    // Two hosts' top files, by host.
    let args: Vec<String> = traces.iter().map(|(h, _, t)| format!("{h}={}", t.display())).collect();
    let mut cmd = vec!["merge", "--by", "host"];
    cmd.extend(args.iter().map(String::as_str));
    let by: Value = serde_json::from_str(&ok_stdout(&cmd)).unwrap();
    let hosts: Vec<&str> = by["merged"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-01", "web-02"]);
    assert_eq!(by["exits"]["exits"], 12_000);
    // Report documents one after another in one file, as `report --json` of each host
    // appended, merge the same as the two files.
    let both = dir.join("both.jsonl");
    let mut text = String::new();
    for (_, trace, _) in &traces {
        text.push_str(&report(&[trace.to_str().unwrap().to_string()]).to_string());
        text.push('\n');
    }
    std::fs::write(&both, text).unwrap();
    let m: Value = serde_json::from_str(&ok_stdout(&["merge", both.to_str().unwrap()])).unwrap();
    assert_eq!(
        (m["merged"]["reports"].as_u64(), m["exits"]["exits"].as_u64()),
        (Some(2), Some(12_000))
    );
    println!("merge of top intervals: {} percentiles within the stated error", agree.checked);
    // A bad line names the file and its line.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"interval\": 1, \"seconds\": 1.0}\n{\"interval\": \"two\"}\n").unwrap();
    let o = exitscope(&["merge", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.jsonl:2: expected a `top --json` interval"), "{}", stderr(&o));
}
