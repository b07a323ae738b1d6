//! Booting a kvm-unit-tests image: the machine (RAM, in-kernel irqchip, N vCPUs with
//! KVM's CPUID, the multiboot state on vCPU 0), one thread per vCPU running exitscope's
//! exit loop, and the handle that starts, stops and waits for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_regs};
use kvm_ioctls::VcpuExit;
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::signal::Killable;

use super::devices::{self, Device, Event, PortBus};
use super::multiboot::{self, BootInfoError, Elf32, ImageError};
use super::results::{self, GuestLine, KutTest, Mark};
use crate::arch;
use crate::stats::{StatsLayout, StatsReader};
use crate::sys::{OwnedVcpu, SharedVm};
use crate::vm::{OpenError, SetupError};

/// QEMU's default RAM size, which kvm-unit-tests' runner does not change for vmexit.
pub const DEFAULT_MEM_MIB: u32 = 128;
/// kvm-unit-tests' default per-test timeout (`unittests.cfg`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// Most vCPUs a boot may have.
pub const MAX_VCPUS: u32 = 64;
/// RAM must end below the 32-bit MMIO hole (IOAPIC at 0xfec00000, LAPIC at 0xfee00000).
pub const MAX_MEM_MIB: u32 = 3072;

/// How to boot a kvm-unit-tests image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KutConfig {
    /// The image (`x86/vmexit.flat`).
    pub kernel: PathBuf,
    /// Test names: the command line after argv\[0\] (none = every test).
    pub tests: Vec<String>,
    /// argv\[0\]: kvm-unit-tests skips the first word; QEMU passes the kernel path there.
    pub program_name: String,
    /// vCPUs (`-smp`).
    pub smp: u32,
    /// RAM in MiB (`-m`).
    pub mem_mib: u32,
    /// Extra `KEY=VAL` environment for the guest, after `NR_CPUS` and `MEMSIZE`.
    pub env: Vec<(String, String)>,
    /// Wall-clock deadline from [`KutRun::start`]; a guest still running then is
    /// stopped and the outcome is [`KutEnd::Timeout`].
    pub timeout: Duration,
    /// KVM device.
    pub kvm_device: PathBuf,
}

impl KutConfig {
    /// Defaults for booting `kernel`: 1 vCPU, 128 MiB, 90 s, every test.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        let kernel = kernel.into();
        let program_name = kernel
            .file_name()
            .map_or_else(|| "kut".to_string(), |n| n.to_string_lossy().replace(' ', "_"));
        KutConfig {
            kernel,
            tests: Vec::new(),
            program_name,
            smp: 1,
            mem_mib: DEFAULT_MEM_MIB,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            kvm_device: crate::bench::default_kvm_device(),
        }
    }
    /// Sets the test names.
    #[must_use]
    pub fn with_tests<S: Into<String>>(mut self, tests: impl IntoIterator<Item = S>) -> Self {
        self.tests = tests.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the vCPU count.
    #[must_use]
    pub fn with_smp(mut self, smp: u32) -> Self {
        self.smp = smp;
        self
    }
    /// Sets the RAM size in MiB.
    #[must_use]
    pub fn with_mem_mib(mut self, mem_mib: u32) -> Self {
        self.mem_mib = mem_mib;
        self
    }
    /// Sets the deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Adds a `KEY=VAL` pair to the guest's environment.
    #[must_use]
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Sets the KVM device path.
    #[must_use]
    pub fn with_kvm_device(mut self, path: impl Into<PathBuf>) -> Self {
        self.kvm_device = path.into();
        self
    }

    /// The kernel command line: argv\[0\] then the test names.
    pub fn cmdline(&self) -> String {
        std::iter::once(self.program_name.as_str())
            .chain(self.tests.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The environment module's text.
    pub fn env_text(&self) -> String {
        let (cpus, mem) = (self.smp.to_string(), self.mem_mib.to_string());
        multiboot::env_text(
            [("NR_CPUS", cpus.as_str()), ("MEMSIZE", mem.as_str())]
                .into_iter()
                .chain(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        )
    }
}

/// Why a boot could not start.
#[derive(Debug, thiserror::Error)]
pub enum KutError {
    /// The image could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The image.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The image is not a loadable multiboot ELF32.
    #[error("{path}: {source}")]
    Image {
        /// The image.
        path: PathBuf,
        /// What is wrong, where.
        source: ImageError,
    },
    /// The configuration is out of range or does not fit the image.
    #[error("{0}")]
    Config(String),
    /// The boot information does not fit.
    #[error(transparent)]
    BootInfo(#[from] BootInfoError),
    /// KVM is unavailable (the environment, not the input).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Creating the VM or a vCPU failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A vCPU thread could not be started.
    #[error("starting the vCPU threads: {0}")]
    Thread(String),
}

/// Where a vCPU was when it was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VcpuState {
    /// vCPU index (0 = the bootstrap processor).
    pub vcpu: usize,
    /// Kernel thread id of its thread.
    pub tid: i32,
    /// RIP, if it could be read.
    pub rip: Option<u64>,
    /// The instruction at RIP, disassembled (`vmmcall`), if it could be read.
    pub instruction: Option<String>,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KutEnd {
    /// The guest wrote `code` to isa-debug-exit (`exit(code)`; `main` returning 0 gives 0).
    Exited {
        /// The value written.
        code: u32,
        /// What QEMU would have exited with, `(code << 1) | 1`; kvm-unit-tests' runner
        /// reads 1 as PASS.
        status: u8,
    },
    /// The guest wrote `Shutdown` to the shutdown port (isa-debug-exit was not used).
    PoweredOff,
    /// A vCPU triple-faulted (`KVM_EXIT_SHUTDOWN`).
    TripleFault {
        /// Which vCPU.
        vcpu: usize,
        /// Its RIP afterwards, if readable.
        rip: Option<u64>,
    },
    /// The deadline passed first; the vCPUs were stopped.
    Timeout {
        /// The deadline, seconds after start.
        after_seconds: f64,
        /// Where each vCPU was.
        vcpus: Vec<VcpuState>,
    },
    /// Stopped through a [`KutStopper`] before the guest finished.
    Stopped {
        /// Where each vCPU was.
        vcpus: Vec<VcpuState>,
    },
    /// KVM failed or the guest did something the VMM does not support.
    Failed {
        /// Which vCPU.
        vcpu: usize,
        /// What happened.
        error: String,
    },
}

/// "vCPU 0 at RIP 0x401000 (vmmcall), ..." for `states`.
fn locate(states: &[VcpuState]) -> String {
    states
        .iter()
        .map(|s| {
            let rip = s.rip.map_or_else(|| "RIP unknown".into(), |r| format!("RIP {r:#x}"));
            match &s.instruction {
                Some(i) => format!("vCPU {} at {rip} ({i})", s.vcpu),
                None => format!("vCPU {} at {rip}", s.vcpu),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl KutEnd {
    /// True when the guest exited through isa-debug-exit with a status kvm-unit-tests'
    /// runner counts as PASS.
    pub fn passed(&self) -> bool {
        matches!(self, KutEnd::Exited { status: 1, .. })
    }

    /// One sentence for reports.
    pub fn describe(&self) -> String {
        let at = locate;
        match self {
            KutEnd::Exited { code, status } => format!(
                "exited through isa-debug-exit with code {code} (QEMU status {status}: {})",
                if *status == 1 { "PASS" } else { "FAIL" }
            ),
            KutEnd::PoweredOff => "powered off through the shutdown port".into(),
            KutEnd::TripleFault { vcpu, rip } => format!(
                "vCPU {vcpu} triple-faulted (KVM_EXIT_SHUTDOWN){}",
                rip.map(|r| format!(" at RIP {r:#x}")).unwrap_or_default()
            ),
            KutEnd::Timeout { after_seconds, vcpus } => {
                format!("still running after the {after_seconds:.0} s deadline: {}", at(vcpus))
            }
            KutEnd::Stopped { vcpus } => format!("stopped: {}", at(vcpus)),
            KutEnd::Failed { vcpu, error } => format!("vCPU {vcpu}: {error}"),
        }
    }
}

/// Everything one boot produced.
#[derive(Debug, Clone)]
pub struct KutOutcome {
    /// How it ended.
    pub end: KutEnd,
    /// Every complete line of serial output, with the counters at its end.
    pub lines: Vec<GuestLine>,
    /// Output after the last newline, if any.
    pub partial_line: Option<String>,
    /// The counters when the vCPUs started.
    pub start_mark: Mark,
    /// Names of the stats counters (None without `KVM_GET_STATS_FD`).
    pub stats_layout: Option<StatsLayout>,
    /// Kernel thread ids of the vCPU threads, by vCPU index.
    pub vcpu_tids: Vec<i32>,
    /// Guest TSC rate (`KVM_GET_TSC_KHZ`).
    pub tsc_khz: Option<u32>,
    /// Userspace exits served per device over the whole boot (all vCPUs).
    pub userspace_exits: Vec<(Device, u64)>,
    /// Wall-clock seconds from start to end.
    pub seconds: f64,
    /// The command line the guest got.
    pub cmdline: String,
    /// vCPUs that could not be stopped (their threads were left behind).
    pub stuck_vcpus: Vec<usize>,
}

impl KutOutcome {
    /// The guest's results, one per `NAME CYCLES` or `NAME (skipped)` line.
    pub fn tests(&self) -> Vec<KutTest> {
        results::analyse(&self.lines, &self.start_mark, self.stats_layout.as_ref())
    }
}

/// A started (or paused) boot. Dropping it stops the guest.
#[derive(Debug)]
pub struct KutRun {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<VcpuState>>,
    tids: Vec<i32>,
    end_rx: Receiver<()>,
    started: Option<Instant>,
    start_mark: Mark,
    timeout: Duration,
    tsc_khz: Option<u32>,
    cmdline: String,
    signal: libc::c_int,
}

/// Stops a [`KutRun`] from any thread.
#[derive(Debug, Clone)]
pub struct KutStopper(Arc<Shared>);

impl KutStopper {
    /// Ends the boot as [`KutEnd::Stopped`] (unless it already ended); the owner of the
    /// [`KutRun`] kicks the vCPUs out of `KVM_RUN` in its wait.
    pub fn stop(&self) {
        self.0.finish(None);
    }
}

/// The gate the vCPU threads wait at until [`KutRun::start`].
#[derive(Debug, Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn open(&self) {
        *lock(&self.open) = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut open = lock(&self.open);
        while !*open {
            open = self.cv.wait(open).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A line sink called from the vCPU thread that completed the line.
type Sink = Box<dyn FnMut(&GuestLine) + Send>;

/// State behind the devices' lock.
struct Devices {
    bus: PortBus,
    lines: Vec<GuestLine>,
    sink: Sink,
    stats: Vec<Option<StatsReader>>,
}

/// What the vCPU threads share.
struct Shared {
    vm: Arc<SharedVm>,
    devices: Mutex<Devices>,
    /// Userspace exits per vCPU per device.
    userspace: Vec<[AtomicU64; Device::COUNT]>,
    stop: AtomicBool,
    end: Mutex<Option<KutEnd>>,
    end_tx: Mutex<Option<Sender<()>>>,
    t0: OnceLock<Instant>,
    iterations_addr: Option<u64>,
    gate: Gate,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("stop", &self.stop).finish_non_exhaustive()
    }
}

impl Shared {
    fn elapsed(&self) -> Duration {
        self.t0.get().map_or(Duration::ZERO, Instant::elapsed)
    }

    fn count(&self, vcpu: usize, d: Device) {
        if let Some(c) = self.userspace.get(vcpu) {
            c[d.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the end (the first one wins; `None` = stopped from outside), stops
    /// every vCPU loop and wakes the waiter.
    fn finish(&self, end: Option<KutEnd>) {
        {
            let mut e = lock(&self.end);
            if e.is_none() {
                *e = Some(end.unwrap_or(KutEnd::Stopped { vcpus: Vec::new() }));
            }
        }
        self.stop.store(true, Ordering::SeqCst);
        self.gate.open();
        if let Some(tx) = lock(&self.end_tx).as_ref() {
            let _ = tx.send(());
        }
    }

    fn mark(&self, stats: &mut [Option<StatsReader>]) -> Mark {
        Mark {
            stats: stats
                .iter_mut()
                .map(|s| s.as_mut().and_then(|r| r.snapshot().ok()).unwrap_or_default())
                .collect(),
            userspace: self
                .userspace
                .iter()
                .map(|c| std::array::from_fn(|i| c[i].load(Ordering::Relaxed)))
                .collect(),
            guest_iterations: self
                .iterations_addr
                .and_then(|a| self.vm.mem.read_obj::<u32>(GuestAddress(a)).ok()),
        }
    }

    fn port_in(&self, vcpu: usize, port: u16, data: &mut [u8]) {
        let d = devices::device_at(port);
        self.count(vcpu, d);
        match d {
            // The benchmark's own exits: answered without taking the lock.
            Device::Unassigned => data.fill(0xff),
            Device::PmTimer => {
                let v = devices::pm_timer(self.elapsed()).to_le_bytes();
                for (b, v) in data.iter_mut().zip(v.into_iter().chain(std::iter::repeat(0))) {
                    *b = v;
                }
            }
            _ => {
                let elapsed = self.elapsed();
                lock(&self.devices).bus.read(port, data, elapsed);
            }
        }
    }

    fn port_out(&self, vcpu: usize, port: u16, data: &[u8]) -> Option<KutEnd> {
        let d = devices::device_at(port);
        self.count(vcpu, d);
        if !d.is_plumbing() {
            return None;
        }
        let mut guard = lock(&self.devices);
        let dev = &mut *guard;
        match dev.bus.write(port, data)? {
            Event::Line(text) => {
                let line =
                    GuestLine { text, vcpu, at: self.elapsed(), mark: self.mark(&mut dev.stats) };
                (dev.sink)(&line);
                dev.lines.push(line);
                None
            }
            Event::DebugExit(code) => {
                Some(KutEnd::Exited { code, status: devices::qemu_exit_status(code) })
            }
            Event::PowerOff => Some(KutEnd::PoweredOff),
        }
    }
}

impl KutRun {
    /// Loads `config.kernel`, builds the machine and creates one thread per vCPU. The
    /// threads wait until [`KutRun::start`] (or [`KutRun::wait`]), so a tracer can set
    /// up its filter on [`KutRun::vcpu_tids`] first. `sink` sees every completed serial
    /// line as it arrives, on the vCPU thread that wrote it: keep it short.
    ///
    /// # Errors
    ///
    /// [`KutError`]: unreadable or unsupported image, configuration out of range, KVM
    /// unavailable ([`KutError::Open`]), or a setup step that failed.
    pub fn spawn(
        config: &KutConfig,
        sink: impl FnMut(&GuestLine) + Send + 'static,
    ) -> Result<KutRun, KutError> {
        validate(config)?;
        let bytes = std::fs::read(&config.kernel)
            .map_err(|source| KutError::Read { path: config.kernel.clone(), source })?;
        let elf = Elf32::parse(&bytes)
            .map_err(|source| KutError::Image { path: config.kernel.clone(), source })?;
        let ram = u64::from(config.mem_mib) << 20;
        check_segments(&elf, ram, &config.kernel)?;
        let boot_info = multiboot::boot_info(ram, &config.cmdline(), config.env_text().as_bytes())?;

        let kvm = crate::vm::open_kvm(&config.kvm_device)?;
        let ram_size =
            usize::try_from(ram).map_err(|_| KutError::Config("RAM too large".into()))?;
        let vm = SharedVm::new(&kvm, ram_size)?;
        let mem = &vm.mem;
        for seg in &elf.segments {
            // Fresh anonymous memory is zero, so the bss needs no clearing.
            mem.write_slice(elf.file_bytes(seg), GuestAddress(seg.paddr))
                .map_err(SetupError::WriteGuest)?;
        }
        for (addr, bytes) in boot_info.writes.iter().chain(super::acpi::tables().iter()) {
            mem.write_slice(bytes, GuestAddress(*addr)).map_err(SetupError::WriteGuest)?;
        }

        let supported =
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(SetupError::Cpuid)?;
        let mut vcpus = Vec::new();
        for index in 0..config.smp {
            let vcpu = vm.create_vcpu(u64::from(index))?;
            let mut cpuid = supported.clone();
            // Each vCPU is its own one-core socket, as QEMU's `-smp N` lays them out.
            crate::cpuid::normalize(cpuid.as_mut_slice(), u8::try_from(index).unwrap_or(u8::MAX));
            vcpu.fd.set_cpuid2(&cpuid).map_err(SetupError::Cpuid)?;
            vcpus.push(vcpu);
        }
        // The APs stay in KVM's wait-for-SIPI state; the in-kernel LAPIC starts them.
        set_boot_state(&vcpus[0], u64::from(elf.entry), boot_info.info_addr)?;
        let tsc_khz = vcpus[0].fd.get_tsc_khz().ok();
        let stats: Vec<Option<StatsReader>> = vcpus
            .iter()
            .map(|v| crate::sys::vcpu_stats_fd(&v.fd).and_then(StatsReader::new).ok())
            .collect();

        let signal = crate::sys::kick_signal().map_err(KutError::Thread)?;
        let (end_tx, end_rx) = mpsc::channel();
        let smp = vcpus.len();
        let shared = Arc::new(Shared {
            vm: Arc::clone(&vm),
            devices: Mutex::new(Devices {
                bus: PortBus::new(u16::try_from(smp).unwrap_or(u16::MAX), ram),
                lines: Vec::new(),
                sink: Box::new(sink),
                stats,
            }),
            userspace: (0..smp).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            stop: AtomicBool::new(false),
            end: Mutex::new(None),
            end_tx: Mutex::new(Some(end_tx)),
            t0: OnceLock::new(),
            iterations_addr: elf.symbol("iterations").map(|(a, _)| u64::from(a)),
            gate: Gate::default(),
        });
        drop(vm);

        let (tid_tx, tid_rx) = mpsc::channel();
        let mut threads = Vec::new();
        for (index, vcpu) in vcpus.into_iter().enumerate() {
            let thread_shared = Arc::clone(&shared);
            let tid_tx = tid_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("kut-vcpu{index}"))
                .spawn(move || vcpu_thread(vcpu, index, &thread_shared, &tid_tx));
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    shared.finish(None);
                    return Err(KutError::Thread(e.to_string()));
                }
            }
        }
        drop(tid_tx);
        let mut tids = vec![0; smp];
        for _ in 0..smp {
            match tid_rx.recv_timeout(Duration::from_secs(10)) {
                Ok((i, tid)) => tids[i] = tid,
                Err(_) => {
                    shared.finish(None);
                    return Err(KutError::Thread("a vCPU thread did not report its id".into()));
                }
            }
        }
        Ok(KutRun {
            shared,
            threads,
            tids,
            end_rx,
            started: None,
            start_mark: Mark::default(),
            timeout: config.timeout,
            tsc_khz,
            cmdline: config.cmdline(),
            signal,
        })
    }

    /// Kernel thread ids of the vCPU threads, by vCPU index (vCPU 0 first).
    pub fn vcpu_tids(&self) -> &[i32] {
        &self.tids
    }

    /// Guest TSC rate.
    pub fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// A handle that stops this boot from another thread.
    pub fn stopper(&self) -> KutStopper {
        KutStopper(Arc::clone(&self.shared))
    }

    /// Lets the vCPUs run; the deadline counts from here. Calling it again does nothing.
    pub fn start(&mut self) {
        if self.started.is_some() {
            return;
        }
        self.start_mark = {
            let mut d = lock(&self.shared.devices);
            self.shared.mark(&mut d.stats)
        };
        let now = Instant::now();
        self.started = Some(now);
        let _ = self.shared.t0.set(now);
        self.shared.gate.open();
    }

    /// Starts the boot if needed and waits until the guest ends it or the configured
    /// deadline passes (then the vCPUs are stopped and the end is [`KutEnd::Timeout`]).
    pub fn wait(mut self) -> KutOutcome {
        self.start();
        let deadline = self.started.unwrap_or_else(Instant::now) + self.timeout;
        self.wait_until(deadline)
    }

    /// Like [`KutRun::wait`] with an explicit deadline.
    pub fn wait_until(mut self, deadline: Instant) -> KutOutcome {
        self.start();
        let started = self.started.unwrap_or_else(Instant::now);
        let timed_out = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.end_rx.recv_timeout(left) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break false,
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => break true,
                Err(RecvTimeoutError::Timeout) => {}
            }
        };
        if timed_out {
            let after_seconds = deadline.saturating_duration_since(started).as_secs_f64();
            self.shared.finish(Some(KutEnd::Timeout { after_seconds, vcpus: Vec::new() }));
        }
        let (states, stuck) = self.stop_threads();
        let seconds = started.elapsed().as_secs_f64();
        let mut end =
            lock(&self.shared.end).take().unwrap_or(KutEnd::Stopped { vcpus: Vec::new() });
        if let KutEnd::Timeout { vcpus, .. } | KutEnd::Stopped { vcpus } = &mut end {
            *vcpus = states;
        }
        let mut dev = lock(&self.shared.devices);
        let partial_line = dev.bus.serial.flush();
        let layout = dev.stats.iter().flatten().next().map(|s| s.layout().clone());
        let lines = std::mem::take(&mut dev.lines);
        drop(dev);
        let userspace_exits = Device::ALL
            .iter()
            .map(|d| {
                let n = self.shared.userspace.iter().map(|c| c[d.index()].load(Ordering::Relaxed));
                (*d, n.sum())
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        KutOutcome {
            end,
            lines,
            partial_line,
            start_mark: std::mem::take(&mut self.start_mark),
            stats_layout: layout,
            vcpu_tids: self.tids.clone(),
            tsc_khz: self.tsc_khz,
            userspace_exits,
            seconds,
            cmdline: self.cmdline.clone(),
            stuck_vcpus: stuck,
        }
    }

    /// Kicks every vCPU thread out of `KVM_RUN` until it returns (5 s at most), and
    /// collects where each one was. Re-sending the signal closes the race where it lands
    /// between a thread's stop check and its next `KVM_RUN`.
    fn stop_threads(&mut self) -> (Vec<VcpuState>, Vec<usize>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.gate.open();
        let give_up = Instant::now() + Duration::from_secs(5);
        while Instant::now() < give_up && self.threads.iter().any(|t| !t.is_finished()) {
            for t in self.threads.iter().filter(|t| !t.is_finished()) {
                let _ = t.kill(self.signal);
            }
            thread::sleep(Duration::from_millis(5));
        }
        let mut states = Vec::new();
        let mut stuck = Vec::new();
        for (i, t) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            if t.is_finished() {
                if let Ok(s) = t.join() {
                    states.push(s);
                }
            } else {
                // Left running: it holds its own reference to the VM and its memory.
                stuck.push(i);
            }
        }
        (states, stuck)
    }
}

impl Drop for KutRun {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.finish(None);
            let _ = self.stop_threads();
        }
    }
}

/// Boots `config`, runs it to its end or deadline and returns the outcome.
///
/// # Errors
///
/// As [`KutRun::spawn`].
pub fn run(
    config: &KutConfig,
    sink: impl FnMut(&GuestLine) + Send + 'static,
) -> Result<KutOutcome, KutError> {
    Ok(KutRun::spawn(config, sink)?.wait())
}

fn validate(c: &KutConfig) -> Result<(), KutError> {
    if !(1..=MAX_VCPUS).contains(&c.smp) {
        return Err(KutError::Config(format!("--smp {} is out of range 1..={MAX_VCPUS}", c.smp)));
    }
    if !(2..=MAX_MEM_MIB).contains(&c.mem_mib) {
        return Err(KutError::Config(format!(
            "--mem {} MiB is out of range 2..={MAX_MEM_MIB} (RAM must end below the 32-bit MMIO \
             hole)",
            c.mem_mib
        )));
    }
    if c.program_name.is_empty() || c.program_name.contains(char::is_whitespace) {
        return Err(KutError::Config("the program name (argv[0]) must be one word".into()));
    }
    if let Some(t) = c.tests.iter().find(|t| t.is_empty() || t.contains(char::is_whitespace)) {
        return Err(KutError::Config(format!("test name {t:?} must be one non-empty word")));
    }
    Ok(())
}

fn check_segments(elf: &Elf32<'_>, ram: u64, path: &Path) -> Result<(), KutError> {
    for s in &elf.segments {
        if s.paddr < multiboot::layout::KERNEL_MIN {
            return Err(KutError::Config(format!(
                "{}: segment {s} starts below 1 MiB, where the VMM keeps the boot information \
                 and ACPI tables",
                path.display()
            )));
        }
        if s.paddr + s.mem_size > ram {
            return Err(KutError::Config(format!(
                "{}: segment {s} does not fit in {} MiB of RAM; raise --mem",
                path.display(),
                ram >> 20
            )));
        }
    }
    Ok(())
}

/// The multiboot entry state on the bootstrap processor: 32-bit protected mode, paging
/// off, flat 4 GiB code and data segments, `EAX` = the loader magic, `EBX` = the
/// information block, interrupts off.
fn set_boot_state(bsp: &OwnedVcpu, entry: u64, info: u64) -> Result<(), SetupError> {
    let code =
        arch::segment_from_gdt(arch::gdt_entry(arch::flags::KERNEL32_CODE, 0, 0xfffff), 0x08);
    let data = arch::segment_from_gdt(arch::gdt_entry(arch::flags::KERNEL_DATA, 0, 0xfffff), 0x10);
    let mut s = bsp.fd.get_sregs().map_err(SetupError::Sregs)?;
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.cr0 = 0x11; // PE | ET
    s.cr3 = 0;
    s.cr4 = 0;
    s.efer = 0;
    bsp.fd.set_sregs(&s).map_err(SetupError::Sregs)?;
    let regs = kvm_regs {
        rip: entry,
        rax: u64::from(multiboot::BOOTLOADER_MAGIC),
        rbx: info,
        rflags: 2,
        ..Default::default()
    };
    bsp.fd.set_regs(&regs).map_err(SetupError::Regs)
}

/// One vCPU's exit loop.
fn vcpu_thread(
    mut vcpu: OwnedVcpu,
    index: usize,
    shared: &Shared,
    tid_tx: &Sender<(usize, i32)>,
) -> VcpuState {
    let tid = crate::sys::current_tid();
    let _ = tid_tx.send((index, tid));
    shared.gate.wait();
    let end = loop {
        if shared.stop.load(Ordering::Acquire) {
            break None;
        }
        match vcpu.fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => shared.port_in(index, port, data),
            Ok(VcpuExit::IoOut(port, data)) => {
                if let Some(end) = shared.port_out(index, port, data) {
                    break Some(end);
                }
            }
            Ok(VcpuExit::MmioRead(_, data)) => {
                shared.count(index, Device::Mmio);
                data.fill(0);
            }
            Ok(VcpuExit::MmioWrite(..)) => shared.count(index, Device::Mmio),
            Ok(VcpuExit::Intr) => {}
            Ok(VcpuExit::Shutdown) => {
                let rip = vcpu.fd.get_regs().ok().map(|r| r.rip);
                break Some(KutEnd::TripleFault { vcpu: index, rip });
            }
            Ok(other) => {
                let error = format!("unexpected exit {other:?}");
                break Some(KutEnd::Failed { vcpu: index, error });
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => break Some(KutEnd::Failed { vcpu: index, error: format!("KVM_RUN: {e}") }),
        }
    };
    let here = state(&vcpu, index, tid, shared);
    if let Some(mut end) = end {
        if let KutEnd::Failed { error, .. } = &mut end {
            error.push_str(&format!("; {}", locate(std::slice::from_ref(&here))));
        }
        shared.finish(Some(end));
    }
    here
}

/// Where `vcpu` is now: RIP and the instruction there (guest-virtual → physical through
/// `KVM_TRANSLATE`).
fn state(vcpu: &OwnedVcpu, index: usize, tid: i32, shared: &Shared) -> VcpuState {
    let regs = vcpu.fd.get_regs().ok();
    let rip = regs.map(|r| r.rip);
    let instruction = rip.and_then(|rip| {
        let t = vcpu.fd.translate_gva(rip).ok().filter(|t| t.valid != 0)?;
        let mut bytes = [0u8; 15];
        shared.vm.mem.read_slice(&mut bytes, GuestAddress(t.physical_address)).ok()?;
        Some(disassemble(&bytes, rip))
    });
    VcpuState { vcpu: index, tid, rip, instruction }
}

fn disassemble(bytes: &[u8], rip: u64) -> String {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
    let mut decoder = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let insn = decoder.decode();
    let mut text = String::new();
    IntelFormatter::new().format(&insn, &mut text);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_starts_with_a_program_name_and_env_has_cpus_and_memory() {
        let c = KutConfig::new("/x/vmexit.flat").with_tests(["cpuid", "mov_dr"]).with_smp(2);
        assert_eq!(c.cmdline(), "vmexit.flat cpuid mov_dr");
        assert_eq!(c.with_env("FOO", "1").env_text(), "NR_CPUS=2\nMEMSIZE=128\nFOO=1\n");
        assert_eq!(KutConfig::new("/x/vmexit.flat").cmdline(), "vmexit.flat");
    }

    #[test]
    fn config_ranges_are_checked() {
        let c = KutConfig::new("k");
        assert!(validate(&c).is_ok());
        assert!(validate(&c.clone().with_smp(0)).is_err());
        assert!(validate(&c.clone().with_smp(MAX_VCPUS + 1)).is_err());
        assert!(validate(&c.clone().with_mem_mib(4096)).unwrap_err().to_string().contains("MMIO"));
        assert!(validate(&c.clone().with_tests(["a b"])).is_err());
    }

    #[test]
    fn segments_must_fit_above_1_mib_and_below_the_top_of_ram() {
        let img = multiboot::write_elf32(0x40_0000, &[(0x40_0000, &[0x90], 0x100_0000)], &[]);
        let elf = Elf32::parse(&img).unwrap();
        assert!(check_segments(&elf, 128 << 20, Path::new("k")).is_ok());
        let err = check_segments(&elf, 16 << 20, Path::new("k")).unwrap_err().to_string();
        assert!(err.contains("raise --mem"), "{err}");
        let low = multiboot::write_elf32(0x8000, &[(0x8000, &[0x90], 1)], &[]);
        let err = check_segments(&Elf32::parse(&low).unwrap(), 128 << 20, Path::new("k"));
        assert!(err.unwrap_err().to_string().contains("below 1 MiB"));
    }

    #[test]
    fn ends_describe_themselves() {
        assert!(KutEnd::Exited { code: 0, status: 1 }.passed());
        assert!(!KutEnd::Exited { code: 1, status: 3 }.passed());
        let t = KutEnd::Timeout {
            after_seconds: 90.0,
            vcpus: vec![VcpuState {
                vcpu: 0,
                tid: 7,
                rip: Some(0x40_1000),
                instruction: Some("vmmcall".into()),
            }],
        };
        assert_eq!(
            t.describe(),
            "still running after the 90 s deadline: vCPU 0 at RIP 0x401000 (vmmcall)"
        );
        assert_eq!(disassemble(&[0x0f, 0x01, 0xd9], 0), "vmmcall");
    }
}
