//! `exitscope record`: validate, then let exitscope-tracefs's `Recorder` set up tracefs,
//! run or attach to the target, stream the trace to a file and put tracefs back exactly as
//! it was.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args as ClapArgs;
use exitscope_tracefs::{
    CaptureFormat, Compression, Mode, Outcome, Placement, Recorder, SessionConfig, Target,
};

use crate::args::{BenchOptions, TracefsArgs};
use crate::exit::{self, CmdResult, Failure};
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
  exitscope record --reset          # undo what a killed exitscope left in tracefs

The output file is replaced only when the recording succeeds; an interrupted recording
(Ctrl-C, SIGTERM, SIGHUP) keeps what was captured. The traced command is killed if exitscope
dies; with --duration it is stopped (SIGTERM) at the end.

Exit codes: 0 ok; 1 the --bench test did not complete; 2 bad usage (unknown test, command
not found); 3 tracefs or KVM unusable; 4 the traced command failed (non-zero exit, killed by
a signal); 130, 143, 129 interrupted by SIGINT, SIGTERM, SIGHUP (tracefs restored).")]
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
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Run a built-in benchmark on a thread of exitscope itself and trace it (`exitscope
    /// bench --list`); --cpl, --min-cycles, --repeat, --timeout apply (default: --quick's).
    #[arg(long, value_name = "TEST", conflicts_with_all = ["command", "pid"])]
    pub bench: Option<String>,
    #[command(flatten)]
    pub bench_options: BenchOptions,
    /// Stop after this many seconds (decimals allowed); without a target it traces every task.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Do not follow forks/new threads of the target.
    #[arg(long)]
    pub no_follow: bool,
    /// Use the top-level tracefs instead of a private instance (everything touched is
    /// saved and restored).
    #[arg(long)]
    pub top_level: bool,
    #[command(flatten)]
    pub tracefs: TracefsArgs,
    /// Undo what an exitscope killed with SIGKILL left in tracefs (its instances, and the
    /// top-level files it had changed), then exit.
    #[arg(long, conflicts_with_all = ["command", "pid", "bench", "duration", "graph", "events", "event"])]
    pub reset: bool,
    /// The command to run and trace (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// What to trace, validated (the bench's KVM already opened once).
enum TargetSpec {
    Command(Vec<OsString>),
    Pid(u32),
    Everyone,
    Bench(&'static exitscope_vmm::Benchmark, exitscope_vmm::Options),
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
    if a.bench.is_none() && a.bench_options.any() {
        return Err(Failure::input(anyhow!(
            "--cpl, --min-cycles, --repeat and --timeout apply to --bench TEST only"
        )));
    }
    let target = if let Some(test) = &a.bench {
        let bench = recording::find_test(test)?;
        let (min_cycles, repeat) = QUICK;
        a.bench_options.validate()?;
        let opts = a.bench_options.vmm(min_cycles, repeat);
        recording::check_kvm(&opts)?;
        TargetSpec::Bench(bench, opts)
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
            "nothing to trace: give a command after `--`, --pid PID, --bench TEST or --duration SECS"
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

/// The environment fingerprint beside a trace file (`FILE.host.json`): where it was recorded,
/// for `export --parquet` and fleet queries. A failure to write it is a warning.
fn write_fingerprint(output: &std::path::Path) {
    if output.as_os_str() == "-" || !output.is_file() {
        return;
    }
    let mut path = output.as_os_str().to_owned();
    path.push(".host.json");
    let path = PathBuf::from(path);
    let fp = exitscope_host::Fingerprint::collect();
    let written = crate::output::write_file(&path, |o| {
        serde_json::to_writer_pretty(&mut *o, &fp).map_err(anyhow::Error::from)?;
        writeln!(o)?;
        Ok(())
    });
    if let Err(e) = written {
        say!("warning: could not write {}: {}", path.display(), e.error);
    }
}

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
    // Create the output first: a bad path fails before tracefs is touched.
    let mut out = Output::create(Some(&args.output))?;
    let fs = recording::tracefs(&args.tracefs, &mode)?;
    let mut cfg = SessionConfig::new(mode.clone());
    cfg.follow_forks = !args.no_follow;
    cfg.buffer_size_kb = args.tracefs.buffer_size;
    cfg.format = format;
    if args.top_level {
        cfg.placement = Placement::TopLevel;
    }
    let mut recorder = Recorder::new(fs, cfg).with_duration(duration);
    let target: Target<BenchOutcome> = match target {
        TargetSpec::Command(argv) => Target::Command(argv),
        TargetSpec::Pid(p) => Target::Pid(p),
        TargetSpec::Everyone => Target::Everyone,
        TargetSpec::Bench(b, opts) => recording::bench_target(b, opts),
    };
    let rec = recorder
        .record(target, &mut out, &args.output, &mut |m| say!("{m}"))
        .map_err(|e| recording::failure(e, &mode))?;
    // Whatever was captured is kept, also after a signal.
    out.commit()?;
    write_fingerprint(&args.output);
    if let Err(e) = recorder.unmount() {
        say!("warning: {e}");
    }
    recording::report_recording(&rec, &args.output);
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
        Outcome::ProcessExited | Outcome::DurationReached => Ok(exit::OK),
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
