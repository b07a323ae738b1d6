//! The exit view (`exitscope report --exits`): one block per exit reason, one row per phase.
//!
//! ```text
//! REASON                COUNT  PHASE          MEAN         P50         P99         MIN         MAX   %MEAN
//! CPUID                     1  total      4.278 us    4.278 us    4.278 us    4.278 us    4.278 us  100.0%
//!                              before     0.160 us    0.160 us    0.160 us    0.160 us    0.160 us    3.7%
//! ```

use std::io::{self, Write};

use exitscope_analyze::exits::{ExitsReport, PhaseStats, ReasonReport};
use exitscope_analyze::report::Report;

use crate::units::{opt_duration, percent};
use crate::{Style, colors};

const HEADER: &str = "REASON                COUNT  PHASE          MEAN         P50         P99         MIN         MAX   %MEAN";

/// Most evidence names printed per reason.
const MAX_EVIDENCE: usize = 6;

/// Write the exit view, then the report's footer.
pub fn write(report: &Report, style: &Style, w: &mut impl Write) -> io::Result<()> {
    match &report.exits {
        Some(ex) => write_exits(ex, style, w)?,
        None => writeln!(w, "# no exit view in this report (run with --exits)")?,
    }
    crate::tree::footer(report, w)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Write only the exit table and its notes.
pub fn write_exits(ex: &ExitsReport, style: &Style, w: &mut impl Write) -> io::Result<()> {
    writeln!(
        w,
        "# {} from {} that {} one exit (vcpu_enter_guest) and {} cut at each run call \
         (kvm_arch_vcpu_ioctl_run, vcpu_run)",
        plural(ex.exits, "exit", "exits"),
        plural(ex.whole_roots, "root", "roots"),
        if ex.whole_roots == 1 { "is" } else { "are" },
        plural(ex.split_roots, "bigger root", "bigger roots"),
    )?;
    writeln!(
        w,
        "# phases: before = calls before the vendor run call; run = svm_vcpu_run/vmx_vcpu_run \
         (world switch + guest time);"
    )?;
    writeln!(
        w,
        "#         after = exit handling; other = the root's own self time (0 for cut roots); \
         before + run + after + other = total"
    )?;
    writeln!(w, "{}", style.paint(colors::HEADER, HEADER))?;
    for r in &ex.reasons {
        reason(r, style, w)?;
    }
    if ex.reasons.is_empty() {
        writeln!(w, "(no svm_vcpu_run / vmx_vcpu_run call in the trace: no exits to show)")?;
    }
    if ex.roots_without_run > 0 {
        writeln!(
            w,
            "# {} without a vendor run call (not exits, not above)",
            plural(ex.roots_without_run, "root", "roots")
        )?;
    }
    if ex.split_roots > 0 {
        writeln!(
            w,
            "# {} of the cut roots' time lies outside every exit (container self time, work after \
             the last exit's handler), not above",
            crate::units::duration(ex.unattributed_ns)
        )?;
    }
    Ok(())
}

fn reason(r: &ReasonReport, style: &Style, w: &mut impl Write) -> io::Result<()> {
    let total_mean = r.total.mean_ns.unwrap_or(0);
    let phases: [(&str, &PhaseStats); 5] = [
        ("total", &r.total),
        ("before", &r.before),
        ("run", &r.run),
        ("after", &r.after),
        ("other", &r.other),
    ];
    for (i, (name, p)) in phases.iter().enumerate() {
        let (label, count) = if i == 0 {
            let label = if r.reason == exitscope_analyze::exits::UNKNOWN {
                style.paint(colors::HOT, &format!("{:<20}", r.reason))
            } else {
                style.paint(colors::HEADER, &format!("{:<20}", r.reason))
            };
            (label, format!("{:>7}", r.count))
        } else {
            (format!("{:<20}", ""), format!("{:>7}", ""))
        };
        let pct = p.mean_ns.map_or_else(|| "-".to_string(), |m| percent(m, total_mean));
        writeln!(
            w,
            "{label}{count}  {name:<7}{:>12}{:>12}{:>12}{:>12}{:>12}{:>8}",
            opt_duration(p.mean_ns),
            opt_duration(p.p50_ns),
            opt_duration(p.p99_ns),
            opt_duration(p.min_ns),
            opt_duration(p.max_ns),
            pct
        )?;
    }
    let mut ev: Vec<String> =
        r.evidence.iter().take(MAX_EVIDENCE).map(|e| format!("{} ({})", e.name, e.count)).collect();
    if r.evidence.len() > MAX_EVIDENCE {
        ev.push(format!("... {} more", r.evidence.len() - MAX_EVIDENCE));
    }
    let what = if r.reason == exitscope_analyze::exits::UNKNOWN {
        "seen (add to exit_handlers.toml)"
    } else {
        "classified by"
    };
    writeln!(
        w,
        "{:>29}{}: {}",
        "",
        style.paint(colors::DIM, what),
        if ev.is_empty() { "-".to_string() } else { ev.join(", ") }
    )?;
    if r.by_event > 0 && r.by_handler > 0 {
        writeln!(
            w,
            "{:>29}{}",
            "",
            style.paint(
                colors::DIM,
                &format!("{} from kvm_exit events, {} from handlers", r.by_event, r.by_handler)
            )
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::exits::{ExitsReport, NameCount, PhaseStats, ReasonReport};

    use super::*;

    fn phase(mean: u64) -> PhaseStats {
        PhaseStats {
            timed: 1,
            total_ns: Some(mean),
            mean_ns: Some(mean),
            p50_ns: Some(mean),
            p99_ns: Some(mean),
            min_ns: Some(mean),
            max_ns: Some(mean),
        }
    }

    #[test]
    fn one_block_per_reason_with_shares() {
        let report = Report {
            exits: Some(ExitsReport {
                exits: 1,
                whole_roots: 1,
                reasons: vec![ReasonReport {
                    reason: "CPUID".into(),
                    count: 1,
                    by_handler: 1,
                    evidence: vec![NameCount { name: "cpuid_interception".into(), count: 1 }],
                    total: phase(4278),
                    before: phase(160),
                    run: phase(2265),
                    after: phase(1312),
                    other: phase(541),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        write(&report, &Style::plain(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("CPUID                     1  total      4.278 us"), "{text}");
        assert!(text.contains("run        2.265 us"), "{text}");
        assert!(text.contains("52.9%"), "{text}");
        assert!(text.contains("classified by: cpuid_interception (1)"), "{text}");
        let mut out = Vec::new();
        write(&Report::default(), &Style::plain(), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("run with --exits"));
    }
}
