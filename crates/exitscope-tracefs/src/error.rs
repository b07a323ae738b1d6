//! Errors: each names the tracefs file and the errno.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, changing, recording from or restoring tracefs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tracefs mount was found and mounting was not allowed or failed.
    #[error(
        "no tracefs found (looked at {looked}); as root: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    NotFound {
        /// The places looked at, comma-separated.
        looked: String,
    },
    /// `mount -t tracefs` failed.
    #[error("mounting tracefs at {}: {} ({source})", path.display(), errno_name(source))]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A tracefs file could not be read.
    #[error("reading {}: {} ({source})", path.display(), errno_name(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A tracefs file could not be written.
    #[error("writing {value:?} to {}: {} ({source})", path.display(), errno_name(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused to switch to the tracer (EPERM under lockdown, EBUSY, ...).
    #[error(
        "the kernel refused tracer {tracer}: writing it to {} failed with {} ({source})",
        path.display(), errno_name(source)
    )]
    TracerRefused {
        /// The tracer (`function_graph`).
        tracer: String,
        /// The `current_tracer` file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The tracer is not compiled in or not allowed (`available_tracers` does not list it).
    #[error("tracer {tracer} is not available: {} lists only \"{available}\"", path.display())]
    TracerUnavailable {
        /// The tracer.
        tracer: String,
        /// The `available_tracers` file.
        path: PathBuf,
        /// Its content.
        available: String,
    },
    /// An instance directory could not be created.
    #[error("creating tracefs instance {}: {} ({source})", path.display(), errno_name(source))]
    Mkdir {
        /// The instance directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An instance directory could not be removed.
    #[error("removing tracefs instance {}: {} ({source})", path.display(), errno_name(source))]
    Rmdir {
        /// The instance directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The top level is in use by someone else's tracing session and no instance can be used.
    #[error(
        "tracefs top level is in use ({what}); exitscope will not change someone else's session"
    )]
    Busy {
        /// What shows that it is in use (`current_tracer is function`).
        what: String,
    },
    /// An event asked for does not exist.
    #[error("event {event} does not exist ({} is missing)", path.display())]
    UnknownEvent {
        /// `system:event`.
        event: String,
        /// The `enable` file that is missing.
        path: PathBuf,
    },
    /// A graph filter reads back empty after a write: tracing now would trace every function.
    #[error(
        "{} is empty after writing {value:?}: the function is not traceable (inlined or \
         notrace); refusing to trace every function",
        path.display()
    )]
    GraphFilterEmpty {
        /// The `set_graph_function` file.
        path: PathBuf,
        /// What was written.
        value: String,
    },
    /// None of the requested graph functions (nor the fallbacks) is traceable.
    #[error(
        "none of {requested} is traceable ({} does not list them); try --events",
        path.display()
    )]
    NoTraceableFunction {
        /// The functions asked for and the fallbacks tried, comma-separated.
        requested: String,
        /// `available_filter_functions`.
        path: PathBuf,
    },
    /// Some files could not be restored; each is listed.
    #[error("restoring tracefs failed for: {failures}")]
    Restore {
        /// `path: error` items, separated by `; `.
        failures: String,
    },
    /// The output file could not be written.
    #[error("writing {}: {} ({source})", path.display(), errno_name(source))]
    Output {
        /// The output file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Starting or controlling the traced command failed.
    #[error("{what}: {} ({source})", errno_name(source))]
    Process {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The command to trace cannot be run.
    #[error("cannot run {command}: {why}")]
    CommandNotFound {
        /// The command as given.
        command: String,
        /// `no such file`, `not found on PATH`, `not an executable file`.
        why: String,
    },
    /// The process given with `--pid` does not exist.
    #[error("no such process: {pid}")]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
    /// The top level holds settings an exitscope that was killed could not restore.
    #[error(
        "tracefs top level is in use ({what}), by changes exitscope pid {pid} made and could not \
         undo (it was killed); `exitscope record --reset` restores what it changed"
    )]
    Leftover {
        /// What shows that it is in use.
        what: String,
        /// The pid of the exitscope that made the changes.
        pid: u32,
    },
    /// A bad argument (event spec, pid).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The errno behind this error, if it comes from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Mount { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::TracerRefused { source, .. }
            | Error::Mkdir { source, .. }
            | Error::Rmdir { source, .. }
            | Error::Output { source, .. }
            | Error::Process { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the environment cannot do this (no tracefs, tracer refused or missing,
    /// permission denied, top level busy) rather than the input being wrong.
    pub fn is_environment(&self) -> bool {
        match self {
            Error::NotFound { .. }
            | Error::Mount { .. }
            | Error::TracerRefused { .. }
            | Error::TracerUnavailable { .. }
            | Error::Busy { .. }
            | Error::Leftover { .. }
            | Error::GraphFilterEmpty { .. }
            | Error::NoTraceableFunction { .. }
            | Error::Mkdir { .. } => true,
            Error::Read { source, .. } | Error::Write { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::ENOENT | libc::ENODEV | libc::EBUSY)
            ),
            _ => false,
        }
    }
}

/// The symbolic name of an OS error (`EPERM`), or `errno N`, or `-` when it has none.
pub fn errno_name(e: &io::Error) -> String {
    let Some(n) = e.raw_os_error() else { return "-".to_owned() };
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {n}"),
    };
    name.to_owned()
}
