//! One exit-code policy for every subcommand (see README "Exit codes").

use std::fmt;

/// 0: the command did what was asked.
pub const OK: u8 = 0;
/// 1: the command ran but a check it was asked to make failed.
pub const CHECK_FAILED: u8 = 1;
/// 2: bad input or usage (unreadable trace, unknown flag, `--strict` diagnostics).
pub const BAD_INPUT: u8 = 2;
/// 3: the environment lacks what is needed (no /dev/kvm, no tracefs, tracer refused).
pub const ENVIRONMENT: u8 = 3;
/// 130: interrupted by Ctrl-C, after state was restored.
pub const INTERRUPTED: u8 = 130;

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// What went wrong, with context.
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad input or usage (exit 2).
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: BAD_INPUT, error: error.into() }
    }
    /// The environment cannot do this (exit 3).
    pub fn environment(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: ENVIRONMENT, error: error.into() }
    }
    /// A check failed (exit 1).
    pub fn check(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: CHECK_FAILED, error: error.into() }
    }
    /// Interrupted after cleanup (exit 130).
    pub fn interrupted(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: INTERRUPTED, error: error.into() }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: BAD_INPUT, error }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure { code: BAD_INPUT, error: error.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// What a subcommand returns.
pub type CmdResult = Result<u8, Failure>;

/// True when any cause in the chain is a broken pipe (`exitscope report | head`), which
/// ends the process quietly with 0.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
