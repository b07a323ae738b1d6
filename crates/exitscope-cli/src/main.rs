//! `exitscope`: measure, trace and explain KVM VM exits. This binary only wires the library
//! crates together: argument parsing, subcommand dispatch, exit codes.

mod cmd;
#[allow(dead_code)] // constructors are used as subcommands land
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measure, trace and explain the latency of KVM VM exits.
#[derive(Debug, Parser)]
#[command(name = "exitscope", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse function_graph or event traces and explain them as call trees and statistics.
    Report(cmd::report::Args),
    /// Write a trace-cmd trace.dat (v6/v7) as kernel-style ftrace text.
    Convert(cmd::convert::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(a) => cmd::report::run(a),
        Command::Convert(a) => cmd::convert::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) if exit::is_broken_pipe(&f.error) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("exitscope: error: {f}");
            ExitCode::from(f.code)
        }
    }
}
