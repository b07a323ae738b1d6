//! The bench views: `exitscope bench`'s table and the one-line summaries `run` and `record
//! --bench` print, drawn from the VMM's typed results ([`exitscope_vmm::Report`]).

use std::io::{self, Write};

use exitscope_vmm::{Report, Status, TestResult};

/// A figure with `prec` decimals (`-` when absent); a value that rounds to zero prints as
/// `0.0`, never `-0.0` (the nop baseline minus itself).
pub fn fixed(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(
        || "-".to_string(),
        |v| {
            let s = format!("{v:.prec$}");
            match s.strip_prefix('-') {
                Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
                _ => s,
            }
        },
    )
}

/// `cpuid: 1234.5 cycles/iter (567.8 ns), 1.00 exits/iter, CPUID [ok]: reason`, with
/// `label` after the name (`cpuid, untraced: ...`).
pub fn line(r: &TestResult, label: Option<&str>) -> String {
    format!(
        "{}{}: {} cycles/iter ({} ns), {} exits/iter, {} [{}]{}",
        r.test,
        label.map(|l| format!(", {l}")).unwrap_or_default(),
        fixed(r.cycles_median, 1),
        fixed(r.ns_median, 1),
        fixed(r.exits_per_iteration, 2),
        r.exit_kind,
        r.status.as_str(),
        r.reason.as_deref().map(|s| format!(": {s}")).unwrap_or_default()
    )
}

/// `[low, high]` of the median's interval, or `-`.
fn interval(r: &TestResult) -> String {
    r.cycles_median_ci.map_or_else(
        || "-".into(),
        |ci| format!("[{}, {}]", fixed(Some(ci.low), 1), fixed(Some(ci.high), 1)),
    )
}

/// Write the bench table (`exitscope bench`): one row per test, then the host, mode, load
/// and notes.
///
/// # Errors
/// I/O errors from `out`.
pub fn write_table(out: &mut impl Write, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<4} {:<7} {:>11} {:>22} {:>11} {:>11} {:>10} {:>10}  exit kind",
        "test",
        "mode",
        "status",
        "cyc median",
        "95% CI of median",
        "cyc min",
        "cyc max",
        "ns",
        "exits/iter",
    )?;
    for r in &report.results {
        writeln!(
            out,
            "{:<18} cpl{} {:<7} {:>11} {:>22} {:>11} {:>11} {:>10} {:>10}  {}",
            r.test,
            r.cpl,
            r.status.as_str(),
            fixed(r.cycles_median, 1),
            interval(r),
            fixed(r.cycles_min, 1),
            fixed(r.cycles_max, 1),
            fixed(r.ns_median, 1),
            fixed(r.exits_per_iteration, 2),
            r.exit_kind
        )?;
    }
    writeln!(out)?;
    let h = &report.host;
    writeln!(out, "{}", h.fingerprint)?;
    writeln!(out, "mode: CPL{}: {}", report.mode.cpl.as_u8(), report.mode.reason)?;
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    writeln!(
        out,
        "load average: {} before, {} after; min cycles {}, repeat {}; cycles are per iteration \
         minus the empty-loop baseline; 95% CI: order statistics of the repeats",
        la(h.load_average),
        la(report.load_average_after),
        report.min_cycles,
        report.repeat
    )?;
    for r in &report.results {
        if let (Some(loop_ns), Some(exit_ns)) = (r.vmm_loop_ns_per_exit, r.ns_median) {
            writeln!(
                out,
                "vmm loop: {}: {loop_ns:.0} ns per userspace exit spent in exitscope between \
                 KVM_RUN calls ({:.2}% of the exit)",
                r.test,
                100.0 * loop_ns / exit_ns.max(1.0)
            )?;
        }
    }
    for r in report.results.iter().filter(|r| r.reason.is_some()) {
        write_note(out, r)?;
    }
    for r in report.results.iter().filter(|r| r.status == Status::Ok) {
        if let Some(w) = &r.ci_warning {
            writeln!(out, "warning: {}: {w}", r.test)?;
        }
    }
    Ok(())
}

fn write_note(out: &mut impl Write, r: &TestResult) -> io::Result<()> {
    writeln!(out, "note: {}: {}", r.test, r.reason.as_deref().unwrap_or(""))
}

/// Write the table of `bench --kut` (kvm-unit-tests' own figures): one row per test with the
/// vCPU count of its boot (`plans`: label and smp per result), then the host, mode, load and
/// notes.
///
/// # Errors
/// I/O errors from `out`.
pub fn write_kut_table(
    out: &mut impl Write,
    report: &Report,
    plans: &[(String, u32)],
) -> io::Result<()> {
    writeln!(
        out,
        "{:<22} {:>3} {:<7} {:>11} {:>11} {:>11} {:>10} {:>10} {:>9}  exit kind",
        "test",
        "smp",
        "status",
        "cyc median",
        "cyc min",
        "cyc max",
        "ns",
        "exits/iter",
        "user/iter",
    )?;
    for (i, r) in report.results.iter().enumerate() {
        let smp = plans.get(i).map_or(0, |p| p.1);
        writeln!(
            out,
            "{:<22} {smp:>3} {:<7} {:>11} {:>11} {:>11} {:>10} {:>10} {:>9}  {}",
            r.test,
            r.status.as_str(),
            fixed(r.cycles_median, 0),
            fixed(r.cycles_min, 0),
            fixed(r.cycles_max, 0),
            fixed(r.ns_median, 1),
            fixed(r.exits_per_iteration, 2),
            fixed(r.userspace_exits_per_iteration, 2),
            r.exit_kind
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{}", report.host.fingerprint)?;
    writeln!(out, "mode: CPL{}: {}", report.mode.cpl.as_u8(), report.mode.reason)?;
    let la = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    writeln!(
        out,
        "load average: {} before, {} after; {} boot(s) per configuration; cycles are the \
         guest's own (mean of its last round of at least 2^30 TSC cycles, loop overhead \
         included); exits/iter from KVM's stats of vCPU 0 over each test's window, minus \
         exits to the serial port, fw_cfg and PCI probing",
        la(report.host.load_average),
        la(report.load_average_after),
        report.repeat
    )?;
    if let Some(k) = &report.kut {
        for n in &k.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    for r in report.results.iter().filter(|r| r.reason.is_some()) {
        write_note(out, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_prints_as_zero() {
        assert_eq!(fixed(Some(-0.0), 1), "0.0");
        assert_eq!(fixed(Some(-0.04), 1), "0.0");
        assert_eq!(fixed(Some(-0.06), 1), "-0.1");
        assert_eq!(fixed(None, 1), "-");
    }
}
