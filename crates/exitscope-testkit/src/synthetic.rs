//! Synthetic `kvm_exit` → `kvm_entry` traces for fleet tests: many exits, several vCPUs,
//! nanosecond timestamps (`trace-cmd report` style), latencies drawn from a seeded generator,
//! so tests can make any number of distinct "hosts" whose percentiles are known only from
//! the data.

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

/// ftrace text of `spec`: per exit a `kvm_exit` line, a `kvm_pio` for port I/O, and the
/// `kvm_entry` that ends it, timestamps in nanoseconds, strictly increasing.
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
        let head = format!(" qemu-system-x86-{tid}  [{cpu:03}]");
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
        out.push_str(&format!(
            "{head} {}: kvm_entry: vcpu {v}, rip 0xffffffff81002002\n",
            ts(t + d)
        ));
        t += d + 500 + rng.below(20_000);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_reproducible_and_ordered() {
        let spec = HostSpec { seed: 7, exits: 200, vcpus: 3, slowdown: 1.0 };
        let a = kvm_event_trace(&spec);
        assert_eq!(a, kvm_event_trace(&spec));
        assert_eq!(a.lines().filter(|l| l.contains("kvm_exit:")).count(), 200);
        assert_eq!(a.lines().filter(|l| l.contains("kvm_entry:")).count(), 200);
        let ts: Vec<f64> = a
            .lines()
            .map(|l| l.split("] ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap())
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    }
}
