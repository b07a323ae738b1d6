//! `exitscope bench`: VM-exit microbenchmarks on exitscope's built-in VMM (no QEMU).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use exitscope_vmm::{BENCHMARKS, Benchmark, Cpl, Options, Report, Status, TestResult};

use crate::exit::{self, CmdResult, Failure};

/// Arguments of `exitscope bench`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope bench cpuid inl_from_kernel          # exitscope's own guest loops
  exitscope bench --kut vmexit.flat cpuid mov_dr # kvm-unit-tests' vmexit.flat, no QEMU
  exitscope bench --kut vmexit.flat --kut-cfg unittests.cfg --repeat 5 --json")]
pub struct Args {
    /// Tests to run (default: all listed by --list), named as in kvm-unit-tests' vmexit.
    /// With --kut: the guest's command line (default: every test the image has).
    pub tests: Vec<String>,
    /// List the tests with what each exercises, and exit.
    #[arg(long, conflicts_with = "kut")]
    pub list: bool,
    /// Privilege level of the loops (default: 3 on PVM hosts, 0 elsewhere).
    #[arg(long, value_parser = parse_cpl, conflicts_with = "kut")]
    pub cpl: Option<Cpl>,
    /// Minimum TSC cycles per measured loop; iterations double until reached.
    /// Accepts N or 2^N [default: 2^30 as kvm-unit-tests, 2^26 with --quick].
    #[arg(long, value_parser = parse_cycles, conflicts_with = "kut")]
    pub min_cycles: Option<u64>,
    /// Measured loops per test; median, min and max are reported [default: 5, 3 with --quick].
    /// With --kut: boots per configuration [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// Short run: --min-cycles 2^26 and --repeat 3 unless given.
    #[arg(long, conflicts_with = "kut")]
    pub quick: bool,
    /// Deadline per test in seconds; a test still running then is stopped.
    /// With --kut: per boot [default: 20, 90 with --kut unless the cfg entry sets one].
    #[arg(long, value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Write the report as JSON to stdout (with --kut the guest's lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Boot this kvm-unit-tests x86 image (multiboot ELF32, e.g. x86/vmexit.flat) in
    /// exitscope's VMM and report the cycles it prints.
    #[arg(long, value_name = "FILE")]
    pub kut: Option<PathBuf>,
    /// vCPUs for --kut.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "kut",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(exitscope_vmm::kut::MAX_VCPUS)))]
    pub smp: u32,
    /// Guest RAM in MiB for --kut.
    #[arg(long, value_name = "MB", default_value_t = exitscope_vmm::kut::DEFAULT_MEM_MIB,
          requires = "kut",
          value_parser = clap::value_parser!(u32).range(2..=i64::from(exitscope_vmm::kut::MAX_MEM_MIB)))]
    pub mem: u32,
    /// Run the `vmexit_*` entries of this kvm-unit-tests unittests.cfg, each with its own
    /// test_args, smp and timeout (TESTs, if given, pick entries).
    #[arg(long, value_name = "FILE", requires = "kut")]
    pub kut_cfg: Option<PathBuf>,
}

fn parse_cpl(s: &str) -> Result<Cpl, String> {
    match s {
        "0" => Ok(Cpl::Zero),
        "3" => Ok(Cpl::Three),
        _ => Err("must be 0 or 3".into()),
    }
}

fn parse_cycles(s: &str) -> Result<u64, String> {
    let v = match s.split_once('^') {
        Some(("2", e)) => {
            let e: u32 = e.parse().map_err(|_| format!("bad exponent in {s:?}"))?;
            1u64.checked_shl(e).filter(|_| e < 63).ok_or_else(|| format!("{s} is too large"))?
        }
        Some(_) => return Err(format!("{s:?}: only powers of 2 are accepted as 2^N")),
        None => s.replace('_', "").parse().map_err(|_| format!("{s:?} is not a number"))?,
    };
    if v == 0 { Err("must be at least 1".into()) } else { Ok(v) }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err("must be positive".into()) }
}

/// Run `exitscope bench`.
pub fn run(args: Args) -> CmdResult {
    if args.kut.is_some() {
        return crate::cmd::bench_kut::run(&args);
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

    let (min_cycles, repeat) = if args.quick {
        (args.min_cycles.unwrap_or(1 << 26), args.repeat.unwrap_or(3))
    } else {
        (
            args.min_cycles.unwrap_or(exitscope_vmm::bench::DEFAULT_MIN_CYCLES),
            args.repeat.unwrap_or(exitscope_vmm::bench::DEFAULT_REPEAT),
        )
    };
    let opts = Options::default()
        .with_cpl(args.cpl)
        .with_min_cycles(min_cycles)
        .with_repeat(repeat)
        .with_timeout(Duration::from_secs_f64(args.timeout.unwrap_or(20.0)));

    let chatty = std::io::stderr().is_terminal();
    let report = exitscope_vmm::run_suite(&benches, &opts, |b, done| {
        if !chatty {
            return;
        }
        match done {
            None => eprint!("exitscope: {} ...", b.name),
            Some(r) => eprintln!(" {} ({:.1} s)", r.status.as_str(), r.seconds),
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
        eprintln!("exitscope: {} did not complete: {}", bad.len(), bad.join(", "));
        Ok(exit::CHECK_FAILED)
    }
}

/// The benchmarks named on the command line, or every listed one.
fn select(names: &[String]) -> Result<Vec<&'static Benchmark>, Failure> {
    if names.is_empty() {
        return Ok(BENCHMARKS.iter().filter(|b| !b.hidden).collect());
    }
    names
        .iter()
        .map(|n| {
            exitscope_vmm::find(n).ok_or_else(|| {
                let known: Vec<&str> =
                    BENCHMARKS.iter().filter(|b| !b.hidden).map(|b| b.name).collect();
                Failure::input(anyhow!("unknown test {n:?}; known tests: {}", known.join(", ")))
            })
        })
        .collect()
}

pub(crate) fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
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
            num(r.cycles_median, 1),
            num(r.cycles_min, 1),
            num(r.cycles_max, 1),
            num(r.ns_median, 1),
            num(r.exits_per_iteration, 2),
            r.exit_kind
        )?;
    }
    writeln!(out)?;
    write_host_and_mode(out, report)?;
    let h = &report.host;
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

/// The `host:` and `mode:` lines every bench table ends with.
pub(crate) fn write_host_and_mode(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let h = &report.host;
    let khz = h.tsc_khz.map_or_else(|| "unknown".to_string(), |k| k.to_string());
    writeln!(
        out,
        "host: kvm {}, TSC {khz} kHz, {}, kernel {}",
        h.kvm_flavour.as_str(),
        h.cpu_model,
        h.kernel
    )?;
    writeln!(out, "mode: CPL{}: {}", report.mode.cpl.as_u8(), report.mode.reason)
}

pub(crate) fn write_note(out: &mut impl Write, r: &TestResult) -> std::io::Result<()> {
    writeln!(out, "note: {}: {}", r.test, r.reason.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_accept_powers_and_plain_numbers() {
        assert_eq!(parse_cycles("2^20"), Ok(1 << 20));
        assert_eq!(parse_cycles("1_000"), Ok(1000));
        assert!(parse_cycles("3^2").is_err());
        assert!(parse_cycles("0").is_err());
        assert!(parse_cycles("2^70").is_err());
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
