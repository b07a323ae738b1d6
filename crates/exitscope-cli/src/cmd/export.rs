//! `exitscope export`: timelines for other tools (Perfetto / `chrome://tracing`).

use std::path::Path;

use anyhow::anyhow;
use clap::{Args as ClapArgs, ValueEnum};

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline};
use exitscope_render::pftrace::PftraceTimeline;

use exitscope_ingest::Options;

use crate::args::{DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult, Failure};
use crate::inputs;
use crate::output::Output;

/// File format of `exitscope export --perfetto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Chrome trace-event JSON (Perfetto's legacy format; µs timestamps).
    Json,
    /// Perfetto's native TrackEvent protobuf (ns timestamps, nested slices, counters).
    Pftrace,
}

/// Arguments of `exitscope export`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope export --perfetto tests/data/seed/cpuid-amd.fgraph.txt -o trace.json
  exitscope export --perfetto trace.dat.zst -o trace.pftrace   # open in ui.perfetto.dev
  exitscope export --parquet out/ host1.dat host2.dat          # exits/calls/runs.parquet

--parquet writes one run per input (each analysed on its own), with the fingerprint of the
host that recorded it when the trace carries one (`exitscope record` writes it); the
host and runs.parquet fingerprint columns are null otherwise. Schema: docs/parquet.md.")]
pub struct Args {
    /// Traces, analysed together (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` = stdin).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// A timeline for ui.perfetto.dev: one track per vCPU thread (or CPU), one slice per call
    /// (root slices named by exit reason), events as instants. `.pftrace` /
    /// `.perfetto-trace` outputs (or `--format pftrace`) are Perfetto's native protobuf,
    /// which adds one slice per exit with its reason, phases and fields, lost-event markers
    /// and exits/s counters; anything else is Chrome trace-event JSON. Traces without
    /// timestamps are laid out in synthetic time (marked `synthetic_time` in the file).
    #[arg(long, required_unless_present = "parquet")]
    pub perfetto: bool,
    /// File format; by default from the output's extension (JSON for stdout). pftrace is
    /// binary: it is not written to a terminal.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Write exits.parquet (one row per exit), calls.parquet (one row per merged call path)
    /// and runs.parquet (one row per input, with its fingerprint) into DIR (created if
    /// needed; the three files are replaced only when the export succeeds).
    #[arg(long, value_name = "DIR", conflicts_with = "perfetto")]
    pub parquet: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
}

/// The format `--format` names, else the one the output file's extension implies.
fn format(args: &Args) -> FormatArg {
    args.format.unwrap_or_else(|| {
        let ext = args.output.path().and_then(Path::extension).and_then(|e| e.to_str());
        match ext {
            Some("pftrace" | "perfetto-trace") => FormatArg::Pftrace,
            _ => FormatArg::Json,
        }
    })
}

/// Run `exitscope export`.
pub fn run(args: Args) -> CmdResult {
    if let Some(dir) = &args.parquet {
        return parquet::run(dir, &args);
    }
    let fmt = format(&args);
    let out = Output::create(args.output.path())?;
    if fmt == FormatArg::Pftrace && out.is_tty() {
        return Err(Failure::input(anyhow!(
            "--format pftrace writes binary protobuf; give -o FILE.pftrace or redirect stdout"
        )));
    }
    let popts = PerfettoOptions::with_inputs(args.files.clone());
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = args.diagnostics.max_diagnostics;
    // One analysis run feeds the timeline as it goes; the report only supplies diagnostics.
    match fmt {
        FormatArg::Json => {
            // Root slices are named by exit reason by the analysis itself.
            let timeline = PerfettoTimeline::new(out, popts)?;
            let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
            let mut analysis = Analysis::new(opts);
            analysis.add_call_sink(&mut calls);
            analysis.add_record_sink(&mut records);
            feed(&args, analysis, &|i| timeline.begin_input(i))?;
            timeline.finish()?.commit()?;
        }
        FormatArg::Pftrace => {
            let timeline = PftraceTimeline::new(out, popts);
            let (mut calls, mut records, mut exits) =
                (timeline.call_sink(), timeline.record_sink(), timeline.exit_sink());
            let mut analysis = Analysis::new(opts);
            analysis.add_call_sink(&mut calls);
            analysis.add_record_sink(&mut records);
            analysis.add_exit_sink(&mut exits);
            feed(&args, analysis, &|i| timeline.begin_input(i))?;
            timeline.finish()?.commit()?;
        }
    }
    Ok(exit::OK)
}

/// Read every input into `analysis` (its sinks attached), `begin(i)` before input `i`; then
/// its diagnostics, and `--strict`.
fn feed(args: &Args, mut analysis: Analysis<'_>, begin: &dyn Fn(usize)) -> Result<(), Failure> {
    for (i, f) in args.files.iter().enumerate() {
        begin(i);
        inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
    }
    let report = analysis.finish();
    inputs::print_diagnostics(&report);
    inputs::check_strict(&report, &args.diagnostics)
}

#[cfg(feature = "parquet")]
mod parquet {
    use std::path::Path;
    use std::time::Instant;

    use anyhow::{Context, anyhow};

    use exitscope_analyze::{Analysis, AnalysisOptions};
    use exitscope_host::Fingerprint;
    use exitscope_ingest::Options;
    use exitscope_model::{
        Diagnostic, Flow, InputFormat, InputSink, InputSummary, Record, RecordSink,
    };
    use exitscope_render::parquet::{CALLS, ExitsWriter, RUNS, Run, TableWriter};

    use super::Args;
    use crate::exit::{self, CmdResult, Failure};
    use crate::inputs;
    use crate::output::Output;

    /// Reads only as far as the first record: the recording host a trace carries is known
    /// before its records (a text trace's first line, a trace.dat option).
    struct HostProbe(Option<Fingerprint>);

    impl RecordSink for HostProbe {
        fn record(&mut self, _: &Record<'_>) -> Flow {
            Flow::Stop
        }
        fn diagnostic(&mut self, _: Diagnostic) -> Flow {
            Flow::Stop
        }
    }

    impl InputSink for HostProbe {
        fn begin_input(&mut self, _: &str, _: InputFormat) {}
        fn end_input(&mut self, summary: &InputSummary) {
            self.0 = summary.host.clone();
        }
    }

    /// The host that recorded `input`, if the trace says (stdin is read once: `None`). The
    /// main pass reports any problem with the input, so this one stays quiet.
    fn recording_host(input: &str) -> Option<Fingerprint> {
        if input == "-" {
            return None;
        }
        let mut probe = HostProbe(None);
        let files = [input.to_string()];
        exitscope_ingest::read_paths(&files, &mut probe, &Options::default()).ok()?;
        probe.0
    }

    pub(super) fn run(dir: &Path, args: &Args) -> CmdResult {
        if args.output.path().is_some() {
            return Err(Failure::input(anyhow!("--parquet writes into DIR; -o does not apply")));
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let started = Instant::now();
        let create = |name: &str| Output::create(Some(&dir.join(name)));
        let mut exits = ExitsWriter::new(create("exits.parquet")?)?;
        let mut calls = TableWriter::new(create("calls.parquet")?, "calls", CALLS)?;
        let mut runs = TableWriter::new(create("runs.parquet")?, "runs", RUNS)?;
        for f in &args.files {
            let fp = recording_host(f);
            let mut opts = AnalysisOptions::default();
            opts.max_diagnostics = args.diagnostics.max_diagnostics;
            // The run id hashes host, name and size (stdin: 0), so a re-export keeps it.
            let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            let run = Run::new(f, bytes, fp);
            exits.begin_run(&run);
            let mut analysis = Analysis::new(opts);
            analysis.add_exit_sink(&mut exits);
            inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
            let report = analysis.finish();
            inputs::print_diagnostics(&report);
            inputs::check_strict(&report, &args.diagnostics)?;
            exitscope_render::parquet::write_calls(&mut calls, &run, &report)?;
            let summary = report.inputs.first().cloned().unwrap_or_default();
            exitscope_render::parquet::write_run(&mut runs, &run, &summary, &report)?;
        }
        let rows = exits.rows();
        let secs = started.elapsed().as_secs_f64();
        exits.finish()?.commit()?;
        calls.finish()?.commit()?;
        runs.finish()?.commit()?;
        say!(
            "wrote {rows} exit rows ({:.0} rows/s) to {}",
            rows as f64 / secs.max(1e-9),
            dir.join("exits.parquet").display()
        );
        Ok(exit::OK)
    }
}

#[cfg(not(feature = "parquet"))]
mod parquet {
    use std::path::Path;

    use super::Args;
    use crate::exit::{CmdResult, Failure};

    pub(super) fn run(_dir: &Path, _args: &Args) -> CmdResult {
        Err(Failure::environment(anyhow::anyhow!(
            "this exitscope was built without Parquet support (cargo feature `parquet`)"
        )))
    }
}
