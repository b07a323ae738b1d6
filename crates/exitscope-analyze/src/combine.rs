//! Combining reports: many hosts' `report --json` documents into one (`exitscope merge`).
//!
//! Counts, totals, minima and maxima combine exactly. Percentiles come from the merged
//! histogram ([`crate::histogram`]): every distribution in a report carries one whose bin
//! bounds are fixed by its `sub_buckets`, so histograms from any number of reports merge by
//! adding counts. The merged percentile is exact while the merged histogram is (`exact`:
//! at most 4096 values, each kept), and otherwise the lower bound of a bucket of relative width
//! at most `1 / sub_buckets` holding the true value: 0.2 % for exit statistics (512), 25 %
//! for the flat profile's display histograms (4). For the same inputs, merging per-host
//! reports gives the same counts and, for exit statistics, the same buckets as one report of
//! all inputs at once (a property test below checks it).
//!
//! What cannot be merged is said, not guessed: call-tree percentiles come from the paths' merged
//! histograms where every part has them (reports made in memory carry one per path,
//! [`TreeNode::histogram`]); the JSON document leaves per-path histograms out (they would be
//! most of its size, and of every golden), so a merge of `report --json` documents gives
//! `null` call-tree percentiles (per-path percentiles of a fleet: `calls.parquet`'s histogram
//! columns); the per-reason `keys` are the top 8 of the
//! top 8s; `notes` are the union of the parts' notes; per-vCPU breakdowns are left out (vCPU
//! numbers of different hosts are not the same vCPUs); `host` is kept only when every part
//! names the same one.
//!
//! With hosts ([`merge_by_host`]), each host's reports are merged first and kept in
//! [`Merged::hosts`], then all hosts into the document itself.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use exitscope_model::Nanos;

use crate::exits::{ExitsReport, NameCount, ReasonStats, VendorName};
use crate::histogram::{Distribution, Histogram};
use crate::report::{
    FlatEntry, IncompleteFunction, OrphanFunction, Report, SCHEMA_VERSION, TreeNode,
};

/// Most keys kept per reason (as the analysis keeps).
const MAX_KEYS: usize = 8;

/// What a merged report was made of (`"merged"` in the JSON document).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Merged {
    /// Reports combined.
    pub reports: u64,
    /// How percentiles were obtained and how far off they can be.
    pub percentiles: String,
    /// Per host (with `--by host`): that host's reports merged, in host order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostReport>,
}

/// One host's reports, merged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostReport {
    /// Host name.
    pub host: String,
    /// The host's merged report (without a `merged` of its own).
    pub report: Report,
}

const PERCENTILES: &str = "nearest rank over the merged histogram: exact where the histogram \
    says exact, else a bucket's lower bound within 1/sub_buckets of the true value (exits: \
    0.2 %, flat profile: 25 %); call-tree percentiles are null when a part has no per-path \
    histogram (report --json documents leave them out; calls.parquet has them)";

/// Combine `reports` into one, as if their inputs had been analysed together (see the module
/// docs for what is exact). An empty slice gives an empty report.
pub fn merge(reports: &[Report]) -> Report {
    let mut out =
        Report { schema_version: SCHEMA_VERSION, percentiles_exact: true, ..Default::default() };
    for r in reports {
        out.inputs.extend(r.inputs.iter().cloned());
        out.roots += r.roots;
        out.lost_events.markers = out.lost_events.markers.saturating_add(r.lost_events.markers);
        out.lost_events.events = out.lost_events.events.saturating_add(r.lost_events.events);
        out.lost_events.uncounted_markers =
            out.lost_events.uncounted_markers.saturating_add(r.lost_events.uncounted_markers);
        out.diagnostics.extend(r.diagnostics.iter().cloned());
        out.diagnostic_counts.errors += r.diagnostic_counts.errors;
        out.diagnostic_counts.warnings += r.diagnostic_counts.warnings;
        out.incomplete.count += r.incomplete.count;
        out.incomplete.discarded_calls += r.incomplete.discarded_calls;
        out.orphans.count += r.orphans.count;
        for (k, v) in &r.events {
            *out.events.entry(k.clone()).or_insert(0) += v;
        }
    }
    out.incomplete.functions = merge_keyed(
        reports.iter().flat_map(|r| &r.incomplete.functions),
        |f| (f.function.clone(), f.module.clone(), f.reason.clone()),
        |a: &mut IncompleteFunction, b| a.count += b.count,
    );
    out.orphans.functions = merge_keyed(
        reports.iter().flat_map(|r| &r.orphans.functions),
        |f| (f.function.clone(), f.module.clone()),
        |a: &mut OrphanFunction, b| {
            a.count += b.count;
            a.total_ns = a.total_ns.saturating_add(b.total_ns);
        },
    );
    // One recording host when every part names the same one; else unknown, never a guess.
    out.host = match reports.first().and_then(|r| r.host.as_ref()) {
        Some(h) if reports.iter().all(|r| r.host.as_ref() == Some(h)) => Some(h.clone()),
        _ => None,
    };
    let (flat, flat_exact) = merge_flat(reports);
    out.flat = flat;
    out.tree = merge_trees(reports.iter().map(|r| r.tree.as_slice()));
    let (exits, exits_exact) = merge_exits(reports.iter().filter_map(|r| r.exits.as_ref()));
    out.exits = exits;
    out.percentiles_exact = flat_exact && exits_exact && trees_exact(&out.tree);
    out.merged = Some(Merged {
        reports: reports.len() as u64,
        percentiles: PERCENTILES.to_string(),
        hosts: Vec::new(),
    });
    out
}

/// Combine `(host, report)` pairs: each host's reports merged (kept in `merged.hosts`, hosts
/// sorted by name), then all of them. A report that is itself a merge by host contributes
/// its hosts (so fleets merge in stages: rack, then region).
pub fn merge_by_host(reports: Vec<(String, Report)>) -> Report {
    let mut by: BTreeMap<String, Vec<Report>> = BTreeMap::new();
    for (h, mut r) in reports {
        match r.merged.take() {
            Some(m) if !m.hosts.is_empty() => {
                for hr in m.hosts {
                    by.entry(hr.host).or_default().push(hr.report);
                }
            }
            _ => by.entry(h).or_default().push(r),
        }
    }
    let mut hosts = Vec::with_capacity(by.len());
    let mut all = Vec::new();
    for (host, rs) in by {
        let mut report = merge(&rs);
        report.merged = None;
        all.extend(rs);
        hosts.push(HostReport { host, report });
    }
    let mut out = merge(&all);
    if let Some(m) = out.merged.as_mut() {
        m.hosts = hosts;
    }
    out
}

/// Items with equal keys combined by `add`, in first-seen order.
fn merge_keyed<'a, T: Clone + 'a, K: std::hash::Hash + Eq>(
    items: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> K,
    add: impl Fn(&mut T, &T),
) -> Vec<T> {
    let mut index: FxHashMap<K, usize> = FxHashMap::default();
    let mut out: Vec<T> = Vec::new();
    for it in items {
        match index.get(&key(it)) {
            Some(&i) => add(&mut out[i], it),
            None => {
                index.insert(key(it), out.len());
                out.push(it.clone());
            }
        }
    }
    out
}

fn add_opt(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn min_opt(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn mean(total: Nanos, n: u64) -> Option<Nanos> {
    let (t, n) = (u128::from(total), u128::from(n));
    (n > 0).then(|| u64::try_from((t + n / 2) / n).unwrap_or(Nanos::MAX))
}

/// The flat profiles merged by function; whether every merged histogram is exact.
fn merge_flat(reports: &[Report]) -> (Vec<FlatEntry>, bool) {
    let mut hists: Vec<Histogram> = Vec::new();
    let mut index: FxHashMap<(String, Option<String>), usize> = FxHashMap::default();
    let mut out: Vec<FlatEntry> = Vec::new();
    let mut sub = 512;
    for e in reports.iter().flat_map(|r| &r.flat) {
        sub = sub.min(e.histogram.sub_buckets.max(1));
        let k = (e.function.clone(), e.module.clone());
        let i = *index.entry(k).or_insert_with(|| {
            out.push(FlatEntry {
                function: e.function.clone(),
                module: e.module.clone(),
                ..Default::default()
            });
            hists.push(Histogram::default());
            out.len() - 1
        });
        let m = &mut out[i];
        m.calls += e.calls;
        m.count += e.count;
        m.total_ns = add_opt(m.total_ns, e.total_ns);
        m.self_ns = add_opt(m.self_ns, e.self_ns);
        m.min_ns = min_opt(m.min_ns, e.min_ns);
        m.max_ns = m.max_ns.max(e.max_ns);
        e.histogram.merge_into(&mut hists[i]);
    }
    let mut exact = true;
    for (m, h) in out.iter_mut().zip(&hists) {
        exact &= h.is_exact();
        m.mean_ns = m.total_ns.and_then(|t| mean(t, h.count().max(1)));
        let p = h.percentiles(&[50.0, 99.0]);
        (m.p50_ns, m.p99_ns) = (p[0], p[1]);
        m.histogram = h.to_json(sub);
    }
    out.sort_by(|a, b| {
        b.total_ns.cmp(&a.total_ns).then(b.calls.cmp(&a.calls)).then(a.function.cmp(&b.function))
    });
    (out, exact)
}

/// Trees merged by call path (function, module, interrupt), children in first-seen order.
fn merge_trees<'a>(trees: impl Iterator<Item = &'a [TreeNode]>) -> Vec<TreeNode> {
    let mut out: Vec<TreeNode> = Vec::new();
    for t in trees {
        add_nodes(&mut out, t);
    }
    finish_nodes(&mut out);
    out
}

fn add_nodes(into: &mut Vec<TreeNode>, from: &[TreeNode]) {
    for n in from {
        let i = match into.iter().position(|m| {
            m.function == n.function && m.module == n.module && m.interrupt == n.interrupt
        }) {
            Some(i) => i,
            None => {
                into.push(TreeNode {
                    function: n.function.clone(),
                    module: n.module.clone(),
                    interrupt: n.interrupt,
                    ..Default::default()
                });
                into.len() - 1
            }
        };
        let m = &mut into[i];
        m.count += n.count;
        m.total_ns = add_opt(m.total_ns, n.total_ns);
        m.self_ns = add_opt(m.self_ns, n.self_ns);
        m.min_ns = min_opt(m.min_ns, n.min_ns);
        m.max_ns = m.max_ns.max(n.max_ns);
        // The path's histogram, where the part has one (reports made in memory; the JSON
        // document leaves it out): a part without one leaves the sum short of the count, and
        // the merged percentiles null.
        if !n.histogram.bins.is_empty() {
            let mut h = Histogram::default();
            m.histogram.merge_into(&mut h);
            n.histogram.merge_into(&mut h);
            m.histogram = h.to_json(512);
        }
        add_nodes(&mut m.children, &n.children);
    }
}

/// Whether every node's histogram holds all its calls, exactly.
fn trees_exact(nodes: &[TreeNode]) -> bool {
    nodes.iter().all(|n| n.histogram.exact && n.p50_ns.is_some() && trees_exact(&n.children))
}

fn finish_nodes(nodes: &mut [TreeNode]) {
    for n in nodes {
        n.mean_ns = n.total_ns.and_then(|t| mean(t, n.count));
        let held: u64 = n.histogram.bins.iter().map(|b| b.count).sum();
        if n.count > 0 && held == n.count {
            let mut h = Histogram::default();
            n.histogram.merge_into(&mut h);
            let p = h.percentiles(&[50.0, 99.0]);
            (n.p50_ns, n.p99_ns) = (p[0], p[1]);
        } else {
            (n.p50_ns, n.p99_ns) = (None, None);
            n.histogram = Default::default();
        }
        finish_nodes(&mut n.children);
    }
}

/// One distribution merged from several; `None` when none has values.
fn merge_dist<'a>(parts: impl Iterator<Item = &'a Distribution>) -> Option<Distribution> {
    let mut h = Histogram::default();
    let mut d = Distribution::default();
    let mut sub = 512;
    let mut any = false;
    for p in parts {
        if p.count == 0 {
            continue;
        }
        if !any || p.min_ns < d.min_ns {
            d.min_ns = p.min_ns;
        }
        any = true;
        d.count += p.count;
        d.total_ns = d.total_ns.saturating_add(p.total_ns);
        d.max_ns = d.max_ns.max(p.max_ns);
        sub = sub.min(p.histogram.sub_buckets.max(1));
        p.histogram.merge_into(&mut h);
    }
    if !any {
        return None;
    }
    d.mean_ns = mean(d.total_ns, d.count).unwrap_or(0);
    let p = h.percentiles(&[50.0, 90.0, 99.0]);
    (d.p50_ns, d.p90_ns, d.p99_ns) = (p[0].unwrap_or(0), p[1].unwrap_or(0), p[2].unwrap_or(0));
    d.histogram = h.to_json(sub);
    Some(d)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// The exit views merged by reason; whether every merged histogram is exact.
fn merge_exits<'a>(parts: impl Iterator<Item = &'a ExitsReport>) -> (Option<ExitsReport>, bool) {
    let parts: Vec<&ExitsReport> = parts.collect();
    if parts.is_empty() {
        return (None, true);
    }
    let mut x = ExitsReport::default();
    let mut sources: Vec<&str> = Vec::new();
    let mut isa: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &parts {
        if p.source != "none" && !sources.contains(&p.source.as_str()) {
            sources.push(&p.source);
        }
        if let Some(i) = &p.isa {
            *isa.entry(i).or_insert(0) += p.exits.max(1);
        }
        x.exits += p.exits;
        x.whole_roots += p.whole_roots;
        x.split_roots += p.split_roots;
        x.roots_without_run += p.roots_without_run;
        x.unattributed_ns = x.unattributed_ns.saturating_add(p.unattributed_ns);
        x.handling_time_available |= p.handling_time_available;
        x.span_ns = add_opt(x.span_ns, p.span_ns);
        x.timestamp_resolution_ns = x.timestamp_resolution_ns.max(p.timestamp_resolution_ns);
        x.unpaired_exits += p.unpaired_exits;
        x.unmatched_entries += p.unmatched_entries;
        x.out_of_order += p.out_of_order;
        x.userspace_exits += p.userspace_exits;
        x.harness_exits += p.harness_exits;
        for n in &p.notes {
            if !x.notes.contains(n) {
                x.notes.push(n.clone());
            }
        }
    }
    x.source = match sources.as_slice() {
        [] => "none".to_string(),
        [one] => (*one).to_string(),
        _ => "mixed".to_string(),
    };
    x.isa = isa
        .iter()
        .max_by_key(|&(name, n)| (*n, std::cmp::Reverse(*name)))
        .map(|(i, _)| i.to_string());
    let mut groups: Vec<Vec<&ReasonStats>> = Vec::new();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for r in parts.iter().flat_map(|p| &p.reasons) {
        let i = *index.entry(&r.reason).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(r);
    }
    let mut exact = true;
    let mut rows: Vec<ReasonStats> = groups
        .iter()
        .map(|g| {
            let mut dist = |f: fn(&ReasonStats) -> Option<&Distribution>| {
                let d = merge_dist(g.iter().filter_map(|r| f(r)));
                exact &= d.as_ref().is_none_or(|d| d.histogram.exact);
                d
            };
            let total = dist(|r| r.total.as_ref());
            let before = dist(|r| r.before.as_ref());
            let run = dist(|r| r.run.as_ref());
            let after = dist(|r| r.after.as_ref());
            let other = dist(|r| r.other.as_ref());
            let completion = dist(|r| r.completion.as_ref());
            let handling = dist(|r| r.handling.as_ref());
            let inter_arrival = dist(|r| r.inter_arrival.as_ref());
            let mut vendor: Vec<VendorName> = merge_keyed(
                g.iter().flat_map(|r| &r.vendor),
                |v| v.name.clone(),
                |a: &mut VendorName, b| a.count += b.count,
            );
            vendor.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
            let mut evidence = merge_names(g.iter().flat_map(|r| &r.evidence));
            evidence.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
            let mut keys = merge_names(g.iter().flat_map(|r| &r.keys));
            keys.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
            keys.truncate(MAX_KEYS);
            ReasonStats {
                reason: g[0].reason.clone(),
                vendor,
                count: g.iter().map(|r| r.count).sum(),
                by_event: g.iter().map(|r| r.by_event).sum(),
                by_handler: g.iter().map(|r| r.by_handler).sum(),
                by_tracepoint: g.iter().map(|r| r.by_tracepoint).sum(),
                evidence,
                total,
                before,
                run,
                after,
                other,
                completion,
                handling,
                inter_arrival,
                keys,
                ..Default::default()
            }
        })
        .collect();
    let total_exits: u64 = rows.iter().map(|r| r.count).sum();
    let handling_total: u64 =
        rows.iter().filter_map(|r| r.handling.as_ref()).map(|h| h.total_ns).sum();
    for r in &mut rows {
        r.samples_pct = pct(r.count, total_exits);
        r.time_pct = r.handling.as_ref().map(|h| pct(h.total_ns, handling_total));
        r.rate_per_s = x.span_ns.filter(|_| r.count >= 2).map(|s| r.count as f64 * 1e9 / s as f64);
    }
    rows.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.total.as_ref().map(|t| t.total_ns).cmp(&a.total.as_ref().map(|t| t.total_ns)))
            .then(a.reason.cmp(&b.reason))
    });
    x.reasons = rows;
    (Some(x), exact)
}

fn merge_names<'a>(items: impl Iterator<Item = &'a NameCount>) -> Vec<NameCount> {
    merge_keyed(items, |n| n.name.clone(), |a: &mut NameCount, b| a.count += b.count)
}

#[cfg(test)]
mod tests;
