//! x86-64 system structures for the benchmark guest: memory layout, GDT, TSS, IDT and
//! identity page tables. Pure encoding, no KVM: everything here is unit tested.

use kvm_bindings::kvm_segment;

/// Guest memory layout (guest-physical = guest-virtual, identity mapped).
pub mod layout {
    /// Size of guest RAM (one memory slot at guest-physical 0).
    pub const RAM_SIZE: usize = 2 << 20;
    /// GDT (Linux 64-bit layout, 10 slots).
    pub const GDT: u64 = 0x1000;
    /// IDT (256 gates of 16 bytes).
    pub const IDT: u64 = 0x2000;
    /// 64-bit TSS followed by its I/O permission bitmap.
    pub const TSS: u64 = 0x3000;
    /// PML4 of the identity map.
    pub const PML4: u64 = 0x9000;
    /// PDPT of the identity map.
    pub const PDPT: u64 = 0xa000;
    /// Page directory of the identity map (512 × 2 MiB pages = the first 1 GiB).
    pub const PD: u64 = 0xb000;
    /// Guest code.
    pub const CODE: u64 = 0x10000;
    /// Top of the stack the benchmark loop starts with.
    pub const STACK_TOP: u64 = 0x80000;
    /// Top of the ring-0 stack (TSS.RSP0) used by exception and interrupt handlers.
    pub const KERNEL_STACK_TOP: u64 = 0x90000;
}

/// Selectors of the Linux x86-64 GDT layout. PVM hosts insist on these values
/// (`__USER_CS` 0x33, `__USER_DS` 0x2b).
pub mod sel {
    /// Kernel 64-bit code.
    pub const KERNEL_CS: u16 = 0x10;
    /// Kernel data.
    pub const KERNEL_DS: u16 = 0x18;
    /// User 32-bit code (unused, present for the layout).
    pub const USER32_CS: u16 = 0x23;
    /// User data (RPL 3).
    pub const USER_DS: u16 = 0x2b;
    /// User 64-bit code (RPL 3).
    pub const USER_CS: u16 = 0x33;
    /// 64-bit TSS (16-byte descriptor in slots 8 and 9).
    pub const TSS: u16 = 0x40;
}

/// Access/flags words in Firecracker's `gdt_entry` convention: bits 0..8 are the access
/// byte, bits 12..16 the G/DB/L/AVL nibble.
pub mod flags {
    /// 32-bit kernel code.
    pub const KERNEL32_CODE: u16 = 0xc09b;
    /// 64-bit kernel code (L=1).
    pub const KERNEL_CODE: u16 = 0xa09b;
    /// Kernel data.
    pub const KERNEL_DATA: u16 = 0xc093;
    /// 32-bit user code (DPL 3).
    pub const USER32_CODE: u16 = 0xc0fb;
    /// User data (DPL 3).
    pub const USER_DATA: u16 = 0xc0f3;
    /// 64-bit user code (DPL 3, L=1).
    pub const USER_CODE: u16 = 0xa0fb;
    /// Busy 64-bit TSS, byte granular.
    pub const TSS: u16 = 0x008b;
}

/// Encodes one 8-byte segment descriptor.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// Decodes a descriptor into the `kvm_segment` KVM_SET_SREGS wants.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let bits = |shift: u32, mask: u64| -> u8 {
        #[allow(clippy::cast_possible_truncation)] // masked to at most 4 bits
        let v = ((entry >> shift) & mask) as u8;
        v
    };
    #[allow(clippy::cast_possible_truncation)] // 32-bit base by construction
    let base = (((entry >> 32) & 0xff00_0000) | ((entry >> 16) & 0x00ff_ffff)) as u32;
    #[allow(clippy::cast_possible_truncation)] // 20-bit limit
    let raw_limit = (((entry >> 32) & 0x000f_0000) | (entry & 0xffff)) as u32;
    let g = bits(55, 1);
    let limit = if g == 1 { (raw_limit << 12) | 0xfff } else { raw_limit };
    let present = bits(47, 1);
    kvm_segment {
        base: u64::from(base),
        limit,
        selector,
        type_: bits(40, 0xf),
        present,
        dpl: bits(45, 0x3),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g,
        avl: bits(52, 1),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Offset of the I/O permission bitmap inside the TSS (right after the 104-byte TSS).
pub const TSS_IOPB_OFFSET: u16 = 104;
/// TSS limit: the 104-byte TSS, an all-zero bitmap for 65536 ports, and the 0xff end byte.
pub const TSS_LIMIT: u32 = 104 + 8192;

/// The GDT in the Linux layout, with the TSS descriptor at [`sel::TSS`].
pub fn gdt(tss_base: u64) -> [u64; 10] {
    #[allow(clippy::cast_possible_truncation)] // low half; the high half goes in slot 9
    let tss_low = gdt_entry(flags::TSS, tss_base as u32, TSS_LIMIT);
    [
        0,
        gdt_entry(flags::KERNEL32_CODE, 0, 0xfffff),
        gdt_entry(flags::KERNEL_CODE, 0, 0xfffff),
        gdt_entry(flags::KERNEL_DATA, 0, 0xfffff),
        gdt_entry(flags::USER32_CODE, 0, 0xfffff),
        gdt_entry(flags::USER_DATA, 0, 0xfffff),
        gdt_entry(flags::USER_CODE, 0, 0xfffff),
        0,
        tss_low,
        tss_base >> 32,
    ]
}

/// The 64-bit TSS image plus its all-zero I/O bitmap and terminating 0xff byte.
/// Only RSP0 (the ring-0 stack for handlers) and the bitmap offset are set.
pub fn tss(rsp0: u64) -> Vec<u8> {
    let mut t = vec![0u8; TSS_LIMIT as usize + 1];
    t[4..12].copy_from_slice(&rsp0.to_le_bytes());
    t[102..104].copy_from_slice(&TSS_IOPB_OFFSET.to_le_bytes());
    t[TSS_LIMIT as usize] = 0xff;
    t
}

/// One 16-byte 64-bit interrupt gate (DPL 0, present) to `handler` in `selector`.
pub fn idt_gate(handler: u64, selector: u16) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&handler.to_le_bytes()[0..2]);
    g[2..4].copy_from_slice(&selector.to_le_bytes());
    g[4] = 0; // IST
    g[5] = 0x8e; // present, DPL 0, 64-bit interrupt gate
    g[6..8].copy_from_slice(&handler.to_le_bytes()[2..4]);
    g[8..12].copy_from_slice(&handler.to_le_bytes()[4..8]);
    g
}

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User accessible (needed for the CPL3 benchmark loop).
    pub const US: u64 = 1 << 2;
    /// Large page (2 MiB in a PD entry).
    pub const PS: u64 = 1 << 7;
}

/// Identity page tables for the first 1 GiB with 2 MiB pages, user accessible.
/// Returns (PML4, PDPT, PD) pages of 512 entries each.
pub fn identity_page_tables(pdpt: u64, pd: u64) -> ([u64; 512], [u64; 512], [u64; 512]) {
    let mut pml4 = [0u64; 512];
    let mut pdpt_t = [0u64; 512];
    let mut pd_t = [0u64; 512];
    pml4[0] = pdpt | pte::P | pte::RW | pte::US;
    pdpt_t[0] = pd | pte::P | pte::RW | pte::US;
    for (i, e) in (0u64..).zip(pd_t.iter_mut()) {
        *e = (i << 21) | pte::P | pte::RW | pte::US | pte::PS;
    }
    (pml4, pdpt_t, pd_t)
}

/// Control-register and EFER bits used for long mode.
pub mod cr {
    /// CR0 as Linux runs: PE MP ET NE WP AM PG.
    pub const CR0: u64 = 0x8005_0033;
    /// CR4: PAE | OSFXSR | OSXMMEXCPT.
    pub const CR4: u64 = (1 << 5) | (1 << 9) | (1 << 10);
    /// EFER: SCE | LME | LMA.
    pub const EFER: u64 = 1 | (1 << 8) | (1 << 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_match_the_known_encodings() {
        // Reference values: Firecracker's 64-bit code/data and Linux's user segments.
        assert_eq!(gdt_entry(flags::KERNEL_CODE, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(flags::KERNEL_DATA, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(flags::USER_CODE, 0, 0xfffff), 0x00af_fb00_0000_ffff);
        assert_eq!(gdt_entry(flags::USER_DATA, 0, 0xfffff), 0x00cf_f300_0000_ffff);
        assert_eq!(gdt_entry(0x808b, 0x1234_5678, 0xabcde), 0x128a_8b34_5678_bcde);
    }

    #[test]
    fn selectors_index_the_linux_layout() {
        let g = gdt(layout::TSS);
        let at = |s: u16| g[usize::from(s >> 3)];
        let cs = segment_from_gdt(at(sel::USER_CS), sel::USER_CS);
        assert_eq!((cs.l, cs.dpl, cs.s, cs.type_, cs.present), (1, 3, 1, 0xb, 1));
        assert_eq!(cs.limit, 0xffff_ffff);
        let ds = segment_from_gdt(at(sel::USER_DS), sel::USER_DS);
        assert_eq!((ds.l, ds.db, ds.dpl, ds.type_), (0, 1, 3, 3));
        let kcs = segment_from_gdt(at(sel::KERNEL_CS), sel::KERNEL_CS);
        assert_eq!((kcs.l, kcs.dpl), (1, 0));
        assert_eq!(sel::USER_CS & 3, 3);
        assert_eq!(sel::USER_DS & 3, 3);
        assert_eq!(at(sel::USER32_CS) >> 40 & 0xff, 0xfb);
        let tr = segment_from_gdt(at(sel::TSS), sel::TSS);
        assert_eq!((tr.base, tr.limit, tr.type_, tr.s, tr.g), (layout::TSS, TSS_LIMIT, 0xb, 0, 0));
        assert_eq!(g[9], 0);
    }

    #[test]
    fn tss_has_rsp0_and_an_open_io_bitmap() {
        let t = tss(0x9_0000);
        assert_eq!(u64::from_le_bytes(t[4..12].try_into().unwrap()), 0x9_0000);
        assert_eq!(u16::from_le_bytes([t[102], t[103]]), 104);
        assert!(t[104..104 + 8192].iter().all(|b| *b == 0));
        assert_eq!(t.last(), Some(&0xff));
        assert!(layout::TSS + t.len() as u64 <= exitscope_guest::mailbox::BASE);
    }

    #[test]
    fn idt_gate_splits_the_handler_address() {
        let g = idt_gate(0x1122_3344_5566_7788, sel::KERNEL_CS);
        assert_eq!(
            g,
            [0x88, 0x77, 0x10, 0x00, 0x00, 0x8e, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0]
        );
    }

    #[test]
    fn page_tables_identity_map_one_gib_for_user() {
        let (pml4, pdpt, pd) = identity_page_tables(layout::PDPT, layout::PD);
        assert_eq!(pml4[0], layout::PDPT | 7);
        assert_eq!(pdpt[0], layout::PD | 7);
        assert_eq!(pd[0], 0x87);
        assert_eq!(pd[511], (511 << 21) | 0x87);
        assert!(pml4[1..].iter().chain(&pdpt[1..]).all(|e| *e == 0));
        // The MMIO benchmark address is mapped but not backed by RAM.
        let mmio = exitscope_guest::MMIO_ADDR;
        assert!(mmio < 1 << 30 && mmio >= layout::RAM_SIZE as u64);
    }

    #[test]
    fn layout_regions_do_not_overlap() {
        use layout::*;
        let code_end = CODE + 0x4000;
        let regions = [
            (GDT, GDT + 80),
            (IDT, IDT + 4096),
            (TSS, TSS + u64::from(TSS_LIMIT) + 1),
            (exitscope_guest::mailbox::BASE, exitscope_guest::mailbox::BASE + 0x1000),
            (PML4, PML4 + 4096),
            (PDPT, PDPT + 4096),
            (PD, PD + 4096),
            (CODE, code_end),
        ];
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                assert!(a.1 <= b.0 || b.1 <= a.0, "{a:x?} overlaps {b:x?}");
            }
        }
        assert!(code_end < STACK_TOP && STACK_TOP < KERNEL_STACK_TOP);
        assert!((KERNEL_STACK_TOP as usize) < RAM_SIZE);
    }
}
