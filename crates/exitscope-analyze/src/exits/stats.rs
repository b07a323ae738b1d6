//! The one per-reason statistic over exit records, whatever their source.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use exitscope_model::Nanos;
use exitscope_model::exit::{ExitKey, ExitKind, Isa, vendor_reason};

use super::events::{GraphPair, VcpuKey, vcpu_key};
use super::{
    ExitRecord, ExitSource, ExitsReport, NameCount, ReasonId, ReasonStats, Reasons, VendorName,
};
use crate::histogram::{Distribution, DurationStats};

/// Resolution of the histograms in exit statistics (sub-buckets per power of two).
const SUB_BUCKETS: u32 = 512;
/// Most keys listed per reason.
const MAX_KEYS: usize = 8;

#[derive(Clone, Debug, Default)]
struct ReasonAcc {
    count: u64,
    by_event: u64,
    by_handler: u64,
    by_tracepoint: u64,
    vendor: FxHashMap<ReasonId, u64>,
    evidence: FxHashMap<String, u64>,
    /// Exits whose evidence follows from their reason and source (events, tracepoints),
    /// named at the end: no string per exit.
    implied: FxHashMap<(ReasonId, ExitSource), u64>,
    total: DurationStats,
    before: DurationStats,
    run: DurationStats,
    after: DurationStats,
    other: DurationStats,
    completion: DurationStats,
    handling: DurationStats,
    gaps: DurationStats,
    last: FxHashMap<VcpuKey, Nanos>,
    keys: FxHashMap<ExitKey, u64>,
}

/// Per-input timestamp facts.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    first: Option<Nanos>,
    last: Option<Nanos>,
}

/// Accumulates [`ExitRecord`]s into per-reason statistics (see [`super`] for the rules).
#[derive(Debug, Default)]
pub struct ExitStats {
    harness_ports: Vec<u16>,
    slot_of: Vec<Option<u32>>,
    labels: Vec<String>,
    label_index: FxHashMap<String, u32>,
    accs: Vec<ReasonAcc>,
    sources: BTreeSet<ExitSource>,
    /// Graph exits named by a kvm_exit whose pair has not arrived: (input, line) → slot.
    claimed: FxHashMap<(usize, u64), u32>,
    /// In-graph pairs whose graph exit has not arrived.
    waiting: FxHashMap<(usize, u64), GraphPair>,
    event_evidence: Vec<Option<String>>,
    harness_exits: u64,
    exits: u64,
    span: Span,
    span_total: Option<Nanos>,
    /// Every timestamp so far was a whole microsecond.
    whole_us: Option<bool>,
    lost_flagged: u64,
    /// For a chunk's part (`crate::parallel`): the first exit of each vCPU and reason slot,
    /// (slot, vCPU, start, lost before it), whose gap to the exit before it is only known
    /// when the part is merged.
    firsts: Option<Vec<(u32, VcpuKey, Nanos, bool)>>,
}

impl ExitStats {
    /// Statistics that keep exits on `harness_ports` (exitscope's own benchmark signalling)
    /// out of the per-reason figures.
    pub fn new(harness_ports: Vec<u16>) -> Self {
        ExitStats { harness_ports, ..Default::default() }
    }

    fn slot(&mut self, reasons: &Reasons, id: ReasonId) -> usize {
        let i = id.0 as usize;
        if let Some(Some(s)) = self.slot_of.get(i) {
            return *s as usize;
        }
        let label = reasons.get(id).label().to_string();
        let next = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        let s = *self.label_index.entry(label.clone()).or_insert(next);
        if s == next {
            self.labels.push(label);
            self.accs.push(ReasonAcc::default());
        }
        if self.slot_of.len() <= i {
            self.slot_of.resize(i + 1, None);
        }
        self.slot_of[i] = Some(s);
        s as usize
    }

    /// A timestamp seen in the input (any record): for the span and the resolution.
    pub fn timestamp(&mut self, ts: Nanos) {
        let s = &mut self.span;
        s.first = Some(s.first.map_or(ts, |f| f.min(ts)));
        s.last = Some(s.last.map_or(ts, |l| l.max(ts)));
        let whole = ts.is_multiple_of(1000);
        self.whole_us = Some(self.whole_us.unwrap_or(true) && whole);
    }

    fn evidence_of_event(&mut self, reasons: &Reasons, id: ReasonId) -> String {
        let i = id.0 as usize;
        if let Some(Some(e)) = self.event_evidence.get(i) {
            return e.clone();
        }
        let r = reasons.get(id);
        let vendor = r.vendor.as_deref().unwrap_or("?");
        let mut e = format!("kvm_exit: {vendor}");
        if vendor_reason(vendor).kind != r.kind {
            e.push_str(" + ");
            e.push_str(tracepoint_of(r.kind));
        }
        if self.event_evidence.len() <= i {
            self.event_evidence.resize(i + 1, None);
        }
        self.event_evidence[i] = Some(e.clone());
        e
    }

    /// Count one exit.
    pub fn add(&mut self, rec: &ExitRecord, reasons: &Reasons) {
        if let Some(ExitKey::Port { port, .. }) = rec.key
            && self.harness_ports.contains(&port)
        {
            self.harness_exits += 1;
            return;
        }
        let slot = self.slot(reasons, rec.reason);
        let reason = reasons.get(rec.reason);
        let known = reason.kind != ExitKind::Unknown;

        if let Some(src) = rec.source {
            self.sources.insert(src);
        }
        self.exits += 1;
        self.lost_flagged += u64::from(rec.lost_before);
        if let (Some(line), Some(ExitSource::FunctionGraph)) = (rec.kvm_exit_line, rec.source) {
            match self.waiting.remove(&(rec.input, line)) {
                Some(p) => self.accs[slot].handling.add(p.handling),
                None => {
                    self.claimed.insert((rec.input, line), slot as u32);
                }
            }
        }
        let a = &mut self.accs[slot];
        a.count += 1;
        match rec.source {
            Some(ExitSource::FunctionGraph) if known => {
                if rec.evidence.first().is_some_and(|e| e.starts_with("kvm_exit: ")) {
                    a.by_event += 1;
                } else {
                    a.by_handler += 1;
                }
            }
            Some(ExitSource::KvmExit) if known => a.by_event += 1,
            Some(ExitSource::Tracepoint) => a.by_tracepoint += 1,
            _ => {}
        }
        if reason.vendor.is_some() {
            *a.vendor.entry(rec.reason).or_insert(0) += 1;
        }
        match rec.source {
            Some(src @ (ExitSource::KvmExit | ExitSource::Tracepoint)) => {
                *a.implied.entry((rec.reason, src)).or_insert(0) += 1;
            }
            _ if known => {
                // The chain that decided it, as one entry: `kvm_exit: npf + handle_mmio_page_fault`.
                *a.evidence.entry(rec.evidence.join(" + ")).or_insert(0) += 1;
            }
            _ => {
                for e in &rec.evidence {
                    *a.evidence.entry(e.clone()).or_insert(0) += 1;
                }
            }
        }
        if let Some(p) = rec.phases {
            a.total.add(p.total());
            a.before.add(p.before);
            a.run.add(p.run);
            a.after.add(p.after);
            a.other.add(p.other);
            if let Some(c) = p.completion {
                a.completion.add(Some(c));
            }
        }
        if rec.source == Some(ExitSource::KvmExit) {
            a.handling.add(rec.duration);
        }
        if let Some(ts) = rec.start {
            let k = vcpu_key(rec.task, rec.cpu);
            match a.last.insert(k, ts) {
                Some(prev) if ts >= prev && !rec.lost_before => a.gaps.add(Some(ts - prev)),
                Some(_) => {}
                None => {
                    if let Some(f) = &mut self.firsts {
                        f.push((slot as u32, k, ts, rec.lost_before));
                    }
                }
            }
        }
        if let Some(k) = rec.key {
            *a.keys.entry(k).or_insert(0) += 1;
        }
    }

    /// The handling time of a `kvm_exit` inside a function graph: it goes to the graph exit
    /// that holds the event (now or when that exit arrives).
    pub fn graph_pair(&mut self, pair: GraphPair) {
        match self.claimed.remove(&(pair.input, pair.line)) {
            Some(slot) => self.accs[slot as usize].handling.add(pair.handling),
            None => {
                self.waiting.insert((pair.input, pair.line), pair);
            }
        }
    }

    /// End of input `input`: `kvm_exit`s inside graph calls that no graph exit claimed (the
    /// graph had no run call around them) are exits of their own; they are returned, counted.
    pub fn end_input(&mut self, input: usize, reasons: &Reasons) -> Vec<ExitRecord> {
        let mut orphans: Vec<GraphPair> = Vec::new();
        self.waiting.retain(|k, p| {
            if k.0 == input {
                orphans.push(*p);
                false
            } else {
                true
            }
        });
        self.claimed.retain(|k, _| k.0 != input);
        orphans.sort_by_key(|p| p.line);
        let recs: Vec<ExitRecord> = orphans
            .into_iter()
            .map(|p| ExitRecord {
                reason: p.reason,
                source: Some(ExitSource::KvmExit),
                input: p.input,
                line: p.line,
                duration: p.handling,
                ..Default::default()
            })
            .collect();
        for r in &recs {
            self.add(r, reasons);
        }
        if let (Some(a), Some(b)) = (self.span.first, self.span.last)
            && b > a
        {
            self.span_total = Some(self.span_total.unwrap_or(0) + (b - a));
        }
        self.span = Span::default();
        for a in &mut self.accs {
            a.last.clear();
        }
        recs
    }

    /// The report. `graph` gives the function-graph counters, `events` the pairing's.
    pub fn finish(
        mut self,
        reasons: &Reasons,
        graph: &super::graph::GraphExits<'_>,
        events: &super::events::EventExits,
        mut notes: Vec<String>,
    ) -> ExitsReport {
        let mut implied: Vec<(usize, ReasonId, ExitSource, u64)> = Vec::new();
        for (i, a) in self.accs.iter_mut().enumerate() {
            implied.extend(a.implied.drain().map(|((r, src), n)| (i, r, src, n)));
        }
        for (i, r, src, n) in implied {
            let name = match src {
                ExitSource::KvmExit => self.evidence_of_event(reasons, r),
                _ => tracepoint_of(reasons.get(r).kind).to_string(),
            };
            *self.accs[i].evidence.entry(name).or_insert(0) += n;
        }
        let total_exits: u64 = self.accs.iter().map(|a| a.count).sum();
        let handling_total: u64 = self.accs.iter().map(|a| a.handling.total).sum();
        let handling_available = self.accs.iter().any(|a| a.handling.timed > 0);
        let span = self.span_total;
        let mut isa_votes = [0u64; 2];
        let mut rows: Vec<ReasonStats> = Vec::with_capacity(self.accs.len());
        for (label, a) in self.labels.iter().zip(&self.accs) {
            if a.count == 0 {
                continue;
            }
            let mut vendor: Vec<VendorName> = a
                .vendor
                .iter()
                .map(|(&id, &count)| {
                    let r = reasons.get(id);
                    match r.isa {
                        Some(Isa::Vmx) => isa_votes[0] += count,
                        Some(Isa::Svm) => isa_votes[1] += count,
                        None => {}
                    }
                    VendorName {
                        isa: r.isa.map(|i| i.as_str().to_string()),
                        code: r.code,
                        name: r.vendor.clone().unwrap_or_default(),
                        count,
                    }
                })
                .collect();
            // Refined and plain spellings of the same name add up.
            vendor.sort_by(|x, y| x.name.cmp(&y.name));
            vendor.dedup_by(|x, y| {
                if x.name == y.name {
                    y.count += x.count;
                    true
                } else {
                    false
                }
            });
            vendor.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
            let mut evidence: Vec<NameCount> = a
                .evidence
                .iter()
                .filter(|(n, _)| !n.is_empty())
                .map(|(n, &c)| NameCount { name: n.clone(), count: c })
                .collect();
            evidence.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
            if evidence.is_empty() {
                evidence.push(NameCount { name: "nothing in the trace".into(), count: a.count });
            }
            let mut keys: Vec<(ExitKey, u64)> = a.keys.iter().map(|(&k, &c)| (k, c)).collect();
            keys.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let keys = keys
                .into_iter()
                .take(MAX_KEYS)
                .map(|(k, c)| NameCount { name: k.to_string(), count: c })
                .collect();
            let dist = |d: &DurationStats| Distribution::of(d, SUB_BUCKETS);
            let handling = dist(&a.handling);
            rows.push(ReasonStats {
                reason: label.clone(),
                vendor,
                count: a.count,
                samples_pct: pct(a.count, total_exits),
                by_event: a.by_event,
                by_handler: a.by_handler,
                by_tracepoint: a.by_tracepoint,
                evidence,
                total: dist(&a.total),
                before: dist(&a.before),
                run: dist(&a.run),
                after: dist(&a.after),
                other: dist(&a.other),
                completion: dist(&a.completion),
                time_pct: handling.as_ref().map(|h| pct(h.total_ns, handling_total)),
                handling,
                // One exit has no rate (it would be an extrapolation from the span alone).
                rate_per_s: span.filter(|_| a.count >= 2).map(|s| a.count as f64 * 1e9 / s as f64),
                inter_arrival: dist(&a.gaps),
                keys,
            });
        }
        rows.sort_by(|x, y| {
            y.count
                .cmp(&x.count)
                .then(
                    y.total.as_ref().map(|t| t.total_ns).cmp(&x.total.as_ref().map(|t| t.total_ns)),
                )
                .then(x.reason.cmp(&y.reason))
        });
        let source = match self.sources.len() {
            0 => "none".to_string(),
            1 => self.sources.iter().next().map_or("none", |s| s.as_str()).to_string(),
            _ => "mixed".to_string(),
        };
        if total_exits > 0
            && !handling_available
            && !self.sources.contains(&ExitSource::FunctionGraph)
        {
            notes.insert(
                0,
                "handling time is unavailable: kvm_exit/kvm_entry did not fire (e.g. a PVM host); \
                 exits are counted from reason-specific tracepoints"
                    .to_string(),
            );
        }
        if events.tracepoints_before_kvm_exit > 0 {
            notes.push(format!(
                "{} reason-specific tracepoint(s) before the first kvm_exit of an input were \
                 counted as exits (the capture started mid-exit?)",
                events.tracepoints_before_kvm_exit
            ));
        }
        if events.stray_tracepoints > 0 {
            notes.push(format!(
                "{} reason-specific tracepoint(s) had no open kvm_exit on their vCPU and were not \
                 counted",
                events.stray_tracepoints
            ));
        }
        if self.lost_flagged > 0 {
            notes.push(format!(
                "{} exit(s) follow lost events on their CPU: their pairs and gaps are left out",
                self.lost_flagged
            ));
        }
        if self.harness_exits > 0 {
            notes.push(format!(
                "{} exit(s) were exitscope's own harness (port {}: its benchmark signalling, or \
                 its VMM's console, firmware and exit ports), not the experiment's; left out of \
                 the figures",
                self.harness_exits,
                port_ranges(&self.harness_ports)
            ));
        }
        if let Some(r) = rows.first()
            && let (Some(rate), Some(g)) = (r.rate_per_s, r.inter_arrival.as_ref())
            && g.p50_ns > 0
        {
            let gap_rate = 1e9 / g.p50_ns as f64;
            if (gap_rate - rate).abs() > 0.2 * rate {
                notes.push(format!(
                    "{}: {:.0}/s over the whole span, but the median gap between two exits of one \
                     vCPU is {} ({:.0}/s): the span includes time without {} exits (start-up, \
                     other work) or they come in bursts",
                    r.reason,
                    rate,
                    short_ns(g.p50_ns),
                    gap_rate,
                    r.reason
                ));
            }
        }
        let isa = match isa_votes {
            [0, 0] => None,
            [v, s] if v >= s => Some("vmx".to_string()),
            _ => Some("svm".to_string()),
        };
        ExitsReport {
            source,
            exits: total_exits,
            whole_roots: graph.whole_roots,
            split_roots: graph.split_roots,
            roots_without_run: graph.roots_without_run,
            unattributed_ns: graph.unattributed_ns,
            handling_time_available: handling_available,
            isa,
            span_ns: span,
            timestamp_resolution_ns: self.whole_us.map(|w| if w { 1000 } else { 1 }),
            unpaired_exits: events.unpaired_exits,
            unmatched_entries: events.unmatched_entries,
            out_of_order: events.out_of_order,
            userspace_exits: events.userspace_exits,
            harness_exits: self.harness_exits,
            notes,
            reasons: rows,
            vcpus: Vec::new(),
        }
    }

    /// Exits counted so far.
    pub fn exits(&self) -> u64 {
        self.exits
    }

    /// Statistics of one chunk's part (`crate::parallel`): as [`ExitStats::new`], keeping
    /// what [`ExitStats::merge_part`] needs to join them to the exits before them.
    pub(crate) fn for_part(harness_ports: Vec<u16>) -> Self {
        ExitStats { harness_ports, firsts: Some(Vec::new()), ..Default::default() }
    }

    /// The slot of a reason label, made on first sight.
    fn slot_of_label(&mut self, label: &str) -> usize {
        if let Some(&s) = self.label_index.get(label) {
            return s as usize;
        }
        let s = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        self.label_index.insert(label.to_owned(), s);
        self.labels.push(label.to_owned());
        self.accs.push(ReasonAcc::default());
        s as usize
    }

    /// Add `part`, the statistics of the exits that followed all of this one's in the same
    /// input (a chunk analysed on another thread, made by [`ExitStats::for_part`]): the
    /// figures are those of one `ExitStats` fed both in order. `map` turns `part`'s reason
    /// ids into this one's.
    pub(crate) fn merge_part(&mut self, part: ExitStats, map: &[ReasonId]) {
        let m = |id: ReasonId| map.get(id.0 as usize).copied().unwrap_or(id);
        let slots: Vec<usize> = part.labels.iter().map(|l| self.slot_of_label(l)).collect();
        // The gap from the last exit before the part to each vCPU's first in it.
        for &(ls, key, ts, lost) in part.firsts.iter().flatten() {
            let a = &mut self.accs[slots[ls as usize]];
            if let Some(&prev) = a.last.get(&key)
                && ts >= prev
                && !lost
            {
                a.gaps.add(Some(ts - prev));
            }
        }
        for (ls, o) in part.accs.into_iter().enumerate() {
            let a = &mut self.accs[slots[ls]];
            a.count += o.count;
            a.by_event += o.by_event;
            a.by_handler += o.by_handler;
            a.by_tracepoint += o.by_tracepoint;
            for (id, n) in o.vendor {
                *a.vendor.entry(m(id)).or_insert(0) += n;
            }
            for (e, n) in o.evidence {
                *a.evidence.entry(e).or_insert(0) += n;
            }
            for ((id, src), n) in o.implied {
                *a.implied.entry((m(id), src)).or_insert(0) += n;
            }
            a.total.merge(&o.total);
            a.before.merge(&o.before);
            a.run.merge(&o.run);
            a.after.merge(&o.after);
            a.other.merge(&o.other);
            a.completion.merge(&o.completion);
            a.handling.merge(&o.handling);
            a.gaps.merge(&o.gaps);
            a.last.extend(o.last);
            for (k, n) in o.keys {
                *a.keys.entry(k).or_insert(0) += n;
            }
        }
        self.sources.extend(part.sources);
        self.harness_exits += part.harness_exits;
        self.exits += part.exits;
        self.lost_flagged += part.lost_flagged;
        let (s, o) = (&mut self.span, part.span);
        s.first = match (s.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        s.last = match (s.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.whole_us = match (self.whole_us, part.whole_us) {
            (Some(a), Some(b)) => Some(a && b),
            (a, b) => a.or(b),
        };
    }
}

/// The tracepoint that stands for exits of `kind`.
fn tracepoint_of(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Cpuid => "kvm_cpuid",
        ExitKind::Io => "kvm_pio",
        ExitKind::Mmio => "kvm_mmio",
        ExitKind::Msr | ExitKind::MsrRead | ExitKind::MsrWrite => "kvm_msr",
        ExitKind::Hypercall => "kvm_hypercall",
        _ => "a reason-specific tracepoint",
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// `27 µs`, `1.5 ms`: short enough for a sentence.
fn short_ns(ns: Nanos) -> String {
    match ns {
        n if n >= 1_000_000 => format!("{:.1} ms", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} µs", n as f64 / 1e3),
        n => format!("{n} ns"),
    }
}

/// `0xf4-0xf7/0x3f8-0x3ff/0x8900`: sorted ports with consecutive runs joined.
fn port_ranges(ports: &[u16]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(p) => *hi = p,
            _ => runs.push((p, p)),
        }
    }
    runs.iter()
        .map(|(lo, hi)| if lo == hi { format!("{lo:#x}") } else { format!("{lo:#x}-{hi:#x}") })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod port_range_tests {
    #[test]
    fn harness_ports_are_shown_as_ranges() {
        let ports = [0xf5, 0xf4, 0x3f8, 0x3f9, 0x3fa, 0x8900, 0xf4];
        assert_eq!(super::port_ranges(&ports), "0xf4-0xf5/0x3f8-0x3fa/0x8900");
        assert_eq!(super::port_ranges(&[0xffff, 0xfffe]), "0xfffe-0xffff");
    }
}
