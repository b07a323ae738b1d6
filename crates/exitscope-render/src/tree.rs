//! The merged call tree as a terminal table in function_graph's layout:
//!
//! ```text
//!  COUNT       MEAN        MIN        MAX      TOTAL       SELF   %ROOT  FUNCTION CALLS
//!      1   4.278 us   4.278 us   4.278 us   4.278 us   0.541 us  100.0%  vcpu_enter_guest [kvm]() {
//!      1   0.080 us   0.080 us   0.080 us   0.080 us   0.080 us    1.9%    svm_prepare_guest_switch [kvm_amd]();
//!                                                                          }
//! ```

use std::io::{self, Write};

use exitscope_analyze::report::{Report, TreeNode};

use crate::units::{opt_duration, percent};
use crate::{Style, colors};

const HEADER: &str =
    "   COUNT        MEAN         MIN         MAX       TOTAL        SELF   %ROOT  FUNCTION CALLS";

/// Write the whole report: header, tree, and a footer on what was left out.
pub fn write(report: &Report, style: &Style, w: &mut impl Write) -> io::Result<()> {
    writeln!(w, "{}", style.paint(colors::HEADER, HEADER))?;
    for root in &report.tree {
        let root_total = root.total_ns.unwrap_or(0);
        node(root, 0, root_total, style, w)?;
        writeln!(w)?;
    }
    footer(report, w)
}

fn node(
    n: &TreeNode,
    depth: usize,
    root_total: u64,
    style: &Style,
    w: &mut impl Write,
) -> io::Result<()> {
    let indent = "  ".repeat(depth);
    let name = match &n.module {
        Some(m) => format!("{} {}", n.function, style.paint(colors::MODULE, &format!("[{m}]"))),
        None => n.function.clone(),
    };
    let irq = if n.interrupt {
        format!("  {}", style.paint(colors::IRQ, "<irq>"))
    } else {
        String::new()
    };
    let pct = n.total_ns.map_or_else(|| "-".to_string(), |t| percent(t, root_total));
    let self_col = format!("{:>11}", opt_duration(n.self_ns));
    let self_col = match (n.self_ns, root_total) {
        (Some(s), t) if t > 0 && s * 10 > t => style.paint(colors::HOT, &self_col),
        (Some(s), t) if t > 0 && s * 50 > t => style.paint(colors::WARM, &self_col),
        _ => self_col,
    };
    let stats = format!(
        "{:>8} {:>11} {:>11} {:>11} {:>11} {} {:>7}",
        n.count,
        opt_duration(n.mean_ns),
        opt_duration(n.min_ns),
        opt_duration(n.max_ns),
        opt_duration(n.total_ns),
        self_col,
        pct
    );
    if n.children.is_empty() {
        writeln!(w, "{stats}  {indent}{name}();{irq}")?;
    } else {
        writeln!(w, "{stats}  {indent}{name}() {{{irq}")?;
        for c in &n.children {
            node(c, depth + 1, root_total, style, w)?;
        }
        writeln!(
            w,
            "{:>width$}  {indent}{}",
            "",
            style.paint(colors::DIM, "}"),
            width = stats_width()
        )?;
    }
    Ok(())
}

fn stats_width() -> usize {
    8 + 6 * 12 + 8
}

/// What did not go into the numbers, as `#` lines.
pub fn footer(report: &Report, w: &mut impl Write) -> io::Result<()> {
    let inputs: Vec<&str> = report.inputs.iter().map(|i| i.name.as_str()).collect();
    let lines: u64 = report.inputs.iter().map(|i| i.lines).sum();
    let records: u64 = report.inputs.iter().map(|i| i.records).sum();
    // Binary inputs (trace.dat) have records, not lines.
    let size = if report.inputs.iter().all(|i| i.format == "ftrace-text") {
        format!("{lines} lines")
    } else {
        format!("{lines} lines, {records} records")
    };
    writeln!(
        w,
        "# {} root call{} from {} ({size})",
        report.roots,
        if report.roots == 1 { "" } else { "s" },
        inputs.join(", "),
    )?;
    if report.incomplete.count > 0 {
        let mut by: Vec<String> = report
            .incomplete
            .functions
            .iter()
            .take(5)
            .map(|f| format!("{} x{} ({})", f.function, f.count, f.reason.replace('_', " ")))
            .collect();
        if report.incomplete.functions.len() > 5 {
            by.push("...".into());
        }
        writeln!(
            w,
            "# incomplete: {} call{} never returned, not in the statistics: {}",
            report.incomplete.count,
            if report.incomplete.count == 1 { "" } else { "s" },
            by.join(", ")
        )?;
    }
    if report.orphans.count > 0 {
        writeln!(
            w,
            "# orphans: {} return{} without an entry (trace started mid-call), not in the statistics",
            report.orphans.count,
            if report.orphans.count == 1 { "" } else { "s" }
        )?;
    }
    if report.lost_events.markers > 0 {
        writeln!(
            w,
            "# lost events: {} marker{}, {} events counted{}",
            report.lost_events.markers,
            if report.lost_events.markers == 1 { "" } else { "s" },
            report.lost_events.events,
            if report.lost_events.uncounted_markers > 0 {
                " (some markers had no count)"
            } else {
                ""
            }
        )?;
    }
    if !report.percentiles_exact {
        writeln!(w, "# percentiles are bucketed (relative error < 0.2 %)")?;
    }
    Ok(())
}
