//! Compare two merged call trees: `exitscope diff A B`.
//!
//! Both trees are first **normalized** (unless turned off): function names go through the
//! vendor table `diff_normalize.toml` (compiled in, extendable with `--map FILE`), so
//! `svm_vcpu_run [kvm_amd]` and `vmx_vcpu_run [kvm_intel]` get the same key, and vendor-only
//! wrappers (`cpuid_interception`) are collapsed: left out, their callees take their place
//! and their self time moves to their caller. Compiler suffixes (`.isra.0`, `.part.119`) are
//! always ignored, so builds of the same source line up. Siblings that end up with the same
//! key are merged (counts and totals add; percentiles of merged nodes are dropped).
//!
//! Then the trees are **aligned** by call path of keys: at each level a node of A is paired
//! with the first unpaired node of B with the same key; nodes left over are only in A or only
//! in B. B-only nodes are placed right after the paired node that precedes them in B.
//!
//! Numbers compare **means per call**: `delta_ns = mean(B) − mean(A)`, positive means B is
//! slower; `ratio = mean(B) / mean(A)` (rounded to 4 decimals). A side that lacks a node
//! counts as 0 in the delta and has no ratio. `self_delta_ns` does the same for the mean self
//! time, which shows where a difference is spent rather than passed up from callees.
//!
//! Traces whose roots hold many exits (`kvm_arch_vcpu_ioctl_run`) should be analysed with
//! [`crate::AnalysisOptions::split_exits`], so each exit is a `vcpu_enter_guest`-like root and
//! compares with a `vcpu_enter_guest` trace (the CLI always does).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use exitscope_model::Nanos;

pub use crate::exits::graph::TableError;
use crate::exits::graph::{base_name, split_display};
use crate::report::{Report, TreeNode};

/// The built-in normalization table (format described at its top).
pub const BUILTIN_MAP: &str = include_str!("diff_normalize.toml");

/// Version of the diff document's layout.
pub const DIFF_SCHEMA_VERSION: u32 = 1;

/// The sign convention, stated in every diff document and header.
pub const SIGN_CONVENTION: &str = "delta = B - A (mean per call); positive means B is slower; \
                                   ratio = B / A";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMap {
    #[serde(default)]
    collapse: Vec<String>,
    #[serde(default)]
    modules: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    alias: Vec<RawGroup>,
    #[serde(default)]
    pattern: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    canonical: String,
    functions: Vec<String>,
}

/// A function pattern: a name (for patterns, with one `*`) and an optional module.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    name: String,
    module: Option<String>,
}

impl Spec {
    fn parse(s: &str) -> Spec {
        let (name, module) = split_display(s);
        Spec { name, module }
    }

    fn module_ok(&self, module: Option<&str>) -> bool {
        self.module.as_deref().is_none_or(|m| Some(m) == module)
    }

    /// For a pattern `pre*post`: the captured middle of `name`.
    fn capture<'n>(&self, name: &'n str, module: Option<&str>) -> Option<&'n str> {
        if !self.module_ok(module) {
            return None;
        }
        let (pre, post) = self.name.split_once('*')?;
        let rest = name.strip_prefix(pre)?;
        let mid = rest.strip_suffix(post)?;
        (!mid.is_empty()).then_some(mid)
    }
}

/// The normalization rules (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct NormTable {
    collapse: Vec<Spec>,
    modules: FxHashMap<String, String>,
    aliases: Vec<(Spec, String)>,
    patterns: Vec<(Vec<Spec>, String)>,
}

impl NormTable {
    /// Parse a table in the format of [`BUILTIN_MAP`].
    ///
    /// # Errors
    /// TOML errors (with line and column), unknown keys, a pattern without exactly one `*`.
    pub fn parse(text: &str) -> Result<NormTable, TableError> {
        let raw: RawMap = toml::from_str(text).map_err(|e| TableError::new(e.to_string()))?;
        let mut t = NormTable {
            collapse: raw.collapse.iter().map(|s| Spec::parse(s)).collect(),
            ..Default::default()
        };
        for (canonical, members) in &raw.modules {
            for m in members {
                t.modules.insert(m.clone(), canonical.clone());
            }
        }
        for g in &raw.alias {
            for f in &g.functions {
                t.aliases.push((Spec::parse(f), g.canonical.clone()));
            }
        }
        for g in &raw.pattern {
            let specs: Vec<Spec> = g.functions.iter().map(|s| Spec::parse(s)).collect();
            let stars = |s: &str| s.matches('*').count();
            if stars(&g.canonical) != 1 || specs.iter().any(|s| stars(&s.name) != 1) {
                return Err(TableError::new(format!(
                    "pattern {:?}: the canonical name and every function need exactly one '*'",
                    g.canonical
                )));
            }
            t.patterns.push((specs, g.canonical.clone()));
        }
        Ok(t)
    }

    /// The built-in vendor table.
    ///
    /// # Panics
    /// Never in a released build: the built-in table is checked by this crate's tests.
    pub fn builtin() -> NormTable {
        match NormTable::parse(BUILTIN_MAP) {
            Ok(t) => t,
            Err(e) => panic!("built-in diff_normalize.toml is invalid: {e}"),
        }
    }

    /// Add a user table: its rules are checked before this table's.
    pub fn extend_with(&mut self, user: NormTable) {
        let mut collapse = user.collapse;
        collapse.append(&mut self.collapse);
        self.collapse = collapse;
        for (k, v) in user.modules {
            self.modules.insert(k, v);
        }
        let mut aliases = user.aliases;
        aliases.append(&mut self.aliases);
        self.aliases = aliases;
        let mut patterns = user.patterns;
        patterns.append(&mut self.patterns);
        self.patterns = patterns;
    }

    /// Whether `name [module]` is a wrapper to collapse.
    pub fn collapses(&self, name: &str, module: Option<&str>) -> bool {
        let name = base_name(name);
        self.collapse.iter().any(|s| s.name == name && s.module_ok(module))
    }

    /// The comparison key of `name [module]`: for a function an alias or pattern names,
    /// `canonical [*]` (the group is the identity, whatever the modules); otherwise the name
    /// and the module after `[modules]` (`clear_foo [kvm_vendor]`).
    pub fn key(&self, name: &str, module: Option<&str>) -> String {
        let name = base_name(name);
        let canonical = self
            .aliases
            .iter()
            .find(|(s, _)| s.name == name && s.module_ok(module))
            .map(|(_, c)| c.clone())
            .or_else(|| {
                self.patterns.iter().find_map(|(specs, canonical)| {
                    specs.iter().find_map(|s| s.capture(name, module)).map(|mid| {
                        let (pre, post) = canonical.split_once('*').unwrap_or((canonical, ""));
                        format!("{pre}{mid}{post}")
                    })
                })
            });
        match (canonical, module) {
            (Some(c), _) => format!("{c} [*]"),
            (None, Some(m)) => {
                format!("{name} [{}]", self.modules.get(m).map_or(m, String::as_str))
            }
            (None, None) => name.to_string(),
        }
    }
}

/// One side of a compared node.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DiffSide {
    /// Function name as traced (the first one, when several were merged).
    pub function: String,
    /// Module.
    pub module: Option<String>,
    /// Calls.
    pub count: u64,
    /// Mean duration per call.
    pub mean_ns: Option<Nanos>,
    /// Mean self time per call.
    pub self_mean_ns: Option<Nanos>,
    /// Summed duration.
    pub total_ns: Option<Nanos>,
    /// Summed self time (collapsed wrappers' self time included).
    pub self_ns: Option<Nanos>,
    /// Shortest call.
    pub min_ns: Option<Nanos>,
    /// Longest call.
    pub max_ns: Option<Nanos>,
    /// Median (null for merged nodes).
    pub p50_ns: Option<Nanos>,
    /// 99th percentile (null for merged nodes).
    pub p99_ns: Option<Nanos>,
}

impl DiffSide {
    /// `name [module]`.
    pub fn display_name(&self) -> String {
        match &self.module {
            Some(m) => format!("{} [{}]", self.function, m),
            None => self.function.clone(),
        }
    }
}

/// Where a node was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    /// In both traces.
    Both,
    /// Only in A.
    OnlyA,
    /// Only in B.
    OnlyB,
}

/// One aligned call path.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiffNode {
    /// The normalized key the sides were aligned on.
    pub key: String,
    /// Both, only A, only B.
    pub status: DiffStatus,
    /// A's numbers.
    pub a: Option<DiffSide>,
    /// B's numbers.
    pub b: Option<DiffSide>,
    /// mean(B) − mean(A), a missing side counting as 0.
    pub delta_ns: Option<i64>,
    /// mean(B) / mean(A), rounded to 4 decimals; null when a side is missing or A is 0.
    pub ratio: Option<f64>,
    /// self_mean(B) − self_mean(A), a missing side counting as 0.
    pub self_delta_ns: Option<i64>,
    /// Aligned callees.
    pub children: Vec<DiffNode>,
}

/// One input of a diff.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct DiffInput {
    /// Input names.
    pub names: Vec<String>,
    /// Root calls analysed.
    pub roots: u64,
    /// Exits found (vendor run calls).
    pub exits: u64,
    /// Roots split into per-exit `vcpu_enter_guest`-like units before comparing.
    pub split_roots: u64,
    /// Time of split roots outside every exit: not in the compared tree.
    pub unattributed_ns: Nanos,
}

/// A wrapper left out of the comparison.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CollapsedWrapper {
    /// `a` or `b`.
    pub side: String,
    /// Function.
    pub function: String,
    /// Module.
    pub module: Option<String>,
    /// Calls collapsed.
    pub count: u64,
    /// Their summed self time: added to the caller's, or, for a root (`at_root`), left out.
    pub self_ns: Nanos,
    /// The wrapper was a root: its self time is not in the compared tree.
    pub at_root: bool,
}

/// One side of an exit reason's row.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ExitSide {
    /// Exits of the reason.
    pub count: u64,
    /// Exits per second over the trace's span.
    pub rate_per_s: Option<f64>,
    /// Mean latency (the measure of the row).
    pub mean_ns: Option<Nanos>,
    /// Median latency.
    pub p50_ns: Option<Nanos>,
    /// 99th percentile latency.
    pub p99_ns: Option<Nanos>,
}

/// One exit reason in both traces.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExitDiffRow {
    /// The reason (one vocabulary: `CPUID`, `EPT_NPF`, ...).
    pub reason: String,
    /// Both, only A, only B.
    pub status: DiffStatus,
    /// The latency compared: `total` (function_graph exits, the sum of their phases),
    /// `handling` (kvm_exit → kvm_entry) or `count` (no latency known on both sides).
    pub measure: String,
    /// A's numbers.
    pub a: Option<ExitSide>,
    /// B's numbers.
    pub b: Option<ExitSide>,
    /// mean(B) − mean(A).
    pub delta_ns: Option<i64>,
    /// p50(B) − p50(A).
    pub p50_delta_ns: Option<i64>,
    /// mean(B) / mean(A), 4 decimals.
    pub ratio: Option<f64>,
}

/// A root or exit reason that is slower in B than a threshold allows (`--fail-above`).
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    /// `root vcpu_enter_guest [kvm]` or `exit CPUID`.
    pub what: String,
    /// Change of the mean, in percent.
    pub change_pct: f64,
}

/// The `exitscope diff --json` document.
///
/// ```text
/// { "schema_version": 1,
///   "sign": "delta = B - A (mean per call); positive means B is slower; ratio = B / A",
///   "normalized": bool, "sorted_by": "tree" | "delta",
///   "a": Input, "b": Input,
///   "tree": [Node],
///   "exits": [{"reason", "status", "measure": "total"|"handling"|"count",
///              "a": ExitSide|null, "b": ExitSide|null, "delta_ns", "p50_delta_ns", "ratio"}],
///   "collapsed": [{"side", "function", "module", "count", "self_ns", "at_root"}] }
/// ExitSide = {"count", "rate_per_s", "mean_ns", "p50_ns", "p99_ns"}
/// Input = {"names": [str], "roots", "exits", "split_roots", "unattributed_ns": int}
/// Node = {"key": str, "status": "both" | "only_a" | "only_b",
///         "a": Side|null, "b": Side|null,
///         "delta_ns": int|null, "ratio": float|null, "self_delta_ns": int|null,
///         "children": [Node]}
/// Side = {"function", "module", "count", "mean_ns", "self_mean_ns", "total_ns", "self_ns",
///         "min_ns", "max_ns", "p50_ns", "p99_ns"}
/// ```
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiffReport {
    /// [`DIFF_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// [`SIGN_CONVENTION`].
    pub sign: String,
    /// Vendor normalization was applied.
    pub normalized: bool,
    /// `tree` (first-seen order) or `delta` (siblings by |delta|, largest first).
    pub sorted_by: String,
    /// The baseline.
    pub a: DiffInput,
    /// The trace compared with it.
    pub b: DiffInput,
    /// Aligned roots.
    pub tree: Vec<DiffNode>,
    /// Exit reasons of both traces (most exits in A first, then B-only ones).
    pub exits: Vec<ExitDiffRow>,
    /// Wrappers collapsed away.
    pub collapsed: Vec<CollapsedWrapper>,
}

/// Sibling order of a diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffSort {
    /// First-seen order (A's, with B-only nodes after their B predecessor).
    #[default]
    Tree,
    /// Largest |delta| first at every level.
    Delta,
}

/// A normalized node before alignment.
#[derive(Clone, Debug)]
struct NNode {
    key: String,
    side: DiffSide,
    children: Vec<NNode>,
}

struct Normalizer<'t> {
    table: Option<&'t NormTable>,
    side: &'static str,
    collapsed: BTreeMap<(String, Option<String>, bool), (u64, Nanos)>,
}

impl Normalizer<'_> {
    fn key(&self, n: &TreeNode) -> String {
        match self.table {
            Some(t) => t.key(&n.function, n.module.as_deref()),
            None => match &n.module {
                Some(m) => format!("{} [{m}]", base_name(&n.function)),
                None => base_name(&n.function).to_string(),
            },
        }
    }

    /// Normalize `nodes` (siblings) into `out`; returns self time of collapsed wrappers at
    /// this level, for the caller's self time.
    fn level(&mut self, nodes: &[TreeNode], out: &mut Vec<NNode>, at_root: bool) -> Nanos {
        let mut moved: Nanos = 0;
        for n in nodes {
            let collapse =
                self.table.is_some_and(|t| t.collapses(&n.function, n.module.as_deref()));
            if collapse {
                let own = n.self_ns.unwrap_or(0);
                let e = self
                    .collapsed
                    .entry((n.function.clone(), n.module.clone(), at_root))
                    .or_insert((0, 0));
                e.0 += n.count;
                e.1 = e.1.saturating_add(own);
                moved = moved.saturating_add(self.level(&n.children, out, at_root));
                moved = moved.saturating_add(own);
                continue;
            }
            let mut children = Vec::new();
            let extra = self.level(&n.children, &mut children, false);
            let mut side = side_of(n);
            if extra > 0 {
                side.self_ns = side.self_ns.map(|s| s.saturating_add(extra));
                side.self_mean_ns = mean(side.self_ns, side.count);
            }
            push_merged(out, NNode { key: self.key(n), side, children });
        }
        if at_root { 0 } else { moved }
    }
}

fn mean(total: Option<Nanos>, count: u64) -> Option<Nanos> {
    total.filter(|_| count > 0).map(|t| (t + count / 2) / count)
}

fn side_of(n: &TreeNode) -> DiffSide {
    DiffSide {
        function: n.function.clone(),
        module: n.module.clone(),
        count: n.count,
        mean_ns: n.mean_ns,
        self_mean_ns: mean(n.self_ns, n.count),
        total_ns: n.total_ns,
        self_ns: n.self_ns,
        min_ns: n.min_ns,
        max_ns: n.max_ns,
        p50_ns: n.p50_ns,
        p99_ns: n.p99_ns,
    }
}

fn add_opt(a: Option<Nanos>, b: Option<Nanos>) -> Option<Nanos> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Add `n` to `out`, merging it into a sibling with the same key.
fn push_merged(out: &mut Vec<NNode>, n: NNode) {
    let Some(m) = out.iter_mut().find(|o| o.key == n.key) else {
        out.push(n);
        return;
    };
    let (s, o) = (&mut m.side, &n.side);
    s.count += o.count;
    s.total_ns = add_opt(s.total_ns, o.total_ns);
    s.self_ns = add_opt(s.self_ns, o.self_ns);
    s.min_ns = match (s.min_ns, o.min_ns) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    s.max_ns = match (s.max_ns, o.max_ns) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    s.mean_ns = mean(s.total_ns, s.count);
    s.self_mean_ns = mean(s.self_ns, s.count);
    s.p50_ns = None;
    s.p99_ns = None;
    for c in n.children {
        push_merged(&mut m.children, c);
    }
}

fn signed(v: Nanos) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn delta(a: Option<Nanos>, b: Option<Nanos>, a_present: bool, b_present: bool) -> Option<i64> {
    let a = if a_present { signed(a?) } else { 0 };
    let b = if b_present { signed(b?) } else { 0 };
    Some(b.saturating_sub(a))
}

fn make_node(key: String, a: Option<NNode>, b: Option<NNode>) -> DiffNode {
    let status = match (&a, &b) {
        (Some(_), Some(_)) => DiffStatus::Both,
        (Some(_), None) => DiffStatus::OnlyA,
        _ => DiffStatus::OnlyB,
    };
    let (sa, ca) = a.map_or((None, Vec::new()), |n| (Some(n.side), n.children));
    let (sb, cb) = b.map_or((None, Vec::new()), |n| (Some(n.side), n.children));
    let am = sa.as_ref().and_then(|s| s.mean_ns);
    let bm = sb.as_ref().and_then(|s| s.mean_ns);
    let ratio = match (am, bm) {
        (Some(x), Some(y)) if x > 0 => Some(((y as f64 / x as f64) * 10_000.0).round() / 10_000.0),
        _ => None,
    };
    DiffNode {
        key,
        status,
        delta_ns: delta(am, bm, sa.is_some(), sb.is_some()),
        self_delta_ns: delta(
            sa.as_ref().and_then(|s| s.self_mean_ns),
            sb.as_ref().and_then(|s| s.self_mean_ns),
            sa.is_some(),
            sb.is_some(),
        ),
        ratio,
        a: sa,
        b: sb,
        children: align(ca, cb),
    }
}

/// Pair siblings by key; B-only nodes go right after the paired node preceding them in B.
fn align(a: Vec<NNode>, b: Vec<NNode>) -> Vec<DiffNode> {
    let mut b_slots: Vec<Option<NNode>> = b.into_iter().map(Some).collect();
    // For each B index, the output position of its pair (if paired).
    let mut paired_at: Vec<Option<usize>> = vec![None; b_slots.len()];
    let mut out: Vec<DiffNode> = Vec::with_capacity(a.len() + b_slots.len());
    let mut a_nodes: Vec<(NNode, Option<NNode>)> = Vec::with_capacity(a.len());
    for an in a {
        let j = b_slots.iter().position(|s| s.as_ref().is_some_and(|bn| bn.key == an.key));
        let bn = j.and_then(|j| {
            paired_at[j] = Some(a_nodes.len());
            b_slots[j].take()
        });
        a_nodes.push((an, bn));
    }
    // B-only nodes, grouped after the A position they follow (None = before everything).
    let mut inserts: BTreeMap<Option<usize>, Vec<NNode>> = BTreeMap::new();
    let mut last: Option<usize> = None;
    for (j, slot) in b_slots.into_iter().enumerate() {
        match slot {
            Some(bn) => inserts.entry(last).or_default().push(bn),
            None => last = paired_at[j],
        }
    }
    for bn in inserts.remove(&None).unwrap_or_default() {
        out.push(make_node(bn.key.clone(), None, Some(bn)));
    }
    for (i, (an, bn)) in a_nodes.into_iter().enumerate() {
        out.push(make_node(an.key.clone(), Some(an), bn));
        for bn in inserts.remove(&Some(i)).unwrap_or_default() {
            out.push(make_node(bn.key.clone(), None, Some(bn)));
        }
    }
    out
}

fn sort_by_delta(nodes: &mut [DiffNode]) {
    nodes.sort_by(|x, y| {
        let ax = x.delta_ns.map_or(0, i64::unsigned_abs);
        let ay = y.delta_ns.map_or(0, i64::unsigned_abs);
        ay.cmp(&ax).then_with(|| x.key.cmp(&y.key))
    });
    for n in nodes {
        sort_by_delta(&mut n.children);
    }
}

fn input_of(r: &Report) -> DiffInput {
    let ex = r.exits.as_ref();
    DiffInput {
        names: r.inputs.iter().map(|i| i.name.clone()).collect(),
        roots: r.roots,
        exits: ex.map_or(0, |e| e.exits),
        split_roots: ex.map_or(0, |e| e.split_roots),
        unattributed_ns: ex.map_or(0, |e| e.unattributed_ns),
    }
}

/// Compare the merged trees of `a` and `b`. `table` = `None` compares names as they are
/// (compiler suffixes aside).
pub fn diff(a: &Report, b: &Report, table: Option<&NormTable>, sort: DiffSort) -> DiffReport {
    let mut collapsed = Vec::new();
    let mut sides = Vec::with_capacity(2);
    for (name, r) in [("a", a), ("b", b)] {
        let mut norm = Normalizer { table, side: name, collapsed: BTreeMap::new() };
        let mut out = Vec::new();
        norm.level(&r.tree, &mut out, true);
        for ((function, module, at_root), (count, self_ns)) in norm.collapsed {
            collapsed.push(CollapsedWrapper {
                side: norm.side.to_string(),
                function,
                module,
                count,
                self_ns,
                at_root,
            });
        }
        sides.push(out);
    }
    let bt = sides.pop().unwrap_or_default();
    let at = sides.pop().unwrap_or_default();
    let mut tree = align(at, bt);
    if sort == DiffSort::Delta {
        sort_by_delta(&mut tree);
    }
    DiffReport {
        schema_version: DIFF_SCHEMA_VERSION,
        sign: SIGN_CONVENTION.to_string(),
        normalized: table.is_some(),
        sorted_by: match sort {
            DiffSort::Tree => "tree",
            DiffSort::Delta => "delta",
        }
        .to_string(),
        a: input_of(a),
        b: input_of(b),
        tree,
        exits: exit_rows(a, b),
        collapsed,
    }
}

fn exit_rows(a: &Report, b: &Report) -> Vec<ExitDiffRow> {
    let ra = a.exits.as_ref().map_or(&[][..], |e| e.reasons.as_slice());
    let rb = b.exits.as_ref().map_or(&[][..], |e| e.reasons.as_slice());
    let mut names: Vec<&str> = ra.iter().map(|r| r.reason.as_str()).collect();
    for r in rb {
        if !names.contains(&r.reason.as_str()) {
            names.push(&r.reason);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let xa = ra.iter().find(|r| r.reason == name);
            let xb = rb.iter().find(|r| r.reason == name);
            // One measure for both sides: the whole exit where both have it, else handling.
            let la = xa.and_then(|x| x.latency());
            let lb = xb.and_then(|x| x.latency());
            let measure = match (la, lb) {
                (Some((ma, _)), Some((mb, _))) if ma == mb => ma,
                (Some(_), Some(_)) => "handling",
                (Some((m, _)), None) | (None, Some((m, _))) => m,
                (None, None) => "count",
            };
            let side = |x: Option<&crate::exits::ReasonStats>| {
                x.map(|x| {
                    let d = match measure {
                        "total" => x.total.as_ref(),
                        "handling" => x.handling.as_ref(),
                        _ => None,
                    };
                    ExitSide {
                        count: x.count,
                        rate_per_s: x.rate_per_s,
                        mean_ns: d.map(|d| d.mean_ns),
                        p50_ns: d.map(|d| d.p50_ns),
                        p99_ns: d.map(|d| d.p99_ns),
                    }
                })
            };
            let (sa, sb) = (side(xa), side(xb));
            let am = sa.as_ref().and_then(|s| s.mean_ns);
            let bm = sb.as_ref().and_then(|s| s.mean_ns);
            let ratio = match (am, bm) {
                (Some(x), Some(y)) if x > 0 => {
                    Some(((y as f64 / x as f64) * 10_000.0).round() / 10_000.0)
                }
                _ => None,
            };
            let both = |f: fn(&ExitSide) -> Option<Nanos>| match (&sa, &sb) {
                (Some(x), Some(y)) => Some(signed(f(y)?).saturating_sub(signed(f(x)?))),
                _ => None,
            };
            ExitDiffRow {
                reason: name.to_string(),
                status: match (&sa, &sb) {
                    (Some(_), Some(_)) => DiffStatus::Both,
                    (Some(_), None) => DiffStatus::OnlyA,
                    _ => DiffStatus::OnlyB,
                },
                measure: measure.to_string(),
                delta_ns: both(|s| s.mean_ns),
                p50_delta_ns: both(|s| s.p50_ns),
                ratio,
                a: sa,
                b: sb,
            }
        })
        .collect()
}

impl DiffReport {
    /// Roots and exit reasons present in both traces whose mean is more than `pct` percent
    /// higher in B (the `--fail-above` check).
    pub fn regressions(&self, pct: f64) -> Vec<Regression> {
        let change = |a: Option<Nanos>, b: Option<Nanos>| -> Option<f64> {
            let (a, b) = (a?, b?);
            (a > 0).then(|| (b as f64 - a as f64) / a as f64 * 100.0)
        };
        let roots = self.tree.iter().filter(|n| n.status == DiffStatus::Both).filter_map(|n| {
            let c = change(n.a.as_ref()?.mean_ns, n.b.as_ref()?.mean_ns)?;
            Some(Regression { what: format!("root {}", n.key), change_pct: c })
        });
        let exits = self.exits.iter().filter(|r| r.status == DiffStatus::Both).filter_map(|r| {
            let c = change(r.a.as_ref()?.mean_ns, r.b.as_ref()?.mean_ns)?;
            Some(Regression { what: format!("exit {} ({})", r.reason, r.measure), change_pct: c })
        });
        roots.chain(exits).filter(|r| r.change_pct > pct).collect()
    }
}

impl DiffNode {
    /// Depth-first search for the first node whose A or B function is `function`.
    pub fn find(&self, function: &str) -> Option<&DiffNode> {
        let named = |s: &Option<DiffSide>| s.as_ref().is_some_and(|s| s.function == function);
        if named(&self.a) || named(&self.b) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(function))
    }
}

#[cfg(test)]
mod tests;
