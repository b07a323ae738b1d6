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
//! For fleet tests, [`kvm_event_trace`] writes one synthetic host's `kvm_exit` → `kvm_entry`
//! trace from a [`HostSpec`] (seed, exits, vCPUs, a slowdown factor), with nanosecond
//! timestamps (`trace-cmd report` style) and latencies drawn from a seeded [`Rng`], so tests
//! can make any number of distinct hosts whose percentiles are known only from the data.
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

/// The big traces' generator (their bytes stay as they were; [`Rng`] is the fleet's).
struct XorShift(u64);

impl XorShift {
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
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
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
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
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

// ---- one synthetic host of a fleet ----

/// A small seeded generator (xorshift64*): the same seed gives the same trace.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a synthetic host's trace looks like.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Seed of its latencies and order.
    pub seed: u64,
    /// Exits to write.
    pub exits: usize,
    /// vCPU threads (each its own tid and CPU).
    pub vcpus: u32,
    /// Every latency is multiplied by this (a slower kernel or microcode).
    pub slowdown: f64,
}

/// The reasons written: VMX name, base handling time in ns, share of the exits (of 100).
pub const REASONS: &[(&str, u64, u64)] = &[
    ("CPUID", 1_100, 40),
    ("IO_INSTRUCTION", 4_000, 30),
    ("HLT", 25_000, 20),
    ("EPT_MISCONFIG", 2_500, 10),
];

/// The VM process (tgid) of [`kvm_event_trace`]'s vCPU threads.
pub const VM_PID: u32 = 3999;

/// ftrace text of `spec`: per exit a `kvm_exit` line, a `kvm_pio` for port I/O, and the
/// `kvm_entry` that ends it, timestamps in nanoseconds, strictly increasing. Lines carry the
/// `record-tgid` column ([`VM_PID`]); half of the HLT exits (at random) block: the vCPU thread
/// is switched out for the idle task and back (two `sched_switch` lines) inside the exit.
pub fn kvm_event_trace(spec: &HostSpec) -> String {
    let mut rng = Rng::new(spec.seed);
    let mut out = String::with_capacity(spec.exits * 330);
    let mut t: u64 = 1_000_000_000 + rng.below(1_000_000_000);
    let vcpus = spec.vcpus.max(1);
    for i in 0..spec.exits {
        let v = u32::try_from(i % vcpus as usize).unwrap_or(0);
        let (tid, cpu) = (4000 + v, v * 2 + 1);
        let mut pick = rng.below(100);
        let &(name, base, _) = REASONS
            .iter()
            .find(|&&(_, _, share)| {
                if pick < share {
                    true
                } else {
                    pick -= share;
                    false
                }
            })
            .unwrap_or(&REASONS[0]);
        // A body around the base (0.7..1.3 x) and a tail of 5 % at 3..4 x: p50 and p99 far
        // apart, many distinct values, and a p99 stable enough between seeds that a slowdown
        // shows.
        let f = if rng.below(100) < 5 { 3.0 + rng.unit() } else { 0.7 + 0.6 * rng.unit() };
        #[allow(clippy::cast_sign_loss, reason = "a positive product")]
        let d = (base as f64 * f * spec.slowdown.abs()) as u64 + 1;
        let ts = |t: u64| format!("{}.{:09}", t / 1_000_000_000, t % 1_000_000_000);
        let head = format!(" qemu-system-x86-{tid}  ({VM_PID:>7}) [{cpu:03}]");
        out.push_str(&format!(
            "{head} {}: kvm_exit: vcpu {v} reason {name} rip 0xffffffff8100{:04x} info1 0x0 \
             info2 0x0 intr_info 0x00000000 error_code 0x00000000\n",
            ts(t),
            rng.below(0xffff)
        ));
        if name == "IO_INSTRUCTION" {
            let port = 0x70 + rng.below(2);
            out.push_str(&format!(
                "{head} {}: kvm_pio: pio_write at 0x{port:x} size 1 count 1 val 0x8f\n",
                ts(t + d / 2)
            ));
        }
        if name == "HLT" && rng.below(2) == 0 {
            out.push_str(&format!(
                "{head} {}: sched_switch: prev_comm=qemu-system-x86 prev_pid={tid} \
                 prev_prio=120 prev_state=S ==> next_comm=swapper/{cpu} next_pid=0 \
                 next_prio=120\n",
                ts(t + d / 3)
            ));
            out.push_str(&format!(
                "          <idle>-0       (      0) [{cpu:03}] {}: sched_switch: \
                 prev_comm=swapper/{cpu} prev_pid=0 prev_prio=120 prev_state=R ==> \
                 next_comm=qemu-system-x86 next_pid={tid} next_prio=120\n",
                ts(t + 2 * d / 3)
            ));
        }
        out.push_str(&format!(
            "{head} {}: kvm_entry: vcpu {v}, rip 0xffffffff81002002\n",
            ts(t + d)
        ));
        t += d + 500 + rng.below(20_000);
    }
    out
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn traces_are_reproducible_and_ordered() {
        let spec = HostSpec { seed: 7, exits: 200, vcpus: 3, slowdown: 1.0 };
        let a = kvm_event_trace(&spec);
        assert_eq!(a, kvm_event_trace(&spec));
        assert_eq!(a.lines().filter(|l| l.contains("kvm_exit:")).count(), 200);
        assert_eq!(a.lines().filter(|l| l.contains("kvm_entry:")).count(), 200);
        let switches = a.lines().filter(|l| l.contains("sched_switch:")).count();
        let hlt = a.lines().filter(|l| l.contains("reason HLT")).count();
        assert!(switches > 0 && switches <= 2 * hlt && switches % 2 == 0, "{switches} {hlt}");
        let ts: Vec<f64> = a
            .lines()
            .map(|l| l.split("] ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap())
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    }
}
