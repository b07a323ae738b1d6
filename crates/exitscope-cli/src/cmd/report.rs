//! `exitscope report`: parse traces and explain them.

use clap::Args as ClapArgs;

use crate::exit::CmdResult;

/// Arguments of `exitscope report`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Trace files (ftrace text); `-` reads stdin.
    #[arg(required = true)]
    pub files: Vec<String>,
}

/// Run `exitscope report`.
pub fn run(_args: Args) -> CmdResult {
    Ok(crate::exit::OK)
}
