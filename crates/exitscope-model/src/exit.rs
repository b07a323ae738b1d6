//! The one exit vocabulary: what a VM exit was, in vendor-neutral terms, and what the trace
//! said about it.
//!
//! Every source of exits in exitscope (function_graph handlers, `kvm_exit` events, the
//! reason-specific tracepoints `kvm_cpuid`/`kvm_pio`/..., trace.dat and perf.data payloads)
//! ends up as an [`ExitReason`]: a neutral [`ExitKind`] plus, where the trace said it, the
//! instruction set ([`Isa`]), the raw code and the vendor's name. This module owns the decoders:
//!
//! - [`vendor_reason`] maps the names the kernel prints for `kvm_exit` (`VMX_EXIT_REASONS`,
//!   `SVM_EXIT_REASONS` of the kernel's uapi headers), trace-cmd's kvm plugin spellings
//!   (`EXIT_NPF`, `EXIT_IOIO`) and raw codes to a reason;
//! - [`parse_kvm_exit`] reads a `kvm_exit` event's text by its own field grammar
//!   (`[vcpu N] reason NAME [FLAGS] rip 0x.. [SYM] info|info1 .. [info2 ..] [intr_info ..]
//!   [error_code ..]`), so a line wrapped or cut after `rip` still gives the right reason;
//! - [`tracepoint_exit`] maps the reason-specific tracepoints to the exit they stand for, with
//!   the key they carry (port, MSR, guest physical address).
//!
//! ```
//! use exitscope_model::exit::{parse_kvm_exit, vendor_reason, ExitKind, Isa};
//! let ev = parse_kvm_exit("vcpu 0 reason npf rip 0xfd11d info1 0x100000014 info2 0xfd000").unwrap();
//! assert_eq!(ev.reason, "npf");
//! let r = vendor_reason(ev.reason);
//! assert_eq!((r.kind, r.isa, r.code), (ExitKind::EptNpf, Some(Isa::Svm), Some(0x400)));
//! assert_eq!(r.label(), "EPT_NPF");
//! ```

use std::fmt;

use crate::bytes::find_byte;

/// The hardware virtualization interface an exit code belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Isa {
    /// Intel VMX.
    Vmx,
    /// AMD SVM.
    Svm,
}

impl Isa {
    /// `vmx` or `svm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::Vmx => "vmx",
            Isa::Svm => "svm",
        }
    }
}

macro_rules! kinds {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// A vendor-neutral exit reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ExitKind {
            $(#[doc = $doc] $variant,)*
        }

        impl ExitKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ExitKind] = &[$(ExitKind::$variant,)*];

            /// The name reports use (`CPUID`, `EPT_NPF`, `MSR_WRITE`, `unknown`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(ExitKind::$variant => $name,)*
                }
            }
        }
    };
}

kinds! {
    Cpuid => "CPUID": "CPUID instruction.",
    Io => "IO": "Port I/O (`IN`/`OUT`/string I/O).",
    Msr => "MSR": "RDMSR or WRMSR, direction not known (SVM's one `msr` exit code).",
    MsrRead => "MSR_READ": "RDMSR.",
    MsrWrite => "MSR_WRITE": "WRMSR.",
    EptNpf => "EPT_NPF": "Nested page fault: VMX EPT violation, SVM NPF.",
    Mmio => "MMIO": "Emulated MMIO: VMX EPT misconfiguration, or an NPF handled as MMIO.",
    Hlt => "HLT": "HLT (or SVM's idle HLT).",
    ExternalInterrupt => "EXTERNAL_INTERRUPT": "A host interrupt arrived while the guest ran.",
    InterruptWindow => "INTERRUPT_WINDOW": "The guest became able to take a pending interrupt.",
    Nmi => "NMI": "NMI or NMI window.",
    Exception => "EXCEPTION": "A guest exception or NMI intercepted by the hypervisor.",
    Hypercall => "HYPERCALL": "VMCALL / VMMCALL.",
    CrAccess => "CR_ACCESS": "Control register access.",
    DrAccess => "DR_ACCESS": "Debug register access.",
    Pause => "PAUSE": "PAUSE loop exiting.",
    PreemptionTimer => "PREEMPTION_TIMER": "VMX preemption timer expired.",
    Apic => "APIC": "APIC access, APIC write, EOI induced, TPR below threshold, AVIC.",
    Xsetbv => "XSETBV": "XSETBV.",
    Invlpg => "INVLPG": "INVLPG.",
    Invpcid => "INVPCID": "INVPCID.",
    Rdpmc => "RDPMC": "RDPMC.",
    Rdtsc => "RDTSC": "RDTSC or RDTSCP.",
    Wbinvd => "WBINVD": "WBINVD or INVD.",
    MwaitMonitor => "MWAIT_MONITOR": "MWAIT or MONITOR.",
    TaskSwitch => "TASK_SWITCH": "Hardware task switch.",
    Shutdown => "SHUTDOWN": "Triple fault / shutdown.",
    BusLock => "BUS_LOCK": "Bus lock detected.",
    PmlFull => "PML_FULL": "Page-modification log full.",
    Vmgexit => "VMGEXIT": "SEV-ES/SNP guest-initiated exit.",
    NestedVirt => "NESTED_VIRT": "A virtualization instruction of a nested hypervisor (VMREAD, VMRUN, ...).",
    InvalidState => "INVALID_STATE": "VM entry failed: invalid guest state.",
    Other => "OTHER": "A reason the trace names that has no neutral kind (see the vendor name).",
    Unknown => "unknown": "Nothing in the trace said which exit this was.",
}

impl ExitKind {
    /// The kind named `name` ([`ExitKind::name`]), if any.
    pub fn from_name(name: &str) -> Option<ExitKind> {
        ExitKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether `self` is a more specific form of `general` (MSR_READ of MSR, MMIO of EPT_NPF).
    pub fn refines(self, general: ExitKind) -> bool {
        matches!(
            (self, general),
            (ExitKind::MsrRead | ExitKind::MsrWrite, ExitKind::Msr)
                | (ExitKind::Mmio, ExitKind::EptNpf)
        )
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A classified exit reason: the neutral kind and what the trace said.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExitReason {
    /// The neutral kind.
    pub kind: ExitKind,
    /// VMX or SVM, when the trace's naming or code says which.
    pub isa: Option<Isa>,
    /// The raw exit code (VMX basic exit reason, SVM exit code), when known.
    pub code: Option<u32>,
    /// The reason as the trace spelled it (`EPT_VIOLATION`, `npf`, `EXIT_IOIO`, `PF excp`),
    /// `None` when the reason was not read from a vendor name (handlers, tracepoints).
    pub vendor: Option<String>,
}

impl ExitReason {
    /// A reason of `kind` with nothing else known.
    pub fn of(kind: ExitKind) -> ExitReason {
        ExitReason { kind, isa: None, code: None, vendor: None }
    }

    /// The name reports show: the neutral kind's name, or for [`ExitKind::Other`] the vendor
    /// name (`VMCLEAR`, `0x4e`) so that distinct unknown reasons stay apart.
    pub fn label(&self) -> &str {
        match (self.kind, &self.vendor) {
            (ExitKind::Other, Some(v)) => v,
            (k, _) => k.name(),
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// `(code, kernel name, kind)` of VMX basic exit reasons, as `VMX_EXIT_REASONS` prints them.
const VMX: &[(u32, &str, ExitKind)] = {
    use ExitKind::*;
    &[
        (0, "EXCEPTION_NMI", Exception),
        (1, "EXTERNAL_INTERRUPT", ExternalInterrupt),
        (2, "TRIPLE_FAULT", Shutdown),
        (3, "INIT_SIGNAL", Other),
        (4, "SIPI_SIGNAL", Other),
        (7, "INTERRUPT_WINDOW", InterruptWindow),
        (7, "PENDING_INTERRUPT", InterruptWindow), // the name before 5.8
        (8, "NMI_WINDOW", Nmi),
        (9, "TASK_SWITCH", TaskSwitch),
        (10, "CPUID", Cpuid),
        (12, "HLT", Hlt),
        (13, "INVD", Wbinvd),
        (14, "INVLPG", Invlpg),
        (15, "RDPMC", Rdpmc),
        (16, "RDTSC", Rdtsc),
        (18, "VMCALL", Hypercall),
        (19, "VMCLEAR", NestedVirt),
        (20, "VMLAUNCH", NestedVirt),
        (21, "VMPTRLD", NestedVirt),
        (22, "VMPTRST", NestedVirt),
        (23, "VMREAD", NestedVirt),
        (24, "VMRESUME", NestedVirt),
        (25, "VMWRITE", NestedVirt),
        (26, "VMOFF", NestedVirt),
        (27, "VMON", NestedVirt),
        (28, "CR_ACCESS", CrAccess),
        (29, "DR_ACCESS", DrAccess),
        (30, "IO_INSTRUCTION", Io),
        (31, "MSR_READ", MsrRead),
        (32, "MSR_WRITE", MsrWrite),
        (33, "INVALID_STATE", InvalidState),
        (34, "MSR_LOAD_FAIL", InvalidState),
        (36, "MWAIT_INSTRUCTION", MwaitMonitor),
        (37, "MONITOR_TRAP_FLAG", Other),
        (39, "MONITOR_INSTRUCTION", MwaitMonitor),
        (40, "PAUSE_INSTRUCTION", Pause),
        (41, "MCE_DURING_VMENTRY", InvalidState),
        (43, "TPR_BELOW_THRESHOLD", Apic),
        (44, "APIC_ACCESS", Apic),
        (45, "EOI_INDUCED", Apic),
        (46, "GDTR_IDTR", Other),
        (47, "LDTR_TR", Other),
        (48, "EPT_VIOLATION", EptNpf),
        (49, "EPT_MISCONFIG", Mmio),
        (50, "INVEPT", NestedVirt),
        (51, "RDTSCP", Rdtsc),
        (52, "PREEMPTION_TIMER", PreemptionTimer),
        (53, "INVVPID", NestedVirt),
        (54, "WBINVD", Wbinvd),
        (55, "XSETBV", Xsetbv),
        (56, "APIC_WRITE", Apic),
        (57, "RDRAND", Other),
        (58, "INVPCID", Invpcid),
        (59, "VMFUNC", NestedVirt),
        (60, "ENCLS", Other),
        (61, "RDSEED", Other),
        (62, "PML_FULL", PmlFull),
        (63, "XSAVES", Other),
        (64, "XRSTORS", Other),
        (67, "UMWAIT", MwaitMonitor),
        (68, "TPAUSE", MwaitMonitor),
        (74, "BUS_LOCK", BusLock),
        (75, "NOTIFY", Other),
        (77, "TDCALL", Hypercall),
    ]
};

/// `(code, kernel name, trace-cmd plugin suffix after `EXIT_`, kind)` of SVM exit codes, as
/// `SVM_EXIT_REASONS` and trace-cmd's kvm plugin print them.
const SVM: &[(u32, &str, &str, ExitKind)] = {
    use ExitKind::*;
    &[
        (0x000, "read_cr0", "READ_CR0", CrAccess),
        (0x003, "read_cr3", "READ_CR3", CrAccess),
        (0x004, "read_cr4", "READ_CR4", CrAccess),
        (0x008, "read_cr8", "READ_CR8", CrAccess),
        (0x010, "write_cr0", "WRITE_CR0", CrAccess),
        (0x013, "write_cr3", "WRITE_CR3", CrAccess),
        (0x014, "write_cr4", "WRITE_CR4", CrAccess),
        (0x018, "write_cr8", "WRITE_CR8", CrAccess),
        (0x020, "read_dr0", "READ_DR0", DrAccess),
        (0x021, "read_dr1", "READ_DR1", DrAccess),
        (0x022, "read_dr2", "READ_DR2", DrAccess),
        (0x023, "read_dr3", "READ_DR3", DrAccess),
        (0x024, "read_dr4", "READ_DR4", DrAccess),
        (0x025, "read_dr5", "READ_DR5", DrAccess),
        (0x026, "read_dr6", "READ_DR6", DrAccess),
        (0x027, "read_dr7", "READ_DR7", DrAccess),
        (0x030, "write_dr0", "WRITE_DR0", DrAccess),
        (0x031, "write_dr1", "WRITE_DR1", DrAccess),
        (0x032, "write_dr2", "WRITE_DR2", DrAccess),
        (0x033, "write_dr3", "WRITE_DR3", DrAccess),
        (0x034, "write_dr4", "WRITE_DR4", DrAccess),
        (0x035, "write_dr5", "WRITE_DR5", DrAccess),
        (0x036, "write_dr6", "WRITE_DR6", DrAccess),
        (0x037, "write_dr7", "WRITE_DR7", DrAccess),
        (0x040, "DE excp", "EXCP_DE", Exception),
        (0x041, "DB excp", "EXCP_DB", Exception),
        (0x043, "BP excp", "EXCP_BP", Exception),
        (0x044, "OF excp", "EXCP_OF", Exception),
        (0x046, "UD excp", "EXCP_UD", Exception),
        (0x047, "NM excp", "EXCP_NM", Exception),
        (0x048, "DF excp", "EXCP_DF", Exception),
        (0x04a, "TS excp", "EXCP_TS", Exception),
        (0x04b, "NP excp", "EXCP_NP", Exception),
        (0x04c, "SS excp", "EXCP_SS", Exception),
        (0x04d, "GP excp", "EXCP_GP", Exception),
        (0x04e, "PF excp", "EXCP_PF", Exception),
        (0x050, "MF excp", "EXCP_MF", Exception),
        (0x051, "AC excp", "EXCP_AC", Exception),
        (0x052, "MC excp", "EXCP_MC", Exception),
        (0x053, "XF excp", "EXCP_XF", Exception),
        (0x060, "interrupt", "INTR", ExternalInterrupt),
        (0x061, "nmi", "NMI", Nmi),
        (0x062, "smi", "SMI", Other),
        (0x063, "init", "INIT", Other),
        (0x064, "vintr", "VINTR", InterruptWindow),
        (0x065, "cr0_sel_write", "CR0_SEL_WRITE", CrAccess),
        (0x066, "read_idtr", "IDTR_READ", Other),
        (0x067, "read_gdtr", "GDTR_READ", Other),
        (0x068, "read_ldtr", "LDTR_READ", Other),
        (0x069, "read_rt", "TR_READ", Other),
        (0x06a, "write_idtr", "IDTR_WRITE", Other),
        (0x06b, "write_gdtr", "GDTR_WRITE", Other),
        (0x06c, "write_ldtr", "LDTR_WRITE", Other),
        (0x06d, "write_rt", "TR_WRITE", Other),
        (0x06e, "rdtsc", "RDTSC", Rdtsc),
        (0x06f, "rdpmc", "RDPMC", Rdpmc),
        (0x070, "pushf", "PUSHF", Other),
        (0x071, "popf", "POPF", Other),
        (0x072, "cpuid", "CPUID", Cpuid),
        (0x073, "rsm", "RSM", Other),
        (0x074, "iret", "IRET", Other),
        (0x075, "swint", "SWINT", Other),
        (0x076, "invd", "INVD", Wbinvd),
        (0x077, "pause", "PAUSE", Pause),
        (0x078, "hlt", "HLT", Hlt),
        (0x079, "invlpg", "INVLPG", Invlpg),
        (0x07a, "invlpga", "INVLPGA", NestedVirt),
        (0x07b, "io", "IOIO", Io),
        (0x07c, "msr", "MSR", Msr),
        (0x07d, "task_switch", "TASK_SWITCH", TaskSwitch),
        (0x07e, "ferr_freeze", "FERR_FREEZE", Other),
        (0x07f, "shutdown", "SHUTDOWN", Shutdown),
        (0x080, "vmrun", "VMRUN", NestedVirt),
        (0x081, "hypercall", "VMMCALL", Hypercall),
        (0x082, "vmload", "VMLOAD", NestedVirt),
        (0x083, "vmsave", "VMSAVE", NestedVirt),
        (0x084, "stgi", "STGI", NestedVirt),
        (0x085, "clgi", "CLGI", NestedVirt),
        (0x086, "skinit", "SKINIT", NestedVirt),
        (0x087, "rdtscp", "RDTSCP", Rdtsc),
        (0x088, "icebp", "ICEBP", Exception),
        (0x089, "wbinvd", "WBINVD", Wbinvd),
        (0x08a, "monitor", "MONITOR", MwaitMonitor),
        (0x08b, "mwait", "MWAIT", MwaitMonitor),
        (0x08c, "mwait_cond", "MWAIT_COND", MwaitMonitor),
        (0x08d, "xsetbv", "XSETBV", Xsetbv),
        (0x08e, "rdpru", "RDPRU", Other),
        (0x08f, "write_efer_trap", "EFER_WRITE_TRAP", CrAccess),
        (0x090, "write_cr0_trap", "CR0_WRITE_TRAP", CrAccess),
        (0x093, "write_cr3_trap", "CR3_WRITE_TRAP", CrAccess),
        (0x094, "write_cr4_trap", "CR4_WRITE_TRAP", CrAccess),
        (0x098, "write_cr8_trap", "CR8_WRITE_TRAP", CrAccess),
        (0x0a2, "invpcid", "INVPCID", Invpcid),
        (0x0a5, "buslock", "BUS_LOCK", BusLock),
        (0x0a6, "idle-halt", "IDLE_HLT", Hlt),
        (0x400, "npf", "NPF", EptNpf),
        (0x401, "avic_incomplete_ipi", "AVIC_INCOMPLETE_IPI", Apic),
        (0x402, "avic_unaccelerated_access", "AVIC_UNACCELERATED_ACCESS", Apic),
        (0x403, "vmgexit", "VMGEXIT", Vmgexit),
        (0xffff_ffff, "invalid_guest_state", "ERR", InvalidState),
    ]
};

/// The reason of VMX basic exit reason `code` (flag bits such as FAILED_VMENTRY, bit 31, are
/// ignored).
pub fn vmx_reason(code: u32) -> ExitReason {
    let basic = code & 0xffff;
    match VMX.iter().find(|e| e.0 == basic) {
        Some(&(c, name, kind)) => {
            ExitReason { kind, isa: Some(Isa::Vmx), code: Some(c), vendor: Some(name.into()) }
        }
        None => ExitReason {
            kind: ExitKind::Other,
            isa: Some(Isa::Vmx),
            code: Some(basic),
            vendor: Some(format!("UNKNOWN ({basic})")),
        },
    }
}

/// The reason of SVM exit code `code`.
pub fn svm_reason(code: u32) -> ExitReason {
    match SVM.iter().find(|e| e.0 == code) {
        Some(&(c, name, _, kind)) => {
            ExitReason { kind, isa: Some(Isa::Svm), code: Some(c), vendor: Some(name.into()) }
        }
        None => ExitReason {
            kind: ExitKind::Other,
            isa: Some(Isa::Svm),
            code: Some(code),
            vendor: Some(format!("{code:#x}")),
        },
    }
}

/// `(isa, code, kind)` of a vendor reason name, without allocating: the hot path of event
/// pairing uses this and builds an [`ExitReason`] only once per distinct name.
pub fn lookup_vendor_name(name: &str) -> Option<(Isa, u32, ExitKind)> {
    let name = name.trim();
    if let Some(&(c, _, k)) = VMX.iter().find(|e| e.1 == name) {
        return Some((Isa::Vmx, c, k));
    }
    if let Some(&(c, _, _, k)) = SVM.iter().find(|e| e.1 == name) {
        return Some((Isa::Svm, c, k));
    }
    if let Some(suffix) = name.strip_prefix("EXIT_")
        && let Some(&(c, _, _, k)) = SVM.iter().find(|e| e.2 == suffix)
    {
        return Some((Isa::Svm, c, k));
    }
    // VMX prints flags after the name: `EPT_VIOLATION FAILED_VMENTRY`, `... SGX_ENCLAVE`.
    let (first, rest) = name.split_once(' ')?;
    if rest.split(' ').all(|f| f.chars().all(|c| c.is_ascii_uppercase() || c == '_')) {
        return VMX.iter().find(|e| e.1 == first).map(|&(c, _, k)| (Isa::Vmx, c, k));
    }
    None
}

/// The reason a `kvm_exit` names, as printed: a VMX or SVM kernel name, a trace-cmd `EXIT_*`
/// spelling, `UNKNOWN (n)` or a hex code. Names nothing knows become [`ExitKind::Other`] with
/// the name kept as the vendor name; an empty name is [`ExitKind::Unknown`].
pub fn vendor_reason(name: &str) -> ExitReason {
    let name = name.trim();
    if name.is_empty() {
        return ExitReason::of(ExitKind::Unknown);
    }
    if let Some((isa, code, kind)) = lookup_vendor_name(name) {
        return ExitReason { kind, isa: Some(isa), code: Some(code), vendor: Some(name.into()) };
    }
    // `__print_symbolic` prints codes it has no name for in hex; trace-cmd `UNKNOWN (n)`.
    let code =
        name.strip_prefix("0x").and_then(|h| u32::from_str_radix(h, 16).ok()).or_else(|| {
            name.strip_prefix("UNKNOWN (")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|d| d.trim().parse().ok())
        });
    // VMX basic exit reasons are below 0x100; codes above can only be SVM's (0x400 npf, ...).
    if let Some(c) = code
        && c >= 0x100
        && name.starts_with("0x")
    {
        let svm = svm_reason(c);
        if svm.kind != ExitKind::Other {
            return ExitReason { vendor: Some(name.into()), ..svm };
        }
    }
    ExitReason { kind: ExitKind::Other, isa: None, code, vendor: Some(name.into()) }
}

/// The vCPU index a `kvm_entry` text names (`vcpu 0, rip 0xfff0`; 5.x kernels print it only
/// there, not in `kvm_exit`).
pub fn kvm_entry_vcpu(text: &str) -> Option<u32> {
    text.strip_prefix("vcpu ")?.split([',', ' ']).next()?.parse().ok()
}

/// The vCPU index a `kvm_exit` or `kvm_entry` event names, if it names one.
pub fn event_vcpu(event: &str, text: &str) -> Option<u32> {
    match event {
        "kvm_exit" => parse_kvm_exit(text)?.vcpu,
        "kvm_entry" => kvm_entry_vcpu(text),
        _ => None,
    }
}

/// The fields of a `kvm_exit` (or `kvm_nested_vmexit`) event, read from its printed text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmExit<'a> {
    /// `vcpu N` (5.10+ kernels print it).
    pub vcpu: Option<u32>,
    /// The reason as printed: one or more words (`PF excp`, `EPT_VIOLATION FAILED_VMENTRY`),
    /// a slice of the text.
    pub reason: &'a str,
    /// Guest RIP.
    pub rip: Option<u64>,
    /// `info1` (or the first value after `info`).
    pub info1: Option<u64>,
    /// `info2` (or the second value after `info`).
    pub info2: Option<u64>,
    /// `intr_info`.
    pub intr_info: Option<u64>,
    /// `error_code`.
    pub error_code: Option<u64>,
}

fn hex(s: &str) -> Option<u64> {
    hex_bytes(s.as_bytes())
}

/// [`hex`] of bytes: `u64::from_str_radix(digits, 16)` by hand (this runs five times per
/// exit) after trailing commas and a `0x` are dropped: an optional `+`, then at least one hex
/// digit, no overflow.
#[inline]
fn hex_bytes(b: &[u8]) -> Option<u64> {
    let mut end = b.len();
    while end > 0 && b[end - 1] == b',' {
        end -= 1;
    }
    let b = &b[..end];
    let b = b.strip_prefix(b"0x").unwrap_or(b);
    let b = b.strip_prefix(b"+").unwrap_or(b);
    if b.is_empty() {
        return None;
    }
    #[inline]
    fn digit(c: u8) -> Option<u64> {
        match c {
            b'0'..=b'9' => Some(u64::from(c - b'0')),
            b'a'..=b'f' => Some(u64::from(c - b'a' + 10)),
            b'A'..=b'F' => Some(u64::from(c - b'A' + 10)),
            _ => None,
        }
    }
    // The kernel prints the fields zero-padded to 8 or 16 digits.
    match b.len() {
        8 => return hex8(b),
        16 => return Some((hex8(&b[..8])? << 32) | hex8(&b[8..])?),
        _ => {}
    }
    let mut v = 0u64;
    if b.len() <= 16 {
        // Sixteen digits cannot overflow.
        for &c in b {
            v = (v << 4) | digit(c)?;
        }
        return Some(v);
    }
    for &c in b {
        v = v.checked_mul(16)?.checked_add(digit(c)?)?;
    }
    Some(v)
}

/// Eight hex digits (`b.len() == 8`), all at once: `None` unless every byte is one.
#[inline(always)]
fn hex8(b: &[u8]) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    let x = u64::from_le_bytes(a);
    if x & HIGHS != 0 {
        return None;
    }
    // Every byte is below 0x80, so adding less than 0x80 to it carries into no other byte:
    // the high bit of `byte + (0x80 - k)` says `byte >= k`.
    let ge = |v: u64, k: u64| v.wrapping_add(ONES * (0x80 - k)) & HIGHS;
    let digit = ge(x, 0x30) & !ge(x, 0x3a);
    let lower = x | (ONES * 0x20);
    let letter = ge(lower, 0x61) & !ge(lower, 0x67);
    if digit | letter != HIGHS {
        return None;
    }
    // Digits are their low nibble, letters (bit 0x40 set) their low nibble plus 9.
    let v = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Byte i (the i-th digit, most significant first) holds a nibble: pack them.
    let v = ((v << 4) | (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = ((v << 8) | (v >> 16)) & 0x0000_ffff_0000_ffff;
    Some(((v << 16) | (v >> 32)) & 0xffff_ffff)
}

/// Read a `kvm_exit` text by its field grammar. The reason is the words between `reason` and
/// the first field keyword (`rip`, `info`, `info1`, ...), never "the rest of the line", so a
/// text cut after `rip` (an e-mail wrap, a trimmed paste) still gives `npf`, not `npf rip`.
/// `None` when there is no `reason` word or it names nothing.
pub fn parse_kvm_exit(text: &str) -> Option<KvmExit<'_>> {
    if let Some(k) = parse_kvm_exit_usual(text) {
        return Some(k);
    }
    parse_kvm_exit_general(text)
}

/// The layout the kernel prints (`[vcpu N ]reason R rip 0x.. info1 0x.. info2 0x..
/// intr_info 0x.. error_code 0x..`, single spaces, one reason word, 8- or 16-digit fields)
/// read at fixed places. `None` for any other text, which [`parse_kvm_exit_general`] reads:
/// where this gives `Some`, the two agree (tested on mutations of every byte).
#[inline]
fn parse_kvm_exit_usual(text: &str) -> Option<KvmExit<'_>> {
    let b = text.as_bytes();
    let mut out = KvmExit::default();
    let mut pos = 0usize;
    if let Some(rest) = b.strip_prefix(b"vcpu ") {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 || rest.get(digits) != Some(&b' ') {
            return None;
        }
        out.vcpu = Some(rest[..digits].iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0')));
        pos = 5 + digits + 1;
    }
    let rest = b[pos..].strip_prefix(b"reason ")?;
    pos += 7;
    let len = find_byte(rest, b' ')?;
    if len == 0 || keyword(&rest[..len]) != Keyword::Other {
        return None;
    }
    out.reason = text.get(pos..pos + len)?;
    pos += len;
    out.rip = Some(usual_field(b, &mut pos, b"rip")?);
    out.info1 = Some(usual_field(b, &mut pos, b"info1")?);
    out.info2 = Some(usual_field(b, &mut pos, b"info2")?);
    out.intr_info = Some(usual_field(b, &mut pos, b"intr_info")?);
    out.error_code = Some(usual_field(b, &mut pos, b"error_code")?);
    (pos == b.len()).then_some(out)
}

/// One field of [`parse_kvm_exit_usual`] at `pos`: ` name 0x` and 16 or 8 hex digits, then a
/// space or the end. Inlined so that `name` is a constant and its compare a few loads, not
/// a `memcmp` call.
#[inline(always)]
fn usual_field(b: &[u8], pos: &mut usize, name: &'static [u8]) -> Option<u64> {
    let r = b.get(*pos..)?.strip_prefix(b" ")?.strip_prefix(name)?.strip_prefix(b" 0x")?;
    *pos += 1 + name.len() + 3;
    let ends = |n: usize| r.len() == n || r.get(n) == Some(&b' ');
    if r.len() >= 16 && ends(16) {
        let v = (hex8(&r[..8])? << 32) | hex8(&r[8..16])?;
        *pos += 16;
        Some(v)
    } else if r.len() >= 8 && ends(8) {
        let v = hex8(&r[..8])?;
        *pos += 8;
        Some(v)
    } else {
        None
    }
}

/// [`parse_kvm_exit`] for any text.
fn parse_kvm_exit_general(text: &str) -> Option<KvmExit<'_>> {
    let b = text.as_bytes();
    let mut out = KvmExit::default();
    // One pass over the words split at single spaces (no allocation: this runs once per
    // exit), each word classified by its length and bytes.
    let mut pos = 0usize;
    let mut peeked: Option<(usize, usize)> = None;
    let mut next = |peeked: &mut Option<(usize, usize)>| -> Option<(usize, usize)> {
        if let Some(w) = peeked.take() {
            return Some(w);
        }
        while pos < b.len() && b[pos] == b' ' {
            pos += 1;
        }
        if pos >= b.len() {
            return None;
        }
        let at = pos;
        pos = find_byte(&b[at..], b' ').map_or(b.len(), |k| at + k);
        Some((at, pos))
    };
    while let Some((at, end)) = next(&mut peeked) {
        match keyword(&b[at..end]) {
            Keyword::Vcpu => {
                out.vcpu = next(&mut peeked).and_then(|(s, e)| {
                    let v = text.get(s..e)?;
                    v.trim_end_matches(',').parse().ok()
                });
            }
            Keyword::Reason => {
                let (mut from, mut to) = (None, at);
                while let Some((p, e)) = next(&mut peeked) {
                    if keyword(&b[p..e]).is_field() {
                        peeked = Some((p, e));
                        break;
                    }
                    from = from.or(Some(p));
                    to = e;
                }
                if let Some(f) = from
                    && let Some(r) = text.get(f..to)
                {
                    out.reason = r;
                }
            }
            Keyword::Rip => {
                // trace-cmd's plugin prints the symbol after the address; it is skipped as an
                // unknown word.
                if let Some((s, e)) = next(&mut peeked) {
                    match hex_bytes(&b[s..e]) {
                        Some(r) => out.rip = Some(r),
                        None => peeked = Some((s, e)),
                    }
                }
            }
            Keyword::Info => {
                out.info1 = next(&mut peeked).and_then(|(s, e)| hex_bytes(&b[s..e]));
                out.info2 = next(&mut peeked).and_then(|(s, e)| hex_bytes(&b[s..e]));
            }
            k @ (Keyword::Info1 | Keyword::Info2 | Keyword::IntrInfo | Keyword::ErrorCode) => {
                let v = next(&mut peeked).and_then(|(s, e)| hex_bytes(&b[s..e]));
                match k {
                    Keyword::Info1 => out.info1 = v,
                    Keyword::Info2 => out.info2 = v,
                    Keyword::IntrInfo => out.intr_info = v,
                    _ => out.error_code = v,
                }
            }
            Keyword::Other => {}
        }
    }
    (!out.reason.is_empty()).then_some(out)
}

/// The reason [`parse_kvm_exit`] reads from a text `... reason R rip ...` where `R` is
/// `rendered`, the part a reader that decodes a `kvm_exit` from its fields renders alone: `R`
/// without its outer spaces. `None` when `R` has no word (the whole text then parses as
/// nothing) or has a field keyword (`rip`, `info1`, ...: the parse would stop there).
pub fn kvm_exit_reason(rendered: &str) -> Option<&str> {
    let mut span: Option<(usize, usize)> = None;
    let mut at = 0;
    for w in rendered.split(' ') {
        if !w.is_empty() {
            if keyword(w.as_bytes()).is_field() {
                return None;
            }
            span = Some((span.map_or(at, |(s, _)| s), at + w.len()));
        }
        at += w.len() + 1;
    }
    span.and_then(|(s, e)| rendered.get(s..e))
}

/// The words [`parse_kvm_exit`] acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Vcpu,
    Reason,
    Rip,
    Info,
    Info1,
    Info2,
    IntrInfo,
    ErrorCode,
    Other,
}

impl Keyword {
    /// A field keyword: it ends the reason's words.
    fn is_field(self) -> bool {
        !matches!(self, Keyword::Vcpu | Keyword::Reason | Keyword::Other)
    }
}

#[inline]
fn keyword(w: &[u8]) -> Keyword {
    match w.len() {
        3 if w == b"rip" => Keyword::Rip,
        4 if w == b"vcpu" => Keyword::Vcpu,
        4 if w == b"info" => Keyword::Info,
        5 if w == b"info1" => Keyword::Info1,
        5 if w == b"info2" => Keyword::Info2,
        6 if w == b"reason" => Keyword::Reason,
        9 if w == b"intr_info" => Keyword::IntrInfo,
        10 if w == b"error_code" => Keyword::ErrorCode,
        _ => Keyword::Other,
    }
}

/// What a reason-specific tracepoint says about the exit it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracepointExit {
    /// The exit kind the event stands for.
    pub kind: ExitKind,
    /// The port, MSR or address it names.
    pub key: Option<ExitKey>,
    /// For `kvm_mmio`: an `unsatisfied-read` goes to userspace and the following `read` of the
    /// same vCPU completes it (one exit, two events).
    pub mmio: Option<MmioStep>,
}

/// The step of an MMIO access a `kvm_mmio` event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioStep {
    /// `unsatisfied-read`: goes to the VMM.
    UnsatisfiedRead,
    /// `read`: a read (completing an unsatisfied one when it follows it).
    Read,
    /// `write`.
    Write,
}

/// What an exit touched, from a reason-specific tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitKey {
    /// An I/O port; `write` for OUT.
    Port {
        /// Port number.
        port: u16,
        /// OUT (true) or IN (false).
        write: bool,
    },
    /// An MSR index.
    Msr {
        /// MSR index.
        index: u32,
        /// WRMSR (true) or RDMSR (false).
        write: bool,
    },
    /// A guest physical address (MMIO).
    Gpa(u64),
    /// A hypercall number.
    Hypercall(u64),
}

impl fmt::Display for ExitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitKey::Port { port, write } => {
                write!(f, "port {port:#x} {}", if write { "out" } else { "in" })
            }
            ExitKey::Msr { index, write } => {
                write!(f, "msr {index:#x} {}", if write { "write" } else { "read" })
            }
            ExitKey::Gpa(a) => write!(f, "gpa {a:#x}"),
            ExitKey::Hypercall(n) => write!(f, "hypercall {n}"),
        }
    }
}

/// The events [`tracepoint_exit`] reads (`Some` for these names, `None` for every other).
pub const TRACEPOINT_EXIT_EVENTS: &[&str] = &[
    "kvm_cpuid",
    "kvm_pio",
    "kvm_mmio",
    "kvm_msr",
    "kvm_hypercall",
    "kvm_hv_hypercall",
    "kvm_xen_hypercall",
];

/// The exit a reason-specific tracepoint stands for (`kvm_cpuid`, `kvm_pio`, `kvm_mmio`,
/// `kvm_msr`, `kvm_hypercall`, `kvm_hv_hypercall`, `kvm_xen_hypercall`), with the key its text
/// names, from the kernels' print formats:
///
/// - `kvm_pio`: `pio_read at 0x4d0 size 1 count 1 val 0x0` (`pio_write` for OUT);
/// - `kvm_mmio`: `mmio write len 4 gpa 0xfee000b0 val 0x0` (`read`, `unsatisfied-read`);
/// - `kvm_msr`: `msr_read 1d9 = 0x0` / `msr_write c0000103 = 0x0` (`(#GP)` when it faulted);
/// - `kvm_hypercall`: `nr 0x1 a0 0x0 ...`.
pub fn tracepoint_exit(event: &str, text: &str) -> Option<TracepointExit> {
    if !TRACEPOINT_EXIT_EVENTS.contains(&event) {
        return None;
    }
    let mut w = text.split_whitespace();
    let plain = |kind| Some(TracepointExit { kind, key: None, mmio: None });
    match event {
        "kvm_cpuid" => plain(ExitKind::Cpuid),
        "kvm_pio" => {
            let dir = w.next();
            let write = dir == Some("pio_write");
            let port = w
                .skip_while(|x| *x != "at")
                .nth(1)
                .and_then(hex)
                .and_then(|p| u16::try_from(p).ok());
            let key = port.map(|port| ExitKey::Port { port, write });
            Some(TracepointExit { kind: ExitKind::Io, key, mmio: None })
        }
        "kvm_mmio" => {
            let _ = w.next(); // "mmio"
            let step = match w.next() {
                Some("unsatisfied-read") => Some(MmioStep::UnsatisfiedRead),
                Some("read") => Some(MmioStep::Read),
                Some("write") => Some(MmioStep::Write),
                _ => None,
            };
            let gpa = w.skip_while(|x| *x != "gpa").nth(1).and_then(hex);
            Some(TracepointExit { kind: ExitKind::Mmio, key: gpa.map(ExitKey::Gpa), mmio: step })
        }
        "kvm_msr" => {
            let dir = w.next();
            let write = dir == Some("msr_write");
            let kind = match dir {
                Some("msr_write") => ExitKind::MsrWrite,
                Some("msr_read") => ExitKind::MsrRead,
                _ => ExitKind::Msr,
            };
            let index = w.next().and_then(hex).and_then(|i| u32::try_from(i).ok());
            Some(TracepointExit {
                kind,
                key: index.map(|index| ExitKey::Msr { index, write }),
                mmio: None,
            })
        }
        "kvm_hypercall" | "kvm_hv_hypercall" | "kvm_xen_hypercall" => {
            let nr = w.skip_while(|x| *x != "nr" && *x != "code").nth(1).and_then(hex);
            Some(TracepointExit {
                kind: ExitKind::Hypercall,
                key: nr.map(ExitKey::Hypercall),
                mmio: None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The word-iterator reading that `parse_kvm_exit` replaced: the reference it must agree
    // with.
    /// The non-empty words of a text split at single spaces, with their byte offsets.
    struct Words<'a> {
        text: &'a str,
        pos: usize,
    }

    impl<'a> Iterator for Words<'a> {
        type Item = (usize, &'a str);

        #[inline]
        fn next(&mut self) -> Option<(usize, &'a str)> {
            let b = self.text.as_bytes();
            while self.pos < b.len() && b[self.pos] == b' ' {
                self.pos += 1;
            }
            if self.pos >= b.len() {
                return None;
            }
            let at = self.pos;
            let end = find_byte(&b[at..], b' ').map_or(b.len(), |k| at + k);
            self.pos = end;
            // Both ends are at spaces or the text's ends: char boundaries.
            self.text.get(at..end).map(|w| (at, w))
        }
    }

    /// Read a `kvm_exit` text by its field grammar. The reason is the words between `reason` and
    /// the first field keyword (`rip`, `info`, `info1`, ...), never "the rest of the line", so a
    /// text cut after `rip` (an e-mail wrap, a trimmed paste) still gives `npf`, not `npf rip`.
    /// `None` when there is no `reason` word or it names nothing.
    fn parse_kvm_exit_reference(text: &str) -> Option<KvmExit<'_>> {
        const KEYWORDS: &[&str] = &["rip", "info", "info1", "info2", "intr_info", "error_code"];
        let mut out = KvmExit::default();
        // One pass over the words with their offsets (no allocation: this runs once per exit).
        let mut words = Words { text, pos: 0 }.peekable();
        while let Some((at, w)) = words.next() {
            match w {
                "vcpu" => {
                    out.vcpu = words.next().and_then(|(_, v)| v.trim_end_matches(',').parse().ok());
                }
                "reason" => {
                    let (mut from, mut to) = (None, at);
                    while let Some(&(p, x)) = words.peek() {
                        if KEYWORDS.contains(&x) {
                            break;
                        }
                        from = from.or(Some(p));
                        to = p + x.len();
                        words.next();
                    }
                    if let Some(f) = from {
                        out.reason = &text[f..to];
                    }
                }
                "rip" => {
                    // trace-cmd's plugin prints the symbol after the address; it is skipped as an
                    // unknown word.
                    if let Some(&(_, v)) = words.peek()
                        && let Some(r) = hex(v)
                    {
                        out.rip = Some(r);
                        words.next();
                    }
                }
                "info" => {
                    out.info1 = words.next().and_then(|(_, v)| hex(v));
                    out.info2 = words.next().and_then(|(_, v)| hex(v));
                }
                "info1" | "info2" | "intr_info" | "error_code" => {
                    let v = words.next().and_then(|(_, v)| hex(v));
                    match w {
                        "info1" => out.info1 = v,
                        "info2" => out.info2 = v,
                        "intr_info" => out.intr_info = v,
                        _ => out.error_code = v,
                    }
                }
                _ => {}
            }
        }
        (!out.reason.is_empty()).then_some(out)
    }

    #[test]
    fn usual_kvm_exit_layout_agrees_with_the_general_grammar() {
        let bases = [
            "vcpu 1 reason CPUID rip 0xffffffff81000000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000",
            "reason EPT_VIOLATION rip 0x00000000fee000b0 info1 0x0000000000000181 info2 0x00000000aBcDeF12 intr_info 0x80000b0e error_code 0x00000000",
            "vcpu 123456789 reason npf rip 0x40359f00 info1 0x0000000100000004 info2 0x00000000fee00300 intr_info 0x0000000000000000 error_code 0x0000000000000000",
        ];
        for base in bases {
            assert!(parse_kvm_exit_usual(base).is_some(), "{base:?}");
            assert_eq!(parse_kvm_exit(base), parse_kvm_exit_reference(base));
        }
        // Every byte replaced, deleted or followed by an inserted byte; every prefix.
        let bytes = [" ", "  ", "0", "9", "a", "f", "F", "g", "x", ",", "+", "r", "\u{e9}", ""];
        let mut checked = 0usize;
        for base in bases {
            for at in 0..=base.len() {
                let mut texts = vec![base[..at].to_owned()];
                for with in bytes {
                    if at < base.len() {
                        texts.push(format!("{}{with}{}", &base[..at], &base[at + 1..]));
                    }
                    texts.push(format!("{}{with}{}", &base[..at], &base[at..]));
                }
                for t in &texts {
                    let want = parse_kvm_exit_reference(t);
                    assert_eq!(parse_kvm_exit(t), want, "{t:?}");
                    if let Some(k) = parse_kvm_exit_usual(t) {
                        assert_eq!(Some(k), parse_kvm_exit_general(t), "{t:?}");
                        checked += 1;
                    }
                }
            }
        }
        // Mutations the usual layout still covers (a digit for a digit) were read by it.
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn kvm_exit_grammar_agrees_with_the_word_iterator() {
        let mut texts = vec![
            "vcpu 1 reason CPUID rip 0xffffffff81000000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000".to_owned(),
            "reason EPT_VIOLATION rip 0x40359f info 582 0".to_owned(),
            "reason EXIT_NPF rip 0xffffffff81000000 native_safe_halt+0x6 info 0 0".to_owned(),
            "reason  EPT_VIOLATION FAILED_VMENTRY rip 0x1".to_owned(),
            "vcpu 0 reason npf rip".to_owned(),
            String::new(),
        ];
        let words = [
            "vcpu",
            "reason",
            "rip",
            "info",
            "info1",
            "info2",
            "intr_info",
            "error_code",
            "0x1f",
            "0x",
            "1,",
            "+1a",
            "12,",
            "CPUID",
            "npf",
            "PF",
            "excp",
            "native_safe_halt+0x6",
            "4294967296",
            "0xffffffffffffffff",
            "0x10000000000000000",
            "000000000000000000001",
            "ff,,",
            "\u{e9}",
            "0xFFFFFFFFFFFFFFFF",
            "ri",
            "vcpu,",
            "-1",
            ",",
        ];
        // A fixed pseudo-random sequence of word salads with one or two spaces.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut t = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 12) as usize;
            for k in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t.push_str(words[(x % words.len() as u64) as usize]);
                if k + 1 < n || x & 64 != 0 {
                    t.push_str(if x & 32 != 0 { "  " } else { " " });
                }
            }
            texts.push(t);
        }
        for t in &texts {
            assert_eq!(parse_kvm_exit(t), parse_kvm_exit_reference(t), "{t:?}");
        }
    }

    #[test]
    fn eight_digits_at_once_read_every_byte() {
        // Each byte value at each of the eight places, the rest valid digits.
        for place in 0..8 {
            for c in 0..=255u8 {
                let mut b = *b"9aF07bE1";
                b[place] = c;
                let want =
                    std::str::from_utf8(&b).ok().and_then(|t| u64::from_str_radix(t, 16).ok());
                let want = want.filter(|_| c != b'+' || place != 0);
                assert_eq!(hex8(&b), want, "{b:?}");
            }
        }
    }

    #[test]
    fn hex_reads_what_from_str_radix_reads() {
        for t in [
            "0",
            "0x0",
            "0xffffffff81000000",
            "ff,",
            "0x1f,,",
            "+1a",
            "0x+1a",
            "",
            "0x",
            "+",
            "-1",
            "g",
            "0xFFFFFFFFFFFFFFFF",
            "0x10000000000000000",
            "000000000000000000001",
            "12 ",
            "0123abcd",
            "89ABCDEF",
            "0x0000000000000000",
            "0xffffffff81000000",
            "0xFfFfFfFf8100000a",
            "0x00000000000000g0",
            "0x0000000000000:00",
            "0000000/",
            "0000000@",
            "0000000`",
            "0000000G",
            "0000000g",
            "00000 00",
            "0000000\u{e9}",
            "+00000000",
            "+0000000",
            "0x+0000000",
        ] {
            let s = t.trim_end_matches(',');
            let want = u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok();
            assert_eq!(hex(t), want, "{t:?}");
        }
    }

    #[test]
    fn find_byte_finds_the_first_space() {
        let text = "0123456789abcdef 0x1  x\u{e9}  \u{2020}\u{a0} !";
        for from in 0..text.len() {
            let b = &text.as_bytes()[from..];
            assert_eq!(find_byte(b, b' '), b.iter().position(|&c| c == b' '), "from {from}");
        }
        assert_eq!(find_byte(b"        ", b' '), Some(0));
        assert_eq!(find_byte(b"abcdefghijklmnop", b' '), None);
    }

    #[test]
    fn words_split_at_spaces_like_str_split() {
        for t in ["", " ", "a", "  a  b c ", "vcpu 0 reason\tHLT  rip 0x1", "é b"] {
            let mut pos = 0;
            let want: Vec<(usize, &str)> = t
                .split(' ')
                .map(|w| {
                    let at = pos;
                    pos += w.len() + 1;
                    (at, w)
                })
                .filter(|(_, w)| !w.is_empty())
                .collect();
            assert_eq!(Words { text: t, pos: 0 }.collect::<Vec<_>>(), want, "{t:?}");
        }
    }

    #[test]
    fn vcpu_index_from_kvm_exit_or_kvm_entry() {
        assert_eq!(event_vcpu("kvm_entry", "vcpu 3, rip 0xfff0"), Some(3));
        assert_eq!(event_vcpu("kvm_entry", "vcpu 12 rip 0x1"), Some(12));
        assert_eq!(event_vcpu("kvm_exit", "vcpu 1 reason CPUID rip 0x1 info1 0x0"), Some(1));
        // 5.x kvm_exit prints no vcpu; other events name none.
        assert_eq!(event_vcpu("kvm_exit", "reason CPUID rip 0x1 info 0 0"), None);
        assert_eq!(event_vcpu("kvm_cpuid", "vcpu 1"), None);
        assert_eq!(kvm_entry_vcpu("rip 0x1"), None);
    }

    #[test]
    fn every_kernel_and_trace_cmd_spelling() {
        let r = |s| vendor_reason(s);
        assert_eq!(r("CPUID").kind, ExitKind::Cpuid);
        assert_eq!(r("cpuid").kind, ExitKind::Cpuid);
        assert_eq!(r("EXIT_CPUID").kind, ExitKind::Cpuid);
        assert_eq!(r("EPT_VIOLATION").kind, ExitKind::EptNpf);
        assert_eq!(r("npf").kind, ExitKind::EptNpf);
        assert_eq!(r("EXIT_NPF").code, Some(0x400));
        assert_eq!(r("EXIT_IOIO").kind, ExitKind::Io);
        assert_eq!(r("io").kind, ExitKind::Io);
        assert_eq!(r("IO_INSTRUCTION").isa, Some(Isa::Vmx));
        assert_eq!(r("EPT_MISCONFIG").kind, ExitKind::Mmio);
        assert_eq!(r("msr").kind, ExitKind::Msr);
        assert_eq!(r("MSR_WRITE").kind, ExitKind::MsrWrite);
        assert_eq!(r("PF excp").kind, ExitKind::Exception);
        assert_eq!(r("EXIT_EXCP_PF").code, Some(0x4e));
        assert_eq!(r("EXIT_INTR").kind, ExitKind::ExternalInterrupt);
        assert_eq!(r("interrupt").kind, ExitKind::ExternalInterrupt);
        assert_eq!(r("EXIT_VMMCALL").kind, ExitKind::Hypercall);
        assert_eq!(r("PENDING_INTERRUPT").kind, ExitKind::InterruptWindow);
        assert_eq!(r("idle-halt").kind, ExitKind::Hlt);
        let failed = r("EPT_VIOLATION FAILED_VMENTRY");
        assert_eq!((failed.kind, failed.code), (ExitKind::EptNpf, Some(48)));
        assert_eq!(failed.vendor.as_deref(), Some("EPT_VIOLATION FAILED_VMENTRY"));
        let unknown = r("UNKNOWN (78)");
        assert_eq!(
            (unknown.kind, unknown.code, unknown.label()),
            (ExitKind::Other, Some(78), "UNKNOWN (78)")
        );
        let hex = r("0x4e");
        assert_eq!(
            (hex.kind, hex.code, hex.isa),
            (ExitKind::Other, Some(0x4e), None),
            "VMX or SVM?"
        );
        let svm_only = r("0x403");
        assert_eq!(
            (svm_only.kind, svm_only.isa),
            (ExitKind::Vmgexit, Some(Isa::Svm)),
            "> 0xff: SVM"
        );
        assert_eq!(svm_only.vendor.as_deref(), Some("0x403"), "kept as printed");
        assert_eq!(r("").kind, ExitKind::Unknown);
        assert_eq!(r("VMREAD").label(), "NESTED_VIRT");
    }

    #[test]
    fn codes_decode_like_the_kernel_tables() {
        assert_eq!(vmx_reason(10).vendor.as_deref(), Some("CPUID"));
        assert_eq!(vmx_reason(0x8000_0021).kind, ExitKind::InvalidState, "flags ignored");
        assert_eq!(vmx_reason(7).vendor.as_deref(), Some("INTERRUPT_WINDOW"));
        assert_eq!(svm_reason(0x7b).kind, ExitKind::Io);
        assert_eq!(svm_reason(0x400).vendor.as_deref(), Some("npf"));
        assert_eq!(svm_reason(0x999).vendor.as_deref(), Some("0x999"));
        // Every name maps back to its own code.
        for &(c, n, k) in VMX {
            assert_eq!(lookup_vendor_name(n), Some((Isa::Vmx, c, k)), "{n}");
        }
        for &(c, n, t, k) in SVM {
            assert_eq!(lookup_vendor_name(n), Some((Isa::Svm, c, k)), "{n}");
            assert_eq!(lookup_vendor_name(&format!("EXIT_{t}")), Some((Isa::Svm, c, k)), "{t}");
        }
    }

    #[test]
    fn kvm_exit_fields_by_grammar() {
        let v = parse_kvm_exit(
            "vcpu 1 reason PF excp rip 0xffffffff81000000 info1 0x0000000000000002 info2 0x10 \
             intr_info 0x80000b0e error_code 0x00000004",
        )
        .unwrap();
        assert_eq!(v.vcpu, Some(1));
        assert_eq!(v.reason, "PF excp");
        assert_eq!(v.rip, Some(0xffff_ffff_8100_0000));
        assert_eq!((v.info1, v.info2), (Some(2), Some(0x10)));
        assert_eq!((v.intr_info, v.error_code), (Some(0x8000_0b0e), Some(4)));
        let old = parse_kvm_exit("reason EPT_VIOLATION rip 0x40359f info 582 0").unwrap();
        assert_eq!((old.reason, old.info1, old.info2), ("EPT_VIOLATION", Some(0x582), Some(0)));
        let plugin =
            parse_kvm_exit("reason EXIT_NPF rip 0xffffffff81000000 native_safe_halt+0x6 info 0 0")
                .unwrap();
        assert_eq!((plugin.reason, plugin.info1), ("EXIT_NPF", Some(0)));
        // Wrapped after `rip` (the rest went to the next line).
        assert_eq!(parse_kvm_exit("reason npf rip").unwrap().reason, "npf");
        assert_eq!(parse_kvm_exit("vcpu 0 reason npf rip").unwrap().rip, None);
        assert_eq!(
            parse_kvm_exit("reason  EPT_VIOLATION FAILED_VMENTRY rip 0x1").unwrap().reason,
            "EPT_VIOLATION FAILED_VMENTRY"
        );
        assert_eq!(parse_kvm_exit("vcpu 0 reason"), None);
        assert_eq!(parse_kvm_exit("vcpu 0, rip 0x1"), None);
    }

    #[test]
    fn a_reason_rendered_alone_is_the_one_the_whole_text_gives() {
        let reasons = [
            "CPUID",
            " CPUID",
            "EPT_VIOLATION FAILED_VMENTRY",
            "EPT_VIOLATION  FAILED_VMENTRY ",
            "PF excp",
            "0x1234",
            "",
            "   ",
            "npf rip",
            "x info1",
            "vcpu reason",
            "héllo\twörld",
        ];
        for r in reasons {
            for head in ["", "vcpu 3 "] {
                let text = format!("{head}reason {r} rip 0x1 info1 0x2 info2 0x3");
                let whole = parse_kvm_exit(&text).map(|k| k.reason);
                if r.contains("rip") || r.contains("info1") {
                    // The parse stops inside: the reader renders the whole text instead.
                    assert_eq!(kvm_exit_reason(r), None, "{text:?}");
                } else {
                    assert_eq!(kvm_exit_reason(r), whole, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn tracepoints_stand_for_their_exits() {
        let pio = tracepoint_exit("kvm_pio", "pio_write at 0x4d0 size 1 count 1 val 0x0").unwrap();
        assert_eq!(pio.kind, ExitKind::Io);
        assert_eq!(pio.key, Some(ExitKey::Port { port: 0x4d0, write: true }));
        let msr = tracepoint_exit("kvm_msr", "msr_read 1d9 = 0x0").unwrap();
        assert_eq!(
            (msr.kind, msr.key),
            (ExitKind::MsrRead, Some(ExitKey::Msr { index: 0x1d9, write: false }))
        );
        let mmio =
            tracepoint_exit("kvm_mmio", "mmio unsatisfied-read len 4 gpa 0xfee00030 val 0x0")
                .unwrap();
        assert_eq!(
            (mmio.mmio, mmio.key),
            (Some(MmioStep::UnsatisfiedRead), Some(ExitKey::Gpa(0xfee0_0030)))
        );
        assert_eq!(
            tracepoint_exit("kvm_cpuid", "func 0 idx 0 rax 1").unwrap().kind,
            ExitKind::Cpuid
        );
        assert_eq!(tracepoint_exit("kvm_entry", "vcpu 0"), None);
        // The list says which events it reads, whatever their text.
        for e in TRACEPOINT_EXIT_EVENTS {
            assert!(tracepoint_exit(e, "").is_some(), "{e}");
        }
        for e in ["kvm_exit", "kvm_fpu", "kvm_emulate_insn", "sched_switch", ""] {
            assert_eq!(tracepoint_exit(e, "pio_read at 0x1 nr 0x1"), None, "{e}");
        }
        assert_eq!(ExitKey::Port { port: 0x3f0, write: true }.to_string(), "port 0x3f0 out");
    }

    #[test]
    fn refinement_and_names() {
        assert!(ExitKind::Mmio.refines(ExitKind::EptNpf));
        assert!(ExitKind::MsrWrite.refines(ExitKind::Msr));
        assert!(!ExitKind::Cpuid.refines(ExitKind::Msr));
        for k in ExitKind::ALL {
            assert_eq!(ExitKind::from_name(k.name()), Some(*k));
        }
    }
}
