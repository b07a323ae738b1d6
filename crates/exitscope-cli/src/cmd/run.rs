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
    CaptureFormat, Compression, Error as TfError, Mode, Outcome, Recorder, SessionConfig,
    errno_name,
};
use exitscope_vmm::Report as BenchReport;

use crate::args::{BenchOptions, ColorArg, TracefsArgs};
use crate::exit::{self, CmdResult, Failure};
use crate::inputs;
use crate::output::{self, Output};
use crate::recording::{self, bench_completed};

/// Arguments of `exitscope run`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope run cpuid                  # function_graph of the exit path, or kvm events
  exitscope run inl_from_kernel -o out # keep trace.dat, bench.json, report.json, report.html
  exitscope run --events --cpl 3 mmio_from_vmm

The benchmark is measured twice: untraced first (--min-cycles, default 2^26, --repeat,
default 6: the figures to quote, with a 95 % interval), then traced on a thread of exitscope (a shorter loop, at most
2^24 cycles, once: every exit becomes trace lines, and function_graph writes dozens per exit).
Without -o the trace lives in a temporary directory that is deleted when exitscope ends.
Exit codes as `exitscope record`; 1 when the benchmark did not complete.")]
pub struct Args {
    /// The benchmark to run and trace (`exitscope bench --list`).
    #[arg(value_name = "TEST")]
    pub test: String,
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

/// Why function_graph cannot be used, when that is what `e` says.
fn graph_unavailable(e: &TfError) -> Option<String> {
    match e {
        TfError::TracerUnavailable { path, available, .. } => Some(format!(
            "this kernel offers no function_graph tracer: {} lists only \"{available}\"",
            path.display()
        )),
        TfError::TracerRefused { source, .. } => Some(format!(
            "the kernel refused the function_graph tracer with {} (lockdown?)",
            errno_name(source)
        )),
        _ => None,
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
    // Everything is checked before tracefs is touched: the test, KVM, root and tracefs.
    let bench = recording::find_test(&args.test)?;
    args.bench.validate()?;
    // Six repeats: the fewest that give a 95 % interval of the median.
    let untraced_opts = args.bench.vmm(1 << 26, 6);
    recording::check_kvm(&untraced_opts)?;
    let first_mode =
        if args.events { Mode::default_events() } else { graph_mode(args.graph.as_deref()) };
    let fs = recording::tracefs(&args.tracefs, &first_mode)?;

    let untraced = exitscope_vmm::run_suite(&[bench], &untraced_opts, |_, _| {})
        .map_err(|e| Failure::environment(anyhow!(e)))?;

    let work = WorkDir::new(args.output.as_deref())?;
    // The ring-buffer pages (ns timestamps, least recording cost), as `record` writes.
    let trace = work.path.join("trace.dat");
    let traced_opts = args
        .bench
        .vmm(TRACED_MAX_CYCLES, 1)
        .with_min_cycles(args.bench.min_cycles.unwrap_or(TRACED_MAX_CYCLES).min(TRACED_MAX_CYCLES))
        .with_repeat(1);
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
    let target = recording::bench_target(bench, traced_opts.clone());
    let rec = match recorder.record(target, &mut trace_out, &trace, &mut notify) {
        Ok(r) => r,
        Err(e) if why.is_none() && graph_unavailable(&e).is_some() => {
            let reason = graph_unavailable(&e).unwrap_or_default();
            say!("{reason}; recording kvm tracepoints instead");
            why = Some(reason);
            recorder.set_mode(Mode::default_events());
            drop(trace_out);
            trace_out = Output::create(Some(&trace))?;
            let target = recording::bench_target(bench, traced_opts);
            recorder
                .record(target, &mut trace_out, &trace, &mut notify)
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

    let mut out = Output::create(None)?;
    let style = args.color.style(out.is_tty());
    let tracepoints = rec.enabled.len();
    let mode = match &why {
        Some(w) => format!("kvm tracepoints ({w})"),
        None => format!("function_graph of the exit path (rooted at {})", rec.enabled.join(", ")),
    };
    writeln!(out, "# exitscope run {}: recorded {mode}", args.test)?;
    writeln!(out, "# bench mode: CPL{} ({})", untraced.mode.cpl.as_u8(), untraced.mode.reason)?;
    write_bench(&mut out, &untraced, "untraced")?;
    let traced_label = if why.is_some() {
        format!("traced, {tracepoints} tracepoints on")
    } else {
        "traced, function_graph on".to_owned()
    };
    write_bench(&mut out, &traced, &traced_label)?;
    writeln!(
        out,
        "# the untraced figures are the measurement ({} cycles per loop, {} repeats); the traced \
         run ({} cycles, once) is what the trace below shows, tracing overhead included",
        untraced.min_cycles, untraced.repeat, traced.min_cycles
    )?;

    let mut opts = AnalysisOptions::default();
    // The bench's own signalling (done and fault ports) is not the experiment.
    opts.harness_ports = vec![exitscope_guest::PORT_DONE, exitscope_guest::PORT_FAULT];
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
    } else if why.is_some() {
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
        for (file, r) in [("bench.json", &untraced), ("traced-bench.json", &traced)] {
            output::write_file(&work.path.join(file), |o| write_json(o, r))?;
        }
        output::write_file(&work.path.join("report.json"), |o| {
            exitscope_render::json::write(&report, o)?;
            Ok(())
        })?;
        output::write_file(&work.path.join("report.html"), |o| {
            let mut opts = exitscope_render::html::HtmlOptions::default();
            opts.title = Some(format!("exitscope run {}", args.test));
            // The untraced measurement is the benchmark's result.
            opts = opts.with_bench(&untraced);
            exitscope_render::html::write(&report, &format!("run {}", args.test), &opts, o)?;
            Ok(())
        })?;
        writeln!(
            out,
            "# kept {}: trace.dat, bench.json, traced-bench.json, report.json, report.html",
            work.path.display()
        )?;
    }
    out.commit()?;
    if bench_completed(&untraced) && bench_completed(&traced) {
        Ok(exit::OK)
    } else {
        Err(Failure::check(anyhow!("the benchmark did not complete")))
    }
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
