//! `exitscope html`: one self-contained HTML report.

use clap::Args as ClapArgs;

use exitscope_analyze::diff::{self, DiffSort, NormTable};
use exitscope_render::html::{self, HtmlOptions};

use crate::args::{DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult};
use crate::inputs::{self, Depth, label};
use crate::output::Output;

/// Arguments of `exitscope html`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope html tests/data/seed/cpuid-amd.fgraph.txt -o report.html
  exitscope html --diff amd.txt intel.txt -o amd-vs-intel.html
  exitscope html --title 'kernel 6.8, cpuid' trace.dat.zst -o r.html")]
pub struct Args {
    /// Traces, analysed together (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` = stdin).
    #[arg(value_name = "FILE", required_unless_present = "diff", conflicts_with = "diff")]
    pub files: Vec<String>,
    /// Compare trace A (left) with trace B (right): both summaries, a side-by-side tree with
    /// deltas and a differential flame graph, aligned like `exitscope diff` (vendor-normalized).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Option<Vec<String>>,
    /// With --diff: align by exact call path instead of vendor-normalized names.
    #[arg(long, requires = "diff")]
    pub no_normalize: bool,
    /// Page title.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
}

/// Run `exitscope html`.
pub fn run(args: Args) -> CmdResult {
    let mut out = Output::create(args.output.path())?;
    let mut opts = HtmlOptions::default();
    opts.title = args.title.clone();
    if let Some(pair) = &args.diff {
        let a = inputs::analyse(&pair[..1], &args.diagnostics, Depth::Diff)?;
        let b = inputs::analyse(&pair[1..], &args.diagnostics, Depth::Diff)?;
        let (la, lb) = (label(&pair[..1]), label(&pair[1..]));
        let table = (!args.no_normalize).then(NormTable::builtin);
        let d = diff::diff(&a, &b, table.as_ref(), DiffSort::Tree);
        html::write_diff((&la, &a), (&lb, &b), &d, &opts, &mut out)?;
    } else {
        let report = inputs::analyse(&args.files, &args.diagnostics, Depth::Plain)?;
        html::write(&report, &label(&args.files), &opts, &mut out)?;
    }
    out.commit()?;
    Ok(exit::OK)
}
