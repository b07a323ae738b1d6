//! `exitscope bench`: VM-exit microbenchmarks on exitscope's built-in VMM (no QEMU).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use exitscope_vmm::{BENCHMARKS, Benchmark, Cpl, Options, Report, Status, TestResult};

use crate::exit::{self, CmdResult, Failure};

/// Arguments of `exitscope bench`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Tests to run (default: all listed by --list), named as in kvm-unit-tests' vmexit.
    pub tests: Vec<String>,
    /// List the tests with what each exercises, and exit.
    #[arg(long)]
    pub list: bool,
    /// Privilege level of the loops (default: 3 on PVM hosts, 0 elsewhere).
    #[arg(long, value_parser = parse_cpl)]
    pub cpl: Option<Cpl>,
    /// Minimum TSC cycles per measured loop; iterations double until reached.
    /// Accepts N or 2^N [default: 2^30 as kvm-unit-tests, 2^26 with --quick].
    #[arg(long, value_parser = parse_cycles)]
    pub min_cycles: Option<u64>,
    /// Measured loops per test; median with its 95 % interval (6 or more), min and max are
    /// reported [default: 10, 6 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// Short run: --min-cycles 2^26 and --repeat 6 unless given.
    #[arg(long)]
    pub quick: bool,
    /// Pin each vCPU thread to this CPU (the CPUs it ran on are recorded either way).
    #[arg(long, value_name = "CPU")]
    pub pin: Option<u32>,
    /// Deadline per test in seconds; a test still running then is stopped.
    #[arg(long, default_value_t = 20.0, value_parser = parse_seconds)]
    pub timeout: f64,
    /// Write the report as JSON to stdout.
    #[arg(long)]
    pub json: bool,
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
        (args.min_cycles.unwrap_or(1 << 26), args.repeat.unwrap_or(6))
    } else {
        (
            args.min_cycles.unwrap_or(exitscope_vmm::bench::DEFAULT_MIN_CYCLES),
            args.repeat.unwrap_or(exitscope_vmm::bench::DEFAULT_REPEAT),
        )
    };
    if let Some(cpu) = args.pin {
        check_pin(cpu, exitscope_host::allowed_cpus())?;
    }
    let opts = Options::default()
        .with_pin(args.pin)
        .with_cpl(args.cpl)
        .with_min_cycles(min_cycles)
        .with_repeat(repeat)
        .with_timeout(Duration::from_secs_f64(args.timeout));

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

/// `--pin CPU` must name a CPU this process may run on.
fn check_pin(cpu: u32, allowed: Option<Vec<u32>>) -> Result<(), Failure> {
    match allowed {
        Some(cpus) if !cpus.contains(&cpu) => Err(Failure::input(anyhow!(
            "--pin {cpu}: this process may only run on CPUs {}",
            exitscope_host::format_cpu_list(&cpus)
        ))),
        _ => Ok(()),
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

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
}

/// `[low, high]` of the median's interval, or `-`.
fn interval(r: &TestResult) -> String {
    r.cycles_median_ci.map_or_else(|| "-".into(), |ci| format!("[{:.1}, {:.1}]", ci.low, ci.high))
}

fn write_table(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<4} {:<7} {:>11} {:>22} {:>11} {:>11} {:>10} {:>10}  exit kind",
        "test",
        "mode",
        "status",
        "cyc median",
        "95% CI of median",
        "cyc min",
        "cyc max",
        "ns",
        "exits/iter",
    )?;
    for r in &report.results {
        writeln!(
            out,
            "{:<18} cpl{} {:<7} {:>11} {:>22} {:>11} {:>11} {:>10} {:>10}  {}",
            r.test,
            r.cpl,
            r.status.as_str(),
            num(r.cycles_median, 1),
            interval(r),
            num(r.cycles_min, 1),
            num(r.cycles_max, 1),
            num(r.ns_median, 1),
            num(r.exits_per_iteration, 2),
            r.exit_kind
        )?;
    }
    writeln!(out)?;
    let h = &report.host;
    writeln!(out, "{}", h.fingerprint)?;
    writeln!(out, "mode: CPL{}: {}", report.mode.cpl.as_u8(), report.mode.reason)?;
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    writeln!(
        out,
        "load average: {} before, {} after; min cycles {}, repeat {}; cycles are per iteration \
         minus the empty-loop baseline; 95% CI: order statistics of the repeats",
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
    for r in report.results.iter().filter(|r| r.status == Status::Ok) {
        if let Some(w) = &r.ci_warning {
            writeln!(out, "warning: {}: {w}", r.test)?;
        }
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
    fn cycles_accept_powers_and_plain_numbers() {
        assert_eq!(parse_cycles("2^20"), Ok(1 << 20));
        assert_eq!(parse_cycles("1_000"), Ok(1000));
        assert!(parse_cycles("3^2").is_err());
        assert!(parse_cycles("0").is_err());
        assert!(parse_cycles("2^70").is_err());
    }

    #[test]
    fn pin_must_be_an_allowed_cpu() {
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
