//! `exitscope convert`: write a trace-cmd `trace.dat` as kernel-style ftrace text.

use clap::{Args as ClapArgs, ValueEnum};
use exitscope_ingest::Sniffed;
use exitscope_model::InputFormat;
use exitscope_tracedat::text::{Layout, TextError, write_text};

use crate::args::OutputFile;
use crate::exit::{CmdResult, Failure};
use crate::output::Output;

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
#[command(after_help = "\
Examples:
  exitscope convert trace.dat -o trace.txt
  exitscope convert --layout events trace.dat.zst | less")]
pub struct Args {
    /// trace-cmd trace.dat file (version 6 or 7; plain or gzip/zstd; `-` reads stdin).
    #[arg(value_name = "FILE")]
    pub input: String,
    #[command(flatten)]
    pub output: OutputFile,
    /// Output layout.
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,
}

/// Run `exitscope convert`.
pub fn run(args: Args) -> CmdResult {
    let name = &args.input;
    let data = exitscope_ingest::load(name).map_err(Failure::input)?;
    if let Some(e) = exitscope_ingest::no_trace(name, &data) {
        return Err(Failure::input(e));
    }
    match data.sniffed {
        Sniffed::Binary(InputFormat::TraceDat) => {}
        Sniffed::Text => {
            // Not a trace at all, or text that needs no conversion.
            let opts = exitscope_ingest::Options::default();
            exitscope_ingest::read_bytes(name, &data, &mut exitscope_ingest::Discard, &opts)
                .map_err(Failure::input)?;
            return Err(Failure::input(anyhow::anyhow!(
                "{name} is ftrace text, not a trace-cmd trace.dat file: every exitscope \
                 command reads it as it is"
            )));
        }
        _ => {
            return Err(Failure::input(anyhow::anyhow!("{name}: not a trace-cmd trace.dat file")));
        }
    }
    let dat_error = |error| {
        Failure::input(exitscope_ingest::Error::TraceDat {
            name: name.clone(),
            size: data.len() as u64,
            error,
        })
    };
    let trace = exitscope_tracedat::TraceDat::parse(&data).map_err(dat_error)?;
    let layout = match args.layout {
        LayoutArg::Auto => Layout::Auto,
        LayoutArg::Events => Layout::Events,
        LayoutArg::Graph => Layout::Graph,
    };
    let mut out = Output::create(args.output.path())?;
    // The recording host goes along, as `record` writes it in text: the first line.
    if let Some(tag) = &trace.header.host_tag {
        std::io::Write::write_all(&mut out, format!("# {tag}\n").as_bytes())?;
    }
    match write_text(&trace, layout, &mut out) {
        Ok(stats) => {
            for warning in &stats.warnings {
                eprintln!("exitscope: warning: {name}: {warning}");
            }
        }
        Err(TextError::Io(e)) => {
            return Err(Failure::input(anyhow::Error::new(e).context("writing the text")));
        }
        Err(TextError::Read(e)) => return Err(dat_error(e)),
    }
    out.commit()?;
    Ok(crate::exit::OK)
}
