//! `exitscope report`: parse traces and explain them.

use std::io::Write;

use clap::Args as ClapArgs;

use crate::args::{ColorArg, DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult};
use crate::inputs::{self, Depth};
use crate::output::Output;

/// Arguments of `exitscope report`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope report tests/data/seed/cpuid-amd.fgraph.txt      # call tree with statistics
  exitscope report --exits trace.dat                          # exits per reason, phases
  trace-cmd report | exitscope report --flat -                # flat profile from stdin
  exitscope report --json -o report.json t1.txt t2.txt.gz")]
pub struct Args {
    /// Traces, analysed together: ftrace text (`trace`, `trace_pipe`, `trace-cmd report`
    /// output), trace-cmd trace.dat, perf.data (kvm tracepoints), any of them gzip- or
    /// zstd-compressed; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Print one JSON document (schema: `exitscope_analyze::report`) instead of the tree.
    #[arg(long, conflicts_with = "flat")]
    pub json: bool,
    /// Print the flat per-function profile instead of the tree.
    #[arg(long)]
    pub flat: bool,
    /// Print the exit view instead of the tree: one exit per svm_vcpu_run/vmx_vcpu_run call,
    /// classified by reason, with before/run/after phases (with --json: adds "exits").
    #[arg(long, conflicts_with = "flat")]
    pub exits: bool,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
    #[command(flatten)]
    pub color: ColorArg,
}

/// Run `exitscope report`.
pub fn run(args: Args) -> CmdResult {
    let mut out = Output::create(args.output.path())?;
    let report = inputs::analyse(&args.files, &args.diagnostics, Depth::Plain)?;
    let style = args.color.style(out.is_tty());
    if !args.json {
        exitscope_render::host::write(&report, &mut out)?;
    }
    if args.json {
        exitscope_render::json::write(&report, &mut out)?;
    } else if args.exits {
        exitscope_render::exits::write(&report, &style, &mut out)?;
    } else if args.flat {
        exitscope_render::flat::write(&report, &style, &mut out)?;
    } else if report.tree.is_empty() && report.exits.is_some() {
        // An event trace (kvm tracepoints, no function_graph): the exit-reason table.
        exitscope_render::exits::write_table(&report, &mut out)?;
        exitscope_render::tree::footer(&report, &mut out)?;
    } else {
        exitscope_render::tree::write(&report, &style, &mut out)?;
        if !report.events.is_empty() && report.exits.is_some() {
            writeln!(out)?;
            exitscope_render::exits::write_table(&report, &mut out)?;
        }
    }
    out.commit()?;
    Ok(exit::OK)
}
