//! `exitscope report`: parse traces and explain them.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};

use anyhow::{Context, anyhow};
use clap::{Args as ClapArgs, ValueEnum};

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputSink, InputSummary};
use exitscope_render::Style;

use crate::exit::{self, CmdResult, Failure};

/// Arguments of `exitscope report`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Trace files: ftrace text (`trace`, `trace_pipe`, `trace-cmd report` output); `-` reads
    /// stdin. Several files are analysed together.
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
    /// Fail (exit 2) if any line could not be read, instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Print at most this many diagnostics (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_diagnostics: usize,
    /// Write the output here instead of stdout (`-` = stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Color the terminal tree.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to color output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When writing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The output sink: a file created up front (so a bad path fails before the work), or stdout.
pub fn open_output(path: Option<&str>) -> Result<(Box<dyn Write>, bool), Failure> {
    match path {
        None | Some("-") => {
            let tty = io::stdout().is_terminal();
            Ok((Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())), tty))
        }
        Some(p) => {
            let f = File::create(p).with_context(|| format!("cannot create output file {p}"))?;
            Ok((Box::new(BufWriter::new(f)), false))
        }
    }
}

/// Resolve `--color` against the output and `NO_COLOR`.
pub fn style_for(choice: ColorChoice, to_tty: bool) -> Style {
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => to_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    Style { color }
}

/// Open an input: a file, or stdin for `-`.
pub fn open_input(name: &str) -> Result<Box<dyn Read>, Failure> {
    if name == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(name).with_context(|| format!("cannot open {name}"))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Failure::input(anyhow!("{name} is a directory, expected a trace file")));
    }
    Ok(Box::new(f))
}

/// trace-cmd's magic: `0x17 0x08 0x44` then `tracing`.
const TRACE_DAT_MAGIC: &[u8] = b"\x17\x08\x44tracing";

/// Feed every input into `analysis`, checking each is a readable trace. trace-cmd's
/// `trace.dat` is recognised by its magic and read natively; anything else is ftrace text.
pub fn analyse_inputs(files: &[String], analysis: &mut Analysis<'_>) -> Result<(), Failure> {
    for name in files {
        let mut rdr = open_input(name)?;
        // Sniff the first bytes, then hand the text parser those bytes plus the rest.
        let mut head = Vec::with_capacity(TRACE_DAT_MAGIC.len());
        (&mut rdr)
            .take(TRACE_DAT_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .with_context(|| format!("reading {name}"))?;
        if head == TRACE_DAT_MAGIC {
            analyse_trace_dat(name, head, rdr, analysis)?;
            continue;
        }
        analysis.begin_input(name, exitscope_model::InputFormat::FtraceText);
        let s = exitscope_ftrace::parse_reader(name, io::Cursor::new(head).chain(rdr), analysis)
            .with_context(|| format!("reading {name}"))?;
        analysis.end_input(&InputSummary {
            bytes: s.bytes,
            lines: s.lines,
            records: s.records,
            error_lines: s.error_lines,
            ignored_lines: s.ignored_lines,
            ..Default::default()
        });
        if s.lines == 0 {
            return Err(Failure::input(anyhow!(
                "{name} is empty: expected ftrace text or trace.dat"
            )));
        }
        if s.records == 0 && s.error_lines > 0 {
            return Err(Failure::input(anyhow!(
                "{name} does not look like an ftrace trace: none of its {} lines could be read \
                 (expected function_graph lines like ` 0)   0.080 us    |  f();`, event lines \
                 like `comm-123 [000] 1.000000: name: ...`, or a trace-cmd trace.dat)",
                s.lines
            )));
        }
        if s.error_lines > s.record_lines {
            eprintln!(
                "exitscope: warning: {name}: {} of its {} lines could not be read and only {} \
                 could; is it an ftrace trace?",
                s.error_lines, s.lines, s.record_lines
            );
        }
    }
    Ok(())
}

/// Read a trace.dat: zero-copy from a memory map for files, from memory for stdin.
fn analyse_trace_dat(
    name: &str,
    head: Vec<u8>,
    mut rdr: Box<dyn Read>,
    analysis: &mut Analysis<'_>,
) -> Result<(), Failure> {
    let owned;
    let mapped;
    let data: &[u8] = if name == "-" {
        let mut all = head;
        rdr.read_to_end(&mut all).with_context(|| format!("reading {name}"))?;
        owned = all;
        &owned
    } else {
        drop(rdr);
        mapped = crate::input::map_file(name)?;
        &mapped
    };
    analysis.begin_input(name, exitscope_model::InputFormat::TraceDat);
    let s = exitscope_tracedat::read(data, name, analysis)
        .with_context(|| name.to_string())
        .map_err(Failure::input)?;
    analysis.end_input(&InputSummary {
        bytes: data.len() as u64,
        records: s.records,
        ..Default::default()
    });
    Ok(())
}

/// Print the kept diagnostics to stderr, and a count of the rest.
pub fn print_diagnostics(report: &exitscope_analyze::report::Report) {
    for d in &report.diagnostics {
        eprintln!("exitscope: {d}");
    }
    let c = &report.diagnostic_counts;
    let shown = report.diagnostics.len() as u64;
    if c.errors + c.warnings > shown {
        eprintln!(
            "exitscope: {} more diagnostic(s) not shown (--max-diagnostics)",
            c.errors + c.warnings - shown
        );
    }
    if c.errors > 0 {
        let lines: u64 = report.inputs.iter().map(|i| i.lines).sum();
        eprintln!(
            "exitscope: skipped {} of {} lines that could not be read; --strict to fail",
            c.errors, lines
        );
    }
}

/// Run `exitscope report`.
pub fn run(args: Args) -> CmdResult {
    let (mut out, tty) = open_output(args.output.as_deref())?;
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = args.max_diagnostics;
    let mut analysis = Analysis::new(opts);
    analyse_inputs(&args.files, &mut analysis)?;
    let report = analysis.finish();
    print_diagnostics(&report);
    if args.strict && report.diagnostic_counts.errors > 0 {
        return Err(Failure::input(anyhow!(
            "{} line(s) could not be read (--strict)",
            report.diagnostic_counts.errors
        )));
    }
    let style = style_for(args.color, tty);
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
    out.flush()?;
    Ok(exit::OK)
}
