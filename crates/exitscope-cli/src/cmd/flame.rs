//! `exitscope flame`: flame graphs (SVG) and folded stacks of the merged call tree.

use std::io::Write;

use anyhow::anyhow;
use clap::Args as ClapArgs;

use exitscope_analyze::diff::{self, DiffSort, NormTable};
use exitscope_render::flame::{self, FlameOptions};

use crate::args::{DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult, Failure};
use crate::inputs::{self, Depth, label};
use crate::output::Output;

/// Arguments of `exitscope flame`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope flame tests/data/seed/cpuid-amd.fgraph.txt -o flame.svg
  exitscope flame --folded trace.dat | inferno-flamegraph > flame.svg
  exitscope flame --diff amd.txt intel.txt -o diff.svg")]
pub struct Args {
    /// Traces, analysed together (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` = stdin).
    #[arg(value_name = "FILE", required_unless_present = "diff", conflicts_with = "diff")]
    pub files: Vec<String>,
    /// Differential flame graph of trace A (before) against trace B (after): frames sized by
    /// B, colored by the change in self time (red slower, blue faster), aligned like
    /// `exitscope diff` (vendor-normalized: svm_* and vmx_* meet as vendor_*).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Option<Vec<String>>,
    /// With --diff: match frames by exact call path instead of vendor-normalized names.
    #[arg(long, requires = "diff")]
    pub no_normalize: bool,
    /// Write folded stacks (`frame;frame value`, value = self time in ns) instead of SVG: the
    /// format of flamegraph.pl, inferno and speedscope. With --diff: `stack A B`.
    #[arg(long)]
    pub folded: bool,
    /// Title drawn over the graph.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
}

/// Run `exitscope flame`.
pub fn run(args: Args) -> CmdResult {
    let mut out = Output::create(args.output.path())?;
    let no_timing = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Failure::input(anyhow!("{e}"))
        } else {
            Failure::from(e)
        }
    };
    if let Some(pair) = &args.diff {
        let a = inputs::analyse(&pair[..1], &args.diagnostics, Depth::Diff)?;
        let b = inputs::analyse(&pair[1..], &args.diagnostics, Depth::Diff)?;
        // The one alignment of `exitscope diff`, by exact names with --no-normalize.
        let table = (!args.no_normalize).then(NormTable::builtin);
        let d = diff::diff(&a, &b, table.as_ref(), DiffSort::Tree);
        if args.folded {
            let lines = flame::diff_lines(&d);
            for l in lines {
                writeln!(out, "{l}")?;
            }
        } else {
            let mut fo = FlameOptions::titled(
                args.title.clone().unwrap_or_else(|| "Differential flame graph".into()),
            );
            fo.subtitle = Some(format!(
                "{} → {}: widths from the second; red = slower, blue = faster{}",
                label(&pair[..1]),
                label(&pair[1..]),
                if d.normalized { "; vendor-normalized" } else { "" }
            ));
            flame::write_diff(&d, &fo, &mut out).map_err(no_timing)?;
        }
    } else {
        let report = inputs::analyse(&args.files, &args.diagnostics, Depth::Plain)?;
        if args.folded {
            exitscope_render::folded::write(&report, &mut out)?;
        } else {
            let mut fo =
                FlameOptions::titled(args.title.clone().unwrap_or_else(|| "Flame graph".into()));
            fo.subtitle = Some(format!("{}: widths are total time (ns)", label(&args.files)));
            flame::write(&report, &fo, &mut out).map_err(no_timing)?;
        }
    }
    out.commit()?;
    Ok(exit::OK)
}
