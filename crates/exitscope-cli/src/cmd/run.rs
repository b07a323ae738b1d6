//! `exitscope run TEST`: the seed's experiment in one command. Measure a built-in benchmark
//! untraced, then record its exit path on a thread of exitscope itself (function_graph where
//! the kernel allows it, else kvm tracepoints), and explain the result: both measurements,
//! exit reasons, phases, call tree.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_tracefs::{
    CaptureFormat, Compression, Mode, Outcome, Recorder, Recording, SessionConfig, Target, Tracefs,
};
use exitscope_vmm::Report as BenchReport;

use crate::args::{BenchOptions, ColorArg, KutArgs, TracefsArgs};
use crate::exit::{self, CmdResult, Failure};
use crate::inputs;
use crate::output::{self, Output};
use crate::recording::{self, bench_completed};
use crate::text::plural;

/// Arguments of `exitscope run`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope run cpuid                  # function_graph of the exit path, or kvm events
  exitscope run inl_from_kernel -o out # keep trace.dat, bench.json, report.json, report.html
  exitscope run --events --cpl 3 mmio_from_vmm
  exitscope run --kut vmexit.flat cpuid -o out  # kvm-unit-tests' own vmexit.flat, traced

The benchmark is measured twice: untraced first (--min-cycles, default 2^26, --repeat,
default 6: the figures to quote, with a 95 % interval), then traced on a thread of exitscope (a shorter loop, at most
2^24 cycles, once: every exit becomes trace lines, and function_graph writes dozens per exit).
With --kut FILE the image is booted untraced (--repeat boots, default 1) and then once traced:
the vCPU threads of that boot and nothing else; its guest lines are printed as they come.
Without -o the trace lives in a temporary directory that is deleted when exitscope ends.
Exit codes as `exitscope record`; 1 when the benchmark did not complete (with --kut: a test
did not complete or a boot did not end with a PASS exit).")]
pub struct Args {
    /// The benchmark to run and trace (`exitscope bench --list`); with --kut, the image's
    /// tests (its command line; default: every test it has).
    #[arg(value_name = "TEST", required_unless_present = "kut")]
    pub tests: Vec<String>,
    /// Keep the raw trace, the benchmark's JSON (untraced and traced), the report's JSON and
    /// the HTML report in DIR.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Record kvm tracepoints even where function_graph is available.
    #[arg(long)]
    pub events: bool,
    /// Root of the function graph (default: vcpu_enter_guest, with fallbacks when inlined).
    #[arg(long, value_name = "FUNC", conflicts_with = "events")]
    pub graph: Option<String>,
    #[command(flatten)]
    pub bench: BenchOptions,
    #[command(flatten)]
    pub kut: KutArgs,
    #[command(flatten)]
    pub tracefs: TracefsArgs,
    #[command(flatten)]
    pub color: ColorArg,
}

/// Longest measured loop while tracing.
const TRACED_MAX_CYCLES: u64 = 1 << 24;
/// Ring buffer per CPU when `--buffer-size` is not given: a traced loop writes a lot.
const DEFAULT_BUFFER_KB: u64 = 65536;

/// Where the run's files go: the user's directory, or a temporary one removed at the end.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl WorkDir {
    /// The raw trace.
    fn trace(&self) -> PathBuf {
        self.path.join("trace.dat")
    }

    fn new(dir: Option<&Path>) -> Result<WorkDir, Failure> {
        let (path, keep) = match dir {
            Some(d) => (d.to_owned(), true),
            None => {
                (std::env::temp_dir().join(format!("exitscope-run-{}", std::process::id())), false)
            }
        };
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating {}", path.display()))
            .map_err(Failure::input)?;
        Ok(WorkDir { path, keep })
    }
}

fn graph_mode(root: Option<&str>) -> Mode {
    let mut m = Mode::default_graph();
    if let (Some(r), Mode::Graph { functions, fallback, .. }) = (root, &mut m) {
        *functions = vec![r.to_owned()];
        *fallback = r == "vcpu_enter_guest" || r == "vcpu_run";
    }
    m
}

/// Run `exitscope run`.
pub fn run(args: Args) -> CmdResult {
    if args.kut.kut.is_some() {
        return run_kut(&args);
    }
    let [test] = args.tests.as_slice() else {
        return Err(Failure::input(anyhow!(
            "run takes one built-in TEST (got {}); kvm-unit-tests images take several: \
             exitscope run --kut FILE TEST...",
            args.tests.len()
        )));
    };
    // Everything is checked before tracefs is touched: the test, KVM, root and tracefs.
    let bench = recording::find_test(test)?;
    args.bench.validate()?;
    // Six repeats: the fewest that give a 95 % interval of the median.
    let untraced_opts = args.bench.vmm(1 << 26, 6);
    recording::check_kvm(&untraced_opts)?;
    let fs = recording::tracefs(&args.tracefs, &first_mode(&args))?;

    let untraced = exitscope_vmm::run_suite(&[bench], &untraced_opts, |_, _| {})
        .map_err(|e| Failure::environment(anyhow!(e)))?;

    let work = WorkDir::new(args.output.as_deref())?;
    let traced_opts = args
        .bench
        .vmm(TRACED_MAX_CYCLES, 1)
        .with_min_cycles(args.bench.min_cycles.unwrap_or(TRACED_MAX_CYCLES).min(TRACED_MAX_CYCLES))
        .with_repeat(1);
    let (rec, why) = record(&args, fs, &work, &untraced, || {
        recording::bench_target(bench, traced_opts.clone())
    })?;
    let traced = match rec.outcome {
        Outcome::Interrupted(sig) => return Err(Failure::signal(sig)),
        Outcome::Returned(Ok(r)) => r,
        Outcome::Returned(Err(e)) => return Err(Failure::environment(anyhow!(e))),
        _ => {
            return Err(Failure::check(anyhow!(
                "the benchmark did not complete: its thread panicked"
            )));
        }
    };
    let note = format!(
        "# the untraced figures are the measurement ({} cycles per loop, {} repeats); the traced \
         run ({} cycles, once) is what the trace below shows, tracing overhead included",
        untraced.min_cycles, untraced.repeat, traced.min_cycles
    );
    let run = Explained {
        title: format!("run {test}"),
        untraced,
        traced,
        enabled: rec.enabled,
        why,
        notes: vec![note],
        // The bench's own signalling (done and fault ports) is not the experiment.
        harness_ports: vec![exitscope_guest::PORT_DONE, exitscope_guest::PORT_FAULT],
    };
    let completed = bench_completed(&run.untraced) && bench_completed(&run.traced);
    explain(&args, &work, &run)?;
    if completed {
        Ok(exit::OK)
    } else {
        Err(Failure::check(anyhow!("the benchmark did not complete")))
    }
}

/// `run --kut FILE TEST...`: boot the image untraced (`--repeat` boots, default 1) for the
/// figures, then once more traced: the vCPU threads of that boot, nothing else.
fn run_kut(args: &Args) -> CmdResult {
    let Some(kernel) = args.kut.image()? else { unreachable!("run_kut is called with --kut") };
    let config = args.kut.config(kernel, &args.tests, &args.bench);
    let boots = args.bench.repeat.unwrap_or(1);
    let host = recording::check_kvm(&exitscope_vmm::Options::default())?;
    let fs = recording::tracefs(&args.tracefs, &first_mode(args))?;

    let mut outcomes = Vec::new();
    for boot in 1..=boots {
        stdout_line(&crate::kut::boot_header(&format!("untraced boot {boot}/{boots}"), &config));
        let outcome = exitscope_vmm::kut::run(&config, |l| stdout_line(&l.text))
            .map_err(crate::kut::failure)?;
        crate::kut::finish_lines(&outcome, stdout_line);
        outcomes.push(outcome);
    }
    let untraced_passed = outcomes.iter().all(|o| o.end.passed());
    let untraced = crate::kut::summarize(&config, "untraced", outcomes, &host, kernel);

    let work = WorkDir::new(args.output.as_deref())?;
    stdout_line(&crate::kut::boot_header("traced boot", &config));
    let (rec, why) = record(args, fs, &work, &untraced, || {
        crate::kut::boot_target(config.clone(), stdout_line)
    })?;
    let outcome = match rec.outcome {
        Outcome::Interrupted(sig) => return Err(Failure::signal(sig)),
        Outcome::Returned(Ok(o)) => o,
        Outcome::Returned(Err(e)) => return Err(crate::kut::failure(e)),
        _ => return Err(Failure::check(anyhow!("the traced boot's thread panicked"))),
    };
    crate::kut::finish_lines(&outcome, stdout_line);
    let traced_passed = outcome.end.passed();
    let mut notes = vec![format!(
        "# the untraced figures are the guest's own ({}; each test's last doubling round ran at \
         least 2^30 TSC cycles); the traced boot is what the trace below shows, tracing overhead \
         included",
        plural(u64::from(boots), "boot", "boots")
    )];
    notes.extend(crate::kut::iteration_lines(&outcome).iter().map(|l| format!("# traced {l}")));
    let run = Explained {
        title: format!("run --kut {} {}", kernel.display(), config.tests.join(" ")),
        untraced,
        traced: crate::kut::summarize(&config, "traced", vec![outcome], &host, kernel),
        enabled: rec.enabled,
        why,
        notes,
        // The VMM's console, firmware and exit ports are not the guest's test.
        harness_ports: crate::kut::plumbing_ports(),
    };
    let completed = bench_completed(&run.untraced) && bench_completed(&run.traced);
    explain(args, &work, &run)?;
    if completed && untraced_passed && traced_passed {
        Ok(exit::OK)
    } else {
        Err(Failure::check(anyhow!(
            "a test did not complete or a boot did not end with a PASS exit"
        )))
    }
}

/// One guest line (or boot header) on stdout, as it comes.
fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

fn first_mode(args: &Args) -> Mode {
    if args.events { Mode::default_events() } else { graph_mode(args.graph.as_deref()) }
}

/// Record `target()` into `work`'s trace.dat: function_graph of the exit path, or kvm
/// tracepoints when `--events` was given or the kernel refuses function_graph (then the
/// target is made again and recorded once more). Returns the recording and why events were
/// recorded, if they were.
fn record<T: Send + 'static>(
    args: &Args,
    fs: Tracefs,
    work: &WorkDir,
    untraced: &BenchReport,
    mut target: impl FnMut() -> Target<T>,
) -> Result<(Recording<T>, Option<String>), Failure> {
    let first_mode = first_mode(args);
    // The ring-buffer pages (ns timestamps, least recording cost), as `record` writes.
    let trace = work.trace();
    let mut cfg = SessionConfig::new(first_mode.clone());
    cfg.format = CaptureFormat::for_path(&trace, Compression::Zstd);
    cfg.buffer_size_kb = Some(args.tracefs.buffer_size.unwrap_or(DEFAULT_BUFFER_KB));
    // The untraced bench's fingerprint: where the traced loop ran too, TSC rate and --pin
    // included.
    cfg.host_tag = Some(untraced.host.fingerprint.to_tag());
    let mut recorder = Recorder::new(fs, cfg);
    let mut notify = |m: &str| say!("{m}");
    let mut why = args.events.then(|| "--events was given".to_owned());
    let mut trace_out = Output::create(Some(&trace))?;
    let rec = match recorder.record(target(), &mut trace_out, &trace, &mut notify) {
        Ok(r) => r,
        Err(e) if why.is_none() && recording::graph_unavailable(&e).is_some() => {
            let reason = recording::graph_unavailable(&e).unwrap_or_default();
            say!("{reason}; recording kvm tracepoints instead");
            why = Some(reason);
            recorder.set_mode(Mode::default_events());
            drop(trace_out);
            trace_out = Output::create(Some(&trace))?;
            recorder
                .record(target(), &mut trace_out, &trace, &mut notify)
                .map_err(|e| recording::failure(e, &Mode::default_events()))?
        }
        Err(e) => return Err(recording::failure(e, &first_mode)),
    };
    trace_out.commit()?;
    if let Err(e) = recorder.unmount() {
        say!("warning: {e}");
    }
    recording::report_recording(&rec, &trace);
    if !work.keep {
        say!(
            "{} is temporary and deleted when exitscope ends; -o DIR keeps it, with \
             bench.json, report.json and report.html",
            trace.display()
        );
    }
    Ok((rec, why))
}

/// A finished run, ready to be explained.
struct Explained {
    /// `run TEST`, for headings and the HTML title.
    title: String,
    /// The measurement.
    untraced: BenchReport,
    /// What the trace shows.
    traced: BenchReport,
    /// Graph roots or events recorded.
    enabled: Vec<String>,
    /// Why kvm tracepoints were recorded instead of a function graph.
    why: Option<String>,
    /// `#` lines after the bench lines.
    notes: Vec<String>,
    /// Ports of the harness, kept out of the per-reason figures.
    harness_ports: Vec<u16>,
}

/// Print both measurements, then the trace's exits, phases and call tree; with `-o DIR`
/// keep the bench JSON, the report JSON and the HTML report next to the trace.
fn explain(args: &Args, work: &WorkDir, run: &Explained) -> Result<(), Failure> {
    let trace = work.trace();
    let mut out = Output::create(None)?;
    let style = args.color.style(out.is_tty());
    let tracepoints = run.enabled.len();
    let mode = match &run.why {
        Some(w) => format!("kvm tracepoints ({w})"),
        None => format!("function_graph of the exit path (rooted at {})", run.enabled.join(", ")),
    };
    writeln!(out, "# exitscope {}: recorded {mode}", run.title)?;
    let m = &run.untraced.mode;
    writeln!(out, "# bench mode: CPL{} ({})", m.cpl.as_u8(), m.reason)?;
    write_bench(&mut out, &run.untraced, "untraced")?;
    let traced_label = if run.why.is_some() {
        format!("traced, {tracepoints} tracepoints on")
    } else {
        "traced, function_graph on".to_owned()
    };
    write_bench(&mut out, &run.traced, &traced_label)?;
    for n in &run.notes {
        writeln!(out, "{n}")?;
    }

    let mut opts = AnalysisOptions::default();
    opts.harness_ports = run.harness_ports.clone();
    let mut analysis = Analysis::new(opts);
    let mut read_opts = exitscope_ingest::Options::default();
    // A recording where no event fired is a finding, explained below.
    read_opts.require_records = false;
    let name = trace.to_string_lossy().into_owned();
    inputs::read(std::slice::from_ref(&name), &mut analysis, &read_opts)?;
    let report = analysis.finish();
    inputs::print_diagnostics(&report);
    if let Some(ex) = &report.exits
        && ex.whole_roots + ex.split_roots > 0
    {
        writeln!(out)?;
        exitscope_render::exits::write_phases(ex, &style, &mut out)?;
    }
    if report.exits.is_some() && !report.events.is_empty() {
        writeln!(out)?;
        exitscope_render::exits::write_table(&report, &mut out)?;
    } else if run.why.is_some() {
        writeln!(
            out,
            "\n# no kvm events were recorded: the benchmark's operation did not exit to this \
             KVM (see the bench note above)"
        )?;
    }
    if !report.tree.is_empty() {
        writeln!(out)?;
        exitscope_render::tree::write(&report, &style, &mut out)?;
    }
    if work.keep {
        for (file, r) in [("bench.json", &run.untraced), ("traced-bench.json", &run.traced)] {
            output::write_file(&work.path.join(file), |o| write_json(o, r))?;
        }
        output::write_file(&work.path.join("report.json"), |o| {
            exitscope_render::json::write(&report, o)?;
            Ok(())
        })?;
        output::write_file(&work.path.join("report.html"), |o| {
            let mut opts = exitscope_render::html::HtmlOptions::default();
            opts.title = Some(format!("exitscope {}", run.title));
            // The untraced measurement is the benchmark's result.
            opts = opts.with_bench(&run.untraced);
            exitscope_render::html::write(&report, &run.title, &opts, o)?;
            Ok(())
        })?;
        writeln!(
            out,
            "# kept {}: trace.dat, bench.json, traced-bench.json, report.json, report.html",
            work.path.display()
        )?;
    }
    out.commit()?;
    Ok(())
}

fn write_json(o: &mut Output, r: &BenchReport) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *o, r).context("writing JSON")?;
    writeln!(o)?;
    Ok(())
}

/// One `# bench TEST, LABEL: ...` line per result.
fn write_bench(out: &mut impl Write, report: &BenchReport, label: &str) -> std::io::Result<()> {
    for r in &report.results {
        writeln!(out, "# bench {}", exitscope_render::bench::line(r, Some(label)))?;
    }
    Ok(())
}
