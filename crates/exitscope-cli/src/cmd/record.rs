//! `exitscope record`: validate, then let exitscope-tracefs's `Recorder` set up tracefs,
//! run or attach to the target, stream the trace to a file and put tracefs back exactly as
//! it was.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args as ClapArgs;
use exitscope_tracefs::{
    CaptureFormat, Compression, Mode, Outcome, Placement, Recorder, Recording, SessionConfig,
    Target,
};
use exitscope_vmm::kut::KutConfig;

use crate::args::{BenchOptions, KutArgs, TracefsArgs};
use crate::exit::{self, CmdResult, Failure};
use crate::kut::KutTraced;
use crate::output::Output;
use crate::recording::{self, BenchOutcome};

/// Arguments of `exitscope record`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope record --events -o t.dat -- ./my-vmm --boot kernel
  exitscope record --events -o t.txt -- ./my-vmm     # the kernel's text instead
  exitscope record --graph vcpu_enter_guest --max-depth 8 --pid 1234 --duration 5
  exitscope record -e kvm:kvm_pio -e kvm:kvm_cpuid --bench inl_from_kernel -o t.txt
  exitscope record --kut vmexit.flat inl_from_kernel -o t.dat   # kvm-unit-tests' own guest
  exitscope record --reset          # undo what a killed exitscope left in tracefs

The output file is replaced only when the recording succeeds; an interrupted recording
(Ctrl-C, SIGTERM, SIGHUP) keeps what was captured. The traced command is killed if exitscope
dies; with --duration it is stopped (SIGTERM) at the end.

With --kut FILE the image boots on a thread of exitscope and exactly its vCPU threads are
recorded (default ring buffer 65536 KiB per CPU); the guest's lines go to stderr as they come,
then the bench line and the guest's iteration count of each test.

Exit codes: 0 ok; 1 the --bench test (or a --kut test) did not complete, or the --kut boot
did not end with a PASS exit; 2 bad usage (unknown test, command not found); 3 tracefs or KVM
unusable; 4 the traced command failed (non-zero exit, killed by a signal); 130, 143, 129
interrupted by SIGINT, SIGTERM, SIGHUP (tracefs restored).")]
pub struct Args {
    /// function_graph rooted at FUNC (repeatable). This is the default mode, rooted at
    /// vcpu_enter_guest, with kvm_arch_vcpu_ioctl_run/vcpu_run as fallbacks when it is inlined.
    #[arg(long, value_name = "FUNC", conflicts_with_all = ["events", "event"])]
    pub graph: Vec<String>,
    /// Record kvm tracepoints instead of a function graph (kvm_exit, kvm_entry and the
    /// reason-specific ones: kvm_cpuid, kvm_pio, kvm_mmio, kvm_msr, ...).
    #[arg(long)]
    pub events: bool,
    /// Record this event (`system:event`, `event` for kvm:event, `system:*`); repeatable;
    /// implies --events. Events that never fire are named at the end.
    #[arg(short = 'e', long = "event", value_name = "EVENT")]
    pub event: Vec<String>,
    /// Graph depth limit (max_graph_depth).
    #[arg(long, value_name = "N")]
    pub max_depth: Option<u32>,
    /// Leave out the absolute timestamp column (funcgraph-abstime).
    #[arg(long)]
    pub no_abstime: bool,
    /// Leave out the comm-pid column (funcgraph-proc).
    #[arg(long)]
    pub no_proc: bool,
    /// Write the trace to FILE (`-` = stdout): trace-cmd's trace.dat of the ring-buffer pages
    /// (ns timestamps; read by `exitscope report` and `trace-cmd report`), or the kernel's text
    /// for a `.txt` name.
    #[arg(short = 'o', long, value_name = "FILE", default_value = "exitscope.dat")]
    pub output: PathBuf,
    /// trace.dat compression: zstd (as trace-cmd 3.x writes) or none (least CPU).
    #[arg(long, value_name = "zstd|none", default_value = "zstd", value_parser = compression)]
    pub compression: Compression,
    /// Trace this running process: all its threads, its current child processes, and
    /// whatever they fork from now on.
    #[arg(long, value_name = "PID", conflicts_with_all = ["command", "kut"])]
    pub pid: Option<u32>,
    /// Run a built-in benchmark on a thread of exitscope itself and trace it (`exitscope
    /// bench --list`); --cpl, --min-cycles, --repeat, --timeout apply (default: --quick's).
    #[arg(long, value_name = "TEST", conflicts_with_all = ["command", "pid", "kut"])]
    pub bench: Option<String>,
    #[command(flatten)]
    pub bench_options: BenchOptions,
    #[command(flatten)]
    pub kut: KutArgs,
    /// With --kut: the image's tests (its command line; default: every test it has).
    #[arg(value_name = "TEST", requires = "kut")]
    pub tests: Vec<String>,
    /// Stop after this many seconds (decimals allowed); without a target it traces every task.
    #[arg(long, value_name = "SECS", conflicts_with = "kut")]
    pub duration: Option<f64>,
    /// Do not follow forks/new threads of the target.
    #[arg(long, conflicts_with = "kut")]
    pub no_follow: bool,
    /// Use the top-level tracefs instead of a private instance (everything touched is
    /// saved and restored).
    #[arg(long)]
    pub top_level: bool,
    #[command(flatten)]
    pub tracefs: TracefsArgs,
    /// Undo what an exitscope killed with SIGKILL left in tracefs (its instances, and the
    /// top-level files it had changed), then exit.
    #[arg(long, conflicts_with_all = ["command", "pid", "bench", "kut", "duration", "graph", "events", "event"])]
    pub reset: bool,
    /// The command to run and trace (after `--`).
    #[arg(last = true, value_name = "CMD", conflicts_with = "kut")]
    pub command: Vec<OsString>,
}

/// What to trace, validated (the bench's KVM already opened once).
enum TargetSpec {
    Command(Vec<OsString>),
    Pid(u32),
    Everyone,
    Bench(&'static exitscope_vmm::Benchmark, exitscope_vmm::Options, Box<exitscope_vmm::HostInfo>),
    /// A kvm-unit-tests boot, with the host it runs on (for its summary) and the image.
    Kut(Box<KutConfig>, Box<exitscope_vmm::HostInfo>, PathBuf),
}

fn mode_of(a: &Args) -> Result<Mode, Failure> {
    if a.events || !a.event.is_empty() {
        if a.max_depth.is_some() {
            return Err(Failure::input(anyhow!("--max-depth only applies to --graph")));
        }
        return Ok(if a.event.is_empty() {
            Mode::default_events()
        } else {
            Mode::events(a.event.iter().cloned())
        });
    }
    let (functions, fallback) = if a.graph.is_empty() {
        (vec!["vcpu_enter_guest".to_owned()], true)
    } else {
        // A root on KVM's exit path that the compiler inlined (vcpu_enter_guest, vcpu_run
        // on stock kernels) falls back to the nearest traceable caller, as the default does.
        let on_exit_path = a.graph.iter().any(|f| f == "vcpu_enter_guest" || f == "vcpu_run");
        (a.graph.clone(), on_exit_path)
    };
    Ok(Mode::Graph {
        functions,
        fallback,
        max_depth: a.max_depth,
        abstime: !a.no_abstime,
        proc_column: !a.no_proc,
    })
}

/// Everything that can be checked before tracefs is touched.
fn validate(a: &Args) -> Result<(Mode, TargetSpec, Option<Duration>), Failure> {
    let mode = mode_of(a)?;
    let duration = match a.duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => return Err(Failure::input(anyhow!("--duration {s}: expected seconds > 0"))),
    };
    if a.kut.kut.is_some() && a.bench_options.repeat.is_some() {
        return Err(Failure::input(anyhow!(
            "--repeat does not apply to record --kut: one boot is recorded (run --kut --repeat N \
             boots N times untraced)"
        )));
    }
    if a.bench.is_none() && a.kut.kut.is_none() && a.bench_options.any() {
        return Err(Failure::input(anyhow!(
            "--cpl, --min-cycles, --repeat and --timeout apply to --bench TEST only (--timeout \
             also to --kut FILE)"
        )));
    }
    let target = if let Some(kernel) = a.kut.image()? {
        let config = a.kut.config(kernel, &a.tests, &a.bench_options);
        let host = recording::check_kvm(&exitscope_vmm::Options::default())?;
        TargetSpec::Kut(Box::new(config), Box::new(host), kernel.to_owned())
    } else if let Some(test) = &a.bench {
        let bench = recording::find_test(test)?;
        let (min_cycles, repeat) = QUICK;
        a.bench_options.validate()?;
        let opts = a.bench_options.vmm(min_cycles, repeat);
        let host = recording::check_kvm(&opts)?;
        TargetSpec::Bench(bench, opts, Box::new(host))
    } else if !a.command.is_empty() {
        exitscope_tracefs::resolve_command(&a.command[0])
            .map_err(|e| recording::failure(e, &mode))?;
        TargetSpec::Command(a.command.clone())
    } else if let Some(p) = a.pid {
        exitscope_tracefs::threads_of(p).map_err(|e| recording::failure(e, &mode))?;
        TargetSpec::Pid(p)
    } else if duration.is_some() {
        TargetSpec::Everyone
    } else {
        return Err(Failure::input(anyhow!(
            "nothing to trace: give a command after `--`, --pid PID, --bench TEST, --kut FILE or \
             --duration SECS"
        )));
    };
    Ok((mode, target, duration))
}

fn compression(s: &str) -> Result<Compression, String> {
    match s {
        "zstd" => Ok(Compression::Zstd),
        "none" => Ok(Compression::None),
        _ => Err(format!("{s:?}: expected zstd or none")),
    }
}

/// `record --bench` runs the bench as `bench --quick` does.
const QUICK: (u64, u32) = (1 << 26, 6);

fn reset(a: &Args) -> CmdResult {
    let fs = recording::tracefs(&a.tracefs, &Mode::default_events())?;
    let done = exitscope_tracefs::reset(&fs)
        .map_err(|e| recording::failure(e, &Mode::default_events()))?;
    if done.is_empty() {
        say!("nothing to reset: {} holds nothing left behind by exitscope", fs.root().display());
    }
    for d in done {
        say!("{d}");
    }
    Ok(exit::OK)
}

/// Ring buffer per CPU for `--kut` when `--buffer-size` is not given: on a PVM host a kvm-unit-tests
/// test writes about a million events (KVM's emulator traces every instruction it runs).
const KUT_BUFFER_KB: u64 = 65536;

/// Run `exitscope record`.
pub fn run(args: Args) -> CmdResult {
    if args.reset {
        return reset(&args);
    }
    let (mode, target, duration) = validate(&args)?;
    let format = CaptureFormat::for_path(&args.output, args.compression);
    if args.output.as_os_str() == "-"
        && format != CaptureFormat::Text
        && std::io::stdout().is_terminal()
    {
        return Err(Failure::input(anyhow!(
            "-o - writes binary trace.dat: redirect it, or record text with -o FILE.txt"
        )));
    }
    let kvm = match &target {
        TargetSpec::Bench(_, _, host) | TargetSpec::Kut(_, host, _) => Some(host.as_ref().clone()),
        _ => None,
    };
    let target: Target<BenchOutcome> = match target {
        TargetSpec::Command(argv) => Target::Command(argv),
        TargetSpec::Pid(p) => Target::Pid(p),
        TargetSpec::Everyone => Target::Everyone,
        TargetSpec::Bench(b, opts, _) => recording::bench_target(b, opts),
        TargetSpec::Kut(config, host, kernel) => {
            return record_kut(&args, &mode, format, *config, &host, &kernel);
        }
    };
    let mut target = Some(target);
    let rec = record(&args, &mode, format, duration, &mut || target.take(), None, kvm.as_ref())?;
    match rec.outcome {
        Outcome::Interrupted(sig) => Err(Failure::signal(sig)),
        Outcome::Exited(st) if st.success() => Ok(exit::OK),
        Outcome::Exited(st) => {
            let how = match (st.code(), std::os::unix::process::ExitStatusExt::signal(&st)) {
                (Some(127), _) => "exited with 127 (command not found?)".to_owned(),
                (Some(c), _) => format!("exited with {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => format!("ended with {st}"),
            };
            Err(Failure {
                code: exit::TARGET_FAILED,
                error: anyhow!(
                    "the traced command {how}; its trace is in {}",
                    args.output.display()
                ),
            })
        }
        Outcome::StoppedAfterDuration { pid } => {
            say!("--duration reached; stopped the command (pid {pid})");
            Ok(exit::OK)
        }
        // `record` never asks to stop early.
        Outcome::ProcessExited | Outcome::DurationReached | Outcome::Stopped => Ok(exit::OK),
        Outcome::Returned(Ok(report)) => {
            for r in &report.results {
                say!("bench {}", exitscope_render::bench::line(r, None));
            }
            if recording::bench_completed(&report) {
                Ok(exit::OK)
            } else {
                Err(Failure::check(anyhow!(
                    "the benchmark did not complete; its trace is in {}",
                    args.output.display()
                )))
            }
        }
        Outcome::Returned(Err(e)) => Err(Failure::environment(anyhow!(e))),
        Outcome::Panicked => {
            Err(Failure::check(anyhow!("the benchmark did not complete: its thread panicked")))
        }
    }
}

/// Record `target()` to `-o`: the output is created first (a bad path fails before tracefs
/// is touched), kept whatever was captured (also after a signal), then the end-of-recording
/// messages. `buffer_kb` is the ring buffer when `--buffer-size` is not given. When
/// `target()` can make the target a second time and the default graph mode was refused by
/// the kernel, kvm tracepoints are recorded instead. `kvm` is the bench's KVM (its TSC rate
/// goes into the host tag the recording carries).
fn record<T: Send + 'static>(
    args: &Args,
    mode: &Mode,
    format: CaptureFormat,
    duration: Option<Duration>,
    target: &mut dyn FnMut() -> Option<Target<T>>,
    buffer_kb: Option<u64>,
    kvm: Option<&exitscope_vmm::HostInfo>,
) -> Result<Recording<T>, Failure> {
    let no_target = || Failure::input(anyhow!("nothing to trace"));
    let mut out = Output::create(Some(&args.output))?;
    let fs = recording::tracefs(&args.tracefs, mode)?;
    let mut cfg = SessionConfig::new(mode.clone());
    cfg.follow_forks = !args.no_follow;
    cfg.buffer_size_kb = args.tracefs.buffer_size.or(buffer_kb);
    cfg.format = format;
    cfg.host_tag = Some(recording::host_tag(kvm));
    if args.top_level {
        cfg.placement = Placement::TopLevel;
    }
    let mut recorder = Recorder::new(fs, cfg).with_duration(duration);
    let mut notify = |m: &str| say!("{m}");
    let default_graph = args.graph.is_empty() && matches!(mode, Mode::Graph { .. });
    let rec =
        match recorder.record(target().ok_or_else(no_target)?, &mut out, &args.output, &mut notify)
        {
            Ok(r) => r,
            Err(e) => match (recording::graph_unavailable(&e), default_graph) {
                (Some(why), true) if let Some(again) = target() => {
                    say!("{why}; recording kvm tracepoints instead");
                    recorder.set_mode(Mode::default_events());
                    drop(out);
                    out = Output::create(Some(&args.output))?;
                    recorder
                        .record(again, &mut out, &args.output, &mut notify)
                        .map_err(|e| recording::failure(e, &Mode::default_events()))?
                }
                _ => return Err(recording::failure(e, mode)),
            },
        };
    out.commit()?;
    if let Err(e) = recorder.unmount() {
        say!("warning: {e}");
    }
    recording::report_recording(&rec, &args.output);
    Ok(rec)
}

/// `record --kut`: boot the image on a thread of exitscope (its vCPU threads are followed),
/// guest lines to stderr as they come, then the bench line and iterations of each test.
fn record_kut(
    args: &Args,
    mode: &Mode,
    format: CaptureFormat,
    config: KutConfig,
    host: &exitscope_vmm::HostInfo,
    kernel: &std::path::Path,
) -> CmdResult {
    eprintln!("{}", crate::kut::boot_header("traced boot", &config));
    // function_graph where the kernel allows it, else (unless a mode was chosen) events.
    let mut target = || -> Option<Target<KutTraced>> {
        Some(crate::kut::boot_target(config.clone(), stderr_line))
    };
    let rec = record(args, mode, format, None, &mut target, Some(KUT_BUFFER_KB), Some(host))?;
    let outcome = match rec.outcome {
        Outcome::Interrupted(sig) => return Err(Failure::signal(sig)),
        Outcome::Returned(Ok(o)) => o,
        Outcome::Returned(Err(e)) => return Err(crate::kut::failure(e)),
        _ => return Err(Failure::check(anyhow!("the boot's thread panicked"))),
    };
    crate::kut::finish_lines(&outcome, stderr_line);
    for l in crate::kut::iteration_lines(&outcome) {
        say!("{l}");
    }
    let passed = outcome.end.passed();
    let report = crate::kut::summarize(&config, "traced", vec![outcome], host, kernel);
    for r in &report.results {
        say!("bench {}", exitscope_render::bench::line(r, Some("traced")));
    }
    if recording::bench_completed(&report) && passed {
        Ok(exit::OK)
    } else {
        Err(Failure::check(anyhow!(
            "a test did not complete or the boot did not end with a PASS exit; its trace is in {}",
            args.output.display()
        )))
    }
}

/// A guest line on stderr (stdout may carry the trace).
fn stderr_line(text: &str) {
    eprintln!("{text}");
}
