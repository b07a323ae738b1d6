//! Why an input could not be read. Every variant names the input; binary inputs name the
//! byte offset, and a file cut short says how long it is and what was expected there.

use std::io;

/// The formats exitscope reads, for messages.
pub(crate) const EXPECTED: &str = "expected ftrace text (function_graph or event lines), a \
                                   trace-cmd trace.dat or a perf.data, plain or compressed with \
                                   gzip or zstd";

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened.
    #[error("cannot open {name}: {}", plain(source))]
    Open {
        /// The input as given.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// A directory was given where a trace file was expected.
    #[error("{name} is a directory, expected a trace file")]
    IsDirectory {
        /// The input as given.
        name: String,
    },
    /// Reading failed part-way.
    #[error("reading {name} at byte {offset}: {}", plain(source))]
    Read {
        /// The input as given.
        name: String,
        /// Bytes read before the failure (of the compressed stream, for compressed inputs).
        offset: u64,
        /// The OS error.
        source: io::Error,
    },
    /// A gzip or zstd input did not decompress.
    #[error(
        "{name}: {algo} data is corrupt or cut short ({offset} bytes decompressed before it): {msg}"
    )]
    Decompress {
        /// The input as given.
        name: String,
        /// `gzip` or `zstd`.
        algo: &'static str,
        /// Decompressed bytes read before the failure.
        offset: u64,
        /// The decoder's message.
        msg: String,
    },
    /// The input holds no trace: empty, only whitespace, binary data of no known format, text
    /// without a single trace line, or a valid file with no records. The same error, with the
    /// same wording, for every command.
    #[error("{name} holds no trace: {why}; {EXPECTED}")]
    NoTrace {
        /// The input as given.
        name: String,
        /// What it holds instead (`it is empty`, `it holds only whitespace`, ...).
        why: String,
    },
    /// trace.dat that could not be read.
    #[error("{name}: {}", tracedat_message(error, *size))]
    TraceDat {
        /// The input as given.
        name: String,
        /// The file's size in bytes (after decompression).
        size: u64,
        /// What the reader found, with its byte offset (its text is part of this message, so
        /// it is not a `source()`).
        error: exitscope_tracedat::Error,
    },
    /// perf.data that could not be read.
    #[error("{name} ({size} bytes): {error}")]
    PerfData {
        /// The input as given.
        name: String,
        /// The file's size in bytes (after decompression).
        size: u64,
        /// What the reader found, with its byte offset (part of this message, not a
        /// `source()`).
        error: exitscope_perfdata::Error,
    },
    /// A format that is recognised but not read by this build.
    #[error("{name} is {what}, which this build of exitscope cannot read yet")]
    Unsupported {
        /// The input as given.
        name: String,
        /// The format (`perf.data`).
        what: &'static str,
    },
}

impl Error {
    /// The input this error is about.
    pub fn input(&self) -> &str {
        match self {
            Error::Open { name, .. }
            | Error::IsDirectory { name }
            | Error::Read { name, .. }
            | Error::Decompress { name, .. }
            | Error::NoTrace { name, .. }
            | Error::TraceDat { name, .. }
            | Error::PerfData { name, .. }
            | Error::Unsupported { name, .. } => name,
        }
    }

    /// The OS error behind this one, if any (a broken pipe on stdin, for example).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Open { source, .. } | Error::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `No such file or directory` without Rust's ` (os error 2)` suffix.
fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The reader's message, plus the file's size when the structure it wanted lies past the end
/// (a file cut short while copying or recording).
fn tracedat_message(e: &exitscope_tracedat::Error, size: u64) -> String {
    use exitscope_tracedat::Error as E;
    match e {
        E::Truncated { offset, what, needed, available } => {
            let end = offset.saturating_add(*needed);
            if *offset >= size {
                format!(
                    "the file is cut short: it is {size} bytes long, but {needed} bytes of \
                     {what} were expected at byte {offset:#x}, past its end (truncated)"
                )
            } else if end > size || available < needed {
                format!(
                    "the file is cut short: it is {size} bytes long, but {needed} bytes of \
                     {what} were expected at byte {offset:#x} and only {available} are there \
                     (truncated)"
                )
            } else {
                e.to_string()
            }
        }
        E::Malformed { offset, .. } | E::Page { offset, .. } | E::Decompress { offset, .. }
            if *offset >= size =>
        {
            format!("{e}; the file is only {size} bytes long, so it was cut short (truncated)")
        }
        _ => e.to_string(),
    }
}
