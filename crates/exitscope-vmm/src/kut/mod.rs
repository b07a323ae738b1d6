//! Booting kvm-unit-tests' own x86 images (`x86/vmexit.flat`) in exitscope's VMM, with no
//! QEMU: the multiboot v1 loader, the few devices the guest touches, and a run handle a
//! tracer can drive from its own thread.
//!
//! # Brief overview
//!
//! [`KutRun::spawn`] loads the ELF32 image by its program headers ([`multiboot`]), writes
//! the multiboot information (`mem_upper`, the command line `PROGNAME TEST...`, one
//! module with the `KEY=VAL` environment) and the ACPI tables ([`acpi`]) below 1 MiB,
//! creates the VM with the in-kernel irqchip (PIC with its ELCR at 0x4d0, IOAPIC, LAPIC
//! that also delivers INIT/SIPI to the APs), one vCPU per `smp` with KVM's CPUID, and
//! puts vCPU 0 in 32-bit protected mode at the entry point with `EBX` → the information.
//! Each vCPU then runs on its own thread, waiting at a gate until [`KutRun::start`].
//! Port I/O that reaches userspace is answered by [`devices`]: the polled 16550 whose
//! output becomes [`GuestLine`]s, isa-debug-exit, the shutdown port, fw_cfg, PCI config
//! (nothing there), the ACPI PM timer, and all ones for everything else (`inl_from_qemu`'s
//! port 0x1234).
//!
//! [`KutRun::wait`] returns a [`KutOutcome`] when the guest writes isa-debug-exit, powers
//! off, triple-faults, or when the deadline passes: then every vCPU is kicked out of
//! `KVM_RUN` and reported with its RIP and the instruction there (on PVM hosts a
//! `vmcall` at CPL0 never completes). [`KutOutcome::tests`] turns the guest's lines into
//! typed results ([`results`]) with KVM's binary stats over each test's window.
//!
//! # Tracing a boot from another thread
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use exitscope_vmm::kut::{KutConfig, KutRun};
//!
//! let config = KutConfig::new("vmexit.flat").with_tests(["cpuid"]);
//! let mut run = KutRun::spawn(&config, |line| println!("{}", line.text))?;
//! let tids = run.vcpu_tids().to_vec(); // filter the tracer on these (set_event_pid)
//! let stopper = run.stopper(); // Clone + Send: stop() from a signal handler thread
//! // ... start the tracer ...
//! run.start();
//! let outcome = run.wait_until(Instant::now() + Duration::from_secs(60));
//! // ... stop the tracer ...
//! for t in outcome.tests() {
//!     println!("{} {:?} cycles, {:?} exits/iteration", t.name, t.cycles, t.exits_per_iteration);
//! }
//! println!("{} on vCPU threads {tids:?}", outcome.end.describe());
//! # drop(stopper);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod acpi;
mod boot;
pub mod cfg;
pub mod devices;
pub mod multiboot;
mod report;
pub mod results;

pub use boot::{
    DEFAULT_MEM_MIB, DEFAULT_TIMEOUT, KutConfig, KutEnd, KutError, KutOutcome, KutRun, KutStopper,
    MAX_MEM_MIB, MAX_VCPUS, VcpuState, run,
};
pub use report::{
    BootPlan, BootRecord, GUEST_GOAL_CYCLES, KutInfo, PlanRuns, SOURCE, exit_kind, mode,
    plans_from_cfg, result_plans, summarize,
};
pub use results::{GuestLine, KutTest, LineKind, Mark, classify, result_prefix};
