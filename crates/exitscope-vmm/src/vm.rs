//! One benchmark VM: setup of a 64-bit vCPU that starts directly in long mode at CPL0 or
//! CPL3, and the lean userspace exit loop that serves one measurement round at a time.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use exitscope_guest::{
    Benchmark, GuestImage, GuestParams, IPI_VECTOR, PORT_DONE, PORT_FAULT, Vendor, mailbox,
};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit};
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError};

use crate::arch::{self, layout, sel};
use crate::stats::{Snapshot, StatsReader};
use crate::sys::Machine;

/// Privilege level the benchmark loop runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cpl {
    /// Ring 0, like kvm-unit-tests (emulated instruction by instruction on PVM hosts).
    Zero,
    /// Ring 3: runs natively on PVM hosts; only unprivileged exits are possible.
    Three,
}

impl Cpl {
    /// 0 or 3.
    pub fn as_u8(self) -> u8 {
        match self {
            Cpl::Zero => 0,
            Cpl::Three => 3,
        }
    }
}

/// Opening `/dev/kvm` failed: the environment cannot run the VMM.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The device could not be opened.
    #[error("cannot open {path}: {errno}{hint}")]
    Open {
        /// Device path.
        path: String,
        /// errno from open(2).
        errno: kvm_ioctls::Error,
        /// Advice for the common cases.
        hint: &'static str,
    },
    /// The KVM API version is not 12.
    #[error("{path}: unsupported KVM API version {version} (need 12)")]
    ApiVersion {
        /// Device path.
        path: String,
        /// What KVM_GET_API_VERSION returned.
        version: i32,
    },
}

/// Opens the KVM device at `path` (normally `/dev/kvm`).
///
/// # Errors
///
/// [`OpenError`] if it is missing, not permitted, or too old.
pub fn open_kvm(path: &Path) -> Result<Kvm, OpenError> {
    let shown = path.display().to_string();
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| OpenError::Open {
        path: shown.clone(),
        errno: kvm_ioctls::Error::new(libc::EINVAL),
        hint: "",
    })?;
    let kvm = Kvm::new_with_path(&c).map_err(|errno| {
        let hint = match errno.errno() {
            libc::ENOENT => {
                " (no KVM on this host: load kvm_intel/kvm_amd or enable nested virtualization)"
            }
            libc::EACCES | libc::EPERM => {
                " (no permission: add your user to the 'kvm' group or run as root)"
            }
            _ => "",
        };
        OpenError::Open { path: shown.clone(), errno, hint }
    })?;
    let version = kvm.get_api_version();
    if version != 12 {
        return Err(OpenError::ApiVersion { path: shown, version });
    }
    Ok(kvm)
}

/// Setting up the VM or vCPU failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// KVM_CREATE_VM failed.
    #[error("creating the VM: {0}")]
    CreateVm(kvm_ioctls::Error),
    /// Guest memory could not be allocated.
    #[error("allocating guest memory: {0}")]
    Memory(String),
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("adding the guest memory slot: {0}")]
    MemorySlot(kvm_ioctls::Error),
    /// KVM_CREATE_IRQCHIP failed.
    #[error("creating the in-kernel irqchip: {0}")]
    Irqchip(kvm_ioctls::Error),
    /// KVM_CREATE_VCPU failed.
    #[error("creating the vCPU: {0}")]
    CreateVcpu(kvm_ioctls::Error),
    /// KVM_GET_SUPPORTED_CPUID or KVM_SET_CPUID2 failed.
    #[error("setting the guest CPUID: {0}")]
    Cpuid(kvm_ioctls::Error),
    /// KVM_GET_SREGS/KVM_SET_SREGS failed.
    #[error("setting segment and control registers: {0}")]
    Sregs(kvm_ioctls::Error),
    /// KVM_SET_REGS failed.
    #[error("setting general registers: {0}")]
    Regs(kvm_ioctls::Error),
    /// Writing the guest image failed.
    #[error("writing guest memory: {0}")]
    WriteGuest(#[from] GuestMemoryError),
    /// Generating the guest code failed.
    #[error(transparent)]
    Assemble(#[from] exitscope_guest::AsmError),
    /// Too much guest code for the layout.
    #[error("guest code of {0} bytes does not fit below the stack")]
    CodeTooLarge(usize),
}

/// A guest exception, as reported by the guest's own IDT stubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FaultInfo {
    /// Exception vector (6 = #UD, 13 = #GP, 14 = #PF, ...).
    pub vector: u64,
    /// Error code, 0 for vectors without one.
    pub error_code: u64,
    /// RIP of the faulting instruction.
    pub rip: u64,
    /// CPL the fault happened at (low bits of the saved CS).
    pub cpl: u64,
}

impl fmt::Display for FaultInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest exception {} (vector {}), error code {:#x}, at RIP {:#x}, CPL {}",
            exitscope_guest::vector_name(self.vector),
            self.vector,
            self.error_code,
            self.rip,
            self.cpl
        )
    }
}

/// A measurement round did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The guest took an exception (reported through its IDT).
    #[error("{0}")]
    Fault(FaultInfo),
    /// KVM_EXIT_SHUTDOWN: a triple fault the IDT could not catch.
    #[error("guest triple fault (KVM_EXIT_SHUTDOWN) at RIP {rip:#x}")]
    TripleFault {
        /// RIP after the shutdown, if it could be read.
        rip: u64,
    },
    /// An exit the benchmark guest should never cause.
    #[error("unexpected exit {exit} at RIP {rip:#x}")]
    UnexpectedExit {
        /// Debug text of the exit.
        exit: String,
        /// RIP, if it could be read.
        rip: u64,
    },
    /// KVM_RUN failed.
    #[error("KVM_RUN: {0}")]
    Kvm(kvm_ioctls::Error),
    /// The mailbox could not be accessed.
    #[error("mailbox: {0}")]
    Mailbox(#[from] GuestMemoryError),
    /// The round was stopped through its [`StopHandle`] (deadline).
    #[error("stopped by the deadline")]
    Stopped,
}

/// Which loop a round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    /// The benchmark's loop.
    Bench,
    /// The empty calibration loop (`dec; jnz`).
    Baseline,
}

/// The result of one round: `iterations` of one loop.
#[derive(Debug, Clone)]
pub struct Round {
    /// Iterations run.
    pub iterations: u64,
    /// Guest TSC cycles for the whole loop (rdtsc in the guest).
    pub cycles: u64,
    /// Exits that reached the userspace loop during the round (including the final
    /// done-port exit).
    pub userspace_exits: u64,
    /// KVM stats before the round (empty if the stats fd is unavailable).
    pub stats_before: Snapshot,
    /// KVM stats after the round.
    pub stats_after: Snapshot,
    /// Wall time spent in the userspace exit loop between `KVM_RUN` calls, in ns
    /// (only from [`BenchVm::run_round_timed`]).
    pub vmm_loop_ns: Option<u64>,
}

/// Asks a running [`BenchVm`] to stop. Setting it only takes effect when the vCPU thread
/// is interrupted out of KVM_RUN (a signal, see [`crate::bench`]).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A VM running one benchmark's guest, ready to serve rounds.
#[derive(Debug)]
pub struct BenchVm {
    machine: Machine,
    stats: Option<StatsReader>,
    stop: StopHandle,
    image: GuestImage,
    tsc_khz: Option<u32>,
}

impl BenchVm {
    /// Builds the VM: memory, irqchip, vCPU, normalized CPUID, GDT/TSS/IDT, identity page
    /// tables, long mode, and the benchmark's guest code; the vCPU starts at `cpl`.
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the step that failed.
    pub fn new(kvm: &Kvm, bench: &Benchmark, cpl: Cpl, vendor: Vendor) -> Result<Self, SetupError> {
        let machine = Machine::new(kvm, layout::RAM_SIZE)?;

        // CPUID first: KVM validates CR4 bits and MSRs against the guest's CPUID.
        let mut cpuid =
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(SetupError::Cpuid)?;
        crate::cpuid::normalize(cpuid.as_mut_slice(), 0);
        machine.vcpu.set_cpuid2(&cpuid).map_err(SetupError::Cpuid)?;

        let params = GuestParams {
            base: layout::CODE,
            vendor,
            user_cs: sel::USER_CS,
            user_ds: sel::USER_DS,
            user_stack: layout::STACK_TOP,
        };
        let image = exitscope_guest::assemble(bench, &params)?;
        write_guest(&machine, &image)?;
        set_registers(&machine, &image, cpl)?;

        let stats = machine.vcpu_stats_fd().and_then(StatsReader::new).ok();
        let tsc_khz = machine.vcpu.get_tsc_khz().ok();
        Ok(BenchVm { machine, stats, stop: StopHandle::default(), image, tsc_khz })
    }

    /// A handle that makes [`BenchVm::run_round`] return [`RunError::Stopped`] when the
    /// vCPU is next interrupted.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Uses `stop` instead of the VM's own stop flag.
    pub fn set_stop_handle(&mut self, stop: StopHandle) {
        self.stop = stop;
    }

    /// The vCPU's stats reader, if `KVM_GET_STATS_FD` is available.
    pub fn stats(&self) -> Option<&StatsReader> {
        self.stats.as_ref()
    }

    /// Guest TSC rate (`KVM_GET_TSC_KHZ`).
    pub fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// The guest code this VM runs.
    pub fn image(&self) -> &GuestImage {
        &self.image
    }

    fn snapshot(&mut self) -> Snapshot {
        self.stats.as_mut().and_then(|s| s.snapshot().ok()).unwrap_or_default()
    }

    /// Runs one round of `iterations` (at least 1) of `kind` and returns its cycles and
    /// the stats around it. This is the VMM's userspace exit loop: port and MMIO exits
    /// that are not the done/fault ports are answered (reads return all ones for ports,
    /// zeros for MMIO) and the vCPU re-entered at once.
    ///
    /// # Errors
    ///
    /// [`RunError`] for guest faults, unexpected exits, KVM errors or a stop request.
    pub fn run_round(&mut self, iterations: u64, kind: LoopKind) -> Result<Round, RunError> {
        self.round::<false>(iterations, kind)
    }

    /// Like [`BenchVm::run_round`], but also measures the wall time the userspace loop
    /// spends between `KVM_RUN` calls ([`Round::vmm_loop_ns`]); two clock reads per exit.
    ///
    /// # Errors
    ///
    /// As [`BenchVm::run_round`].
    pub fn run_round_timed(&mut self, iterations: u64, kind: LoopKind) -> Result<Round, RunError> {
        self.round::<true>(iterations, kind)
    }

    fn round<const TIMED: bool>(
        &mut self,
        iterations: u64,
        kind: LoopKind,
    ) -> Result<Round, RunError> {
        let mem = &self.machine.mem;
        mem.write_obj(iterations.max(1), GuestAddress(mailbox::ITERATIONS))?;
        let which = match kind {
            LoopKind::Bench => mailbox::LOOP_BENCH,
            LoopKind::Baseline => mailbox::LOOP_BASELINE,
        };
        mem.write_obj(which, GuestAddress(mailbox::LOOP))?;

        let stats_before = self.snapshot();
        let mut userspace_exits = 0u64;
        let mut outside = Duration::ZERO;
        let mut returned: Option<Instant> = None;
        let vcpu = &mut self.machine.vcpu;
        let end = loop {
            userspace_exits += 1;
            if TIMED && let Some(t) = returned {
                outside += t.elapsed();
            }
            let exit = vcpu.run();
            if TIMED {
                returned = Some(Instant::now());
            }
            match exit {
                Ok(VcpuExit::IoOut(PORT_DONE, _)) => break Ok(()),
                Ok(VcpuExit::IoOut(PORT_FAULT, _)) => break Err(End::Fault),
                Ok(VcpuExit::IoIn(_, data)) => data.fill(0xff),
                Ok(VcpuExit::MmioRead(_, data)) => data.fill(0),
                Ok(VcpuExit::IoOut(..) | VcpuExit::MmioWrite(..)) => {}
                Ok(VcpuExit::Shutdown) => break Err(End::Shutdown),
                Ok(other) => break Err(End::Unexpected(format!("{other:?}"))),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    userspace_exits -= 1;
                    if self.stop.is_stopped() {
                        break Err(End::Stopped);
                    }
                }
                Err(e) => break Err(End::Kvm(e)),
            }
        };
        if let Err(end) = end {
            return Err(self.explain(end));
        }
        let cycles = self.machine.mem.read_obj::<u64>(GuestAddress(mailbox::CYCLES))?;
        let stats_after = self.snapshot();
        Ok(Round {
            iterations: iterations.max(1),
            cycles,
            userspace_exits,
            stats_before,
            stats_after,
            vmm_loop_ns: TIMED.then(|| u64::try_from(outside.as_nanos()).unwrap_or(u64::MAX)),
        })
    }

    fn rip(&self) -> u64 {
        self.machine.vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
    }

    fn explain(&self, end: End) -> RunError {
        match end {
            End::Fault => {
                let mem = &self.machine.mem;
                let read = |a| mem.read_obj::<u64>(GuestAddress(a)).unwrap_or(u64::MAX);
                RunError::Fault(FaultInfo {
                    vector: read(mailbox::FAULT_VECTOR),
                    error_code: read(mailbox::FAULT_ERROR),
                    rip: read(mailbox::FAULT_RIP),
                    cpl: read(mailbox::FAULT_CS) & 3,
                })
            }
            End::Shutdown => RunError::TripleFault { rip: self.rip() },
            End::Unexpected(exit) => RunError::UnexpectedExit { exit, rip: self.rip() },
            End::Stopped => RunError::Stopped,
            End::Kvm(e) => RunError::Kvm(e),
        }
    }
}

/// Why the exit loop ended, before the details are read.
enum End {
    Fault,
    Shutdown,
    Unexpected(String),
    Stopped,
    Kvm(kvm_ioctls::Error),
}

fn write_guest(m: &Machine, image: &GuestImage) -> Result<(), SetupError> {
    let mem = &m.mem;
    if image.base + image.code.len() as u64 > layout::STACK_TOP - 0x1000 {
        return Err(SetupError::CodeTooLarge(image.code.len()));
    }
    let gdt: Vec<u8> = arch::gdt(layout::TSS).iter().flat_map(|e| e.to_le_bytes()).collect();
    mem.write_slice(&gdt, GuestAddress(layout::GDT))?;
    mem.write_slice(&arch::tss(layout::KERNEL_STACK_TOP), GuestAddress(layout::TSS))?;

    let mut idt = vec![0u8; 256 * 16];
    let gates = image
        .exception_stubs
        .iter()
        .copied()
        .enumerate()
        .chain(std::iter::once((usize::from(IPI_VECTOR), image.ipi_handler)));
    for (vector, handler) in gates {
        idt[vector * 16..vector * 16 + 16]
            .copy_from_slice(&arch::idt_gate(handler, sel::KERNEL_CS));
    }
    mem.write_slice(&idt, GuestAddress(layout::IDT))?;

    let (pml4, pdpt, pd) = arch::identity_page_tables(layout::PDPT, layout::PD);
    for (table, addr) in [(pml4, layout::PML4), (pdpt, layout::PDPT), (pd, layout::PD)] {
        let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_le_bytes()).collect();
        mem.write_slice(&bytes, GuestAddress(addr))?;
    }
    mem.write_slice(&[0u8; 0x1000], GuestAddress(mailbox::BASE))?;
    mem.write_slice(&image.code, GuestAddress(image.base))?;
    Ok(())
}

fn set_registers(m: &Machine, image: &GuestImage, cpl: Cpl) -> Result<(), SetupError> {
    let gdt = arch::gdt(layout::TSS);
    let seg = |s: u16| arch::segment_from_gdt(gdt[usize::from(s >> 3)], s);
    // The vCPU always starts at CPL0; for CPL3 a preamble `iretq`s to ring 3, as an OS
    // would. (Starting directly at CPL3 through KVM_SET_SREGS also runs, but PVM then
    // does not intercept CPUID.)
    let mut s = m.vcpu.get_sregs().map_err(SetupError::Sregs)?;
    s.cs = seg(sel::KERNEL_CS);
    s.ds = seg(sel::KERNEL_DS);
    s.es = s.ds;
    s.fs = s.ds;
    s.gs = s.ds;
    s.ss = s.ds;
    s.tr = seg(sel::TSS);
    s.gdt.base = layout::GDT;
    s.gdt.limit = u16::try_from(gdt.len() * 8 - 1).unwrap_or(u16::MAX);
    s.idt.base = layout::IDT;
    s.idt.limit = 256 * 16 - 1;
    s.cr0 = arch::cr::CR0;
    s.cr3 = layout::PML4;
    s.cr4 = arch::cr::CR4;
    s.efer = arch::cr::EFER;
    m.vcpu.set_sregs(&s).map_err(SetupError::Sregs)?;

    let (rip, rsp) = match cpl {
        Cpl::Zero => (image.entry, layout::STACK_TOP),
        Cpl::Three => (image.entry_to_cpl3, layout::KERNEL_STACK_TOP),
    };
    let regs = kvm_bindings::kvm_regs { rip, rsp, rflags: 2, ..Default::default() };
    m.vcpu.set_regs(&regs).map_err(SetupError::Regs)
}
