//! The calling-context tree: every root call merged by call path, with per-path statistics.

use rustc_hash::FxHashMap;

use exitscope_model::Nanos;

use crate::calls::{CallSink, NO_PARENT, RootCall};
use crate::funcs::{FuncId, FuncTable};
pub use crate::histogram::DurationStats;

/// One call path in the merged tree.
#[derive(Clone, Debug)]
pub struct MergedNode {
    /// Function at the end of the path.
    pub func: FuncId,
    /// Children in first-seen order.
    pub children: Vec<u32>,
    /// Inclusive durations.
    pub stats: DurationStats,
    /// Sum of self time (duration minus children) over timed calls.
    pub self_total: Nanos,
    /// Sum of interrupt subtrees' time directly below this path.
    pub interrupt_child_total: Nanos,
    /// The path runs in interrupt context.
    pub interrupt: bool,
}

/// Root calls merged by call path.
#[derive(Clone, Debug, Default)]
pub struct MergedTree {
    /// All paths.
    pub nodes: Vec<MergedNode>,
    /// Root paths in first-seen order.
    pub roots: Vec<u32>,
    index: FxHashMap<(u32, FuncId), u32>,
    /// Scratch: merged index of each node of the root being added.
    scratch: Vec<u32>,
}

impl MergedTree {
    fn child(&mut self, parent: u32, func: FuncId, interrupt: bool) -> u32 {
        // Call paths fan out little: a scan of the parent's children beats hashing. Roots
        // (which can be many) go through the map.
        if let Some(p) = self.nodes.get(parent as usize) {
            if let Some(&i) = p.children.iter().find(|&&c| self.nodes[c as usize].func == func) {
                return i;
            }
        } else if let Some(&i) = self.index.get(&(parent, func)) {
            return i;
        }
        let i = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        self.nodes.push(MergedNode {
            func,
            children: Vec::new(),
            stats: DurationStats::default(),
            self_total: 0,
            interrupt_child_total: 0,
            interrupt,
        });
        self.index.insert((parent, func), i);
        match self.nodes.get_mut(parent as usize) {
            Some(p) => p.children.push(i),
            None => self.roots.push(i),
        }
        i
    }

    /// Add one root call.
    pub fn add(&mut self, root: &RootCall) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for n in &root.nodes {
            let parent = if n.parent == NO_PARENT { NO_PARENT } else { scratch[n.parent as usize] };
            let m = self.child(parent, n.func, n.interrupt);
            scratch.push(m);
            let node = &mut self.nodes[m as usize];
            if n.return_lost {
                continue;
            }
            node.stats.add(n.duration);
            if let Some(s) = n.self_ns() {
                node.self_total = node.self_total.saturating_add(s);
            }
            node.interrupt_child_total =
                node.interrupt_child_total.saturating_add(n.interrupt_child_ns);
        }
        self.scratch = scratch;
    }
}

impl CallSink for MergedTree {
    fn root(&mut self, root: &RootCall, _funcs: &FuncTable) {
        self.add(root);
    }
}

/// Per-function totals regardless of call path.
#[derive(Clone, Debug, Default)]
pub struct FlatProfile {
    /// Per function: inclusive stats (recursive calls inside an outer call of the same
    /// function are not counted again), and summed self time.
    pub funcs: FxHashMap<FuncId, FlatEntryStats>,
}

/// Flat statistics of one function.
#[derive(Clone, Debug, Default)]
pub struct FlatEntryStats {
    /// Every call (recursive ones included).
    pub calls: u64,
    /// Inclusive durations of outermost calls of this function (recursion deduplicated).
    pub inclusive: DurationStats,
    /// Summed self time over all calls.
    pub self_total: Nanos,
}

impl CallSink for FlatProfile {
    fn root(&mut self, root: &RootCall, _funcs: &FuncTable) {
        for n in root.nodes.iter().filter(|n| !n.return_lost) {
            let e = self.funcs.entry(n.func).or_default();
            e.calls += 1;
            if let Some(s) = n.self_ns() {
                e.self_total = e.self_total.saturating_add(s);
            }
            // Count inclusive time only for the outermost call of this function on the path.
            let mut p = n.parent;
            let mut recursive = false;
            while p != NO_PARENT {
                let pn = &root.nodes[p as usize];
                if pn.func == n.func {
                    recursive = true;
                    break;
                }
                p = pn.parent;
            }
            if !recursive {
                e.inclusive.add(n.duration);
            }
        }
    }
}
