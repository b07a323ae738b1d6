//! One module per subcommand. Each has an `Args` (clap) and a `run(Args) -> CmdResult`.

pub mod bench;
pub mod compare;
pub mod convert;
pub mod diff;
pub mod export;
pub mod flame;
pub mod html;
pub mod merge;
pub mod record;
pub mod report;
pub mod run;
pub mod top;
