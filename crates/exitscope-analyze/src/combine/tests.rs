//! Property: merging per-host reports gives the report of all inputs analysed at once (counts
//! exactly, percentiles within the merged histogram's stated error), over seeded random fleets.

use exitscope_ftrace::parse_reader;
use exitscope_model::{InputFormat, InputSink, InputSummary};
use exitscope_testkit::synth::{HostSpec, Rng, kvm_event_trace};

use super::*;
use crate::histogram::Distribution;
use crate::{Analysis, AnalysisOptions};

fn analyse(inputs: &[(String, String)]) -> Report {
    let mut a = Analysis::new(AnalysisOptions::default());
    for (name, text) in inputs {
        a.begin_input(name, InputFormat::FtraceText);
        let s = parse_reader(name, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    }
    a.finish()
}

/// Through the JSON document, as `exitscope merge` reads it.
fn via_json(r: &Report) -> Report {
    serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap()
}

/// `got` is `want` within the stated error of `got`'s histogram.
fn within(what: &str, got: &Distribution, want: &Distribution) {
    assert_eq!(
        (got.count, got.total_ns, got.min_ns, got.max_ns, got.mean_ns),
        (want.count, want.total_ns, want.min_ns, want.max_ns, want.mean_ns),
        "{what}: counts"
    );
    let h = &got.histogram;
    for (g, w) in [(got.p50_ns, want.p50_ns), (got.p90_ns, want.p90_ns), (got.p99_ns, want.p99_ns)]
    {
        if h.exact {
            assert_eq!(g, w, "{what}: exact percentile");
        } else {
            let err = w as f64 / f64::from(h.sub_buckets);
            assert!((g as f64 - w as f64).abs() <= err + 1.0, "{what}: {g} vs {w} (±{err:.1})");
        }
    }
    let n: u64 = h.bins.iter().map(|b| b.count).sum();
    assert_eq!(n, got.count, "{what}: histogram holds every value");
}

fn fleet(rng: &mut Rng) -> Vec<(String, String)> {
    let hosts = 2 + rng.below(4);
    (0..hosts)
        .map(|h| {
            let spec = HostSpec {
                seed: rng.next_u64(),
                // Some hosts past the exact limit (4096 values), some below.
                exits: 50 + rng.below(6000) as usize,
                vcpus: 1 + rng.below(4) as u32,
                slowdown: if rng.below(3) == 0 { 1.3 } else { 1.0 },
            };
            (format!("host{h}.txt"), kvm_event_trace(&spec))
        })
        .collect()
}

#[test]
fn merging_per_host_reports_equals_one_report_of_all_inputs() {
    let mut rng = Rng::new(18);
    let mut bucketed = 0;
    for case in 0..6 {
        let inputs = fleet(&mut rng);
        let all = analyse(&inputs);
        let parts: Vec<Report> =
            inputs.iter().map(|i| via_json(&analyse(std::slice::from_ref(i)))).collect();
        let merged = merge(&parts);
        assert_eq!(merged.inputs, all.inputs, "case {case}");
        assert_eq!(merged.events, all.events, "case {case}");
        assert_eq!(merged.roots, all.roots);
        let (mx, ax) = (merged.exits.as_ref().unwrap(), all.exits.as_ref().unwrap());
        assert_eq!(
            (mx.exits, mx.unpaired_exits, mx.unmatched_entries, mx.span_ns, &mx.source, &mx.isa),
            (ax.exits, ax.unpaired_exits, ax.unmatched_entries, ax.span_ns, &ax.source, &ax.isa),
            "case {case}"
        );
        let names =
            |x: &ExitsReport| x.reasons.iter().map(|r| r.reason.clone()).collect::<Vec<_>>();
        assert_eq!(names(mx), names(ax), "case {case}: same reasons, same order");
        for (m, a) in mx.reasons.iter().zip(&ax.reasons) {
            let what = format!("case {case} {}", m.reason);
            assert_eq!(
                (m.count, m.by_event, m.by_tracepoint, &m.vendor, &m.evidence),
                (a.count, a.by_event, a.by_tracepoint, &a.vendor, &a.evidence),
                "{what}"
            );
            assert!((m.samples_pct - a.samples_pct).abs() < 1e-9, "{what}");
            assert_eq!(m.rate_per_s.map(f64::to_bits), a.rate_per_s.map(f64::to_bits), "{what}");
            let (mh, ah) = (m.handling.as_ref().unwrap(), a.handling.as_ref().unwrap());
            within(&format!("{what} handling"), mh, ah);
            bucketed += usize::from(!mh.histogram.exact);
            within(
                &format!("{what} inter_arrival"),
                m.inter_arrival.as_ref().unwrap(),
                a.inter_arrival.as_ref().unwrap(),
            );
            assert!((m.time_pct.unwrap() - a.time_pct.unwrap()).abs() < 1e-9, "{what}");
            assert_eq!(m.keys, a.keys, "{what}: keys (few: merging the top 8s is exact)");
        }
        // By host: each host's part is its own report; the whole is the same merge.
        let named: Vec<(String, Report)> =
            inputs.iter().map(|(n, _)| n.clone()).zip(parts.iter().cloned()).collect();
        let by = merge_by_host(named);
        let hosts = &by.merged.as_ref().unwrap().hosts;
        assert_eq!(hosts.len(), inputs.len());
        for (h, p) in hosts.iter().zip(&parts) {
            let (hx, px) = (h.report.exits.as_ref().unwrap(), p.exits.as_ref().unwrap());
            assert_eq!(hx.exits, px.exits, "{}", h.host);
            for (a, b) in hx.reasons.iter().zip(&px.reasons) {
                assert_eq!((a.count, &a.handling), (b.count, &b.handling), "{}", h.host);
            }
        }
        assert_eq!(by.exits.as_ref().unwrap().exits, ax.exits);
    }
    assert!(bucketed > 0, "some merged histograms went past the exact limit");
}

#[test]
fn trees_and_flat_profiles_merge_by_path_and_function() {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/seed/cpuid-amd.fgraph.txt"
    ))
    .unwrap();
    let one = ("a".to_string(), seed.clone());
    let two = ("b".to_string(), seed);
    let all = analyse(&[one.clone(), two.clone()]);
    let merged = merge(&[via_json(&analyse(&[one])), via_json(&analyse(&[two]))]);
    let (m, a) = (&merged.tree[0], &all.tree[0]);
    assert_eq!(
        (m.count, m.total_ns, m.self_ns, m.min_ns, m.max_ns),
        (2, Some(8556), a.self_ns, a.min_ns, a.max_ns)
    );
    assert_eq!(m.mean_ns, a.mean_ns);
    assert_eq!((m.p50_ns, m.p99_ns), (None, None), "no per-path histogram in the JSON");
    assert_eq!(m.children.len(), a.children.len());
    assert!(!merged.percentiles_exact);
    for (x, y) in merged.flat.iter().zip(&all.flat) {
        assert_eq!(
            (&x.function, x.calls, x.count, x.total_ns, x.self_ns, x.p50_ns, x.p99_ns),
            (&y.function, y.calls, y.count, y.total_ns, y.self_ns, y.p50_ns, y.p99_ns)
        );
    }
    let exits = merged.exits.unwrap();
    assert_eq!(exits.exits, 2);
    assert_eq!(exits.reasons[0].total, all.exits.unwrap().reasons[0].total);
}

/// Reports made in memory carry a histogram per call path: their merge gives the call-tree
/// percentiles of one report of all inputs (exact here: few calls per path).
#[test]
fn call_tree_percentiles_come_from_merged_path_histograms() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/");
    let inputs: Vec<(String, String)> = ["seed/cpuid-amd.fgraph.txt", "fgraph/proc-column.txt"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read_to_string(format!("{dir}{f}")).unwrap()))
        .collect();
    let all = analyse(&inputs);
    let parts: Vec<Report> = inputs.iter().map(|i| analyse(std::slice::from_ref(i))).collect();
    let merged = merge(&parts);
    fn walk(m: &[TreeNode], a: &[TreeNode], path: &str, n: &mut usize) {
        assert_eq!(m.len(), a.len(), "{path}");
        for (x, y) in m.iter().zip(a) {
            let p = format!("{path};{}", x.display_name());
            assert_eq!(x.display_name(), y.display_name());
            assert_eq!((x.count, x.p50_ns, x.p99_ns), (y.count, y.p50_ns, y.p99_ns), "{p}");
            if y.p50_ns.is_some() {
                *n += 1;
            }
            walk(&x.children, &y.children, &p, n);
        }
    }
    let mut n = 0;
    walk(&merged.tree, &all.tree, "", &mut n);
    assert!(n > 3, "paths with percentiles: {n}");
    assert!(merged.tree.iter().any(|t| t.p99_ns.is_some()));
}
