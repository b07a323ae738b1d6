//! # Brief overview
//!
//! Safe tracefs sessions for `exitscope record`. A [`Tracefs`] is a root directory (the real
//! `/sys/kernel/tracing`, or a directory of plain files in tests); every read, write, `mkdir`
//! and `rmdir` goes through it and every change is logged ([`Tracefs::ops`]). A [`Session`]
//! sets up one recording, preferably in a private instance (`instances/exitscope-<pid>`), else
//! at the top level after saving every file it touches, and undoes it all when it is dropped,
//! stopped, or when the process panics ([`install_panic_hook`]). Signals are turned into a flag
//! by [`SignalWatcher`] so that the ordinary code path can stop and restore.
//!
//! [`Session::capture`] writes the kernel's text (`trace_pipe`) or, with
//! [`CaptureFormat::TraceDat`], trace-cmd's binary trace.dat made of every CPU's ring-buffer
//! pages (`per_cpu/cpuN/trace_pipe_raw`, spliced where the kernel allows it), streamed
//! through per-CPU temp files so memory stays bounded.
//!
//! ```no_run
//! use exitscope_tracefs::{Mode, Session, SessionConfig, Tracefs, StopWhen};
//!
//! let fs = Tracefs::discover(true)?;
//! let cfg = SessionConfig::new(Mode::events(["kvm:kvm_cpuid"]));
//! let mut session = Session::start(&fs, &cfg)?;
//! let path = std::path::Path::new("exitscope.trace");
//! let mut out = std::fs::File::create(path)
//!     .map_err(|e| exitscope_tracefs::Error::Output { path: path.into(), source: e })?;
//! let summary = session.capture(&mut out, path, &mut |_| {
//!     // Stop after the first poll; real callers watch a child, a timer and signals.
//!     Some(StopWhen::Duration)
//! })?;
//! session.finish()?;
//! eprintln!("wrote {}, {} events lost", summary.written(), summary.lost_total());
//! # Ok::<(), exitscope_tracefs::Error>(())
//! ```
//!
//! What "restore" means here: a private instance is simply removed (the kernel drops its
//! settings with it). At the top level, each file is read before its first write and written
//! back afterwards, in a fixed order (tracing stopped first, tracer back to what it was before
//! filters are restored, `tracing_on` last). Nothing is ever reset to a hard-coded default.

mod capture;
mod child;
mod dat;
mod error;
mod fs;
mod ledger;
mod raw;
mod recorder;
mod restore;
mod session;
mod signals;

pub use capture::{CaptureFormat, CaptureSummary, StopWhen};
pub use child::{PausedChild, resolve_command};
pub use error::{Error, errno_name};
pub use exitscope_tracedat::Compression;
pub use fs::{Op, Tracefs};
pub use ledger::STATE_DIR_ENV;
pub use recorder::{Outcome, Recorder, Recording, Target};
pub use restore::{install_panic_hook, reset};
pub use session::{
    DEFAULT_EVENTS, GRAPH_FALLBACK_FUNCTIONS, Mode, Placement, Session, SessionConfig, all_tgids,
    process_tree_threads, tgids_of, threads_of, tree_tgids,
};
pub use signals::SignalWatcher;

/// Print `exitscope: MSG` to stderr, ignoring failures: a closed stderr (`2>&1 | head`) must
/// not turn a restore message into a panic.
pub(crate) fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "exitscope: {msg}");
}
