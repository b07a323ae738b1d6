//! Exits from kvm tracepoints, like `perf kvm stat`, as [`ExitRecord`]s.
//!
//! - Where `kvm_exit` fires (VMX, SVM hosts), each `kvm_exit` is paired with the next
//!   `kvm_entry` of the same vCPU thread (keyed by task pid, else by CPU): the pair's span is
//!   the exit's handling time. Reason-specific tracepoints between them (`kvm_pio`, `kvm_mmio`,
//!   `kvm_msr`, ...) give the exit its key and refine its reason (`npf` + `kvm_mmio` → MMIO).
//!   The reason is read by the `kvm_exit` field grammar ([`exitscope_model::exit`]).
//! - Where only the reason-specific tracepoints fire (PVM), each one is an exit with no
//!   duration. `kvm_mmio unsatisfied-read` goes to userspace and is completed later by an
//!   `mmio read` of the same vCPU: one exit, two events.
//! - Events inside an open function-graph call belong to the graph's exits
//!   ([`super::graph`]): a `kvm_exit` there is not counted again; its pair's handling time is
//!   handed on as a [`GraphPair`], matched to the graph exit by input line.

use rustc_hash::FxHashMap;

use exitscope_model::exit::{ExitKind, KvmExit, MmioStep, parse_kvm_exit, tracepoint_exit};
use exitscope_model::{Nanos, Record, RecordKind, TextUse};

use super::{ExitFields, ExitRecord, ExitSource, ReasonId, Reasons};

/// Which vCPU a record belongs to: its thread, or the CPU when the task is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum VcpuKey {
    Task(u32),
    Cpu(u32),
    Unknown,
}

pub(crate) fn vcpu_key(task: Option<u32>, cpu: Option<u32>) -> VcpuKey {
    match (task, cpu) {
        (Some(t), _) if t != 0 => VcpuKey::Task(t),
        (_, Some(c)) => VcpuKey::Cpu(c),
        _ => VcpuKey::Unknown,
    }
}

/// `prev_pid=N` of a `sched_switch` event's text.
pub(crate) fn sched_switch_prev(text: &str) -> Option<u32> {
    let at = text.find("prev_pid=")? + "prev_pid=".len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// The handling time of a `kvm_exit` printed inside a function graph, for the graph exit that
/// holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphPair {
    /// Input index.
    pub input: usize,
    /// Input line of the `kvm_exit`.
    pub line: u64,
    /// The reason the event named.
    pub reason: ReasonId,
    /// kvm_exit → kvm_entry, when both had timestamps.
    pub handling: Option<Nanos>,
}

/// What [`EventExits::record`] produced.
#[derive(Debug, Default)]
pub struct EventOutput {
    /// Exits to count.
    pub exits: Vec<ExitRecord>,
    /// Pairs of `kvm_exit`s inside function graphs.
    pub graph_pairs: Vec<GraphPair>,
}

#[derive(Debug)]
struct Pending {
    rec: ExitRecord,
    in_graph: bool,
    /// Still waiting for its `kvm_entry`. An ended exit stays in its vCPU's slot, closed,
    /// until the vCPU's next `kvm_exit` overwrites it: exit records are large and this runs
    /// twice per exit, so each is written once and copied once, when it ends.
    open: bool,
}

/// The exit each vCPU has waiting for its `kvm_entry` (closed slots are not waiting).
#[derive(Debug, Default)]
struct Waiting {
    slots: FxHashMap<VcpuKey, Pending>,
}

impl Waiting {
    fn get_mut(&mut self, key: &VcpuKey) -> Option<&mut Pending> {
        self.slots.get_mut(key).filter(|p| p.open)
    }

    fn contains(&self, key: &VcpuKey) -> bool {
        self.slots.get(key).is_some_and(|p| p.open)
    }

    fn open_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.slots.values_mut().filter(|p| p.open)
    }

    /// Closes the waiting exits `hit` selects and returns them in input order.
    fn take_where(&mut self, hit: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let keys: Vec<VcpuKey> =
            self.slots.iter().filter(|(_, p)| p.open && hit(p)).map(|(k, _)| *k).collect();
        let mut v: Vec<Pending> = keys.iter().filter_map(|k| self.slots.remove(k)).collect();
        v.sort_by_key(|p| p.rec.line);
        v
    }

    fn clear(&mut self) {
        self.slots.clear();
    }
}

/// The pairing state of one analysis. Feed it records in input order.
#[derive(Debug, Default)]
pub struct EventExits {
    pending: Waiting,
    /// vCPUs whose last kvm_mmio was an unsatisfied read.
    mmio_unsatisfied: FxHashMap<VcpuKey, bool>,
    /// CPUs that lost events since their last exit.
    lost_cpus: Vec<Option<u32>>,
    seen_kvm_exit: bool,
    /// A `sched_switch` was seen in this input: exits can say whether they were preempted.
    seen_sched_switch: bool,
    tracepoints_this_input: u64,
    input: usize,
    /// `kvm_exit`s with no `kvm_entry` (next exit, lost events, end of input first).
    pub unpaired_exits: u64,
    /// `kvm_entry`s with no `kvm_exit` before them.
    pub unmatched_entries: u64,
    /// Pairs whose entry was timestamped before the exit.
    pub out_of_order: u64,
    /// `kvm_userspace_exit` events.
    pub userspace_exits: u64,
    /// Reason-specific tracepoints counted as exits before a `kvm_exit` appeared in the same
    /// input (a capture that started mid-exit, or mixed event sets).
    pub tracepoints_before_kvm_exit: u64,
    /// Reason-specific tracepoints after `kvm_exit` appeared whose vCPU had no open exit.
    pub stray_tracepoints: u64,
}

impl EventExits {
    /// Start input `index`.
    pub fn begin_input(&mut self, index: usize) {
        self.input = index;
        self.seen_kvm_exit = false;
        self.seen_sched_switch = false;
        self.tracepoints_this_input = 0;
        self.pending.clear();
        self.mmio_unsatisfied.clear();
        self.lost_cpus.clear();
    }

    fn finish_pending(&mut self, p: Pending, out: &mut EventOutput) {
        if p.in_graph {
            out.graph_pairs.push(Self::graph_pair(&p));
        } else {
            out.exits.push(p.rec);
        }
    }

    /// [`EventExits::finish_pending`] of an exit that stays in its slot (closed).
    fn finish_in_place(p: &Pending, out: &mut EventOutput) {
        if p.in_graph {
            out.graph_pairs.push(Self::graph_pair(p));
        } else {
            out.exits.push(p.rec.clone());
        }
    }

    fn graph_pair(p: &Pending) -> GraphPair {
        GraphPair {
            input: p.rec.input,
            line: p.rec.line,
            reason: p.rec.reason,
            handling: p.rec.duration,
        }
    }

    /// How much [`EventExits::record`] reads of the text of events named `event` (their
    /// names only, for most).
    pub(crate) fn text_use(event: &str) -> TextUse {
        match event {
            // Only what parse_kvm_exit reads, which a binary reader may hand decoded.
            "kvm_exit" => TextUse::Parsed,
            "sched_switch" => TextUse::Always,
            // Only for the vCPU number, when its kvm_exit did not print one (5.x kernels).
            "kvm_entry" => TextUse::Sometimes,
            e if exitscope_model::exit::TRACEPOINT_EXIT_EVENTS.contains(&e) => TextUse::Always,
            _ => TextUse::Never,
        }
    }

    /// For an event whose [`EventExits::text_use`] is `Sometimes`: whether its text is read.
    pub(crate) fn wants_text(&self, rec: &Record<'_>) -> bool {
        let key = vcpu_key(rec.task.map(|t| t.pid), rec.cpu);
        self.pending.slots.get(&key).is_some_and(|p| p.open && p.rec.vcpu.is_none())
    }

    /// Consume one record. `in_graph`: an event inside an open function-graph call.
    pub fn record(
        &mut self,
        rec: &Record<'_>,
        in_graph: bool,
        reasons: &mut Reasons,
        out: &mut EventOutput,
    ) {
        match rec.kind {
            RecordKind::Event { name, text, exit } => {
                self.event(rec, (name, text, exit), in_graph, reasons, out)
            }
            RecordKind::Lost { .. } => self.lost(rec.cpu, out),
            _ => {}
        }
    }

    fn take_lost(&mut self, cpu: Option<u32>) -> bool {
        let before = self.lost_cpus.len();
        self.lost_cpus.retain(|&c| !(c.is_none() || cpu.is_none() || c == cpu));
        self.lost_cpus.len() != before
    }

    fn event(
        &mut self,
        rec: &Record<'_>,
        (name, text, exit): (&str, &str, Option<&KvmExit<'_>>),
        in_graph: bool,
        reasons: &mut Reasons,
        out: &mut EventOutput,
    ) {
        let task = rec.task.map(|t| t.pid);
        let key = vcpu_key(task, rec.cpu);
        match name {
            "kvm_exit" => {
                self.seen_kvm_exit = true;
                let parsed = exit.copied().or_else(|| parse_kvm_exit(text));
                let reason = match parsed {
                    Some(k) => reasons.vendor(k.reason),
                    None => reasons.kind(ExitKind::Unknown),
                };
                let lost_before = self.take_lost(rec.cpu);
                let new = Pending {
                    rec: ExitRecord {
                        reason,
                        source: Some(ExitSource::KvmExit),
                        input: self.input,
                        line: rec.line,
                        task,
                        vm_pid: rec.task.and_then(|t| t.tgid),
                        preempted: self.seen_sched_switch.then_some(false),
                        cpu: rec.cpu,
                        vcpu: parsed.and_then(|k| k.vcpu),
                        start: rec.timestamp,
                        fields: parsed.map(|k| ExitFields {
                            rip: k.rip,
                            info1: k.info1,
                            info2: k.info2,
                            intr_info: k.intr_info,
                            error_code: k.error_code,
                        }),
                        lost_before,
                        ..Default::default()
                    },
                    in_graph,
                    open: true,
                };
                match self.pending.slots.get_mut(&key) {
                    Some(prev) => {
                        if prev.open {
                            self.unpaired_exits += 1;
                            Self::finish_in_place(prev, out);
                        }
                        *prev = new;
                    }
                    None => {
                        self.pending.slots.insert(key, new);
                    }
                }
            }
            "kvm_entry" => match self.pending.get_mut(&key) {
                Some(p) => {
                    p.open = false;
                    match (p.rec.start, rec.timestamp) {
                        (Some(a), Some(b)) if b >= a => p.rec.duration = Some(b - a),
                        (Some(_), Some(_)) => self.out_of_order += 1,
                        _ => {}
                    }
                    if p.rec.vm_pid.is_none() {
                        p.rec.vm_pid = rec.task.and_then(|t| t.tgid);
                    }
                    if p.rec.vcpu.is_none() {
                        // 5.x kernels print `vcpu N` only in kvm_entry (perf takes it there).
                        p.rec.vcpu = exitscope_model::exit::kvm_entry_vcpu(text);
                    }
                    Self::finish_in_place(p, out);
                }
                None => self.unmatched_entries += 1,
            },
            "sched_switch" => {
                if !self.seen_sched_switch {
                    self.seen_sched_switch = true;
                    for p in self.pending.open_mut() {
                        p.rec.preempted.get_or_insert(false);
                    }
                }
                // The task switched out: `prev_pid=` of the event, else the task that wrote
                // it (the kernel writes sched_switch as the outgoing task).
                let prev = sched_switch_prev(text).or(task);
                if let Some(p) = self.pending.get_mut(&vcpu_key(prev, rec.cpu)) {
                    p.rec.preempted = Some(true);
                }
            }
            "kvm_userspace_exit" => {
                self.userspace_exits += 1;
                if let Some(p) = self.pending.get_mut(&key) {
                    p.rec.userspace = true;
                }
            }
            _ => {
                let Some(t) = tracepoint_exit(name, text) else { return };
                // An MMIO read completing an unsatisfied one is the same exit.
                let completes_mmio = if t.kind == ExitKind::Mmio {
                    let was = self
                        .mmio_unsatisfied
                        .insert(key, t.mmio == Some(MmioStep::UnsatisfiedRead));
                    t.mmio == Some(MmioStep::Read) && was == Some(true)
                } else {
                    false
                };
                if let Some(p) = self.pending.get_mut(&key) {
                    p.rec.key = p.rec.key.or(t.key);
                    let cur = reasons.get(p.rec.reason).kind;
                    if t.kind.refines(cur) {
                        p.rec.reason = reasons.refined(p.rec.reason, t.kind);
                    }
                    return;
                }
                if in_graph || completes_mmio {
                    return;
                }
                if self.seen_kvm_exit {
                    self.stray_tracepoints += 1;
                    return;
                }
                self.tracepoints_this_input += 1;
                let lost_before = self.take_lost(rec.cpu);
                out.exits.push(ExitRecord {
                    reason: reasons.kind(t.kind),
                    source: Some(ExitSource::Tracepoint),
                    input: self.input,
                    line: rec.line,
                    task,
                    vm_pid: rec.task.and_then(|t| t.tgid),
                    cpu: rec.cpu,
                    start: rec.timestamp,
                    key: t.key,
                    lost_before,
                    ..Default::default()
                });
            }
        }
    }

    fn lost(&mut self, cpu: Option<u32>, out: &mut EventOutput) {
        // Pairs that may span the hole are no longer trustworthy: their exits stay, unpaired.
        let hit = |c: Option<u32>| cpu.is_none() || c.is_none() || c == cpu;
        for p in self.pending.take_where(|p| hit(p.rec.cpu)) {
            self.unpaired_exits += 1;
            self.finish_pending(p, out);
        }
        self.mmio_unsatisfied.clear();
        self.lost_cpus.push(cpu);
    }

    /// An exit of `key` waits for its `kvm_entry`.
    pub(crate) fn has_pending(&self, key: VcpuKey) -> bool {
        self.pending.contains(&key)
    }

    /// Whether `key`'s last `kvm_mmio` was an unsatisfied read (`None`: it had none).
    pub(crate) fn mmio_state(&self, key: VcpuKey) -> Option<bool> {
        self.mmio_unsatisfied.get(&key).copied()
    }

    /// Some CPU lost events since its last exit.
    pub(crate) fn has_lost(&self) -> bool {
        !self.lost_cpus.is_empty()
    }

    /// A `kvm_exit` was seen in this input.
    pub(crate) fn seen_kvm_exit(&self) -> bool {
        self.seen_kvm_exit
    }

    /// What a `kvm_exit` of `key` does to the exit it finds waiting: it is unpaired.
    pub(crate) fn finish_unpaired(&mut self, key: VcpuKey, out: &mut EventOutput) {
        if let Some(p) = self.pending.get_mut(&key) {
            p.open = false;
            self.unpaired_exits += 1;
            Self::finish_in_place(p, out);
        }
    }

    /// Take the state of `part`, the pairing of the chunk after everything this one saw (see
    /// `crate::parallel`): its counters add up, its waiting exits and MMIO steps replace this
    /// one's for their vCPUs. `map` turns `part`'s reason ids into this analysis's; its lines
    /// are numbered from `line_base`.
    pub(crate) fn merge_part(&mut self, part: EventExits, map: &[ReasonId], line_base: u64) {
        self.unpaired_exits += part.unpaired_exits;
        self.unmatched_entries += part.unmatched_entries;
        self.out_of_order += part.out_of_order;
        self.userspace_exits += part.userspace_exits;
        self.tracepoints_before_kvm_exit += part.tracepoints_before_kvm_exit;
        self.stray_tracepoints += part.stray_tracepoints;
        self.tracepoints_this_input += part.tracepoints_this_input;
        self.seen_kvm_exit |= part.seen_kvm_exit;
        // (Exit sinks, the only readers of `preempted`, turn chunking off: the parts' exits
        // need no fixing up for a sched_switch seen in an earlier chunk.)
        self.seen_sched_switch |= part.seen_sched_switch;
        for (k, mut p) in part.pending.slots.into_iter().filter(|(_, p)| p.open) {
            p.rec.reason = map.get(p.rec.reason.0 as usize).copied().unwrap_or(p.rec.reason);
            p.rec.line += line_base;
            self.pending.slots.insert(k, p);
        }
        self.mmio_unsatisfied.extend(part.mmio_unsatisfied);
    }

    /// End of the input: exits still waiting for their `kvm_entry` are unpaired.
    pub fn end_input(&mut self, out: &mut EventOutput) {
        let rest = self.pending.take_where(|_| true);
        self.pending.clear();
        for p in rest {
            self.unpaired_exits += 1;
            self.finish_pending(p, out);
        }
        // In a tracepoint-only input these are the exits; before a kvm_exit they are worth a
        // note.
        if self.seen_kvm_exit {
            self.tracepoints_before_kvm_exit += self.tracepoints_this_input;
        }
    }
}

#[cfg(test)]
mod tests {
    use exitscope_model::Task;

    use super::*;

    fn ev<'a>(line: u64, ts: u64, name: &'a str, text: &'a str) -> Record<'a> {
        Record {
            line,
            cpu: Some(0),
            task: Some(Task::new("qemu", 7)),
            timestamp: Some(ts),
            kind: RecordKind::Event { name, text, exit: None },
        }
    }

    fn run(recs: &[Record<'_>]) -> (Vec<ExitRecord>, Reasons, EventExits) {
        let mut e = EventExits::default();
        let mut reasons = Reasons::default();
        let mut out = EventOutput::default();
        for r in recs {
            e.record(r, false, &mut reasons, &mut out);
        }
        e.end_input(&mut out);
        (out.exits, reasons, e)
    }

    #[test]
    fn pairs_give_handling_time_and_tracepoints_refine() {
        let (exits, reasons, e) = run(&[
            ev(1, 1_000, "kvm_exit", "vcpu 0 reason npf rip 0x1 info1 0x0 info2 0xfee00030"),
            ev(2, 1_200, "kvm_mmio", "mmio write len 4 gpa 0xfee00030 val 0x0"),
            ev(3, 1_700, "kvm_entry", "vcpu 0, rip 0x3"),
            ev(4, 2_000, "kvm_exit", "vcpu 0 reason CPUID rip 0x1"),
        ]);
        assert_eq!(exits.len(), 2);
        assert_eq!(reasons.get(exits[0].reason).label(), "MMIO");
        assert_eq!(reasons.get(exits[0].reason).vendor.as_deref(), Some("npf"));
        assert_eq!(exits[0].duration, Some(700));
        assert_eq!(exits[0].vcpu, Some(0));
        assert!(matches!(exits[0].key, Some(exitscope_model::exit::ExitKey::Gpa(0xfee0_0030))));
        assert_eq!((reasons.get(exits[1].reason).label(), exits[1].duration), ("CPUID", None));
        assert_eq!(e.unpaired_exits, 1);
    }

    #[test]
    fn an_ended_exit_takes_nothing_more() {
        // The exit stays in its vCPU's slot, closed: what follows its kvm_entry is not its.
        let mut e = EventExits::default();
        let mut reasons = Reasons::default();
        let mut out = EventOutput::default();
        let recs = [
            ev(1, 1_000, "kvm_exit", "vcpu 0 reason IO_INSTRUCTION rip 0x1"),
            ev(2, 1_100, "kvm_entry", "vcpu 0, rip 0x3"),
            ev(3, 1_200, "kvm_pio", "pio_write at 0x80 size 1 count 1 val 0x0"),
            ev(4, 1_300, "kvm_userspace_exit", "reason KVM_EXIT_IO (2)"),
            ev(5, 1_400, "kvm_entry", "vcpu 0, rip 0x3"),
        ];
        for r in &recs {
            e.record(r, false, &mut reasons, &mut out);
        }
        assert!(!e.has_pending(vcpu_key(Some(7), Some(0))));
        e.finish_unpaired(vcpu_key(Some(7), Some(0)), &mut out);
        e.end_input(&mut out);
        assert_eq!(out.exits.len(), 1);
        assert_eq!((out.exits[0].key, out.exits[0].userspace), (None, false));
        assert_eq!(out.exits[0].duration, Some(100));
        assert_eq!((e.stray_tracepoints, e.unmatched_entries, e.unpaired_exits), (1, 1, 0));
    }

    #[test]
    fn lost_events_end_waiting_exits_in_input_order() {
        let mut e = EventExits::default();
        let mut reasons = Reasons::default();
        let mut out = EventOutput::default();
        for (line, pid) in [(1, 30), (2, 10), (3, 20)] {
            let mut r = ev(line, line * 100, "kvm_exit", "vcpu 0 reason CPUID rip 0x1");
            r.task = Some(Task::new("qemu", pid));
            e.record(&r, false, &mut reasons, &mut out);
        }
        let lost = Record { kind: RecordKind::Lost { count: Some(3) }, ..ev(4, 400, "", "") };
        e.record(&lost, false, &mut reasons, &mut out);
        let lines: Vec<u64> = out.exits.iter().map(|x| x.line).collect();
        assert_eq!(lines, [1, 2, 3]);
        assert_eq!(e.unpaired_exits, 3);
    }

    #[test]
    fn tracepoint_only_traces_count_each_exit_once() {
        let (exits, reasons, _) = run(&[
            ev(1, 1_000, "kvm_pio", "pio_read at 0x4d0 size 1 count 1 val 0x0"),
            ev(2, 2_000, "kvm_mmio", "mmio unsatisfied-read len 4 gpa 0x1000 val 0x0"),
            ev(3, 2_500, "kvm_mmio", "mmio read len 4 gpa 0x1000 val 0x7"),
            ev(4, 3_000, "kvm_cpuid", "func 0 idx 0 rax 0"),
        ]);
        let labels: Vec<&str> = exits.iter().map(|x| reasons.get(x.reason).label()).collect();
        assert_eq!(labels, ["IO", "MMIO", "CPUID"]);
        assert!(exits.iter().all(|x| x.duration.is_none()));
    }
}
