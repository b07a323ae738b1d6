//! `exitscope top`: a live table of VM exits, refreshed every interval, like `kvm_stat` and
//! `perf kvm stat live` but with distributions. The `Recorder` records kvm tracepoints in a
//! private instance as text (`trace_pipe`); its tick cuts the stream into intervals
//! (exitscope-ftrace's `Feed` → exitscope-analyze's `LiveExits`) and each one is drawn by
//! exitscope-render's `top` (or written as one JSON line). Tracefs is restored on `q`,
//! Ctrl-C, SIGTERM and SIGHUP alike.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;

use exitscope_analyze::AnalysisOptions;
use exitscope_analyze::live::{LiveExits, LiveInterval};
use exitscope_ftrace::Feed;
use exitscope_render::top::{CLEAR, SortColumn, TopView};
use exitscope_tracefs::{CaptureFormat, Mode, Outcome, Recorder, SessionConfig, Target};

use crate::args::{BenchOptions, ColorArg, KutArgs, TracefsArgs};
use crate::exit::{self, CmdResult, Failure};
use crate::keys::Keys;
use crate::recording;

/// Arguments of `exitscope top`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope top --bench inl_from_kernel --repeat 100   # exitscope's own VMM
  exitscope top --pid $(pgrep -f qemu-system) --per-vcpu
  exitscope top --once --json --bench inl_from_kernel  # one JSON line for a collector
  exitscope top --kut vmexit.flat inl_pmtimer
  exitscope top -- ./my-vmm --boot kernel

Keys: s cycles the sort column (count, p50, p99, max, reason), q quits. Where kvm_exit and
kvm_entry fire, the columns are the handling time; where only reason-specific tracepoints fire
(PVM), the time between two exits of one reason on one vCPU. Each interval stands alone (an
exit whose kvm_exit and kvm_entry straddle two intervals has no handling time). --json writes
one JSON object per interval (JSON Lines), its \"exits\" as `report --json`'s.

Exit codes: 0 ok (q, the target ended, --once); 1 the --bench/--kut run did not complete;
2 bad usage; 3 tracefs or KVM unusable; 4 the command failed; 130, 143, 129 after SIGINT,
SIGTERM, SIGHUP (tracefs restored).")]
pub struct Args {
    /// Watch this running process (its threads, children, and what they fork).
    #[arg(long, value_name = "PID", conflicts_with_all = ["command", "bench", "kut"])]
    pub pid: Option<u32>,
    /// Run a built-in benchmark on a thread of exitscope and watch it (`exitscope bench
    /// --list`); --cpl, --min-cycles, --repeat, --timeout, --pin apply.
    #[arg(long, value_name = "TEST", conflicts_with_all = ["command", "kut"])]
    pub bench: Option<String>,
    #[command(flatten)]
    pub bench_options: BenchOptions,
    #[command(flatten)]
    pub kut: KutArgs,
    /// With --kut: the guest's tests (its command line; default: every test the image has).
    #[arg(value_name = "TEST", requires = "kut")]
    pub tests: Vec<String>,
    /// Seconds between refreshes (decimals allowed).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
    /// Print one interval and exit (the first one, or less if the target ends sooner).
    #[arg(long)]
    pub once: bool,
    /// One JSON object per interval (JSON Lines) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// One block of rows per vCPU.
    #[arg(long)]
    pub per_vcpu: bool,
    /// Record this event (`system:event`, `event` for kvm:event) instead of the default kvm
    /// tracepoints; repeatable.
    #[arg(short = 'e', long = "event", value_name = "EVENT")]
    pub event: Vec<String>,
    #[command(flatten)]
    pub tracefs: TracefsArgs,
    #[command(flatten)]
    pub color: ColorArg,
    /// The command to run and watch (after `--`).
    #[arg(last = true, value_name = "CMD", conflicts_with = "kut")]
    pub command: Vec<OsString>,
}

/// What the closure target returns: a bench report or a kvm-unit-tests boot, or why KVM could
/// not be used.
#[allow(clippy::large_enum_variant, reason = "one value per run, moved once")]
enum Ran {
    Bench(recording::BenchOutcome),
    Kut(Result<exitscope_vmm::kut::KutOutcome, String>),
}

/// `top --bench` runs the bench as `bench --quick` does.
const QUICK: (u64, u32) = (1 << 26, 6);

fn target(a: &Args, mode: &Mode) -> Result<(Target<Ran>, String, Vec<u16>), Failure> {
    if (a.bench.is_none() && a.kut.kut.is_none()) && a.bench_options.any() {
        return Err(Failure::input(anyhow!(
            "--cpl, --min-cycles, --repeat, --timeout and --pin apply to --bench/--kut only"
        )));
    }
    if let Some(test) = &a.bench {
        let bench = recording::find_test(test)?;
        a.bench_options.validate()?;
        let opts = a.bench_options.vmm(QUICK.0, QUICK.1);
        recording::check_kvm(&opts)?;
        let t = Target::Thread(Box::new(move || {
            Ran::Bench(
                exitscope_vmm::run_suite(&[bench], &opts, |_, _| {}).map_err(|e| e.to_string()),
            )
        }) as Box<dyn FnOnce() -> Ran + Send>);
        // The bench's own signalling is not the experiment.
        let harness = vec![exitscope_guest::PORT_DONE, exitscope_guest::PORT_FAULT];
        return Ok((t, format!("bench {test}"), harness));
    }
    if a.kut.kut.is_some() && a.bench_options.repeat.is_some() {
        return Err(Failure::input(anyhow!(
            "--cpl, --min-cycles, --repeat and --pin apply to --bench only (--kut runs the \
             image's own loops; --timeout applies)"
        )));
    }
    if let Some(kernel) = a.kut.image()? {
        recording::check_kvm(&exitscope_vmm::Options::default())?;
        let config = a.kut.config(kernel, &a.tests, &a.bench_options);
        let name = format!(
            "kut {}{}",
            file_name(kernel),
            if a.tests.is_empty() { String::new() } else { format!(" {}", a.tests.join(" ")) }
        );
        let t = Target::Thread(Box::new(move || {
            // The guest's lines would scribble over the table.
            Ran::Kut(exitscope_vmm::kut::run(&config, |_| {}).map_err(|e| e.to_string()))
        }) as Box<dyn FnOnce() -> Ran + Send>);
        return Ok((t, name, Vec::new()));
    }
    if !a.command.is_empty() {
        exitscope_tracefs::resolve_command(&a.command[0])
            .map_err(|e| recording::failure(e, mode))?;
        let name = a.command.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" ");
        return Ok((Target::Command(a.command.clone()), name, Vec::new()));
    }
    if let Some(p) = a.pid {
        exitscope_tracefs::threads_of(p).map_err(|e| recording::failure(e, mode))?;
        return Ok((Target::Pid(p), format!("pid {p}"), Vec::new()));
    }
    Err(Failure::input(anyhow!(
        "nothing to watch: give --pid PID, --bench TEST, --kut FILE [TEST...] or a command after `--`"
    )))
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What the capture loop tells the drawing thread, in stream order: an interval boundary
/// lands exactly between the chunks read before and after it.
enum Msg {
    /// A chunk of `trace_pipe` text.
    Data(Vec<u8>),
    /// End the interval here (time since the capture started).
    Cut(Duration),
    /// `s` was pressed.
    Sort,
    /// The capture is over at this time; `last` asks for the final, shorter interval.
    End { at: Duration, last: bool },
}

/// The recorder's output: every chunk goes to the drawing thread, so parsing and analysis
/// never hold up the reads of `trace_pipe` (a slow reader makes the kernel drop events).
struct LiveWriter(mpsc::Sender<Msg>);

impl Write for LiveWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A drawing thread that stopped (its output failed) has said so through `broken`.
        let _ = self.0.send(Msg::Data(buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the intervals go: the table redrawn on a terminal, appended elsewhere, or JSON Lines.
struct Screen {
    view: TopView,
    json: bool,
    redraw: bool,
    once: bool,
    last: Option<LiveInterval>,
    shown: u64,
}

impl Screen {
    fn show(&mut self, iv: LiveInterval) -> std::io::Result<()> {
        self.last = Some(iv);
        self.shown += 1;
        self.draw()
    }

    fn draw(&self) -> std::io::Result<()> {
        let Some(iv) = &self.last else { return Ok(()) };
        let mut out = std::io::stdout().lock();
        if self.json {
            exitscope_render::top::write_json_line(iv, &mut out)?;
        } else {
            if self.redraw {
                out.write_all(CLEAR.as_bytes())?;
            } else if self.shown > 1 {
                writeln!(out)?;
            }
            exitscope_render::top::write_screen(iv, &self.view, &mut out)?;
        }
        out.flush()
    }

    /// The drawing thread: parse what arrives into the current interval, draw each one.
    fn serve(
        mut self,
        opts: AnalysisOptions,
        rx: mpsc::Receiver<Msg>,
        broken: &AtomicBool,
        skip: &AtomicBool,
    ) -> std::io::Result<()> {
        let mut feed = Feed::new("trace_pipe");
        let mut exits = LiveExits::new(opts, "trace_pipe");
        let fail = |e: std::io::Error| {
            broken.store(true, Ordering::Relaxed);
            e
        };
        for msg in rx {
            match msg {
                // After `q` or a signal nothing more is drawn: the backlog is dropped.
                Msg::Data(_) if skip.load(Ordering::Relaxed) => {}
                Msg::Data(d) => feed.push(&d, &mut exits),
                Msg::Cut(at) if !(self.once && self.shown > 0) => {
                    self.show(exits.cut(at)).map_err(fail)?;
                }
                Msg::Cut(_) => {}
                Msg::Sort => {
                    self.view.sort = self.view.sort.next();
                    self.draw().map_err(fail)?;
                }
                Msg::End { at, last } => {
                    // What the last round and the drain brought: the final (shorter)
                    // interval when the target ended, or the only one when it ended before
                    // the first refresh.
                    if self.shown == 0 || (last && !self.once) {
                        feed.finish(&mut exits);
                        self.show(exits.cut(at)).map_err(fail)?;
                    }
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Run `exitscope top`.
pub fn run(args: Args) -> CmdResult {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(Failure::input(anyhow!("--interval {}: expected seconds > 0", args.interval)));
    }
    let interval = Duration::from_secs_f64(args.interval);
    let mode = if args.event.is_empty() {
        Mode::default_events()
    } else {
        Mode::events(args.event.clone())
    };
    let (target, name, harness) = target(&args, &mode)?;
    let fs = recording::tracefs(&args.tracefs, &mode)?;
    let mut cfg = SessionConfig::new(mode.clone());
    // The kernel's text, read as it comes: the one capture that can be parsed while it grows.
    cfg.format = CaptureFormat::Text;
    cfg.buffer_size_kb = args.tracefs.buffer_size;
    let mut recorder = Recorder::new(fs, cfg);

    let mut opts = AnalysisOptions::default();
    opts.harness_ports = harness;
    opts.per_vcpu = args.per_vcpu;
    let tty = std::io::stdout().is_terminal();
    let mut keys = if args.once { None } else { Keys::open() };
    let screen = Screen {
        view: TopView {
            target: name,
            sort: SortColumn::default(),
            per_vcpu: args.per_vcpu,
            keys: keys.is_some(),
            style: args.color.style(tty),
        },
        json: args.json,
        redraw: tty && !args.json && !args.once,
        once: args.once,
        last: None,
        shown: 0,
    };
    let quiet = args.json || screen.redraw;
    let broken = Arc::new(AtomicBool::new(false));
    let skip = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let drawer = {
        let (broken, skip) = (Arc::clone(&broken), Arc::clone(&skip));
        std::thread::Builder::new()
            .name("exitscope-top".into())
            .spawn(move || screen.serve(opts, rx, &broken, &skip))
            .context("starting the drawing thread")
            .map_err(Failure::environment)?
    };
    let mut next = interval;
    let ticks = tx.clone();
    let mut tick = |elapsed: Duration| -> bool {
        if broken.load(Ordering::Relaxed) {
            return true;
        }
        if let Some(k) = keys.as_mut() {
            for key in k.pressed() {
                match key {
                    b'q' | b'Q' => {
                        skip.store(true, Ordering::Relaxed);
                        return true;
                    }
                    b's' | b'S' => {
                        let _ = ticks.send(Msg::Sort);
                    }
                    _ => {}
                }
            }
        }
        if elapsed < next {
            return false;
        }
        let _ = ticks.send(Msg::Cut(elapsed));
        next = elapsed + interval;
        args.once
    };
    let mut out = LiveWriter(tx.clone());
    let result = recorder.record_live(
        target,
        &mut out,
        Path::new("trace_pipe"),
        &mut |m| {
            // On a live screen only warnings survive the first redraw; keep them.
            if !quiet || m.starts_with("warning") {
                say!("{m}");
            }
        },
        &mut tick,
    );
    drop(keys);
    let at = result.as_ref().map_or(Duration::ZERO, |r| r.capture.elapsed);
    let last = matches!(
        result.as_ref().map(|r| &r.outcome),
        Ok(Outcome::Returned(_) | Outcome::Exited(_) | Outcome::ProcessExited)
    );
    if matches!(result.as_ref().map(|r| &r.outcome), Ok(Outcome::Interrupted(_))) {
        skip.store(true, Ordering::Relaxed);
    }
    let _ = tx.send(Msg::End { at, last });
    drop(tx);
    drop(out);
    let drawn = drawer.join();
    let rec = result.map_err(|e| recording::failure(e, &mode))?;
    if let Err(e) = recorder.unmount() {
        say!("warning: {e}");
    }
    match drawn {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Failure::environment(anyhow::Error::new(e).context("writing the table")));
        }
        Err(_) => return Err(Failure::check(anyhow!("the drawing thread panicked"))),
    }
    let lost = rec.capture.lost_total();
    if lost > 0 {
        say!(
            "warning: the kernel lost {lost} events in all; use --buffer-size to enlarge the ring \
             buffer"
        );
    }
    outcome(rec.outcome)
}

fn outcome(o: Outcome<Ran>) -> CmdResult {
    match o {
        Outcome::Interrupted(sig) => Err(Failure::signal(sig)),
        Outcome::Stopped
        | Outcome::ProcessExited
        | Outcome::DurationReached
        | Outcome::StoppedAfterDuration { .. } => Ok(exit::OK),
        Outcome::Exited(st) if st.success() => Ok(exit::OK),
        Outcome::Exited(st) => Err(Failure {
            code: exit::TARGET_FAILED,
            error: anyhow!("the watched command ended with {st}"),
        }),
        Outcome::Returned(Ran::Bench(b)) => match b {
            Ok(report) if recording::bench_completed(&report) => Ok(exit::OK),
            Ok(_) => Err(Failure::check(anyhow!("the benchmark did not complete"))),
            Err(e) => Err(Failure::environment(anyhow!(e))),
        },
        Outcome::Returned(Ran::Kut(Ok(k))) if k.end.passed() => Ok(exit::OK),
        Outcome::Returned(Ran::Kut(Ok(k))) => {
            Err(Failure::check(anyhow!("the kvm-unit-tests boot {}", k.end.describe())))
        }
        Outcome::Returned(Ran::Kut(Err(e))) => Err(Failure::environment(anyhow!(e))),
        Outcome::Panicked => Err(Failure::check(anyhow!("the watched thread panicked"))),
    }
}
