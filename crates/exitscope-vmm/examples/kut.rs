//! Boots a kvm-unit-tests image and prints the guest's lines and the parsed results:
//! `cargo run -p exitscope-vmm --example kut -- ../shared/kut/vmexit.flat cpuid mov_dr`.
//! `KUT_SMP=2` sets the vCPU count.

use exitscope_vmm::kut::{KutConfig, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kernel = args.next().ok_or("usage: kut FILE [TEST...]")?;
    let smp = std::env::var("KUT_SMP").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let config = KutConfig::new(kernel).with_tests(args).with_smp(smp);
    let outcome = run(&config, |line| println!("{}", line.text))?;
    println!("-- {} after {:.1} s", outcome.end.describe(), outcome.seconds);
    for t in outcome.tests() {
        println!(
            "{:<20} cycles {:?} iterations {:?} exits/iter {:?} user/iter {:?} stats {:?}",
            t.name,
            t.cycles,
            t.window_iterations,
            t.exits_per_iteration,
            t.userspace_exits_per_iteration,
            t.stats_per_iteration
        );
    }
    println!("userspace exits: {:?}", outcome.userspace_exits);
    Ok(())
}
