//! Analysing chunks of one event trace on several threads ([`ChunkedSink`]), with the result
//! of one thread.
//!
//! The ingest layer cuts a large text input into chunks at line ends. A chunk holding only
//! tracepoint lines (no function-graph call, task-switch banner or `LOST` line: see
//! `exitscope_ftrace::TextParser::context_free`) is analysed on a worker thread by an
//! [`EventChunk`], which **speculates**: each vCPU (task, else CPU) starts the chunk with no
//! `kvm_exit` waiting for its `kvm_entry`. That holds from the vCPU's first `kvm_exit` in
//! the chunk on, whatever came before (a `kvm_exit` ends the exit before it), so the chunk's
//! exits from there on are counted in the part: pairing, reasons, the per-reason statistic
//! and its histograms, event counts, diagnostics. The vCPU's lines before that first
//! `kvm_exit` (its *prefix*: an exit's tail, a `kvm_entry`, a tracepoint; a few lines per
//! vCPU and chunk) are left to the analysis itself, which applies them in order to the
//! state carried from the chunks before, then ends the exit each vCPU with a `kvm_exit` in
//! the chunk still had waiting (unpaired, as the `kvm_exit` would have), then merges the
//! part ([`Analysis::merge_part`]): counts add, histograms merge, reason ids and line
//! numbers are mapped, the first inter-arrival gap of each vCPU and reason joins the last
//! exit before the chunk, and the exits still waiting at the chunk's end replace the
//! carried ones.
//!
//! When the speculation would not give the sequential result, the part is refused
//! ([`Analysis::accepts`]) and the chunk's lines are applied in order instead: a call open
//! in a function graph (events inside calls belong to the graph's exits), events lost on a
//! CPU and not yet accounted to its next exit, the input's first `kvm_exit` with prefix
//! lines after it (tracepoints before the first `kvm_exit` of an input count as exits,
//! after it they do not), or an `mmio read` that may complete an unsatisfied read of an
//! earlier chunk.

use std::any::Any;

use rustc_hash::{FxHashMap, FxHashSet};

use exitscope_model::exit::{ExitKind, MmioStep, tracepoint_exit};
use exitscope_model::{
    ChunkPart, ChunkedSink, Diagnostic, Flow, PartMaker, Record, RecordKind, RecordSink, Severity,
};

use crate::Analysis;
use crate::exits::events::{EventExits, EventOutput, VcpuKey, vcpu_key};
use crate::exits::{ExitStats, ReasonId, Reasons};
use crate::report::DiagnosticCounts;

/// The partial analysis of one chunk of an event trace (see the module docs).
pub(crate) struct EventChunk {
    max_diagnostics: usize,
    reasons: Reasons,
    events: EventExits,
    out: EventOutput,
    stats: ExitStats,
    event_counts: FxHashMap<String, u64>,
    started: FxHashSet<VcpuKey>,
    /// vCPUs in the order of their first `kvm_exit` in the chunk.
    started_order: Vec<VcpuKey>,
    last_prefix: bool,
    prefix_after_exit: bool,
    usable: bool,
    records: u64,
    diagnostics: Vec<Diagnostic>,
    counts: DiagnosticCounts,
}

impl EventChunk {
    fn new(input: usize, max_diagnostics: usize, harness_ports: Vec<u16>) -> Self {
        let mut events = EventExits::default();
        events.begin_input(input);
        EventChunk {
            max_diagnostics,
            reasons: Reasons::default(),
            events,
            out: EventOutput::default(),
            stats: ExitStats::for_part(harness_ports),
            event_counts: FxHashMap::default(),
            started: FxHashSet::default(),
            started_order: Vec::new(),
            last_prefix: false,
            prefix_after_exit: false,
            usable: true,
            records: 0,
            diagnostics: Vec::new(),
            counts: DiagnosticCounts::default(),
        }
    }
}

impl RecordSink for EventChunk {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.last_prefix = false;
        let RecordKind::Event { name, text } = rec.kind else {
            self.usable = false;
            return Flow::Continue;
        };
        let key = vcpu_key(rec.task.map(|t| t.pid), rec.cpu);
        if !self.started.contains(&key) {
            if name != "kvm_exit" {
                self.last_prefix = true;
                self.prefix_after_exit |= !self.started_order.is_empty();
                return Flow::Continue;
            }
            self.started.insert(key);
            self.started_order.push(key);
        }
        self.records += 1;
        if let Some(ts) = rec.timestamp {
            self.stats.timestamp(ts);
        }
        let count_key = if name.is_empty() { "trace_printk" } else { name };
        match self.event_counts.get_mut(count_key) {
            Some(n) => *n += 1,
            None => {
                self.event_counts.insert(count_key.to_owned(), 1);
            }
        }
        if !matches!(name, "kvm_exit" | "kvm_entry" | "kvm_userspace_exit")
            && !self.events.has_pending(key)
            && self.events.mmio_state(key).is_none()
            && let Some(t) = tracepoint_exit(name, text)
            && t.kind == ExitKind::Mmio
            && t.mmio == Some(MmioStep::Read)
        {
            // It completes an unsatisfied read of an earlier chunk or it is a stray: only
            // the state before the chunk says which.
            self.usable = false;
        }
        self.events.record(rec, false, &mut self.reasons, &mut self.out);
        if !self.out.graph_pairs.is_empty() {
            self.usable = false;
            self.out.graph_pairs.clear();
        }
        for x in self.out.exits.drain(..) {
            self.stats.add(&x, &self.reasons);
        }
        Flow::Continue
    }

    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        match d.severity {
            Severity::Error => self.counts.errors += 1,
            Severity::Warning => self.counts.warnings += 1,
        }
        if self.diagnostics.len() < self.max_diagnostics {
            self.diagnostics.push(d);
        }
        Flow::Continue
    }
}

impl ChunkPart for EventChunk {
    fn last_was_prefix(&self) -> bool {
        self.last_prefix
    }

    fn usable(&self) -> bool {
        self.usable
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl ChunkedSink for Analysis<'_> {
    fn part_maker(&self) -> Option<PartMaker> {
        if !self.extra.is_empty()
            || !self.extra_records.is_empty()
            || !self.exit_sinks.is_empty()
            || self.opts.per_vcpu
        {
            return None;
        }
        let input = self.inputs.len().saturating_sub(1);
        let max = self.opts.max_diagnostics;
        let ports = self.opts.harness_ports.clone();
        Some(Box::new(move || Box::new(EventChunk::new(input, max, ports.clone()))))
    }

    fn accepts(&self, part: &dyn ChunkPart) -> bool {
        let Some(p) = part.as_any().downcast_ref::<EventChunk>() else { return false };
        p.usable
            && !self.builder.has_open_calls()
            && !self.events.has_lost()
            && (self.events.seen_kvm_exit() || !p.prefix_after_exit)
    }

    fn merge_part(&mut self, part: Box<dyn ChunkPart>, line_base: u64) {
        let Ok(p) = part.into_any().downcast::<EventChunk>() else { return };
        let p = *p;
        // The exits the chunk's first kvm_exits found waiting.
        for &k in &p.started_order {
            self.events.finish_unpaired(k, &mut self.event_out);
        }
        self.drain_exits();
        let map: Vec<ReasonId> = (0..p.reasons.len())
            .map(|i| {
                let id = ReasonId(u32::try_from(i).unwrap_or(u32::MAX));
                self.reasons.intern_like(p.reasons.get(id))
            })
            .collect();
        self.stats.merge_part(p.stats, &map);
        self.events.merge_part(p.events, &map, line_base);
        for (name, n) in p.event_counts {
            *self.event_counts.entry(name).or_insert(0) += n;
        }
        self.ordinal += p.records;
        self.counts.errors += p.counts.errors;
        self.counts.warnings += p.counts.warnings;
        for mut d in p.diagnostics {
            if self.diagnostics.len() >= self.opts.max_diagnostics {
                break;
            }
            d.line += line_base;
            self.diagnostics.push(d);
        }
    }
}
