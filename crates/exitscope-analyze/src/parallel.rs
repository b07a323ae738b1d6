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
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;

use exitscope_model::exit::{ExitKind, MmioStep, tracepoint_exit};
use exitscope_model::{
    ChunkPart, ChunkedSink, Diagnostic, Flow, PartMaker, Record, RecordKind, RecordSink, Severity,
};

use crate::Analysis;
use crate::calls::{CallSink, CallTreeBuilder, PrefixOp, RootCall, StackKey};
use crate::event_counts::EventCounts;
use crate::exits::events::{EventExits, EventOutput, VcpuKey, vcpu_key};
use crate::exits::graph::{ExitTable, GraphExits};
use crate::exits::{ExitRecord, ExitStats, ReasonId, Reasons};
use crate::funcs::{FuncId, FuncTable};
use crate::merge::{FlatProfile, MergedTree};
use crate::report::DiagnosticCounts;

/// What every part counts alike: its records and its diagnostics (kept up to the
/// analysis' limit, lines relative to the chunk).
pub(crate) struct PartBook {
    max_diagnostics: usize,
    records: u64,
    diagnostics: Vec<Diagnostic>,
    counts: DiagnosticCounts,
}

impl PartBook {
    fn new(max_diagnostics: usize) -> Self {
        PartBook {
            max_diagnostics,
            records: 0,
            diagnostics: Vec::new(),
            counts: DiagnosticCounts::default(),
        }
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

/// The partial analysis of one chunk of an event trace (see the module docs).
pub(crate) struct EventChunk {
    reasons: Reasons,
    events: EventExits,
    out: EventOutput,
    stats: ExitStats,
    event_counts: EventCounts,
    started: FxHashSet<VcpuKey>,
    /// vCPUs in the order of their first `kvm_exit` in the chunk.
    started_order: Vec<VcpuKey>,
    last_prefix: bool,
    prefix_after_exit: bool,
    usable: bool,
    book: PartBook,
}

impl EventChunk {
    fn new(input: usize, max_diagnostics: usize, harness_ports: Vec<u16>) -> Self {
        let mut events = EventExits::default();
        events.begin_input(input);
        EventChunk {
            reasons: Reasons::default(),
            events,
            out: EventOutput::default(),
            stats: ExitStats::for_part(harness_ports),
            event_counts: EventCounts::default(),
            started: FxHashSet::default(),
            started_order: Vec::new(),
            last_prefix: false,
            prefix_after_exit: false,
            usable: true,
            book: PartBook::new(max_diagnostics),
        }
    }
}

impl RecordSink for EventChunk {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.last_prefix = false;
        let RecordKind::Event { name, text, .. } = rec.kind else {
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
        self.book.records += 1;
        if let Some(ts) = rec.timestamp {
            self.stats.timestamp(ts);
        }
        let count_key = if name.is_empty() { "trace_printk" } else { name };
        self.event_counts.bump(count_key);
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
        // By reference, then cleared (exit records are large).
        for x in &self.out.exits {
            self.stats.add(x, &self.reasons);
        }
        self.out.exits.clear();
        Flow::Continue
    }

    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.book.diagnostic(d)
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

    fn graph_part_maker(&self) -> Option<PartMaker> {
        if !self.extra.is_empty()
            || !self.extra_records.is_empty()
            || !self.exit_sinks.is_empty()
            || self.opts.per_vcpu
        {
            return None;
        }
        let input = self.inputs.len().saturating_sub(1);
        let name = self.inputs.last().map(|i| i.name.clone()).unwrap_or_default();
        let max = self.opts.max_diagnostics;
        let ports = self.opts.harness_ports.clone();
        let split = self.opts.split_exits;
        let spares = Spares::default();
        Some(Box::new(move || {
            Box::new(GraphChunk::new(input, &name, max, ports.clone(), split, spares.clone()))
        }))
    }

    fn prefix_begins(&mut self, part: &dyn ChunkPart) {
        let Some(p) = part.as_any().downcast_ref::<GraphChunk>() else { return };
        let funcs = &p.builder.funcs;
        let fmap = (0..funcs.len())
            .map(|i| {
                let f = funcs.get(u32::try_from(i).unwrap_or(u32::MAX));
                self.builder.funcs.intern(exitscope_model::Func::new(&f.name, f.module.as_deref()))
            })
            .collect();
        self.replay = Some(GraphReplay {
            fmap,
            n0: self.merged.nodes.len(),
            marks: Vec::new(),
            warn_from: self.builder.warnings_len(),
        });
    }

    fn accepts(&self, part: &dyn ChunkPart) -> bool {
        if let Some(p) = part.as_any().downcast_ref::<GraphChunk>() {
            return self.graph_part_fits(p);
        }
        let Some(p) = part.as_any().downcast_ref::<EventChunk>() else { return false };
        p.usable
            && !self.builder.has_open_calls()
            && !self.events.has_lost()
            && (self.events.seen_kvm_exit() || !p.prefix_after_exit)
    }

    fn merge_part(&mut self, part: Box<dyn ChunkPart>, line_base: u64) {
        let part = part.into_any();
        let part = match part.downcast::<GraphChunk>() {
            Ok(p) => return self.merge_graph_part(*p, line_base),
            Err(other) => other,
        };
        self.replay = None;
        let Ok(p) = part.downcast::<EventChunk>() else { return };
        let p = *p;
        // The exits the chunk's first kvm_exits found waiting.
        for &k in &p.started_order {
            self.events.finish_unpaired(k, &mut self.event_out);
        }
        self.drain_exits();
        let map = self.reason_map(&p.reasons);
        self.stats.merge_part(p.stats, &map);
        self.events.merge_part(p.events, &map, line_base);
        self.event_counts.merge(p.event_counts);
        self.merge_book(p.book, line_base);
    }
}

/// The partial analysis of one chunk of a function-graph trace (see [`Analysis::accepts`]):
/// each stack (task, else CPU) starts the chunk with no call open, from its first outermost
/// call (an entry or leaf printed at depth 0) on; its lines before that (the *prefix*: the
/// tail of a call open before the chunk) are left to the analysis, which applies them to
/// its own state first and takes the part only when they leave that stack with no call
/// open, as the part assumed. Roots completed in the chunk go into a merged tree, flat
/// profile and exit statistics of the part's own, merged in the order one thread would
/// have made them (each merged node remembers the line of the root that made it).
pub(crate) struct GraphChunk {
    builder: CallTreeBuilder,
    merged: MergedTree,
    flat: FlatProfile,
    graph: GraphExits<'static>,
    reasons: Reasons,
    stats: ExitStats,
    exit_buf: Vec<ExitRecord>,
    /// Line of the root completion that made each node of `merged`.
    node_lines: Vec<u64>,
    started: FxHashSet<StackKey>,
    started_order: Vec<StackKey>,
    /// The stack of the last record past its prefix (lines of one stack come in runs: most
    /// records skip the look-up in `started`).
    last_started: Option<StackKey>,
    prefix_ops: Vec<(StackKey, PrefixOp)>,
    /// CPUs with a task-switch banner in the chunk.
    switch_cpus: Vec<u32>,
    /// Threads of the roots that held exits, in order (each ends the exit its thread had
    /// waiting before the chunk).
    threads: Vec<(Option<u32>, Option<u32>)>,
    threads_seen: FxHashSet<(Option<u32>, Option<u32>)>,
    last_prefix: bool,
    usable: bool,
    book: PartBook,
    /// Where the merged part's tree and profile go back, emptied, for a later chunk's part.
    spares: Spares,
}

/// Trees and profiles of merged parts, emptied with their allocations kept (see
/// [`MergedTree::recycle`]): shared by the parts of one analysis.
type Spares = Arc<Mutex<Vec<(MergedTree, FlatProfile)>>>;

struct GraphChunkSink<'s> {
    merged: &'s mut MergedTree,
    flat: &'s mut FlatProfile,
    graph: &'s mut GraphExits<'static>,
    reasons: &'s mut Reasons,
    exit_buf: &'s mut Vec<ExitRecord>,
    threads: &'s mut Vec<(Option<u32>, Option<u32>)>,
    threads_seen: &'s mut FxHashSet<(Option<u32>, Option<u32>)>,
    split: &'s mut bool,
}

impl CallSink for GraphChunkSink<'_> {
    fn root(&mut self, root: &RootCall, funcs: &FuncTable) {
        let found = self.graph.observe(root, funcs, self.reasons, self.exit_buf);
        if found.split {
            *self.split = true;
        }
        if !found.units.is_empty() && self.threads_seen.insert((root.pid, root.cpu)) {
            self.threads.push((root.pid, root.cpu));
        }
        self.merged.add(root);
        self.flat.root(root, funcs);
    }
}

impl GraphChunk {
    fn new(
        input: usize,
        name: &str,
        max_diagnostics: usize,
        harness_ports: Vec<u16>,
        split_exits: bool,
        spares: Spares,
    ) -> Self {
        let table = ExitTable::builtin();
        let mut builder = CallTreeBuilder::new();
        if split_exits {
            let (name, module) = &table.synthetic_root;
            builder.funcs.intern(exitscope_model::Func::new(name, module.as_deref()));
        }
        builder.begin_input(input, name);
        let (merged, flat) =
            spares.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        GraphChunk {
            builder,
            merged,
            flat,
            graph: GraphExits::new(table),
            reasons: Reasons::default(),
            stats: ExitStats::for_part(harness_ports),
            exit_buf: Vec::new(),
            node_lines: Vec::new(),
            started: FxHashSet::default(),
            started_order: Vec::new(),
            last_started: None,
            prefix_ops: Vec::new(),
            switch_cpus: Vec::new(),
            threads: Vec::new(),
            threads_seen: FxHashSet::default(),
            last_prefix: false,
            usable: true,
            book: PartBook::new(max_diagnostics),
            spares,
        }
    }
}

impl RecordSink for GraphChunk {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.last_prefix = false;
        if !self.usable {
            return Flow::Continue;
        }
        match rec.kind {
            RecordKind::Event { .. } | RecordKind::Lost { .. } => {
                self.usable = false;
                return Flow::Continue;
            }
            RecordKind::TaskSwitch { .. } => {
                // Applied in order by the analysis itself (it may move a CPU's calls to the
                // task); the part only checks that no call of its own is moved.
                match rec.cpu {
                    Some(c) if !self.builder.stack_open(StackKey::Cpu(c)) => {
                        self.switch_cpus.push(c)
                    }
                    _ => self.usable = false,
                }
                self.last_prefix = true;
                return Flow::Continue;
            }
            _ => {}
        }
        let key = CallTreeBuilder::key_of(rec);
        if self.last_started != Some(key) && !self.started.contains(&key) {
            let op = match rec.kind {
                RecordKind::Entry { depth: 0, .. } | RecordKind::Leaf { depth: 0, .. } => None,
                RecordKind::Entry { func, .. } => {
                    self.builder.funcs.intern(func);
                    Some(PrefixOp::Entry)
                }
                RecordKind::Leaf { func, .. } => {
                    self.builder.funcs.intern(func);
                    Some(PrefixOp::Leaf)
                }
                RecordKind::Exit { func, .. } => {
                    // A named return may be looked up or interned by the state before.
                    self.usable &= func.is_none();
                    Some(PrefixOp::Exit)
                }
                RecordKind::IrqMarker { enter: true } => Some(PrefixOp::IrqEnter),
                RecordKind::IrqMarker { enter: false } => Some(PrefixOp::IrqExit),
                _ => Some(PrefixOp::Leaf),
            };
            if let Some(op) = op {
                self.prefix_ops.push((key, op));
                self.last_prefix = true;
                return Flow::Continue;
            }
            self.started.insert(key);
            self.started_order.push(key);
        }
        self.last_started = Some(key);
        if let RecordKind::Exit { func: Some(f), .. } = rec.kind
            && self.builder.funcs.find(f).is_none()
        {
            // Looked up in the functions of the chunks before too.
            self.usable = false;
            return Flow::Continue;
        }
        self.book.records += 1;
        if let Some(ts) = rec.timestamp {
            self.stats.timestamp(ts);
        }
        let mut split = false;
        let mut sink = GraphChunkSink {
            merged: &mut self.merged,
            flat: &mut self.flat,
            graph: &mut self.graph,
            reasons: &mut self.reasons,
            exit_buf: &mut self.exit_buf,
            threads: &mut self.threads,
            threads_seen: &mut self.threads_seen,
            split: &mut split,
        };
        self.builder.record(rec, &mut sink);
        if split {
            self.usable = false;
        }
        if self.merged.nodes.len() > self.node_lines.len() {
            self.node_lines.resize(self.merged.nodes.len(), rec.line);
        }
        // Most records complete no exit: skip the drain's set-up and drop.
        if !self.exit_buf.is_empty() {
            for x in self.exit_buf.drain(..) {
                self.stats.add(&x, &self.reasons);
            }
        }
        Flow::Continue
    }

    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.book.diagnostic(d)
    }
}

impl ChunkPart for GraphChunk {
    fn last_was_prefix(&self) -> bool {
        self.last_prefix
    }

    fn clear_prefix(&mut self) {
        self.last_prefix = false;
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

/// What [`ChunkedSink::prefix_begins`] noted for a function-graph part.
pub(crate) struct GraphReplay {
    /// The part's function ids in the analysis' (interned before the prefix lines, in the
    /// order the chunk's lines name them).
    fmap: Vec<FuncId>,
    /// Merged-tree nodes before the prefix lines.
    n0: usize,
    /// (nodes after, line) each time a prefix line's root made nodes.
    pub(crate) marks: Vec<(usize, u64)>,
    warn_from: usize,
}

impl GraphReplay {
    /// A prefix line `line` left the merged tree with `nodes` nodes.
    pub(crate) fn note(&mut self, nodes: usize, line: u64) {
        if nodes > self.marks.last().map_or(self.n0, |m| m.0) {
            self.marks.push((nodes, line));
        }
    }
}

impl Analysis<'_> {
    /// A part's records and diagnostics, after the analysis' own (lines moved by `line_base`).
    fn merge_book(&mut self, book: PartBook, line_base: u64) {
        self.ordinal += book.records;
        self.counts.errors += book.counts.errors;
        self.counts.warnings += book.counts.warnings;
        let room = self.opts.max_diagnostics.saturating_sub(self.diagnostics.len());
        self.diagnostics.extend(book.diagnostics.into_iter().take(room).map(|mut d| {
            d.line += line_base;
            d
        }));
    }

    /// The analysis' id of each of a part's reasons (interned here when new).
    fn reason_map(&mut self, part: &Reasons) -> Vec<ReasonId> {
        (0..part.len())
            .map(|i| {
                let id = ReasonId(u32::try_from(i).unwrap_or(u32::MAX));
                self.reasons.intern_like(part.get(id))
            })
            .collect()
    }

    fn graph_part_fits(&self, p: &GraphChunk) -> bool {
        if !p.usable || p.graph.split_roots > 0 {
            return false;
        }
        for &c in &p.switch_cpus {
            let k = StackKey::Cpu(c);
            if self.builder.stack_open(k)
                || p.started.contains(&k)
                || p.prefix_ops.iter().any(|(pk, _)| *pk == k)
            {
                return false;
            }
        }
        p.started_order.iter().all(|&k| {
            self.builder.prefix_fits(
                k,
                p.prefix_ops.iter().filter(move |(pk, _)| *pk == k).map(|(_, op)| *op),
            )
        })
    }

    fn merge_graph_part(&mut self, mut p: GraphChunk, line_base: u64) {
        let Some(replay) = self.replay.take() else { return };
        let GraphReplay { fmap, n0, marks, warn_from } = replay;
        let mut chunk_lines = Vec::with_capacity(self.merged.nodes.len() - n0);
        let mut from = n0;
        for (upto, line) in marks {
            chunk_lines.extend(std::iter::repeat_n(line, upto - from));
            from = upto;
        }
        chunk_lines.resize(self.merged.nodes.len() - n0, u64::MAX);
        for &(pid, cpu) in &p.threads {
            self.graph.end_pending(pid, cpu, &mut self.exit_buf);
        }
        self.drain_exits();
        let map = self.reason_map(&p.reasons);
        self.stats.merge_part(p.stats, &map);
        let part_lines: Vec<u64> = p.node_lines.iter().map(|l| l + line_base).collect();
        self.merged.merge_part(&p.merged, &fmap, &part_lines, &mut chunk_lines, n0);
        self.flat.merge_part(&mut p.flat, &fmap);
        self.graph.merge_counts(&p.graph);
        self.builder.merge_part(p.builder, &fmap, line_base, warn_from);
        self.merge_book(p.book, line_base);
        p.merged.recycle();
        p.spares.lock().unwrap_or_else(|e| e.into_inner()).push((p.merged, p.flat));
    }
}
