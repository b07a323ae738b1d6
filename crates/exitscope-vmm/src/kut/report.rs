//! `exitscope bench --kut`: boots repeated, summarised in the bench report's shape
//! (`results` of [`TestResult`], `"source": "kvm-unit-tests"`).

use std::collections::BTreeMap;
use std::path::Path;

use exitscope_guest::ExitKind;
use serde::Serialize;

use super::boot::{KutConfig, KutEnd, KutOutcome};
use super::cfg::{self, Entry};
use super::results::KutTest;
use crate::bench::{Mode, Report, Status, TestResult};
use crate::host::{Flavour, HostInfo};
use crate::vm::Cpl;

/// Where the figures come from, in [`Report::source`].
pub const SOURCE: &str = "kvm-unit-tests";

/// vmexit.c's goal: each test's last round lasts at least 2^30 TSC cycles.
pub const GUEST_GOAL_CYCLES: u64 = 1 << 30;

/// One boot configuration, run `--repeat` times.
#[derive(Debug, Clone)]
pub struct BootPlan {
    /// `unittests.cfg` section name, or `command line`.
    pub label: String,
    /// What to boot.
    pub config: KutConfig,
    /// Caveats (parameters of the cfg entry exitscope does not apply).
    pub notes: Vec<String>,
}

/// A plan and the outcomes of its boots.
#[derive(Debug, Clone)]
pub struct PlanRuns {
    /// The plan.
    pub plan: BootPlan,
    /// One outcome per boot, in order.
    pub boots: Vec<KutOutcome>,
}

/// The plans for `--kut-cfg`: every `vmexit_*` entry (or, with `tests`, those whose
/// name or arguments match), each booted with its own `smp`, `test_args` and `timeout`
/// on top of `base`.
///
/// # Errors
///
/// A message naming the entry and line when an entry cannot be honoured (`smp` not a
/// number), or when nothing matches.
pub fn plans_from_cfg(
    entries: &[Entry],
    base: &KutConfig,
    tests: &[String],
) -> Result<Vec<BootPlan>, String> {
    let mut plans = Vec::new();
    for e in cfg::vmexit_entries(entries) {
        let wanted = tests.is_empty()
            || tests.iter().any(|t| {
                e.test_args.contains(t) || e.name == *t || e.name == format!("vmexit_{t}")
            });
        if !wanted {
            continue;
        }
        let smp = e.smp_count().ok_or_else(|| {
            format!("[{}] (line {}): smp = {:?} is not a number", e.name, e.line, e.smp)
        })?;
        let mut config = base.clone().with_tests(e.test_args.iter().cloned()).with_smp(smp);
        if let Some(t) = e.timeout {
            config = config.with_timeout(t);
        }
        let mut notes = Vec::new();
        if !e.qemu_params.is_empty() {
            notes.push(format!(
                "[{}] qemu_params not applied by exitscope: {}",
                e.name,
                e.qemu_params.trim()
            ));
        }
        plans.push(BootPlan { label: e.name.clone(), config, notes });
    }
    if plans.is_empty() {
        return Err(if tests.is_empty() {
            "no vmexit_* entries (or entries in group vmexit) in the file".to_string()
        } else {
            format!("no vmexit_* entry runs {}", tests.join(", "))
        });
    }
    Ok(plans)
}

/// The mode line for kvm-unit-tests boots: the tests run at CPL0, which a PVM host
/// emulates.
pub fn mode(flavour: Flavour) -> Mode {
    if flavour == Flavour::Pvm {
        Mode {
            cpl: Cpl::Zero,
            reason: "kvm-unit-tests runs its tests at CPL0; on this PVM host CPL0 guest code is \
                     emulated instruction by instruction, so the cycles are KVM's instruction \
                     emulator's cost for each operation (for QEMU alike), not VM-exit round trips"
                .into(),
            emulated: true,
        }
    } else {
        Mode {
            cpl: Cpl::Zero,
            reason: format!(
                "{} host: kvm-unit-tests runs its tests at CPL0, as on bare metal",
                flavour.as_str()
            ),
            emulated: false,
        }
    }
}

/// What each vmexit test is expected to cause, in the bench report's vocabulary.
pub fn exit_kind(test: &str) -> &'static str {
    match test {
        "cpuid" => ExitKind::Cpuid.as_str(),
        "vmcall" => ExitKind::Hypercall.as_str(),
        "inl_from_kernel" | "outl_to_kernel" => ExitKind::IoKernel.as_str(),
        "inl_from_qemu" | "inl_from_pmtimer" => ExitKind::IoUser.as_str(),
        "mov_from_cr8" | "mov_to_cr8" | "toggle_cr0_wp" | "toggle_cr4_pge" => ExitKind::Cr.as_str(),
        "mov_dr" => ExitKind::Dr.as_str(),
        t if t.starts_with("wr_") || t.starts_with("rd_") || t.starts_with("x2apic_") => {
            ExitKind::Msr.as_str()
        }
        "tscdeadline" | "tscdeadline_immed" => ExitKind::Msr.as_str(),
        "wbinvd" | "invd" => "cache-insn",
        "ipi" | "ipi_halt" => "ipi",
        t if t.starts_with("self_ipi") => "apic",
        "ple_round_robin" => "pause",
        t if t.contains("pci-") => "pci",
        _ => "unknown",
    }
}

/// A boot, as recorded in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct BootRecord {
    /// The plan's label.
    pub plan: String,
    /// 1-based boot number within the plan.
    pub boot: usize,
    /// The guest's command line.
    pub cmdline: String,
    /// vCPUs.
    pub smp: u32,
    /// How it ended.
    pub end: KutEnd,
    /// Seconds from start to end.
    pub seconds: f64,
    /// Kernel thread ids of the vCPU threads.
    pub vcpu_tids: Vec<i32>,
    /// The guest's output.
    pub lines: Vec<String>,
    /// The parsed results.
    pub tests: Vec<KutTest>,
    /// Userspace exits served, per device.
    pub userspace_exits: BTreeMap<String, u64>,
}

/// What the kvm-unit-tests part of the report adds.
#[derive(Debug, Clone, Serialize)]
pub struct KutInfo {
    /// The image booted.
    pub kernel: String,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// Caveats about the boots.
    pub notes: Vec<String>,
    /// Every boot.
    pub boots: Vec<BootRecord>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The names a plan's results are reported under: the requested tests, or every test
/// the guest printed (in order) when none were requested.
fn test_names(plan: &BootPlan, tests: &[Vec<KutTest>]) -> Vec<String> {
    if !plan.config.tests.is_empty() {
        return plan.config.tests.clone();
    }
    let mut names: Vec<String> = Vec::new();
    for t in tests.iter().flatten() {
        if !names.contains(&t.name) {
            names.push(t.name.clone());
        }
    }
    names
}

#[allow(clippy::cast_precision_loss)] // cycle and iteration counts far below 2^52
fn result_for(
    name: &str,
    runs: &PlanRuns,
    tests: &[Vec<KutTest>],
    tsc_khz: Option<u32>,
) -> TestResult {
    let found: Vec<Option<&KutTest>> =
        tests.iter().map(|b| b.iter().find(|t| t.name == name)).collect();
    let measured: Vec<&KutTest> = found.iter().flatten().filter(|t| !t.skipped).copied().collect();
    let mut samples: Vec<f64> =
        measured.iter().filter_map(|t| t.cycles).map(|c| c as f64).collect();
    let boots = runs.boots.len();
    let mut reasons: Vec<String> = Vec::new();
    let status = if measured.len() == boots && boots > 0 {
        Status::Ok
    } else if !measured.is_empty() {
        reasons.push(format!("measured in {} of {boots} boots", measured.len()));
        Status::Ok
    } else if found.iter().flatten().any(|t| t.skipped) {
        reasons.push(
            "the guest printed `(skipped)`: its own precondition failed (SMP, x2APIC, TSC \
             deadline, a CPUID bit, or a PCI test device)"
                .into(),
        );
        Status::Skipped
    } else if let Some(b) = runs.boots.iter().zip(&found).find_map(|(b, f)| {
        (f.is_none() && matches!(b.end, KutEnd::Exited { .. } | KutEnd::PoweredOff)).then_some(b)
    }) {
        reasons.push(format!(
            "the guest printed no line for it (kvm-unit-tests ignores unknown test names); it {}",
            b.end.describe()
        ));
        Status::Failed
    } else if let Some(b) = runs.boots.iter().find(|b| matches!(b.end, KutEnd::Timeout { .. })) {
        reasons.push(format!("no result: the guest was {}", b.end.describe()));
        Status::Timeout
    } else {
        let end = runs.boots.first().map(|b| b.end.describe()).unwrap_or_default();
        reasons.push(format!("no result: {end}"));
        Status::Failed
    };
    if status == Status::Ok {
        for b in runs.boots.iter().filter(|b| !b.end.passed()) {
            reasons.push(format!("a boot {}", b.end.describe()));
        }
    }
    let med = |f: &dyn Fn(&KutTest) -> Option<f64>| {
        let mut v: Vec<f64> = measured.iter().filter_map(|t| f(t)).collect();
        median(&mut v)
    };
    let mut stats = BTreeMap::new();
    let keys: std::collections::BTreeSet<&String> =
        measured.iter().flat_map(|t| t.stats_per_iteration.keys()).collect();
    for k in keys {
        if let Some(m) = med(&|t: &KutTest| t.stats_per_iteration.get(k).copied()) {
            stats.insert(k.clone(), m);
        }
    }
    let mut extras: BTreeMap<&String, Vec<f64>> = BTreeMap::new();
    for t in &measured {
        for (k, v) in &t.extras {
            extras.entry(k).or_default().push(*v as f64);
        }
    }
    for (k, mut v) in extras {
        if let Some(m) = median(&mut v) {
            reasons.push(format!("the guest also printed {k} {m:.0} cycles per iteration"));
        }
    }
    if let Some(t) = measured.iter().find(|t| !t.prefix.is_empty()) {
        reasons.push(format!(
            "the guest printed {} digit(s) before its result: iterations where the interrupt \
             had not arrived yet (x != 1; vmexit prints x)",
            t.prefix.len()
        ));
    }
    if let Some(o) = med(&|t: &KutTest| t.other_vcpus_exits_per_iteration) {
        reasons.push(format!("the other vCPUs took {o:.2} exits per iteration"));
    }
    if !measured.is_empty() && measured.iter().any(|t| t.iterations.is_none()) {
        reasons.push(
            "exits per iteration unavailable: the image has no `iterations` symbol to count \
             the guest's iterations with"
                .into(),
        );
    }
    let cycles_median = median(&mut samples.clone());
    samples.sort_by(f64::total_cmp);
    let iterations = {
        // The guest's last-round count of the median boot (they rarely differ).
        let mut v: Vec<u64> = measured.iter().filter_map(|t| t.iterations).collect();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
    };
    // The same interval as the built-in benches, over boots (6 or more give one).
    let cycles_median_ci = exitscope_stats::Samples::from_values(samples.iter().copied())
        .and_then(|s| s.median_ci(exitscope_stats::DEFAULT_CONFIDENCE))
        .ok()
        .flatten();
    TestResult {
        iterations,
        cycles_median,
        cycles_median_ci,
        cycles_min: samples.first().copied(),
        cycles_max: samples.last().copied(),
        ns_median: cycles_median.zip(tsc_khz).map(|(c, khz)| c * 1e6 / f64::from(khz.max(1))),
        exits_per_iteration: med(&|t: &KutTest| t.exits_per_iteration),
        samples: measured.iter().filter_map(|t| t.cycles).map(|c| c as f64).collect(),
        stats_per_iteration: stats,
        userspace_exits_per_iteration: med(&|t: &KutTest| t.userspace_exits_per_iteration),
        seconds: measured.iter().map(|t| t.window_seconds).sum(),
        ..TestResult::named(
            name,
            exit_kind(name),
            Cpl::Zero,
            status,
            (!reasons.is_empty()).then(|| reasons.join("; ")),
        )
    }
}

/// The plan (label, vCPUs) of each entry of [`summarize`]'s `results`, in the same order.
pub fn result_plans(runs: &[PlanRuns]) -> Vec<(String, u32)> {
    let mut v = Vec::new();
    for r in runs {
        let tests: Vec<Vec<KutTest>> = r.boots.iter().map(KutOutcome::tests).collect();
        for _ in test_names(&r.plan, &tests) {
            v.push((r.plan.label.clone(), r.plan.config.smp));
        }
    }
    v
}

/// Summarises every plan's boots into the bench report (`source` = kvm-unit-tests).
pub fn summarize(runs: &[PlanRuns], host: &HostInfo, kernel: &Path, repeat: u32) -> Report {
    let mut results = Vec::new();
    let mut boots = Vec::new();
    let mut notes = Vec::new();
    let mut timeout = 0.0f64;
    for r in runs {
        notes.extend(r.plan.notes.iter().cloned());
        timeout = timeout.max(r.plan.config.timeout.as_secs_f64());
        let tests: Vec<Vec<KutTest>> = r.boots.iter().map(KutOutcome::tests).collect();
        let tsc = r.boots.iter().find_map(|b| b.tsc_khz).or(host.tsc_khz);
        for name in test_names(&r.plan, &tests) {
            results.push(result_for(&name, r, &tests, tsc));
        }
        for (i, (b, t)) in r.boots.iter().zip(tests).enumerate() {
            boots.push(BootRecord {
                plan: r.plan.label.clone(),
                boot: i + 1,
                cmdline: b.cmdline.clone(),
                smp: r.plan.config.smp,
                end: b.end.clone(),
                seconds: b.seconds,
                vcpu_tids: b.vcpu_tids.clone(),
                lines: b
                    .lines
                    .iter()
                    .map(|l| l.text.clone())
                    .chain(b.partial_line.clone())
                    .collect(),
                tests: t,
                userspace_exits: b
                    .userspace_exits
                    .iter()
                    .map(|(d, n)| (d.as_str().to_string(), *n))
                    .collect(),
            });
        }
    }
    let mem_mib = runs.first().map_or(super::boot::DEFAULT_MEM_MIB, |r| r.plan.config.mem_mib);
    Report {
        source: SOURCE.into(),
        min_cycles: GUEST_GOAL_CYCLES,
        repeat,
        timeout_seconds: timeout,
        load_average_after: crate::host::load_average(),
        results,
        kut: Some(KutInfo { kernel: kernel.display().to_string(), mem_mib, notes, boots }),
        ..Report::new(host.clone(), mode(host.kvm_flavour))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kut::results::{GuestLine, Mark};

    fn outcome(lines: &[&str], end: KutEnd) -> KutOutcome {
        KutOutcome {
            end,
            lines: lines
                .iter()
                .map(|t| GuestLine {
                    text: (*t).into(),
                    vcpu: 0,
                    at: Duration::from_secs(1),
                    mark: Mark::default(),
                })
                .collect(),
            partial_line: None,
            start_mark: Mark::default(),
            stats_layout: None,
            vcpu_tids: vec![42],
            tsc_khz: Some(2_000_000),
            userspace_exits: Vec::new(),
            seconds: 1.0,
            cmdline: "vmexit.flat cpuid".into(),
            stuck_vcpus: Vec::new(),
        }
    }

    fn pass() -> KutEnd {
        KutEnd::Exited { code: 0, status: 1 }
    }

    fn host() -> HostInfo {
        HostInfo { tsc_khz: Some(2_000_000), kvm_flavour: Flavour::Pvm, ..HostInfo::detect() }
    }

    #[test]
    fn boots_become_median_min_max_and_statuses() {
        let plan = BootPlan {
            label: "command line".into(),
            config: KutConfig::new("vmexit.flat").with_tests(["cpuid", "vmcall", "ipi", "nope"]),
            notes: vec![],
        };
        let boots = vec![
            outcome(&["cpuid 100", "ipi (skipped)"], pass()),
            outcome(&["cpuid 300", "ipi (skipped)"], pass()),
            outcome(&["cpuid 200"], KutEnd::Timeout { after_seconds: 90.0, vcpus: vec![] }),
        ];
        let hang = BootPlan {
            label: "hang".into(),
            config: KutConfig::new("vmexit.flat").with_tests(["vmcall"]),
            notes: vec![],
        };
        let hung = vec![outcome(&[], KutEnd::Timeout { after_seconds: 9.0, vcpus: vec![] })];
        let r = summarize(
            &[PlanRuns { plan, boots }, PlanRuns { plan: hang, boots: hung }],
            &host(),
            Path::new("vmexit.flat"),
            3,
        );
        assert_eq!(r.source, "kvm-unit-tests");
        assert!(r.mode.emulated);
        let by = |n: &str| r.results.iter().find(|t| t.test == n).unwrap();
        let cpuid = by("cpuid");
        assert_eq!(cpuid.status, Status::Ok);
        assert_eq!(
            (cpuid.cycles_median, cpuid.cycles_min, cpuid.cycles_max),
            (Some(200.0), Some(100.0), Some(300.0))
        );
        assert_eq!(cpuid.samples, [100.0, 300.0, 200.0]);
        assert_eq!(cpuid.ns_median, Some(100.0));
        assert!(cpuid.reason.as_deref().unwrap().contains("deadline"), "{:?}", cpuid.reason);
        assert_eq!(cpuid.exit_kind, "cpuid");
        assert_eq!(r.results[1].status, Status::Failed, "printed no line in a passing boot");
        assert_eq!(r.results[4].test, "vmcall");
        assert_eq!(r.results[4].status, Status::Timeout);
        assert!(r.results[4].reason.as_deref().unwrap().contains("9 s deadline"));
        assert_eq!(by("ipi").status, Status::Skipped);
        assert_eq!(by("nope").status, Status::Failed);
        let kut = r.kut.unwrap();
        assert_eq!(kut.boots.len(), 4);
        assert_eq!(kut.boots[0].lines, ["cpuid 100", "ipi (skipped)"]);
    }

    #[test]
    fn cfg_entries_become_plans_with_their_smp_args_and_notes() {
        let entries = cfg::parse(
            "[vmexit_cpuid]\nfile = vmexit.flat\ntest_args = 'cpuid'\ngroups = vmexit\n\n\
             [vmexit_ipi]\nfile = vmexit.flat\nsmp = 2\ntest_args = 'ipi'\n\
             qemu_params = -machine pit=off\ntimeout = 30\ngroups = vmexit\n\n\
             [other]\nfile = other.flat\n",
        )
        .unwrap();
        let base = KutConfig::new("vmexit.flat");
        let plans = plans_from_cfg(&entries, &base, &[]).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[1].config.smp, 2);
        assert_eq!(plans[1].config.tests, ["ipi"]);
        assert_eq!(plans[1].config.timeout, Duration::from_secs(30));
        assert!(plans[1].notes[0].contains("pit=off"));
        let only = plans_from_cfg(&entries, &base, &["ipi".into()]).unwrap();
        assert_eq!(only.len(), 1);
        assert!(plans_from_cfg(&entries, &base, &["nope".into()]).unwrap_err().contains("nope"));
    }

    #[test]
    fn exit_kinds_cover_the_vmexit_tests() {
        for t in ["cpuid", "inl_from_kernel", "inl_from_qemu", "mov_dr", "rd_tsc_adjust_msr", "ipi"]
        {
            assert_ne!(exit_kind(t), "unknown", "{t}");
        }
        assert_eq!(exit_kind("inl_from_qemu"), "io-user");
    }
}
