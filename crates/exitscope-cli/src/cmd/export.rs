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
  exitscope export --perfetto trace.dat.zst -o trace.pftrace   # open in ui.perfetto.dev")]
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
    #[arg(long, required = true)]
    pub perfetto: bool,
    /// File format; by default from the output's extension (JSON for stdout). pftrace is
    /// binary: it is not written to a terminal.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
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
            for (i, f) in args.files.iter().enumerate() {
                timeline.begin_input(i);
                inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
            }
            let report = analysis.finish();
            inputs::print_diagnostics(&report);
            inputs::check_strict(&report, &args.diagnostics)?;
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
            for (i, f) in args.files.iter().enumerate() {
                timeline.begin_input(i);
                inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
            }
            let report = analysis.finish();
            inputs::print_diagnostics(&report);
            inputs::check_strict(&report, &args.diagnostics)?;
            timeline.finish()?.commit()?;
        }
    }
    Ok(exit::OK)
}
