//! One module per subcommand. Each has an `Args` (clap) and a `run(Args) -> CmdResult`.

pub mod convert;
pub mod report;
