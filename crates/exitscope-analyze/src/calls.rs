//! Rebuilding calls from entry / exit / leaf records.
//!
//! Nesting is tracked per **task** (pid) when the trace names it, else per CPU: a task resumes
//! mid-stack after a context switch and may migrate between CPUs mid-call. The braces decide
//! the structure; the indentation depth is only a cross-check. Each outermost call becomes a
//! [`RootCall`] handed to a [`CallSink`] once it completes; calls that never complete (end of
//! input, lost events) and returns without an entry (trace start, `trace_pipe`) are counted
//! apart and never enter the statistics.
//!
//! Time is conserved: within a root, the self times add up to the root's duration, and no
//! call's children add up to more than its own duration. Two races between an interrupt and
//! the function_graph tracer would break that if the braces were followed blindly, so
//! there the indentation and the durations decide where the interrupt goes (and a warning
//! says so, once per input):
//!
//! ```text
//!  caller() {                 the tracer pushed callee's return and took its call time,
//!      irq_enter_rcu() {      then the interrupt came: its calls are one level deeper
//!      ...                    than callee, yet printed before callee's entry line
//!      }
//!    callee() {               callee's duration includes the interrupt: the interrupt
//!    } 330 us                 is placed inside callee (it fits), not beside it
//!  }
//!
//!  f() {
//!    irq_enter_rcu() { ... }  the interrupt came after f's return time was taken:
//!  } 14 us                    printed inside f, but not part of its 14 us, so it is
//!                             placed after f, in f's caller
//! ```
//!
//! A call whose return was lost keeps no duration; its children's time is charged to no
//! one else's self time (it is subtracted from its caller's, where the lost call ran).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use exitscope_model::{Diagnostic, Func, Nanos, Record, RecordKind, Severity, Task};

use crate::funcs::{FuncId, FuncTable};

/// Parent index of a root node.
pub const NO_PARENT: u32 = u32::MAX;

/// The [`RootEvent::name`] of a task-switch banner (`prev => next`) seen while the task had
/// calls open: it left the CPU inside the call. Not a kernel event name.
pub const TASK_SWITCH_EVENT: &str = "=>";

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
    /// The task's process (thread group id), when the trace says.
    pub tgid: Option<u32>,
    /// Input index (0-based, in the order inputs were given).
    pub input: usize,
}

impl RootCall {
    /// Checks that time is conserved in this root (see the module docs), returning the first
    /// violation found:
    ///
    /// - the tree is well formed: parents come before their children, one level up;
    /// - each call's `child_ns` is the sum of its timed children's durations (a child whose
    ///   return was lost contributes its own children), and `interrupt_child_ns` the part of
    ///   that spent in interrupt subtrees, so an interrupt's time is in no function's self
    ///   time;
    /// - no call's children add up to more than its duration;
    /// - when every call is timed, the self times add up to the root's duration.
    pub fn check_conservation(&self) -> Result<(), String> {
        let n = self.nodes.len();
        let mut kids = vec![0 as Nanos; n];
        let mut irq_kids = vec![0 as Nanos; n];
        let mut all_timed = self.nodes.first().is_some_and(|r| r.duration.is_some());
        for (i, c) in self.nodes.iter().enumerate().skip(1).rev() {
            let p = c.parent as usize;
            let Some(pn) = self.nodes.get(p).filter(|_| p < i) else {
                return Err(format!("node {i} (line {}): parent {p} is not before it", c.line));
            };
            if c.depth != pn.depth + 1 {
                return Err(format!(
                    "node {i} (line {}): depth {} under depth {}",
                    c.line, c.depth, pn.depth
                ));
            }
            let (ns, irq_ns) = if c.return_lost {
                let irq_ns = match (c.interrupt, pn.interrupt) {
                    (false, _) => irq_kids[i],
                    (true, false) => kids[i],
                    (true, true) => 0,
                };
                (kids[i], irq_ns)
            } else {
                let d = c.duration.unwrap_or(0);
                all_timed &= c.duration.is_some();
                (d, if c.interrupt && !pn.interrupt { d } else { 0 })
            };
            kids[p] = kids[p].saturating_add(ns);
            irq_kids[p] = irq_kids[p].saturating_add(irq_ns);
        }
        if self.nodes.first().is_some_and(|r| r.parent != NO_PARENT) {
            return Err("node 0 is not a root".into());
        }
        let mut self_sum: Nanos = 0;
        for (i, c) in self.nodes.iter().enumerate().filter(|(_, c)| !c.return_lost) {
            if kids[i] != c.child_ns || irq_kids[i] != c.interrupt_child_ns {
                return Err(format!(
                    "node {i} (line {}): children {} ns (interrupts {} ns) recorded as {} ({})",
                    c.line, kids[i], irq_kids[i], c.child_ns, c.interrupt_child_ns
                ));
            }
            if let Some(d) = c.duration {
                if c.child_ns > d {
                    return Err(format!(
                        "node {i} (line {}): children take {} ns of its {d} ns",
                        c.line, c.child_ns
                    ));
                }
                self_sum = self_sum.saturating_add(d - c.child_ns);
            }
        }
        let total = self.nodes.first().and_then(|r| r.duration);
        if all_timed && total != Some(self_sum) {
            return Err(format!("self times add up to {self_sum} ns, the root took {total:?}"));
        }
        Ok(())
    }

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
    /// A call in it took less time than its children (the durations contradict each other).
    DurationsContradict,
}

/// Counts of calls left out of the statistics, and of calls placed by their durations.
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
    /// Interrupt subtrees printed before the entry of the call they interrupted, placed
    /// inside that call (see the module docs).
    pub irqs_before_entry: u64,
    /// Interrupt subtrees printed inside a call whose return time was taken before them,
    /// placed after that call.
    pub irqs_after_return: u64,
    /// Calls whose printed duration was shorter than their children's by less than its
    /// print resolution (7 significant digits), taken as their children's sum.
    pub widened_to_children: u64,
    /// Roots left out because a call's children took longer than it did, with no interrupt
    /// to explain it (also counted in `incomplete` as [`CutReason::DurationsContradict`]).
    pub contradictions: u64,
}

/// The step between two durations as the kernel prints them (7 significant digits of µs,
/// at most 3 decimals): 1 ns below 10 ms, then 10, 100 and 1000 ns.
pub fn print_resolution(d: Nanos) -> Nanos {
    match d / 1000 {
        0..=9_999 => 1,
        10_000..=99_999 => 10,
        100_000..=999_999 => 100,
        _ => 1000,
    }
}

/// Interrupt subtrees printed one level too deep, before the call they interrupted.
#[derive(Clone, Copy, Debug)]
struct EarlyIrqs {
    /// The open call they were printed under.
    caller: u32,
    /// Index of the first node of the first subtree; the group runs up to the callee.
    first: u32,
    /// The call whose entry followed them, once it came.
    callee: Option<u32>,
    /// Line of the first subtree (for the warning if they stay where the braces put them).
    line: u64,
    /// Its printed depth.
    depth: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StackKey {
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
    /// Interrupt subtrees waiting for the call they interrupted (see [`EarlyIrqs`]).
    early: Vec<EarlyIrqs>,
    /// Some subtree was moved out of the root call itself: the root holds more than one
    /// outermost call when it completes.
    split_root: bool,
    /// The first call of this root whose children took longer than it: (line, children ns,
    /// its ns). Such a root is left out of the statistics.
    contradiction: Option<(u64, Nanos, Nanos)>,
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
    /// Some call was opened in this input: until then no event can be inside one (in an
    /// event trace, events need not look for their task's stack).
    opened: bool,
    /// What was left out.
    pub leftovers: Leftovers,
    input: usize,
    input_name: String,
    warnings: Vec<Diagnostic>,
    roots_seen: u64,
    /// First line of each kind of interrupt placement in this input (for its one warning),
    /// and the counts at the start of the input.
    placed_first_line: [Option<u64>; 3],
    placed_at_input_start: [u64; 3],
    /// Scratch for splitting a root.
    split_scratch: RootCall,
    /// The first contradiction of this input (for its one warning), and the count at the
    /// start of the input.
    contradiction_first: Option<(u64, Nanos, Nanos)>,
    contradictions_at_input_start: u64,
    /// Line of the record being applied, and the line that triggered each kept warning,
    /// placement and contradiction (to merge chunks' in the order one thread makes them).
    cur_line: u64,
    warn_lines: Vec<u64>,
    placed_trigger: [u64; 3],
    contradiction_trigger: u64,
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
            opened: false,
            leftovers: Leftovers::default(),
            input: 0,
            input_name: String::new(),
            warnings: Vec::new(),
            roots_seen: 0,
            placed_first_line: [None; 3],
            placed_at_input_start: [0; 3],
            split_scratch: RootCall::default(),
            contradiction_first: None,
            contradictions_at_input_start: 0,
            cur_line: 0,
            warn_lines: Vec::new(),
            placed_trigger: [0; 3],
            contradiction_trigger: 0,
        }
    }

    /// Start a new input: stacks do not continue across files.
    pub fn begin_input(&mut self, index: usize, name: &str) {
        self.input = index;
        self.input_name = name.to_string();
        self.placed_first_line = [None; 3];
        self.placed_at_input_start = self.placement_counts();
        self.contradiction_first = None;
        self.contradictions_at_input_start = self.leftovers.contradictions;
    }

    /// Number of complete root calls produced so far.
    pub fn roots(&self) -> u64 {
        self.roots_seen
    }

    /// Take the warnings collected so far (depth mismatches and the like).
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        self.warn_lines.clear();
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

    /// Interrupts placed before entries, after returns, and durations widened, so far.
    fn placement_counts(&self) -> [u64; 3] {
        let l = &self.leftovers;
        [l.irqs_before_entry, l.irqs_after_return, l.widened_to_children]
    }

    fn warning(&self, line: u64, message: String) -> Diagnostic {
        Diagnostic {
            file: self.input_name.clone(),
            line,
            column: 1,
            severity: Severity::Warning,
            message,
        }
    }

    fn warn(&mut self, line: u64, message: String) {
        if (self.warnings.len() as u64) < MAX_WARNINGS {
            let w = self.warning(line, message);
            self.warnings.push(w);
            self.warn_lines.push(self.cur_line);
        }
    }

    /// Consume one record; completed roots go to `sink`.
    pub fn record(&mut self, rec: &Record<'_>, sink: &mut impl CallSink) {
        self.cur_line = rec.line;
        match rec.kind {
            RecordKind::Entry { func, depth } => {
                self.opened = true;
                let s = self.stack_index(Self::key(rec));
                self.open(s, rec, func, depth, None, true, sink);
            }
            RecordKind::Leaf { func, duration, depth } => {
                self.opened = true;
                let s = self.stack_index(Self::key(rec));
                self.open(s, rec, func, depth, duration, false, sink);
            }
            RecordKind::Exit { func, duration, depth } => {
                let s = self.stack_index(Self::key(rec));
                self.close(s, rec, func, duration, depth, sink);
            }
            RecordKind::Event { .. } if !self.opened => {}
            RecordKind::Event { name, text, .. } => {
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
            RecordKind::TaskSwitch { prev, next } => {
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
                // The task leaves the CPU inside an open call: say so in its root (an exit
                // that holds it was preempted).
                if prev.pid != 0
                    && let Some(&pi) = self.index.get(&StackKey::Pid(prev.pid))
                    && let Some(&top) = self.stacks[pi].open.last()
                {
                    self.stacks[pi].root.events.push(RootEvent {
                        node: top,
                        name: TASK_SWITCH_EVENT.to_string(),
                        text: format!("{}-{} => {}-{}", prev.comm, prev.pid, next.comm, next.pid),
                        line: rec.line,
                    });
                }
            }
            RecordKind::Lost { count } => {
                self.leftovers.lost_markers += 1;
                match count {
                    Some(n) => {
                        self.leftovers.lost_events = self.leftovers.lost_events.saturating_add(n)
                    }
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
            st.root.tgid = rec.task.and_then(|t| t.tgid);
            st.root.input = self.input;
        }
        let parent = st.open.last().copied().unwrap_or(NO_PARENT);
        let (rel_depth, parent_interrupt) = match st.root.nodes.get(parent as usize) {
            Some(p) => (p.depth + 1, p.interrupt),
            None => (0, false),
        };
        let interrupt = interrupt_fn || parent_interrupt || st.irq_markers > 0;
        let idx = u32::try_from(st.root.nodes.len()).unwrap_or(u32::MAX);
        // Cross-check: a nested call is printed one level deeper than its caller.
        let mut mismatch = false;
        if let Some(&pd) = st.open_depth.last() {
            // Printed depths come from the input: any value, so no plain arithmetic on them.
            let (one, two) = (pd.checked_add(1), pd.checked_add(2));
            let waiting = st.early.last().filter(|g| g.caller == parent && g.callee.is_none());
            if Some(depth) == two && interrupt && !parent_interrupt {
                // An interrupt one level too deep: it may belong to the next call's entry.
                if waiting.is_none() {
                    st.early.push(EarlyIrqs {
                        caller: parent,
                        first: idx,
                        callee: None,
                        line: rec.line,
                        depth,
                    });
                }
            } else if Some(depth) == one && waiting.is_some() {
                if let Some(g) = st.early.last_mut() {
                    g.callee = Some(idx);
                }
            } else if Some(depth) != one {
                mismatch = true;
            }
        }
        let node = CallNode {
            func: id,
            parent,
            depth: rel_depth,
            start: rec.timestamp,
            duration: leaf_duration,
            child_ns: 0,
            interrupt_child_ns: 0,
            interrupt,
            line: rec.line,
            return_lost: false,
        };
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
                                // Its children ran inside its caller: not the caller's self.
                                let (p, c, i, irq) =
                                    (n.parent, n.child_ns, n.interrupt_child_ns, n.interrupt);
                                if let Some(pn) = st.root.nodes.get_mut(p as usize) {
                                    pn.child_ns = pn.child_ns.saturating_add(c);
                                    let irq_ns = match (irq, pn.interrupt) {
                                        (false, _) => i,
                                        (true, false) => c,
                                        (true, true) => 0,
                                    };
                                    pn.interrupt_child_ns =
                                        pn.interrupt_child_ns.saturating_add(irq_ns);
                                }
                                st.early.retain(|g| g.caller != skipped);
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
        let mut idx = idx;
        if !self.stacks[s].early.is_empty() {
            idx = self.place_early_irqs(s, idx, duration);
        }
        let mut duration = duration;
        let node = &mut self.stacks[s].root.nodes[idx as usize];
        node.duration = duration;
        if let Some(d) = duration
            && node.child_ns > d
        {
            self.place_late_irqs(s, idx, d);
            let st = &mut self.stacks[s];
            let node = &mut st.root.nodes[idx as usize];
            if node.child_ns > d {
                if node.child_ns - d < print_resolution(d) {
                    // The printed duration was truncated to fewer digits than the
                    // children's: its true value lies within one print step above, and
                    // the children's sum is such a value.
                    duration = Some(node.child_ns);
                    node.duration = duration;
                    self.leftovers.widened_to_children += 1;
                    if self.placed_first_line[2].is_none() {
                        self.placed_first_line[2] = Some(node.line);
                        self.placed_trigger[2] = self.cur_line;
                    }
                } else if st.contradiction.is_none() {
                    st.contradiction = Some((node.line, node.child_ns, d));
                }
            }
        }
        let st = &mut self.stacks[s];
        let node = &st.root.nodes[idx as usize];
        let (parent, interrupt) = (node.parent, node.interrupt);
        if let (Some(d), Some(p)) = (duration, st.root.nodes.get_mut(parent as usize)) {
            p.child_ns = p.child_ns.saturating_add(d);
            if interrupt && !p.interrupt {
                p.interrupt_child_ns = p.interrupt_child_ns.saturating_add(d);
            }
        }
        if st.open.is_empty() {
            let split = std::mem::take(&mut st.split_root);
            if let Some((line, kids, d)) = st.contradiction.take() {
                // Durations that contradict each other cannot give trustworthy self
                // times: the root is counted apart, like a root cut short.
                let f = st.root.nodes[0].func;
                *self
                    .leftovers
                    .incomplete
                    .entry((f, CutReason::DurationsContradict))
                    .or_insert(0) += 1;
                self.leftovers.discarded_calls += st.root.nodes.len() as u64 - 1;
                self.leftovers.contradictions += 1;
                if self.contradiction_first.is_none() {
                    self.contradiction_first = Some((line, kids, d));
                    self.contradiction_trigger = self.cur_line;
                }
            } else if split {
                self.emit_split_root(s, sink);
            } else {
                self.roots_seen += 1;
                sink.root(&st.root, &self.funcs);
            }
            let st = &mut self.stacks[s];
            st.root.nodes.clear();
            st.root.events.clear();
            st.early.clear();
        }
    }

    /// `idx` is finishing with `duration`. If it is the call that followed a group of
    /// interrupt subtrees printed one level too deep ([`EarlyIrqs`]), and its duration holds
    /// them, move them inside it: it becomes their parent and takes their place in entry
    /// order. Returns the call's index afterwards. A group whose call closes without them
    /// fitting, or whose caller closes first, stays where the braces put it (and is reported
    /// as an indentation mismatch).
    fn place_early_irqs(&mut self, s: usize, idx: u32, duration: Option<Nanos>) -> u32 {
        let st = &mut self.stacks[s];
        let mut result = idx;
        let mut dropped = Vec::new();
        st.early.retain(|g| {
            let keep = g.callee != Some(idx) && g.caller != idx;
            if !keep {
                dropped.push(*g);
            }
            keep
        });
        for g in dropped {
            let st = &mut self.stacks[s];
            let nodes = &mut st.root.nodes;
            let (first, callee) = (g.first as usize, idx as usize);
            let fits = g.callee == Some(idx)
                && duration.is_some_and(|d| {
                    let group = nodes[first..callee]
                        .iter()
                        .filter(|n| n.parent == g.caller)
                        .fold(0, |a: Nanos, n| a.saturating_add(n.duration.unwrap_or(0)));
                    nodes[callee].child_ns.saturating_add(group)
                        < d.saturating_add(print_resolution(d))
                })
                && nodes[first..callee].iter().all(|n| !n.return_lost);
            if !fits {
                self.depth_mismatch(g.line, g.depth);
                continue;
            }
            // Rotate the callee in front of the group, then re-point every index.
            nodes[first..=callee].rotate_right(1);
            let remap = |i: u32| -> u32 {
                match i as usize {
                    i2 if i2 < first || i2 > callee => i,
                    i2 if i2 == callee => g.first,
                    _ => i + 1,
                }
            };
            let (mut moved_ns, mut moved_irq_ns) = (0, 0);
            for n in &mut nodes[first + 1..] {
                n.parent = remap(n.parent);
            }
            for n in &mut nodes[first + 1..=callee] {
                n.depth += 1;
                if n.parent == g.caller {
                    n.parent = g.first;
                    let d = n.duration.unwrap_or(0);
                    moved_ns = Nanos::saturating_add(moved_ns, d);
                    if n.interrupt {
                        moved_irq_ns = Nanos::saturating_add(moved_irq_ns, d);
                    }
                }
            }
            for e in &mut st.root.events {
                e.node = remap(e.node);
            }
            let caller = &mut nodes[g.caller as usize];
            caller.child_ns = caller.child_ns.saturating_sub(moved_ns);
            if !caller.interrupt {
                caller.interrupt_child_ns = caller.interrupt_child_ns.saturating_sub(moved_irq_ns);
            }
            let c = &mut nodes[first];
            c.child_ns = c.child_ns.saturating_add(moved_ns);
            if !c.interrupt {
                c.interrupt_child_ns = c.interrupt_child_ns.saturating_add(moved_irq_ns);
            }
            result = g.first;
            self.leftovers.irqs_before_entry += 1;
            if self.placed_first_line[0].is_none() {
                self.placed_first_line[0] = Some(g.line);
                self.placed_trigger[0] = self.cur_line;
            }
        }
        result
    }

    /// `idx` has just finished with duration `d`, shorter than its children. If its last
    /// children are an interrupt (a run of interrupt subtrees with nothing between them) and
    /// the rest fits in `d`, the interrupt came after the return time was taken: move the
    /// run out to the caller (after `idx` in entry order, which it already is).
    fn place_late_irqs(&mut self, s: usize, idx: u32, d: Nanos) {
        let st = &mut self.stacks[s];
        let nodes = &mut st.root.nodes;
        let f = idx as usize;
        if nodes[f].interrupt {
            return;
        }
        // The trailing run, from the last child back.
        let mut run_start = nodes.len();
        let mut run_ns: Nanos = 0;
        for j in (f + 1..nodes.len()).rev() {
            let n = &nodes[j];
            if n.parent != idx {
                continue;
            }
            match n.duration {
                Some(cd) if n.interrupt && !n.return_lost => {
                    run_ns = run_ns.saturating_add(cd);
                    run_start = j;
                }
                _ => break,
            }
        }
        let rest = nodes[f].child_ns.saturating_sub(run_ns);
        if run_start == nodes.len() || rest >= d.saturating_add(print_resolution(d)) {
            return;
        }
        let parent = nodes[f].parent;
        for n in &mut nodes[run_start..] {
            n.depth -= 1;
            if n.parent == idx {
                n.parent = parent;
            }
        }
        let fnode = &mut nodes[f];
        fnode.child_ns = rest;
        fnode.interrupt_child_ns = fnode.interrupt_child_ns.saturating_sub(run_ns);
        match nodes.get_mut(parent as usize) {
            Some(p) => {
                p.child_ns = p.child_ns.saturating_add(run_ns);
                if !p.interrupt {
                    p.interrupt_child_ns = p.interrupt_child_ns.saturating_add(run_ns);
                }
            }
            None => st.split_root = true,
        }
        self.leftovers.irqs_after_return += 1;
        if self.placed_first_line[1].is_none() {
            self.placed_first_line[1] = Some(nodes[run_start].line);
            self.placed_trigger[1] = self.cur_line;
        }
    }

    /// The root completed with subtrees moved out of it ([`Self::place_late_irqs`] on the
    /// root itself): hand each outermost call to `sink` as a root of its own.
    fn emit_split_root(&mut self, s: usize, sink: &mut impl CallSink) {
        let st = &mut self.stacks[s];
        let starts: Vec<usize> = st
            .root
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parent == NO_PARENT)
            .map(|(i, _)| i)
            .collect();
        for (k, &a) in starts.iter().enumerate() {
            let b = starts.get(k + 1).copied().unwrap_or(st.root.nodes.len());
            let part = &mut self.split_scratch;
            part.nodes.clear();
            part.events.clear();
            part.cpu = st.root.cpu;
            part.pid = st.root.pid;
            part.tgid = st.root.tgid;
            part.input = st.root.input;
            let off = u32::try_from(a).unwrap_or(u32::MAX);
            part.nodes.extend(st.root.nodes[a..b].iter().cloned().map(|mut n| {
                if n.parent != NO_PARENT {
                    n.parent -= off;
                }
                n
            }));
            part.events.extend(
                st.root.events.iter().filter(|e| (a..b).contains(&(e.node as usize))).cloned().map(
                    |mut e| {
                        e.node -= off;
                        e
                    },
                ),
            );
            self.roots_seen += 1;
            sink.root(part, &self.funcs);
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
        st.early.clear();
        st.split_root = false;
        st.contradiction = None;
    }

    /// Some task (or CPU) has a call open.
    pub fn has_open_calls(&self) -> bool {
        self.stacks.iter().any(|s| !s.open.is_empty())
    }

    /// Whether `rec` (an event) falls inside an open call of its task: it is then part of that
    /// call's root (as a [`RootEvent`]).
    pub fn in_open_call(&self, rec: &Record<'_>) -> bool {
        if !self.opened {
            return false;
        }
        let key = Self::key(rec);
        // The analysis asks right after recording `rec`, whose stack is the last one used.
        let i = match self.last {
            Some((k, i)) if k == key => Some(i),
            _ => self.index.get(&key).copied(),
        };
        i.and_then(|i| self.stacks.get(i)).is_some_and(|s| !s.open.is_empty())
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
        self.opened = false;
        // One warning per kind of placement and input.
        let counts = self.placement_counts();
        let placed = counts.iter().zip(self.placed_at_input_start).zip(self.placed_first_line);
        for (kind, ((&now, before), first)) in placed.enumerate() {
            let Some(line) = first else { continue };
            let n = now - before;
            let message = match kind {
                0 => format!(
                    "{n} interrupt(s) printed before the entry of the call they interrupted, one \
                     level deeper (the tracer raced with the interrupt): placed inside that \
                     call, as its indentation and duration say"
                ),
                1 => format!(
                    "{n} interrupt(s) printed inside a call too short to hold them (they came \
                     after its return time was taken): placed after that call, in its caller"
                ),
                _ => format!(
                    "{n} call(s) printed shorter than their children by less than one step of \
                     their printed precision (7 significant digits): taken as their \
                     children's sum"
                ),
            };
            let w = self.warning(line, message);
            self.warnings.push(w);
            self.warn_lines.push(self.cur_line);
        }
        self.placed_first_line = [None; 3];
        self.placed_at_input_start = counts;
        if let Some((line, kids, d)) = self.contradiction_first.take() {
            let n = self.leftovers.contradictions - self.contradictions_at_input_start;
            let w = self.warning(
                line,
                format!(
                    "the children of this call take {kids} ns of its {d} ns, and no interrupt \
                     explains it: {n} root call(s) with durations that contradict each other \
                     left out of the statistics (counted as incomplete)"
                ),
            );
            self.warnings.push(w);
            self.warn_lines.push(self.cur_line);
        }
        self.contradictions_at_input_start = self.leftovers.contradictions;
    }

    /// The stack key of `rec` (see [`crate::parallel`]).
    pub(crate) fn key_of(rec: &Record<'_>) -> StackKey {
        Self::key(rec)
    }

    /// The stack of `key` has a call open.
    pub(crate) fn stack_open(&self, key: StackKey) -> bool {
        self.index.get(&key).is_some_and(|&i| !self.stacks[i].open.is_empty())
    }

    /// Warnings kept so far in this input.
    pub(crate) fn warnings_len(&self) -> usize {
        self.warnings.len()
    }

    /// Applying `ops` (a chunk's lines of `key` before its first outermost call) to the
    /// stack of `key` leaves it with no call open and no interrupt marker open: what a part
    /// of the chunk assumed (see [`crate::parallel`]).
    pub(crate) fn prefix_fits(&self, key: StackKey, ops: impl Iterator<Item = PrefixOp>) -> bool {
        let (mut d, mut m) = match self.index.get(&key) {
            Some(&i) => (self.stacks[i].open.len(), self.stacks[i].irq_markers),
            None => (0, 0),
        };
        for op in ops {
            match op {
                PrefixOp::Entry => d += 1,
                PrefixOp::Exit => d = d.saturating_sub(1),
                PrefixOp::Leaf => {}
                PrefixOp::IrqEnter => m += 1,
                PrefixOp::IrqExit => m = m.saturating_sub(1),
            }
        }
        d == 0 && m == 0
    }

    /// Merge the builder of a chunk's part (its chunk follows all lines applied here, after
    /// line `base`; `fmap` maps its function ids to this one's; warnings kept from index
    /// `warn_from` on came from the chunk's prefix lines): counts add, first placements and
    /// warnings are kept in the order one thread would have made them, and the part's
    /// stacks (calls still open at the chunk's end) replace this builder's.
    pub(crate) fn merge_part(
        &mut self,
        mut part: CallTreeBuilder,
        fmap: &[FuncId],
        base: u64,
        warn_from: usize,
    ) {
        let m = |f: FuncId| fmap.get(f as usize).copied().unwrap_or(f);
        let (l, p) = (&mut self.leftovers, std::mem::take(&mut part.leftovers));
        for ((f, r), n) in p.incomplete {
            *l.incomplete.entry((m(f), r)).or_insert(0) += n;
        }
        for (f, (n, ns)) in p.orphans {
            let e = l.orphans.entry(f.map(m)).or_insert((0, 0));
            e.0 += n;
            e.1 = e.1.saturating_add(ns);
        }
        l.discarded_calls += p.discarded_calls;
        l.lost_markers += p.lost_markers;
        l.lost_events = l.lost_events.saturating_add(p.lost_events);
        l.lost_uncounted += p.lost_uncounted;
        l.depth_mismatches += p.depth_mismatches;
        l.irqs_before_entry += p.irqs_before_entry;
        l.irqs_after_return += p.irqs_after_return;
        l.widened_to_children += p.widened_to_children;
        l.contradictions += p.contradictions;
        self.roots_seen += part.roots_seen;
        for k in 0..3 {
            let Some(line) = part.placed_first_line[k] else { continue };
            let t = part.placed_trigger[k] + base;
            if self.placed_first_line[k].is_none()
                || (self.placed_trigger[k] > base && t < self.placed_trigger[k])
            {
                self.placed_first_line[k] = Some(line + base);
                self.placed_trigger[k] = t;
            }
        }
        if let Some((line, kids, d)) = part.contradiction_first {
            let t = part.contradiction_trigger + base;
            if self.contradiction_first.is_none()
                || (self.contradiction_trigger > base && t < self.contradiction_trigger)
            {
                self.contradiction_first = Some((line + base, kids, d));
                self.contradiction_trigger = t;
            }
        }
        let from = warn_from.min(self.warnings.len());
        let mut all: Vec<(u64, Diagnostic)> =
            self.warn_lines.drain(from..).zip(self.warnings.drain(from..)).collect();
        all.extend(part.warn_lines.iter().zip(part.warnings).map(|(&t, mut w)| {
            w.line += base;
            (t + base, w)
        }));
        all.sort_by_key(|(t, _)| *t);
        for (t, w) in all {
            if (self.warnings.len() as u64) < MAX_WARNINGS {
                self.warnings.push(w);
                self.warn_lines.push(t);
            }
        }
        let mut keys: Vec<(StackKey, usize)> = part.index.iter().map(|(&k, &i)| (k, i)).collect();
        keys.sort_by_key(|&(_, i)| i);
        for (key, i) in keys {
            let mut st = std::mem::take(&mut part.stacks[i]);
            if st.open.is_empty() && st.irq_markers == 0 {
                continue;
            }
            for n in &mut st.root.nodes {
                n.func = m(n.func);
                n.line += base;
            }
            for e in &mut st.root.events {
                e.line += base;
            }
            for g in &mut st.early {
                g.line += base;
            }
            if let Some(c) = st.contradiction.as_mut() {
                c.0 += base;
            }
            self.opened |= !st.open.is_empty();
            let gi = self.stack_index(key);
            self.stacks[gi] = st;
        }
    }
}

/// What a line before a stack's first outermost call in a chunk does to the stack (see
/// [`CallTreeBuilder::prefix_fits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrefixOp {
    Entry,
    Exit,
    Leaf,
    IrqEnter,
    IrqExit,
}
