//! `exitscope export`: timelines for other tools (Perfetto / `chrome://tracing`).

use std::cell::RefCell;

use clap::Args as ClapArgs;

use exitscope_analyze::calls::RootCall;
use exitscope_analyze::exits::{self, ExitTable, RoleCache};
use exitscope_analyze::funcs::FuncTable;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline, RootLabel};

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
    /// Traces, analysed together (ftrace text or trace.dat, plain or gzip/zstd; `-` = stdin).
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

/// Names root slices by exit reason (the classification of `report --exits`): `CPUID` for a
/// `vcpu_enter_guest` root that handled a CPUID exit, `3 exits: CPUID, IO, HLT` for a root
/// holding several (`kvm_arch_vcpu_ioctl_run`); roots with no exit keep their function name.
fn exit_reason_label() -> RootLabel {
    let table = ExitTable::builtin();
    let cache = RefCell::new(RoleCache::default());
    Box::new(move |root: &RootCall, funcs: &FuncTable| {
        let mut cache = cache.borrow_mut();
        let roles = cache.roles(table, funcs);
        let units = exits::exit_units(root, roles);
        if units.is_empty() {
            return None;
        }
        let names: Vec<&str> = exits::classify_units(table, root, &units, roles, funcs)
            .iter()
            .map(|c| c.reason.and_then(|i| table.reasons.get(i)).map_or("unknown", |r| &r.name))
            .collect();
        Some(match names.as_slice() {
            [one] => (*one).to_string(),
            many => format!("{} exits: {}", many.len(), many.join(", ")),
        })
    })
}

/// Run `exitscope export`.
pub fn run(args: Args) -> CmdResult {
    let out = Output::create(args.output.path())?;
    let mut popts = PerfettoOptions::with_inputs(args.files.clone());
    popts.root_label = Some(exit_reason_label());
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
