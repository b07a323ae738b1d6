//! # Brief overview
//!
//! Turns exitscope [`Record`]s into call trees and statistics:
//!
//! - [`calls::CallTreeBuilder`] rebuilds each outermost call (per task, tolerant of orphans,
//!   migrations, lost events and interrupts) as a [`calls::RootCall`];
//! - [`merge::MergedTree`] merges root calls by call path (count, total, self, min, max,
//!   mean, p50, p99), [`merge::FlatProfile`] totals them per function;
//! - [`exits::ExitCollector`] cuts roots into VM exits (one per `svm_vcpu_run` /
//!   `vmx_vcpu_run` call, big `kvm_arch_vcpu_ioctl_run` roots included), classifies each from
//!   `kvm_exit` events or handler functions (table: `exit_handlers.toml`) and splits its time
//!   into before / run / after / other phases (`report --exits`);
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
pub mod diff;
pub mod exits;
pub mod funcs;
pub mod histogram;
pub mod kvm_events;
pub mod merge;
pub mod report;

use exitscope_model::{
    Diagnostic, Flow, InputFormat, InputSink, InputSummary, Record, RecordKind, RecordSink,
    Severity,
};

use calls::{CallSink, CallTreeBuilder, RootCall};
use exits::{ExitCollector, ExitTable};
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
    /// Cut roots into exits and classify them: fills [`report::Report::exits`]
    /// (`exitscope report --exits`; see [`exits`]).
    pub exits: bool,
    /// Build the merged tree from per-exit units for roots that hold more than one exit
    /// (`kvm_arch_vcpu_ioctl_run`, `vcpu_run`): each exit becomes a root of its own named by
    /// the exit table's `synthetic_root` (`vcpu_enter_guest [kvm]`), so such traces compare
    /// with `vcpu_enter_guest` graphs (`exitscope diff`). Work outside every exit is left out
    /// of the tree (see [`exits::ExitsReport::unattributed_ns`]). The flat profile is unchanged.
    pub split_exits: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions { max_diagnostics: 20, exits: false, split_exits: false }
    }
}

/// Consumers of completed root calls besides the merged tree and the flat profile.
pub type ExtraCallSinks<'a> = Vec<&'a mut dyn CallSink>;

struct Consumers<'s, 'a> {
    merged: &'s mut MergedTree,
    flat: &'s mut FlatProfile,
    extra: &'s mut ExtraCallSinks<'a>,
    exits: Option<&'s mut ExitCollector<'static>>,
    /// The synthetic root's function when splitting big roots for the merged tree.
    split: Option<FuncId>,
}

impl CallSink for Consumers<'_, '_> {
    fn root(&mut self, root: &RootCall, funcs: &FuncTable) {
        let units = match self.exits.as_mut() {
            Some(x) => x.observe(root, funcs),
            None => Vec::new(),
        };
        match self.split {
            Some(synthetic) if ExitCollector::is_split(&units) => {
                for u in &units {
                    self.merged.add(&exits::unit_root(root, u, synthetic));
                }
            }
            _ => self.merged.add(root),
        }
        self.flat.root(root, funcs);
        for e in self.extra.iter_mut() {
            e.root(root, funcs);
        }
    }
}

/// A [`RecordSink`] that builds everything `exitscope report` prints.
pub struct Analysis<'a> {
    opts: AnalysisOptions,
    /// Call rebuilding.
    pub builder: CallTreeBuilder,
    /// Merged calling-context tree.
    pub merged: MergedTree,
    /// Flat profile.
    pub flat: FlatProfile,
    extra: ExtraCallSinks<'a>,
    extra_records: Vec<&'a mut dyn RecordSink>,
    exits: Option<ExitCollector<'static>>,
    split: Option<FuncId>,
    kvm_events: kvm_events::KvmEventStats,
    saw_events: bool,
    inputs: Vec<InputSummary>,
    diagnostics: Vec<Diagnostic>,
    counts: DiagnosticCounts,
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
        let exits = (opts.exits || opts.split_exits).then(|| ExitCollector::new(table));
        Analysis {
            opts,
            builder,
            merged: MergedTree::default(),
            flat: FlatProfile::default(),
            extra: Vec::new(),
            extra_records: Vec::new(),
            kvm_events: kvm_events::KvmEventStats::new(),
            saw_events: false,
            exits,
            split,
            inputs: Vec::new(),
            diagnostics: Vec::new(),
            counts: DiagnosticCounts::default(),
        }
    }

    /// Also hand every completed root call to `sink` (exit classification, timelines...).
    pub fn add_call_sink(&mut self, sink: &'a mut dyn CallSink) {
        self.extra.push(sink);
    }

    /// Also hand every record to `sink` (event statistics...).
    pub fn add_record_sink(&mut self, sink: &'a mut dyn RecordSink) {
        self.extra_records.push(sink);
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
                    histogram: e.inclusive.hist.log_bins(4),
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
        let (events, exit_reasons, event_analysis) = if self.saw_events {
            let mut k = self.kvm_events.finish();
            (std::mem::take(&mut k.events), std::mem::take(&mut k.exit_reasons), Some(k))
        } else {
            Default::default()
        };
        Report {
            schema_version: SCHEMA_VERSION,
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
            exit_reasons,
            event_analysis,
            exits: if self.opts.exits {
                self.exits.as_ref().map(ExitCollector::report)
            } else {
                None
            },
        }
    }
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
    }
}

impl InputSink for Analysis<'_> {
    fn begin_input(&mut self, name: &str, format: InputFormat) {
        self.builder.begin_input(self.inputs.len(), name);
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
        if let Some(i) = self.inputs.last_mut() {
            // The name and format given at the start win over the producer's.
            let (name, format) = (std::mem::take(&mut i.name), std::mem::take(&mut i.format));
            *i = InputSummary { name, format, ..summary.clone() };
        }
    }
}

impl RecordSink for Analysis<'_> {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        let mut consumers = Consumers {
            merged: &mut self.merged,
            flat: &mut self.flat,
            extra: &mut self.extra,
            exits: self.exits.as_mut(),
            split: self.split,
        };
        self.builder.record(rec, &mut consumers);
        // Event statistics only need events, LOST markers and task switches.
        if !matches!(
            rec.kind,
            RecordKind::Entry { .. } | RecordKind::Exit { .. } | RecordKind::Leaf { .. }
        ) {
            self.saw_events |= matches!(rec.kind, RecordKind::Event { .. });
            let _ = self.kvm_events.record(rec);
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
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
