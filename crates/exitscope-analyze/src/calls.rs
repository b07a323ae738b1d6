//! Rebuilding calls from entry / exit / leaf records.
//!
//! Nesting is tracked per **task** (pid) when the trace names it, else per CPU: a task resumes
//! mid-stack after a context switch and may migrate between CPUs mid-call. The braces decide
//! the structure; the indentation depth is only a cross-check. Each outermost call becomes a
//! [`RootCall`] handed to a [`CallSink`] once it completes; calls that never complete (end of
//! input, lost events) and returns without an entry (trace start, `trace_pipe`) are counted
//! apart and never enter the statistics.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use exitscope_model::{Diagnostic, Func, Nanos, Record, RecordKind, Severity, Task};

use crate::funcs::{FuncId, FuncTable};

/// Parent index of a root node.
pub const NO_PARENT: u32 = u32::MAX;

/// One call inside a [`RootCall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallNode {
    /// The function.
    pub func: FuncId,
    /// Index of the calling node in [`RootCall::nodes`], or [`NO_PARENT`].
    pub parent: u32,
    /// Depth below the root (root = 0).
    pub depth: u32,
    /// Start time, when the trace has timestamps.
    pub start: Option<Nanos>,
    /// Duration including children, when the trace has durations.
    pub duration: Option<Nanos>,
    /// Sum of the children's durations.
    pub child_ns: Nanos,
    /// Sum of the durations of children that are interrupt subtrees.
    pub interrupt_child_ns: Nanos,
    /// This call runs in interrupt context (an interrupt entry point, inside `==========>`
    /// markers, or below either).
    pub interrupt: bool,
    /// Input line of the entry (or leaf).
    pub line: u64,
    /// Its return was lost (a later return named an outer function): it is kept for the
    /// shape of the tree but left out of every statistic.
    pub return_lost: bool,
}

impl CallNode {
    /// Duration minus the children's: time spent in the function itself. Interrupt subtrees
    /// are children, so their time is never charged to the function they interrupted.
    pub fn self_ns(&self) -> Option<Nanos> {
        self.duration.map(|d| d.saturating_sub(self.child_ns))
    }
}

/// An event record seen inside a root call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootEvent {
    /// Index of the innermost open call when the event was seen.
    pub node: u32,
    /// Event name.
    pub name: String,
    /// Event text.
    pub text: String,
    /// Input line.
    pub line: u64,
}

/// A complete outermost call and everything below it, in entry order (pre-order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootCall {
    /// Calls in entry order; `nodes[0]` is the root.
    pub nodes: Vec<CallNode>,
    /// Events seen while the root was open.
    pub events: Vec<RootEvent>,
    /// CPU of the root's entry.
    pub cpu: Option<u32>,
    /// Task pid, when known.
    pub pid: Option<u32>,
    /// Input index (0-based, in the order inputs were given).
    pub input: usize,
}

impl RootCall {
    /// Indexes of the direct children of `node`, in order.
    pub fn children(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        let depth = self.nodes.get(node as usize).map_or(0, |n| n.depth);
        self.nodes
            .iter()
            .enumerate()
            .skip(node as usize + 1)
            .take_while(move |(_, n)| n.depth > depth)
            .filter(move |(_, n)| n.parent == node)
            .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// Receives each completed root call.
pub trait CallSink {
    /// One complete root call. `funcs` resolves its function ids.
    fn root(&mut self, root: &RootCall, funcs: &FuncTable);

    /// One complete root call with the labels of the exits the analysis found in it (`CPUID`,
    /// `IO`; empty for a root that holds no exit). The default forwards to [`CallSink::root`].
    fn root_with_exits(&mut self, root: &RootCall, funcs: &FuncTable, exit_labels: &[&str]) {
        let _ = exit_labels;
        self.root(root, funcs);
    }
}

/// Why calls ended up incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CutReason {
    /// The input ended with the call still open.
    EndOfInput,
    /// A `LOST EVENTS` line on the call's CPU.
    LostEvents,
    /// A return naming an outer function closed it first (its own return was lost).
    SkippedByReturn,
}

/// Counts of calls left out of the statistics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leftovers {
    /// Open calls that never returned, per function and reason.
    pub incomplete: BTreeMap<(FuncId, CutReason), u64>,
    /// Completed calls inside a root that did not complete (dropped with it).
    pub discarded_calls: u64,
    /// Returns with no entry: per function (`None` when the return did not name it):
    /// (count, summed duration).
    pub orphans: BTreeMap<Option<FuncId>, (u64, Nanos)>,
    /// `LOST` lines seen, and the events they counted (when counted).
    pub lost_markers: u64,
    /// Sum of the printed lost-event counts.
    pub lost_events: u64,
    /// `LOST` lines without a count.
    pub lost_uncounted: u64,
    /// Returns whose indentation disagreed with the braces.
    pub depth_mismatches: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum StackKey {
    Pid(u32),
    /// pid 0 is a different idle task on every CPU.
    Idle(u32),
    Cpu(u32),
    NoCpu,
}

#[derive(Default)]
struct TaskStack {
    /// Open calls: index into `nodes`.
    open: Vec<u32>,
    /// Printed depth of each open call's entry line (indentation cross-check).
    open_depth: Vec<u32>,
    /// The root being built.
    root: RootCall,
    /// Nesting of `==========>` markers.
    irq_markers: u32,
    last_cpu: Option<u32>,
}

/// Most warnings of one kind printed per input; the rest are only counted.
const MAX_WARNINGS: u64 = 10;

/// A [`exitscope_model::RecordSink`]-like consumer that rebuilds calls. It does not implement
/// the trait itself so that one analysis can route records to several consumers; call
/// [`CallTreeBuilder::record`] with each record.
pub(crate) struct CallTreeBuilder {
    /// Interned functions.
    pub funcs: FuncTable,
    stacks: Vec<TaskStack>,
    index: FxHashMap<StackKey, usize>,
    last: Option<(StackKey, usize)>,
    /// What was left out.
    pub leftovers: Leftovers,
    input: usize,
    input_name: String,
    warnings: Vec<Diagnostic>,
    roots_seen: u64,
}

impl Default for CallTreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CallTreeBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        CallTreeBuilder {
            funcs: FuncTable::default(),
            stacks: Vec::new(),
            index: FxHashMap::default(),
            last: None,
            leftovers: Leftovers::default(),
            input: 0,
            input_name: String::new(),
            warnings: Vec::new(),
            roots_seen: 0,
        }
    }

    /// Start a new input: stacks do not continue across files.
    pub fn begin_input(&mut self, index: usize, name: &str) {
        self.input = index;
        self.input_name = name.to_string();
    }

    /// Number of complete root calls produced so far.
    pub fn roots(&self) -> u64 {
        self.roots_seen
    }

    /// Take the warnings collected so far (depth mismatches and the like).
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.warnings)
    }

    fn key(rec: &Record<'_>) -> StackKey {
        match (rec.task, rec.cpu) {
            (Some(Task { pid: 0, .. }), Some(cpu)) => StackKey::Idle(cpu),
            (Some(t), _) => StackKey::Pid(t.pid),
            (None, Some(cpu)) => StackKey::Cpu(cpu),
            (None, None) => StackKey::NoCpu,
        }
    }

    fn stack_index(&mut self, key: StackKey) -> usize {
        if let Some((k, i)) = self.last
            && k == key
        {
            return i;
        }
        let next = self.stacks.len();
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.stacks.push(TaskStack::default());
        }
        self.last = Some((key, i));
        i
    }

    fn warn(&mut self, line: u64, message: String) {
        if (self.warnings.len() as u64) < MAX_WARNINGS {
            self.warnings.push(Diagnostic {
                file: self.input_name.clone(),
                line,
                column: 1,
                severity: Severity::Warning,
                message,
            });
        }
    }

    /// Consume one record; completed roots go to `sink`.
    pub fn record(&mut self, rec: &Record<'_>, sink: &mut impl CallSink) {
        match rec.kind {
            RecordKind::Entry { func, depth } => {
                let s = self.stack_index(Self::key(rec));
                self.open(s, rec, func, depth, None, true, sink);
            }
            RecordKind::Leaf { func, duration, depth } => {
                let s = self.stack_index(Self::key(rec));
                self.open(s, rec, func, depth, duration, false, sink);
            }
            RecordKind::Exit { func, duration, depth } => {
                let s = self.stack_index(Self::key(rec));
                self.close(s, rec, func, duration, depth, sink);
            }
            RecordKind::Event { name, text } => {
                let s = self.stack_index(Self::key(rec));
                let st = &mut self.stacks[s];
                if let Some(&top) = st.open.last() {
                    st.root.events.push(RootEvent {
                        node: top,
                        name: name.to_string(),
                        text: text.to_string(),
                        line: rec.line,
                    });
                }
            }
            RecordKind::TaskSwitch { prev, .. } => {
                // Lines before the first banner of a CPU had no task: they belong to `prev`.
                if let Some(cpu) = rec.cpu
                    && let Some(&ci) = self.index.get(&StackKey::Cpu(cpu))
                    && !self.stacks[ci].open.is_empty()
                {
                    let moved = std::mem::take(&mut self.stacks[ci]);
                    let pk =
                        if prev.pid == 0 { StackKey::Idle(cpu) } else { StackKey::Pid(prev.pid) };
                    let pi = self.stack_index(pk);
                    if self.stacks[pi].open.is_empty() {
                        self.stacks[pi] = moved;
                    } else {
                        // Both have open calls: keep the task's own; cut the CPU's.
                        self.stacks[ci] = moved;
                        self.cut(ci, CutReason::EndOfInput);
                    }
                }
            }
            RecordKind::Lost { count } => {
                self.leftovers.lost_markers += 1;
                match count {
                    Some(n) => self.leftovers.lost_events += n,
                    None => self.leftovers.lost_uncounted += 1,
                }
                let cpu = rec.cpu;
                for i in 0..self.stacks.len() {
                    if self.stacks[i].last_cpu == cpu && !self.stacks[i].open.is_empty() {
                        self.cut(i, CutReason::LostEvents);
                    }
                }
            }
            RecordKind::IrqMarker { enter } => {
                let s = self.stack_index(Self::key(rec));
                let st = &mut self.stacks[s];
                st.irq_markers =
                    if enter { st.irq_markers + 1 } else { st.irq_markers.saturating_sub(1) };
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        s: usize,
        rec: &Record<'_>,
        func: Func<'_>,
        depth: u32,
        leaf_duration: Option<Nanos>,
        is_entry: bool,
        sink: &mut impl CallSink,
    ) {
        let id = self.funcs.intern(func);
        let interrupt_fn = self.funcs.get(id).interrupt;
        let st = &mut self.stacks[s];
        st.last_cpu = rec.cpu;
        if st.open.is_empty() {
            st.root.nodes.clear();
            st.root.events.clear();
            st.root.cpu = rec.cpu;
            st.root.pid = rec.task.map(|t| t.pid);
            st.root.input = self.input;
        }
        let parent = st.open.last().copied().unwrap_or(NO_PARENT);
        let (rel_depth, parent_interrupt) = match st.root.nodes.get(parent as usize) {
            Some(p) => (p.depth + 1, p.interrupt),
            None => (0, false),
        };
        // Cross-check: a nested call is printed one level deeper than its caller.
        let mismatch = st.open_depth.last().is_some_and(|&pd| depth != pd + 1);
        let node = CallNode {
            func: id,
            parent,
            depth: rel_depth,
            start: rec.timestamp,
            duration: leaf_duration,
            child_ns: 0,
            interrupt_child_ns: 0,
            interrupt: interrupt_fn || parent_interrupt || st.irq_markers > 0,
            line: rec.line,
            return_lost: false,
        };
        let idx = u32::try_from(st.root.nodes.len()).unwrap_or(u32::MAX);
        st.root.nodes.push(node);
        if is_entry {
            st.open.push(idx);
            st.open_depth.push(depth);
        }
        if mismatch {
            self.depth_mismatch(rec.line, depth);
        }
        if !is_entry {
            // A leaf closes at once.
            self.finish_node(s, idx, leaf_duration, sink);
        }
    }

    fn close(
        &mut self,
        s: usize,
        rec: &Record<'_>,
        func: Option<Func<'_>>,
        duration: Option<Nanos>,
        depth: u32,
        sink: &mut impl CallSink,
    ) {
        let named = func.map(|f| self.funcs.find(f).or_else(|| self.funcs.find_name(f.name)));
        let st = &mut self.stacks[s];
        st.last_cpu = rec.cpu;
        let Some(&top) = st.open.last() else {
            self.orphan(func, duration);
            return;
        };
        let mut target = top;
        if let Some(want) = named {
            let top_func = st.root.nodes[top as usize].func;
            if want != Some(top_func) {
                // The return names another function: find it further down the stack.
                let found = want.and_then(|w| {
                    st.open.iter().rev().position(|&i| st.root.nodes[i as usize].func == w)
                });
                match found {
                    Some(pos) => {
                        // The calls above it lost their returns.
                        let mut skipped_funcs = Vec::with_capacity(pos);
                        for _ in 0..pos {
                            st.open_depth.pop();
                            if let Some(skipped) = st.open.pop() {
                                // Unknown duration keeps it out of the statistics.
                                let n = &mut st.root.nodes[skipped as usize];
                                n.duration = None;
                                n.return_lost = true;
                                skipped_funcs.push(n.func);
                            }
                        }
                        target = *st.open.last().unwrap_or(&top);
                        for f in skipped_funcs {
                            *self
                                .leftovers
                                .incomplete
                                .entry((f, CutReason::SkippedByReturn))
                                .or_insert(0) += 1;
                        }
                    }
                    None => {
                        self.orphan(func, duration);
                        return;
                    }
                }
            }
        }
        let st = &mut self.stacks[s];
        st.open.pop();
        // Cross-check indentation: a return is printed at its entry's depth.
        if st.open_depth.pop().is_some_and(|d| d != depth) {
            self.depth_mismatch(rec.line, depth);
        }
        let st = &mut self.stacks[s];
        let mut duration = duration;
        if duration.is_none() {
            // Derive from timestamps when both ends have one (µs resolution).
            if let (Some(start), Some(end)) = (st.root.nodes[target as usize].start, rec.timestamp)
            {
                duration = end.checked_sub(start);
            }
        }
        if st.root.nodes[target as usize].start.is_none()
            && let (Some(end), Some(d)) = (rec.timestamp, duration)
        {
            st.root.nodes[target as usize].start = end.checked_sub(d);
        }
        self.finish_node(s, target, duration, sink);
    }

    fn finish_node(
        &mut self,
        s: usize,
        idx: u32,
        duration: Option<Nanos>,
        sink: &mut impl CallSink,
    ) {
        let st = &mut self.stacks[s];
        let node = &mut st.root.nodes[idx as usize];
        node.duration = duration;
        let (parent, interrupt) = (node.parent, node.interrupt);
        if let (Some(d), Some(p)) = (duration, st.root.nodes.get_mut(parent as usize)) {
            p.child_ns = p.child_ns.saturating_add(d);
            if interrupt && !p.interrupt {
                p.interrupt_child_ns = p.interrupt_child_ns.saturating_add(d);
            }
        }
        if st.open.is_empty() {
            self.roots_seen += 1;
            sink.root(&st.root, &self.funcs);
            st.root.nodes.clear();
            st.root.events.clear();
        }
    }

    fn depth_mismatch(&mut self, line: u64, depth: u32) {
        self.leftovers.depth_mismatches += 1;
        self.warn(
            line,
            format!(
                "indentation says depth {depth}, but the braces say otherwise; the braces were \
                 followed (is a line missing?)"
            ),
        );
    }

    fn orphan(&mut self, func: Option<Func<'_>>, duration: Option<Nanos>) {
        let id = func.map(|f| self.funcs.intern(f));
        let e = self.leftovers.orphans.entry(id).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.saturating_add(duration.unwrap_or(0));
    }

    /// Cut every open call of stack `s` (they become incomplete) and drop its root.
    fn cut(&mut self, s: usize, reason: CutReason) {
        let st = &mut self.stacks[s];
        for &i in &st.open {
            let f = st.root.nodes[i as usize].func;
            *self.leftovers.incomplete.entry((f, reason)).or_insert(0) += 1;
        }
        let completed = st.root.nodes.len() - st.open.len();
        self.leftovers.discarded_calls += completed as u64;
        st.open.clear();
        st.open_depth.clear();
        st.root.nodes.clear();
        st.root.events.clear();
        st.irq_markers = 0;
    }

    /// Whether `rec` (an event) falls inside an open call of its task: it is then part of that
    /// call's root (as a [`RootEvent`]).
    pub fn in_open_call(&self, rec: &Record<'_>) -> bool {
        self.index
            .get(&Self::key(rec))
            .and_then(|&i| self.stacks.get(i))
            .is_some_and(|s| !s.open.is_empty())
    }

    /// End of one input: every call still open is incomplete.
    pub fn end_input(&mut self) {
        for i in 0..self.stacks.len() {
            if !self.stacks[i].open.is_empty() {
                self.cut(i, CutReason::EndOfInput);
            }
        }
        self.stacks.clear();
        self.index.clear();
        self.last = None;
    }
}
