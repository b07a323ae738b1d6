//! Prints successive rounds of one benchmark with their KVM stats deltas (exploration aid).
//! Usage: cargo run --example rounds -- TEST [ITERATIONS] [ROUNDS] [CPL]
use exitscope_vmm::{BenchVm, Cpl, LoopKind, find, open_kvm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bench = find(args.get(1).map_or("cpuid", String::as_str)).ok_or("unknown test")?;
    let n: u64 = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let rounds: u32 = args.get(3).map_or(Ok(5), |s| s.parse())?;
    let cpl = if args.get(4).is_some_and(|s| s == "0") { Cpl::Zero } else { Cpl::Three };
    let kvm = open_kvm("/dev/kvm".as_ref())?;
    let vendor = if exitscope_vmm::HostInfo::detect().amd {
        exitscope_guest::Vendor::Amd
    } else {
        exitscope_guest::Vendor::Intel
    };
    let mut vm = BenchVm::new(&kvm, bench, cpl, vendor)?;
    for i in 0..rounds {
        let r = vm.run_round(n, LoopKind::Bench)?;
        let d = vm.stats().map(|s| s.deltas(&r.stats_before, &r.stats_after)).unwrap_or_default();
        #[allow(clippy::cast_precision_loss)]
        let per = r.cycles as f64 / r.iterations as f64;
        println!("round {i}: {per:.1} cycles/iter, user exits {}, {d:?}", r.userspace_exits);
    }
    Ok(())
}
