//! A tiny KVM VMM that boots a minimal 64-bit guest and runs exitscope's VM-exit
//! microbenchmarks (`exitscope bench`), with no QEMU and no guest kernel.
//!
//! # Brief overview
//!
//! [`BenchVm`] creates a VM on `/dev/kvm` with kvm-ioctls: 2 MiB of guest memory
//! (vm-memory), the in-kernel irqchip (created before the vCPU), one vCPU with KVM's
//! supported CPUID normalized like Firecracker does ([`cpuid`]), a Linux-layout GDT with
//! ring-0 and ring-3 64-bit segments, a TSS with an all-zero I/O bitmap, an IDT whose stubs
//! report exceptions (vector, error code, RIP) to the VMM, and identity page tables
//! ([`arch`]). The vCPU starts directly in long mode at CPL0 or CPL3. The guest code comes
//! from `exitscope-guest` (iced-x86, no byte blobs).
//!
//! Measurement ([`mod@bench`]) follows kvm-unit-tests' `x86/vmexit.c`: double the iterations
//! from 64 until a loop takes `min_cycles` TSC cycles, subtract an empty-loop baseline,
//! repeat, and read KVM's binary statistics ([`stats`]) around every loop so each result
//! says how many exits one iteration caused. Each test runs on its own vCPU thread; a
//! test that passes its deadline is kicked out of `KVM_RUN` with a signal and reported
//! as timed out.
//!
//! On PVM hosts (`/sys/module/kvm_pvm`) guest CPL0 code is emulated instruction by
//! instruction, so the default there is CPL3 ([`decide_mode`]).
//!
//! # Running a benchmark from other code
//!
//! ```no_run
//! use exitscope_vmm::{Options, run_test, Cpl, run_iterations};
//! // A whole test, measured like `exitscope bench cpuid`:
//! let opts = Options::default().with_min_cycles(1 << 24).with_repeat(3);
//! let result = run_test("cpuid", &opts)?;
//! println!("{} {:?} cycles/exit, {:?} exits/iter", result.test, result.cycles_median,
//!          result.exits_per_iteration);
//! // Or exactly N iterations in this thread, e.g. while a tracer records:
//! let bench = exitscope_guest::find("inl_from_vmm").unwrap();
//! let round = run_iterations(bench, Cpl::Three, 10_000, &opts).map_err(|e| e.to_string())?;
//! println!("{} cycles", round.cycles);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`kut`] boots kvm-unit-tests' own x86 images (`vmexit.flat`) with a multiboot loader,
//! the devices they need and one thread per vCPU (`exitscope bench --kut`).
//!
//! All `unsafe` code (the memory slot, the stats-fd ioctl, the kick signal) lives in one
//! private module with a `// SAFETY:` comment on every block.

pub mod arch;
pub mod bench;
pub mod cpuid;
pub mod host;
pub mod kut;
pub mod stats;
mod sys;
pub mod vm;

pub use bench::{
    Mode, Options, Report, Status, TestResult, decide_mode, default_kvm_device, probe,
    run_benchmark, run_iterations, run_suite, run_test,
};
pub use exitscope_guest::{BENCHMARKS, Benchmark, find};
pub use host::{Flavour, HostInfo};
pub use vm::{
    BenchVm, Cpl, FaultInfo, LoopKind, OpenError, Round, RunError, SetupError, StopHandle, open_kvm,
};
