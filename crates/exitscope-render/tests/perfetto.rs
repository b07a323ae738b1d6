//! Schema checks for the Perfetto / Chrome trace-event JSON: the document parses, every event
//! has the fields its phase needs, every track is named, slices nest properly on each track,
//! and the nesting reproduces the merged tree's paths, counts and total durations.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use common::{analyse_with, seed};
use exitscope_analyze::report::{Report, TreeNode};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline, task_process};

/// Analyse `inputs` once, producing both the report and the timeline.
fn run(inputs: &[(&str, &str)]) -> (Report, Value) {
    let names = inputs.iter().map(|(n, _)| n.to_string()).collect();
    let timeline = PerfettoTimeline::new(Vec::new(), PerfettoOptions::with_inputs(names)).unwrap();
    let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
    let report =
        analyse_with(inputs, Some(&mut calls), Some(&mut records), |i| timeline.begin_input(i));
    let bytes = timeline.finish().unwrap();
    (report, serde_json::from_slice(&bytes).expect("timeline is valid JSON"))
}

#[derive(Debug)]
struct Slice {
    name: String,
    ts: f64,
    dur: f64,
    duration_ns: u64,
}

/// `(pid, tid)`.
type Track = (u64, u64);
/// Slices per track.
type Tracks = BTreeMap<Track, Vec<Slice>>;

/// Checks every event's shape; returns the slices per track, and the instants' tracks.
fn check_schema(doc: &Value) -> (Tracks, BTreeSet<Track>) {
    assert_eq!(doc["displayTimeUnit"], "ns");
    let events = doc["traceEvents"].as_array().expect("traceEvents array");
    let mut named = BTreeSet::new();
    let mut slices: Tracks = BTreeMap::new();
    let mut instants = BTreeSet::new();
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        let track = (e["pid"].as_u64().expect("pid"), e["tid"].as_u64().expect("tid"));
        let name = e["name"].as_str().expect("name").to_string();
        match ph {
            "M" => {
                assert!(
                    ["process_name", "thread_name", "process_sort_index", "thread_sort_index"]
                        .contains(&name.as_str()),
                    "{e}"
                );
                if name == "thread_name" {
                    assert!(e["args"]["name"].is_string(), "{e}");
                    assert!(e["args"]["synthetic_time"].is_boolean(), "{e}");
                    named.insert(track);
                }
            }
            "X" => {
                assert!(named.contains(&track), "slice on an unnamed track: {e}");
                let ts = e["ts"].as_f64().expect("ts");
                let dur = e["dur"].as_f64().expect("dur");
                assert!(ts >= 0.0 && dur >= 0.0, "{e}");
                let duration_ns = e["args"]["duration_ns"].as_u64().expect("args.duration_ns");
                assert!((dur * 1000.0 - duration_ns as f64).abs() < 1e-6, "dur is µs: {e}");
                // Root slices are named by exit reason; the function is in the args.
                let f = e["args"]["function"].as_str().expect("args.function");
                let name = match e["args"]["module"].as_str() {
                    Some(m) => format!("{f} [{m}]"),
                    None => f.to_string(),
                };
                slices.entry(track).or_default().push(Slice { name, ts, dur, duration_ns });
            }
            "i" => {
                assert!(named.contains(&track), "instant on an unnamed track: {e}");
                assert_eq!(e["s"], "t", "{e}");
                assert!(e["ts"].as_f64().is_some(), "{e}");
                instants.insert(track);
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    (slices, instants)
}

/// Nest one track's slices (sorted by start, longest first), failing on a partial overlap;
/// returns (count, summed duration_ns) per `;`-joined call path.
fn nest(slices: &mut [Slice]) -> BTreeMap<String, (u64, u64)> {
    const EPS: f64 = 1e-6;
    slices.sort_by(|a, b| a.ts.total_cmp(&b.ts).then(b.dur.total_cmp(&a.dur)));
    let mut stack: Vec<(String, f64)> = Vec::new(); // (path, end)
    let mut paths: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in slices.iter() {
        while stack.last().is_some_and(|(_, end)| *end <= s.ts + EPS) {
            stack.pop();
        }
        if let Some((p, end)) = stack.last() {
            assert!(s.ts + s.dur <= end + EPS, "{} overlaps the end of {p}", s.name);
        }
        let path = match stack.last() {
            Some((p, _)) => format!("{p};{}", s.name),
            None => s.name.clone(),
        };
        let e = paths.entry(path.clone()).or_default();
        e.0 += 1;
        e.1 += s.duration_ns;
        stack.push((path, s.ts + s.dur));
    }
    paths
}

fn tree_paths(nodes: &[TreeNode], prefix: &str, out: &mut BTreeMap<String, (u64, u64)>) {
    for n in nodes {
        let path = if prefix.is_empty() {
            n.display_name()
        } else {
            format!("{prefix};{}", n.display_name())
        };
        out.insert(path.clone(), (n.count, n.total_ns.unwrap()));
        tree_paths(&n.children, &path, out);
    }
}

/// Sum the per-path tallies of the tracks selected by `keep`.
fn tally(slices: &mut Tracks, keep: impl Fn(&Track) -> bool) -> BTreeMap<String, (u64, u64)> {
    let mut all: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (track, s) in slices.iter_mut() {
        if !keep(track) {
            continue;
        }
        for (p, (c, d)) in nest(s) {
            let e = all.entry(p).or_default();
            e.0 += c;
            e.1 += d;
        }
    }
    all
}

#[test]
fn seed_timeline_nests_like_the_tree() {
    let (amd, intel) = (seed("cpuid-amd.fgraph.txt"), seed("cpuid-intel.fgraph.txt"));
    for inputs in [vec![("amd", amd.as_str())], vec![("intel", intel.as_str())]] {
        let (report, doc) = run(&inputs);
        assert_eq!(doc["otherData"]["synthetic_time"], true, "seed has no timestamps");
        let (mut slices, _) = check_schema(&doc);
        // Seed traces name CPUs but no tasks: one CPU process, a track per CPU.
        assert!(slices.keys().all(|(pid, _)| *pid == 1), "{:?}", slices.keys());
        let got = tally(&mut slices, |_| true);
        let mut want = BTreeMap::new();
        tree_paths(&report.tree, "", &mut want);
        assert_eq!(got, want);
        let total: u64 = want.values().map(|v| v.0).sum();
        assert_eq!(doc["otherData"]["slices"], total);
    }
}

#[test]
fn synthetic_roots_follow_each_other() {
    let amd = seed("cpuid-amd.fgraph.txt");
    let (_, doc) = run(&[("amd", amd.as_str())]);
    let mut roots: Vec<(f64, f64)> = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["depth"] == 0)
        .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect();
    roots.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(roots.len(), 3);
    for w in roots.windows(2) {
        assert!(w[0].0 + w[0].1 < w[1].0, "{roots:?}");
    }
}

#[test]
fn timestamps_tasks_and_events() {
    let text = concat!(
        " 1000.000100 |   0)  qemu-100   |               |  vcpu_enter_guest [kvm]() {\n",
        " 1000.000101 |   0)  qemu-100   |               |    /* kvm_exit: vcpu 0 reason CPUID */\n",
        " 1000.000102 |   0)  qemu-100   |   0.500 us    |    kvm_cpuid [kvm]();\n",
        " 1000.000104 |   0)  qemu-100   |   4.000 us    |  }\n",
        " 1000.000200 |   1)  qemu-101   |               |  vcpu_enter_guest [kvm]() {\n",
        " 1000.000201 |   1)  qemu-101   |   0.300 us    |    kvm_cpuid [kvm]();\n",
        " 1000.000203 |   1)  qemu-101   |   3.000 us    |  }\n",
    );
    let (report, doc) = run(&[("abs", text)]);
    assert_eq!(doc["otherData"]["synthetic_time"], false);
    let (mut slices, instants) = check_schema(&doc);
    let tasks = [task_process(0, 100), task_process(0, 101)];
    let tracks: BTreeSet<_> = slices.keys().copied().collect();
    let want: BTreeSet<_> = [(1, 0), (1, 1), (tasks[0], tasks[0]), (tasks[1], tasks[1])].into();
    assert_eq!(tracks, want, "one track per CPU and one per task");
    assert!(instants.contains(&(1, 0)) && instants.contains(&(tasks[0], tasks[0])));
    // Real time: the first root starts at its timestamp.
    let first = &slices[&(1, 0)][0];
    assert!((first.ts - 1_000_000_100.0).abs() < 1e-3, "{first:?}");
    let mut want = BTreeMap::new();
    tree_paths(&report.tree, "", &mut want);
    assert_eq!(tally(&mut slices, |(pid, _)| *pid == 1), want, "CPU tracks");
    assert_eq!(tally(&mut slices, |(pid, _)| *pid != 1), want, "task tracks");
}

#[test]
fn root_slices_are_named_by_the_analysis_exit_reasons() {
    let amd = seed("cpuid-amd.fgraph.txt");
    let timeline = PerfettoTimeline::new(Vec::new(), PerfettoOptions::default()).unwrap();
    let mut calls = timeline.call_sink();
    let report = analyse_with(&[("amd", amd.as_str())], Some(&mut calls), None, |_| {});
    let doc: Value = serde_json::from_slice(&timeline.finish().unwrap()).unwrap();
    let roots: Vec<(String, String)> = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["depth"] == 0)
        .map(|e| {
            (e["name"].as_str().unwrap().into(), e["args"]["function"].as_str().unwrap().into())
        })
        .collect();
    // The vcpu_enter_guest root is the CPUID exit; roots holding no exit keep their name.
    assert!(roots.contains(&("CPUID".into(), "vcpu_enter_guest".into())), "{roots:?}");
    assert!(
        roots.iter().any(|(n, f)| n == "cpuid_interception [kvm_amd]" && f == "cpuid_interception"),
        "{roots:?}"
    );
    assert_eq!(report.exits.unwrap().reasons[0].reason, "CPUID", "the same name as the report");
}
