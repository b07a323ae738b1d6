//! Exits in function graphs: one classified exit per vendor run call, with its time split into
//! phases.
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
//!   work (`vcpu_load`, ...), except completion callbacks (`complete_fast_pio_out`, ...): those
//!   finish the previous `KVM_RUN`'s last exit, which went to userspace, and become that exit's
//!   `completion` phase (see [`super`]). `other` is 0: the container's self time cannot be
//!   split between exits from durations alone. Time of a split root outside every unit (the
//!   container's self time, work after the last exit's dispatcher such as `vcpu_put`, calls
//!   outside the container, completion work of an exit the trace does not hold) is summed in
//!   [`super::ExitsReport::unattributed_ns`], so nothing disappears.
//! - a root that *is* a run call is one exit with only a `run` phase.
//! - a root with no run call (a `cpuid_interception` graph, an entry cancelled before the run
//!   call) is not an exit; it is counted in [`super::ExitsReport::roots_without_run`].
//!
//! Interrupt subtrees that sit directly under the container are charged to the phase they
//! interrupted (it is wall time that phase took).
//!
//! # How an exit is classified
//!
//! The first `kvm_exit` event inside the unit gives the reason when it names one (decoded by
//! [`exitscope_model::exit`]). Otherwise the first handler function found in pre-order in the
//! run call's subtree and then in the `after` phase gives it (table: `exit_handlers.toml`);
//! interrupt subtrees are skipped. A reason is then replaced by a more specific one that
//! refines it when that one's handler, or its reason-specific tracepoint inside the unit, is
//! also seen (`npf` + `handle_mmio_page_fault` or `kvm_mmio` → MMIO; SVM `msr` +
//! `kvm_emulate_wrmsr` → MSR_WRITE). A host interrupt handled right after the vendor's
//! irq-off step, with a dispatcher that called nothing, is EXTERNAL_INTERRUPT (SVM dispatches
//! INTR to an inlined no-op). With none of these the exit is `unknown`, and the functions its
//! dispatcher called (and the raw event reason) are listed as evidence, to extend the table
//! with; evidence is never empty.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use exitscope_model::Nanos;
use exitscope_model::exit::{ExitKey, ExitKind, parse_kvm_exit, tracepoint_exit};

use super::{ExitFields, ExitRecord, ExitSource, Phases, ReasonId, Reasons};
use crate::calls::{CallNode, NO_PARENT, RootCall};
use crate::funcs::{FuncId, FuncTable};

/// The built-in classification table (see the comments at its top for the format).
pub const BUILTIN_TABLE: &str = include_str!("exit_handlers.toml");

/// Events whose text carries `reason <R> rip 0x...`.
const EXIT_EVENTS: &[&str] = &["kvm_exit"];

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
    #[serde(default)]
    completion: Vec<String>,
    #[serde(default)]
    irqoff: Vec<String>,
    #[serde(default)]
    sched: Vec<String>,
    synthetic_root: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReason {
    #[serde(default)]
    handlers: Vec<String>,
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
    /// A completion callback for the previous `KVM_RUN`'s userspace exit.
    Completion,
    /// The vendor's exit step with interrupts off (`svm_handle_exit_irqoff`).
    IrqOff,
    /// The scheduler: a call of it inside an exit means the vCPU thread was scheduled out
    /// (`schedule`, `kvm_sched_out`).
    Sched,
    /// A handler that identifies this reason.
    Handler(ExitKind),
}

/// The parsed classification table.
#[derive(Clone, Debug)]
pub struct ExitTable {
    roles: FxHashMap<String, Role>,
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
    /// TOML errors (with line and column), unknown keys, a reason that is not an
    /// [`ExitKind`] name, and a function given two roles.
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
        let s = &raw.structure;
        for (names, role) in [
            (&s.run, Role::Run),
            (&s.exit_roots, Role::ExitRoot),
            (&s.dispatchers, Role::Dispatcher),
            (&s.completion, Role::Completion),
            (&s.irqoff, Role::IrqOff),
            (&s.sched, Role::Sched),
        ] {
            for n in names {
                put_role(n, role)?;
            }
        }
        for (name, r) in &raw.reason {
            let kind = ExitKind::from_name(name)
                .filter(|k| !matches!(k, ExitKind::Other | ExitKind::Unknown))
                .ok_or_else(|| {
                    TableError::new(format!(
                        "reason {name} is not an exit kind (one of {})",
                        ExitKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            for h in &r.handlers {
                put_role(h, Role::Handler(kind))?;
            }
        }
        Ok(ExitTable { roles, synthetic_root: split_display(&raw.structure.synthetic_root) })
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
    #[cfg(test)]
    pub fn handler_kind(&self, name: &str) -> Option<ExitKind> {
        match self.role(name) {
            Role::Handler(k) => Some(k),
            _ => None,
        }
    }
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

impl ExitUnit {
    /// Node indexes `[first, end)` covered by the unit's members and their subtrees.
    pub fn node_range(&self, root: &RootCall) -> (usize, usize) {
        let first = self.members.first().map_or(0, |&m| m as usize);
        let end = self.members.last().map_or(first, |&m| subtree_end(root, m as usize));
        (first, end)
    }

    /// Time by phase (`completion` is left `None`: it is known only from the next root).
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
            completion: None,
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
    /// From the call structure (a host interrupt after the irq-off step, nothing dispatched).
    Structure,
    /// Not found.
    None,
}

/// The reason of one exit and what showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The reason (`unknown` when nothing said).
    pub reason: ReasonId,
    /// Where the reason came from.
    pub source: Source,
    /// What decided it (`kvm_exit: CPUID`, `cpuid_interception`), or for an unknown exit
    /// what was seen: the raw event reason and the functions the dispatcher called. Never
    /// empty.
    pub evidence: Vec<String>,
    /// Input line of the `kvm_exit` event that named it.
    pub event_line: Option<u64>,
    /// That event's fields.
    pub fields: Option<ExitFields>,
    /// The port, MSR or address a reason-specific tracepoint inside the exit named.
    pub key: Option<ExitKey>,
    /// A `kvm_userspace_exit` event inside the exit.
    pub userspace: bool,
    /// The vCPU thread was scheduled out inside the exit: a scheduler call (role `sched`), a
    /// `sched_switch` event or a task-switch banner in the exit's calls.
    pub preempted: bool,
}

/// Classify every unit of `root` (units as returned by [`exit_units`]).
pub fn classify_units(
    root: &RootCall,
    units: &[ExitUnit],
    roles: &[Role],
    funcs: &FuncTable,
    reasons: &mut Reasons,
) -> Vec<Classification> {
    // Events of each unit: by node when inside a member's subtree, else by input line (an
    // event printed at the container's level). Units are disjoint and in pre-order.
    let ranges: Vec<(usize, usize)> = units.iter().map(|u| u.node_range(root)).collect();
    let first_lines: Vec<u64> = units
        .iter()
        .map(|u| u.members.first().and_then(|&m| root.nodes.get(m as usize)).map_or(0, |n| n.line))
        .collect();
    let mut unit_events: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (e, ev) in root.events.iter().enumerate() {
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
        if let Some(u) = unit {
            unit_events[u].push(e);
        }
    }
    units
        .iter()
        .zip(unit_events)
        .map(|(u, evs)| classify_one(root, u, &evs, roles, funcs, reasons))
        .collect()
}

fn classify_one(
    root: &RootCall,
    unit: &ExitUnit,
    events: &[usize],
    roles: &[Role],
    funcs: &FuncTable,
    reasons: &mut Reasons,
) -> Classification {
    // Handler matches, pre-order: the run call's subtree, then the after phase.
    let mut matches: Vec<(usize, ExitKind)> = Vec::new();
    for &m in unit.members.get(unit.run..).unwrap_or(&[]) {
        let m = m as usize;
        for i in m..subtree_end(root, m) {
            let n = &root.nodes[i];
            if n.interrupt {
                continue;
            }
            if let Role::Handler(k) = role_of(roles, n) {
                matches.push((i, k));
            }
        }
    }
    let name = |i: usize| funcs.get(root.nodes[i].func).name.clone();
    let mut c = Classification {
        reason: reasons.kind(ExitKind::Unknown),
        source: Source::None,
        evidence: Vec::new(),
        event_line: None,
        fields: None,
        key: None,
        userspace: false,
        preempted: false,
    };
    let (first, end) = unit.node_range(root);
    c.preempted = root
        .nodes
        .get(first..end)
        .is_some_and(|ns| ns.iter().any(|n| role_of(roles, n) == Role::Sched))
        || events.iter().any(|&e| {
            matches!(root.events[e].name.as_str(), "sched_switch" | crate::calls::TASK_SWITCH_EVENT)
        });
    // The unit's events: the first kvm_exit, the reason-specific tracepoints.
    let mut raw_event: Option<&str> = None;
    let mut tracepoint_kinds: Vec<(ExitKind, &str)> = Vec::new();
    for &e in events {
        let ev = &root.events[e];
        if EXIT_EVENTS.contains(&ev.name.as_str()) {
            if raw_event.is_none()
                && let Some(k) = parse_kvm_exit(&ev.text)
            {
                raw_event = Some(k.reason);
                c.event_line = (ev.line > 0).then_some(ev.line);
                c.fields = Some(ExitFields {
                    rip: k.rip,
                    info1: k.info1,
                    info2: k.info2,
                    intr_info: k.intr_info,
                    error_code: k.error_code,
                });
            }
        } else if ev.name == "kvm_userspace_exit" {
            c.userspace = true;
        } else if let Some(t) = tracepoint_exit(&ev.name, &ev.text) {
            c.key = c.key.or(t.key);
            tracepoint_kinds.push((t.kind, ev.name.as_str()));
        }
    }
    let mut current: Option<ReasonId> = None;
    if let Some(raw) = raw_event {
        let id = reasons.vendor(raw);
        if !matches!(reasons.get(id).kind, ExitKind::Unknown) {
            current = Some(id);
            c.source = Source::Event;
            c.evidence.push(format!("kvm_exit: {raw}"));
        }
    }
    if current.is_none()
        && let Some(&(i, k)) = matches.first()
    {
        current = Some(reasons.kind(k));
        c.source = Source::Handler;
        c.evidence.push(name(i));
    }
    let after = unit.members.get(unit.run + 1..).unwrap_or(&[]);
    // What the dispatchers called (through nested dispatchers), else the after phase's calls.
    let is_dispatcher = |i: u32| role_of(roles, &root.nodes[i as usize]) == Role::Dispatcher;
    let mut stack: Vec<u32> = after.iter().rev().copied().filter(|&i| is_dispatcher(i)).collect();
    let mut dispatchers: Vec<u32> = Vec::new();
    let mut called = Vec::new();
    if stack.is_empty() {
        called = after.iter().map(|&i| i as usize).filter(|&i| !root.nodes[i].interrupt).collect();
    }
    while let Some(i) = stack.pop() {
        if is_dispatcher(i) {
            dispatchers.push(i);
            let kids: Vec<u32> = root.children(i).collect();
            stack.extend(kids.into_iter().rev());
        } else if !root.nodes[i as usize].interrupt {
            called.push(i as usize);
        }
    }
    if let Some(mut cur) = current {
        // Refine: each refinement makes the kind strictly more specific, so this ends.
        loop {
            let kind = reasons.get(cur).kind;
            if let Some(&(i, k)) = matches.iter().find(|(_, k)| k.refines(kind)) {
                cur = reasons.refined(cur, k);
                c.evidence.push(name(i));
            } else if let Some(&(k, ev)) = tracepoint_kinds.iter().find(|(k, _)| k.refines(kind)) {
                cur = reasons.refined(cur, k);
                c.evidence.push(ev.to_string());
            } else {
                break;
            }
        }
        // A reason with no neutral kind: what the dispatcher did is the best hint.
        if reasons.get(cur).kind == ExitKind::Other && matches.is_empty() {
            for &i in &called {
                let n = name(i);
                if !c.evidence.contains(&n) {
                    c.evidence.push(n);
                }
            }
        }
        c.reason = cur;
        return c;
    }
    // A host interrupt taken right after the irq-off step, with nothing dispatched.
    let irqoff =
        after.iter().position(|&i| role_of(roles, &root.nodes[i as usize]) == Role::IrqOff);
    let interrupt_after = irqoff
        .and_then(|p| after[p + 1..].iter().copied().find(|&i| root.nodes[i as usize].interrupt));
    if raw_event.is_none()
        && called.is_empty()
        && !dispatchers.is_empty()
        && let (Some(p), Some(irq)) = (irqoff, interrupt_after)
    {
        c.reason = reasons.kind(ExitKind::ExternalInterrupt);
        c.source = Source::Structure;
        let d = dispatchers.last().map_or_else(String::new, |&d| name(d as usize));
        c.evidence.push(format!(
            "host interrupt {} after {} + empty {d}",
            name(irq as usize),
            name(after[p] as usize)
        ));
        return c;
    }
    // Unknown: say what was seen.
    if let Some(raw) = raw_event {
        c.evidence.push(format!("kvm_exit: {raw}"));
    }
    for i in called {
        let n = name(i);
        if !c.evidence.contains(&n) {
            c.evidence.push(n);
        }
    }
    if c.evidence.is_empty() {
        c.evidence.push(match dispatchers.last() {
            Some(&d) => format!("{} called nothing", name(d as usize)),
            None => "no kvm_exit event, handler or dispatcher after the run call".to_string(),
        });
    }
    c
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
    RootCall {
        nodes,
        events: Vec::new(),
        cpu: root.cpu,
        pid: root.pid,
        tgid: root.tgid,
        input: root.input,
    }
}

/// Which thread a root ran on (completion work is matched within one vCPU thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Thread {
    Pid(u32),
    Cpu(u32),
    Unknown,
}

/// What one root gave: its units (for the merged tree) and the reasons of its exits.
#[derive(Clone, Debug, Default)]
pub struct RootExits {
    /// The exit units, as cut (completion calls taken out of the first).
    pub units: Vec<ExitUnit>,
    /// The reason of each unit.
    pub reasons: Vec<ReasonId>,
    /// The root was split (not one exit).
    pub split: bool,
}

/// Cuts roots into exits, classifies them and turns them into [`ExitRecord`]s. The last exit of
/// a split root waits for the thread's next root (its completion work is there) or the end of
/// the input ([`GraphExits::flush`]).
#[derive(Clone, Debug)]
pub struct GraphExits<'t> {
    table: &'t ExitTable,
    roles: RoleCache,
    pending: FxHashMap<Thread, ExitRecord>,
    /// Exits found.
    pub exits: u64,
    /// Roots that were one exit each.
    pub whole_roots: u64,
    /// Roots cut into exits.
    pub split_roots: u64,
    /// Roots without a run call.
    pub roots_without_run: u64,
    /// Time of split roots outside every exit.
    pub unattributed_ns: Nanos,
}

impl<'t> GraphExits<'t> {
    /// A collector classifying with `table`.
    pub fn new(table: &'t ExitTable) -> Self {
        GraphExits {
            table,
            roles: RoleCache::default(),
            pending: FxHashMap::default(),
            exits: 0,
            whole_roots: 0,
            split_roots: 0,
            roots_without_run: 0,
            unattributed_ns: 0,
        }
    }

    /// Cut `root` into exits and classify them; exit records that are complete go to `out`.
    pub fn observe(
        &mut self,
        root: &RootCall,
        funcs: &FuncTable,
        reasons: &mut Reasons,
        out: &mut Vec<ExitRecord>,
    ) -> RootExits {
        let roles = self.roles.roles(self.table, funcs);
        let mut units = exit_units(root, roles);
        if units.is_empty() {
            self.roots_without_run += 1;
            return RootExits::default();
        }
        let split = !units.iter().all(|u| u.whole_root);
        if split {
            self.split_roots += 1;
        } else {
            self.whole_roots += 1;
        }
        let thread = match (root.pid, root.cpu) {
            (Some(p), _) if p != 0 => Thread::Pid(p),
            (_, Some(c)) => Thread::Cpu(c),
            _ => Thread::Unknown,
        };
        // Completion callbacks before the first run call finish the thread's previous exit.
        let mut completion: Option<Nanos> = Some(0);
        let mut completion_calls = 0;
        if split && let Some(first) = units.first_mut() {
            let (mut kept, mut run) = (Vec::with_capacity(first.members.len()), first.run);
            for (i, &m) in first.members.iter().enumerate() {
                let n = &root.nodes[m as usize];
                if i < first.run && !n.interrupt && role_of(roles, n) == Role::Completion {
                    completion = completion.zip(duration_of(n)).map(|(a, b)| a.saturating_add(b));
                    completion_calls += 1;
                    run -= 1;
                } else {
                    kept.push(m);
                }
            }
            first.members = kept;
            first.run = run;
        }
        let classes = classify_units(root, &units, roles, funcs, reasons);
        let mut covered: Option<Nanos> = Some(0);
        if let Some(mut prev) = self.pending.remove(&thread) {
            if let Some(p) = prev.phases.as_mut() {
                p.completion = completion;
            }
            prev.userspace |= completion_calls > 0;
            prev.duration = prev.phases.and_then(|p| p.total());
            out.push(prev);
            if completion_calls > 0 {
                covered = covered.zip(completion).map(|(a, b)| a.saturating_add(b));
            }
        }
        let n = units.len();
        let mut ids = Vec::with_capacity(n);
        for (k, (u, c)) in units.iter().zip(classes).enumerate() {
            self.exits += 1;
            let mut phases = u.phases(root);
            covered = covered.zip(phases.total()).map(|(a, b)| a.saturating_add(b));
            if split {
                phases.completion = Some(0);
            }
            let first = u.members.first().and_then(|&m| root.nodes.get(m as usize));
            let rec = ExitRecord {
                reason: c.reason,
                source: Some(ExitSource::FunctionGraph),
                input: root.input,
                line: first.map_or(0, |f| f.line),
                task: root.pid,
                vm_pid: root.tgid,
                cpu: root.cpu,
                vcpu: None,
                start: first.and_then(|f| f.start),
                duration: phases.total(),
                phases: Some(phases),
                key: c.key,
                fields: c.fields,
                kvm_exit_line: c.event_line,
                userspace: c.userspace,
                lost_before: false,
                preempted: Some(c.preempted),
                evidence: c.evidence,
            };
            ids.push(c.reason);
            if split && k + 1 == n {
                self.pending.insert(thread, rec);
            } else {
                out.push(rec);
            }
        }
        if split && let (Some(c), Some(d)) = (covered, root.nodes.first().and_then(duration_of)) {
            self.unattributed_ns = self.unattributed_ns.saturating_add(d.saturating_sub(c));
        }
        RootExits { units, reasons: ids, split }
    }

    /// A root that is one exit came on the thread of (`pid`, `cpu`) (a chunk's part, see
    /// [`crate::parallel`]): the exit waiting for that thread ends, with no completion work,
    /// as [`GraphExits::observe`] ends it.
    pub(crate) fn end_pending(
        &mut self,
        pid: Option<u32>,
        cpu: Option<u32>,
        out: &mut Vec<ExitRecord>,
    ) {
        let thread = match (pid, cpu) {
            (Some(p), _) if p != 0 => Thread::Pid(p),
            (_, Some(c)) => Thread::Cpu(c),
            _ => Thread::Unknown,
        };
        if let Some(mut prev) = self.pending.remove(&thread) {
            if let Some(p) = prev.phases.as_mut() {
                p.completion = Some(0);
            }
            prev.duration = prev.phases.and_then(|p| p.total());
            out.push(prev);
        }
    }

    /// Add the counts of a chunk's part (which had no split root, so nothing waits in it).
    pub(crate) fn merge_counts(&mut self, part: &GraphExits<'_>) {
        self.exits += part.exits;
        self.whole_roots += part.whole_roots;
        self.split_roots += part.split_roots;
        self.roots_without_run += part.roots_without_run;
        self.unattributed_ns = self.unattributed_ns.saturating_add(part.unattributed_ns);
    }

    /// Emit the exits still waiting for their thread's next root (end of input): they had no
    /// completion work in the trace.
    pub fn flush(&mut self, out: &mut Vec<ExitRecord>) {
        let mut rest: Vec<ExitRecord> = self.pending.drain().map(|(_, r)| r).collect();
        rest.sort_by_key(|r| (r.input, r.line));
        out.extend(rest);
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
