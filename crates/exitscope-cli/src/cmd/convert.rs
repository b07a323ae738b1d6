//! `exitscope convert`: write a trace-cmd `trace.dat` as kernel-style ftrace text.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::Context as _;
use clap::{Args as ClapArgs, ValueEnum};
use exitscope_tracedat::text::{Layout, TextError, write_text};

use crate::exit::{CmdResult, Failure};

/// Text layout of `exitscope convert`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LayoutArg {
    /// function_graph lines when the trace has function-graph records, else event lines.
    Auto,
    /// Event lines as in the `trace` file (`comm-pid [cpu] flags ts: name: args`).
    Events,
    /// function_graph lines (abstime, cpu, proc and tail columns on).
    Graph,
}

/// Arguments of `exitscope convert`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// trace-cmd trace.dat file (version 6 or 7).
    pub input: String,
    /// Output text file; `-` or absent writes to stdout.
    #[arg(short, long)]
    pub output: Option<String>,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
}

/// Run `exitscope convert`.
pub fn run(args: Args) -> CmdResult {
    let data = crate::input::map_file(&args.input)?;
    if !exitscope_tracedat::is_trace_dat(&data) {
        return Err(Failure::input(anyhow::anyhow!(
            "{}: not a trace-cmd trace.dat file",
            args.input
        )));
    }
    let trace = exitscope_tracedat::TraceDat::parse(&data)
        .with_context(|| args.input.clone())
        .map_err(Failure::input)?;
    let layout = match args.layout {
        LayoutArg::Auto => Layout::Auto,
        LayoutArg::Events => Layout::Events,
        LayoutArg::Graph => Layout::Graph,
    };
    let out: Box<dyn Write> = match args.output.as_deref() {
        None | Some("-") => Box::new(io::stdout().lock()),
        Some(p) => Box::new(
            File::create(p).with_context(|| format!("creating {p}")).map_err(Failure::input)?,
        ),
    };
    let mut w = BufWriter::with_capacity(1 << 16, out);
    match write_text(&trace, layout, &mut w) {
        Ok(stats) => {
            for warning in &stats.warnings {
                eprintln!("exitscope: warning: {}: {warning}", args.input);
            }
        }
        Err(TextError::Io(e)) => {
            return Err(Failure::input(anyhow::Error::new(e).context("writing the text")));
        }
        Err(TextError::Read(e)) => {
            return Err(Failure::input(anyhow::Error::new(e).context(args.input.clone())));
        }
    }
    w.flush().context("writing the text").map_err(Failure::input)?;
    Ok(crate::exit::OK)
}
