//! The A/B comparison (`exitscope compare A B`): environment first, then one row per test.
//!
//! ```text
//! A: a.json: AMD EPYC, kernel 6.18.44-fc-v1045, kvm_pvm (PVM)
//! B: b.json: AMD EPYC, kernel 6.18.44-fc-v1045, kvm_pvm (PVM)
//! environment: alike (CPU, microcode, kernel, mitigations, KVM module and parameters, virtualization)
//!
//! # Δ = median(B) − median(A); positive means B is slower; shift CI: Hodges–Lehmann, 95 %
//! test               unit    runs    A median    B median          Δ   ratio        95% CI of shift       % of A  verdict
//! cpuid              cycles  10/10     5080.6      5101.2      +20.6   1.004     [-35.2, +60.1]   [-0.7, +1.2]  no significant difference
//! ```

use std::io::{self, Write};

use exitscope_compare::{Comparison, Row, SideStats, is_wide};
use exitscope_host::{Difference, Fingerprint, Severity};
use exitscope_stats::Verdict;

use crate::{Style, colors};

/// Differences listed per category before the rest are counted.
const PER_CATEGORY: usize = 4;
/// Values longer than this go on their own lines.
const INLINE: usize = 28;

fn describe(f: &Fingerprint) -> String {
    if f.is_empty() {
        return "no environment recorded".into();
    }
    format!(
        "{}, kernel {}, {} ({})",
        f.cpu.model_name.as_deref().unwrap_or("unknown CPU"),
        f.os.release.as_deref().unwrap_or("unknown"),
        f.kvm_vendor_module().unwrap_or("no KVM module"),
        f.virtualization.map_or("unknown", |v| v.as_str()),
    )
}

fn value(v: Option<&str>) -> &str {
    v.unwrap_or("unknown")
}

fn write_difference(out: &mut impl Write, style: &Style, d: &Difference) -> io::Result<()> {
    let tag = match d.severity {
        Severity::Unlike => style.paint(colors::HOT, "unlike"),
        Severity::Note => style.paint(colors::DIM, "note  "),
    };
    let (a, b) = (value(d.a.as_deref()), value(d.b.as_deref()));
    if a.len() <= INLINE && b.len() <= INLINE {
        writeln!(out, "  {tag}  {:<34} {a} → {b}", d.field)
    } else {
        writeln!(out, "  {tag}  {}\n            A: {a}\n            B: {b}", d.field)
    }
}

/// The environment part: what differs, and the unlike-comparison warning.
pub fn write_environment(c: &Comparison, style: &Style, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "A: {}: {}", c.a.path, describe(&c.a.host))?;
    writeln!(out, "B: {}: {}", c.b.path, describe(&c.b.host))?;
    if c.environment.is_empty() {
        writeln!(
            out,
            "environment: alike (CPU, microcode, kernel, mitigations, KVM module and parameters, \
             virtualization)"
        )?;
    } else {
        write_differences(c, style, out)?;
    }
    if !c.unlike.is_empty() {
        writeln!(
            out,
            "{}: unlike comparison: different {}; the differences below may come from the \
             environment, not from the change",
            style.paint(colors::HOT, "warning"),
            c.unlike.join(", ")
        )?;
    }
    for w in &c.warnings {
        writeln!(out, "{}: {w}", style.paint(colors::HOT, "warning"))?;
    }
    Ok(())
}

fn write_differences(c: &Comparison, style: &Style, out: &mut impl Write) -> io::Result<()> {
    let unlike = c.environment.iter().filter(|d| d.severity == Severity::Unlike).count();
    let n = c.environment.len();
    let plural = if n == 1 { "" } else { "s" };
    writeln!(out, "environment: {n} difference{plural}, {unlike} unlike")?;
    let mut categories: Vec<&str> = Vec::new();
    for d in &c.environment {
        if !categories.contains(&d.category.as_str()) {
            categories.push(&d.category);
        }
    }
    for cat in categories {
        let of: Vec<&Difference> = c.environment.iter().filter(|d| d.category == cat).collect();
        for d in of.iter().take(PER_CATEGORY) {
            write_difference(out, style, d)?;
        }
        if of.len() > PER_CATEGORY {
            writeln!(
                out,
                "          … {} more {cat} differences (--json lists all)",
                of.len() - PER_CATEGORY
            )?;
        }
    }
    Ok(())
}

fn signed(v: f64) -> String {
    format!("{v:+.1}")
}

fn num(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

fn runs(r: &Row) -> String {
    let n = |s: &Option<SideStats>| s.as_ref().map_or_else(|| "-".into(), |s| s.n.to_string());
    format!("{}/{}", n(&r.a), n(&r.b))
}

fn verdict(style: &Style, v: Verdict) -> String {
    match v {
        Verdict::Slower => style.paint(colors::HOT, v.as_str()),
        Verdict::Faster => style.paint("32", v.as_str()),
        _ => v.as_str().to_string(),
    }
}

/// The whole comparison as text: the environment, then the bench tests' table and the exit
/// reasons' table (each when there are such rows), notes and warnings, the method.
pub fn write(c: &Comparison, style: &Style, out: &mut impl Write) -> io::Result<()> {
    write_environment(c, style, out)?;
    // Tests neither side measured (skipped at this CPL, say) are listed once, below.
    let (measured, neither): (Vec<&Row>, Vec<&Row>) =
        c.rows.iter().partition(|r| r.a.is_some() || r.b.is_some());
    let (exits, tests): (Vec<&Row>, Vec<&Row>) = measured.iter().partition(|r| r.measure.is_some());
    writeln!(out)?;
    writeln!(
        out,
        "# Δ = median(B) − median(A); positive means B is slower; ratio = B / A; shift: \
         Hodges–Lehmann B − A with its {:.0} % interval",
        c.confidence * 100.0
    )?;
    if !tests.is_empty() || exits.is_empty() {
        write_tests(&tests, style, out)?;
    }
    if !exits.is_empty() {
        if !tests.is_empty() {
            writeln!(out)?;
        }
        write_exits(&exits, style, out)?;
    }
    write_notes(&measured, &neither, out)?;
    writeln!(out, "method: {}", c.method)
}

fn ci_cells(r: &Row) -> (String, String) {
    let ci = r.shift.as_ref().and_then(|s| s.ci);
    (
        ci.map_or_else(|| "-".into(), |ci| format!("[{}, {}]", signed(ci.low), signed(ci.high))),
        r.shift_ci_percent
            .map_or_else(|| "-".into(), |p| format!("[{}, {}]", signed(p[0]), signed(p[1]))),
    )
}

fn write_tests(rows: &[&Row], style: &Style, out: &mut impl Write) -> io::Result<()> {
    let head = format!(
        "{:<18} {:<7} {:>7} {:>11} {:>11} {:>10} {:>7} {:>24} {:>16}  verdict",
        "test", "unit", "runs", "A median", "B median", "Δ", "ratio", "95% CI of shift", "% of A"
    );
    writeln!(out, "{}", style.paint(colors::HEADER, &head))?;
    for r in rows {
        let (ci, pct) = ci_cells(r);
        writeln!(
            out,
            "{:<18} {:<7} {:>7} {:>11} {:>11} {:>10} {:>7} {:>24} {:>16}  {}",
            r.name,
            r.unit,
            runs(r),
            num(r.a.as_ref().map(|s| s.median), 1),
            num(r.b.as_ref().map(|s| s.median), 1),
            r.delta.map_or_else(|| "-".into(), signed),
            num(r.ratio, 3),
            ci,
            pct,
            verdict(style, r.verdict),
        )?;
    }
    Ok(())
}

fn write_exits(rows: &[&Row], style: &Style, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "# exit reasons from the traces, ns: each reason's histogram (exact values up to {} \
         exits, then buckets of 1/512 of the value); res = the values compared: exact, or 1/N \
         = N buckets per power of two; @1us = the trace's timestamps are microseconds",
        exitscope_analyze::histogram::EXACT_LIMIT
    )?;
    let head = format!(
        "{:<18} {:<13} {:>15} {:>10} {:>10} {:>9} {:>7} {:>22} {:>16} {:>10}  verdict",
        "exit reason",
        "measure",
        "exits",
        "A median",
        "B median",
        "Δ",
        "ratio",
        "95% CI of shift",
        "% of A",
        "res"
    );
    writeln!(out, "{}", style.paint(colors::HEADER, &head))?;
    for r in rows {
        let (ci, pct) = ci_cells(r);
        writeln!(
            out,
            "{:<18} {:<13} {:>15} {:>10} {:>10} {:>9} {:>7} {:>22} {:>16} {:>10}  {}",
            r.name,
            r.measure.as_deref().unwrap_or("-"),
            runs(r),
            num(r.a.as_ref().map(|s| s.median), 0),
            num(r.b.as_ref().map(|s| s.median), 0),
            r.delta.map_or_else(|| "-".into(), |d| format!("{d:+.0}")),
            num(r.ratio, 3),
            ci,
            pct,
            r.resolution.map_or_else(|| "-".into(), |x| x.short()),
            verdict(style, r.verdict),
        )?;
    }
    Ok(())
}

fn write_notes(measured: &[&Row], neither: &[&Row], out: &mut impl Write) -> io::Result<()> {
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in neither {
        let why = r.note.as_deref().unwrap_or("no samples");
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(&r.name),
            None => reasons.push((why, vec![&r.name])),
        }
    }
    for (why, names) in reasons {
        writeln!(out, "not compared: {}: {why}", names.join(", "))?;
    }
    for r in measured {
        if let Some(n) = &r.note {
            writeln!(out, "note: {}: {n}", r.name)?;
        }
        if !r.gated {
            continue;
        }
        for (label, side) in [("A", &r.a), ("B", &r.b)] {
            let wide = side.as_ref().filter(|s| is_wide(s));
            if let Some((s, ci)) = wide.and_then(|s| s.median_ci.map(|ci| (s, ci))) {
                writeln!(
                    out,
                    "warning: {}: {label}'s median interval [{:.1}, {:.1}] spans {:.1} % of it: a \
                     smaller change cannot be told from noise",
                    r.name,
                    ci.low,
                    ci.high,
                    100.0 * ci.width() / s.median.abs()
                )?;
            }
        }
    }
    Ok(())
}
