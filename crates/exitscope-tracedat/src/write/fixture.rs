//! Record-level fixtures: `(timestamp, payload)` records packed into ring-buffer pages and
//! written with [`super::write_file`] (little- or big-endian, 64-bit kernel layout). They
//! stand in for what this project's machine cannot record (function_graph, zlib, big-endian
//! kernels) in tests, fuzz seeds and benchmark inputs.

use std::io::Cursor;

use super::{CpuSpool, FileOptions, HEADER_EVENT, HEADER_PAGE, Metadata, write_file};
use crate::{Compression, Endian, PageFormat};

/// What to write.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// 6 or 7.
    pub version: u32,
    /// v7 compression (ignored for v6).
    pub compression: Compression,
    /// Page (sub-buffer) size.
    pub page_size: u32,
    /// ftrace event format texts.
    pub ftrace_formats: Vec<String>,
    /// (system, format texts).
    pub systems: Vec<(String, Vec<String>)>,
    /// kallsyms text.
    pub kallsyms: String,
    /// printk_formats text.
    pub printk: String,
    /// saved_cmdlines text.
    pub cmdlines: String,
    /// Per CPU: (timestamp, payload) in timestamp order.
    pub cpus: Vec<Vec<(u64, Vec<u8>)>>,
    /// CPUs whose first page carries the missed-events flag with this count.
    pub missed_first_page: Vec<(usize, u64)>,
    /// Write a big-endian file (headers, options, page and event headers; record
    /// payloads are written as given).
    pub big_endian: bool,
    /// Further options written as-is: (id, data).
    pub extra_options: Vec<(u16, Vec<u8>)>,
}

/// Size of the page header of a 64-bit kernel.
const HDR: usize = 16;

/// An event header word.
fn hdr(be: bool, type_len: u32, delta: u32) -> u32 {
    if be { (type_len << 27) | delta } else { type_len | (delta << 5) }
}

/// Packs records (timestamp order) into pages of `page_size` bytes, as the kernel would: a
/// TIME_EXTEND before deltas of 2^27 or more, type_len 0 for payloads over 112 bytes, and the
/// missed-events flag with a stored count on the first page when `missed` is given.
pub fn pack_records(
    recs: &[(u64, Vec<u8>)],
    page_size: usize,
    missed: Option<u64>,
    be: bool,
) -> Vec<u8> {
    let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let w64 = |x: u64| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    let mut out = Vec::new();
    let mut page: Vec<u8> = Vec::new();
    let mut last = 0u64;
    let mut first_page = true;
    let flush = |page: &mut Vec<u8>, out: &mut Vec<u8>, first: &mut bool| {
        if page.len() > HDR {
            let mut commit = (page.len() - HDR) as u64;
            if *first && let Some(n) = missed {
                page.extend_from_slice(&w64(n));
                commit |= (1 << 31) | (1 << 30);
            }
            *first = false;
            if let Some(c) = page.get_mut(8..16) {
                c.copy_from_slice(&w64(commit));
            }
            page.resize(page_size, 0);
            out.extend_from_slice(page);
        }
        page.clear();
    };
    for (ts, payload) in recs {
        let plen = payload.len().next_multiple_of(4);
        let small = plen <= 112 && plen > 0;
        let need = if small { 4 + plen } else { 8 + plen } + 8 + 8;
        if page.is_empty() || page.len() + need > page_size {
            flush(&mut page, &mut out, &mut first_page);
            page.extend_from_slice(&w64(*ts));
            page.extend_from_slice(&w64(0));
            last = *ts;
        }
        let mut delta = ts.saturating_sub(last);
        if delta >= 1 << 27 {
            page.extend_from_slice(&w32(hdr(be, 30, (delta & ((1 << 27) - 1)) as u32)));
            page.extend_from_slice(&w32((delta >> 27) as u32));
            delta = 0;
        }
        last = *ts;
        if small {
            page.extend_from_slice(&w32(hdr(be, (plen / 4) as u32, delta as u32)));
        } else {
            page.extend_from_slice(&w32(hdr(be, 0, delta as u32)));
            page.extend_from_slice(&w32((plen + 4) as u32));
        }
        page.extend_from_slice(payload);
        page.resize(page.len() + plen - payload.len(), 0);
    }
    flush(&mut page, &mut out, &mut first_page);
    out
}

impl Fixture {
    /// The file's bytes (empty for a version other than 6 and 7).
    pub fn to_bytes(&self) -> Vec<u8> {
        let endian = if self.big_endian { Endian::Big } else { Endian::Little };
        let pf = PageFormat { page_size: self.page_size as usize, long_size: 8, endian };
        let compression = if self.version == 6 { Compression::None } else { self.compression };
        let meta = Metadata {
            header_page: HEADER_PAGE.into(),
            header_event: HEADER_EVENT.into(),
            ftrace_formats: self.ftrace_formats.iter().map(|f| f.clone().into_bytes()).collect(),
            systems: self
                .systems
                .iter()
                .map(|(s, fs)| (s.clone(), fs.iter().map(|f| f.clone().into_bytes()).collect()))
                .collect(),
            kallsyms: self.kallsyms.clone().into_bytes(),
            printk: self.printk.clone().into_bytes(),
            cmdlines: self.cmdlines.clone().into_bytes(),
            buffer_name: String::new(),
            clock: "local".into(),
            options: self.extra_options.clone(),
        };
        let mut spools: Vec<CpuSpool<Cursor<Vec<u8>>>> = Vec::new();
        for (i, recs) in self.cpus.iter().enumerate() {
            let missed = self.missed_first_page.iter().find(|m| m.0 == i).map(|m| m.1);
            let pages = pack_records(recs, pf.page_size, missed, self.big_endian);
            let mut s = CpuSpool::new(i as u32, Cursor::new(Vec::new()), compression, pf);
            if s.push_pages(&pages).is_err() {
                return Vec::new();
            }
            spools.push(s);
        }
        let mut v = Vec::new();
        let opts = FileOptions::new(self.version, compression, pf);
        match write_file(&mut v, &opts, &meta, &mut spools) {
            Ok(_) => v,
            Err(_) => Vec::new(),
        }
    }
}

/// Format of `ftrace:funcgraph_entry` (kernel ~5.x–6.4 packed layout).
pub const FUNCGRAPH_ENTRY_FORMAT: &str = "name: funcgraph_entry\nID: 11\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long func;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int depth;\toffset:16;\tsize:4;\tsigned:1;\n\nprint fmt: \"--> %ps (%d)\", (void *)REC->func, REC->depth\n";
/// Format of `ftrace:funcgraph_exit` (kernel ~5.x–6.4 packed layout).
pub const FUNCGRAPH_EXIT_FORMAT: &str = "name: funcgraph_exit\nID: 10\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long func;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int depth;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:unsigned int overrun;\toffset:20;\tsize:4;\tsigned:0;\n\tfield:unsigned long long calltime;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned long long rettime;\toffset:32;\tsize:8;\tsigned:0;\n\nprint fmt: \"<-- %ps (%d) (start: %llx  end: %llx) over: %d\", (void *)REC->func, REC->depth, REC->calltime, REC->rettime, REC->depth\n";
/// A reduced `kvm:kvm_exit` format (VMX reasons only).
pub const KVM_EXIT_FORMAT: &str = "name: kvm_exit\nID: 1500\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:u32 isa;\toffset:24;\tsize:4;\tsigned:0;\n\tfield:u64 info1;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:u64 info2;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:u32 intr_info;\toffset:48;\tsize:4;\tsigned:0;\n\tfield:u32 error_code;\toffset:52;\tsize:4;\tsigned:0;\n\tfield:unsigned int vcpu_id;\toffset:56;\tsize:4;\tsigned:0;\n\nprint fmt: \"vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x\", REC->vcpu_id, (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, { 0, \"EXCEPTION_NMI\" }, { 1, \"EXTERNAL_INTERRUPT\" }, { 10, \"CPUID\" }, { 12, \"HLT\" }, { 30, \"IO_INSTRUCTION\" }, { 48, \"EPT_VIOLATION\" }) : __print_symbolic(REC->exit_reason, { 0x072, \"cpuid\" }, { 0x07b, \"io\" }, { 0x400, \"npf\" }), (REC->isa == 1 && REC->exit_reason & ~0xffff) ? \" \" : \"\", (REC->isa == 1) ? __print_flags(REC->exit_reason & ~0xffff, \" \", { 0x80000000, \"FAILED_VMENTRY\" }, { 0x08000000, \"ENCLAVE_MODE\" }) : \"\", REC->guest_rip, REC->info1, REC->info2, REC->intr_info, REC->error_code\n";
/// A `kvm:kvm_entry` format.
pub const KVM_ENTRY_FORMAT: &str = "name: kvm_entry\nID: 1501\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned int vcpu_id;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:unsigned long rip;\toffset:16;\tsize:8;\tsigned:0;\n\nprint fmt: \"vcpu %u, rip 0x%lx\", REC->vcpu_id, REC->rip\n";

fn common(id: u16, pid: i32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    if let Some(s) = p.get_mut(0..2) {
        s.copy_from_slice(&id.to_le_bytes());
    }
    if let Some(s) = p.get_mut(4..8) {
        s.copy_from_slice(&pid.to_le_bytes());
    }
    p
}

fn put(p: &mut [u8], off: usize, b: &[u8]) {
    if let Some(s) = p.get_mut(off..off + b.len()) {
        s.copy_from_slice(b);
    }
}

/// Functions of the synthetic KVM call tree: (address, name, module).
pub const DEMO_SYMBOLS: &[(u64, &str, Option<&str>)] = &[
    (0xffff_ffff_8100_0000, "_stext", None),
    (0xffff_ffff_8110_0000, "__schedule", None),
    (0xffff_ffff_8120_0000, "irq_enter_rcu", None),
    (0xffff_ffff_c080_0000, "vcpu_enter_guest", Some("kvm")),
    (0xffff_ffff_c080_1000, "kvm_load_guest_xsave_state", Some("kvm")),
    (0xffff_ffff_c080_2000, "kvm_emulate_cpuid", Some("kvm")),
    (0xffff_ffff_c080_3000, "kvm_cpuid", Some("kvm")),
    (0xffff_ffff_c090_0000, "vmx_vcpu_run", Some("kvm_intel")),
    (0xffff_ffff_c090_1000, "vmx_handle_exit", Some("kvm_intel")),
    (0xffff_ffff_c090_2000, "handle_io", Some("kvm_intel")),
];

/// A synthetic function_graph + kvm_exit/kvm_entry trace: `iterations` iterations of
/// `vcpu_enter_guest` per vCPU thread (two threads on two CPUs), each with a nested call
/// tree and a guest exit (alternating CPUID and IO_INSTRUCTION): 14 records for a CPUID
/// iteration, 12 for an IO one. Every tenth iteration is followed by a 300 ms idle gap, which
/// needs a TIME_EXTEND.
pub fn demo_funcgraph(version: u32, compression: Compression, iterations: u64) -> Fixture {
    let sym = |i: usize| DEMO_SYMBOLS.get(i).map_or(0, |s| s.0);
    let mut kallsyms = String::new();
    for (a, n, m) in DEMO_SYMBOLS {
        kallsyms.push_str(&format!("{a:016x} t {n}"));
        if let Some(m) = m {
            kallsyms.push_str(&format!("\t[{m}]"));
        }
        kallsyms.push('\n');
    }
    let mut cpus = vec![Vec::new(), Vec::new()];
    for (cpu, recs) in cpus.iter_mut().enumerate() {
        let pid = 1000 + cpu as i32;
        let mut t = 1_000_000_000u64 + cpu as u64 * 333;
        let mut stack: Vec<(u64, u64)> = Vec::new();
        let entry =
            |recs: &mut Vec<(u64, Vec<u8>)>, stack: &mut Vec<(u64, u64)>, t: u64, f: u64| {
                let mut p = common(11, pid, 20);
                put(&mut p, 8, &f.to_le_bytes());
                put(&mut p, 16, &(stack.len() as i32).to_le_bytes());
                stack.push((f, t));
                recs.push((t, p));
            };
        let exit = |recs: &mut Vec<(u64, Vec<u8>)>, stack: &mut Vec<(u64, u64)>, t: u64| {
            let Some((f, ct)) = stack.pop() else { return };
            let mut p = common(10, pid, 40);
            put(&mut p, 8, &f.to_le_bytes());
            put(&mut p, 16, &(stack.len() as i32).to_le_bytes());
            put(&mut p, 24, &ct.to_le_bytes());
            put(&mut p, 32, &t.to_le_bytes());
            recs.push((t, p));
        };
        for i in 0..iterations {
            let cpuid = i % 2 == 0;
            entry(recs, &mut stack, t, sym(3));
            t += 150;
            entry(recs, &mut stack, t, sym(4));
            t += 90;
            exit(recs, &mut stack, t);
            t += 40;
            entry(recs, &mut stack, t, sym(7));
            t += 30;
            let mut p = common(1501, pid, 24);
            put(&mut p, 8, &(cpu as u32).to_le_bytes());
            put(&mut p, 16, &0xfff0u64.to_le_bytes());
            recs.push((t, p));
            t += 1200 + (i % 7) * 100;
            let mut p = common(1500, pid, 60);
            put(&mut p, 8, &(if cpuid { 10u32 } else { 30u32 }).to_le_bytes());
            put(&mut p, 16, &0xfff2u64.to_le_bytes());
            put(&mut p, 24, &1u32.to_le_bytes());
            put(&mut p, 56, &(cpu as u32).to_le_bytes());
            recs.push((t, p));
            t += 60;
            exit(recs, &mut stack, t);
            t += 25;
            entry(recs, &mut stack, t, sym(8));
            t += 35;
            entry(recs, &mut stack, t, if cpuid { sym(5) } else { sym(9) });
            t += 20;
            if cpuid {
                entry(recs, &mut stack, t, sym(6));
                t += 110;
                exit(recs, &mut stack, t);
                t += 15;
            }
            exit(recs, &mut stack, t);
            t += 30;
            exit(recs, &mut stack, t);
            t += 45;
            exit(recs, &mut stack, t);
            // Idle gap: sometimes long enough to need a TIME_EXTEND.
            t += if i % 10 == 9 { 300_000_000 } else { 700 };
        }
    }
    Fixture {
        version,
        compression,
        page_size: 4096,
        ftrace_formats: vec![FUNCGRAPH_EXIT_FORMAT.into(), FUNCGRAPH_ENTRY_FORMAT.into()],
        systems: vec![("kvm".into(), vec![KVM_EXIT_FORMAT.into(), KVM_ENTRY_FORMAT.into()])],
        kallsyms,
        printk: String::new(),
        cmdlines: "1000 qemu-vcpu0\n1001 qemu-vcpu1\n".into(),
        cpus,
        missed_first_page: Vec::new(),
        big_endian: false,
        extra_options: Vec::new(),
    }
}

/// `sched:sched_switch` as a 6.18 kernel prints its format (id 372).
pub const SCHED_SWITCH_FORMAT: &str = "name: sched_switch\nID: 372\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n\nprint fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }, { 0x00000002, \"D\" }, { 0x00000004, \"T\" }, { 0x00000008, \"t\" }, { 0x00000010, \"X\" }, { 0x00000020, \"Z\" }, { 0x00000040, \"P\" }, { 0x00000080, \"I\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? \"+\" : \"\", REC->next_comm, REC->next_pid, REC->next_prio\n";

fn kvm_exit_rec(pid: i32, vcpu: u32, reason: u32, rip: u64) -> Vec<u8> {
    let mut p = common(1500, pid, 64);
    put(&mut p, 8, &reason.to_le_bytes());
    put(&mut p, 16, &rip.to_le_bytes());
    put(&mut p, 24, &1u32.to_le_bytes());
    put(&mut p, 56, &vcpu.to_le_bytes());
    p
}

fn kvm_entry_rec(pid: i32, vcpu: u32, rip: u64) -> Vec<u8> {
    let mut p = common(1501, pid, 24);
    put(&mut p, 8, &vcpu.to_le_bytes());
    put(&mut p, 16, &rip.to_le_bytes());
    p
}

fn sched_switch_rec(prev: (&str, i32), state: i64, next: (&str, i32)) -> Vec<u8> {
    let mut p = common(372, prev.1, 64);
    put(&mut p, 8, prev.0.as_bytes().get(..15).unwrap_or(prev.0.as_bytes()));
    put(&mut p, 24, &prev.1.to_le_bytes());
    put(&mut p, 28, &120i32.to_le_bytes());
    put(&mut p, 32, &state.to_le_bytes());
    put(&mut p, 40, next.0.as_bytes().get(..15).unwrap_or(next.0.as_bytes()));
    put(&mut p, 56, &next.1.to_le_bytes());
    put(&mut p, 60, &120i32.to_le_bytes());
    p
}

/// A `kvm_exit`/`kvm_entry` + `sched_switch` trace of one VM (process 4240, vCPU threads 4242
/// and 4243) with exitscope's tgids option ([`crate::TGIDS_OPTION`]), as `exitscope record`
/// writes it: on CPU 0 a HLT exit during which thread 4242 is switched out for the idle task
/// (8.1 us) and then a CPUID exit (200 ns); on CPU 1 a CPUID exit of thread 4243 (300 ns).
/// Thread 4244 (its CPUID exit unpaired) has no tgid in the option.
pub fn kvm_sched_tgids(version: u32, compression: Compression) -> Fixture {
    let qemu = "qemu-system-x86";
    let cpu0 = vec![
        (1_000, kvm_exit_rec(4242, 0, 12, 0xffff_ffff_81e1_a8ba)),
        (1_100, sched_switch_rec((qemu, 4242), 1, ("swapper/0", 0))),
        (9_000, sched_switch_rec(("swapper/0", 0), 0, (qemu, 4242))),
        (9_100, kvm_entry_rec(4242, 0, 0xffff_ffff_81e1_a8bb)),
        (10_000, kvm_exit_rec(4242, 0, 10, 0xffff_ffff_8106_fd1e)),
        (10_200, kvm_entry_rec(4242, 0, 0xffff_ffff_8106_fd20)),
    ];
    let cpu1 = vec![
        (2_000, kvm_exit_rec(4243, 1, 10, 0xffff_ffff_8106_fd1e)),
        (2_300, kvm_entry_rec(4243, 1, 0xffff_ffff_8106_fd20)),
        (3_000, kvm_exit_rec(4244, 0, 10, 0xffff_ffff_8106_fd1e)),
    ];
    let tgids = format!("{}4242 4240\n4243 4240\n1 1\0", crate::TGIDS_PREFIX);
    Fixture {
        version,
        compression,
        page_size: 4096,
        ftrace_formats: Vec::new(),
        systems: vec![
            ("kvm".into(), vec![KVM_EXIT_FORMAT.into(), KVM_ENTRY_FORMAT.into()]),
            ("sched".into(), vec![SCHED_SWITCH_FORMAT.into()]),
        ],
        kallsyms: String::new(),
        printk: String::new(),
        cmdlines: format!("4242 {qemu}\n4243 {qemu}\n4244 {qemu}\n"),
        cpus: vec![cpu0, cpu1],
        missed_first_page: Vec::new(),
        big_endian: false,
        extra_options: vec![(crate::TGIDS_OPTION, tgids.into_bytes())],
    }
}
