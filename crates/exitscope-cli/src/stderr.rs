//! Messages on stderr that never panic: a closed stderr (`exitscope run 2>&1 | head -1`)
//! loses the message, not the command (eprintln! panics on EPIPE).

use std::fmt;
use std::io::Write;

/// Write `exitscope: ARGS` and a newline to stderr, ignoring failures.
pub fn line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "exitscope: {args}");
}

/// `say!("...", ...)`: one `exitscope: ` line on stderr (see [`line()`]).
macro_rules! say {
    ($($t:tt)*) => { $crate::stderr::line(format_args!($($t)*)) };
}

/// Write ARGS to stderr as they are (progress pieces), ignoring failures.
pub fn partial(args: fmt::Arguments<'_>) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(args);
    let _ = e.flush();
}
