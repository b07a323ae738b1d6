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
/// 4: the traced command failed (exited non-zero, was killed by a signal, or its test did
/// not complete); the recording is kept.
pub const TARGET_FAILED: u8 = 4;
/// 130: interrupted by Ctrl-C, after state was restored (128 + the signal: 143 for SIGTERM,
/// 129 for SIGHUP).
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
    /// Interrupted by signal `sig` after cleanup (exit 128 + sig: 130, 143, 129).
    pub fn signal(sig: i32) -> Self {
        let name = match sig {
            2 => "SIGINT",
            15 => "SIGTERM",
            1 => "SIGHUP",
            _ => "a signal",
        };
        let code = u8::try_from(sig).ok().and_then(|s| 128u8.checked_add(s)).unwrap_or(INTERRUPTED);
        Failure { code, error: anyhow::anyhow!("interrupted by {name}; tracefs restored") }
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
    /// The error and its causes, each cause only when it adds something: library errors
    /// already print their OS error, which is also their `source()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut msg = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            let c = cause.to_string();
            let core = c.find(" (os error ").map_or(c.as_str(), |i| &c[..i]);
            if !msg.contains(core) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        f.write_str(&msg)
    }
}

/// What a subcommand returns.
pub type CmdResult = Result<u8, Failure>;

/// True when any cause in the chain is a broken pipe (`exitscope report | head`), which
/// ends the process quietly with 0.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(io_is_broken_pipe))
}

/// An EPIPE, also when wrapped in an `io::Error::other(serde_json::Error)` (whose `source()`
/// skips the io error it holds).
fn io_is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
        || e.get_ref().is_some_and(|inner| {
            inner.downcast_ref::<std::io::Error>().is_some_and(io_is_broken_pipe)
                || inner
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
                    == Some(std::io::ErrorKind::BrokenPipe)
        })
}
