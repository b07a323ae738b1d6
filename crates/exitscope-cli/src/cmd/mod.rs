//! One module per subcommand. Each has an `Args` (clap) and a `run(Args) -> CmdResult`.

pub mod bench;
pub mod diff;
pub mod record;
pub mod report;
pub mod run;
