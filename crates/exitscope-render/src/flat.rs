//! The flat per-function profile as a table, largest inclusive total first.

use std::io::{self, Write};

use exitscope_analyze::report::Report;

use crate::units::opt_duration;
use crate::{Style, colors};

/// Write the flat profile.
pub fn write(report: &Report, style: &Style, w: &mut impl Write) -> io::Result<()> {
    let header = format!(
        "{:>8} {:>8} {:>11} {:>11} {:>11} {:>11} {:>11}  FUNCTION",
        "CALLS", "OUTER", "TOTAL", "SELF", "MEAN", "MIN", "MAX"
    );
    writeln!(w, "{}", style.paint(colors::HEADER, &header))?;
    for e in &report.flat {
        let name = match &e.module {
            Some(m) => format!("{} {}", e.function, style.paint(colors::MODULE, &format!("[{m}]"))),
            None => e.function.clone(),
        };
        writeln!(
            w,
            "{:>8} {:>8} {:>11} {:>11} {:>11} {:>11} {:>11}  {name}",
            e.calls,
            e.count,
            opt_duration(e.total_ns),
            opt_duration(e.self_ns),
            opt_duration(e.mean_ns),
            opt_duration(e.min_ns),
            opt_duration(e.max_ns),
        )?;
    }
    crate::tree::footer(report, w)
}
