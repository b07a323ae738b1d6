//! `exitscope`: measure, trace and explain KVM VM exits. This binary only wires the library
//! crates together: argument parsing, subcommand dispatch, exit codes.

#[macro_use]
mod stderr;
mod args;
mod cmd;
mod exit;
mod inputs;
mod keys;
mod kut;
mod output;
mod progress;
mod recording;
mod text;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measure, trace and explain the latency of KVM VM exits.
#[derive(Debug, Parser)]
#[command(
    name = "exitscope",
    version,
    about = "Measure, trace and explain the latency of KVM VM exits.",
    max_term_width = 100,
    after_help = "\
Examples:
  exitscope run cpuid                       # bench + record + report in one go
  exitscope report tests/data/seed/cpuid-amd.fgraph.txt
  exitscope record --events -o t.txt -- ./my-vmm

Exit codes: 0 ok, 1 a check failed, 2 bad input or usage, 3 the environment lacks what is
needed, 4 the traced command failed, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole experiment in one command: run a built-in benchmark untraced, then record its
    /// exit path (function_graph where the kernel allows it, else kvm tracepoints) and explain it.
    Run(cmd::run::Args),
    /// Run VM-exit microbenchmarks on exitscope's built-in VMM (no QEMU needed).
    Bench(cmd::bench::Args),
    /// Record the VM-exit path from tracefs (function_graph or kvm tracepoints) to a file,
    /// leaving tracefs exactly as it was.
    Record(cmd::record::Args),
    /// Parse function_graph or event traces (text or trace.dat) and explain them as call trees
    /// and statistics.
    Report(cmd::report::Args),
    /// Compare two traces call path by call path (AMD vs Intel, before vs after).
    Diff(cmd::diff::Args),
    /// Compare two bench results: environment differences first, then per test the medians,
    /// the shift B − A with its 95 % interval and a verdict.
    Compare(cmd::compare::Args),
    /// One self-contained HTML report (tables, histograms, flame graph); `--diff A B` to compare.
    Html(cmd::html::Args),
    /// Flame graph (SVG) or folded stacks of the merged call tree; `--diff A B` for a
    /// differential flame graph.
    Flame(cmd::flame::Args),
    /// Export a timeline of every call and exit (`--perfetto`: Perfetto protobuf for `-o
    /// *.pftrace`, else Chrome trace-event JSON).
    Export(cmd::export::Args),
    /// Write a trace-cmd trace.dat (v6/v7) as kernel-style ftrace text.
    Convert(cmd::convert::Args),
    /// A live table of VM exits per reason (count, rate, percentiles), refreshed every
    /// interval; `--json` for one JSON line per interval. Tracefs is restored on exit.
    Top(cmd::top::Args),
    /// Combine `report --json` documents from many hosts into one (counts add, percentiles
    /// from the merged histograms; `--by host` keeps a per-host breakdown).
    Merge(cmd::merge::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(a) => cmd::report::run(a),
        Command::Flame(a) => cmd::flame::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Html(a) => cmd::html::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Record(a) => cmd::record::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Top(a) => cmd::top::run(a),
        Command::Merge(a) => cmd::merge::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // A closed stdout (`exitscope report big.txt | head`) ends quietly; tracefs has been
        // restored by then (sessions restore before errors travel up).
        Err(f) if exit::is_broken_pipe(&f.error) => ExitCode::SUCCESS,
        Err(f) => {
            say!("error: {f}");
            ExitCode::from(f.code)
        }
    }
}
