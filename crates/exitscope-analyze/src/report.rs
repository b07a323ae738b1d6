//! The analysis result every renderer reads. Serialized as the `--json` document.
//!
//! Schema (version 1), fields not listed are additive and may appear later:
//!
//! ```text
//! { "schema_version": 1,
//!   "host": Fingerprint|null,      // the recording machine (exitscope_host::Fingerprint), when
//!                                  // the trace carries it (exitscope record/run); never guessed
//!   "inputs": [{"name", "format", "bytes", "lines", "records", "error_lines", "ignored_lines"}],
//!   "roots": int,                  // complete root calls analysed
//!   "tree": [Node],                // merged calling-context tree, roots in first-seen order
//!   "flat": [{"function", "module", "calls", "count", "total_ns", "self_ns", "mean_ns",
//!             "min_ns", "max_ns", "p50_ns", "p99_ns",
//!             "histogram": [{"low_ns", "high_ns", "count"}]}],  // recursion deduplicated
//!   "incomplete": {"count", "discarded_calls", "functions": [{"function","module","reason","count"}]},
//!   "orphans": {"count", "functions": [{"function","module","count","total_ns"}]},
//!   "lost_events": {"markers", "events", "uncounted_markers"},
//!   "diagnostics": [{"file","line","column","severity","message"}],   // first --max-diagnostics
//!   "diagnostic_counts": {"errors", "warnings"},
//!   "percentiles_exact": bool,
//!   "exits": Exits,                // only with `report --exits`; see `crate::exits`
//!   "merged": {"reports": int, "percentiles": str,          // only in `exitscope merge`
//!              "hosts": [{"host": str, "report": Report}]} } //   output; see `crate::combine`
//! Exits = {"exits": int,            // one per vendor run call (svm_vcpu_run / vmx_vcpu_run)
//!          "whole_roots", "split_roots", "roots_without_run": int,
//!          "unattributed_ns": int,  // time of split roots outside every exit
//!          "reasons": [{"reason": str,   // CPUID, IO, EPT_NPF, MMIO, MSR_READ, ..., "unknown"
//!                       "count", "by_event", "by_handler": int,
//!                       "evidence": [{"name", "count"}],  // what decided it / what was seen
//!                       "total", "before", "run", "after", "other": Phase}]}  // most frequent first
//!          // with per_vcpu (`exitscope top --per-vcpu`):
//!          "vcpus": [{"vcpu": str, "exits": int, "reasons": [the same as "reasons"]}]
//! Phase = {"timed": int, "total_ns", "mean_ns", "p50_ns", "p99_ns", "min_ns", "max_ns": int|null}
//!         // before + run + after + other = total for every exit (so means add up too):
//!         // before = calls before the run call, run = the run call (world switch + guest),
//!         // after = exit handling, other = a whole root's own self time (0 for split roots)
//! Node = {"function": str, "module": str|null, "count": int, "total_ns", "self_ns", "min_ns",
//!         "max_ns", "mean_ns", "p50_ns", "p99_ns": int (null when the trace has no durations),
//!         "interrupt": bool, "children": [Node]}
//! ```
//!
//! Times are integer nanoseconds. `self_ns` is the summed self time (total minus children);
//! percentiles are nearest-rank over the calls of that path.

use serde::{Deserialize, Serialize};

use exitscope_model::{Diagnostic, Nanos};

/// Current `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `exitscope report` found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Version of this document's layout.
    pub schema_version: u32,
    /// The environment of the machine that recorded the trace, when the inputs carry it
    /// (`exitscope record` and `run` write it); `null` otherwise, and when inputs recorded on
    /// unlike hosts are read together (a warning names them). Never the reading machine's.
    pub host: Option<exitscope_host::Fingerprint>,
    /// One summary per input.
    pub inputs: Vec<InputSummary>,
    /// Complete root calls analysed.
    pub roots: u64,
    /// Merged calling-context tree.
    pub tree: Vec<TreeNode>,
    /// Flat per-function profile, by inclusive total, largest first.
    pub flat: Vec<FlatEntry>,
    /// Calls that never completed.
    pub incomplete: Incomplete,
    /// Returns with no entry.
    pub orphans: Orphans,
    /// Ring-buffer losses the trace reported.
    pub lost_events: LostEvents,
    /// The first diagnostics (see `diagnostic_counts` for all).
    pub diagnostics: Vec<Diagnostic>,
    /// How many diagnostics there were in all.
    pub diagnostic_counts: DiagnosticCounts,
    /// False when some distribution had too many distinct values and percentiles are
    /// bucketed (relative error < 0.2 %).
    pub percentiles_exact: bool,
    /// Count of every event (tracepoint line or graph comment) by name; empty when none.
    pub events: std::collections::BTreeMap<String, u64>,
    /// Every VM exit the trace shows, per reason (see [`crate::exits`]); absent when the trace
    /// has neither a vendor run call nor a kvm event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exits: Option<crate::exits::ExitsReport>,
    /// What `exitscope merge` combined into this report (see [`crate::combine`]); absent in
    /// a report of traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<crate::combine::Merged>,
}

pub use exitscope_model::InputSummary;

/// One call path of the merged tree.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TreeNode {
    /// Function name.
    pub function: String,
    /// Module, or null for vmlinux.
    pub module: Option<String>,
    /// Calls on this path.
    pub count: u64,
    /// Summed duration.
    pub total_ns: Option<Nanos>,
    /// Summed self time.
    pub self_ns: Option<Nanos>,
    /// Shortest call.
    pub min_ns: Option<Nanos>,
    /// Longest call.
    pub max_ns: Option<Nanos>,
    /// Mean duration (rounded).
    pub mean_ns: Option<Nanos>,
    /// Median (nearest rank).
    pub p50_ns: Option<Nanos>,
    /// 99th percentile (nearest rank).
    pub p99_ns: Option<Nanos>,
    /// Runs in interrupt context.
    pub interrupt: bool,
    /// Callees in first-seen order.
    pub children: Vec<TreeNode>,
    /// The path's durations (512 sub-buckets per power of two once not exact), for exports
    /// (`calls.parquet`); not in the JSON document, whose goldens predate it.
    #[serde(skip)]
    pub histogram: crate::histogram::HistogramJson,
}

impl TreeNode {
    /// `name [module]`.
    pub fn display_name(&self) -> String {
        match &self.module {
            Some(m) => format!("{} [{}]", self.function, m),
            None => self.function.clone(),
        }
    }

    /// Depth-first search for the first node named `function`.
    pub fn find(&self, function: &str) -> Option<&TreeNode> {
        if self.function == function {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(function))
    }
}

/// One function of the flat profile.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FlatEntry {
    /// Function name.
    pub function: String,
    /// Module.
    pub module: Option<String>,
    /// Every call, recursive ones included.
    pub calls: u64,
    /// Outermost calls (what the inclusive statistics count).
    pub count: u64,
    /// Inclusive total over outermost calls.
    pub total_ns: Option<Nanos>,
    /// Summed self time over all calls.
    pub self_ns: Option<Nanos>,
    /// Mean inclusive duration.
    pub mean_ns: Option<Nanos>,
    /// Shortest inclusive duration.
    pub min_ns: Option<Nanos>,
    /// Longest inclusive duration.
    pub max_ns: Option<Nanos>,
    /// Median inclusive duration (nearest rank).
    pub p50_ns: Option<Nanos>,
    /// 99th percentile inclusive duration (nearest rank).
    pub p99_ns: Option<Nanos>,
    /// Inclusive durations (4 sub-buckets per power of two once not exact).
    pub histogram: crate::histogram::HistogramJson,
}

/// Calls that never completed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Incomplete {
    /// Open calls cut off.
    pub count: u64,
    /// Completed calls inside cut roots, dropped with them.
    pub discarded_calls: u64,
    /// Per function and reason.
    pub functions: Vec<IncompleteFunction>,
}

/// Incomplete calls of one function.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IncompleteFunction {
    /// Function name.
    pub function: String,
    /// Module.
    pub module: Option<String>,
    /// `end_of_input`, `lost_events`, `skipped_by_return` or `durations_contradict`.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// Returns that had no entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Orphans {
    /// How many.
    pub count: u64,
    /// Per function named by the return (`null` when it did not say).
    pub functions: Vec<OrphanFunction>,
}

/// Orphan returns of one function.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrphanFunction {
    /// Function name, if the return printed it.
    pub function: Option<String>,
    /// Module.
    pub module: Option<String>,
    /// How many.
    pub count: u64,
    /// Their summed printed durations.
    pub total_ns: Nanos,
}

/// Lost events.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LostEvents {
    /// `LOST` lines.
    pub markers: u64,
    /// Sum of printed counts.
    pub events: u64,
    /// `LOST` lines without a count.
    pub uncounted_markers: u64,
}

/// Diagnostic totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DiagnosticCounts {
    /// Lines or records skipped.
    pub errors: u64,
    /// Inconsistencies that did not stop reading.
    pub warnings: u64,
}
