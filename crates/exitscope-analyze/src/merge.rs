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
    /// Allocations of the nodes of a recycled tree ([`MergedTree::recycle`]): histogram
    /// buffers and children lists for new nodes.
    spare: Spare,
}

/// Emptied allocations kept for reuse.
#[derive(Clone, Debug, Default)]
struct Spare {
    values: Vec<Vec<Nanos>>,
    lists: Vec<Vec<u32>>,
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
        let mut children = self.spare.lists.pop().unwrap_or_default();
        children.clear();
        self.nodes.push(MergedNode {
            func,
            children,
            stats: DurationStats::with_buffer(self.spare.values.pop().unwrap_or_default()),
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

    /// Empty the tree, keeping its nodes' allocations for the nodes it makes next (a
    /// chunk's part, reused for a later chunk).
    pub(crate) fn recycle(&mut self) {
        for mut n in self.nodes.drain(..) {
            self.spare.values.push(n.stats.hist.take_buffer());
            self.spare.lists.push(n.children);
        }
        self.roots.clear();
        self.index.clear();
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
    /// Histogram buffers of a merged part's entries, for new entries (see
    /// [`FlatProfile::merge_part`]).
    spare: Vec<Vec<Nanos>>,
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
            let spare = &mut self.spare;
            let e = self.funcs.entry(n.func).or_insert_with(|| FlatEntryStats {
                inclusive: DurationStats::with_buffer(spare.pop().unwrap_or_default()),
                ..FlatEntryStats::default()
            });
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

impl MergedTree {
    /// Merge `part`, the tree of a chunk analysed on another thread (see
    /// [`crate::parallel`]), into this one so that children come in the order one thread
    /// would have seen them: `fmap` maps the part's function ids to this tree's,
    /// `part_lines[j]` is the input line of the root completion that made the part's node
    /// `j`, and `chunk_lines[i - n0]` the same for this tree's nodes from `n0` on (made since
    /// the chunk began, by its prefix lines); the part's new nodes are added to it.
    pub(crate) fn merge_part(
        &mut self,
        part: &MergedTree,
        fmap: &[FuncId],
        part_lines: &[u64],
        chunk_lines: &mut Vec<u64>,
        n0: usize,
    ) {
        let mut parent = vec![NO_PARENT; part.nodes.len()];
        for (j, n) in part.nodes.iter().enumerate() {
            for &c in &n.children {
                parent[c as usize] = u32::try_from(j).unwrap_or(u32::MAX);
            }
        }
        let mut map: Vec<u32> = Vec::with_capacity(part.nodes.len());
        for (j, pn) in part.nodes.iter().enumerate() {
            let gp = match parent[j] {
                NO_PARENT => NO_PARENT,
                p => map[p as usize],
            };
            let func = fmap.get(pn.func as usize).copied().unwrap_or(pn.func);
            let key = part_lines.get(j).copied().unwrap_or(u64::MAX);
            let g = match self.index.get(&(gp, func)) {
                Some(&g) => {
                    let gi = g as usize;
                    if gi >= n0 && chunk_lines[gi - n0] > key {
                        // Made by a prefix line after the part's root: the part's came first.
                        chunk_lines[gi - n0] = key;
                        self.nodes[gi].interrupt = pn.interrupt;
                        self.unlink(gp, g);
                        self.link(gp, g, n0, chunk_lines);
                    }
                    let n = &mut self.nodes[gi];
                    n.stats.merge(&pn.stats);
                    n.self_total = n.self_total.saturating_add(pn.self_total);
                    n.interrupt_child_total =
                        n.interrupt_child_total.saturating_add(pn.interrupt_child_total);
                    g
                }
                None => {
                    let g = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
                    self.nodes.push(MergedNode {
                        func,
                        children: Vec::new(),
                        stats: pn.stats.clone(),
                        self_total: pn.self_total,
                        interrupt_child_total: pn.interrupt_child_total,
                        interrupt: pn.interrupt,
                    });
                    self.index.insert((gp, func), g);
                    chunk_lines.push(key);
                    self.link(gp, g, n0, chunk_lines);
                    g
                }
            };
            map.push(g);
        }
    }

    fn siblings(&mut self, parent: u32) -> &mut Vec<u32> {
        match parent {
            NO_PARENT => &mut self.roots,
            p => &mut self.nodes[p as usize].children,
        }
    }

    fn unlink(&mut self, parent: u32, g: u32) {
        let list = self.siblings(parent);
        if let Some(k) = list.iter().position(|&c| c == g) {
            list.remove(k);
        }
    }

    /// Insert `g` among its siblings by the line that made it (nodes made before the chunk
    /// come first).
    fn link(&mut self, parent: u32, g: u32, n0: usize, chunk_lines: &[u64]) {
        let key = chunk_lines[g as usize - n0];
        let list = self.siblings(parent);
        let at = list
            .iter()
            .position(|&c| c as usize >= n0 && chunk_lines[c as usize - n0] > key)
            .unwrap_or(list.len());
        list.insert(at, g);
    }
}

impl FlatProfile {
    /// Add the profile of a chunk analysed on another thread (`fmap` maps its function ids).
    /// The part is left empty, its entries' allocations kept for its reuse.
    pub(crate) fn merge_part(&mut self, part: &mut FlatProfile, fmap: &[FuncId]) {
        let mut entries: Vec<(FuncId, FlatEntryStats)> = part.funcs.drain().collect();
        entries.sort_by_key(|(f, _)| *f);
        for (f, mut o) in entries {
            let e = self.funcs.entry(fmap.get(f as usize).copied().unwrap_or(f)).or_default();
            e.calls += o.calls;
            e.self_total = e.self_total.saturating_add(o.self_total);
            e.inclusive.merge(&o.inclusive);
            part.spare.push(o.inclusive.hist.take_buffer());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::CallNode;

    /// A root `f0` with `n` children `f1..`, durations from `seed`.
    fn root(n: u32, seed: u64) -> RootCall {
        let node = |func, parent, depth, d: u64| CallNode {
            func,
            parent,
            depth,
            start: None,
            duration: Some(d),
            child_ns: 0,
            interrupt_child_ns: 0,
            interrupt: false,
            line: 1,
            return_lost: false,
        };
        let mut nodes = vec![node(0, NO_PARENT, 0, 0)];
        for k in 1..=n {
            nodes.push(node(k, 0, 1, seed * 7 + u64::from(k) * 13));
        }
        let kids: u64 = nodes[1..].iter().filter_map(|c| c.duration).sum();
        nodes[0].duration = Some(kids + seed);
        nodes[0].child_ns = kids;
        RootCall { nodes, ..RootCall::default() }
    }

    fn shape(t: &MergedTree) -> Vec<String> {
        t.nodes
            .iter()
            .map(|n| format!("{} {:?} {:?}", n.func, n.children, n.stats.hist.to_json(512)))
            .collect()
    }

    #[test]
    fn a_recycled_tree_and_profile_build_what_fresh_ones_do() {
        let (mut tree, mut flat) = (MergedTree::default(), FlatProfile::default());
        let funcs = FuncTable::default();
        for s in 0..5000 {
            let r = root(6, s);
            tree.add(&r);
            flat.root(&r, &funcs);
        }
        let mut sink = FlatProfile::default();
        sink.merge_part(&mut flat, &[]);
        assert!(flat.funcs.is_empty());
        tree.recycle();
        assert!(tree.nodes.is_empty() && tree.roots.is_empty());
        let (mut fresh, mut fresh_flat) = (MergedTree::default(), FlatProfile::default());
        for s in 0..300 {
            let r = root(u32::try_from(s % 9).unwrap_or(0), s);
            for (t, f) in [(&mut tree, &mut flat), (&mut fresh, &mut fresh_flat)] {
                t.add(&r);
                f.root(&r, &funcs);
            }
        }
        assert_eq!(shape(&tree), shape(&fresh));
        assert_eq!(tree.roots, fresh.roots);
        let flat_shape = |f: &FlatProfile| {
            let mut v: Vec<String> = f
                .funcs
                .iter()
                .map(|(k, e)| format!("{k} {} {:?}", e.calls, e.inclusive.hist.to_json(512)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(flat_shape(&flat), flat_shape(&fresh_flat));
    }
}
