//! `exitscope bench`: VM-exit microbenchmarks on exitscope's built-in VMM (no QEMU).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use exitscope_vmm::{BENCHMARKS, Benchmark, Status};

use crate::args::{BenchOptions, KutArgs};
use crate::exit::{self, CmdResult, Failure};
use crate::recording::find_test;
use crate::text::plural;

/// Arguments of `exitscope bench`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope bench --list
  exitscope bench --quick cpuid inl_from_kernel            # exitscope's own guest loops
  exitscope bench --cpl 0 --min-cycles 2^28 --repeat 9 --json mmio_from_vmm > bench.json
  exitscope bench --kut vmexit.flat cpuid mov_dr           # kvm-unit-tests' vmexit.flat, no QEMU
  exitscope bench --kut vmexit.flat --kut-cfg unittests.cfg --repeat 5 --json

Defaults: --min-cycles 2^30 (as kvm-unit-tests) and --repeat 10; with --quick 2^26 and 6 (six
repeats are the fewest that give a 95 % interval of the median). With --kut: one boot per
configuration (--repeat N boots N times), --timeout 90 s per boot.")]
pub struct Args {
    /// Tests to run (default: all listed by --list), named as in kvm-unit-tests' vmexit.
    /// With --kut: the guest's command line (default: every test the image has).
    #[arg(value_name = "TEST")]
    pub tests: Vec<String>,
    /// List the tests with what each exercises, and exit.
    #[arg(long, conflicts_with = "kut")]
    pub list: bool,
    #[command(flatten)]
    pub bench: BenchOptions,
    /// Short run: --min-cycles 2^26 and --repeat 6 unless given.
    #[arg(long, conflicts_with = "kut")]
    pub quick: bool,
    /// Write the report as JSON to stdout (with --kut the guest's lines go to stderr).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kut: KutArgs,
    /// Run the `vmexit_*` entries of this kvm-unit-tests unittests.cfg, each with its own
    /// test_args, smp and timeout (TESTs, if given, pick entries).
    #[arg(long, value_name = "FILE", requires = "kut")]
    pub kut_cfg: Option<PathBuf>,
}

#[path = "bench_kut.rs"]
mod kut;

/// `--min-cycles` and `--repeat` when not given: kvm-unit-tests' goal, or `--quick`'s.
pub fn defaults(quick: bool) -> (u64, u32) {
    if quick {
        // Six repeats are the fewest that give a 95 % interval of the median.
        (1 << 26, 6)
    } else {
        (exitscope_vmm::bench::DEFAULT_MIN_CYCLES, exitscope_vmm::bench::DEFAULT_REPEAT)
    }
}

/// Run `exitscope bench`.
pub fn run(args: Args) -> CmdResult {
    if args.kut.kut.is_some() {
        return kut::run(&args);
    }
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
    args.bench.validate()?;
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
        exitscope_render::bench::write_table(&mut out, &report)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_must_be_an_allowed_cpu() {
        use crate::args::check_pin;
        assert!(check_pin(1, Some(vec![0, 1])).is_ok());
        assert!(check_pin(7, None).is_ok(), "unknown mask: let the kernel decide");
        let e = check_pin(5, Some(vec![0, 1, 2])).unwrap_err();
        assert_eq!(e.code, exit::BAD_INPUT);
        assert!(e.to_string().contains("CPUs 0-2"), "{e}");
    }

    #[test]
    fn unknown_test_is_a_usage_error() {
        let e = select(&["nope".into()]).unwrap_err();
        assert_eq!(e.code, exit::BAD_INPUT);
        assert!(e.to_string().contains("cpuid"));
        assert_eq!(select(&["fault_ud".into()]).unwrap()[0].name, "fault_ud");
        assert!(select(&[]).unwrap().iter().all(|b| !b.hidden));
    }
}
