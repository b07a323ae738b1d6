//! Guest code for exitscope's VM-exit microbenchmarks, generated in Rust.
//!
//! # Brief overview
//!
//! Every benchmark is a loop of `N` iterations of one operation (`cpuid`, `in`, an MMIO
//! load, ...) bracketed by `rdtsc` inside the guest. The guest is a tiny *server*: it reads
//! the iteration count and the loop to run from a [`mailbox`] page, runs the loop, stores
//! the elapsed TSC cycles back into the mailbox and signals completion with an `out` to
//! [`PORT_DONE`], an exit that the VMM's userspace loop sees. The VMM then writes the next
//! request and resumes the vCPU, so one VM serves every round of a measurement.
//!
//! The same image also carries the exception stubs that the VMM's IDT points at: each
//! stub records the vector, error code and faulting RIP in the mailbox and reports them
//! with an `out` to [`PORT_FAULT`], so a guest fault is explained instead of ending in a
//! silent triple fault.
//!
//! Nothing here is an opaque byte blob: the code is built with iced-x86's
//! [`iced_x86::code_asm::CodeAssembler`], and the tests decode it back.
//!
//! ```
//! use exitscope_guest::{assemble, find, GuestParams};
//! let bench = find("cpuid").unwrap();
//! let image = assemble(bench, &GuestParams::default()).unwrap();
//! assert!(image.code.len() < 4096);
//! assert!(image.body.start < image.body.end);
//! ```
#![forbid(unsafe_code)]

use std::ops::Range;

use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, IcedError};

/// Port that the guest writes to when a round is complete (handled by the VMM in userspace).
pub const PORT_DONE: u16 = 0x3f0;
/// Port that the guest's exception stubs write to after recording a fault in the mailbox.
pub const PORT_FAULT: u16 = 0x3f1;
/// Unclaimed port whose reads go to the VMM's userspace loop (`inl_from_vmm`), like
/// kvm-unit-tests' `inl_from_qemu` (0x1234).
pub const PORT_VMM: u16 = 0x1234;
/// ELCR register of the in-kernel i8259 PIC (`inl_from_kernel`, `outl_to_kernel`).
pub const PORT_KERNEL: u16 = 0x4d0;
/// Guest-physical address with no memory slot behind it: loads from it are MMIO exits
/// handled by the VMM in userspace (`mmio_from_vmm`).
pub const MMIO_ADDR: u64 = 0x2000_0000;
/// Interrupt vector used by `self_ipi_sti_hlt`.
pub const IPI_VECTOR: u8 = 0xb0;

/// The shared page through which the VMM and the guest exchange requests and results.
///
/// All fields are little-endian `u64` at these guest-physical addresses.
pub mod mailbox {
    /// Guest-physical address of the mailbox page.
    pub const BASE: u64 = 0x6000;
    /// Iterations for the next round (written by the VMM, at least 1).
    pub const ITERATIONS: u64 = BASE;
    /// Which loop the next round runs: [`LOOP_BENCH`] or [`LOOP_BASELINE`].
    pub const LOOP: u64 = BASE + 0x08;
    /// TSC cycles the last round took (written by the guest).
    pub const CYCLES: u64 = BASE + 0x10;
    /// Exception vector (written by a fault stub).
    pub const FAULT_VECTOR: u64 = BASE + 0x20;
    /// Exception error code, 0 for vectors without one.
    pub const FAULT_ERROR: u64 = BASE + 0x28;
    /// RIP of the faulting instruction.
    pub const FAULT_RIP: u64 = BASE + 0x30;
    /// CS at the time of the fault (its low two bits are the CPL).
    pub const FAULT_CS: u64 = BASE + 0x38;
    /// `LOOP` value: run the benchmark's loop.
    pub const LOOP_BENCH: u64 = 0;
    /// `LOOP` value: run the empty calibration loop (`dec; jnz`).
    pub const LOOP_BASELINE: u64 = 1;
}

/// CPU vendor, which picks `vmcall` (Intel) or `vmmcall` (AMD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vendor {
    /// Intel and everything else that is not AMD.
    #[default]
    Intel,
    /// AMD or Hygon.
    Amd,
}

/// What one iteration of a benchmark is expected to cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// No exit at all (baseline).
    None,
    /// CPUID intercept, handled in the kernel.
    Cpuid,
    /// Hypercall instruction.
    Hypercall,
    /// Port I/O handled by the in-kernel device model.
    IoKernel,
    /// Port I/O that exits to the VMM's userspace loop.
    IoUser,
    /// MMIO that exits to the VMM's userspace loop.
    MmioUser,
    /// Control-register access.
    Cr,
    /// Debug-register access.
    Dr,
    /// MSR access.
    Msr,
    /// `hlt` woken up by an interrupt.
    Hlt,
    /// A deliberate exception (test-only).
    Fault,
    /// Never finishes (test-only).
    Hang,
}

impl ExitKind {
    /// Short stable name used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::None => "none",
            ExitKind::Cpuid => "cpuid",
            ExitKind::Hypercall => "hypercall",
            ExitKind::IoKernel => "io-kernel",
            ExitKind::IoUser => "io-user",
            ExitKind::MmioUser => "mmio-user",
            ExitKind::Cr => "cr-access",
            ExitKind::Dr => "dr-access",
            ExitKind::Msr => "msr",
            ExitKind::Hlt => "hlt",
            ExitKind::Fault => "exception",
            ExitKind::Hang => "none (hangs)",
        }
    }
}

/// The operation a benchmark repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `nop`.
    Nop,
    /// `xor eax,eax; xor ecx,ecx; cpuid`.
    Cpuid,
    /// `xor eax,eax; vmcall` (or `vmmcall` on AMD).
    Vmcall,
    /// `in al, dx` from [`PORT_KERNEL`].
    InlFromKernel,
    /// `out dx, al` of 0 to [`PORT_KERNEL`].
    OutlToKernel,
    /// `in eax, dx` from [`PORT_VMM`].
    InlFromVmm,
    /// `mov eax, [MMIO_ADDR]`.
    MmioFromVmm,
    /// `mov rax, cr8`.
    MovFromCr8,
    /// `mov cr8, rax` with rax = 0.
    MovToCr8,
    /// `mov dr7, rax` with rax = 0x400.
    MovDr,
    /// `rdmsr` of IA32_TSC_ADJUST (0x3b).
    RdTscAdjustMsr,
    /// `wrmsr` of 0 to IA32_TSC_ADJUST (0x3b).
    WrTscAdjustMsr,
    /// `wrmsr` of 0 to IA32_KERNEL_GS_BASE (0xc0000102).
    WrKernelGsBase,
    /// x2APIC self-IPI, then `sti; hlt; cli`; the handler writes EOI.
    SelfIpiStiHlt,
    /// `ud2` (test-only: must be reported as a #UD).
    FaultUd,
    /// `jmp $` (test-only: must be stopped by the deadline).
    Hang,
}

/// One benchmark: its name, what it exercises and how it must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Benchmark {
    /// Name, the same as kvm-unit-tests' `x86/vmexit.c` where it means the same thing.
    pub name: &'static str,
    /// One line on what it exercises.
    pub description: &'static str,
    /// The repeated operation.
    pub op: Op,
    /// True if the operation is privileged (runs only at CPL0).
    pub needs_cpl0: bool,
    /// True for test-only benchmarks not listed or run by default.
    pub hidden: bool,
    /// What each iteration is expected to cause.
    pub exit_kind: ExitKind,
}

const fn b(
    name: &'static str,
    op: Op,
    needs_cpl0: bool,
    exit_kind: ExitKind,
    description: &'static str,
) -> Benchmark {
    Benchmark { name, description, op, needs_cpl0, hidden: false, exit_kind }
}

/// Every benchmark, in the order they run by default. Hidden ones come last.
pub static BENCHMARKS: &[Benchmark] = &[
    b("nop", Op::Nop, false, ExitKind::None, "nop: no exit; checks the baseline subtraction"),
    b(
        "cpuid",
        Op::Cpuid,
        false,
        ExitKind::Cpuid,
        "CPUID leaf 0: intercepted, handled in the kernel",
    ),
    b(
        "vmcall",
        Op::Vmcall,
        false,
        ExitKind::Hypercall,
        "VMCALL/VMMCALL hypercall with eax=0 (on PVM: hangs at CPL0, goes to L0 at CPL3)",
    ),
    b(
        "inl_from_kernel",
        Op::InlFromKernel,
        false,
        ExitKind::IoKernel,
        "IN from port 0x4d0 (ELCR of the in-kernel PIC): port I/O handled in the kernel",
    ),
    b(
        "outl_to_kernel",
        Op::OutlToKernel,
        false,
        ExitKind::IoKernel,
        "OUT to port 0x4d0 (ELCR of the in-kernel PIC): port I/O handled in the kernel",
    ),
    b(
        "inl_from_vmm",
        Op::InlFromVmm,
        false,
        ExitKind::IoUser,
        "IN from port 0x1234: KVM_EXIT_IO to exitscope's userspace loop (kvm-unit-tests' inl_from_qemu)",
    ),
    b(
        "mmio_from_vmm",
        Op::MmioFromVmm,
        false,
        ExitKind::MmioUser,
        "load from unbacked guest-physical 0x20000000: KVM_EXIT_MMIO to exitscope's userspace loop",
    ),
    b(
        "mov_from_cr8",
        Op::MovFromCr8,
        true,
        ExitKind::Cr,
        "MOV from CR8 (TPR of the in-kernel LAPIC)",
    ),
    b("mov_to_cr8", Op::MovToCr8, true, ExitKind::Cr, "MOV 0 to CR8 (TPR of the in-kernel LAPIC)"),
    b("mov_dr", Op::MovDr, true, ExitKind::Dr, "MOV 0x400 to DR7: debug-register intercept"),
    b(
        "rd_tsc_adjust_msr",
        Op::RdTscAdjustMsr,
        true,
        ExitKind::Msr,
        "RDMSR IA32_TSC_ADJUST (0x3b): MSR read handled in the kernel",
    ),
    b(
        "wr_tsc_adjust_msr",
        Op::WrTscAdjustMsr,
        true,
        ExitKind::Msr,
        "WRMSR 0 to IA32_TSC_ADJUST (0x3b): MSR write handled in the kernel",
    ),
    b(
        "wr_kernel_gs_base",
        Op::WrKernelGsBase,
        true,
        ExitKind::Msr,
        "WRMSR 0 to IA32_KERNEL_GS_BASE (0xc0000102)",
    ),
    b(
        "self_ipi_sti_hlt",
        Op::SelfIpiStiHlt,
        true,
        ExitKind::Hlt,
        "hlt wake-up: x2APIC self-IPI, STI; HLT, handler writes EOI (several exits per iteration)",
    ),
    Benchmark {
        hidden: true,
        ..b(
            "fault_ud",
            Op::FaultUd,
            false,
            ExitKind::Fault,
            "test-only: UD2, must be reported as #UD",
        )
    },
    Benchmark {
        hidden: true,
        ..b(
            "hang",
            Op::Hang,
            false,
            ExitKind::Hang,
            "test-only: JMP $, must be stopped by the deadline",
        )
    },
];

/// Finds a benchmark by exact name (hidden ones included).
pub fn find(name: &str) -> Option<&'static Benchmark> {
    BENCHMARKS.iter().find(|b| b.name == name)
}

/// What the generated code depends on besides the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestParams {
    /// Guest-physical (= virtual, identity mapped) address the code is placed at.
    pub base: u64,
    /// Host CPU vendor.
    pub vendor: Vendor,
    /// Ring-3 code selector the CPL0 preamble returns to.
    pub user_cs: u16,
    /// Ring-3 data/stack selector.
    pub user_ds: u16,
    /// Ring-3 stack pointer.
    pub user_stack: u64,
}

impl Default for GuestParams {
    fn default() -> Self {
        GuestParams {
            base: 0x10000,
            vendor: Vendor::Intel,
            user_cs: 0x33,
            user_ds: 0x2b,
            user_stack: 0x80000,
        }
    }
}

/// Guest code for one benchmark, ready to be copied to [`GuestParams::base`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    /// Machine code.
    pub code: Vec<u8>,
    /// Address the code was assembled for.
    pub base: u64,
    /// Where the vCPU starts (RIP) to run the benchmark at the CPL it starts at.
    pub entry: u64,
    /// Where a vCPU started at CPL0 begins to run the benchmark at CPL3: a preamble that
    /// `iretq`s to [`GuestImage::entry`] with the ring-3 selectors and stack.
    pub entry_to_cpl3: u64,
    /// Handler address for exception vectors 0..32 (IDT gates).
    pub exception_stubs: [u64; 32],
    /// Handler for [`IPI_VECTOR`] (writes the x2APIC EOI and returns).
    pub ipi_handler: u64,
    /// Address range of the benchmark loop's body (without `dec; jnz`).
    pub body: Range<u64>,
    /// Address of the empty baseline loop (`dec; jnz`).
    pub baseline_loop: u64,
}

/// Error from generating guest code.
#[derive(Debug, thiserror::Error)]
#[error("generating guest code for {bench}: {source}")]
pub struct AsmError {
    bench: &'static str,
    #[source]
    source: IcedError,
}

/// True for exception vectors whose frame carries an error code.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Name of an exception vector (`#UD`), or `"vector N"`.
pub fn vector_name(vector: u64) -> String {
    const NAMES: [&str; 22] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "reserved", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    ];
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .map_or_else(|| format!("vector {vector}"), |n| (*n).to_string())
}

/// Generates the guest image for `bench`.
///
/// # Errors
///
/// Fails only if iced-x86 refuses an instruction, which would be a bug here.
pub fn assemble(bench: &Benchmark, params: &GuestParams) -> Result<GuestImage, AsmError> {
    let err = |source| AsmError { bench: bench.name, source };
    // Both timed loops start on a 64-byte boundary, so that the benchmark loop and the
    // empty baseline loop are fetched alike. Padding shifts later code and may change
    // branch sizes, so iterate to a fixed point (padding only grows; a few passes).
    let mut pads = [0usize; 2];
    let mut image = build(bench, params, pads).map_err(err)?;
    for _ in 0..8 {
        let misalign = |addr: u64| usize::try_from(addr % LOOP_ALIGN).unwrap_or(0);
        let (a, b) = (misalign(image.body.start), misalign(image.baseline_loop));
        if a == 0 && b == 0 {
            break;
        }
        let grow = |pad: usize, mis: usize| if mis == 0 { pad } else { pad + (64 - mis) };
        pads = [grow(pads[0], a), grow(pads[1], b)];
        image = build(bench, params, pads).map_err(err)?;
    }
    Ok(image)
}

/// Alignment of the timed loops.
const LOOP_ALIGN: u64 = 64;

/// `rax = rdtsc()` as one 64-bit value (clobbers rdx).
fn rdtsc64(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// Emits one iteration's operation.
fn emit_body(
    a: &mut CodeAssembler,
    op: Op,
    vendor: Vendor,
    loop_start: CodeLabel,
) -> Result<(), IcedError> {
    match op {
        Op::Nop => a.nop(),
        Op::Cpuid => {
            a.xor(eax, eax)?;
            a.xor(ecx, ecx)?;
            a.cpuid()
        }
        Op::Vmcall => {
            a.xor(eax, eax)?;
            match vendor {
                Vendor::Intel => a.vmcall(),
                Vendor::Amd => a.vmmcall(),
            }
        }
        Op::InlFromKernel => {
            a.mov(edx, u32::from(PORT_KERNEL))?;
            a.in_(al, dx)
        }
        Op::OutlToKernel => {
            a.mov(edx, u32::from(PORT_KERNEL))?;
            a.xor(eax, eax)?;
            a.out(dx, al)
        }
        Op::InlFromVmm => {
            a.mov(edx, u32::from(PORT_VMM))?;
            a.in_(eax, dx)
        }
        Op::MmioFromVmm => a.mov(eax, dword_ptr(MMIO_ADDR)),
        Op::MovFromCr8 => a.mov(rax, cr8),
        Op::MovToCr8 => {
            a.xor(eax, eax)?;
            a.mov(cr8, rax)
        }
        Op::MovDr => {
            a.mov(eax, 0x400u32)?;
            a.mov(dr7, rax)
        }
        Op::RdTscAdjustMsr => {
            a.mov(ecx, 0x3bu32)?;
            a.rdmsr()
        }
        Op::WrTscAdjustMsr => {
            a.mov(ecx, 0x3bu32)?;
            a.xor(eax, eax)?;
            a.xor(edx, edx)?;
            a.wrmsr()
        }
        Op::WrKernelGsBase => {
            a.mov(ecx, 0xc000_0102u32)?;
            a.xor(eax, eax)?;
            a.xor(edx, edx)?;
            a.wrmsr()
        }
        Op::SelfIpiStiHlt => {
            // x2APIC SELF_IPI (MSR 0x83f) with our vector, then wait for it.
            a.mov(ecx, 0x83fu32)?;
            a.mov(eax, u32::from(IPI_VECTOR))?;
            a.xor(edx, edx)?;
            a.wrmsr()?;
            a.sti()?;
            a.hlt()?;
            a.cli()
        }
        Op::FaultUd => a.ud2(),
        Op::Hang => a.jmp(loop_start),
    }
}

/// One-time setup before the server loop (CPL0-only benchmarks may use privileged code).
fn emit_setup(a: &mut CodeAssembler, op: Op) -> Result<(), IcedError> {
    if op == Op::SelfIpiStiHlt {
        // IA32_APIC_BASE: set EN (bit 11) and EXTD (bit 10) to enter x2APIC mode.
        a.mov(ecx, 0x1bu32)?;
        a.rdmsr()?;
        a.or(eax, 0xc00)?;
        a.wrmsr()?;
        // Spurious-interrupt vector register: APIC software enable, vector 0xff.
        a.mov(ecx, 0x80fu32)?;
        a.mov(eax, 0x1ffu32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
    }
    Ok(())
}

fn build(
    bench: &Benchmark,
    params: &GuestParams,
    pads: [usize; 2],
) -> Result<GuestImage, IcedError> {
    let mut a = CodeAssembler::new(64)?;

    // Exception stubs: push a dummy error code where the CPU pushes none, then the vector.
    let mut stubs: Vec<CodeLabel> = Vec::with_capacity(32);
    let fault_common = a.create_label();
    for vector in 0u8..32 {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        if !has_error_code(vector) {
            a.push(0i32)?;
        }
        a.push(i32::from(vector))?;
        a.jmp(fault_common)?;
        stubs.push(l);
    }
    // Common fault path: record vector, error code, RIP and CS, tell the VMM, stop.
    let mut fault_common = fault_common;
    a.set_label(&mut fault_common)?;
    a.pop(rax)?;
    a.mov(qword_ptr(mailbox::FAULT_VECTOR), rax)?;
    a.pop(rax)?;
    a.mov(qword_ptr(mailbox::FAULT_ERROR), rax)?;
    a.mov(rax, qword_ptr(rsp))?;
    a.mov(qword_ptr(mailbox::FAULT_RIP), rax)?;
    a.mov(rax, qword_ptr(rsp + 8))?;
    a.mov(qword_ptr(mailbox::FAULT_CS), rax)?;
    a.mov(edx, u32::from(PORT_FAULT))?;
    let mut dead = a.create_label();
    a.set_label(&mut dead)?;
    a.out(dx, al)?;
    a.jmp(dead)?;

    // IPI handler for self_ipi_sti_hlt: x2APIC EOI (MSR 0x80b) and return.
    let mut ipi = a.create_label();
    a.set_label(&mut ipi)?;
    a.push(rax)?;
    a.push(rcx)?;
    a.push(rdx)?;
    a.mov(ecx, 0x80bu32)?;
    a.xor(eax, eax)?;
    a.xor(edx, edx)?;
    a.wrmsr()?;
    a.pop(rdx)?;
    a.pop(rcx)?;
    a.pop(rax)?;
    a.iretq()?;

    // CPL0 -> CPL3 preamble: an interrupt-return frame (SS, RSP, RFLAGS, CS, RIP).
    // Some hosts (PVM) only intercept CPL3 CPUID once the guest has entered ring 3 this way.
    let entry = a.create_label();
    let mut to_cpl3 = a.create_label();
    a.set_label(&mut to_cpl3)?;
    a.push(i32::from(params.user_ds))?;
    a.mov(rax, params.user_stack)?;
    a.push(rax)?;
    a.push(2i32)?;
    a.push(i32::from(params.user_cs))?;
    a.lea(rax, ptr(entry))?;
    a.push(rax)?;
    a.iretq()?;

    // Entry: one-time setup, then the server loop.
    let mut entry = entry;
    a.set_label(&mut entry)?;
    a.nop()?;
    emit_setup(&mut a, bench.op)?;

    let mut top = a.create_label();
    let mut baseline = a.create_label();
    let mut body_start = a.create_label();
    let mut body_end = a.create_label();
    let mut report = a.create_label();
    let mut base_loop = a.create_label();

    a.set_label(&mut top)?;
    a.mov(rsi, qword_ptr(mailbox::ITERATIONS))?;
    a.mov(rax, qword_ptr(mailbox::LOOP))?;
    a.test(rax, rax)?;
    a.jnz(baseline)?;
    rdtsc64(&mut a)?;
    a.mov(r12, rax)?;
    for _ in 0..pads[0] {
        a.nop()?;
    }
    a.set_label(&mut body_start)?;
    emit_body(&mut a, bench.op, params.vendor, body_start)?;
    a.set_label(&mut body_end)?;
    a.dec(rsi)?;
    a.jnz(body_start)?;
    a.set_label(&mut report)?;
    rdtsc64(&mut a)?;
    a.sub(rax, r12)?;
    a.mov(qword_ptr(mailbox::CYCLES), rax)?;
    a.mov(edx, u32::from(PORT_DONE))?;
    a.out(dx, al)?;
    a.jmp(top)?;

    // Baseline: the same loop with an empty body.
    a.set_label(&mut baseline)?;
    rdtsc64(&mut a)?;
    a.mov(r12, rax)?;
    for _ in 0..pads[1] {
        a.nop()?;
    }
    a.set_label(&mut base_loop)?;
    a.dec(rsi)?;
    a.jnz(base_loop)?;
    a.jmp(report)?;

    let result =
        a.assemble_options(params.base, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let mut exception_stubs = [0u64; 32];
    for (slot, label) in exception_stubs.iter_mut().zip(&stubs) {
        *slot = result.label_ip(label)?;
    }
    Ok(GuestImage {
        base: params.base,
        entry: result.label_ip(&entry)?,
        entry_to_cpl3: result.label_ip(&to_cpl3)?,
        exception_stubs,
        ipi_handler: result.label_ip(&ipi)?,
        body: result.label_ip(&body_start)?..result.label_ip(&body_end)?,
        baseline_loop: result.label_ip(&base_loop)?,
        code: result.inner.code_buffer,
    })
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

    use super::*;

    fn decode(image: &GuestImage, range: Range<u64>) -> Vec<Instruction> {
        let start = usize::try_from(range.start - image.base).unwrap();
        let end = usize::try_from(range.end - image.base).unwrap();
        let mut d =
            Decoder::with_ip(64, &image.code[start..end], range.start, DecoderOptions::NONE);
        d.iter().collect()
    }

    fn body(name: &str) -> Vec<Instruction> {
        let image = assemble(find(name).unwrap(), &GuestParams::default()).unwrap();
        decode(&image, image.body.clone())
    }

    fn mnemonics(ins: &[Instruction]) -> Vec<Mnemonic> {
        ins.iter().map(Instruction::mnemonic).collect()
    }

    #[test]
    fn bodies_are_the_intended_instructions() {
        use Mnemonic::*;
        assert_eq!(mnemonics(&body("nop")), [Nop]);
        assert_eq!(mnemonics(&body("cpuid")), [Xor, Xor, Cpuid]);
        assert_eq!(mnemonics(&body("vmcall")), [Xor, Vmcall]);
        assert_eq!(mnemonics(&body("mov_from_cr8")), [Mov]);
        assert_eq!(mnemonics(&body("rd_tsc_adjust_msr")), [Mov, Rdmsr]);
        assert_eq!(mnemonics(&body("wr_kernel_gs_base")), [Mov, Xor, Xor, Wrmsr]);
        assert_eq!(mnemonics(&body("self_ipi_sti_hlt")), [Mov, Mov, Xor, Wrmsr, Sti, Hlt, Cli]);
        assert_eq!(mnemonics(&body("fault_ud")), [Ud2]);
        assert_eq!(mnemonics(&body("hang")), [Jmp]);
    }

    #[test]
    fn port_and_mmio_operands() {
        let inl = body("inl_from_vmm");
        assert_eq!(inl[0].immediate32(), u32::from(PORT_VMM));
        assert_eq!(inl[1].mnemonic(), Mnemonic::In);
        assert_eq!(inl[1].op0_register(), Register::EAX);
        assert_eq!(inl[1].op1_register(), Register::DX);

        let kin = body("inl_from_kernel");
        assert_eq!(kin[0].immediate32(), u32::from(PORT_KERNEL));
        assert_eq!(kin[1].op0_register(), Register::AL);

        let out = body("outl_to_kernel");
        assert_eq!(out[2].mnemonic(), Mnemonic::Out);

        let mmio = body("mmio_from_vmm");
        assert_eq!(mmio.len(), 1);
        assert_eq!(mmio[0].op1_kind(), OpKind::Memory);
        assert_eq!(mmio[0].memory_base(), Register::None);
        assert_eq!(mmio[0].memory_displacement64(), MMIO_ADDR);

        let to_cr8 = body("mov_to_cr8");
        assert_eq!(to_cr8[1].op0_register(), Register::CR8);
        let dr = body("mov_dr");
        assert_eq!(dr[1].op0_register(), Register::DR7);
    }

    #[test]
    fn preamble_irets_to_the_entry_at_ring3() {
        let p = GuestParams::default();
        let image = assemble(find("cpuid").unwrap(), &p).unwrap();
        let ins = decode(&image, image.entry_to_cpl3..image.entry);
        let m = mnemonics(&ins);
        assert_eq!(m.last(), Some(&Mnemonic::Iretq));
        assert_eq!(ins[0].immediate8to64(), i64::from(p.user_ds));
        assert_eq!(ins[3].immediate8to64(), 2);
        assert_eq!(ins[4].immediate8to64(), i64::from(p.user_cs));
        assert_eq!(ins[5].memory_displacement64(), image.entry);
    }

    #[test]
    fn timed_loops_are_aligned() {
        for b in BENCHMARKS {
            let image = assemble(b, &GuestParams::default()).unwrap();
            assert_eq!(image.body.start % 64, 0, "{}", b.name);
            assert_eq!(image.baseline_loop % 64, 0, "{}", b.name);
            let base = decode(&image, image.baseline_loop..image.baseline_loop + 5);
            assert_eq!(mnemonics(&base)[..2], [Mnemonic::Dec, Mnemonic::Jne]);
            assert_eq!(base[1].near_branch_target(), image.baseline_loop);
        }
    }

    #[test]
    fn amd_uses_vmmcall() {
        let p = GuestParams { vendor: Vendor::Amd, ..GuestParams::default() };
        let image = assemble(find("vmcall").unwrap(), &p).unwrap();
        let ins = decode(&image, image.body.clone());
        assert_eq!(ins[1].mnemonic(), Mnemonic::Vmmcall);
    }

    #[test]
    fn hang_jumps_to_itself() {
        let image = assemble(find("hang").unwrap(), &GuestParams::default()).unwrap();
        let ins = decode(&image, image.body.clone());
        assert_eq!(ins[0].near_branch_target(), image.body.start);
    }

    #[test]
    fn loop_is_timed_and_reports_through_the_done_port() {
        let image = assemble(find("cpuid").unwrap(), &GuestParams::default()).unwrap();
        let end = image.base + image.code.len() as u64;
        let all = decode(&image, image.entry..end);
        let m = mnemonics(&all);
        // rdtsc before and after the loop, and a done `out` after the second one.
        let rdtscs: Vec<usize> =
            m.iter().enumerate().filter(|(_, x)| **x == Mnemonic::Rdtsc).map(|(i, _)| i).collect();
        assert!(rdtscs.len() >= 3, "{m:?}");
        let after = &all[rdtscs[1]..];
        let done = after.iter().position(|i| i.mnemonic() == Mnemonic::Out).unwrap();
        assert_eq!(after[done - 1].immediate32(), u32::from(PORT_DONE));
        // The iteration count comes from the mailbox.
        assert!(all.iter().any(|i| i.mnemonic() == Mnemonic::Mov
            && i.op0_register() == Register::RSI
            && i.memory_displacement64() == mailbox::ITERATIONS));
    }

    #[test]
    fn exception_stubs_push_vector_and_dummy_error_code() {
        let image = assemble(find("nop").unwrap(), &GuestParams::default()).unwrap();
        for v in 0u8..32 {
            let start = image.exception_stubs[usize::from(v)];
            let ins = decode(&image, start..start + 16);
            let mut i = 0;
            if !has_error_code(v) {
                assert_eq!(ins[0].mnemonic(), Mnemonic::Push);
                assert_eq!(ins[0].immediate8to64(), 0);
                i = 1;
            }
            assert_eq!(ins[i].mnemonic(), Mnemonic::Push, "vector {v}");
            assert_eq!(ins[i].immediate8to64(), i64::from(v));
            assert_eq!(ins[i + 1].mnemonic(), Mnemonic::Jmp);
        }
    }

    #[test]
    fn names_are_unique_and_listed() {
        for (i, x) in BENCHMARKS.iter().enumerate() {
            assert!(BENCHMARKS[i + 1..].iter().all(|y| y.name != x.name));
            assert_eq!(find(x.name), Some(x));
        }
        assert_eq!(vector_name(6), "#UD");
        assert_eq!(vector_name(99), "vector 99");
    }
}
