//! Large synthetic traces for throughput and memory benchmarks, written to any [`Write`]:
//!
//! - [`fgraph`]: seed-shaped function_graph text, the AMD and Intel `vcpu_enter_guest` exits
//!   of `tests/data/seed` repeated with varying durations on four CPUs, with the occasional
//!   task-switch banner;
//! - [`events`]: `kvm_exit`/`kvm_entry` pairs as `trace_pipe` prints them (5.10+ formats),
//!   four vCPU threads on four CPUs, reasons in the proportions a busy guest shows.
//!
//! Both are deterministic (a fixed xorshift seed), so two runs write the same bytes.
//!
//! ```
//! let mut text = Vec::new();
//! let (bytes, lines) = exitscope_testkit::synth::events(&mut text, 10_000).unwrap();
//! assert_eq!(bytes as usize, text.len());
//! assert!(lines > 0 && bytes >= 10_000);
//! ```

use std::io::{self, Write};

const SEED_AMD: &str = include_str!("../../../tests/data/seed/cpuid-amd.fgraph.txt");
const SEED_INTEL: &str = include_str!("../../../tests/data/seed/cpuid-intel.fgraph.txt");

/// One seed graph line: its duration in ns (if it has one) and the body after `|`.
type Template = (Option<u64>, String);

/// `"4.278"` (µs) → 4278 ns.
fn micros_to_ns(d: &str) -> Option<u64> {
    let (int, frac) = d.split_once('.').unwrap_or((d, ""));
    let mut ns = int.parse::<u64>().ok()? * 1000;
    let mut place = 100;
    for c in frac.bytes().take(3) {
        ns += u64::from(c.checked_sub(b'0')?) * place;
        place /= 10;
    }
    Some(ns)
}

/// The seed files split into one block of lines per outermost call.
fn blocks() -> Vec<Vec<Template>> {
    let mut blocks = Vec::new();
    for text in [SEED_AMD, SEED_INTEL] {
        let mut block = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((_cpu, rest)) = line.split_once(')') else { continue };
            let Some((dur, body)) = rest.split_once('|') else { continue };
            let ns = dur.trim().strip_suffix(" us").and_then(micros_to_ns);
            block.push((ns, body.to_string()));
            if body.trim() == "}" && line.contains("|  }") {
                blocks.push(std::mem::take(&mut block));
            }
        }
        if !block.is_empty() {
            blocks.push(block);
        }
    }
    blocks
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Write at least `target_bytes` of seed-shaped function_graph text; returns (bytes, lines).
///
/// # Errors
/// Those of `w`.
pub fn fgraph(w: &mut impl Write, target_bytes: u64) -> io::Result<(u64, u64)> {
    let blocks = blocks();
    let mut w = io::BufWriter::with_capacity(1 << 20, w);
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut i = 0usize;
    let mut line = String::with_capacity(128);
    while bytes < target_bytes {
        let r = rng.next();
        let cpu = (r % 4) as u32 * 33;
        let block = &blocks[i % blocks.len()];
        i += 1;
        line.clear();
        if i.is_multiple_of(1000) {
            line.push_str(&format!(
                " ------------------------------------------\n {cpu:3}) qemu-sy-{}  =>  qemu-sy-{} \n ------------------------------------------\n\n",
                1000 + i % 7,
                1000 + (i + 1) % 7
            ));
            lines += 4;
        }
        // Scale all durations of one exit by the same factor so totals stay consistent.
        let scale = 900 + (r >> 40) % 300; // 0.9x .. 1.2x
        for (ns, body) in block {
            match ns {
                Some(ns) => {
                    let v = ns * scale / 1000;
                    line.push_str(&format!(
                        " {cpu:3})   {}.{:03} us    |{body}\n",
                        v / 1000,
                        v % 1000
                    ));
                }
                None => line.push_str(&format!(" {cpu:3})               |{body}\n")),
            }
            lines += 1;
        }
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    w.flush()?;
    Ok((bytes, lines))
}

/// Write at least `target_bytes` of `kvm_exit`/`kvm_entry` event text; returns (bytes, lines).
///
/// # Errors
/// Those of `w`.
pub fn events(w: &mut impl Write, target_bytes: u64) -> io::Result<(u64, u64)> {
    const REASONS: &[(&str, u64)] = &[
        ("EPT_VIOLATION", 3_000),
        ("CPUID", 1_000),
        ("IO_INSTRUCTION", 9_000),
        ("MSR_WRITE", 800),
        ("EXTERNAL_INTERRUPT", 600),
        ("HLT", 40_000),
    ];
    let mut w = io::BufWriter::with_capacity(1 << 20, w);
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 1_000_000_000u64; // 1 s, in ns
    let mut line = String::with_capacity(256);
    let us = |t: u64| format!("{}.{:06}", t / 1_000_000_000, (t / 1000) % 1_000_000);
    while bytes < target_bytes {
        let r = rng.next();
        let vcpu = r % 4;
        let (reason, base) = REASONS[((r >> 8) % REASONS.len() as u64) as usize];
        let handling = base + (r >> 20) % base;
        line.clear();
        line.push_str(&format!(
            " CPU {vcpu}/KVM-{} [{vcpu:03}] d..1. {}: kvm_exit: vcpu {vcpu} reason {reason} rip 0xffffffff81000000 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n CPU {vcpu}/KVM-{} [{vcpu:03}] d..1. {}: kvm_entry: vcpu {vcpu}, rip 0xffffffff81000002\n",
            2000 + vcpu,
            us(ts),
            2000 + vcpu,
            us(ts + handling)
        ));
        ts += handling + 500 + (r >> 40) % 5_000;
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
        lines += 2;
    }
    w.flush()?;
    Ok((bytes, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fgraph_repeats_the_seed_blocks_with_scaled_durations() {
        let mut out = Vec::new();
        let (bytes, lines) = fgraph(&mut out, 50_000).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(bytes as usize, text.len());
        assert_eq!(lines as usize, text.lines().count());
        assert!(text.contains("|  vcpu_enter_guest [kvm]() {"));
        assert_eq!(micros_to_ns("4.278"), Some(4278));
        assert_eq!(micros_to_ns("12.5"), Some(12_500));
    }
}
