//! Measurement: kvm-unit-tests' method (double the iterations until the loop takes at
//! least `min_cycles`), minus an empty-loop baseline, repeated; each test on its own vCPU
//! thread with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use exitscope_guest::{Benchmark, ExitKind, Op, Vendor};
use exitscope_host::VcpuPlacement;
use exitscope_stats::{DEFAULT_CONFIDENCE, Interval, Samples, WIDE_CI_FRACTION};
use serde::Serialize;
use vmm_sys_util::signal::Killable;

use crate::host::{Flavour, HostInfo};
use crate::vm::{BenchVm, Cpl, FaultInfo, LoopKind, OpenError, Round, RunError, StopHandle};

/// kvm-unit-tests' goal: 2^30 TSC cycles per measured loop.
pub const DEFAULT_MIN_CYCLES: u64 = 1 << 30;
/// Default number of repeats: 10 gives a distribution-free 95 % interval for the median
/// ([x₍₂₎, x₍₉₎], coverage 97.9 %); 5 cannot give one at all (93.75 % at most).
pub const DEFAULT_REPEAT: u32 = 10;
/// How `cycles_median_ci` is computed (also in the report's JSON).
pub const MEDIAN_CI_METHOD: &str = "distribution-free order-statistics interval of the median \
    over the repeats: [x(l), x(n+1-l)] with l from Binomial(n, 1/2), coverage >= 95 % \
    (needs at least 6 repeats)";
/// Default deadline per test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// kvm-unit-tests starts at 64 iterations.
const FIRST_ITERATIONS: u64 = 64;
/// Upper bound on iterations in one round (stops runaway doubling of a no-op loop).
const MAX_ITERATIONS: u64 = 1 << 40;

/// Environment variable that overrides the KVM device path (tests use a missing path).
pub const KVM_DEVICE_ENV: &str = "EXITSCOPE_KVM_DEVICE";

/// `/dev/kvm`, or the path in `EXITSCOPE_KVM_DEVICE`.
pub fn default_kvm_device() -> PathBuf {
    std::env::var_os(KVM_DEVICE_ENV).map_or_else(|| PathBuf::from("/dev/kvm"), PathBuf::from)
}

/// How to run benchmarks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Force CPL0 or CPL3; `None` picks by host (CPL3 on PVM, CPL0 elsewhere).
    pub cpl: Option<Cpl>,
    /// Each measured loop runs at least this many TSC cycles.
    pub min_cycles: u64,
    /// Number of measured loops per test.
    pub repeat: u32,
    /// Wall-clock deadline per test; a test still running then is stopped.
    pub timeout: Duration,
    /// KVM device.
    pub kvm_device: PathBuf,
    /// Pin each vCPU thread to this CPU; `None` leaves placement to the scheduler.
    pub pin: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cpl: None,
            min_cycles: DEFAULT_MIN_CYCLES,
            repeat: DEFAULT_REPEAT,
            timeout: DEFAULT_TIMEOUT,
            kvm_device: default_kvm_device(),
            pin: None,
        }
    }
}

impl Options {
    /// Sets the CPL override.
    #[must_use]
    pub fn with_cpl(mut self, cpl: Option<Cpl>) -> Self {
        self.cpl = cpl;
        self
    }
    /// Sets the cycle goal per measured loop.
    #[must_use]
    pub fn with_min_cycles(mut self, min_cycles: u64) -> Self {
        self.min_cycles = min_cycles.max(1);
        self
    }
    /// Sets the number of repeats.
    #[must_use]
    pub fn with_repeat(mut self, repeat: u32) -> Self {
        self.repeat = repeat.max(1);
        self
    }
    /// Sets the deadline per test.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Pins the vCPU threads to `cpu` (or not, with `None`).
    #[must_use]
    pub fn with_pin(mut self, cpu: Option<u32>) -> Self {
        self.pin = cpu;
        self
    }
    /// Sets the KVM device path.
    #[must_use]
    pub fn with_kvm_device(mut self, path: impl Into<PathBuf>) -> Self {
        self.kvm_device = path.into();
        self
    }
}

/// Which CPL runs and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// The privilege level of the benchmark loops.
    #[serde(serialize_with = "ser_cpl")]
    pub cpl: Cpl,
    /// Why this level was chosen.
    pub reason: String,
    /// True if CPL0 code is emulated rather than run (PVM): its numbers are not exits.
    pub emulated: bool,
}

fn ser_cpl<S: serde::Serializer>(c: &Cpl, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(c.as_u8())
}

/// Picks the CPL for `flavour`, honouring an explicit request.
pub fn decide_mode(flavour: Flavour, requested: Option<Cpl>) -> Mode {
    let pvm = flavour == Flavour::Pvm;
    match (requested, pvm) {
        (Some(Cpl::Zero), true) => Mode {
            cpl: Cpl::Zero,
            reason:
                "--cpl 0 requested; on this PVM host CPL0 guest code is emulated instruction by \
                     instruction, so the numbers measure the emulator, not VM exits"
                    .into(),
            emulated: true,
        },
        (Some(cpl), _) => {
            Mode { cpl, reason: format!("--cpl {} requested", cpl.as_u8()), emulated: false }
        }
        (None, true) => Mode {
            cpl: Cpl::Three,
            reason: "PVM host (/sys/module/kvm_pvm present): CPL0 guest code is emulated \
                     instruction by instruction, CPL3 runs natively and port I/O and MMIO (and \
                     CPUID where the host intercepts it) are real exits"
                .into(),
            emulated: false,
        },
        (None, false) => Mode {
            cpl: Cpl::Zero,
            reason: format!("{} host: loops run at CPL0 like kvm-unit-tests", flavour.as_str()),
            emulated: false,
        },
    }
}

/// Outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Measured.
    Ok,
    /// Not run (e.g. needs CPL0 in CPL3 mode).
    Skipped,
    /// Stopped by the deadline.
    Timeout,
    /// Setup failed, the guest faulted, or KVM returned an error.
    Failed,
}

impl Status {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Timeout => "timeout",
            Status::Failed => "failed",
        }
    }
}

/// Result of one test, serialized as one element of the report's `"results"`.
///
/// Cycle figures are TSC cycles per iteration with the empty-loop baseline subtracted;
/// they are `null` when nothing was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// Test name.
    pub test: String,
    /// CPL the loop ran (or would have run) at.
    pub cpl: u8,
    /// Outcome.
    pub status: Status,
    /// Why it was skipped or failed, or a caveat about an ok result.
    pub reason: Option<String>,
    /// Iterations per measured loop.
    pub iterations: u64,
    /// Median over the repeats of cycles per iteration.
    pub cycles_median: Option<f64>,
    /// Minimum over the repeats.
    pub cycles_min: Option<f64>,
    /// Maximum over the repeats.
    pub cycles_max: Option<f64>,
    /// 95 % confidence interval of `cycles_median` ([`MEDIAN_CI_METHOD`]); `null` with fewer
    /// than 6 repeats.
    pub cycles_median_ci: Option<Interval>,
    /// Set when the interval is missing or wider than 5 % of the median: the run cannot show
    /// a change of that size.
    pub ci_warning: Option<String>,
    /// Median in nanoseconds (from `KVM_GET_TSC_KHZ`).
    pub ns_median: Option<f64>,
    /// KVM `exits` counter per iteration, from the vCPU stats fd (the done-port exit that
    /// ends each loop is not counted).
    pub exits_per_iteration: Option<f64>,
    /// What each iteration is expected to cause.
    pub exit_kind: String,
    /// Baseline (empty loop) cycles per iteration that were subtracted.
    pub baseline_cycles: Option<f64>,
    /// Cycles per iteration of each repeat.
    pub samples: Vec<f64>,
    /// Every KVM counter that moved, per iteration (`io_exits`, `mmio_exits`, ...).
    pub stats_per_iteration: BTreeMap<String, f64>,
    /// Exits that reached exitscope's userspace loop, per iteration.
    pub userspace_exits_per_iteration: Option<f64>,
    /// The guest exception, when the test failed with one.
    pub fault: Option<FaultInfo>,
    /// Wall time exitscope's userspace loop spends per userspace exit between `KVM_RUN`
    /// calls, in ns, from one extra instrumented round (tests with userspace exits only).
    pub vmm_loop_ns_per_exit: Option<f64>,
    /// CPU time of the vCPU thread in user mode per iteration, in ns, over all benchmark
    /// rounds, at /proc tick resolution (10 ms). On PVM hosts the guest's native CPL3 code
    /// is accounted here too.
    pub vmm_user_ns_per_iteration: Option<f64>,
    /// CPU time of the vCPU thread in the kernel (KVM_RUN, the guest) per iteration, ns.
    pub vmm_system_ns_per_iteration: Option<f64>,
    /// CPUs the vCPU thread was seen on, sampled before and after every measured loop.
    pub vcpu_cpus: Vec<u32>,
    /// Wall-clock seconds the test took.
    pub seconds: f64,
}

impl TestResult {
    fn empty(bench: &Benchmark, cpl: Cpl, status: Status, reason: Option<String>) -> Self {
        Self::named(bench.name, bench.exit_kind.as_str(), cpl, status, reason)
    }

    /// A result with nothing measured yet; other modules fill in what they measured with
    /// struct-update syntax, so fields added here later get their defaults.
    pub(crate) fn named(
        test: &str,
        exit_kind: &str,
        cpl: Cpl,
        status: Status,
        reason: Option<String>,
    ) -> Self {
        TestResult {
            test: test.to_string(),
            cpl: cpl.as_u8(),
            status,
            reason,
            iterations: 0,
            cycles_median: None,
            cycles_min: None,
            cycles_max: None,
            cycles_median_ci: None,
            ci_warning: None,
            ns_median: None,
            exits_per_iteration: None,
            exit_kind: exit_kind.to_string(),
            baseline_cycles: None,
            samples: Vec::new(),
            stats_per_iteration: BTreeMap::new(),
            userspace_exits_per_iteration: None,
            fault: None,
            vmm_loop_ns_per_exit: None,
            vmm_user_ns_per_iteration: None,
            vmm_system_ns_per_iteration: None,
            vcpu_cpus: Vec::new(),
            seconds: 0.0,
        }
    }
}

/// Opens KVM once and reads the host facts, including the TSC rate from a throwaway vCPU.
///
/// # Errors
///
/// [`OpenError`] when the KVM device is missing or not permitted.
pub fn probe(opts: &Options) -> Result<HostInfo, OpenError> {
    let kvm = crate::vm::open_kvm(&opts.kvm_device)?;
    let mut host = HostInfo::detect();
    host.tsc_khz = kvm.create_vm().ok().and_then(|vm| {
        let vcpu = vm.create_vcpu(0).ok()?;
        vcpu.get_tsc_khz().ok()
    });
    if host.tsc_khz.is_some() {
        host.fingerprint.tsc.khz = host.tsc_khz;
        host.fingerprint.tsc.khz_source = Some("KVM_GET_TSC_KHZ".into());
    }
    Ok(host)
}

/// Runs the test `name` with `opts`: detects the host, picks the CPL and measures.
/// Unknown names give a `failed` result.
///
/// # Errors
///
/// [`OpenError`] when KVM is unavailable.
pub fn run_test(name: &str, opts: &Options) -> Result<TestResult, OpenError> {
    let host = probe(opts)?;
    let mode = decide_mode(host.kvm_flavour, opts.cpl);
    Ok(match exitscope_guest::find(name) {
        Some(bench) => run_benchmark(bench, &mode, &host, opts),
        None => TestResult::named(
            name,
            "unknown",
            mode.cpl,
            Status::Failed,
            Some(format!("unknown test {name:?}")),
        ),
    })
}

/// Why `bench` cannot run in `mode`, if it cannot.
pub fn skip_reason(bench: &Benchmark, mode: &Mode) -> Option<String> {
    (bench.needs_cpl0 && mode.cpl == Cpl::Three).then(|| {
        "needs CPL0 (privileged instruction) but the loops run at CPL3; --cpl 0 runs it \
         (on PVM it is then emulated, not a VM exit)"
            .to_string()
    })
}

/// A caveat attached to an ok result, from the mode and the exits actually counted.
fn caveat(bench: &Benchmark, mode: &Mode, host: &HostInfo, r: &TestResult) -> Option<String> {
    if mode.emulated {
        return Some("CPL0 on PVM: emulated by KVM's instruction emulator, not a VM exit".into());
    }
    let exits = r.exits_per_iteration?;
    if bench.exit_kind != ExitKind::None && exits < 0.5 {
        let mut why = format!(
            "expected one {} exit per iteration but KVM counted {exits:.2}: the operation does not \
             exit to this KVM",
            bench.exit_kind.as_str()
        );
        if host.kvm_flavour == Flavour::Pvm && bench.op == Op::Cpuid {
            why.push_str(
                "; on PVM, CPL3 CPUID is only intercepted with CPUID faulting, which this host \
                 lacks (no cpuid_fault flag in /proc/cpuinfo), so the cost is the L0 \
                 hypervisor's CPUID exit",
            );
        }
        if host.kvm_flavour == Flavour::Pvm && bench.op == Op::Vmcall {
            why.push_str(
                "; on PVM a CPL3 VMCALL/VMMCALL traps to the L0 hypervisor, so the cost is L0's",
            );
        }
        return Some(why);
    }
    None
}

/// Runs `bench` in `mode` on its own vCPU thread, stopping it after `opts.timeout`.
pub fn run_benchmark(
    bench: &'static Benchmark,
    mode: &Mode,
    host: &HostInfo,
    opts: &Options,
) -> TestResult {
    let started = Instant::now();
    if let Some(reason) = skip_reason(bench, mode) {
        return TestResult::empty(bench, mode.cpl, Status::Skipped, Some(reason));
    }
    let signal = match crate::sys::kick_signal() {
        Ok(s) => s,
        Err(e) => return TestResult::empty(bench, mode.cpl, Status::Failed, Some(e)),
    };
    let stop = StopHandle::default();
    let (tx, rx) = mpsc::channel();
    let thread_opts = opts.clone();
    let thread_stop = stop.clone();
    let vendor = if host.amd { Vendor::Amd } else { Vendor::Intel };
    let cpl = mode.cpl;
    let spawned = thread::Builder::new().name(format!("vcpu-{}", bench.name)).spawn(move || {
        let _ = tx.send(measure(bench, cpl, vendor, &thread_opts, thread_stop));
    });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            return TestResult::empty(bench, cpl, Status::Failed, Some(format!("spawning: {e}")));
        }
    };

    let outcome = match rx.recv_timeout(opts.timeout) {
        Ok(m) => {
            let _ = handle.join();
            Some(m)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            None
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            stop.stop();
            // Kick until the thread notices: a signal sent between its stop check and the
            // next KVM_RUN would be lost, so repeat it.
            let give_up = Instant::now() + Duration::from_secs(5);
            let mut finished = false;
            while Instant::now() < give_up {
                let _ = handle.kill(signal);
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        finished = true;
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
            if finished {
                let _ = handle.join();
            }
            let mut r = TestResult::empty(
                bench,
                cpl,
                Status::Timeout,
                Some(format!(
                    "did not finish within the {:.1} s deadline; the vCPU was {}",
                    opts.timeout.as_secs_f64(),
                    if finished { "stopped" } else { "left running (could not be kicked)" }
                )),
            );
            r.seconds = started.elapsed().as_secs_f64();
            return r;
        }
    };

    let mut r = match outcome {
        Some(Ok(m)) => {
            let mut r = m.into_result(bench, cpl, host, None);
            r.reason = caveat(bench, mode, host, &r);
            r
        }
        Some(Err(e)) => {
            let mut r = TestResult::empty(bench, cpl, Status::Failed, Some(e.to_string()));
            if let MeasureError::Run(RunError::Fault(f)) = e {
                r.fault = Some(f);
            }
            r
        }
        None => TestResult::empty(bench, cpl, Status::Failed, Some("vCPU thread panicked".into())),
    };
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// Errors inside the vCPU thread.
#[derive(Debug, thiserror::Error)]
enum MeasureError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("setup: {0}")]
    Setup(#[from] crate::vm::SetupError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Pin(String),
}

/// Raw measurements of one test.
#[derive(Debug)]
struct Measured {
    iterations: u64,
    baseline: f64,
    samples: Vec<f64>,
    /// Rounds whose stats were summed, and their iterations.
    rounds: u64,
    counted_iterations: u64,
    stats: BTreeMap<String, u64>,
    /// Counter deltas of one round that are not caused by its loop.
    overhead: BTreeMap<String, u64>,
    userspace_exits: u64,
    tsc_khz: Option<u32>,
    /// Iterations of every benchmark round, calibration included.
    all_iterations: u64,
    /// (user, system) clock ticks of the vCPU thread over those rounds.
    cpu_ticks: Option<(u64, u64)>,
    /// False if KVM_GET_STATS_FD is unavailable (kernels before 5.14).
    have_stats: bool,
    vmm_loop_ns_per_exit: Option<f64>,
    /// CPUs the thread was seen on.
    cpus_seen: BTreeSet<u32>,
    /// True if the thread was pinned (`--pin`).
    pinned: bool,
}

/// USER_HZ: /proc reports thread CPU time in units of 10 ms on Linux.
const NS_PER_TICK: f64 = 1e7;

/// (utime, stime) of the calling thread in clock ticks, from /proc/thread-self/stat.
fn thread_cpu_ticks() -> Option<(u64, u64)> {
    parse_stat_times(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// Fields 14 and 15 (utime, stime) of a /proc stat line; the command name may contain
/// spaces and parentheses, so count from the last ')'.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// The CPU the calling thread last ran on (field 39 of /proc/thread-self/stat).
fn thread_cpu() -> Option<u32> {
    parse_stat_cpu(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

fn parse_stat_cpu(stat: &str) -> Option<u32> {
    // Field 39 is the 37th after the ')' that ends field 2.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(36)?.parse().ok()
}

#[allow(clippy::cast_precision_loss)] // cycle counts far below 2^52
fn per_iter(total: u64, iterations: u64) -> f64 {
    total as f64 / iterations.max(1) as f64
}

/// Doubles the iterations from 64 until a round of `kind` takes at least `goal` cycles.
fn calibrate(vm: &mut BenchVm, kind: LoopKind, goal: u64) -> Result<Round, RunError> {
    let mut n = FIRST_ITERATIONS;
    loop {
        let r = vm.run_round(n, kind)?;
        if r.cycles >= goal || n >= MAX_ITERATIONS {
            return Ok(r);
        }
        n *= 2;
    }
}

fn measure(
    bench: &Benchmark,
    cpl: Cpl,
    vendor: Vendor,
    opts: &Options,
    stop: StopHandle,
) -> Result<Measured, MeasureError> {
    if let Some(cpu) = opts.pin {
        crate::sys::pin_current_thread(cpu).map_err(MeasureError::Pin)?;
    }
    let first_cpu = thread_cpu();
    let kvm = crate::vm::open_kvm(&opts.kvm_device)?;
    let mut vm = BenchVm::new(&kvm, bench, cpl, vendor)?;
    vm.set_stop_handle(stop);

    // The empty loop is cheap and steady: a quarter of the goal is plenty.
    let base = calibrate(&mut vm, LoopKind::Baseline, (opts.min_cycles / 4).max(1 << 16))?;
    // The fastest of three: preemption of the vCPU thread only ever adds cycles, and a
    // tight loop is most exposed to it relative to its own cost.
    let mut baseline = per_iter(base.cycles, base.iterations);
    for _ in 0..2 {
        let r = vm.run_round(base.iterations, LoopKind::Baseline)?;
        baseline = baseline.min(per_iter(r.cycles, r.iterations));
    }
    // What one round costs in KVM counters besides its loop (the done-port exit and
    // whatever the flavour does around it), measured on the empty loop's last round.
    let overhead = vm
        .stats()
        .map(|s| s.deltas(&base.stats_before, &base.stats_after).into_iter().collect())
        .unwrap_or_default();

    let mut m = Measured {
        iterations: 0,
        baseline,
        samples: Vec::new(),
        rounds: 0,
        counted_iterations: 0,
        stats: BTreeMap::new(),
        overhead,
        userspace_exits: 0,
        tsc_khz: vm.tsc_khz(),
        all_iterations: 0,
        cpu_ticks: None,
        have_stats: vm.stats().is_some(),
        vmm_loop_ns_per_exit: None,
        cpus_seen: first_cpu.into_iter().collect(),
        pinned: opts.pin.is_some(),
    };
    let cpu_before = thread_cpu_ticks();
    let first = calibrate(&mut vm, LoopKind::Bench, opts.min_cycles)?;
    // Calibration ran 64 + 128 + ... + n = 2n - 64 iterations.
    m.all_iterations = (2 * first.iterations).saturating_sub(FIRST_ITERATIONS);
    m.iterations = first.iterations;
    m.add(&vm, &first);
    for _ in 1..opts.repeat.max(1) {
        let r = vm.run_round(m.iterations, LoopKind::Bench)?;
        m.all_iterations += r.iterations;
        m.add(&vm, &r);
    }
    m.cpu_ticks = cpu_before
        .zip(thread_cpu_ticks())
        .map(|(a, b)| (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1)));
    // If the loop exits to userspace, time exitscope's own exit handling in one extra,
    // shorter round (clock reads around KVM_RUN; not part of the numbers above).
    if m.userspace_exits > 2 * m.rounds {
        let r = vm.run_round_timed((m.iterations / 8).max(FIRST_ITERATIONS), LoopKind::Bench)?;
        m.vmm_loop_ns_per_exit =
            r.vmm_loop_ns.map(|ns| per_iter(ns, r.userspace_exits.saturating_sub(1)));
    }
    Ok(m)
}

impl Measured {
    fn add(&mut self, vm: &BenchVm, r: &Round) {
        self.samples.push(per_iter(r.cycles, r.iterations) - self.baseline);
        self.rounds += 1;
        self.counted_iterations += r.iterations;
        self.userspace_exits += r.userspace_exits;
        self.cpus_seen.extend(thread_cpu());
        if let Some(s) = vm.stats() {
            for (name, d) in s.deltas(&r.stats_before, &r.stats_after) {
                *self.stats.entry(name).or_default() += d;
            }
        }
    }

    fn into_result(
        self,
        bench: &Benchmark,
        cpl: Cpl,
        host: &HostInfo,
        reason: Option<String>,
    ) -> TestResult {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = median(&sorted);
        let tsc_khz = self.tsc_khz.or(host.tsc_khz);
        // Every round ends with an exit to userspace (the done port), which is not part of
        // the loop: take the per-round overhead measured on the empty loop out.
        let mut stats = self.stats;
        for (key, v) in &mut stats {
            let per_round = self.overhead.get(key).copied().unwrap_or(0);
            *v = v.saturating_sub(per_round.saturating_mul(self.rounds));
        }
        let n = self.counted_iterations;
        let ci = Samples::from_values(self.samples.iter().copied())
            .and_then(|s| s.median_ci(DEFAULT_CONFIDENCE))
            .ok()
            .flatten();
        TestResult {
            iterations: self.iterations,
            cycles_median: median,
            cycles_min: sorted.first().copied(),
            cycles_max: sorted.last().copied(),
            cycles_median_ci: ci,
            ci_warning: ci_warning(bench, self.samples.len(), median, ci, self.pinned),
            ns_median: median.zip(tsc_khz).map(|(c, khz)| c * 1e6 / f64::from(khz.max(1))),
            exits_per_iteration: if self.have_stats {
                Some(stats.get("exits").map_or(0.0, |e| per_iter(*e, n)))
            } else {
                None
            },
            baseline_cycles: Some(self.baseline),
            samples: self.samples,
            stats_per_iteration: stats.iter().map(|(k, v)| (k.clone(), per_iter(*v, n))).collect(),
            userspace_exits_per_iteration: Some(per_iter(
                self.userspace_exits.saturating_sub(self.rounds),
                n,
            )),
            vmm_loop_ns_per_exit: self.vmm_loop_ns_per_exit,
            vmm_user_ns_per_iteration: self
                .cpu_ticks
                .map(|(u, _)| per_iter(u, self.all_iterations) * NS_PER_TICK),
            vmm_system_ns_per_iteration: self
                .cpu_ticks
                .map(|(_, s)| per_iter(s, self.all_iterations) * NS_PER_TICK),
            vcpu_cpus: self.cpus_seen.into_iter().collect(),
            ..TestResult::empty(bench, cpl, Status::Ok, reason)
        }
    }
}

/// Why the median's interval cannot show a 5 % change, if it cannot. The empty-loop test is
/// exempt from the relative check: its median is ~0 by construction.
fn ci_warning(
    bench: &Benchmark,
    repeats: usize,
    median: Option<f64>,
    ci: Option<Interval>,
    pinned: bool,
) -> Option<String> {
    let Some(ci) = ci else {
        return Some(format!(
            "{repeats} repeats give no 95 % interval for the median; use --repeat 6 or more \
             (default {DEFAULT_REPEAT})"
        ));
    };
    if bench.exit_kind == ExitKind::None {
        return None;
    }
    let width = ci.relative_width(median?)?;
    (width > WIDE_CI_FRACTION).then(|| {
        format!(
            "95 % interval of the median [{:.1}, {:.1}] spans {:.1} % of it (> {:.0} %): a \
             smaller change cannot be seen; {}raise --repeat or quiet the machine",
            ci.low,
            ci.high,
            width * 100.0,
            WIDE_CI_FRACTION * 100.0,
            if pinned { "" } else { "pin the vCPU (--pin), " },
        )
    })
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A whole `exitscope bench` run: host facts, mode and one result per test.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Version of this JSON layout.
    pub schema_version: u32,
    /// Who produced the figures: `exitscope` (the built-in guest loops) or
    /// `kvm-unit-tests` (`bench --kut`: the guest's own printed cycles).
    pub source: String,
    /// The host.
    pub host: HostInfo,
    /// CPL and why.
    pub mode: Mode,
    /// Cycle goal per measured loop.
    pub min_cycles: u64,
    /// Repeats per test.
    pub repeat: u32,
    /// How each result's `cycles_median_ci` is computed.
    pub median_ci_method: &'static str,
    /// Deadline per test, seconds.
    pub timeout_seconds: f64,
    /// Load averages after the run (the ones before are in `host`).
    pub load_average_after: [f64; 3],
    /// One entry per test, in the order run.
    pub results: Vec<TestResult>,
    /// The boots behind the results, for `source` = `kvm-unit-tests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kut: Option<crate::kut::KutInfo>,
}

impl Report {
    /// An empty report for `host` and `mode` with the default settings.
    pub fn new(host: HostInfo, mode: Mode) -> Self {
        Report {
            schema_version: 1,
            source: "exitscope".into(),
            host,
            mode,
            min_cycles: DEFAULT_MIN_CYCLES,
            repeat: DEFAULT_REPEAT,
            median_ci_method: MEDIAN_CI_METHOD,
            timeout_seconds: DEFAULT_TIMEOUT.as_secs_f64(),
            load_average_after: crate::host::load_average(),
            results: Vec::new(),
            kut: None,
        }
    }
}

/// Runs `benches` in order, calling `progress` before and after each test.
///
/// # Errors
///
/// [`OpenError`] when KVM is unavailable (nothing is run then).
pub fn run_suite(
    benches: &[&'static Benchmark],
    opts: &Options,
    mut progress: impl FnMut(&Benchmark, Option<&TestResult>),
) -> Result<Report, OpenError> {
    let mut host = probe(opts)?;
    let mode = decide_mode(host.kvm_flavour, opts.cpl);
    let mut results = Vec::with_capacity(benches.len());
    for bench in benches {
        progress(bench, None);
        let r = run_benchmark(bench, &mode, &host, opts);
        progress(bench, Some(&r));
        results.push(r);
    }
    // vCPU threads inherit the process's affinity unless pinned.
    host.fingerprint.vcpu = Some(VcpuPlacement {
        pinned: opts.pin,
        cpus_allowed: opts.pin.map(|c| c.to_string()).or_else(|| {
            exitscope_host::allowed_cpus().map(|c| exitscope_host::format_cpu_list(&c))
        }),
        // Threads inherit the policy of the thread that spawns them (this one).
        sched: exitscope_host::thread_sched_policy(),
        cpus_seen: results
            .iter()
            .flat_map(|r| r.vcpu_cpus.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    });
    Ok(Report {
        min_cycles: opts.min_cycles,
        repeat: opts.repeat,
        median_ci_method: MEDIAN_CI_METHOD,
        timeout_seconds: opts.timeout.as_secs_f64(),
        results,
        ..Report::new(host, mode)
    })
}

/// Runs `iterations` of `bench`'s loop once in the calling thread, in a fresh VM, and
/// returns the round (cycles and KVM stats around it). This is the hook for tracers
/// (`exitscope record --bench`): start tracing, call this, stop tracing.
///
/// # Errors
///
/// KVM unavailable, setup failure, or a run error (a fault, for instance).
pub fn run_iterations(
    bench: &Benchmark,
    cpl: Cpl,
    iterations: u64,
    opts: &Options,
) -> Result<Round, Box<dyn std::error::Error + Send + Sync>> {
    let kvm = crate::vm::open_kvm(&opts.kvm_device)?;
    let host = HostInfo::detect();
    let vendor = if host.amd { Vendor::Amd } else { Vendor::Intel };
    let mut vm = BenchVm::new(&kvm, bench, cpl, vendor)?;
    Ok(vm.run_round(iterations, LoopKind::Bench)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_defaults_by_flavour_and_honours_overrides() {
        let m = decide_mode(Flavour::Pvm, None);
        assert_eq!(m.cpl, Cpl::Three);
        assert!(m.reason.contains("PVM"));
        assert_eq!(decide_mode(Flavour::Vmx, None).cpl, Cpl::Zero);
        assert_eq!(decide_mode(Flavour::Svm, None).cpl, Cpl::Zero);
        let forced = decide_mode(Flavour::Pvm, Some(Cpl::Zero));
        assert!(forced.emulated && forced.reason.contains("--cpl 0"));
        assert!(!decide_mode(Flavour::Vmx, Some(Cpl::Three)).emulated);
    }

    #[test]
    fn privileged_tests_skip_at_cpl3() {
        let m = decide_mode(Flavour::Pvm, None);
        let cr8 = exitscope_guest::find("mov_from_cr8").unwrap();
        assert!(skip_reason(cr8, &m).unwrap().contains("CPL0"));
        assert!(skip_reason(exitscope_guest::find("cpuid").unwrap(), &m).is_none());
        assert!(skip_reason(cr8, &decide_mode(Flavour::Vmx, None)).is_none());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
    }

    #[test]
    fn result_subtracts_the_done_exit_and_converts_to_ns() {
        let bench = exitscope_guest::find("cpuid").unwrap();
        let m = Measured {
            iterations: 100,
            baseline: 1.0,
            samples: vec![101.0, 99.0, 100.0],
            rounds: 3,
            counted_iterations: 300,
            stats: BTreeMap::from([("exits".into(), 303), ("io_exits".into(), 3)]),
            overhead: BTreeMap::from([("exits".into(), 1), ("io_exits".into(), 1)]),
            userspace_exits: 3,
            tsc_khz: Some(2_000_000),
            all_iterations: 1000,
            cpu_ticks: Some((1, 3)),
            have_stats: true,
            vmm_loop_ns_per_exit: None,
            cpus_seen: BTreeSet::from([1]),
            pinned: false,
        };
        let host = HostInfo { tsc_khz: None, ..HostInfo::detect() };
        let r = m.into_result(bench, Cpl::Three, &host, None);
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.cycles_median, Some(100.0));
        assert_eq!((r.cycles_min, r.cycles_max), (Some(99.0), Some(101.0)));
        assert_eq!(r.ns_median, Some(50.0));
        assert_eq!(r.exits_per_iteration, Some(1.0));
        assert_eq!(r.stats_per_iteration.get("io_exits"), Some(&0.0));
        assert_eq!(r.userspace_exits_per_iteration, Some(0.0));
        assert_eq!(r.exit_kind, "cpuid");
        assert_eq!(r.vmm_user_ns_per_iteration, Some(10_000.0));
        assert_eq!(r.vmm_system_ns_per_iteration, Some(30_000.0));
        assert_eq!(r.vcpu_cpus, [1]);
        // Three repeats: no 95 % interval, and the result says so.
        assert_eq!(r.cycles_median_ci, None);
        assert!(r.ci_warning.as_deref().unwrap().contains("--repeat 6"));
    }

    #[test]
    fn median_interval_and_its_warning() {
        let bench = exitscope_guest::find("cpuid").unwrap();
        let tight: Vec<f64> = (0..10).map(|i| 1000.0 + f64::from(i)).collect();
        let ci = Samples::from_values(tight.iter().copied()).unwrap().median_ci(0.95).unwrap();
        assert_eq!(ci.map(|c| (c.low, c.high)), Some((1001.0, 1008.0)));
        assert_eq!(ci_warning(bench, 10, Some(1004.5), ci, false), None);
        let wide = Interval { low: 900.0, high: 1100.0, confidence: 0.979 };
        let w = ci_warning(bench, 10, Some(1000.0), Some(wide), false).unwrap();
        assert!(w.contains("20.0 %") && w.contains("--pin"), "{w}");
        let w = ci_warning(bench, 10, Some(1000.0), Some(wide), true).unwrap();
        assert!(!w.contains("--pin"), "already pinned: {w}");
        // The empty loop's median is ~0: only a missing interval is worth a warning there.
        let nop = exitscope_guest::find("nop").unwrap();
        assert_eq!(ci_warning(nop, 10, Some(0.1), Some(wide), false), None);
        assert!(ci_warning(nop, 3, Some(0.1), None, false).is_some());
    }

    #[test]
    fn stat_times_survive_odd_thread_names() {
        let line = "123 (vcpu-a) b) S 1 2 3 4 5 6 7 8 9 10 42 17 0 0 20 0 1 0";
        assert_eq!(parse_stat_times(line), Some((42, 17)));
        assert_eq!(parse_stat_times("garbage"), None);
        let full = "123 (vcpu-a) b) S 1 2 3 4 5 6 7 8 9 10 42 17 0 0 20 0 1 0 \
                    100 200 300 400 500 600 700 800 900 1000 1100 1200 1300 1400 1500 1600 17 7 0";
        assert_eq!(parse_stat_cpu(full), Some(7));
        assert_eq!(parse_stat_cpu("1 (x) S 2"), None);
        let mine = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let online = exitscope_host::allowed_cpus().unwrap();
        assert!(online.contains(&parse_stat_cpu(&mine).unwrap()), "{mine}");
    }
}
