//! Reading traces for the commands: ask exitscope-ingest for "these paths", print what the
//! user should see (warnings, diagnostics), and turn problems into exit codes.

use anyhow::anyhow;

use exitscope_analyze::report::Report;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_ingest::Options;
use exitscope_model::InputSink;

use crate::args::DiagnosticsArgs;
use crate::exit::Failure;
use crate::text::plural;

/// Feed `files` (`-` = stdin) into `sink` in order.
pub fn read(files: &[String], sink: &mut impl InputSink, opts: &Options) -> Result<(), Failure> {
    for got in exitscope_ingest::read_paths(files, sink, opts).map_err(Failure::input)? {
        for w in got.warnings {
            say!("warning: {w}");
        }
    }
    Ok(())
}

/// How a command's inputs are analysed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// One report of the inputs as they are (report, flame graphs, HTML).
    Plain,
    /// As `exitscope diff` analyses each side: roots holding several exits split into one
    /// `vcpu_enter_guest`-like root per exit.
    Diff,
}

/// Analyse `files` together into one report, printing its diagnostics; `--strict` fails on
/// any unreadable line.
pub fn analyse(files: &[String], diag: &DiagnosticsArgs, depth: Depth) -> Result<Report, Failure> {
    let mut opts =
        if depth == Depth::Diff { AnalysisOptions::for_diff() } else { AnalysisOptions::default() };
    opts.max_diagnostics = diag.max_diagnostics;
    let mut analysis = Analysis::new(opts);
    let mut read_opts = Options::default();
    read_opts.jobs = diag.jobs();
    read_opts.chunk_bytes = diag.chunk_bytes.filter(|&n| n > 0);
    let bar = crate::progress::Bar::for_inputs(files);
    read_opts.progress = bar.as_ref().map(crate::progress::Bar::callback);
    let r = read(files, &mut analysis, &read_opts);
    if let Some(b) = bar {
        b.finish();
    }
    r?;
    let report = analysis.finish();
    print_diagnostics(&report);
    check_strict(&report, diag)?;
    Ok(report)
}

/// `--strict`: any unreadable line fails the command (exit 2).
pub fn check_strict(report: &Report, diag: &DiagnosticsArgs) -> Result<(), Failure> {
    let errors = report.diagnostic_counts.errors;
    if diag.strict && errors > 0 {
        return Err(Failure::input(anyhow!(
            "{} could not be read (--strict)",
            plural(errors, "line", "lines")
        )));
    }
    Ok(())
}

/// Print the kept diagnostics to stderr, and a count of the rest.
pub fn print_diagnostics(report: &Report) {
    for d in &report.diagnostics {
        say!("{d}");
    }
    let c = &report.diagnostic_counts;
    let shown = report.diagnostics.len() as u64;
    if c.errors + c.warnings > shown {
        let more = c.errors + c.warnings - shown;
        say!(
            "{} more {} not shown (--max-diagnostics)",
            more,
            if more == 1 { "diagnostic" } else { "diagnostics" }
        );
    }
    if c.errors > 0 {
        let lines: u64 = report.inputs.iter().map(|i| i.lines).sum();
        say!(
            "skipped {} of {} that could not be read; --strict to fail",
            c.errors,
            plural(lines, "line", "lines")
        );
    }
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
