//! One module per subcommand. Each has an `Args` (clap) and a `run(Args) -> CmdResult`.

pub mod export;
pub mod flame;
pub mod html;
pub mod report;
