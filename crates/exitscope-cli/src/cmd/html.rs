//! `exitscope html`: one self-contained HTML report.

use std::io::Write;

use clap::Args as ClapArgs;

use exitscope_analyze::diff::{self, DiffSort, NormTable};
use exitscope_render::html::{self, HtmlOptions};

use crate::cmd::flame::{Depth, analyse, label};
use crate::cmd::report::open_output;
use crate::exit::{self, CmdResult};

/// Arguments of `exitscope html`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Trace files, analysed together.
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
    /// Print at most this many diagnostics (all are counted; the page lists them too).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_diagnostics: usize,
    /// Write the page here instead of stdout (`-` = stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
}

/// Run `exitscope html`.
pub fn run(args: Args) -> CmdResult {
    let (mut out, _) = open_output(args.output.as_deref())?;
    let mut opts = HtmlOptions::default();
    opts.title = args.title.clone();
    if let Some(pair) = &args.diff {
        let a = analyse(&pair[..1], args.max_diagnostics, Depth::Diff)?;
        let b = analyse(&pair[1..], args.max_diagnostics, Depth::Diff)?;
        let (la, lb) = (label(&pair[..1]), label(&pair[1..]));
        let table = (!args.no_normalize).then(NormTable::builtin);
        let d = diff::diff(&a, &b, table.as_ref(), DiffSort::Tree);
        html::write_diff((&la, &a), (&lb, &b), &d, &opts, &mut out)?;
    } else {
        let report = analyse(&args.files, args.max_diagnostics, Depth::Exits)?;
        html::write(&report, &label(&args.files), &opts, &mut out)?;
    }
    out.flush()?;
    Ok(exit::OK)
}
