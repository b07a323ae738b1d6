//! The side-by-side diff tree (`exitscope diff A B`).
//!
//! ```text
//! # delta = B - A (mean per call); positive means B is slower; ratio = B / A
//!          A MEAN (N)          B MEAN (N)         DELTA    RATIO     SELF DELTA  FUNCTION CALLS
//!        4.278 us (1)        5.684 us (1)     +1.406 us    ×1.33      +0.248 us  vcpu_enter_guest [kvm]() {
//! ```

use std::io::{self, Write};

use exitscope_analyze::diff::{DiffNode, DiffReport, DiffSide, DiffStatus};

use crate::units::duration;
use crate::{Style, colors};

/// Width of the A and B columns: `mean (count)`.
const SIDE: usize = 19;
/// Width of everything before the function column.
const STATS: usize = SIDE * 2 + 13 + 8 + 14 + 4;

fn header() -> String {
    format!(
        "{:>SIDE$} {:>SIDE$} {:>13} {:>8} {:>14}  FUNCTION CALLS",
        "A MEAN (N)", "B MEAN (N)", "DELTA", "RATIO", "SELF DELTA"
    )
}

/// Faster in B.
const FASTER: &str = "32";

/// A signed duration: `+1.406 us`, `-0.175 us`, `0.000 us`.
pub fn signed_duration(ns: i64) -> String {
    let sign = match ns.signum() {
        1 => "+",
        -1 => "-",
        _ => "",
    };
    format!("{sign}{}", duration(ns.unsigned_abs()))
}

fn side(s: Option<&DiffSide>) -> String {
    match s {
        Some(s) => match s.mean_ns {
            Some(m) => format!("{} ({})", duration(m), s.count),
            None => format!("- ({})", s.count),
        },
        None => "-".to_string(),
    }
}

fn name(n: &DiffNode, style: &Style) -> String {
    let paint = |s: &DiffSide| match &s.module {
        Some(m) => format!("{} {}", s.function, style.paint(colors::MODULE, &format!("[{m}]"))),
        None => s.function.clone(),
    };
    match (&n.a, &n.b) {
        (Some(a), Some(b)) if a.display_name() == b.display_name() => paint(a),
        (Some(a), Some(b)) => format!("{} \u{2194} {}", paint(a), paint(b)),
        (Some(a), None) => paint(a),
        (None, Some(b)) => paint(b),
        (None, None) => n.key.clone(),
    }
}

/// Write the header, the aligned tree and notes on what was collapsed or left out.
pub fn write(d: &DiffReport, style: &Style, w: &mut impl Write) -> io::Result<()> {
    writeln!(w, "# A: {}   B: {}", d.a.names.join(", "), d.b.names.join(", "))?;
    writeln!(
        w,
        "# \u{394} = B \u{2212} A (mean per call); positive means B is slower; ratio = B / A{}",
        if d.normalized {
            "; vendor names normalized (svm_* \u{2194} vmx_*, kvm_amd \u{2194} kvm_intel, ...)"
        } else {
            "; names compared as they are"
        }
    )?;
    writeln!(w, "{}", style.paint(colors::HEADER, &header()))?;
    for root in &d.tree {
        node(root, 0, style, w)?;
        writeln!(w)?;
    }
    for c in &d.collapsed {
        let name = match &c.module {
            Some(m) => format!("{} [{m}]", c.function),
            None => c.function.clone(),
        };
        writeln!(
            w,
            "# collapsed in {}: {name} x{} (self {}{})",
            c.side.to_uppercase(),
            c.count,
            duration(c.self_ns),
            if c.at_root { ", a root: not compared" } else { ", added to its caller" }
        )?;
    }
    for (label, i) in [("A", &d.a), ("B", &d.b)] {
        if i.split_roots > 0 {
            writeln!(
                w,
                "# {label}: {} bigger root(s) cut into {} per-exit vcpu_enter_guest units; {} \
                 outside every exit is not compared",
                i.split_roots,
                i.exits,
                duration(i.unattributed_ns)
            )?;
        }
    }
    Ok(())
}

fn node(n: &DiffNode, depth: usize, style: &Style, w: &mut impl Write) -> io::Result<()> {
    let indent = "  ".repeat(depth);
    let delta = n.delta_ns.map_or_else(|| "-".to_string(), signed_duration);
    let delta_col = format!("{delta:>13}");
    let delta_col = match (n.status, n.delta_ns) {
        (DiffStatus::Both, Some(d)) if d > 0 => style.paint(colors::HOT, &delta_col),
        (DiffStatus::Both, Some(d)) if d < 0 => style.paint(FASTER, &delta_col),
        _ => delta_col,
    };
    let ratio = n.ratio.map_or_else(|| "-".to_string(), |r| format!("\u{d7}{r:.2}"));
    let self_delta = n.self_delta_ns.map_or_else(|| "-".to_string(), signed_duration);
    let stats = format!(
        "{:>SIDE$} {:>SIDE$} {delta_col} {ratio:>8} {self_delta:>14}",
        side(n.a.as_ref()),
        side(n.b.as_ref()),
    );
    let label = name(n, style);
    let mark = match n.status {
        DiffStatus::Both => String::new(),
        DiffStatus::OnlyA => format!("  {}", style.paint(colors::WARM, "(only in A)")),
        DiffStatus::OnlyB => format!("  {}", style.paint(colors::WARM, "(only in B)")),
    };
    if n.children.is_empty() {
        writeln!(w, "{stats}  {indent}{label}();{mark}")
    } else {
        writeln!(w, "{stats}  {indent}{label}() {{{mark}")?;
        for c in &n.children {
            node(c, depth + 1, style, w)?;
        }
        writeln!(w, "{:>STATS$}  {indent}{}", "", style.paint(colors::DIM, "}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_durations() {
        assert_eq!(signed_duration(1406), "+1.406 us");
        assert_eq!(signed_duration(-175), "-0.175 us");
        assert_eq!(signed_duration(0), "0.000 us");
    }
}
