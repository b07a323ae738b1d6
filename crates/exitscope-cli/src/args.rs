//! Flag groups shared by several subcommands (clap `#[command(flatten)]`): one type, one
//! value name and one meaning per flag, wherever it appears.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use exitscope_render::Style;
use exitscope_vmm::Cpl;

use crate::exit::Failure;

/// `-o FILE` of the commands that read traces and write one result.
#[derive(Debug, Clone, Args)]
pub struct OutputFile {
    /// Write the result to FILE instead of stdout (`-` = stdout). FILE is replaced only when
    /// the command succeeds.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputFile {
    /// The path, `None` for stdout.
    pub fn path(&self) -> Option<&Path> {
        self.output.as_deref()
    }
}

/// `--color WHEN`.
#[derive(Debug, Clone, Args)]
pub struct ColorArg {
    /// Color the terminal output: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to color output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When writing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorArg {
    /// Resolve `--color` against the output and `NO_COLOR`.
    pub fn style(&self, to_tty: bool) -> Style {
        let color = match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                to_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Style { color }
    }
}

/// How inputs are read and unreadable lines reported.
#[derive(Debug, Clone, Args)]
pub struct DiagnosticsArgs {
    /// Fail (exit 2) if any line could not be read, instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print at most N diagnostics (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_diagnostics: usize,
    /// Threads that parse a large text trace (default: every CPU this process may use;
    /// 1: stream on one thread). The result is the same for any N.
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Cut text inputs into chunks of this many bytes whatever their size (tests of the
    /// parallel reader).
    #[arg(long, value_name = "BYTES", hide = true)]
    pub chunk_bytes: Option<usize>,
}

impl DiagnosticsArgs {
    /// The threads to read with: `-j`, else the CPUs available.
    pub fn jobs(&self) -> usize {
        match self.jobs {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Benchmark loop options, shared by `bench`, `run` and `record --bench` (`--timeout` and
/// `--repeat` also apply to `--kut` boots).
#[derive(Debug, Clone, Default, Args)]
pub struct BenchOptions {
    /// Privilege level of the benchmark loops [default: 3 on PVM hosts, 0 elsewhere].
    #[arg(long, value_name = "0|3", value_parser = parse_cpl)]
    pub cpl: Option<Cpl>,
    /// Minimum TSC cycles per measured loop; iterations double until reached. N or 2^N.
    #[arg(long, value_name = "N|2^N", value_parser = parse_cycles)]
    pub min_cycles: Option<u64>,
    /// Measured loops per test; median, min and max are reported.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// Deadline per test in seconds; a test still running then is stopped [default: 20].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Pin each vCPU thread to this CPU (the CPUs it ran on are recorded either way).
    #[arg(long, value_name = "CPU")]
    pub pin: Option<u32>,
}

impl BenchOptions {
    /// The VMM's options, with `min_cycles` and `repeat` defaulting to the given values.
    pub fn vmm(&self, min_cycles: u64, repeat: u32) -> exitscope_vmm::Options {
        exitscope_vmm::Options::default()
            .with_cpl(self.cpl)
            .with_min_cycles(self.min_cycles.unwrap_or(min_cycles))
            .with_repeat(self.repeat.unwrap_or(repeat))
            .with_timeout(Duration::from_secs_f64(self.timeout.unwrap_or(20.0)))
            .with_pin(self.pin)
    }

    /// Check what can be checked before anything runs: `--pin` names a CPU this process may
    /// run on.
    ///
    /// # Errors
    /// A usage error (exit 2) naming the allowed CPUs.
    pub fn validate(&self) -> Result<(), Failure> {
        match self.pin {
            Some(cpu) => check_pin(cpu, exitscope_host::allowed_cpus()),
            None => Ok(()),
        }
    }

    /// Whether any option was given.
    pub fn any(&self) -> bool {
        self.cpl.is_some()
            || self.min_cycles.is_some()
            || self.repeat.is_some()
            || self.timeout.is_some()
            || self.pin.is_some()
    }
}

/// `--kut FILE` and the machine it boots, shared by `bench --kut`, `run --kut` and
/// `record --kut`; the deadline is [`BenchOptions`]'s `--timeout`.
#[derive(Debug, Clone, Args)]
pub struct KutArgs {
    /// Boot this kvm-unit-tests x86 image (multiboot ELF32, e.g. x86/vmexit.flat) in
    /// exitscope's VMM, with the TESTs as its command line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cpl", "min_cycles", "pin"])]
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
}

impl KutArgs {
    /// The image, read and checked to be a multiboot ELF32 before anything else runs (bad
    /// input is exit 2 even on a host without KVM); `None` without `--kut`.
    ///
    /// # Errors
    /// A usage error naming the file and, for a bad image, the byte offset.
    pub fn image(&self) -> Result<Option<&Path>, Failure> {
        let Some(kernel) = self.kut.as_deref() else { return Ok(None) };
        let bytes = std::fs::read(kernel)
            .map_err(|e| Failure::input(anyhow::anyhow!("reading {}: {e}", kernel.display())))?;
        exitscope_vmm::kut::multiboot::Elf32::parse(&bytes)
            .map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", kernel.display())))?;
        Ok(Some(kernel))
    }

    /// The boot of `kernel` with `tests` as its command line, `--smp`, `--mem` and the
    /// `--timeout` of `bench` (kvm-unit-tests' 90 s when not given).
    pub fn config(
        &self,
        kernel: &Path,
        tests: &[String],
        bench: &BenchOptions,
    ) -> exitscope_vmm::kut::KutConfig {
        let mut c = exitscope_vmm::kut::KutConfig::new(kernel)
            .with_smp(self.smp)
            .with_mem_mib(self.mem)
            .with_tests(tests.iter().cloned());
        if let Some(t) = bench.timeout {
            c = c.with_timeout(Duration::from_secs_f64(t));
        }
        c
    }
}

/// `--pin CPU` must name a CPU this process may run on (`allowed`: `None` when unknown).
///
/// # Errors
/// A usage error naming the allowed CPUs.
pub fn check_pin(cpu: u32, allowed: Option<Vec<u32>>) -> Result<(), Failure> {
    match allowed {
        Some(cpus) if !cpus.contains(&cpu) => Err(Failure::input(anyhow::anyhow!(
            "--pin {cpu}: this process may only run on CPUs {}",
            exitscope_host::format_cpu_list(&cpus)
        ))),
        _ => Ok(()),
    }
}

/// Which tracefs to use and how big its buffers are, for `record` and `run`.
#[derive(Debug, Clone, Args)]
pub struct TracefsArgs {
    /// Per-CPU ring buffer size in KiB (buffer_size_kb).
    #[arg(long, value_name = "KB", value_parser = parse_kb)]
    pub buffer_size: Option<u64>,
    /// The tracefs mount to use instead of looking for one.
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// Testing only: a directory of plain files that emulates tracefs.
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "tracefs")]
    pub fake_tracefs: Option<PathBuf>,
}

/// `5`, `5%` or ` 5 % ` as a non-negative percentage (`diff` and `compare --fail-above`).
pub fn parse_pct(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a percentage like 5 or 5%, found {s:?}")),
    }
}

fn parse_cpl(s: &str) -> Result<Cpl, String> {
    match s {
        "0" => Ok(Cpl::Zero),
        "3" => Ok(Cpl::Three),
        _ => Err("must be 0 or 3".into()),
    }
}

/// `N`, `1_000` or `2^N`.
pub fn parse_cycles(s: &str) -> Result<u64, String> {
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

fn parse_kb(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 (KiB per CPU)".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a whole number of KiB")),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err("must be positive".into()) }
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
}
