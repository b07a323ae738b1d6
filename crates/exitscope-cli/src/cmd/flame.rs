//! `exitscope flame`: flame graphs (SVG) and folded stacks of the merged call tree.

use std::io::Write;

use anyhow::anyhow;
use clap::Args as ClapArgs;

use exitscope_analyze::diff::{self, DiffSort, NormTable};
use exitscope_analyze::report::Report;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::flame::{self, FlameOptions};

use crate::cmd::report::{analyse_inputs, open_output, print_diagnostics};
use crate::exit::{self, CmdResult, Failure};

/// Arguments of `exitscope flame`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Trace files, analysed together (as `exitscope report`).
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
    /// Print at most this many diagnostics (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_diagnostics: usize,
    /// Write the output here instead of stdout (`-` = stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
}

/// Short label for inputs in titles: their file names (the full paths are in the report).
pub fn label(files: &[String]) -> String {
    files
        .iter()
        .map(|f| {
            std::path::Path::new(f).file_name().map_or(f.clone(), |n| n.to_string_lossy().into())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How much analysis a picture needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Tree and flat profile (flame graphs, folded stacks).
    Tree,
    /// Plus the exit view (`report --exits`): the HTML report.
    Exits,
    /// As `exitscope diff` analyses each side: exits, and roots holding several exits split
    /// into one `vcpu_enter_guest`-like root per exit.
    Diff,
}

/// Analyse `files` together into one report, printing its diagnostics.
pub fn analyse(files: &[String], max_diagnostics: usize, depth: Depth) -> Result<Report, Failure> {
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = max_diagnostics;
    opts.split_exits = depth == Depth::Diff;
    let mut analysis = Analysis::new(opts);
    analyse_inputs(files, &mut analysis)?;
    let report = analysis.finish();
    print_diagnostics(&report);
    Ok(report)
}

/// Run `exitscope flame`.
pub fn run(args: Args) -> CmdResult {
    let (mut out, _) = open_output(args.output.as_deref())?;
    let no_timing = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Failure::input(anyhow!("{e}"))
        } else {
            Failure::from(e)
        }
    };
    if let Some(pair) = &args.diff {
        let a = analyse(&pair[..1], args.max_diagnostics, Depth::Diff)?;
        let b = analyse(&pair[1..], args.max_diagnostics, Depth::Diff)?;
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
        let report = analyse(&args.files, args.max_diagnostics, Depth::Tree)?;
        if args.folded {
            exitscope_render::folded::write(&report, &mut out)?;
        } else {
            let mut fo =
                FlameOptions::titled(args.title.clone().unwrap_or_else(|| "Flame graph".into()));
            fo.subtitle = Some(format!("{}: widths are total time (ns)", label(&args.files)));
            flame::write(&report, &fo, &mut out).map_err(no_timing)?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}
