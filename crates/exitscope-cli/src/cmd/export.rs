//! `exitscope export`: timelines for other tools (Perfetto / `chrome://tracing`).

use std::io::Write;

use clap::Args as ClapArgs;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline};

use crate::cmd::report::{analyse_inputs, open_output, print_diagnostics};
use crate::exit::{self, CmdResult};

/// Arguments of `exitscope export`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Trace files, analysed together.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Chrome trace-event JSON for ui.perfetto.dev and chrome://tracing: one track per CPU
    /// and per task, one slice per call (root slices named by exit reason), events as
    /// instants. Traces without timestamps are
    /// laid out in synthetic time (marked `synthetic_time` in the file).
    #[arg(long, required = true)]
    pub perfetto: bool,
    /// Print at most this many diagnostics (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_diagnostics: usize,
    /// Write the output here instead of stdout (`-` = stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
}

/// Run `exitscope export`.
pub fn run(args: Args) -> CmdResult {
    let (out, _) = open_output(args.output.as_deref())?;
    // Root slices are named by exit reason by the analysis itself.
    let popts = PerfettoOptions::with_inputs(args.files.clone());
    let timeline = PerfettoTimeline::new(out, popts)?;
    let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = args.max_diagnostics;
    let mut analysis = Analysis::new(opts);
    analysis.add_call_sink(&mut calls);
    analysis.add_record_sink(&mut records);
    // One analysis run feeds the timeline as it goes; the report only supplies diagnostics.
    for (i, f) in args.files.iter().enumerate() {
        timeline.begin_input(i);
        analyse_inputs(std::slice::from_ref(f), &mut analysis)?;
    }
    let report = analysis.finish();
    print_diagnostics(&report);
    timeline.finish()?.flush()?;
    Ok(exit::OK)
}
