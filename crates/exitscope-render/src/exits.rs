//! The exit views of a report, both drawn from the one per-reason statistic
//! ([`exitscope_analyze::exits::ExitsReport`]), so they always name a reason alike:
//!
//! - [`write_phases`] (`report --exits` on function graphs): one block per reason, one row per
//!   phase;
//!
//! ```text
//! REASON                COUNT  PHASE          MEAN         P50         P99         MIN         MAX   %MEAN
//! CPUID                     1  total      4.278 us    4.278 us    4.278 us    4.278 us    4.278 us  100.0%
//!                              before     0.160 us    0.160 us    0.160 us    0.160 us    0.160 us    3.7%
//! ```
//!
//! - [`write_table`] (event traces, and under the call tree when the trace had kvm events): like
//!   `perf kvm stat report` with percentiles where `kvm_exit` → `kvm_entry` gives handling time,
//!   or counts, rates and inter-arrival times where only reason-specific tracepoints fire.

use std::io::{self, Write};

use exitscope_analyze::exits::{ExitsReport, ReasonStats};
use exitscope_analyze::histogram::Distribution;
use exitscope_analyze::report::Report;

use crate::units::{opt_duration, percent};
use crate::{Style, colors};

const HEADER: &str = "REASON                COUNT  PHASE          MEAN         P50         P99         MIN         MAX   %MEAN";

/// Most evidence names printed per reason.
const MAX_EVIDENCE: usize = 6;

/// The label of reasons nothing classified.
const UNKNOWN: &str = "unknown";

/// The exit view `report --exits` prints: the phase blocks when the trace has function-graph
/// exits, else the event table; then the report's footer.
pub fn write(report: &Report, style: &Style, w: &mut impl Write) -> io::Result<()> {
    match &report.exits {
        Some(ex)
            if ex.reasons.iter().any(|r| r.total.is_some())
                || ex.whole_roots + ex.split_roots > 0 =>
        {
            write_phases(ex, style, w)?
        }
        Some(_) => write_table(report, w)?,
        None => writeln!(
            w,
            "# no VM exit in this trace: no svm_vcpu_run/vmx_vcpu_run call, kvm_exit or \
             reason-specific kvm tracepoint"
        )?,
    }
    crate::tree::footer(report, w)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn mean(d: &Option<Distribution>) -> Option<u64> {
    d.as_ref().map(|d| d.mean_ns)
}

/// Write the phase blocks and their notes.
pub fn write_phases(ex: &ExitsReport, style: &Style, w: &mut impl Write) -> io::Result<()> {
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
    let completion =
        ex.reasons.iter().any(|r| r.completion.as_ref().is_some_and(|c| c.total_ns > 0));
    writeln!(
        w,
        "#         after = exit handling; other = the root's own self time (0 for cut roots);{} \
         before + run + after + other{} = total",
        if completion {
            " completion = work at the next KVM_RUN for a userspace exit;"
        } else {
            ""
        },
        if completion { " + completion" } else { "" }
    )?;
    writeln!(w, "{}", style.paint(colors::HEADER, HEADER))?;
    for r in &ex.reasons {
        reason(r, completion, style, w)?;
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
    if ex.harness_exits > 0 || !ex.notes.is_empty() {
        for n in &ex.notes {
            writeln!(w, "# note: {n}")?;
        }
    }
    Ok(())
}

fn reason(r: &ReasonStats, completion: bool, style: &Style, w: &mut impl Write) -> io::Result<()> {
    let total_mean = mean(&r.total).unwrap_or(0);
    let mut phases: Vec<(&str, &Option<Distribution>)> = vec![
        ("total", &r.total),
        ("before", &r.before),
        ("run", &r.run),
        ("after", &r.after),
        ("other", &r.other),
    ];
    if completion {
        phases.push(("compl.", &r.completion));
    }
    if r.handling.is_some() {
        phases.push(("handling", &r.handling));
    }
    for (i, (name, p)) in phases.iter().enumerate() {
        let (label, count) = if i == 0 {
            let label = if r.reason == UNKNOWN {
                style.paint(colors::HOT, &format!("{:<20}", r.reason))
            } else {
                style.paint(colors::HEADER, &format!("{:<20}", r.reason))
            };
            (label, format!("{:>7}", r.count))
        } else {
            (format!("{:<20}", ""), format!("{:>7}", ""))
        };
        let d = p.as_ref();
        // Handling time is not a part of the total: no share.
        let pct = match (d, *name) {
            (Some(d), n) if n != "handling" => percent(d.mean_ns, total_mean),
            _ => "-".to_string(),
        };
        writeln!(
            w,
            "{label}{count}  {name:<7}{:>12}{:>12}{:>12}{:>12}{:>12}{:>8}",
            opt_duration(d.map(|d| d.mean_ns)),
            opt_duration(d.map(|d| d.p50_ns)),
            opt_duration(d.map(|d| d.p99_ns)),
            opt_duration(d.map(|d| d.min_ns)),
            opt_duration(d.map(|d| d.max_ns)),
            pct
        )?;
    }
    let mut ev: Vec<String> =
        r.evidence.iter().take(MAX_EVIDENCE).map(|e| format!("{} ({})", e.name, e.count)).collect();
    if r.evidence.len() > MAX_EVIDENCE {
        ev.push(format!("... {} more", r.evidence.len() - MAX_EVIDENCE));
    }
    let what =
        if r.reason == UNKNOWN { "seen (add to exit_handlers.toml)" } else { "classified by" };
    writeln!(w, "{:>29}{}: {}", "", style.paint(colors::DIM, what), ev.join(", "))?;
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
    if !r.keys.is_empty() {
        let keys: Vec<String> =
            r.keys.iter().map(|k| format!("{} ({})", k.name, k.count)).collect();
        writeln!(w, "{:>29}{}: {}", "", style.paint(colors::DIM, "touched"), keys.join(", "))?;
    }
    Ok(())
}

/// A time in µs with as many decimals as the data resolves (`resolution_ns`: 1000 prints
/// whole microseconds, 1 prints nanoseconds).
fn us(ns: Option<u64>, resolution_ns: Option<u64>) -> String {
    match (ns, resolution_ns) {
        (None, _) => "-".to_owned(),
        (Some(n), Some(r)) if r >= 1000 => format!("{}", n / 1000),
        (Some(n), _) => format!("{}.{:03}", n / 1000, n % 1000),
    }
}

/// Write the event table (handling time like `perf kvm stat report`, or counts, rates and
/// inter-arrival times where only reason-specific tracepoints fire), the event counts and the
/// notes. Nothing when the report has no exit view.
pub fn write_table(report: &Report, w: &mut impl Write) -> io::Result<()> {
    let Some(ex) = &report.exits else { return Ok(()) };
    let span = ex.span_ns.map_or_else(String::new, |s| match s {
        s if s >= 1_000_000_000 => format!(" in {:.3} s", s as f64 / 1e9),
        s => format!(" in {:.3} ms", s as f64 / 1e6),
    });
    let width = ex.reasons.iter().map(|r| r.reason.len()).max().unwrap_or(0).max(16);
    let res = ex.timestamp_resolution_ns;
    let unit = if res.is_some_and(|r| r >= 1000) { "us, 1 us resolution" } else { "us" };
    if ex.handling_time_available {
        writeln!(
            w,
            "Analyze events for all VMs, all VCPUs: {} VM exits{span}, handling time = kvm_exit -> \
             kvm_entry{}",
            ex.exits,
            ex.isa.as_deref().map_or(String::new(), |i| format!(" ({i})"))
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "{:>width$} {:>9} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "VM-EXIT",
            "Samples",
            "Samples%",
            "Time%",
            "Min(us)",
            "Max(us)",
            "Mean(us)",
            "p50(us)",
            "p90(us)",
            "p99(us)"
        )?;
        for r in &ex.reasons {
            let h = r.handling.as_ref();
            writeln!(
                w,
                "{:>width$} {:>9} {:>8.2}% {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                r.reason,
                r.count,
                r.samples_pct,
                r.time_pct.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}%")),
                us(h.map(|d| d.min_ns), res),
                us(h.map(|d| d.max_ns), res),
                us(h.map(|d| d.mean_ns), None),
                us(h.map(|d| d.p50_ns), res),
                us(h.map(|d| d.p90_ns), res),
                us(h.map(|d| d.p99_ns), res)
            )?;
        }
        let total: u64 =
            ex.reasons.iter().filter_map(|r| r.handling.as_ref()).map(|h| h.total_ns).sum();
        writeln!(w)?;
        writeln!(
            w,
            "Total samples: {}, total handling time: {} us, unpaired exits: {}",
            ex.exits,
            us(Some(total), None),
            ex.unpaired_exits
        )?;
    } else if ex.source == "function_graph"
        && !ex.reasons.iter().any(|r| r.inter_arrival.is_some() || r.rate_per_s.is_some())
    {
        // Nothing to add to the phase view but the count.
        let names: Vec<String> =
            ex.reasons.iter().map(|r| format!("{} {}", r.reason, r.count)).collect();
        writeln!(
            w,
            "VM exits in the function graph: {} ({}); their phases: exitscope report --exits",
            ex.exits,
            names.join(", ")
        )?;
    } else if ex.exits > 0 {
        writeln!(
            w,
            "VM exits counted from {}: {}{span}; handling time unavailable",
            match ex.source.as_str() {
                "tracepoints" => "reason-specific tracepoints",
                "kvm_exit" => "kvm_exit events (no kvm_entry timestamps)",
                "function_graph" => "the function graph",
                _ => "several sources",
            },
            ex.exits
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "{:>width$} {:>9} {:>9} {:>11}   {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "REASON",
            "Samples",
            "Samples%",
            "Rate(/s)",
            "gap min",
            "gap p50",
            "gap mean",
            "gap p90",
            "gap p99",
            "gap max"
        )?;
        let sub = format!(
            "{:>width$} {:>9} {:>9} {:>11}   {:^65}",
            "",
            "",
            "",
            "",
            format!("(time between exits of one vCPU, {unit})")
        );
        writeln!(w, "{}", sub.trim_end())?;
        for r in &ex.reasons {
            let ia = r.inter_arrival.as_ref();
            writeln!(
                w,
                "{:>width$} {:>9} {:>8.2}% {:>11}   {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                r.reason,
                r.count,
                r.samples_pct,
                r.rate_per_s.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}")),
                us(ia.map(|d| d.min_ns), res),
                us(ia.map(|d| d.p50_ns), res),
                us(ia.map(|d| d.mean_ns), None),
                us(ia.map(|d| d.p90_ns), res),
                us(ia.map(|d| d.p99_ns), res),
                us(ia.map(|d| d.max_ns), res)
            )?;
        }
    } else {
        writeln!(w, "No VM exits.")?;
    }
    // The names as traced, where they differ from the one vocabulary.
    let traced: Vec<String> = ex
        .reasons
        .iter()
        .filter(|r| r.vendor.iter().any(|v| v.name != r.reason))
        .map(|r| {
            let names: Vec<String> =
                r.vendor.iter().map(|v| format!("{} {}", v.name, v.count)).collect();
            format!("{} = {}", r.reason, names.join(" + "))
        })
        .collect();
    if !traced.is_empty() {
        writeln!(w)?;
        writeln!(w, "As traced: {}", traced.join("; "))?;
    }
    let keyed: Vec<String> = ex
        .reasons
        .iter()
        .filter(|r| !r.keys.is_empty())
        .map(|r| {
            let k: Vec<String> =
                r.keys.iter().take(4).map(|k| format!("{} {}", k.name, k.count)).collect();
            format!("{}: {}", r.reason, k.join(", "))
        })
        .collect();
    if !keyed.is_empty() {
        writeln!(w, "Touched: {}", keyed.join("; "))?;
    }
    if !report.events.is_empty() {
        writeln!(w)?;
        let list: Vec<String> = report.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(w, "Events: {}", list.join(", "))?;
    }
    if ex.userspace_exits > 0 {
        writeln!(w, "Exits to userspace (kvm_userspace_exit): {}", ex.userspace_exits)?;
    }
    for n in &ex.notes {
        writeln!(w, "Note: {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::exits::{ExitsReport, NameCount, ReasonStats};
    use exitscope_analyze::histogram::Distribution;

    use super::*;

    fn dist(mean: u64) -> Option<Distribution> {
        Some(Distribution {
            count: 1,
            total_ns: mean,
            min_ns: mean,
            max_ns: mean,
            mean_ns: mean,
            p50_ns: mean,
            p90_ns: mean,
            p99_ns: mean,
            ..Default::default()
        })
    }

    #[test]
    fn one_block_per_reason_with_shares() {
        let report = Report {
            exits: Some(ExitsReport {
                exits: 1,
                whole_roots: 1,
                reasons: vec![ReasonStats {
                    reason: "CPUID".into(),
                    count: 1,
                    by_handler: 1,
                    evidence: vec![NameCount { name: "cpuid_interception".into(), count: 1 }],
                    total: dist(4278),
                    before: dist(160),
                    run: dist(2265),
                    after: dist(1312),
                    other: dist(541),
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
        assert!(!text.contains("compl."), "no completion work, no row: {text}");
        let mut out = Vec::new();
        write(&Report::default(), &Style::plain(), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("no VM exit in this trace"));
    }

    #[test]
    fn microsecond_data_prints_whole_microseconds() {
        assert_eq!(us(Some(25_000), Some(1000)), "25");
        assert_eq!(us(Some(25_123), Some(1)), "25.123");
        assert_eq!(us(Some(25_500), None), "25.500");
        assert_eq!(us(None, Some(1)), "-");
    }
}
