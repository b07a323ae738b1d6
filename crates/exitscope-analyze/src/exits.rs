//! The exit view: one classified exit per vendor run call, with its time split into phases.
//!
//! # What is one exit
//!
//! Guest time is folded into the vendor run function (`svm_vcpu_run` / `vmx_vcpu_run`: the
//! noinstr `__svm_vcpu_run` / `__vmx_vcpu_run` are never traced), so each call of it is one VM
//! entry and the following VM exit. Around it:
//!
//! - a root named in `exit_roots` (`vcpu_enter_guest`) holding exactly one run call is **one
//!   exit, the whole root**: `before` = the root's children before the run call, `run` = the run
//!   call, `after` = the children after it (exit handling), `other` = the root's own self time
//!   (inlined code and tracer overhead the children do not account for). The four add up to
//!   the root's duration exactly.
//! - any other root holding run calls (`kvm_arch_vcpu_ioctl_run` or `vcpu_run` when
//!   `vcpu_enter_guest` is inlined, as on stock kernels) is **split**: the children of the run
//!   calls' parent are cut into one unit per run call. A unit's `after` runs from the run call
//!   to the last exit dispatcher (`svm_handle_exit`, `vmx_handle_exit`, ...) before the next run
//!   call (or, without a dispatcher, up to the next run call); what follows the dispatcher is
//!   the next exit's `before`. The first exit's `before` therefore also holds the ioctl's entry
//!   work (`vcpu_load`, ...). `other` is 0: the container's self time cannot be split between
//!   exits from durations alone. Time of a split root outside every unit (the container's self
//!   time, work after the last exit's dispatcher such as `vcpu_put`, calls outside the
//!   container) is summed in [`ExitsReport::unattributed_ns`], so nothing disappears.
//! - a root that *is* a run call is one exit with only a `run` phase.
//! - a root with no run call (a `cpuid_interception` graph, an entry cancelled before the run
//!   call) is not an exit; it is counted in [`ExitsReport::roots_without_run`].
//!
//! Interrupt subtrees that sit directly under the container are charged to the phase they
//! interrupted (it is wall time that phase took).
//!
//! # How an exit is classified
//!
//! From the data file `exit_handlers.toml` (the one table, compiled in): the first exit event
//! (`kvm_exit`) inside the unit gives the reason when its reason string is known (VMX, SVM and
//! trace-cmd vocabularies). Otherwise the first handler function found in pre-order in the run
//! call's subtree and then in the `after` phase gives it; interrupt subtrees are skipped. A
//! reason is then replaced by a more specific one that `refines` it when that one's handler is
//! also seen (`npf` + `handle_mmio_page_fault` → MMIO; SVM `msr` + `kvm_emulate_wrmsr` →
//! MSR_WRITE). With neither, the exit is `unknown` and the functions its dispatcher called
//! (and the raw event reason) are listed as evidence, to extend the table with.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use exitscope_model::Nanos;

use crate::calls::{CallNode, CallSink, NO_PARENT, RootCall};
use crate::funcs::{FuncId, FuncTable};
use crate::merge::DurationStats;

/// The built-in classification table (see the comments at its top for the format).
pub const BUILTIN_TABLE: &str = include_str!("exit_handlers.toml");

/// Name of the reason given to exits nothing in the table recognised.
pub const UNKNOWN: &str = "unknown";

/// A table (exit handlers or diff normalization) that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    /// What was wrong, with the place when known.
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TableError {}

impl TableError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        TableError { message: message.into() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    structure: RawStructure,
    #[serde(default)]
    reason: BTreeMap<String, RawReason>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStructure {
    run: Vec<String>,
    exit_roots: Vec<String>,
    dispatchers: Vec<String>,
    exit_events: Vec<String>,
    synthetic_root: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReason {
    #[serde(default)]
    handlers: Vec<String>,
    #[serde(default)]
    vmx: Vec<String>,
    #[serde(default)]
    svm: Vec<String>,
    #[serde(default)]
    trace_cmd: Vec<String>,
    #[serde(default)]
    refines: Vec<String>,
}

/// What a function is to the exit view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Nothing special.
    Other,
    /// A vendor run function: one VM entry + exit per call.
    Run,
    /// A root that holds one exit (`vcpu_enter_guest`).
    ExitRoot,
    /// A vendor exit dispatcher (`vmx_handle_exit`).
    Dispatcher,
    /// A handler that identifies the reason with this index in [`ExitTable::reasons`].
    Handler(usize),
}

/// One neutral exit reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonDef {
    /// Neutral name (`CPUID`, `EPT_NPF`, ...).
    pub name: String,
    /// Indexes of the reasons this one refines.
    pub refines: Vec<usize>,
}

/// The parsed classification table.
#[derive(Clone, Debug)]
pub struct ExitTable {
    roles: FxHashMap<String, Role>,
    events: FxHashMap<String, usize>,
    exit_events: Vec<String>,
    /// Reasons, in the table's order (alphabetical).
    pub reasons: Vec<ReasonDef>,
    /// `(name, module)` of the root given to units cut out of big roots.
    pub synthetic_root: (String, Option<String>),
}

/// `name` without compiler suffixes (`kvm_set_cr8.part.119` → `kvm_set_cr8`).
pub fn base_name(name: &str) -> &str {
    name.split_once('.').map_or(name, |(b, _)| b)
}

/// Split `"name [module]"` into its parts.
pub fn split_display(s: &str) -> (String, Option<String>) {
    let s = s.trim();
    if let Some(open) = s.rfind(" [")
        && s.ends_with(']')
    {
        let module = s[open + 2..s.len() - 1].trim();
        return (s[..open].trim().to_string(), Some(module.to_string()));
    }
    (s.to_string(), None)
}

impl ExitTable {
    /// Parse a table in the format of [`BUILTIN_TABLE`].
    ///
    /// # Errors
    /// TOML errors (with line and column), unknown keys, a `refines` naming no reason, and a
    /// function or event name given to two reasons.
    pub fn parse(text: &str) -> Result<ExitTable, TableError> {
        let raw: RawTable = toml::from_str(text).map_err(|e| TableError::new(e.to_string()))?;
        let mut roles: FxHashMap<String, Role> = FxHashMap::default();
        let mut put_role = |name: &str, role: Role| -> Result<(), TableError> {
            match roles.insert(name.to_string(), role) {
                Some(old) if old != role => Err(TableError::new(format!(
                    "function {name} is listed twice in the exit table ({old:?} and {role:?})"
                ))),
                _ => Ok(()),
            }
        };
        for n in &raw.structure.run {
            put_role(n, Role::Run)?;
        }
        for n in &raw.structure.exit_roots {
            put_role(n, Role::ExitRoot)?;
        }
        for n in &raw.structure.dispatchers {
            put_role(n, Role::Dispatcher)?;
        }
        let names: Vec<&String> = raw.reason.keys().collect();
        let mut reasons = Vec::with_capacity(names.len());
        let mut events: FxHashMap<String, usize> = FxHashMap::default();
        for (i, (name, r)) in raw.reason.iter().enumerate() {
            if name == UNKNOWN {
                return Err(TableError::new(format!("reason name {UNKNOWN} is reserved")));
            }
            for h in &r.handlers {
                put_role(h, Role::Handler(i))?;
            }
            for e in r.vmx.iter().chain(&r.svm).chain(&r.trace_cmd) {
                if let Some(old) = events.insert(e.clone(), i)
                    && old != i
                {
                    return Err(TableError::new(format!(
                        "exit reason string {e:?} is given to both {} and {name}",
                        names[old]
                    )));
                }
            }
            let mut refines = Vec::new();
            for t in &r.refines {
                let j = names.iter().position(|n| *n == t).ok_or_else(|| {
                    TableError::new(format!("reason {name} refines {t}, which is not a reason"))
                })?;
                refines.push(j);
            }
            reasons.push(ReasonDef { name: name.clone(), refines });
        }
        Ok(ExitTable {
            roles,
            events,
            exit_events: raw.structure.exit_events,
            reasons,
            synthetic_root: split_display(&raw.structure.synthetic_root),
        })
    }

    /// The built-in table, parsed once.
    ///
    /// # Panics
    /// Never in a released build: the built-in table is checked by this crate's tests.
    pub fn builtin() -> &'static ExitTable {
        static TABLE: OnceLock<ExitTable> = OnceLock::new();
        TABLE.get_or_init(|| match ExitTable::parse(BUILTIN_TABLE) {
            Ok(t) => t,
            Err(e) => panic!("built-in exit_handlers.toml is invalid: {e}"),
        })
    }

    /// What `name` (as printed, suffixes allowed) is to the exit view.
    pub fn role(&self, name: &str) -> Role {
        self.roles
            .get(name)
            .or_else(|| self.roles.get(base_name(name)))
            .copied()
            .unwrap_or(Role::Other)
    }

    /// The reason a handler function identifies, if any.
    pub fn handler_reason(&self, name: &str) -> Option<&str> {
        match self.role(name) {
            Role::Handler(i) => self.reasons.get(i).map(|r| r.name.as_str()),
            _ => None,
        }
    }

    /// Index of the reason a raw `kvm_exit` reason string names (`CPUID`, `PF excp`,
    /// `EXIT_NPF`, `EPT_VIOLATION FAILED_VMENTRY`).
    pub fn event_reason_index(&self, raw: &str) -> Option<usize> {
        let raw = raw.trim();
        self.events
            .get(raw)
            .or_else(|| raw.split_once(' ').and_then(|(first, _)| self.events.get(first)))
            .copied()
    }

    /// The neutral reason a raw `kvm_exit` reason string names.
    pub fn event_reason(&self, raw: &str) -> Option<&str> {
        self.event_reason_index(raw).and_then(|i| self.reasons.get(i)).map(|r| r.name.as_str())
    }

    /// Whether events named `name` carry an exit reason.
    pub fn is_exit_event(&self, name: &str) -> bool {
        self.exit_events.iter().any(|e| e == name)
    }
}

/// The reason string of a `kvm_exit` event's text: everything between `reason ` and
/// ` rip 0x` (it may contain spaces: `PF excp`), or to the end when there is no `rip`.
pub fn exit_event_reason(text: &str) -> Option<&str> {
    let start = text.find("reason ")? + "reason ".len();
    let rest = &text[start..];
    let end = rest.find(" rip 0x").unwrap_or(rest.len());
    let r = rest[..end].trim();
    (!r.is_empty()).then_some(r)
}

/// Roles of interned functions, computed once per function.
#[derive(Clone, Debug, Default)]
pub struct RoleCache {
    roles: Vec<Role>,
}

impl RoleCache {
    /// Roles of every function in `funcs`, indexed by [`FuncId`].
    pub fn roles(&mut self, table: &ExitTable, funcs: &FuncTable) -> &[Role] {
        while self.roles.len() < funcs.len() {
            let id = FuncId::try_from(self.roles.len()).unwrap_or(FuncId::MAX);
            self.roles.push(table.role(&funcs.get(id).name));
        }
        &self.roles
    }
}

fn role_of(roles: &[Role], n: &CallNode) -> Role {
    roles.get(n.func as usize).copied().unwrap_or(Role::Other)
}

/// Index just past the subtree of node `i` (pre-order).
pub fn subtree_end(root: &RootCall, i: usize) -> usize {
    let Some(d) = root.nodes.get(i).map(|n| n.depth) else { return i };
    let mut j = i + 1;
    while root.nodes.get(j).is_some_and(|n| n.depth > d) {
        j += 1;
    }
    j
}

fn duration_of(n: &CallNode) -> Option<Nanos> {
    if n.return_lost { None } else { n.duration }
}

/// One exit inside a root call: consecutive children of one node, one of them the run call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitUnit {
    /// The node whose children make up the exit, or [`NO_PARENT`] when the root is the run
    /// call itself.
    pub parent: u32,
    /// The children in the exit, in order (node indexes).
    pub members: Vec<u32>,
    /// Position of the run call in `members`.
    pub run: usize,
    /// The exit is the whole root (a `vcpu_enter_guest` root, or a run call root).
    pub whole_root: bool,
}

/// Time of one exit by phase. `None` when a call in that phase has no duration.
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
}

impl Phases {
    /// The sum of the phases.
    pub fn total(&self) -> Option<Nanos> {
        Some(
            self.before?
                .saturating_add(self.run?)
                .saturating_add(self.after?)
                .saturating_add(self.other?),
        )
    }
}

impl ExitUnit {
    /// Node indexes `[first, end)` covered by the unit's members and their subtrees.
    pub fn node_range(&self, root: &RootCall) -> (usize, usize) {
        let first = self.members.first().map_or(0, |&m| m as usize);
        let end = self.members.last().map_or(first, |&m| subtree_end(root, m as usize));
        (first, end)
    }

    /// The run call's node index.
    pub fn run_node(&self) -> u32 {
        self.members.get(self.run).copied().unwrap_or(0)
    }

    /// Time by phase.
    pub fn phases(&self, root: &RootCall) -> Phases {
        let sum = |ids: &[u32]| -> Option<Nanos> {
            ids.iter().try_fold(0u64, |acc, &i| {
                root.nodes.get(i as usize).and_then(duration_of).map(|d| acc.saturating_add(d))
            })
        };
        let run = self.run.min(self.members.len());
        let other = if self.whole_root && self.parent != NO_PARENT {
            root.nodes
                .get(self.parent as usize)
                .and_then(|p| if p.return_lost { None } else { p.self_ns() })
        } else {
            Some(0)
        };
        Phases {
            before: sum(&self.members[..run]),
            run: self
                .members
                .get(run)
                .and_then(|&r| root.nodes.get(r as usize))
                .and_then(duration_of),
            after: sum(self.members.get(run + 1..).unwrap_or(&[])),
            other,
        }
    }
}

/// Cut `root` into exits (see the module docs). `roles` is indexed by [`FuncId`].
pub fn exit_units(root: &RootCall, roles: &[Role]) -> Vec<ExitUnit> {
    let nodes = &root.nodes;
    let mut runs: Vec<u32> = Vec::new();
    let mut inside: Option<u32> = None;
    for (i, n) in nodes.iter().enumerate() {
        if let Some(d) = inside {
            if n.depth > d {
                continue;
            }
            inside = None;
        }
        if n.interrupt || role_of(roles, n) != Role::Run {
            continue;
        }
        runs.push(u32::try_from(i).unwrap_or(u32::MAX));
        inside = Some(n.depth);
    }
    if runs.is_empty() {
        return Vec::new();
    }
    if runs[0] == 0 {
        return vec![ExitUnit { parent: NO_PARENT, members: vec![0], run: 0, whole_root: true }];
    }
    // Group the run calls by their parent, in order of appearance.
    let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
    for &r in &runs {
        let p = nodes[r as usize].parent;
        match groups.iter_mut().find(|g| g.0 == p) {
            Some(g) => g.1.push(r),
            None => groups.push((p, vec![r])),
        }
    }
    // Run calls under different parents are separate groups. A group nested below another
    // group's container is part of that group's exits (never counted twice): keep only the
    // outermost groups. Real traces have one group per root.
    let is_below = |mut n: u32, ancestor: u32| {
        while let Some(p) = nodes.get(n as usize).map(|x| x.parent) {
            if p == ancestor {
                return true;
            }
            n = p;
        }
        false
    };
    groups.sort_by_key(|g| (nodes.get(g.0 as usize).map_or(0, |n| n.depth), g.1[0]));
    let mut kept: Vec<(u32, Vec<u32>)> = Vec::with_capacity(groups.len());
    for g in groups {
        if !kept.iter().any(|k| is_below(g.0, k.0)) {
            kept.push(g);
        }
    }
    kept.sort_by_key(|g| g.1[0]);
    let groups = kept;
    let whole = groups.len() == 1
        && groups[0].0 == 0
        && groups[0].1.len() == 1
        && nodes.first().is_some_and(|n| role_of(roles, n) == Role::ExitRoot);
    let mut units = Vec::with_capacity(runs.len());
    for (p, rs) in groups {
        let kids: Vec<u32> = root.children(p).collect();
        let pos: Vec<usize> = rs.iter().filter_map(|r| kids.binary_search(r).ok()).collect();
        if whole {
            if let Some(&rp) = pos.first() {
                units.push(ExitUnit { parent: p, members: kids, run: rp, whole_root: true });
            }
            break;
        }
        let mut start = 0usize;
        for (k, &rp) in pos.iter().enumerate() {
            let limit = pos.get(k + 1).copied().unwrap_or(kids.len());
            let dispatcher = (rp + 1..limit).rev().find(|&j| {
                let n = &nodes[kids[j] as usize];
                !n.interrupt && role_of(roles, n) == Role::Dispatcher
            });
            let end = dispatcher.map_or(limit, |j| j + 1);
            units.push(ExitUnit {
                parent: p,
                members: kids[start..end].to_vec(),
                run: rp - start,
                whole_root: false,
            });
            start = end;
        }
    }
    units
}

/// How an exit's reason was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// From a `kvm_exit` event inside the exit.
    Event,
    /// From a handler function.
    Handler,
    /// Not found.
    None,
}

/// The reason of one exit and what showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// Index into [`ExitTable::reasons`], `None` for unknown.
    pub reason: Option<usize>,
    /// Where the reason came from.
    pub source: Source,
    /// What decided it (`kvm_exit: CPUID`, `cpuid_interception`), or for an unknown exit
    /// what was seen: the raw event reason and the functions the dispatcher called.
    pub evidence: Vec<String>,
}

/// Classify every unit of `root` (units as returned by [`exit_units`]).
pub fn classify_units(
    table: &ExitTable,
    root: &RootCall,
    units: &[ExitUnit],
    roles: &[Role],
    funcs: &FuncTable,
) -> Vec<Classification> {
    // The first exit event of each unit: by node when it sits inside a member's subtree,
    // else by input line (an event printed at the container's level).
    let mut raw_events: Vec<Option<&str>> = vec![None; units.len()];
    // Units are disjoint and in pre-order, so both lookups are binary searches.
    let ranges: Vec<(usize, usize)> = units.iter().map(|u| u.node_range(root)).collect();
    let first_lines: Vec<u64> = units
        .iter()
        .map(|u| u.members.first().and_then(|&m| root.nodes.get(m as usize)).map_or(0, |n| n.line))
        .collect();
    for ev in root.events.iter().filter(|e| table.is_exit_event(&e.name)) {
        let Some(raw) = exit_event_reason(&ev.text) else { continue };
        let node = ev.node as usize;
        let k = ranges.partition_point(|&(a, _)| a <= node);
        let by_node = k.checked_sub(1).filter(|&k| node < ranges[k].1);
        let unit = by_node.or_else(|| {
            if units.len() == 1 {
                return Some(0);
            }
            if ev.line == 0 {
                return None;
            }
            first_lines.partition_point(|&l| l <= ev.line).checked_sub(1)
        });
        if let Some(u) = unit
            && raw_events[u].is_none()
        {
            raw_events[u] = Some(raw);
        }
    }
    units
        .iter()
        .zip(raw_events)
        .map(|(u, raw)| classify_one(table, root, u, raw, roles, funcs))
        .collect()
}

fn classify_one(
    table: &ExitTable,
    root: &RootCall,
    unit: &ExitUnit,
    raw_event: Option<&str>,
    roles: &[Role],
    funcs: &FuncTable,
) -> Classification {
    // Handler matches, pre-order: the run call's subtree, then the after phase.
    let mut matches: Vec<(usize, usize)> = Vec::new();
    let mut scan = |from: usize| {
        for i in from..subtree_end(root, from) {
            let n = &root.nodes[i];
            if n.interrupt {
                continue;
            }
            if let Role::Handler(r) = role_of(roles, n) {
                matches.push((i, r));
            }
        }
    };
    for &m in unit.members.get(unit.run..).unwrap_or(&[]) {
        scan(m as usize);
    }
    let name = |i: usize| funcs.get(root.nodes[i].func).name.clone();
    let mut evidence = Vec::new();
    let mut current = None;
    let mut source = Source::None;
    if let Some(raw) = raw_event
        && let Some(r) = table.event_reason_index(raw)
    {
        current = Some(r);
        source = Source::Event;
        evidence.push(format!("kvm_exit: {raw}"));
    }
    if current.is_none()
        && let Some(&(i, r)) = matches.first()
    {
        current = Some(r);
        source = Source::Handler;
        evidence.push(name(i));
    }
    if let Some(mut cur) = current {
        // Refine: at most one step per reason, so no cycle can loop forever.
        for _ in 0..table.reasons.len() {
            let better = matches
                .iter()
                .find(|(_, r)| table.reasons.get(*r).is_some_and(|d| d.refines.contains(&cur)));
            match better {
                Some(&(i, r)) => {
                    cur = r;
                    evidence.push(name(i));
                }
                None => break,
            }
        }
        return Classification { reason: Some(cur), source, evidence };
    }
    // Unknown: say what was seen.
    if let Some(raw) = raw_event {
        evidence.push(format!("kvm_exit: {raw}"));
    }
    let after = unit.members.get(unit.run + 1..).unwrap_or(&[]);
    // What the dispatchers called (through nested dispatchers), else the after phase's calls.
    let is_dispatcher = |i: u32| role_of(roles, &root.nodes[i as usize]) == Role::Dispatcher;
    let mut stack: Vec<u32> = after.iter().rev().copied().filter(|&i| is_dispatcher(i)).collect();
    let mut called = Vec::new();
    if stack.is_empty() {
        called = after.iter().map(|&i| i as usize).collect();
    }
    while let Some(i) = stack.pop() {
        if is_dispatcher(i) {
            let kids: Vec<u32> = root.children(i).collect();
            stack.extend(kids.into_iter().rev());
        } else if !root.nodes[i as usize].interrupt {
            called.push(i as usize);
        }
    }
    for i in called {
        let n = name(i);
        if !evidence.contains(&n) {
            evidence.push(n);
        }
    }
    Classification { reason: None, source: Source::None, evidence }
}

/// A copy of one split exit as a root call of its own, under a synthetic root (function
/// `synthetic`) whose duration is the sum of the members' (self time 0). Used to build merged
/// trees from per-exit units.
pub fn unit_root(root: &RootCall, unit: &ExitUnit, synthetic: FuncId) -> RootCall {
    let first = unit.members.first().and_then(|&m| root.nodes.get(m as usize));
    let base_depth = first.map_or(1, |n| n.depth);
    let mut nodes = vec![CallNode {
        func: synthetic,
        parent: NO_PARENT,
        depth: 0,
        start: first.and_then(|n| n.start),
        duration: None,
        child_ns: 0,
        interrupt_child_ns: 0,
        interrupt: false,
        line: first.map_or(0, |n| n.line),
        return_lost: false,
    }];
    let mut timed = true;
    let (mut child, mut irq) = (0u64, 0u64);
    for &m in &unit.members {
        let m = m as usize;
        let Some(mn) = root.nodes.get(m) else { continue };
        let new_base = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
        for old in m..subtree_end(root, m) {
            let mut c = root.nodes[old].clone();
            c.depth = c.depth.saturating_sub(base_depth) + 1;
            c.parent = if old == m {
                0
            } else {
                new_base.saturating_add(c.parent.saturating_sub(u32::try_from(m).unwrap_or(0)))
            };
            nodes.push(c);
        }
        match duration_of(mn) {
            Some(d) => {
                child = child.saturating_add(d);
                if mn.interrupt {
                    irq = irq.saturating_add(d);
                }
            }
            None => timed = false,
        }
    }
    nodes[0].duration = timed.then_some(child);
    nodes[0].child_ns = child;
    nodes[0].interrupt_child_ns = irq;
    RootCall { nodes, events: Vec::new(), cpu: root.cpu, pid: root.pid, input: root.input }
}

#[derive(Clone, Debug, Default)]
struct ReasonAcc {
    count: u64,
    by_event: u64,
    by_handler: u64,
    evidence: BTreeMap<String, u64>,
    total: DurationStats,
    before: DurationStats,
    run: DurationStats,
    after: DurationStats,
    other: DurationStats,
}

/// A [`CallSink`] that cuts every root into exits, classifies them and keeps per-reason phase
/// statistics. [`ExitCollector::report`] gives the result.
#[derive(Clone, Debug)]
pub struct ExitCollector<'t> {
    table: &'t ExitTable,
    roles: RoleCache,
    /// Per reason index; the last slot is `unknown`.
    acc: Vec<ReasonAcc>,
    exits: u64,
    whole_roots: u64,
    split_roots: u64,
    roots_without_run: u64,
    unattributed_ns: Nanos,
}

impl<'t> ExitCollector<'t> {
    /// A collector classifying with `table`.
    pub fn new(table: &'t ExitTable) -> Self {
        ExitCollector {
            table,
            roles: RoleCache::default(),
            acc: vec![ReasonAcc::default(); table.reasons.len() + 1],
            exits: 0,
            whole_roots: 0,
            split_roots: 0,
            roots_without_run: 0,
            unattributed_ns: 0,
        }
    }

    /// Cut `root` into exits, classify them and add them to the statistics. Returns the
    /// units (empty when the root holds no run call).
    pub fn observe(&mut self, root: &RootCall, funcs: &FuncTable) -> Vec<ExitUnit> {
        let roles = self.roles.roles(self.table, funcs);
        let units = exit_units(root, roles);
        if units.is_empty() {
            self.roots_without_run += 1;
            return units;
        }
        let classes = classify_units(self.table, root, &units, roles, funcs);
        let split = !units.iter().all(|u| u.whole_root);
        if split {
            self.split_roots += 1;
        } else {
            self.whole_roots += 1;
        }
        let mut covered: Option<Nanos> = Some(0);
        for (u, c) in units.iter().zip(classes) {
            self.exits += 1;
            let p = u.phases(root);
            covered = covered.zip(p.total()).map(|(a, b)| a.saturating_add(b));
            let slot = c.reason.unwrap_or(self.table.reasons.len());
            let Some(a) = self.acc.get_mut(slot) else { continue };
            a.count += 1;
            match c.source {
                Source::Event => a.by_event += 1,
                Source::Handler => a.by_handler += 1,
                Source::None => {}
            }
            if c.reason.is_some() {
                // The chain that decided it, as one entry: `kvm_exit: npf + handle_mmio_page_fault`.
                *a.evidence.entry(c.evidence.join(" + ")).or_insert(0) += 1;
            } else {
                for e in c.evidence {
                    *a.evidence.entry(e).or_insert(0) += 1;
                }
            }
            a.total.add(p.total());
            a.before.add(p.before);
            a.run.add(p.run);
            a.after.add(p.after);
            a.other.add(p.other);
        }
        if split && let (Some(c), Some(d)) = (covered, root.nodes.first().and_then(duration_of)) {
            self.unattributed_ns = self.unattributed_ns.saturating_add(d.saturating_sub(c));
        }
        units
    }

    /// Whether `units` (from [`ExitCollector::observe`]) came from a split root.
    pub fn is_split(units: &[ExitUnit]) -> bool {
        !units.is_empty() && !units.iter().all(|u| u.whole_root)
    }

    /// The statistics so far.
    pub fn report(&self) -> ExitsReport {
        let mut reasons: Vec<ReasonReport> = self
            .acc
            .iter()
            .enumerate()
            .filter(|(_, a)| a.count > 0)
            .map(|(i, a)| {
                let name = self.table.reasons.get(i).map_or(UNKNOWN, |r| r.name.as_str());
                let mut evidence: Vec<NameCount> = a
                    .evidence
                    .iter()
                    .map(|(n, &c)| NameCount { name: n.clone(), count: c })
                    .collect();
                evidence.sort_by(|x, y| y.count.cmp(&x.count).then(x.name.cmp(&y.name)));
                ReasonReport {
                    reason: name.to_string(),
                    count: a.count,
                    by_event: a.by_event,
                    by_handler: a.by_handler,
                    evidence,
                    total: PhaseStats::from(&a.total),
                    before: PhaseStats::from(&a.before),
                    run: PhaseStats::from(&a.run),
                    after: PhaseStats::from(&a.after),
                    other: PhaseStats::from(&a.other),
                }
            })
            .collect();
        reasons.sort_by(|x, y| {
            y.count
                .cmp(&x.count)
                .then(y.total.total_ns.cmp(&x.total.total_ns))
                .then(x.reason.cmp(&y.reason))
        });
        ExitsReport {
            exits: self.exits,
            whole_roots: self.whole_roots,
            split_roots: self.split_roots,
            roots_without_run: self.roots_without_run,
            unattributed_ns: self.unattributed_ns,
            reasons,
        }
    }
}

impl CallSink for ExitCollector<'_> {
    fn root(&mut self, root: &RootCall, funcs: &FuncTable) {
        self.observe(root, funcs);
    }
}

/// The exit view of a report (`"exits"` in the JSON document).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ExitsReport {
    /// Exits found (one per vendor run call).
    pub exits: u64,
    /// Roots that were one exit each (`vcpu_enter_guest`, or a run call).
    pub whole_roots: u64,
    /// Bigger roots cut into exits (`kvm_arch_vcpu_ioctl_run`, `vcpu_run`).
    pub split_roots: u64,
    /// Roots with no vendor run call: not exits.
    pub roots_without_run: u64,
    /// Time of split roots outside every exit (container self time, work after the last
    /// exit's dispatcher).
    pub unattributed_ns: Nanos,
    /// Per reason, most frequent first.
    pub reasons: Vec<ReasonReport>,
}

/// The exits of one reason.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ReasonReport {
    /// Neutral reason (`CPUID`, ...) or `unknown`.
    pub reason: String,
    /// Exits.
    pub count: u64,
    /// Exits classified from a `kvm_exit` event.
    pub by_event: u64,
    /// Exits classified from a handler function.
    pub by_handler: u64,
    /// What decided the reason (event reason strings, handler names), or for `unknown`, what
    /// was seen; with how many exits showed each.
    pub evidence: Vec<NameCount>,
    /// Whole exit: before + run + after + other.
    pub total: PhaseStats,
    /// Calls before the vendor run call.
    pub before: PhaseStats,
    /// The vendor run call (world switch + guest time).
    pub run: PhaseStats,
    /// Exit handling after the run call.
    pub after: PhaseStats,
    /// The root's own self time (whole-root exits; 0 for split ones).
    pub other: PhaseStats,
}

/// A name and how often it was seen.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct NameCount {
    /// The name.
    pub name: String,
    /// Times seen.
    pub count: u64,
}

/// Statistics of one phase over the exits of one reason; null fields when no exit had a
/// duration for it.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PhaseStats {
    /// Exits with a duration for this phase.
    pub timed: u64,
    /// Sum.
    pub total_ns: Option<Nanos>,
    /// Mean (rounded to the nearest ns).
    pub mean_ns: Option<Nanos>,
    /// Median (nearest rank).
    pub p50_ns: Option<Nanos>,
    /// 99th percentile (nearest rank).
    pub p99_ns: Option<Nanos>,
    /// Shortest.
    pub min_ns: Option<Nanos>,
    /// Longest.
    pub max_ns: Option<Nanos>,
}

impl From<&DurationStats> for PhaseStats {
    fn from(s: &DurationStats) -> Self {
        let timed = s.timed > 0;
        let p = s.hist.percentiles(&[50.0, 99.0]);
        PhaseStats {
            timed: s.timed,
            total_ns: timed.then_some(s.total),
            mean_ns: s.mean(),
            p50_ns: p[0],
            p99_ns: p[1],
            min_ns: timed.then_some(s.min),
            max_ns: timed.then_some(s.max),
        }
    }
}

#[cfg(test)]
mod tests;
