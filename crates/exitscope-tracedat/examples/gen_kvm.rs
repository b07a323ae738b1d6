//! Writes a large synthetic trace.dat of `kvm_exit` → `kvm_entry` pairs (VMX reasons CPUID,
//! HLT, IO_INSTRUCTION, EPT_VIOLATION, EXTERNAL_INTERRUPT) of one vCPU thread per CPU, for
//! throughput benchmarks against `trace-cmd report` (which reads it). Streams: each CPU's
//! pages go to a spool file next to OUT, so memory stays small whatever EVENTS is.
//!
//! `cargo run --release -p exitscope-tracedat --features write --example gen_kvm -- OUT VERSION COMPRESSION EVENTS CPUS`
//! with VERSION 6 or 7 and COMPRESSION none, zlib or zstd.

use std::fs::File;
use std::io::BufWriter;

use exitscope_tracedat::write::fixture::{KVM_ENTRY_FORMAT, KVM_EXIT_FORMAT, pack_records};
use exitscope_tracedat::write::{CpuSpool, FileOptions, Metadata, write_file};
use exitscope_tracedat::{Compression, Endian, PageFormat};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: gen_kvm OUT VERSION(6|7) COMPRESSION(none|zlib|zstd) EVENTS CPUS");
        std::process::exit(2);
    }
    let out = &args[1];
    let version: u32 = args[2].parse().unwrap_or(7);
    let compression = match (version, args[3].as_str()) {
        (6, _) => Compression::None,
        (_, "zlib") => Compression::Zlib,
        (_, "zstd") => Compression::Zstd,
        _ => Compression::None,
    };
    let events: u64 = args[4].parse().unwrap_or(1_000_000);
    let cpus: u32 = args[5].parse().unwrap_or(2).max(1);
    if let Err(e) = generate(out, version, compression, events, cpus) {
        eprintln!("gen_kvm: {out}: {e}");
        std::process::exit(1);
    }
}

fn generate(
    out: &str,
    version: u32,
    compression: Compression,
    events: u64,
    cpus: u32,
) -> std::io::Result<()> {
    let pf = PageFormat { page_size: 4096, long_size: 8, endian: Endian::Little };
    let mut spools = Vec::new();
    let mut tmp = Vec::new();
    for cpu in 0..cpus {
        let p = format!("{out}.cpu{cpu}.tmp");
        let f = File::options().read(true).write(true).create(true).truncate(true).open(&p)?;
        tmp.push(p);
        spools.push(CpuSpool::new(cpu, f, compression, pf));
    }
    // Pairs per CPU; the CPUs' clocks interleave.
    let pairs = events / 2 / u64::from(cpus);
    const BATCH: u64 = 100_000;
    let reasons = [10u32, 12, 30, 48, 1, 30, 10];
    for spool in &mut spools {
        let cpu = spool.cpu();
        let pid = 2000 + i32::try_from(cpu).unwrap_or(0);
        let mut t = 1_000_000_000u64 + u64::from(cpu) * 137;
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(cpu);
        let mut done = 0;
        while done < pairs {
            let n = BATCH.min(pairs - done);
            let mut recs = Vec::with_capacity(2 * n as usize);
            for i in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let reason = reasons[(x % reasons.len() as u64) as usize];
                let rip = 0xffff_ffff_8100_0000u64 + (x >> 40) * 4;
                let mut p = payload(1500, pid, 60);
                put(&mut p, 8, &reason.to_le_bytes());
                put(&mut p, 16, &rip.to_le_bytes());
                put(&mut p, 24, &1u32.to_le_bytes());
                put(&mut p, 32, &(x & 0xfff).to_le_bytes());
                put(&mut p, 56, &cpu.to_le_bytes());
                recs.push((t, p));
                t += 400 + (x >> 20) % 3000;
                let mut p = payload(1501, pid, 24);
                put(&mut p, 8, &cpu.to_le_bytes());
                put(&mut p, 16, &rip.to_le_bytes());
                recs.push((t, p));
                t += 1000
                    + (x >> 30) % 5000
                    + if (done + i) % 100_000 == 99_999 { 1 << 28 } else { 0 };
            }
            spool.push_pages(&pack_records(&recs, pf.page_size, None, false))?;
            done += n;
        }
    }
    let meta = Metadata {
        systems: vec![(
            "kvm".into(),
            vec![KVM_EXIT_FORMAT.as_bytes().to_vec(), KVM_ENTRY_FORMAT.as_bytes().to_vec()],
        )],
        cmdlines: (0..cpus)
            .map(|c| format!("{} qemu-vcpu{c}\n", 2000 + c))
            .collect::<String>()
            .into_bytes(),
        ..Metadata::default()
    };
    let mut w = BufWriter::new(File::create(out)?);
    let opts = FileOptions::new(version, compression, pf);
    let r = write_file(&mut w, &opts, &meta, &mut spools);
    drop(spools);
    for p in tmp {
        let _ = std::fs::remove_file(p);
    }
    r.map(|_| ())
}

fn payload(id: u16, pid: i32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    put(&mut p, 0, &id.to_le_bytes());
    put(&mut p, 4, &pid.to_le_bytes());
    p
}

fn put(p: &mut [u8], off: usize, b: &[u8]) {
    if let Some(s) = p.get_mut(off..off + b.len()) {
        s.copy_from_slice(b);
    }
}
