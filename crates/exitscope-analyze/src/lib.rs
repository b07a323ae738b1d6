//! # Brief overview
//!
//! Turns exitscope [`Record`]s into call trees and statistics:
//!
//! - a call-tree builder rebuilds each outermost call (per task, tolerant of orphans,
//!   migrations, lost events and interrupts) as a [`calls::RootCall`];
//! - a merged tree of root calls by call path (count, total, self, min, max, mean, p50, p99,
//!   [`report::TreeNode`]) and a flat profile per function ([`report::FlatEntry`]);
//! - [`exits`] finds every VM exit, whatever shows it: one per `svm_vcpu_run` /
//!   `vmx_vcpu_run` call in function graphs (classified from `kvm_exit` events or handler
//!   functions, time split into phases), `kvm_exit` → `kvm_entry` pairs, or reason-specific
//!   tracepoints; each becomes one [`exits::ExitRecord`] named in the one vocabulary of
//!   [`exitscope_model::exit`], and one per-reason statistic covers them all;
//! - [`diff::diff`] aligns two merged trees by call path after vendor normalization
//!   (`svm_*` ↔ `vmx_*`, table: `diff_normalize.toml`) for `exitscope diff`;
//! - [`Analysis`] wires these together as a [`RecordSink`] and produces a [`report::Report`],
//!   the document every renderer reads.
//!
//! ```
//! use exitscope_analyze::{Analysis, AnalysisOptions};
//! use exitscope_model::{InputFormat, InputSink, InputSummary};
//! let text = " 98)               |  vcpu_enter_guest [kvm]() {\n 98)   0.080 us    |    kvm_vcpu_exit_request [kvm]();\n 98)   4.278 us    |  }\n";
//! let mut a = Analysis::new(AnalysisOptions::default());
//! a.begin_input("seed", InputFormat::FtraceText);
//! let s = exitscope_ftrace::parse_reader("seed", text.as_bytes(), &mut a).unwrap();
//! a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
//! let report = a.finish();
//! assert_eq!(report.tree[0].total_ns, Some(4278));
//! assert_eq!(report.tree[0].self_ns, Some(4198));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod calls;
pub mod combine;
pub mod diff;
mod event_counts;
pub mod exits;
pub mod funcs;
pub mod histogram;
pub mod live;
mod merge;
mod parallel;
pub mod report;

use std::collections::BTreeMap;

use exitscope_model::{
    Diagnostic, Flow, InputFormat, InputSink, InputSummary, Record, RecordKind, RecordSink,
    Severity, TextUse,
};

use calls::{CallSink, CallTreeBuilder, RootCall};
use exits::events::{EventExits, EventOutput};
use exits::graph::{ExitTable, GraphExits};
use exits::{ExitRecord, ExitSink, ExitStats, Reasons};
use funcs::{FuncId, FuncTable};
use merge::{FlatProfile, MergedTree};
use report::{
    DiagnosticCounts, FlatEntry, Incomplete, IncompleteFunction, LostEvents, OrphanFunction,
    Orphans, Report, SCHEMA_VERSION, TreeNode,
};

/// Settings of one analysis.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AnalysisOptions {
    /// Diagnostics kept for the report (all are counted).
    pub max_diagnostics: usize,
    /// Build the merged tree from per-exit units for roots that hold more than one exit
    /// (`kvm_arch_vcpu_ioctl_run`, `vcpu_run`): each exit becomes a root of its own named by
    /// the exit table's `synthetic_root` (`vcpu_enter_guest [kvm]`), so such traces compare
    /// with `vcpu_enter_guest` graphs (`exitscope diff`). Work outside every exit is left out
    /// of the tree (see [`exits::ExitsReport::unattributed_ns`]). The flat profile is unchanged.
    pub split_exits: bool,
    /// I/O ports of exitscope's own benchmark harness: exits on them are the harness
    /// signalling, counted apart ([`exits::ExitsReport::harness_exits`]).
    pub harness_ports: Vec<u16>,
    /// Also keep the per-reason statistic of each vCPU ([`exits::ExitsReport::vcpus`]).
    pub per_vcpu: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            max_diagnostics: 20,
            split_exits: false,
            harness_ports: Vec::new(),
            per_vcpu: false,
        }
    }
}

impl AnalysisOptions {
    /// Options with `split_exits` set as `exitscope diff` analyses each side.
    pub fn for_diff() -> Self {
        AnalysisOptions { split_exits: true, ..Default::default() }
    }
}

/// Consumers of completed root calls besides the merged tree and the flat profile.
pub type ExtraCallSinks<'a> = Vec<&'a mut dyn CallSink>;

struct Consumers<'s, 'a> {
    merged: &'s mut MergedTree,
    flat: &'s mut FlatProfile,
    extra: &'s mut ExtraCallSinks<'a>,
    graph: &'s mut GraphExits<'static>,
    reasons: &'s mut Reasons,
    exit_buf: &'s mut Vec<ExitRecord>,
    /// The synthetic root's function when splitting big roots for the merged tree.
    split: Option<FuncId>,
}

impl CallSink for Consumers<'_, '_> {
    fn root(&mut self, root: &RootCall, funcs: &FuncTable) {
        let found = self.graph.observe(root, funcs, self.reasons, self.exit_buf);
        match self.split {
            Some(synthetic) if found.split => {
                for u in &found.units {
                    self.merged.add(&exits::graph::unit_root(root, u, synthetic));
                }
            }
            _ => self.merged.add(root),
        }
        self.flat.root(root, funcs);
        if !self.extra.is_empty() {
            let labels: Vec<&str> =
                found.reasons.iter().map(|&r| self.reasons.get(r).label()).collect();
            for e in self.extra.iter_mut() {
                e.root_with_exits(root, funcs, &labels);
            }
        }
    }
}

/// A [`RecordSink`] that builds everything `exitscope report` prints.
pub struct Analysis<'a> {
    opts: AnalysisOptions,
    builder: CallTreeBuilder,
    merged: MergedTree,
    flat: FlatProfile,
    extra: ExtraCallSinks<'a>,
    extra_records: Vec<&'a mut dyn RecordSink>,
    exit_sinks: Vec<&'a mut dyn ExitSink>,
    graph: GraphExits<'static>,
    events: EventExits,
    stats: ExitStats,
    /// Per vCPU, with `per_vcpu`.
    vcpu_stats: BTreeMap<exits::VcpuId, ExitStats>,
    reasons: Reasons,
    exit_buf: Vec<ExitRecord>,
    event_out: EventOutput,
    split: Option<FuncId>,
    event_counts: event_counts::EventCounts,
    /// Records of the current input so far: binary inputs have no lines, and events are
    /// matched to the graph exits that hold them by position.
    ordinal: u64,
    inputs: Vec<InputSummary>,
    diagnostics: Vec<Diagnostic>,
    counts: DiagnosticCounts,
    /// The prefix lines of a function-graph chunk's part are being applied.
    replay: Option<parallel::GraphReplay>,
}

impl<'a> Analysis<'a> {
    /// A fresh analysis.
    pub fn new(opts: AnalysisOptions) -> Self {
        let table = ExitTable::builtin();
        let mut builder = CallTreeBuilder::new();
        // Interned up front: the call sinks only see the function table read-only.
        let split = opts.split_exits.then(|| {
            let (name, module) = &table.synthetic_root;
            builder.funcs.intern(exitscope_model::Func::new(name, module.as_deref()))
        });
        Analysis {
            stats: ExitStats::new(opts.harness_ports.clone()),
            vcpu_stats: BTreeMap::new(),
            opts,
            builder,
            merged: MergedTree::default(),
            flat: FlatProfile::default(),
            extra: Vec::new(),
            extra_records: Vec::new(),
            exit_sinks: Vec::new(),
            graph: GraphExits::new(table),
            events: EventExits::default(),
            reasons: Reasons::default(),
            exit_buf: Vec::new(),
            event_out: EventOutput::default(),
            split,
            event_counts: event_counts::EventCounts::default(),
            ordinal: 0,
            inputs: Vec::new(),
            diagnostics: Vec::new(),
            counts: DiagnosticCounts::default(),
            replay: None,
        }
    }

    /// Also hand every completed root call to `sink` (timelines...).
    pub fn add_call_sink(&mut self, sink: &'a mut dyn CallSink) {
        self.extra.push(sink);
    }

    /// Also hand every record to `sink`.
    pub fn add_record_sink(&mut self, sink: &'a mut dyn RecordSink) {
        self.extra_records.push(sink);
    }

    /// Also hand every exit to `sink` (Parquet rows, timeline slices, live tables), exactly the
    /// exits the report counts.
    pub fn add_exit_sink(&mut self, sink: &'a mut dyn ExitSink) {
        self.exit_sinks.push(sink);
    }

    /// Count the buffered exits and hand them to the exit sinks.
    fn drain_exits(&mut self) {
        for pair in self.event_out.graph_pairs.drain(..) {
            self.stats.graph_pair(pair);
        }
        // By reference, then cleared: exit records are large, and moving each out costs a copy.
        for rec in self.exit_buf.iter().chain(self.event_out.exits.iter()) {
            self.stats.add(rec, &self.reasons);
            if self.opts.per_vcpu {
                self.vcpu_stats
                    .entry(exits::VcpuId::of(rec))
                    .or_insert_with(|| ExitStats::new(self.opts.harness_ports.clone()))
                    .add(rec, &self.reasons);
            }
            for s in self.exit_sinks.iter_mut() {
                s.exit(rec, &self.reasons);
            }
        }
        self.exit_buf.clear();
        self.event_out.exits.clear();
    }

    fn keep_diagnostic(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.counts.errors += 1,
            Severity::Warning => self.counts.warnings += 1,
        }
        if self.diagnostics.len() < self.opts.max_diagnostics {
            self.diagnostics.push(d);
        }
    }

    /// Build the report.
    pub fn finish(mut self) -> Report {
        // Depth-mismatch warnings are counted by the builder; count those not kept too.
        let kept_mismatch =
            self.diagnostics.iter().filter(|d| d.message.starts_with("indentation")).count() as u64;
        self.counts.warnings +=
            self.builder.leftovers.depth_mismatches.saturating_sub(kept_mismatch);
        let funcs = &self.builder.funcs;
        let tree = self.merged.roots.iter().map(|&r| tree_node(&self.merged, funcs, r)).collect();
        let mut exact = self.merged.nodes.iter().all(|n| n.stats.hist.is_exact());
        let mut flat: Vec<FlatEntry> = self
            .flat
            .funcs
            .iter()
            .map(|(&id, e)| {
                exact &= e.inclusive.hist.is_exact();
                let info = funcs.get(id);
                let timed = e.inclusive.timed > 0;
                let p = e.inclusive.hist.percentiles(&[50.0, 99.0]);
                FlatEntry {
                    function: info.name.clone(),
                    module: info.module.clone(),
                    calls: e.calls,
                    count: e.inclusive.count,
                    total_ns: timed.then_some(e.inclusive.total),
                    self_ns: timed.then_some(e.self_total),
                    mean_ns: e.inclusive.mean(),
                    min_ns: timed.then_some(e.inclusive.min),
                    max_ns: timed.then_some(e.inclusive.max),
                    p50_ns: p[0],
                    p99_ns: p[1],
                    histogram: e.inclusive.hist.to_json(4),
                }
            })
            .collect();
        flat.sort_by(|a, b| {
            b.total_ns
                .cmp(&a.total_ns)
                .then(b.calls.cmp(&a.calls))
                .then(a.function.cmp(&b.function))
        });
        let lo = &self.builder.leftovers;
        let incomplete = Incomplete {
            count: lo.incomplete.values().sum(),
            discarded_calls: lo.discarded_calls,
            functions: lo
                .incomplete
                .iter()
                .map(|(&(f, reason), &count)| IncompleteFunction {
                    function: funcs.get(f).name.clone(),
                    module: funcs.get(f).module.clone(),
                    reason: serde_plain_reason(reason),
                    count,
                })
                .collect(),
        };
        let orphans = Orphans {
            count: lo.orphans.values().map(|v| v.0).sum(),
            functions: lo
                .orphans
                .iter()
                .map(|(f, &(count, total_ns))| OrphanFunction {
                    function: f.map(|f| funcs.get(f).name.clone()),
                    module: f.and_then(|f| funcs.get(f).module.clone()),
                    count,
                    total_ns,
                })
                .collect(),
        };
        let lost_events = LostEvents {
            markers: lo.lost_markers,
            events: lo.lost_events,
            uncounted_markers: lo.lost_uncounted,
        };
        let events: BTreeMap<String, u64> = self.event_counts.into_sorted();
        let mut notes = Vec::new();
        if lo.lost_markers > 0 {
            notes.push(format!(
                "the kernel lost {} events ({} LOST marker{}); calls and pairs spanning them were \
                 dropped",
                lo.lost_events,
                lo.lost_markers,
                if lo.lost_markers == 1 { "" } else { "s" }
            ));
        }
        if let Some(n) = events.get("kvm_emulate_insn")
            && !events.contains_key("kvm_exit")
        {
            notes.push(format!(
                "{n} kvm_emulate_insn events: instructions emulated by KVM (on PVM every exit \
                 goes through the emulator); not counted as exits"
            ));
        }
        // An exit table with no rows still says why (kvm events that are not exits).
        let any_exit_source = self.stats.exits() > 0
            || self.graph.exits > 0
            || events.keys().any(|k| k.starts_with("kvm_"));
        let vcpu_stats = std::mem::take(&mut self.vcpu_stats);
        let exits = any_exit_source.then(|| {
            let mut ex = self.stats.finish(&self.reasons, &self.graph, &self.events, notes);
            ex.vcpus = vcpu_stats
                .into_iter()
                .map(|(id, st)| {
                    let mut v = st.finish(&self.reasons, &self.graph, &self.events, Vec::new());
                    // Rates over the trace's span, as the totals' (a vCPU's own first and
                    // last timestamps are not kept).
                    for r in &mut v.reasons {
                        r.rate_per_s = ex
                            .span_ns
                            .filter(|&s| s > 0 && r.count >= 2)
                            .map(|s| r.count as f64 * 1e9 / s as f64);
                    }
                    exits::VcpuExits { vcpu: id.label(), exits: v.exits, reasons: v.reasons }
                })
                .filter(|v| v.exits > 0)
                .collect();
            ex
        });
        let host = recording_host(&self.inputs, &mut |d| {
            self.counts.warnings += 1;
            self.diagnostics.push(d);
        });
        Report {
            schema_version: SCHEMA_VERSION,
            host,
            inputs: self.inputs,
            roots: self.builder.roots(),
            tree,
            flat,
            incomplete,
            orphans,
            lost_events,
            diagnostics: self.diagnostics,
            diagnostic_counts: self.counts,
            percentiles_exact: exact,
            events,
            exits,
            merged: None,
        }
    }
}

impl InputSink for Analysis<'_> {
    fn chunked(&mut self) -> Option<&mut dyn exitscope_model::ChunkedSink> {
        Some(self)
    }

    fn begin_input(&mut self, name: &str, format: InputFormat) {
        self.ordinal = 0;
        self.builder.begin_input(self.inputs.len(), name);
        self.events.begin_input(self.inputs.len());
        self.inputs.push(InputSummary {
            name: name.into(),
            format: format.as_str().into(),
            ..Default::default()
        });
    }

    fn end_input(&mut self, summary: &InputSummary) {
        self.builder.end_input();
        for w in self.builder.take_warnings() {
            self.keep_diagnostic(w);
        }
        self.graph.flush(&mut self.exit_buf);
        self.events.end_input(&mut self.event_out);
        self.drain_exits();
        let index = self.inputs.len().saturating_sub(1);
        for rec in self.stats.end_input(index, &self.reasons) {
            if self.opts.per_vcpu {
                self.vcpu_stats
                    .entry(exits::VcpuId::of(&rec))
                    .or_insert_with(|| ExitStats::new(self.opts.harness_ports.clone()))
                    .add(&rec, &self.reasons);
            }
            for s in self.exit_sinks.iter_mut() {
                s.exit(&rec, &self.reasons);
            }
        }
        for st in self.vcpu_stats.values_mut() {
            // Pairs are never handed to them: nothing comes back.
            let _ = st.end_input(index, &self.reasons);
        }
        if let Some(i) = self.inputs.last_mut() {
            // The name and format given at the start win over the producer's.
            let (name, format) = (std::mem::take(&mut i.name), std::mem::take(&mut i.format));
            *i = InputSummary { name, format, ..summary.clone() };
        }
    }
}

/// The host that recorded `inputs`: the first input's, when every input carries one and none
/// differs from it in a way that moves exit costs (see [`exitscope_host::differences`]);
/// otherwise `None`, with a warning when some input did carry one.
fn recording_host(
    inputs: &[InputSummary],
    warn: &mut dyn FnMut(Diagnostic),
) -> Option<exitscope_host::Fingerprint> {
    let first = inputs.first()?.host.as_ref();
    let diagnostic = |i: &InputSummary, message: String| Diagnostic {
        file: i.name.clone(),
        line: 0,
        column: 0,
        severity: Severity::Warning,
        message,
    };
    let first = match first {
        Some(f) => f,
        None => {
            if let Some(i) = inputs.iter().find(|i| i.host.is_some()) {
                warn(diagnostic(
                    i,
                    format!(
                        "it names its recording host and {} does not: the report's host is \
                         left unknown",
                        inputs[0].name
                    ),
                ));
            }
            return None;
        }
    };
    for i in &inputs[1..] {
        let why = match &i.host {
            None => "it does not name its recording host".to_owned(),
            Some(h) => {
                let d = exitscope_host::differences(first, h);
                let unlike = exitscope_host::unlike_categories(&d);
                if unlike.is_empty() {
                    continue;
                }
                format!("it was recorded on another host (different {})", unlike.join(", "))
            }
        };
        warn(diagnostic(
            i,
            format!("{why} than {}: the report's host is left unknown", inputs[0].name),
        ));
        return None;
    }
    Some(first.clone())
}

fn serde_plain_reason(r: calls::CutReason) -> String {
    match r {
        calls::CutReason::EndOfInput => "end_of_input",
        calls::CutReason::LostEvents => "lost_events",
        calls::CutReason::SkippedByReturn => "skipped_by_return",
        calls::CutReason::DurationsContradict => "durations_contradict",
    }
    .to_string()
}

fn tree_node(t: &MergedTree, funcs: &FuncTable, i: u32) -> TreeNode {
    let n = &t.nodes[i as usize];
    let info = funcs.get(n.func);
    let s = &n.stats;
    let timed = s.timed > 0;
    let p = s.hist.percentiles(&[50.0, 99.0]);
    TreeNode {
        function: info.name.clone(),
        module: info.module.clone(),
        count: s.count,
        total_ns: timed.then_some(s.total),
        self_ns: timed.then_some(n.self_total),
        min_ns: timed.then_some(s.min),
        max_ns: timed.then_some(s.max),
        mean_ns: s.mean(),
        p50_ns: p[0],
        p99_ns: p[1],
        interrupt: n.interrupt,
        children: n.children.iter().map(|&c| tree_node(t, funcs, c)).collect(),
        histogram: s.hist.to_json(512),
    }
}

impl RecordSink for Analysis<'_> {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.ordinal += 1;
        // Binary inputs number their records instead (every position below is then unique).
        let numbered;
        let rec = if rec.line == 0 {
            numbered = Record { line: self.ordinal, ..*rec };
            &numbered
        } else {
            rec
        };
        if let Some(ts) = rec.timestamp {
            self.stats.timestamp(ts);
        }
        let mut consumers = Consumers {
            merged: &mut self.merged,
            flat: &mut self.flat,
            extra: &mut self.extra,
            graph: &mut self.graph,
            reasons: &mut self.reasons,
            exit_buf: &mut self.exit_buf,
            split: self.split,
        };
        self.builder.record(rec, &mut consumers);
        if let Some(r) = self.replay.as_mut() {
            r.note(self.merged.nodes.len(), rec.line);
        }
        match rec.kind {
            RecordKind::Event { name, .. } => {
                // trace_printk / trace_marker comments carry no event name.
                let key = if name.is_empty() { "trace_printk" } else { name };
                self.event_counts.bump(key);
                let in_graph = self.builder.in_open_call(rec);
                self.events.record(rec, in_graph, &mut self.reasons, &mut self.event_out);
            }
            RecordKind::Lost { .. } => {
                self.events.record(rec, false, &mut self.reasons, &mut self.event_out);
            }
            _ => {}
        }
        if !self.exit_buf.is_empty()
            || !self.event_out.exits.is_empty()
            || !self.event_out.graph_pairs.is_empty()
        {
            self.drain_exits();
        }
        let mut flow = Flow::Continue;
        for s in self.extra_records.iter_mut() {
            if s.record(rec) == Flow::Stop {
                flow = Flow::Stop;
            }
        }
        flow
    }

    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.keep_diagnostic(d);
        Flow::Continue
    }

    fn text_use(&self, event: &str) -> TextUse {
        // The exit pairing (and the graph's exits, from the same events in roots) reads its
        // events' text. Any other event's text is kept only in the root of a call it falls
        // inside, where only the extra call sinks (timelines) read it.
        let own = match EventExits::text_use(event) {
            TextUse::Never if !self.extra.is_empty() => TextUse::Sometimes,
            u => u,
        };
        self.extra_records.iter().map(|s| s.text_use(event)).fold(own, TextUse::max)
    }

    fn wants_text(&self, rec: &Record<'_>) -> bool {
        let event = match rec.kind {
            RecordKind::Event { name, .. } => name,
            _ => return true,
        };
        let wants = |s: &&mut dyn RecordSink| match s.text_use(event) {
            TextUse::Never => false,
            TextUse::Sometimes | TextUse::Parsed => s.wants_text(rec),
            TextUse::Always => true,
        };
        // Inside an open call the event goes into the call's root, where the graph's exits
        // read a kvm_exit's text and the extra call sinks (timelines) any event's.
        let in_root = || self.builder.in_open_call(rec);
        let own = match EventExits::text_use(event) {
            TextUse::Always => true,
            TextUse::Parsed => in_root(),
            TextUse::Sometimes => self.events.wants_text(rec),
            TextUse::Never => false,
        };
        own || (!self.extra.is_empty() && in_root()) || self.extra_records.iter().any(wants)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
