//! The kvm-event table (`perf kvm stat report` style) of a report.

use std::io::{self, Write};

use exitscope_analyze::report::Report;

/// Write the per-exit-reason table when the report has events; nothing otherwise.
pub fn write(report: &Report, w: &mut impl Write) -> io::Result<()> {
    let Some(analysis) = &report.event_analysis else { return Ok(()) };
    // The table code reads the counts from the event report itself; put them back.
    let mut full = analysis.clone();
    full.events.clone_from(&report.events);
    full.exit_reasons.clone_from(&report.exit_reasons);
    exitscope_analyze::kvm_events::render_table(&full, w)
}
