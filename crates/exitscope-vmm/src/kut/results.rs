//! What the guest printed, as typed results, and the KVM counters of each test's window.
//!
//! `x86/vmexit.c` prints one line per test: `cpuid 10244` (mean TSC cycles per iteration
//! of its last round, loop overhead included), `name (skipped)`, and for some tests extra
//! lines `  ipi NAME N` / `  eoi NAME N`. Each test doubles its iterations from 64 until a
//! round takes 2^30 cycles, so a test whose last round ran N iterations ran 2N − 64 in all.
//! The VMM marks every completed serial line with the vCPUs' KVM statistics, the userspace
//! exits it served per device, and the guest's own `iterations` variable (read from the
//! image's symbol table); a test's window runs from the previous line to its result line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::devices::Device;
use crate::stats::{Snapshot, StatsLayout};

/// One line of guest output, as kvm-unit-tests' vmexit prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// `NAME CYCLES`.
    Result {
        /// Test name.
        name: String,
        /// Cycles per iteration, as printed.
        cycles: i64,
    },
    /// `NAME (skipped)`.
    Skipped {
        /// Test name.
        name: String,
    },
    /// `  ipi NAME N` or `  eoi NAME N`.
    Extra {
        /// `ipi` or `eoi`.
        what: String,
        /// Test name.
        name: String,
        /// Cycles per iteration.
        cycles: i64,
    },
    /// Anything else (setup messages).
    Other,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Classifies one line (without its line ending).
///
/// A result may follow digits on the same line: the self-IPI tests print `x` (with no
/// newline) in every iteration where the interrupt had not arrived yet, so their line reads
/// `000…0self_ipi_sti_nop 11890255`; [`result_prefix`] gives those digits.
pub fn classify(line: &str) -> LineKind {
    let (_, rest) = split_prefix(line);
    classify_plain(rest)
}

/// The digits a result line starts with (see [`classify`]), empty for a clean line.
pub fn result_prefix(line: &str) -> &str {
    let (prefix, rest) = split_prefix(line);
    match classify_plain(rest) {
        LineKind::Result { .. } | LineKind::Skipped { .. } => prefix,
        _ => "",
    }
}

fn split_prefix(line: &str) -> (&str, &str) {
    let n = line.bytes().take_while(|b| b.is_ascii_digit() || *b == b'-').count();
    match line.as_bytes().get(n) {
        Some(b) if n > 0 && b.is_ascii_alphabetic() => line.split_at(n),
        _ => ("", line),
    }
}

fn classify_plain(line: &str) -> LineKind {
    if let Some(rest) = line.strip_prefix("  ") {
        let w: Vec<&str> = rest.split(' ').collect();
        if let [what @ ("ipi" | "eoi"), name, n] = w.as_slice()
            && let Ok(cycles) = n.parse()
            && is_name(name)
        {
            return LineKind::Extra {
                what: (*what).to_string(),
                name: (*name).to_string(),
                cycles,
            };
        }
        return LineKind::Other;
    }
    match line.split(' ').collect::<Vec<_>>().as_slice() {
        [name, "(skipped)"] if is_name(name) => LineKind::Skipped { name: (*name).to_string() },
        [name, n] if is_name(name) => match n.parse() {
            Ok(cycles) => LineKind::Result { name: (*name).to_string(), cycles },
            Err(_) => LineKind::Other,
        },
        _ => LineKind::Other,
    }
}

/// The VMM's view of the machine when a line was completed (or when the boot started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// KVM binary stats of each vCPU (empty where unavailable).
    pub stats: Vec<Snapshot>,
    /// Userspace exits served so far, per vCPU, per [`Device`] (indexed by
    /// [`Device::index`]).
    pub userspace: Vec<[u64; Device::COUNT]>,
    /// The guest's `iterations` variable (the last round's iteration count).
    pub guest_iterations: Option<u32>,
}

/// One complete line of guest output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLine {
    /// The text, without `\r\n`.
    pub text: String,
    /// The vCPU that wrote its last character.
    pub vcpu: usize,
    /// Time since the vCPUs started.
    pub at: Duration,
    /// Counters at that moment.
    pub mark: Mark,
}

/// One test's result from one boot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KutTest {
    /// Test name as printed.
    pub name: String,
    /// Cycles per iteration as the guest printed them; `None` when skipped.
    pub cycles: Option<i64>,
    /// The guest printed `(skipped)`.
    pub skipped: bool,
    /// Extra figures the guest printed (`ipi`, `eoi`), cycles per iteration.
    pub extras: BTreeMap<String, i64>,
    /// What the guest printed before the result on the same line: one digit per iteration
    /// in which a self-IPI test found its interrupt not yet delivered (`x != 1`).
    pub prefix: String,
    /// Index of the result line in the boot's lines.
    pub line: usize,
    /// Iterations of the last round (the guest's `iterations` variable).
    pub iterations: Option<u64>,
    /// Iterations in the whole window (all doubling rounds: 2N − 64).
    pub window_iterations: Option<u64>,
    /// vCPU 0's KVM `exits` per iteration over the window, minus the exits to the
    /// VMM's plumbing devices (serial, fw_cfg, PCI probing, debug exit).
    pub exits_per_iteration: Option<f64>,
    /// Every vCPU 0 counter that moved, per iteration (`exits` and `io_exits` adjusted
    /// as above).
    pub stats_per_iteration: BTreeMap<String, f64>,
    /// vCPU 0's exits that reached exitscope's userspace loop per iteration, plumbing
    /// devices excluded.
    pub userspace_exits_per_iteration: Option<f64>,
    /// Exits of the other vCPUs per iteration (SMP boots), plumbing excluded.
    pub other_vcpus_exits_per_iteration: Option<f64>,
    /// Seconds the window lasted.
    pub window_seconds: f64,
}

/// The line a window starts after: the previous line, except a line a test prints from
/// inside its own measurement (vmexit's `PM timer port is ...` comes from the first call
/// of `inl_from_pmtimer`).
fn window_start(lines: &[GuestLine], i: usize) -> Option<usize> {
    let mut j = i.checked_sub(1)?;
    while lines[j].text.starts_with("PM timer port is") {
        j = j.checked_sub(1)?;
    }
    Some(j)
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn per(v: u64, n: u64) -> f64 {
    v as f64 / n.max(1) as f64
}

fn delta(after: &Snapshot, before: &Snapshot, index: usize) -> Option<u64> {
    Some(after.0.get(index)?.wrapping_sub(*before.0.get(index).unwrap_or(&0)))
}

fn plumbing(after: &[u64; Device::COUNT], before: &[u64; Device::COUNT]) -> (u64, u64) {
    let mut plumbing = 0;
    let mut other = 0;
    for d in Device::ALL {
        let n = after[d.index()].saturating_sub(before[d.index()]);
        if d.is_plumbing() {
            plumbing += n;
        } else {
            other += n;
        }
    }
    (plumbing, other)
}

/// Turns a boot's lines into per-test results. `start` is the mark taken when the vCPUs
/// started; `layout` names the stats counters (None without `KVM_GET_STATS_FD`).
pub fn analyse(lines: &[GuestLine], start: &Mark, layout: Option<&StatsLayout>) -> Vec<KutTest> {
    let mut tests: Vec<KutTest> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (name, cycles) = match classify(&line.text) {
            LineKind::Result { name, cycles } => (name, Some(cycles)),
            LineKind::Skipped { name } => (name, None),
            LineKind::Extra { what, name, cycles } => {
                if let Some(t) = tests.iter_mut().rev().find(|t| t.name == name) {
                    t.extras.insert(what, cycles);
                }
                continue;
            }
            LineKind::Other => continue,
        };
        let before = window_start(lines, i).map_or(start, |j| &lines[j].mark);
        let mut t = KutTest {
            name,
            cycles,
            skipped: cycles.is_none(),
            extras: BTreeMap::new(),
            prefix: result_prefix(&line.text).to_string(),
            line: i,
            iterations: None,
            window_iterations: None,
            exits_per_iteration: None,
            stats_per_iteration: BTreeMap::new(),
            userspace_exits_per_iteration: None,
            other_vcpus_exits_per_iteration: None,
            window_seconds: line
                .at
                .saturating_sub(window_start(lines, i).map_or(Duration::ZERO, |j| lines[j].at))
                .as_secs_f64(),
        };
        if cycles.is_some() {
            fill_window(&mut t, &line.mark, before, layout);
        }
        tests.push(t);
    }
    tests
}

fn fill_window(t: &mut KutTest, after: &Mark, before: &Mark, layout: Option<&StatsLayout>) {
    let Some(n) = after.guest_iterations.map(u64::from).filter(|n| *n >= 64) else {
        return;
    };
    let w = 2 * n - 64;
    t.iterations = Some(n);
    t.window_iterations = Some(w);
    let zero = [0u64; Device::COUNT];
    let user = |v: usize| {
        plumbing(after.userspace.get(v).unwrap_or(&zero), before.userspace.get(v).unwrap_or(&zero))
    };
    let (plumbing0, user0) = user(0);
    t.userspace_exits_per_iteration = Some(per(user0, w));
    let Some(layout) = layout else { return };
    let index = |name: &str| layout.counters.iter().find(|c| c.name == name).map(|c| c.index);
    let (Some(bsp_after), Some(bsp_before)) = (after.stats.first(), before.stats.first()) else {
        return;
    };
    for c in layout.counters.iter().filter(|c| c.cumulative) {
        let Some(mut d) = delta(bsp_after, bsp_before, c.index) else { continue };
        if c.name == "exits" || c.name == "io_exits" {
            d = d.saturating_sub(plumbing0);
        }
        if d != 0 || c.name == "exits" {
            t.stats_per_iteration.insert(c.name.clone(), per(d, w));
        }
    }
    if let Some(exits) = index("exits") {
        t.exits_per_iteration =
            delta(bsp_after, bsp_before, exits).map(|d| per(d.saturating_sub(plumbing0), w));
        if after.stats.len() > 1 {
            let mut others = 0;
            for v in 1..after.stats.len() {
                let d =
                    before.stats.get(v).and_then(|b| delta(&after.stats[v], b, exits)).unwrap_or(0);
                others += d.saturating_sub(user(v).0);
            }
            t.other_vcpus_exits_per_iteration = Some(per(others, w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counter;

    #[test]
    fn classifies_vmexit_output() {
        assert_eq!(
            classify("cpuid 10244"),
            LineKind::Result { name: "cpuid".into(), cycles: 10244 }
        );
        assert_eq!(classify("vmcall (skipped)"), LineKind::Skipped { name: "vmcall".into() });
        assert_eq!(
            classify("  ipi ipi 104233"),
            LineKind::Extra { what: "ipi".into(), name: "ipi".into(), cycles: 104_233 }
        );
        assert_eq!(
            classify("sub1:pci-mem 8000"),
            LineKind::Result { name: "sub1:pci-mem".into(), cycles: 8000 }
        );
        for other in
            ["enabling apic", "smp: waiting for 0 APs", "PM timer port is b008", "", "  x y"]
        {
            assert_eq!(classify(other), LineKind::Other, "{other:?}");
        }
        assert_eq!(classify("cpuid  10"), LineKind::Other);
        let noisy = "0000self_ipi_sti_nop 11890255";
        assert_eq!(
            classify(noisy),
            LineKind::Result { name: "self_ipi_sti_nop".into(), cycles: 11_890_255 }
        );
        assert_eq!(result_prefix(noisy), "0000");
        assert_eq!(result_prefix("cpuid 1"), "");
        assert_eq!(classify("12345"), LineKind::Other);
        assert_eq!(result_prefix("12 apples and pears"), "");
    }

    fn layout() -> StatsLayout {
        let c = |name: &str, index| Counter { name: name.into(), index, cumulative: true };
        StatsLayout {
            data_offset: 0,
            data_len: 3,
            counters: vec![c("exits", 0), c("io_exits", 1), c("insn_emulation", 2)],
        }
    }

    fn mark(stats: &[&[u64]], user: &[(usize, Device, u64)], iterations: Option<u32>) -> Mark {
        let mut userspace = vec![[0u64; Device::COUNT]; stats.len()];
        for (v, d, n) in user {
            userspace[*v][d.index()] = *n;
        }
        Mark {
            stats: stats.iter().map(|s| Snapshot(s.to_vec())).collect(),
            userspace,
            guest_iterations: iterations,
        }
    }

    fn line(text: &str, secs: u64, mark: Mark) -> GuestLine {
        GuestLine { text: text.into(), vcpu: 0, at: Duration::from_secs(secs), mark }
    }

    #[test]
    fn window_exits_are_per_iteration_without_plumbing() {
        let start = mark(&[&[0, 0, 0]], &[], None);
        // Boot line: 10 serial exits. Test: N = 1024 → 1984 iterations; 1984 loop exits plus
        // 24 more serial exits for its own line.
        let lines = vec![
            line("enabling apic", 1, mark(&[&[100, 10, 5]], &[(0, Device::Serial, 10)], None)),
            line(
                "inl_from_qemu 30000",
                3,
                mark(
                    &[&[100 + 1984 + 24, 10 + 1984 + 24, 5 + 1984]],
                    &[(0, Device::Serial, 34), (0, Device::Unassigned, 1984)],
                    Some(1024),
                ),
            ),
        ];
        let t = analyse(&lines, &start, Some(&layout()));
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!((t.name.as_str(), t.cycles, t.skipped), ("inl_from_qemu", Some(30000), false));
        assert_eq!((t.iterations, t.window_iterations), (Some(1024), Some(1984)));
        assert_eq!(t.exits_per_iteration, Some(1.0));
        assert_eq!(t.userspace_exits_per_iteration, Some(1.0));
        assert_eq!(t.stats_per_iteration.get("io_exits"), Some(&1.0));
        assert_eq!(t.stats_per_iteration.get("insn_emulation"), Some(&1.0));
        assert_eq!(t.window_seconds, 2.0);
        assert_eq!(t.other_vcpus_exits_per_iteration, None);
    }

    #[test]
    fn pm_timer_message_does_not_cut_the_window_and_extras_attach() {
        let start = mark(&[&[0, 0, 0], &[0, 0, 0]], &[], None);
        let lines = vec![
            line("PM timer port is b008", 1, mark(&[&[50, 0, 0], &[7, 0, 0]], &[], None)),
            line("inl_from_pmtimer 40000", 2, mark(&[&[192, 0, 0], &[7, 0, 0]], &[], Some(128))),
            line("ipi (skipped)", 2, mark(&[&[200, 0, 0], &[7, 0, 0]], &[], Some(128))),
            line("  ipi ipi 5", 2, mark(&[&[200, 0, 0], &[7, 0, 0]], &[], Some(128))),
        ];
        let t = analyse(&lines, &start, Some(&layout()));
        assert_eq!(t[0].window_iterations, Some(192));
        assert_eq!(t[0].exits_per_iteration, Some(1.0));
        assert_eq!(t[0].other_vcpus_exits_per_iteration, Some(7.0 / 192.0));
        assert!(t[1].skipped && t[1].exits_per_iteration.is_none());
        assert_eq!(t[1].extras.get("ipi"), Some(&5));
    }

    #[test]
    fn without_the_iterations_symbol_or_stats_nothing_is_guessed() {
        let start = Mark::default();
        let lines = vec![line("cpuid 10000", 1, mark(&[&[5, 0, 0]], &[], None))];
        let t = analyse(&lines, &start, Some(&layout()));
        assert_eq!(t[0].cycles, Some(10000));
        assert_eq!((t[0].iterations, t[0].exits_per_iteration), (None, None));
        let lines = vec![line("cpuid 10000", 1, mark(&[&[5, 0, 0]], &[], Some(64)))];
        let t = analyse(&lines, &start, None);
        assert_eq!(t[0].window_iterations, Some(64));
        assert_eq!(
            (t[0].exits_per_iteration, t[0].userspace_exits_per_iteration),
            (None, Some(0.0))
        );
    }
}
