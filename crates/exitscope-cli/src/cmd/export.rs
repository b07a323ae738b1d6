//! `exitscope export`: timelines for other tools (Perfetto / `chrome://tracing`).

use clap::Args as ClapArgs;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline};

use exitscope_ingest::Options;

use crate::args::{DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult};
use crate::inputs;
use crate::output::Output;

/// Arguments of `exitscope export`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope export --perfetto tests/data/seed/cpuid-amd.fgraph.txt -o trace.json
  exitscope export --perfetto trace.dat.zst -o trace.json   # open in ui.perfetto.dev")]
pub struct Args {
    /// Traces, analysed together (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` = stdin).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Chrome trace-event JSON for ui.perfetto.dev and chrome://tracing: one track per CPU
    /// and per task, one slice per call (root slices named by exit reason), events as
    /// instants. Traces without timestamps are
    /// laid out in synthetic time (marked `synthetic_time` in the file).
    #[arg(long, required = true)]
    pub perfetto: bool,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
}

/// Run `exitscope export`.
pub fn run(args: Args) -> CmdResult {
    let out = Output::create(args.output.path())?;
    // Root slices are named by exit reason by the analysis itself.
    let popts = PerfettoOptions::with_inputs(args.files.clone());
    let timeline = PerfettoTimeline::new(out, popts)?;
    let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = args.diagnostics.max_diagnostics;
    let mut analysis = Analysis::new(opts);
    analysis.add_call_sink(&mut calls);
    analysis.add_record_sink(&mut records);
    // One analysis run feeds the timeline as it goes; the report only supplies diagnostics.
    for (i, f) in args.files.iter().enumerate() {
        timeline.begin_input(i);
        inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
    }
    let report = analysis.finish();
    inputs::print_diagnostics(&report);
    inputs::check_strict(&report, &args.diagnostics)?;
    timeline.finish()?.commit()?;
    Ok(exit::OK)
}
