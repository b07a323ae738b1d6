//! CPUID table for the guest: KVM's supported CPUID, normalized for one vCPU the way
//! Firecracker does it (APIC ID, topology, hypervisor bit), then installed with
//! `KVM_SET_CPUID2`. Without a table every leaf reads as zero and KVM refuses features
//! (TSC_ADJUST, x2APIC) that the benchmarks use.

use kvm_bindings::kvm_cpuid_entry2;

/// CPUID.1:ECX bits.
mod leaf1 {
    pub const ECX_PDCM: u32 = 1 << 15;
    pub const ECX_TSC_DEADLINE: u32 = 1 << 24;
    pub const ECX_HYPERVISOR: u32 = 1 << 31;
    pub const EDX_HTT: u32 = 1 << 28;
}

/// Normalizes `entries` in place for vCPU `cpu_index` of a single-vCPU guest:
///
/// - leaf 1: initial APIC ID = `cpu_index`, one logical processor, CLFLUSH line 64 bytes,
///   hypervisor and TSC-deadline bits set, PDCM (no perf-capabilities MSR) and HTT cleared;
/// - leaf 4: one core per package and one thread per cache;
/// - leaf 6: turbo boost (EAX bit 1) and energy-performance bias (ECX bit 3) hidden;
/// - leaves 0xB and 0x1F: a one-thread, one-core topology with x2APIC ID = `cpu_index`.
pub fn normalize(entries: &mut [kvm_cpuid_entry2], cpu_index: u8) {
    let apic_id = u32::from(cpu_index);
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (apic_id << 24) | (1 << 16) | (8 << 8) | (e.ebx & 0xff);
                e.ecx |= leaf1::ECX_HYPERVISOR | leaf1::ECX_TSC_DEADLINE;
                e.ecx &= !leaf1::ECX_PDCM;
                e.edx &= !leaf1::EDX_HTT;
            }
            4 => {
                // EAX[31:26] cores per package - 1, EAX[25:14] threads sharing this cache - 1.
                e.eax &= 0x3fff;
            }
            6 => {
                e.eax &= !(1 << 1);
                e.ecx &= !(1 << 3);
            }
            0xb | 0x1f => {
                let (eax, ebx, ecx) = match e.index {
                    // SMT level: 1 thread, next level's x2APIC ID shift 0.
                    0 => (0, 1, 1 << 8),
                    // Core level: 1 core.
                    1 => (0, 1, (2 << 8) | 1),
                    // Invalid level.
                    n => (0, 0, n & 0xff),
                };
                e.eax = eax;
                e.ebx = ebx;
                e.ecx = ecx;
                e.edx = apic_id;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
            ..Default::default()
        }
    }

    #[test]
    fn leaf1_gets_apic_id_hypervisor_bit_and_no_pdcm() {
        let mut t = [entry(1, 0, [0x806f8, 0xff10_0800 | 0x42, 0x0000_8000, 0x1000_0000])];
        normalize(&mut t, 3);
        assert_eq!(t[0].ebx, 0x0301_0842);
        assert_ne!(t[0].ecx & (1 << 31), 0);
        assert_ne!(t[0].ecx & (1 << 24), 0);
        assert_eq!(t[0].ecx & (1 << 15), 0);
        assert_eq!(t[0].edx & (1 << 28), 0);
        assert_eq!(t[0].eax, 0x806f8);
    }

    #[test]
    fn topology_is_one_thread_one_core() {
        let mut t = [
            entry(0xb, 0, [1, 2, 0x100, 7]),
            entry(0xb, 1, [7, 56, 0x201, 7]),
            entry(0xb, 2, [0, 0, 2, 7]),
            entry(4, 0, [0xfc00_4121, 0, 0, 0]),
        ];
        normalize(&mut t, 0);
        assert_eq!((t[0].eax, t[0].ebx, t[0].ecx, t[0].edx), (0, 1, 0x100, 0));
        assert_eq!((t[1].eax, t[1].ebx, t[1].ecx), (0, 1, 0x201));
        assert_eq!((t[2].ebx, t[2].ecx), (0, 2));
        assert_eq!(t[3].eax, 0x0121);
    }

    #[test]
    fn other_leaves_are_untouched() {
        let regs = [0x24, 0x756e_6547, 0x6c65_746e, 0x4965_6e69];
        let mut t = [entry(0, 0, regs), entry(0x4000_0000, 0, [1, 2, 3, 4])];
        normalize(&mut t, 0);
        assert_eq!([t[0].eax, t[0].ebx, t[0].ecx, t[0].edx], regs);
        assert_eq!(t[1].edx, 4);
    }
}
