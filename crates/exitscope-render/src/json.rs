//! The report as one JSON document (schema in `exitscope_analyze::report`).

use std::io::{self, Write};

use serde::Serialize;

/// Write `value` as pretty JSON with a final newline.
pub fn write(value: &impl Serialize, w: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value).map_err(io::Error::other)?;
    writeln!(w)
}
