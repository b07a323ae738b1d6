//! VM exits: one record per exit, whatever the trace shows of it, and one statistic per reason.
//!
//! # Where exits come from
//!
//! Three sources produce [`ExitRecord`]s, all named in the one vocabulary of
//! [`exitscope_model::exit`]:
//!
//! - **function_graph** (`graph.rs`): one exit per vendor run call (`svm_vcpu_run`,
//!   `vmx_vcpu_run`), classified by the `kvm_exit` event inside it or by the handlers it called
//!   (`exit_handlers.toml`), with its time split into phases that add up to the exit
//!   (see [`Phases`]).
//! - **`kvm_exit` → `kvm_entry`** (`events.rs`): where those tracepoints fire (VMX, SVM hosts),
//!   each `kvm_exit` paired with the next `kvm_entry` of the same vCPU thread; the pair's span
//!   is the exit's handling time, as `perf kvm stat` measures it.
//! - **reason-specific tracepoints** (`kvm_cpuid`, `kvm_pio`, `kvm_mmio`, `kvm_msr`,
//!   `kvm_hypercall`): where `kvm_exit` does not fire (PVM), each is one exit with no duration.
//!
//! # Counting rule
//!
//! Per input, exits are counted from the richest source it has: function_graph exits when it
//! has any, else `kvm_exit` events, else the reason-specific tracepoints. The other sources
//! still add what they know: `kvm_exit` → `kvm_entry` pairs inside a function graph add the
//! handling time to the graph exit that holds the `kvm_exit` (matched by input line, so the
//! reason is the graph's, refinements included); tracepoints inside an exit give its key (port,
//! MSR, address) and refine its reason (`npf` + `kvm_mmio` is MMIO). An exit is never counted
//! twice, and every view (terminal tables, JSON, diff, HTML, exports) shows the same reason.
//!
//! # Phases (function_graph)
//!
//! `before` (calls before the run call), `run` (the run call: world switch + guest time),
//! `after` (exit handling), `other` (the root's own self time; 0 for exits cut out of bigger
//! roots) and `completion`: for an exit that went to userspace (IO to the VMM, MMIO), the
//! completion work KVM does at the start of the *next* `KVM_RUN` (`complete_fast_pio_out`,
//! `complete_emulated_io`, ... listed in `exit_handlers.toml`) belongs to the exit it completes,
//! so it is moved from the next exit's `before` to this exit's `completion`. It is only visible
//! in graphs rooted at `kvm_arch_vcpu_ioctl_run`; it is `null` for `vcpu_enter_guest` roots and
//! 0 where the next `KVM_RUN` had none. `total` = the sum of the phases.

pub(crate) mod events;
pub(crate) mod graph;
mod stats;

use exitscope_model::Nanos;
use exitscope_model::exit::{ExitKey, ExitKind, ExitReason, vendor_reason};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::histogram::Distribution;

pub(crate) use stats::ExitStats;

/// Index of a reason in a [`Reasons`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonId(pub u32);

/// The reasons one analysis has seen, interned: exit records carry a [`ReasonId`] so that the
/// hot path never allocates per exit.
#[derive(Clone, Debug, Default)]
pub struct Reasons {
    list: Vec<ExitReason>,
    by_vendor: FxHashMap<String, Vec<(ExitKind, ReasonId)>>,
    plain: FxHashMap<ExitKind, ReasonId>,
    /// [`Reasons::vendor`]'s recent answers (id + 1; 0: none), by a fingerprint of the name:
    /// every `kvm_exit` asks, and a trace has a handful of reasons.
    recent: [u32; 32],
}

/// Slot of `name` in [`Reasons::recent`].
#[inline]
fn recent_slot(name: &[u8]) -> usize {
    let (first, last) = (name.first().copied(), name.last().copied());
    let h = name.len() ^ usize::from(first.unwrap_or(0)) << 2 ^ usize::from(last.unwrap_or(0)) << 4;
    (h ^ h >> 5) & 31
}

/// `a == b` for the short strings of reason names, without a call to `memcmp`.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        if x != y {
            return false;
        }
    }
    ca.remainder().iter().zip(cb.remainder()).all(|(x, y)| x == y)
}

impl Reasons {
    /// The reason `id` stands for.
    ///
    /// # Panics
    /// When `id` is not from this table.
    pub fn get(&self, id: ReasonId) -> &ExitReason {
        &self.list[id.0 as usize]
    }

    fn push(&mut self, r: ExitReason) -> ReasonId {
        let id = ReasonId(u32::try_from(self.list.len()).unwrap_or(u32::MAX));
        self.list.push(r);
        id
    }

    /// The reason of `kind` with no vendor name (from handlers or tracepoints).
    pub fn kind(&mut self, kind: ExitKind) -> ReasonId {
        if let Some(&id) = self.plain.get(&kind) {
            return id;
        }
        let id = self.push(ExitReason::of(kind));
        self.plain.insert(kind, id);
        id
    }

    /// Number of reasons interned.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The id of a reason equal to `r` (another table's), interned as that table did: by its
    /// vendor name and refined kind, or by kind alone.
    pub(crate) fn intern_like(&mut self, r: &ExitReason) -> ReasonId {
        match &r.vendor {
            Some(v) => {
                let base = self.vendor(v);
                self.refined(base, r.kind)
            }
            None => self.kind(r.kind),
        }
    }

    /// The reason a `kvm_exit` names (`npf`, `EPT_VIOLATION`, `EXIT_IOIO`), decoded once per
    /// distinct name.
    pub fn vendor(&mut self, name: &str) -> ReasonId {
        let slot = recent_slot(name.as_bytes());
        if let Some(&n) = self.recent.get(slot)
            && let Some(r) = n.checked_sub(1).and_then(|i| self.list.get(i as usize))
            && r.vendor.as_deref().is_some_and(|v| same_bytes(v.as_bytes(), name.as_bytes()))
        {
            return ReasonId(n - 1);
        }
        let id = match self.by_vendor.get(name).and_then(|v| v.first()) {
            Some(&(_, id)) => id,
            None => {
                let r = vendor_reason(name);
                let kind = r.kind;
                let id = self.push(r);
                self.by_vendor.entry(name.to_string()).or_default().push((kind, id));
                id
            }
        };
        if let Some(s) = self.recent.get_mut(slot) {
            *s = id.0.saturating_add(1);
        }
        id
    }

    /// `base` refined to the more specific `kind` (`npf` seen to be MMIO), keeping what the
    /// trace said (isa, code, vendor name).
    pub fn refined(&mut self, base: ReasonId, kind: ExitKind) -> ReasonId {
        let b = self.get(base).clone();
        if b.kind == kind {
            return base;
        }
        let Some(vendor) = b.vendor.clone() else { return self.kind(kind) };
        if let Some(&(_, id)) =
            self.by_vendor.get(&vendor).and_then(|v| v.iter().find(|(k, _)| *k == kind))
        {
            return id;
        }
        let id = self.push(ExitReason { kind, ..b });
        self.by_vendor.entry(vendor).or_default().push((kind, id));
        id
    }
}

/// Which source an exit record came from (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitSource {
    /// A vendor run call in a function graph.
    FunctionGraph,
    /// A `kvm_exit` event (paired with its `kvm_entry` when one followed).
    KvmExit,
    /// A reason-specific tracepoint where `kvm_exit` does not fire.
    Tracepoint,
}

impl ExitSource {
    /// `function_graph`, `kvm_exit` or `tracepoints`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitSource::FunctionGraph => "function_graph",
            ExitSource::KvmExit => "kvm_exit",
            ExitSource::Tracepoint => "tracepoints",
        }
    }
}

/// Time of one function-graph exit by phase (see the module docs). `None` when a call in that
/// phase has no duration (or, for `completion`, when it cannot be seen in the graph).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// Calls before the run call.
    pub before: Option<Nanos>,
    /// The run call: world switch + guest time + what it traces itself.
    pub run: Option<Nanos>,
    /// Calls after the run call: exit handling.
    pub after: Option<Nanos>,
    /// The root's own self time (whole-root exits only; 0 otherwise).
    pub other: Option<Nanos>,
    /// Completion work at the start of the next `KVM_RUN` (userspace exits).
    pub completion: Option<Nanos>,
}

impl Phases {
    /// The sum of the phases (`completion` counts as 0 when unknown).
    pub fn total(&self) -> Option<Nanos> {
        Some(
            self.before?
                .saturating_add(self.run?)
                .saturating_add(self.after?)
                .saturating_add(self.other?)
                .saturating_add(self.completion.unwrap_or(0)),
        )
    }
}

/// The raw fields of the `kvm_exit` that reported an exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitFields {
    /// Guest RIP.
    pub rip: Option<u64>,
    /// `info1` (VMX exit qualification, SVM exit_info_1).
    pub info1: Option<u64>,
    /// `info2`.
    pub info2: Option<u64>,
    /// `intr_info`.
    pub intr_info: Option<u64>,
    /// `error_code`.
    pub error_code: Option<u64>,
}

/// One VM exit, as any source saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    /// Why it exited (resolve with the analysis's [`Reasons`]).
    pub reason: ReasonId,
    /// Where the record came from.
    pub source: Option<ExitSource>,
    /// Input index.
    pub input: usize,
    /// Input line of the exit's first record (0 for binary inputs).
    pub line: u64,
    /// vCPU thread id, when the trace names tasks.
    pub task: Option<u32>,
    /// The VM's process: the vCPU thread's thread group id, when the input says
    /// ([`exitscope_model::Task::tgid`]).
    pub vm_pid: Option<u32>,
    /// CPU the exit was recorded on.
    pub cpu: Option<u32>,
    /// vCPU index (`vcpu N` of kvm_exit/kvm_entry).
    pub vcpu: Option<u32>,
    /// When it started (the kvm_exit, the graph unit's first call), if timestamped.
    pub start: Option<Nanos>,
    /// How long it took: the graph exit's total, or kvm_exit → kvm_entry; `None` where the
    /// source has no duration (tracepoints, an unpaired kvm_exit).
    pub duration: Option<Nanos>,
    /// Phases (function_graph exits).
    pub phases: Option<Phases>,
    /// Port, MSR or address the exit touched.
    pub key: Option<ExitKey>,
    /// The kvm_exit's fields.
    pub fields: Option<ExitFields>,
    /// Input line of the `kvm_exit` event that named a function-graph exit (its pair's
    /// handling time is matched to the exit by this line).
    pub kvm_exit_line: Option<u64>,
    /// It went out to the VMM (`kvm_userspace_exit`, or a completion call followed).
    pub userspace: bool,
    /// The kernel lost events just before it on its CPU.
    pub lost_before: bool,
    /// The vCPU thread was scheduled out during the exit: a `sched_switch` away from it
    /// between `kvm_exit` and `kvm_entry`, or a task switch or a scheduler call (`sched` in
    /// `exit_handlers.toml`) inside a function-graph exit. `None` where the trace cannot show
    /// it (no `sched_switch` events seen in the input so far, and no function graph).
    pub preempted: Option<bool>,
    /// What decided the reason (function-graph exits; other sources' evidence follows from
    /// `source` and the reason).
    pub evidence: Vec<String>,
}

impl Default for ReasonId {
    fn default() -> Self {
        ReasonId(u32::MAX)
    }
}

/// Receives every exit record of an analysis (Parquet rows, timeline slices, live tables).
pub trait ExitSink {
    /// One exit; `reasons` resolves its [`ReasonId`].
    fn exit(&mut self, exit: &ExitRecord, reasons: &Reasons);
}

/// The exit view of a report (`"exits"` in the JSON document; see [`crate::report`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExitsReport {
    /// Where the exits were counted from: `function_graph`, `kvm_exit`, `tracepoints`, or
    /// `mixed` when inputs differ; `none` when the trace shows no exit.
    pub source: String,
    /// Exits counted.
    pub exits: u64,
    /// Roots that were one exit each (`vcpu_enter_guest`, or a run call).
    pub whole_roots: u64,
    /// Bigger roots cut into exits (`kvm_arch_vcpu_ioctl_run`, `vcpu_run`).
    pub split_roots: u64,
    /// Roots with no vendor run call: not exits.
    pub roots_without_run: u64,
    /// Time of split roots outside every exit (container self time, work after the last
    /// exit's dispatcher, completion work of an exit the trace does not hold).
    pub unattributed_ns: Nanos,
    /// Whether per-reason handling time (kvm_exit → kvm_entry) is known.
    pub handling_time_available: bool,
    /// `vmx` or `svm`, from the reasons' vendor names or codes.
    pub isa: Option<String>,
    /// First to last timestamp, summed over inputs.
    pub span_ns: Option<Nanos>,
    /// The finest timestamp step the trace has (1000 for `trace_pipe` text, which prints
    /// microseconds; 1 for trace.dat): figures derived from timestamps are no finer.
    pub timestamp_resolution_ns: Option<Nanos>,
    /// `kvm_exit`s with no `kvm_entry` before the next exit of the same vCPU, a lost-events
    /// marker, or the end of the trace.
    pub unpaired_exits: u64,
    /// `kvm_entry`s with no `kvm_exit` before them (normal for the first entry of a vCPU).
    pub unmatched_entries: u64,
    /// Pairs whose entry timestamp is before the exit's (after lost events), skipped.
    pub out_of_order: u64,
    /// `kvm_userspace_exit` events: exits that went out to the VMM.
    pub userspace_exits: u64,
    /// Exits of exitscope's own benchmark harness (its signalling port I/O), kept out of the
    /// per-reason figures.
    pub harness_exits: u64,
    /// Explanations worth showing (why handling time is unavailable, what was skipped).
    pub notes: Vec<String>,
    /// Per reason, most frequent first.
    pub reasons: Vec<ReasonStats>,
    /// With `AnalysisOptions::per_vcpu`: the same per-reason statistic for each vCPU (absent
    /// from the JSON otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vcpus: Vec<VcpuExits>,
}

/// The exits of one vCPU (`ExitsReport::vcpus`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct VcpuExits {
    /// `vcpu N` where the trace names vCPUs (`kvm_exit`), else the vCPU thread `tid N`, else
    /// `cpu N` (the CPU it was recorded on), `unknown` when the trace says none of these.
    pub vcpu: String,
    /// Its exits (harness exits left out, as in `exits`).
    pub exits: u64,
    /// Per reason, most frequent first; the same shape as `ExitsReport::reasons`.
    pub reasons: Vec<ReasonStats>,
}

/// Which vCPU an exit record belongs to, ordered for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum VcpuId {
    Vcpu(u32),
    Task(u32),
    Cpu(u32),
    Unknown,
}

impl VcpuId {
    pub(crate) fn of(rec: &ExitRecord) -> VcpuId {
        match (rec.vcpu, rec.task, rec.cpu) {
            (Some(v), _, _) => VcpuId::Vcpu(v),
            (None, Some(t), _) if t != 0 => VcpuId::Task(t),
            (None, _, Some(c)) => VcpuId::Cpu(c),
            _ => VcpuId::Unknown,
        }
    }

    pub(crate) fn label(self) -> String {
        match self {
            VcpuId::Vcpu(v) => format!("vcpu {v}"),
            VcpuId::Task(t) => format!("tid {t}"),
            VcpuId::Cpu(c) => format!("cpu {c}"),
            VcpuId::Unknown => "unknown".into(),
        }
    }
}

/// The exits of one reason.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReasonStats {
    /// The neutral reason (`CPUID`, `EPT_NPF`, `MMIO`, ..., `unknown`), or the vendor name of a
    /// reason with no neutral kind (`VMCLEAR`, `0x4e`).
    pub reason: String,
    /// How the trace spelled it, with counts (`npf` ×3 on SVM, `EPT_VIOLATION` on VMX).
    pub vendor: Vec<VendorName>,
    /// Exits.
    pub count: u64,
    /// Share of all exits, in percent.
    pub samples_pct: f64,
    /// Exits classified from a `kvm_exit` event (in a graph, or paired).
    pub by_event: u64,
    /// Exits classified from a handler function.
    pub by_handler: u64,
    /// Exits counted from reason-specific tracepoints.
    pub by_tracepoint: u64,
    /// What decided the reason, or for `unknown` what was seen; with how many exits showed
    /// each. Never empty.
    pub evidence: Vec<NameCount>,
    /// Whole exit (function_graph): the sum of the phases below.
    pub total: Option<Distribution>,
    /// Calls before the vendor run call.
    pub before: Option<Distribution>,
    /// The vendor run call (world switch + guest time).
    pub run: Option<Distribution>,
    /// Exit handling after the run call.
    pub after: Option<Distribution>,
    /// The root's own self time (whole-root exits; 0 for cut ones).
    pub other: Option<Distribution>,
    /// Completion work at the next `KVM_RUN` (userspace exits; graphs rooted at
    /// `kvm_arch_vcpu_ioctl_run` only).
    pub completion: Option<Distribution>,
    /// kvm_exit → kvm_entry handling time.
    pub handling: Option<Distribution>,
    /// Share of all handling time, in percent.
    pub time_pct: Option<f64>,
    /// Exits per second over the trace's time span (null for fewer than two exits).
    pub rate_per_s: Option<f64>,
    /// Time between consecutive exits of this reason on the same vCPU.
    pub inter_arrival: Option<Distribution>,
    /// The ports, MSRs or addresses touched, most frequent first (at most 8).
    pub keys: Vec<NameCount>,
}

impl ReasonStats {
    /// The latency the reason is best described by: the whole exit (function_graph), else the
    /// handling time (kvm_exit → kvm_entry); with the measure's name.
    pub fn latency(&self) -> Option<(&'static str, &Distribution)> {
        match (&self.total, &self.handling) {
            (Some(t), _) => Some(("total", t)),
            (None, Some(h)) => Some(("handling", h)),
            _ => None,
        }
    }
}

/// A vendor spelling of a reason.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VendorName {
    /// `vmx`, `svm`, or null when the name does not say.
    pub isa: Option<String>,
    /// The raw code, when known.
    pub code: Option<u32>,
    /// The name as the trace printed it.
    pub name: String,
    /// Exits with this spelling.
    pub count: u64,
}

/// A name and how often it was seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct NameCount {
    /// The name.
    pub name: String,
    /// Times seen.
    pub count: u64,
}

#[cfg(test)]
#[path = "sched_tests.rs"]
mod sched_tests;

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn vendor_names_intern_to_one_id_each_whatever_the_cache_holds() {
        // More names than cache slots, sharing first/last bytes and lengths, asked in turns,
        // with refinements in between.
        let names: Vec<String> = (0..80)
            .map(|i| match i % 4 {
                0 => format!("EXIT_{i}"),
                1 => format!("npf{i}x"),
                2 => "npf".to_owned(),
                _ => format!("E{}T", "X".repeat(i % 9)),
            })
            .collect();
        let mut r = Reasons::default();
        let mut first: std::collections::HashMap<String, ReasonId> = Default::default();
        for round in 0..3 {
            for n in &names {
                let id = r.vendor(n);
                assert_eq!(*first.entry(n.clone()).or_insert(id), id, "{n} round {round}");
                assert_eq!(r.get(id).vendor.as_deref(), Some(n.as_str()));
                let refined = r.refined(id, ExitKind::Mmio);
                assert_eq!(r.vendor(n), id);
                assert_eq!(r.refined(id, ExitKind::Mmio), refined);
            }
        }
        assert!(same_bytes(b"EPT_VIOLATION", b"EPT_VIOLATION"));
        assert!(!same_bytes(b"EPT_VIOLATION", b"EPT_VIOLATIOM"));
        assert!(!same_bytes(b"EPT_VIOLATIO", b"EPT_VIOLATION"));
        assert!(same_bytes(b"", b""));
    }
}
