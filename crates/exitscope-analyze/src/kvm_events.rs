//! kvm tracepoint statistics, like `perf kvm stat report`, with percentiles.
//!
//! [`KvmEventStats`] is a [`RecordSink`] that consumes [`RecordKind::Event`] records (and
//! [`RecordKind::Lost`]) in input order:
//!
//! - it counts every event by name (`"events"` in the JSON);
//! - where `kvm_exit` fires (VMX, SVM hosts), it pairs each `kvm_exit` with the next
//!   `kvm_entry` of the same vCPU thread (keyed by task pid, else by CPU) and reports the
//!   handling time per exit reason: samples, %samples, %time, exact min/max/mean,
//!   nearest-rank p50/p90/p99 and a histogram with power-of-two bins;
//! - where only the reason-specific tracepoints fire (PVM: `kvm_cpuid`, `kvm_pio`,
//!   `kvm_mmio`, `kvm_msr`, `kvm_hypercall`), it counts exits per reason from them and reports
//!   their rate and inter-arrival times, and says that handling time is unavailable.
//!
//! Reasons are taken as printed, from every kernel variant of `kvm_exit` (`reason X rip 0x..`,
//! `vcpu N reason X rip 0x..`, `vcpu N reason X rip 0x.. info1 ..`): the reason is everything
//! between `reason ` and ` rip`, so SVM names with spaces (`PF excp`) and VMX flags
//! (`EPT_VIOLATION FAILED_VMENTRY`) survive. trace-cmd's kvm plugin spells SVM reasons
//! `EXIT_NPF`, `EXIT_IOIO`, ...; those are mapped to the kernel's names (`npf`, `io`) so
//! both sources give the same table. `UNKNOWN (n)` and hex codes are kept as they are.
//!
//! ```
//! use exitscope_analyze::kvm_events::KvmEventStats;
//! use exitscope_model::{Record, RecordKind, RecordSink, Task};
//!
//! let mut stats = KvmEventStats::new();
//! let task = Some(Task { comm: "qemu", pid: 7 });
//! let ev = |ts, name, text| Record {
//!     line: 0, cpu: Some(0), task, timestamp: Some(ts),
//!     kind: RecordKind::Event { name, text },
//! };
//! stats.record(&ev(1_000, "kvm_exit", "vcpu 0 reason CPUID rip 0x1 info1 0x0 info2 0x0"));
//! stats.record(&ev(1_700, "kvm_entry", "vcpu 0, rip 0x3"));
//! let report = stats.finish();
//! assert_eq!(report.exit_reasons[0].reason, "CPUID");
//! assert_eq!(report.exit_reasons[0].p50_ns, Some(700));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use exitscope_model::{Flow, Nanos, Record, RecordKind, RecordSink};
use serde::Serialize;

/// Where the per-reason numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingSource {
    /// `kvm_exit` → next `kvm_entry` pairs: handling time is known.
    ExitEntryPairs,
    /// Only reason-specific tracepoints (`kvm_cpuid`, `kvm_pio`, ...): counts, rate and
    /// inter-arrival times; handling time is unavailable.
    ReasonTracepoints,
    /// No exit-related event at all.
    None,
}

/// One histogram bin: values `lo_ns <= v < hi_ns`. Bins are powers of two (`[0,1)`,
/// `[1,2)`, `[2,4)`, ...); only non-empty bins are listed, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HistogramBin {
    /// Inclusive lower bound.
    pub lo_ns: u64,
    /// Exclusive upper bound.
    pub hi_ns: u64,
    /// Values in the bin.
    pub count: u64,
}

/// Summary of a set of durations (exact: every value is kept until the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Distribution {
    /// Number of values.
    pub count: u64,
    /// Sum.
    pub total_ns: u64,
    /// Smallest.
    pub min_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean, rounded to the nearest nanosecond.
    pub mean_ns: u64,
    /// Median (nearest rank).
    pub p50_ns: u64,
    /// 90th percentile (nearest rank).
    pub p90_ns: u64,
    /// 99th percentile (nearest rank).
    pub p99_ns: u64,
    /// Power-of-two histogram.
    pub histogram: Vec<HistogramBin>,
}

impl Distribution {
    /// The distribution of `values` (sorted in place); `None` when empty.
    pub fn from_values(values: &mut [u64]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let n = values.len();
        let total: u128 = values.iter().map(|&v| u128::from(v)).sum();
        let n128 = n as u128;
        let mean = u64::try_from((total + n128 / 2) / n128).unwrap_or(u64::MAX);
        let rank = |p: usize| values[((p * n).div_ceil(100)).clamp(1, n) - 1];
        let mut histogram: Vec<HistogramBin> = Vec::new();
        for &v in values.iter() {
            let (lo, hi) = bin_of(v);
            match histogram.last_mut() {
                Some(b) if b.lo_ns == lo => b.count += 1,
                _ => histogram.push(HistogramBin { lo_ns: lo, hi_ns: hi, count: 1 }),
            }
        }
        Some(Distribution {
            count: n as u64,
            total_ns: u64::try_from(total).unwrap_or(u64::MAX),
            min_ns: values[0],
            max_ns: values[n - 1],
            mean_ns: mean,
            p50_ns: rank(50),
            p90_ns: rank(90),
            p99_ns: rank(99),
            histogram,
        })
    }
}

/// Power-of-two bin of `v`: `[0,1)`, `[1,2)`, `[2,4)`, ...
fn bin_of(v: u64) -> (u64, u64) {
    if v == 0 {
        return (0, 1);
    }
    let lo = 1u64 << (63 - v.leading_zeros());
    (lo, lo.saturating_mul(2))
}

/// Statistics of one exit reason. Handling-time fields are `null` in the JSON when only
/// reason-specific tracepoints fired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExitReasonStats {
    /// Reason as the kernel prints it (`EPT_VIOLATION`, `PF excp`, `npf`), or the
    /// reason-specific tracepoint's reason (`CPUID`, `IO`, `MMIO`, `MSR`, `HYPERCALL`).
    pub reason: String,
    /// Exits with this reason (paired or not).
    pub count: u64,
    /// Exits whose handling time is known (paired with a `kvm_entry`).
    pub paired: u64,
    /// Share of all exits, in percent.
    pub samples_pct: f64,
    /// Share of all handling time, in percent.
    pub time_pct: Option<f64>,
    /// Sum of handling times.
    pub total_ns: Option<u64>,
    /// Mean handling time.
    pub mean_ns: Option<u64>,
    /// Shortest handling time.
    pub min_ns: Option<u64>,
    /// Longest handling time.
    pub max_ns: Option<u64>,
    /// Median handling time (nearest rank).
    pub p50_ns: Option<u64>,
    /// 90th percentile handling time.
    pub p90_ns: Option<u64>,
    /// 99th percentile handling time.
    pub p99_ns: Option<u64>,
    /// Power-of-two histogram of handling times (empty when unavailable).
    pub histogram: Vec<HistogramBin>,
    /// Exits per second over the trace's time span.
    pub rate_per_s: Option<f64>,
    /// Time between consecutive exits of this reason on the same vCPU thread.
    pub inter_arrival: Option<Distribution>,
}

/// The result of [`KvmEventStats::finish`]; `events` and `exit_reasons` are the documented
/// JSON of `exitscope report --json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KvmEventReport {
    /// Count of every event seen, by name (`"kvm_cpuid": 1000`). (Inside a `Report` these
    /// are moved to its top level, so they are skipped here when empty.)
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, u64>,
    /// Per exit reason, most samples first (ties by name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_reasons: Vec<ExitReasonStats>,
    /// Where the numbers come from.
    pub timing: TimingSource,
    /// Whether per-reason handling time is known.
    pub handling_time_available: bool,
    /// `vmx` or `svm`, guessed from the reason names (VMX upper case, SVM lower case).
    pub isa: Option<String>,
    /// All exits counted.
    pub total_exits: u64,
    /// Sum of all known handling times.
    pub total_handling_ns: Option<u64>,
    /// First to last timestamp seen.
    pub span_ns: Option<u64>,
    /// `kvm_exit`s with no `kvm_entry` before the next exit of the same vCPU, a lost-events
    /// marker, or the end of the trace.
    pub unpaired_exits: u64,
    /// `kvm_entry`s with no `kvm_exit` before them (normal for the first entry of a vCPU).
    pub unmatched_entries: u64,
    /// Pairs whose entry timestamp is before the exit's (after lost events), skipped.
    pub out_of_order: u64,
    /// Events the kernel reported lost (`CPU:N [LOST n EVENTS]`).
    pub lost_events: u64,
    /// `kvm_userspace_exit` events: exits that went out to the VMM (they accompany an
    /// IO/MMIO exit, so they are not a reason of their own).
    pub userspace_exits: u64,
    /// Explanations worth showing (why handling time is unavailable, what was skipped).
    pub notes: Vec<String>,
}

/// Which vCPU a record belongs to: its thread, or the CPU when the task is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum VcpuKey {
    Task(u32),
    Cpu(u32),
    Unknown,
}

fn key_of(rec: &Record<'_>) -> VcpuKey {
    match (rec.task, rec.cpu) {
        (Some(t), _) if t.pid != 0 => VcpuKey::Task(t.pid),
        (_, Some(c)) => VcpuKey::Cpu(c),
        _ => VcpuKey::Unknown,
    }
}

#[derive(Debug)]
struct PendingExit {
    reason: String,
    ts: Option<Nanos>,
    cpu: Option<u32>,
}

#[derive(Debug, Default)]
struct ReasonAcc {
    count: u64,
    durations: Vec<u64>,
    gaps: Vec<u64>,
    /// Last arrival per vCPU, with its CPU (for invalidation by lost events).
    last: HashMap<VcpuKey, (Nanos, Option<u32>)>,
}

impl ReasonAcc {
    fn arrival(&mut self, key: VcpuKey, ts: Option<Nanos>, cpu: Option<u32>) {
        self.count += 1;
        let Some(ts) = ts else { return };
        if let Some((prev, _)) = self.last.insert(key, (ts, cpu))
            && ts >= prev
        {
            self.gaps.push(ts - prev);
        }
    }
}

/// The sink. Feed it records, then call [`KvmEventStats::finish`].
#[derive(Debug, Default)]
pub struct KvmEventStats {
    events: BTreeMap<String, u64>,
    pending: HashMap<VcpuKey, PendingExit>,
    /// From kvm_exit/kvm_entry.
    exits: BTreeMap<String, ReasonAcc>,
    /// From reason-specific tracepoints.
    specific: BTreeMap<&'static str, ReasonAcc>,
    /// vCPUs whose last kvm_mmio was an unsatisfied read (its completion is not a new exit).
    mmio_unsatisfied: HashMap<VcpuKey, bool>,
    first_ts: Option<Nanos>,
    last_ts: Option<Nanos>,
    unpaired_exits: u64,
    unmatched_entries: u64,
    out_of_order: u64,
    lost_events: u64,
    lost_markers: u64,
    userspace_exits: u64,
}

impl KvmEventStats {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn on_event(&mut self, rec: &Record<'_>, name: &str, text: &str) {
        // trace_printk / trace_marker comments carry no event name.
        let key = if name.is_empty() { "trace_printk" } else { name };
        *self.events.entry(key.to_owned()).or_default() += 1;
        let key = key_of(rec);
        match name {
            "kvm_exit" => {
                let reason = exit_reason(text).unwrap_or("?");
                let reason = normalize_reason(reason);
                self.exits.entry(reason.clone()).or_default().arrival(key, rec.timestamp, rec.cpu);
                let prev = self
                    .pending
                    .insert(key, PendingExit { reason, ts: rec.timestamp, cpu: rec.cpu });
                if prev.is_some() {
                    self.unpaired_exits += 1;
                }
            }
            "kvm_entry" => match self.pending.remove(&key) {
                Some(p) => match (p.ts, rec.timestamp) {
                    (Some(a), Some(b)) if b >= a => {
                        self.exits.entry(p.reason).or_default().durations.push(b - a);
                    }
                    (Some(_), Some(_)) => self.out_of_order += 1,
                    _ => self.unpaired_exits += 1,
                },
                None => self.unmatched_entries += 1,
            },
            "kvm_userspace_exit" => self.userspace_exits += 1,
            "kvm_mmio" => {
                // `mmio unsatisfied-read` goes to userspace and is completed later by an
                // `mmio read`: one exit, two events.
                let kind = text.split_whitespace().nth(1).unwrap_or("");
                let was_unsatisfied = self.mmio_unsatisfied.insert(key, kind == "unsatisfied-read");
                if !(kind == "read" && was_unsatisfied == Some(true)) {
                    self.specific.entry("MMIO").or_default().arrival(key, rec.timestamp, rec.cpu);
                }
            }
            _ => {
                if let Some(reason) = specific_reason(name) {
                    self.specific.entry(reason).or_default().arrival(key, rec.timestamp, rec.cpu);
                }
            }
        }
    }

    fn on_lost(&mut self, cpu: Option<u32>, count: Option<u64>) {
        self.lost_events += count.unwrap_or(0);
        self.lost_markers += 1;
        // Pairs and gaps that may span the hole are no longer trustworthy.
        let hit = |c: Option<u32>| cpu.is_none() || c.is_none() || c == cpu;
        let before = self.pending.len();
        self.pending.retain(|_, p| !hit(p.cpu));
        self.unpaired_exits += (before - self.pending.len()) as u64;
        for acc in self.exits.values_mut().chain(self.specific.values_mut()) {
            acc.last.retain(|_, (_, c)| !hit(*c));
        }
    }

    /// Compute the report. Exits still waiting for their `kvm_entry` count as unpaired.
    pub fn finish(mut self) -> KvmEventReport {
        self.unpaired_exits += self.pending.len() as u64;
        let span_ns = match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) if b > a => Some(b - a),
            _ => None,
        };
        let have_exits = !self.exits.is_empty();
        let timing = if have_exits {
            TimingSource::ExitEntryPairs
        } else if !self.specific.is_empty() {
            TimingSource::ReasonTracepoints
        } else {
            TimingSource::None
        };
        let accs: Vec<(String, ReasonAcc)> = if have_exits {
            std::mem::take(&mut self.exits).into_iter().collect()
        } else {
            std::mem::take(&mut self.specific).into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        };
        let total_exits: u64 = accs.iter().map(|(_, a)| a.count).sum();
        let mut rows: Vec<ExitReasonStats> = accs
            .into_iter()
            .map(|(reason, mut acc)| {
                let d = Distribution::from_values(&mut acc.durations);
                let rate_per_s = span_ns.map(|s| acc.count as f64 * 1e9 / s as f64);
                ExitReasonStats {
                    samples_pct: pct(acc.count, total_exits),
                    time_pct: None,
                    count: acc.count,
                    paired: d.as_ref().map_or(0, |d| d.count),
                    total_ns: d.as_ref().map(|d| d.total_ns),
                    mean_ns: d.as_ref().map(|d| d.mean_ns),
                    min_ns: d.as_ref().map(|d| d.min_ns),
                    max_ns: d.as_ref().map(|d| d.max_ns),
                    p50_ns: d.as_ref().map(|d| d.p50_ns),
                    p90_ns: d.as_ref().map(|d| d.p90_ns),
                    p99_ns: d.as_ref().map(|d| d.p99_ns),
                    histogram: d.map(|d| d.histogram).unwrap_or_default(),
                    rate_per_s,
                    inter_arrival: Distribution::from_values(&mut acc.gaps),
                    reason,
                }
            })
            .collect();
        let total_handling: Option<u64> =
            if have_exits { Some(rows.iter().filter_map(|r| r.total_ns).sum()) } else { None };
        if let Some(t) = total_handling {
            for r in &mut rows {
                r.time_pct = r.total_ns.map(|x| pct(x, t));
            }
        }
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        let isa = if have_exits { guess_isa(rows.iter().map(|r| r.reason.as_str())) } else { None };
        let mut notes = Vec::new();
        match timing {
            TimingSource::ReasonTracepoints => notes.push(
                "handling time is unavailable: kvm_exit/kvm_entry did not fire (e.g. a PVM \
                 host); exits are counted from reason-specific tracepoints"
                    .to_owned(),
            ),
            TimingSource::None => notes.push("no kvm exit events in this trace".to_owned()),
            TimingSource::ExitEntryPairs => {}
        }
        if self.lost_markers > 0 {
            notes.push(format!(
                "the kernel lost {} events ({} LOST lines); pairs spanning them were dropped",
                self.lost_events, self.lost_markers
            ));
        }
        if let Some(n) = self.events.get("kvm_emulate_insn")
            && !have_exits
        {
            notes.push(format!(
                "{n} kvm_emulate_insn events: instructions emulated by KVM (on PVM every \
                     exit goes through the emulator); not counted as exits"
            ));
        }
        KvmEventReport {
            events: self.events,
            exit_reasons: rows,
            timing,
            handling_time_available: have_exits,
            isa,
            total_exits,
            total_handling_ns: total_handling,
            span_ns,
            unpaired_exits: self.unpaired_exits,
            unmatched_entries: self.unmatched_entries,
            out_of_order: self.out_of_order,
            lost_events: self.lost_events,
            userspace_exits: self.userspace_exits,
            notes,
        }
    }
}

impl RecordSink for KvmEventStats {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        if let Some(ts) = rec.timestamp {
            self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
            self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        }
        match rec.kind {
            RecordKind::Event { name, text } => self.on_event(rec, name, text),
            RecordKind::Lost { count } => self.on_lost(rec.cpu, count),
            _ => {}
        }
        Flow::Continue
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// The reason in a `kvm_exit` (or `kvm_nested_vmexit`) text: everything between `reason `
/// and ` rip` (or ` info`, or the end).
pub fn exit_reason(text: &str) -> Option<&str> {
    let start = text.find("reason ")? + "reason ".len();
    let rest = &text[start..];
    let end = [" rip 0x", " rip ", " info"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    let r = rest[..end].trim();
    (!r.is_empty()).then_some(r)
}

/// trace-cmd's plugin spells SVM reasons `EXIT_*`; map them to the kernel's names. Anything
/// else is returned as printed.
pub fn normalize_reason(reason: &str) -> String {
    let Some(rest) = reason.strip_prefix("EXIT_") else { return reason.to_owned() };
    let special = match rest {
        "INTR" => Some("interrupt"),
        "IOIO" => Some("io"),
        "VMMCALL" => Some("hypercall"),
        "TR_READ" => Some("read_rt"),
        "TR_WRITE" => Some("write_rt"),
        "ERR" => Some("invalid_guest_state"),
        _ => None,
    };
    if let Some(s) = special {
        return s.to_owned();
    }
    for table in ["IDTR", "GDTR", "LDTR"] {
        if let Some(op) = rest.strip_prefix(table).and_then(|r| r.strip_prefix('_')) {
            return format!("{}_{}", op.to_ascii_lowercase(), table.to_ascii_lowercase());
        }
    }
    if let Some(n) = rest.strip_prefix("EXCP_") {
        // EXIT_EXCP_PF → "PF excp", as the kernel prints it.
        return format!("{n} excp");
    }
    rest.to_ascii_lowercase()
}

/// The exit reason a reason-specific tracepoint stands for.
pub fn specific_reason(event: &str) -> Option<&'static str> {
    Some(match event {
        "kvm_cpuid" => "CPUID",
        "kvm_pio" => "IO",
        "kvm_mmio" => "MMIO",
        "kvm_msr" => "MSR",
        "kvm_hypercall" | "kvm_hv_hypercall" | "kvm_xen_hypercall" => "HYPERCALL",
        _ => return None,
    })
}

fn guess_isa<'a>(reasons: impl Iterator<Item = &'a str>) -> Option<String> {
    let (mut upper, mut lower) = (0, 0);
    for r in reasons {
        if r.starts_with("UNKNOWN") || r.starts_with("0x") || r == "?" {
            continue;
        }
        if r.chars().any(|c| c.is_ascii_lowercase()) { lower += 1 } else { upper += 1 }
    }
    match (upper, lower) {
        (0, 0) => None,
        (u, l) if u >= l => Some("vmx".into()),
        _ => Some("svm".into()),
    }
}

fn us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_owned(), |n| format!("{:.3}", n as f64 / 1000.0))
}

/// Write the plain-text table (like `perf kvm stat report`, plus p50/p90/p99; times in µs).
///
/// # Errors
/// Whatever `w` returns.
pub fn render_table(report: &KvmEventReport, w: &mut dyn Write) -> io::Result<()> {
    let span = report.span_ns.map_or_else(String::new, |s| match s {
        s if s >= 1_000_000_000 => format!(" in {:.3} s", s as f64 / 1e9),
        s => format!(" in {:.3} ms", s as f64 / 1e6),
    });
    let width = report.exit_reasons.iter().map(|r| r.reason.len()).max().unwrap_or(0).max(16);
    match report.timing {
        TimingSource::ExitEntryPairs => {
            writeln!(
                w,
                "Analyze events for all VMs, all VCPUs: {} VM exits{span}, handling time = kvm_exit -> kvm_entry{}",
                report.total_exits,
                report.isa.as_deref().map_or(String::new(), |i| format!(" ({i})"))
            )?;
            writeln!(w)?;
            writeln!(
                w,
                "{:>width$} {:>9} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "VM-EXIT",
                "Samples",
                "Samples%",
                "Time%",
                "Min(us)",
                "Max(us)",
                "Mean(us)",
                "p50(us)",
                "p90(us)",
                "p99(us)"
            )?;
            for r in &report.exit_reasons {
                writeln!(
                    w,
                    "{:>width$} {:>9} {:>8.2}% {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    r.reason,
                    r.count,
                    r.samples_pct,
                    r.time_pct.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}%")),
                    us(r.min_ns),
                    us(r.max_ns),
                    us(r.mean_ns),
                    us(r.p50_ns),
                    us(r.p90_ns),
                    us(r.p99_ns)
                )?;
            }
            writeln!(w)?;
            writeln!(
                w,
                "Total samples: {}, total handling time: {} us, unpaired exits: {}",
                report.total_exits,
                us(report.total_handling_ns),
                report.unpaired_exits
            )?;
        }
        TimingSource::ReasonTracepoints => {
            writeln!(
                w,
                "VM exits counted from reason-specific tracepoints: {}{span}; handling time unavailable",
                report.total_exits
            )?;
            writeln!(w)?;
            writeln!(
                w,
                "{:>width$} {:>9} {:>9} {:>11}   {:>10} {:>10} {:>10} {:>10} {:>10}",
                "REASON",
                "Samples",
                "Samples%",
                "Rate(/s)",
                "gap min",
                "gap p50",
                "gap p90",
                "gap p99",
                "gap max"
            )?;
            let sub = format!(
                "{:>width$} {:>9} {:>9} {:>11}   {:^54}",
                "", "", "", "", "(inter-arrival per vCPU, us)"
            );
            writeln!(w, "{}", sub.trim_end())?;
            for r in &report.exit_reasons {
                let ia = r.inter_arrival.as_ref();
                writeln!(
                    w,
                    "{:>width$} {:>9} {:>8.2}% {:>11}   {:>10} {:>10} {:>10} {:>10} {:>10}",
                    r.reason,
                    r.count,
                    r.samples_pct,
                    r.rate_per_s.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}")),
                    us(ia.map(|d| d.min_ns)),
                    us(ia.map(|d| d.p50_ns)),
                    us(ia.map(|d| d.p90_ns)),
                    us(ia.map(|d| d.p99_ns)),
                    us(ia.map(|d| d.max_ns))
                )?;
            }
        }
        TimingSource::None => writeln!(w, "No kvm exit events.")?,
    }
    if !report.events.is_empty() {
        writeln!(w)?;
        let list: Vec<String> = report.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(w, "Events: {}", list.join(", "))?;
    }
    if report.userspace_exits > 0 {
        writeln!(w, "Exits to userspace (kvm_userspace_exit): {}", report.userspace_exits)?;
    }
    for n in &report.notes {
        writeln!(w, "Note: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_from_every_kernel_variant() {
        assert_eq!(
            exit_reason("reason EPT_VIOLATION rip 0x40359f info 582 0"),
            Some("EPT_VIOLATION")
        );
        assert_eq!(exit_reason("vcpu 1 reason npf rip 0xfd11d info 100000014 fd000"), Some("npf"));
        assert_eq!(
            exit_reason(
                "vcpu 0 reason PF excp rip 0x1 info1 0x0000000000000000 info2 0x0 intr_info 0x00000000 error_code 0x00000000"
            ),
            Some("PF excp")
        );
        assert_eq!(
            exit_reason("vcpu 0 reason EPT_VIOLATION FAILED_VMENTRY rip 0x1 info1 0x0"),
            Some("EPT_VIOLATION FAILED_VMENTRY")
        );
        assert_eq!(exit_reason("reason UNKNOWN (78) rip 0x1 info 0 0"), Some("UNKNOWN (78)"));
        assert_eq!(
            exit_reason("reason EXIT_NPF rip 0xffffffff81000000 native_safe_halt+0x6 info 0 0"),
            Some("EXIT_NPF")
        );
        assert_eq!(exit_reason("vcpu 0 reason"), None);
    }

    #[test]
    fn plugin_svm_names_map_to_kernel_names() {
        assert_eq!(normalize_reason("EXIT_NPF"), "npf");
        assert_eq!(normalize_reason("EXIT_IOIO"), "io");
        assert_eq!(normalize_reason("EXIT_MSR"), "msr");
        assert_eq!(normalize_reason("EXIT_READ_CR0"), "read_cr0");
        assert_eq!(normalize_reason("EXIT_VMMCALL"), "hypercall");
        assert_eq!(normalize_reason("EXIT_INTR"), "interrupt");
        assert_eq!(normalize_reason("EXIT_IDTR_READ"), "read_idtr");
        assert_eq!(normalize_reason("EXIT_TR_WRITE"), "write_rt");
        assert_eq!(normalize_reason("EXIT_EXCP_PF"), "PF excp");
        assert_eq!(normalize_reason("EPT_VIOLATION"), "EPT_VIOLATION");
        assert_eq!(normalize_reason("UNKNOWN (78)"), "UNKNOWN (78)");
    }

    #[test]
    fn distribution_is_exact() {
        let mut v: Vec<u64> = (1..=100).collect();
        let d = Distribution::from_values(&mut v).unwrap();
        assert_eq!((d.min_ns, d.max_ns, d.mean_ns, d.total_ns), (1, 100, 51, 5050));
        assert_eq!((d.p50_ns, d.p90_ns, d.p99_ns), (50, 90, 99));
        assert_eq!(d.histogram.first(), Some(&HistogramBin { lo_ns: 1, hi_ns: 2, count: 1 }));
        assert_eq!(d.histogram.last(), Some(&HistogramBin { lo_ns: 64, hi_ns: 128, count: 37 }));
        assert_eq!(d.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        let mut one = vec![7];
        let d = Distribution::from_values(&mut one).unwrap();
        assert_eq!((d.p50_ns, d.p99_ns, d.mean_ns), (7, 7, 7));
        assert_eq!(Distribution::from_values(&mut []), None);
        assert_eq!(bin_of(0), (0, 1));
        assert_eq!(bin_of(u64::MAX), (1 << 63, u64::MAX));
    }
}
