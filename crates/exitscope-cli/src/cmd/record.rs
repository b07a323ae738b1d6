//! `exitscope record`: set up tracefs safely, run or attach to the target, stream the trace to
//! a file, and put tracefs back exactly as it was.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use exitscope_tracefs::{
    CaptureFormat, Compression, Error as TfError, Mode, PausedChild, Placement, Session,
    SessionConfig, SignalWatcher, StopWhen, Tracefs,
};

use crate::exit::{CmdResult, Failure, OK};

/// Arguments of `exitscope record`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope record --events -o t.dat -- ./my-vmm --boot kernel
  exitscope record --events -o t.txt -- ./my-vmm   # the kernel's text instead
  exitscope record --graph vcpu_enter_guest --max-depth 8 --pid 1234 --duration 5
  exitscope record -e kvm:kvm_exit -e kvm:kvm_entry --duration 2")]
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
    /// implies --events.
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
    /// Output file (`-` for stdout): trace-cmd's trace.dat of the ring-buffer pages (ns
    /// timestamps), or the kernel's text for a `.txt` name.
    #[arg(short = 'o', long, value_name = "FILE", default_value = "exitscope.dat")]
    pub output: PathBuf,
    /// trace.dat compression: zstd (as trace-cmd 3.x) or none (least CPU).
    #[arg(long, value_name = "zstd|none", default_value = "zstd", value_parser = compression)]
    pub compression: Compression,
    /// Per-CPU ring buffer size in KiB (buffer_size_kb).
    #[arg(long, value_name = "KB")]
    pub buffer_size: Option<u64>,
    /// Trace this running process: all its threads, its current child processes, and
    /// whatever they fork from now on.
    #[arg(long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Run a built-in benchmark as the target (`exitscope bench --quick TEST`; see
    /// `exitscope bench --list`).
    #[arg(long, value_name = "TEST", conflicts_with_all = ["command", "pid"])]
    pub bench: Option<String>,
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
    /// tracefs mount to use instead of looking for one.
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// Testing only: a directory of plain files that emulates tracefs.
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "tracefs")]
    pub fake_tracefs: Option<PathBuf>,
    /// The command to run and trace (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The validated configuration.
struct Config {
    mode: Mode,
    target: Target,
    duration: Option<Duration>,
    session: SessionConfig,
}

enum Target {
    Command(Vec<OsString>),
    Pid(u32),
    Everyone,
}

fn validate(a: &Args) -> Result<Config, Failure> {
    let mode = if a.events || !a.event.is_empty() {
        if a.max_depth.is_some() {
            return Err(Failure::input(anyhow!("--max-depth only applies to --graph")));
        }
        if a.event.is_empty() {
            Mode::default_events()
        } else {
            Mode::events(a.event.iter().cloned())
        }
    } else {
        let (functions, fallback) = if a.graph.is_empty() {
            (vec!["vcpu_enter_guest".to_owned()], true)
        } else {
            // A root on KVM's exit path that the compiler inlined (vcpu_enter_guest, vcpu_run
            // on stock kernels) falls back to the nearest traceable caller, as the default does.
            let on_exit_path = a.graph.iter().any(|f| f == "vcpu_enter_guest" || f == "vcpu_run");
            (a.graph.clone(), on_exit_path)
        };
        Mode::Graph {
            functions,
            fallback,
            max_depth: a.max_depth,
            abstime: !a.no_abstime,
            proc_column: !a.no_proc,
        }
    };
    let duration = match a.duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => return Err(Failure::input(anyhow!("--duration {s}: expected seconds > 0"))),
    };
    let target = if let Some(test) = &a.bench {
        Target::Command(bench_command(test, &["--quick"])?)
    } else if !a.command.is_empty() {
        Target::Command(a.command.clone())
    } else if let Some(p) = a.pid {
        Target::Pid(p)
    } else if duration.is_some() {
        Target::Everyone
    } else {
        return Err(Failure::input(anyhow!(
            "nothing to trace: give a command after `--`, --pid PID, or --duration SECS"
        )));
    };
    let mut session = SessionConfig::new(mode.clone());
    session.follow_forks = !a.no_follow;
    session.buffer_size_kb = a.buffer_size;
    if a.top_level {
        session.placement = Placement::TopLevel;
    }
    session.format = CaptureFormat::for_path(&a.output, a.compression);
    Ok(Config { mode, target, duration, session })
}

fn compression(s: &str) -> Result<Compression, String> {
    match s {
        "zstd" => Ok(Compression::Zstd),
        "none" => Ok(Compression::None),
        _ => Err(format!("{s:?}: expected zstd or none")),
    }
}

/// `exitscope bench EXTRA... TEST` with this very binary, so the traced VMM is exitscope's own.
pub fn bench_command(test: &str, extra: &[&str]) -> Result<Vec<OsString>, Failure> {
    let exe = std::env::current_exe()
        .context("finding the exitscope binary to run the benchmark")
        .map_err(Failure::environment)?;
    let mut argv = vec![exe.into_os_string(), "bench".into()];
    argv.extend(extra.iter().map(OsString::from));
    argv.push(test.into());
    Ok(argv)
}

/// Whether process `pid` still runs (a zombie, not yet reaped by its parent, does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Map a tracefs error to an exit code, with advice where there is some.
fn failure(e: TfError, mode: &Mode) -> Failure {
    let graph = matches!(mode, Mode::Graph { .. });
    let advice = match &e {
        TfError::TracerRefused { .. } | TfError::TracerUnavailable { .. } if graph => Some(
            "function_graph cannot be used on this kernel (lockdown or not built in); \
             record kvm tracepoints instead: exitscope record --events ...",
        ),
        TfError::GraphFilterEmpty { .. } | TfError::NoTraceableFunction { .. } => {
            Some("name a traceable root with --graph FUNC, or record kvm tracepoints with --events")
        }
        TfError::Busy { .. } => Some("stop the other session, or drop --top-level"),
        _ => None,
    };
    let env = e.is_environment();
    let err = match advice {
        Some(a) => anyhow::Error::new(e).context(a),
        None => anyhow::Error::new(e),
    };
    if env { Failure::environment(err) } else { Failure::input(err) }
}

/// Run `exitscope record`.
pub fn run(args: Args) -> CmdResult {
    let cfg = validate(&args)?;
    let fake = args.fake_tracefs.is_some();
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if !fake && unsafe { libc::geteuid() } != 0 {
        return Err(Failure::environment(anyhow!(
            "exitscope record needs root (tracefs is writable only by root)"
        )));
    }
    // Create the output first: a bad path fails before tracefs is touched.
    let sink: Box<dyn Write> = if args.output.as_os_str() == "-" {
        if cfg.session.format != CaptureFormat::Text && std::io::stdout().is_terminal() {
            return Err(Failure::input(anyhow!(
                "-o - writes binary trace.dat: redirect it, or record text with -o FILE.txt"
            )));
        }
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.output)
                .with_context(|| format!("creating {}", args.output.display()))
                .map_err(Failure::input)?,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut fs = match (&args.fake_tracefs, &args.tracefs) {
        (Some(d), _) => Tracefs::fake(d),
        (None, Some(d)) => Tracefs::real(d),
        (None, None) => Tracefs::discover(true).map_err(|e| failure(e, &cfg.mode))?,
    };
    match fs.remove_stale_instances() {
        Ok(gone) => {
            for g in gone {
                eprintln!("exitscope: removed {g}, left behind by a killed exitscope");
            }
        }
        Err(e) => eprintln!("exitscope: warning: {e}"),
    }
    let signals = SignalWatcher::install().map_err(|e| failure(e, &cfg.mode))?;

    let mut session_cfg = cfg.session;
    let mut child = None;
    match &cfg.target {
        Target::Command(argv) => {
            let c = PausedChild::spawn(argv).map_err(|e| failure(e, &cfg.mode))?;
            session_cfg.pids = vec![c.pid()];
            child = Some(c);
        }
        Target::Pid(p) => {
            session_cfg.pids =
                exitscope_tracefs::process_tree_threads(*p).map_err(|e| failure(e, &cfg.mode))?;
        }
        Target::Everyone => {}
    }
    let mut session = match Session::start(&fs, &session_cfg) {
        Ok(s) => s,
        Err(e) => {
            if let Some(c) = child {
                // Never resumed: the shim exits 127 without running the command.
                let _ = c.into_child().wait();
            }
            return Err(failure(e, &cfg.mode));
        }
    };
    for n in session.notes() {
        eprintln!("exitscope: {n}");
    }
    let place = session.instance().unwrap_or_else(|| "the top level".into());
    eprintln!(
        "exitscope: recording {} ({}) in {} of {} to {}",
        if session.tracer() == "nop" { "events" } else { session.tracer() },
        session.enabled().join(", "),
        place,
        fs.root().display(),
        args.output.display()
    );
    if let Some(c) = child.as_mut() {
        c.resume().map_err(|e| failure(e, &cfg.mode))?;
    }
    let started = Instant::now();
    let mut exit_status = None;
    let mut signalled_child = false;
    let result = session.capture(&mut out, &args.output, &mut |elapsed| {
        if let Some(sig) = signals.pending() {
            if let Some(c) = child.as_mut()
                && !signalled_child
            {
                // Pass it on (a terminal's Ctrl-C reaches both of us anyway).
                c.signal(sig);
                signalled_child = true;
            }
            return Some(StopWhen::Signal(sig));
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            exit_status = Some(st);
            return Some(StopWhen::TargetExited);
        }
        if let Target::Pid(p) = &cfg.target
            && !alive(*p)
        {
            return Some(StopWhen::TargetExited);
        }
        match cfg.duration {
            Some(d) if elapsed >= d => Some(StopWhen::Duration),
            _ => None,
        }
    });
    let restored = session.finish();
    drop(signals);
    if let Err(e) = fs.unmount_if_mounted() {
        eprintln!("exitscope: warning: {e}");
    }
    let summary = result.map_err(|e| failure(e, &cfg.mode))?;
    restored.map_err(|e| failure(e, &cfg.mode))?;

    for n in &summary.notes {
        eprintln!("exitscope: {n}");
    }
    eprintln!(
        "exitscope: wrote {} to {} in {:.2} s",
        summary.written(),
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    let lost = summary.lost_total();
    if lost > 0 {
        let per_cpu: Vec<String> = summary
            .lost_in_stream
            .iter()
            .chain(summary.lost_from_stats.iter())
            .map(|(c, n)| format!("cpu{c}: {n}"))
            .collect();
        eprintln!(
            "exitscope: warning: the kernel lost {lost} events ({}); use --buffer-size to enlarge \
             the ring buffer",
            per_cpu.join(", ")
        );
    }
    match summary.stop {
        Some(StopWhen::Signal(sig)) => {
            let name = match sig {
                2 => "SIGINT",
                15 => "SIGTERM",
                1 => "SIGHUP",
                _ => "a signal",
            };
            let code = 128 + u8::try_from(sig).unwrap_or(2);
            Err(Failure { code, error: anyhow!("interrupted by {name}; tracefs restored") })
        }
        _ => {
            let still_running = child.as_mut().map(|c| (c.pid(), matches!(c.try_wait(), Ok(None))));
            match (exit_status, still_running) {
                (Some(st), _) if !st.success() => {
                    eprintln!("exitscope: the traced command exited with {st}");
                }
                (None, Some((pid, true))) => eprintln!(
                    "exitscope: --duration reached; the command (pid {pid}) keeps running untraced"
                ),
                _ => {}
            }
            Ok(OK)
        }
    }
}
