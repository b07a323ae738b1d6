//! `exitscope bench`: VM-exit microbenchmarks on exitscope's built-in VMM (no QEMU).

use std::io::{IsTerminal, Write};

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use exitscope_vmm::{BENCHMARKS, Benchmark, Report, Status, TestResult};

use crate::args::BenchOptions;
use crate::exit::{self, CmdResult, Failure};
use crate::recording::find_test;
use crate::text::{fixed, plural};

/// Arguments of `exitscope bench`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope bench --list
  exitscope bench --quick cpuid inl_from_kernel
  exitscope bench --cpl 0 --min-cycles 2^28 --repeat 9 --json mmio_from_vmm > bench.json

Defaults: --min-cycles 2^30 (as kvm-unit-tests) and --repeat 5; with --quick 2^26 and 3.")]
pub struct Args {
    /// Tests to run (default: all listed by --list), named as in kvm-unit-tests' vmexit.
    #[arg(value_name = "TEST")]
    pub tests: Vec<String>,
    /// List the tests with what each exercises, and exit.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub bench: BenchOptions,
    /// Short run: --min-cycles 2^26 and --repeat 3 unless given.
    #[arg(long)]
    pub quick: bool,
    /// Write the report as JSON to stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--min-cycles` and `--repeat` when not given: kvm-unit-tests' goal, or `--quick`'s.
pub fn defaults(quick: bool) -> (u64, u32) {
    if quick {
        (1 << 26, 3)
    } else {
        (exitscope_vmm::bench::DEFAULT_MIN_CYCLES, exitscope_vmm::bench::DEFAULT_REPEAT)
    }
}

/// Run `exitscope bench`.
pub fn run(args: Args) -> CmdResult {
    if args.list {
        let mut out = std::io::stdout().lock();
        for b in BENCHMARKS.iter().filter(|b| !b.hidden) {
            let cpl = if b.needs_cpl0 { "cpl0" } else { "any " };
            writeln!(out, "{:<18} {cpl}  {}", b.name, b.description)?;
        }
        return Ok(exit::OK);
    }
    let benches = select(&args.tests)?;

    let (min_cycles, repeat) = defaults(args.quick);
    let opts = args.bench.vmm(min_cycles, repeat);

    let chatty = std::io::stderr().is_terminal();
    let report = exitscope_vmm::run_suite(&benches, &opts, |b, done| {
        if !chatty {
            return;
        }
        match done {
            None => crate::stderr::partial(format_args!("exitscope: {} ...", b.name)),
            Some(r) => crate::stderr::partial(format_args!(
                " {} ({:.1} s)\n",
                r.status.as_str(),
                r.seconds
            )),
        }
    })
    .map_err(|e| Failure::environment(anyhow!(e)))?;

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing JSON")?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;

    let bad =
        report.results.iter().filter(|r| matches!(r.status, Status::Failed | Status::Timeout));
    let bad: Vec<&str> = bad.map(|r| r.test.as_str()).collect();
    if bad.is_empty() {
        Ok(exit::OK)
    } else {
        say!("{} did not complete: {}", plural(bad.len() as u64, "test", "tests"), bad.join(", "));
        Ok(exit::CHECK_FAILED)
    }
}

/// The benchmarks named on the command line, or every listed one.
fn select(names: &[String]) -> Result<Vec<&'static Benchmark>, Failure> {
    if names.is_empty() {
        return Ok(BENCHMARKS.iter().filter(|b| !b.hidden).collect());
    }
    names.iter().map(|n| find_test(n)).collect()
}

fn write_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<4} {:<7} {:>11} {:>11} {:>11} {:>10} {:>10}  exit kind",
        "test", "mode", "status", "cyc median", "cyc min", "cyc max", "ns", "exits/iter",
    )?;
    for r in &report.results {
        writeln!(
            out,
            "{:<18} cpl{} {:<7} {:>11} {:>11} {:>11} {:>10} {:>10}  {}",
            r.test,
            r.cpl,
            r.status.as_str(),
            fixed(r.cycles_median, 1),
            fixed(r.cycles_min, 1),
            fixed(r.cycles_max, 1),
            fixed(r.ns_median, 1),
            fixed(r.exits_per_iteration, 2),
            r.exit_kind
        )?;
    }
    writeln!(out)?;
    let h = &report.host;
    let khz = h.tsc_khz.map_or_else(|| "unknown".to_string(), |k| k.to_string());
    writeln!(
        out,
        "host: kvm {}, TSC {khz} kHz, {}, kernel {}",
        h.kvm_flavour.as_str(),
        h.cpu_model,
        h.kernel
    )?;
    writeln!(out, "mode: CPL{}: {}", report.mode.cpl.as_u8(), report.mode.reason)?;
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    writeln!(
        out,
        "load average: {} before, {} after; min cycles {}, repeat {}; cycles are per iteration \
         minus the empty-loop baseline",
        la(h.load_average),
        la(report.load_average_after),
        report.min_cycles,
        report.repeat
    )?;
    for r in &report.results {
        if let (Some(loop_ns), Some(exit_ns)) = (r.vmm_loop_ns_per_exit, r.ns_median) {
            writeln!(
                out,
                "vmm loop: {}: {loop_ns:.0} ns per userspace exit spent in exitscope between \
                 KVM_RUN calls ({:.2}% of the exit)",
                r.test,
                100.0 * loop_ns / exit_ns.max(1.0)
            )?;
        }
    }
    for r in report.results.iter().filter(|r| r.reason.is_some()) {
        write_note(out, r)?;
    }
    Ok(())
}

fn write_note(out: &mut impl Write, r: &TestResult) -> std::io::Result<()> {
    writeln!(out, "note: {}: {}", r.test, r.reason.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_test_is_a_usage_error() {
        let e = select(&["nope".into()]).unwrap_err();
        assert_eq!(e.code, exit::BAD_INPUT);
        assert!(e.to_string().contains("cpuid"));
        assert_eq!(select(&["fault_ud".into()]).unwrap()[0].name, "fault_ud");
        assert!(select(&[]).unwrap().iter().all(|b| !b.hidden));
    }
}
