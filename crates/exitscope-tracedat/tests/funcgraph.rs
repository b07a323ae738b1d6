//! function_graph: the generated fixtures (see tests/data/tracedat/README.md) give the same
//! call trees through `read` (Entry/Exit records), through `trace-cmd report`'s own
//! function-graph rendering (stored), and through `exitscope convert`'s kernel-style text.

mod common;

use std::collections::BTreeMap;

use common::{Collect, Rec, data_dir};
use exitscope_tracedat::text::{Layout, write_text};

/// (pid, call path) → (calls, total ns).
type Trees = BTreeMap<(u32, Vec<String>), (u64, u64)>;

fn strip_module(f: &str) -> String {
    f.split(" [").next().unwrap_or(f).to_string()
}

fn trees_from_records(recs: &[Rec]) -> Trees {
    let mut stacks: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut t = Trees::new();
    for r in recs {
        match r {
            Rec::Entry { pid, func, depth, .. } => {
                let s = stacks.entry(*pid).or_default();
                assert_eq!(s.len(), *depth as usize, "entry depth of {func}");
                s.push(strip_module(func));
            }
            Rec::Exit { pid, func, depth, duration, .. } => {
                let s = stacks.entry(*pid).or_default();
                assert_eq!(s.last().map(String::as_str), Some(strip_module(func).as_str()));
                assert_eq!(s.len(), *depth as usize + 1);
                let e = t.entry((*pid, s.clone())).or_default();
                e.0 += 1;
                e.1 += duration.unwrap();
                s.pop();
            }
            _ => {}
        }
    }
    t
}

fn parse_us(s: &str) -> u64 {
    let s = s.trim().trim_start_matches(['+', '!', '#', '$', '@', '*']).trim();
    let num = s.strip_suffix("us").unwrap().trim();
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let mut frac = frac.to_string();
    while frac.len() < 3 {
        frac.push('0');
    }
    int.parse::<u64>().unwrap() * 1000 + frac.parse::<u64>().unwrap()
}

/// Applies one function body (`f() {`, `f();`, `}` / `} /* f */`) with its duration column.
fn apply(t: &mut Trees, stacks: &mut BTreeMap<u32, Vec<String>>, pid: u32, dur: &str, body: &str) {
    let s = stacks.entry(pid).or_default();
    let body = body.trim();
    if let Some(f) = body.strip_suffix("() {") {
        s.push(strip_module(f));
    } else if let Some(f) = body.strip_suffix("();") {
        s.push(strip_module(f));
        let e = t.entry((pid, s.clone())).or_default();
        e.0 += 1;
        e.1 += parse_us(dur);
        s.pop();
    } else if body.starts_with('}') {
        let e = t.entry((pid, s.clone())).or_default();
        e.0 += 1;
        e.1 += parse_us(dur);
        s.pop();
    }
}

/// Trees from `trace-cmd report`'s graph lines:
/// `comm-pid [cpu] ts: funcgraph_entry:   DUR us   |  body`.
fn trees_from_trace_cmd(text: &str) -> Trees {
    let mut stacks = BTreeMap::new();
    let mut t = Trees::new();
    for l in text.lines() {
        let Some(i) = l.find(": funcgraph_") else { continue };
        let task = l[..l.find(" [").unwrap()].trim();
        let pid: u32 = task[task.rfind('-').unwrap() + 1..].parse().unwrap();
        let rest = &l[i + 2..];
        let rest = &rest[rest.find(':').unwrap() + 1..];
        let (dur, body) = rest.split_once('|').unwrap();
        apply(&mut t, &mut stacks, pid, dur, body);
    }
    t
}

/// Trees from the kernel-style function_graph text of `exitscope convert`:
/// `secs.usecs |   C)  comm-pid  | DUR | body`.
fn trees_from_kernel_text(text: &str) -> Trees {
    let mut stacks = BTreeMap::new();
    let mut t = Trees::new();
    for l in text.lines() {
        if l.starts_with('#') || !l.contains(") ") {
            continue;
        }
        let cols: Vec<&str> = l.splitn(4, '|').collect();
        if cols.len() < 4 {
            continue;
        }
        let proc_col = cols[1].split_once(')').unwrap().1.trim();
        let pid: u32 = proc_col[proc_col.rfind('-').unwrap() + 1..].parse().unwrap();
        let body = cols[3].strip_prefix("  ").unwrap();
        if body.trim_start().starts_with("/*") {
            continue;
        }
        apply(&mut t, &mut stacks, pid, cols[2], body);
    }
    t
}

fn read_records(name: &str) -> Vec<Rec> {
    let bytes = std::fs::read(data_dir().join(name)).unwrap();
    let mut sink = Collect::default();
    exitscope_tracedat::read(&bytes, name, &mut sink).unwrap();
    assert!(sink.1.is_empty(), "{:?}", sink.1);
    sink.0
}

#[test]
fn call_trees_match_trace_cmd_rendering() {
    let recs = read_records("funcgraph-v7-zstd.dat");
    let mine = trees_from_records(&recs);
    let report =
        std::fs::read_to_string(data_dir().join("funcgraph-v7-zstd.graph.report")).unwrap();
    let theirs = trees_from_trace_cmd(&report);
    assert!(mine.len() >= 10, "{mine:?}");
    assert_eq!(mine, theirs);
}

#[test]
fn call_trees_survive_conversion_to_kernel_text() {
    for name in ["funcgraph-v6.dat", "funcgraph-v7-zstd.dat", "funcgraph-v7-zlib.dat"] {
        let bytes = std::fs::read(data_dir().join(name)).unwrap();
        let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
        let mut out = Vec::new();
        write_text(&t, Layout::Auto, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("# tracer: function_graph"));
        assert!(text.contains("|    kvm_load_guest_xsave_state [kvm]();"), "leaf lines");
        assert!(
            text.contains("/* kvm_exit: vcpu 0 reason CPUID rip 0xfff2 info1 0x0000000000000000")
        );
        assert_eq!(
            trees_from_kernel_text(&text),
            trees_from_records(&read_records(name)),
            "{name}"
        );
    }
}

#[test]
fn all_file_variants_yield_identical_records() {
    let a = read_records("funcgraph-v6.dat");
    assert_eq!(a, read_records("funcgraph-v7-zstd.dat"));
    assert_eq!(a, read_records("funcgraph-v7-zlib.dat"));
}

#[test]
fn counts_and_timestamps_match_trace_cmd_report() {
    for f in ["funcgraph-v6", "funcgraph-v7-zstd"] {
        let recs = read_records(&format!("{f}.dat"));
        let report = std::fs::read_to_string(data_dir().join(format!("{f}.report"))).unwrap();
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        let mut ts = Vec::new();
        let mut want_graph = Vec::new();
        for l in report.lines().skip(1) {
            let rest = &l[l.find("] ").unwrap() + 2..];
            let (t, rest) = rest.trim().split_once(": ").unwrap();
            let (s, n) = t.split_once('.').unwrap();
            ts.push(s.parse::<u64>().unwrap() * 1_000_000_000 + n.parse::<u64>().unwrap());
            let (name, text) = rest.split_once(':').unwrap();
            *want.entry(name.to_string()).or_default() += 1;
            // "--> func (depth)" / "<-- func (depth) (start: X  end: Y) ..."
            let text = text.trim();
            if let Some(r) = text.strip_prefix("--> ").or_else(|| text.strip_prefix("<-- ")) {
                let (func, r) = r.split_once(" (").unwrap();
                let depth: u32 = r[..r.find(')').unwrap()].parse().unwrap();
                let dur = r.split_once("start: ").map(|(_, r)| {
                    let (s, r) = r.split_once("  end: ").unwrap();
                    let e = r.split_once(')').unwrap().0;
                    u64::from_str_radix(e, 16).unwrap() - u64::from_str_radix(s, 16).unwrap()
                });
                want_graph.push((func.to_string(), depth, dur));
            }
        }
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        let mut got_ts = Vec::new();
        let mut got_graph = Vec::new();
        for r in &recs {
            let (name, t) = match r {
                Rec::Entry { ts, func, depth, .. } => {
                    got_graph.push((strip_module(func), *depth, None));
                    ("funcgraph_entry", *ts)
                }
                Rec::Exit { ts, func, depth, duration, .. } => {
                    got_graph.push((strip_module(func), *depth, *duration));
                    ("funcgraph_exit", *ts)
                }
                Rec::Event { ts, name, .. } => (name.as_str(), *ts),
                _ => continue,
            };
            *got.entry(name.to_string()).or_default() += 1;
            got_ts.push(t);
        }
        assert_eq!(got, want, "{f}: counts");
        assert_eq!((got_ts.first(), got_ts.last()), (ts.first(), ts.last()), "{f}: first/last");
        assert_eq!(got_ts, ts, "{f}: all timestamps");
        assert_eq!(got_graph, want_graph, "{f}: function, depth, duration of each graph record");
    }
}
