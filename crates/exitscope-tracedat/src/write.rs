//! A minimal trace.dat writer (little-endian, 64-bit kernel layout), written from the
//! format description. It exists to generate fixtures the machine cannot record (a
//! function_graph trace, zlib-compressed v7), fuzz seeds and benchmark inputs.

use std::io::Write as _;

use crate::Compression;

/// Standard `header_page` text of a 64-bit kernel.
pub const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n";
/// Standard `header_event` text.
pub const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

/// What to write.
#[derive(Clone, Debug)]
pub struct Writer {
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

const HDR: usize = 16;

/// Packs records into ring-buffer pages.
/// An event header word.
fn hdr(be: bool, type_len: u32, delta: u32) -> u32 {
    if be { (type_len << 27) | delta } else { type_len | (delta << 5) }
}

fn pages(recs: &[(u64, Vec<u8>)], page_size: usize, missed: Option<u64>, be: bool) -> Vec<u8> {
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

fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    match c {
        Compression::Zstd => zstd::bulk::compress(data, 3).unwrap_or_default(),
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        Compression::None => data.to_vec(),
    }
}

fn u16b(be: bool, v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}
fn u32b(be: bool, v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}
fn u64b(be: bool, v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

impl Writer {
    fn header_info(&self, v: &mut Vec<u8>) {
        let be = self.big_endian;
        v.extend_from_slice(b"header_page\0");
        u64b(be, v, HEADER_PAGE.len() as u64);
        v.extend_from_slice(HEADER_PAGE.as_bytes());
        v.extend_from_slice(b"header_event\0");
        u64b(be, v, HEADER_EVENT.len() as u64);
        v.extend_from_slice(HEADER_EVENT.as_bytes());
    }
    fn ftrace(&self, v: &mut Vec<u8>) {
        let be = self.big_endian;
        u32b(be, v, self.ftrace_formats.len() as u32);
        for f in &self.ftrace_formats {
            u64b(be, v, f.len() as u64);
            v.extend_from_slice(f.as_bytes());
        }
    }
    fn systems(&self, v: &mut Vec<u8>) {
        let be = self.big_endian;
        u32b(be, v, self.systems.len() as u32);
        for (s, fs) in &self.systems {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
            u32b(be, v, fs.len() as u32);
            for f in fs {
                u64b(be, v, f.len() as u64);
                v.extend_from_slice(f.as_bytes());
            }
        }
    }
    fn cpu_pages(&self) -> Vec<Vec<u8>> {
        self.cpus
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let missed = self.missed_first_page.iter().find(|m| m.0 == i).map(|m| m.1);
                pages(r, self.page_size as usize, missed, self.big_endian)
            })
            .collect()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let be = self.big_endian;
        let mut v = Vec::new();
        v.extend_from_slice(crate::file::MAGIC);
        v.extend_from_slice(if self.version == 6 { b"6\0" } else { b"7\0" });
        v.push(u8::from(be));
        v.push(8);
        u32b(be, &mut v, self.page_size);
        let ps = self.page_size as usize;
        let data = self.cpu_pages();
        if self.version == 6 {
            self.header_info(&mut v);
            self.ftrace(&mut v);
            self.systems(&mut v);
            u32b(be, &mut v, self.kallsyms.len() as u32);
            v.extend_from_slice(self.kallsyms.as_bytes());
            u32b(be, &mut v, self.printk.len() as u32);
            v.extend_from_slice(self.printk.as_bytes());
            u64b(be, &mut v, self.cmdlines.len() as u64);
            v.extend_from_slice(self.cmdlines.as_bytes());
            u32b(be, &mut v, self.cpus.len() as u32);
            v.extend_from_slice(b"options  \0");
            u16b(be, &mut v, 8);
            u32b(be, &mut v, 4);
            u32b(be, &mut v, self.cpus.len() as u32);
            for (id, d) in &self.extra_options {
                u16b(be, &mut v, *id);
                u32b(be, &mut v, d.len() as u32);
                v.extend_from_slice(d);
            }
            u16b(be, &mut v, 0);
            v.extend_from_slice(b"flyrecord\0");
            let mut off = (v.len() + 16 * data.len()).next_multiple_of(ps) as u64;
            for d in &data {
                u64b(be, &mut v, if d.is_empty() { 0 } else { off });
                u64b(be, &mut v, d.len() as u64);
                off += d.len() as u64;
            }
            v.resize(v.len().next_multiple_of(ps), 0);
            for d in &data {
                v.extend_from_slice(d);
            }
            return v;
        }
        let comp = self.compression;
        v.extend_from_slice(match comp {
            Compression::None => b"none\0",
            Compression::Zlib => b"zlib\0",
            Compression::Zstd => b"zstd\0",
        });
        v.extend_from_slice(b"1\0");
        let opt_ptr = v.len();
        u64b(be, &mut v, 0);
        let mut section_offsets = Vec::new();
        let section = |v: &mut Vec<u8>, id: u16, body: &[u8]| -> u64 {
            let at = v.len() as u64;
            let compressed = comp != Compression::None;
            u16b(be, v, id);
            u16b(be, v, u16::from(compressed));
            u32b(be, v, 0);
            if compressed {
                let c = compress(comp, body);
                u64b(be, v, 8 + c.len() as u64);
                u32b(be, v, c.len() as u32);
                u32b(be, v, body.len() as u32);
                v.extend_from_slice(&c);
            } else {
                u64b(be, v, body.len() as u64);
                v.extend_from_slice(body);
            }
            at
        };
        let mut b = Vec::new();
        self.header_info(&mut b);
        section_offsets.push((16u16, section(&mut v, 16, &b)));
        b.clear();
        self.ftrace(&mut b);
        section_offsets.push((17, section(&mut v, 17, &b)));
        b.clear();
        self.systems(&mut b);
        section_offsets.push((18, section(&mut v, 18, &b)));
        b.clear();
        u32b(be, &mut b, self.kallsyms.len() as u32);
        b.extend_from_slice(self.kallsyms.as_bytes());
        section_offsets.push((19, section(&mut v, 19, &b)));
        b.clear();
        u32b(be, &mut b, self.printk.len() as u32);
        b.extend_from_slice(self.printk.as_bytes());
        section_offsets.push((20, section(&mut v, 20, &b)));
        b.clear();
        u64b(be, &mut b, self.cmdlines.len() as u64);
        b.extend_from_slice(self.cmdlines.as_bytes());
        section_offsets.push((21, section(&mut v, 21, &b)));
        // Buffer section: header, padding, per-CPU data.
        let buf_at = v.len() as u64;
        u16b(be, &mut v, 3);
        u16b(be, &mut v, u16::from(comp != Compression::None));
        u32b(be, &mut v, 0);
        let size_ptr = v.len();
        u64b(be, &mut v, 0);
        let body_start = v.len();
        v.resize(v.len().next_multiple_of(ps), 0);
        let mut cpu_table = Vec::new();
        for (i, d) in data.iter().enumerate() {
            let at = v.len() as u64;
            if comp == Compression::None {
                v.extend_from_slice(d);
            } else {
                let chunks: Vec<&[u8]> = d.chunks(ps * 4).collect();
                u32b(be, &mut v, chunks.len() as u32);
                for ch in chunks {
                    let c = compress(comp, ch);
                    u32b(be, &mut v, c.len() as u32);
                    u32b(be, &mut v, ch.len() as u32);
                    v.extend_from_slice(&c);
                }
            }
            let size = v.len() as u64 - at;
            cpu_table.push((i as u32, if size == 0 { 0 } else { at }, size));
            v.resize(v.len().next_multiple_of(ps), 0);
        }
        let body_len = (v.len() - body_start) as u64;
        if let Some(s) = v.get_mut(size_ptr..size_ptr + 8) {
            s.copy_from_slice(&if be { body_len.to_be_bytes() } else { body_len.to_le_bytes() });
        }
        // Options section.
        let mut o = Vec::new();
        u16b(be, &mut o, 8);
        u32b(be, &mut o, 4);
        u32b(be, &mut o, self.cpus.len() as u32);
        for (id, off) in &section_offsets {
            u16b(be, &mut o, *id);
            u32b(be, &mut o, 8);
            u64b(be, &mut o, *off);
        }
        for (id, d) in &self.extra_options {
            u16b(be, &mut o, *id);
            u32b(be, &mut o, d.len() as u32);
            o.extend_from_slice(d);
        }
        let mut bo = Vec::new();
        u64b(be, &mut bo, buf_at);
        bo.extend_from_slice(b"\0local\0");
        u32b(be, &mut bo, self.page_size);
        u32b(be, &mut bo, cpu_table.len() as u32);
        for (c, off, size) in &cpu_table {
            u32b(be, &mut bo, *c);
            u64b(be, &mut bo, *off);
            u64b(be, &mut bo, *size);
        }
        u16b(be, &mut o, 3);
        u32b(be, &mut o, bo.len() as u32);
        o.extend_from_slice(&bo);
        u16b(be, &mut o, 0);
        u32b(be, &mut o, 8);
        u64b(be, &mut o, 0);
        let opt_at = section(&mut v, 0, &o);
        if let Some(s) = v.get_mut(opt_ptr..opt_ptr + 8) {
            s.copy_from_slice(&if be { opt_at.to_be_bytes() } else { opt_at.to_le_bytes() });
        }
        v
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
pub fn demo_funcgraph(version: u32, compression: Compression, iterations: u64) -> Writer {
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
    Writer {
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
