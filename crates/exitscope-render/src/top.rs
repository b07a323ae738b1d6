//! `exitscope top`'s live table: one screen per interval of [`LiveInterval`]s (a fresh
//! per-reason statistic each), and the same interval as one JSON line.
//!
//! ```text
//! exitscope top · bench inl_from_kernel · interval 3 at 2.0 s (1.00 s) · 28431 exits · 0 lost
//! inter-arrival per vCPU (only reason-specific tracepoints fire; 1 us resolution)  sort: count
//!
//! REASON               COUNT*      RATE/s     GAP P50     GAP P99     GAP MAX
//! IO                    28431     28431.0    4.000 us    8.000 us   16.162 ms
//! ```
//!
//! Where `kvm_exit` → `kvm_entry` pairs fire, the distribution columns are the handling time
//! (`P50 P99 MAX`); where only reason-specific tracepoints fire (PVM), the time between two
//! exits of one reason on one vCPU (`GAP ...`). The figures are the analysis's; this module
//! only orders the rows by the chosen column and lays them out.

use std::cmp::Ordering;
use std::io::{self, Write};

use exitscope_analyze::exits::{ExitsReport, ReasonStats};
use exitscope_analyze::histogram::Distribution;
use exitscope_analyze::live::LiveInterval;

use crate::units::opt_duration;
use crate::{Style, colors};

/// Home the cursor and clear the screen: what a redraw starts with on a terminal.
pub const CLEAR: &str = "\x1b[H\x1b[2J";

/// The column rows are ordered by (`s` cycles through them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortColumn {
    /// Most exits first.
    #[default]
    Count,
    /// Highest median first.
    P50,
    /// Highest 99th percentile first.
    P99,
    /// Highest maximum first.
    Max,
    /// By reason name.
    Reason,
}

impl SortColumn {
    /// The next column in the cycle.
    #[must_use]
    pub fn next(self) -> SortColumn {
        match self {
            SortColumn::Count => SortColumn::P50,
            SortColumn::P50 => SortColumn::P99,
            SortColumn::P99 => SortColumn::Max,
            SortColumn::Max => SortColumn::Reason,
            SortColumn::Reason => SortColumn::Count,
        }
    }

    /// Its name on screen.
    pub fn name(self) -> &'static str {
        match self {
            SortColumn::Count => "count",
            SortColumn::P50 => "p50",
            SortColumn::P99 => "p99",
            SortColumn::Max => "max",
            SortColumn::Reason => "reason",
        }
    }
}

/// How to draw the table.
#[derive(Clone, Debug, Default)]
pub struct TopView {
    /// What is watched (`bench inl_from_kernel`, `pid 1234`, `./vmm`).
    pub target: String,
    /// The row order.
    pub sort: SortColumn,
    /// One block of rows per vCPU (needs an analysis with `per_vcpu`).
    pub per_vcpu: bool,
    /// Whether the keys work (a terminal): then the key help is shown.
    pub keys: bool,
    /// Colors.
    pub style: Style,
}

/// The distribution the table shows for a reason: handling time where the interval has it,
/// else the inter-arrival gaps.
fn shown(ex: &ExitsReport, r: &ReasonStats) -> Option<Distribution> {
    if ex.handling_time_available { r.handling.clone() } else { r.inter_arrival.clone() }
}

fn order(ex: &ExitsReport, sort: SortColumn, rows: &mut [&ReasonStats]) {
    let key = |r: &ReasonStats| -> Option<u64> {
        let d = shown(ex, r);
        match sort {
            SortColumn::Count => Some(r.count),
            SortColumn::P50 => d.map(|d| d.p50_ns),
            SortColumn::P99 => d.map(|d| d.p99_ns),
            SortColumn::Max => d.map(|d| d.max_ns),
            SortColumn::Reason => None,
        }
    };
    rows.sort_by(|a, b| match sort {
        SortColumn::Reason => a.reason.cmp(&b.reason),
        // Highest first, rows without the figure last, then the most frequent.
        _ => key(b)
            .cmp(&key(a))
            .then(b.count.cmp(&a.count))
            .then(a.reason.cmp(&b.reason))
            .then(Ordering::Equal),
    });
}

/// One screen for `iv` (without [`CLEAR`]; the caller redraws).
pub fn write_screen(iv: &LiveInterval, view: &TopView, w: &mut impl Write) -> io::Result<()> {
    let ex = &iv.exits;
    let st = &view.style;
    let title = format!(
        "exitscope top · {} · interval {} at {:.1} s ({:.2} s) · {} exit{} · {} lost",
        view.target,
        iv.interval,
        iv.start_s,
        iv.seconds,
        ex.exits,
        if ex.exits == 1 { "" } else { "s" },
        iv.lost_events
    );
    writeln!(w, "{}", st.paint(colors::HEADER, &title))?;
    let coarse = ex.timestamp_resolution_ns.is_some_and(|r| r >= 1000);
    let what = match (ex.handling_time_available, coarse) {
        (true, true) => "handling time = kvm_exit -> kvm_entry (1 us resolution)",
        (true, false) => "handling time = kvm_exit -> kvm_entry",
        (false, true) => {
            "inter-arrival per vCPU (only reason-specific tracepoints fire; 1 us resolution)"
        }
        (false, false) => "inter-arrival per vCPU (only reason-specific tracepoints fire)",
    };
    writeln!(w, "{what}  sort: {}", view.sort.name())?;
    writeln!(w)?;
    let rows: Vec<(&str, &ReasonStats)> = if view.per_vcpu {
        ex.vcpus
            .iter()
            .flat_map(|v| {
                let mut rs: Vec<&ReasonStats> = v.reasons.iter().collect();
                order(ex, view.sort, &mut rs);
                rs.into_iter().map(move |r| (v.vcpu.as_str(), r))
            })
            .collect()
    } else {
        let mut rs: Vec<&ReasonStats> = ex.reasons.iter().collect();
        order(ex, view.sort, &mut rs);
        rs.into_iter().map(|r| ("", r)).collect()
    };
    if rows.is_empty() {
        writeln!(w, "No VM exits in this interval.")?;
    } else {
        let width = rows.iter().map(|(_, r)| r.reason.len()).max().unwrap_or(0).max(16);
        let vwidth = rows.iter().map(|(v, _)| v.len()).max().unwrap_or(0).max(4);
        let mark = |c: SortColumn, name: &str| {
            if c == view.sort { format!("{name}*") } else { name.to_owned() }
        };
        let pre = if ex.handling_time_available { "" } else { "GAP " };
        let mut head = String::new();
        if view.per_vcpu {
            head.push_str(&format!("{:<vwidth$}  ", "VCPU"));
        }
        head.push_str(&format!(
            "{:<width$} {:>10} {:>11} {:>11} {:>11} {:>11}",
            mark(SortColumn::Reason, "REASON"),
            mark(SortColumn::Count, "COUNT"),
            "RATE/s",
            mark(SortColumn::P50, &format!("{pre}P50")),
            mark(SortColumn::P99, &format!("{pre}P99")),
            mark(SortColumn::Max, &format!("{pre}MAX")),
        ));
        writeln!(w, "{}", st.paint(colors::HEADER, &head))?;
        for (vcpu, r) in rows {
            let d = shown(ex, r);
            if view.per_vcpu {
                write!(w, "{vcpu:<vwidth$}  ")?;
            }
            writeln!(
                w,
                "{:<width$} {:>10} {:>11} {:>11} {:>11} {:>11}",
                r.reason,
                r.count,
                r.rate_per_s.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}")),
                opt_duration(d.as_ref().map(|d| d.p50_ns)),
                opt_duration(d.as_ref().map(|d| d.p99_ns)),
                opt_duration(d.as_ref().map(|d| d.max_ns)),
            )?;
        }
    }
    if !iv.events.is_empty() {
        writeln!(w)?;
        let list: Vec<String> = iv.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(w, "{}", st.paint(colors::DIM, &format!("Events: {}", list.join(", "))))?;
    }
    if ex.unpaired_exits > 0 {
        writeln!(
            w,
            "Unpaired exits (no kvm_entry in this interval, or lost events): {}",
            ex.unpaired_exits
        )?;
    }
    if view.keys {
        writeln!(w, "{}", st.paint(colors::DIM, "keys: s sort, q quit"))?;
    }
    Ok(())
}

/// `iv` as one line of JSON (JSON Lines; see [`exitscope_analyze::live`] for the fields).
pub fn write_json_line(iv: &LiveInterval, w: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut *w, iv)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::exits::VcpuExits;

    use super::*;

    fn dist(p50: u64, p99: u64, max: u64) -> Option<Distribution> {
        Some(Distribution {
            count: 10,
            total_ns: p50 * 10,
            min_ns: p50,
            max_ns: max,
            mean_ns: p50,
            p50_ns: p50,
            p90_ns: p99,
            p99_ns: p99,
            ..Default::default()
        })
    }

    fn reason(name: &str, count: u64, gaps: Option<Distribution>) -> ReasonStats {
        ReasonStats {
            reason: name.into(),
            count,
            rate_per_s: Some(count as f64 / 2.0),
            inter_arrival: gaps,
            ..Default::default()
        }
    }

    fn interval() -> LiveInterval {
        let reasons = vec![
            reason("IO", 300, dist(4_000, 8_000, 16_162_000)),
            reason("CPUID", 20, dist(50_000, 90_000, 95_000)),
            reason("MSR_READ", 1, None),
        ];
        LiveInterval {
            interval: 3,
            start_s: 4.0,
            seconds: 2.0,
            records: 640,
            lost_events: 7,
            events: [("kvm_pio".to_string(), 300), ("kvm_cpuid".to_string(), 20)]
                .into_iter()
                .collect(),
            exits: ExitsReport {
                source: "tracepoints".into(),
                exits: 321,
                timestamp_resolution_ns: Some(1000),
                vcpus: vec![
                    VcpuExits { vcpu: "tid 7".into(), exits: 300, reasons: reasons[..1].to_vec() },
                    VcpuExits { vcpu: "tid 8".into(), exits: 21, reasons: reasons[1..].to_vec() },
                ],
                reasons,
                ..Default::default()
            },
        }
    }

    fn screen(view: &TopView) -> String {
        let mut out = Vec::new();
        write_screen(&interval(), view, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_shows_counts_rates_and_gaps_sorted_by_count() {
        let view =
            TopView { target: "bench inl_from_kernel".into(), keys: true, ..Default::default() };
        let s = screen(&view);
        let expected = "\
exitscope top · bench inl_from_kernel · interval 3 at 4.0 s (2.00 s) · 321 exits · 7 lost
inter-arrival per vCPU (only reason-specific tracepoints fire; 1 us resolution)  sort: count

REASON               COUNT*      RATE/s     GAP P50     GAP P99     GAP MAX
IO                      300       150.0    4.000 us    8.000 us   16.162 ms
CPUID                    20        10.0   50.000 us   90.000 us   95.000 us
MSR_READ                  1         0.5           -           -           -

Events: kvm_cpuid 20, kvm_pio 300
keys: s sort, q quit
";
        assert_eq!(s, expected);
    }

    #[test]
    fn every_column_sorts_and_the_cycle_comes_back() {
        let mut view = TopView::default();
        let first_rows = |view: &TopView| -> Vec<String> {
            screen(view)
                .lines()
                .skip(4)
                .take(3)
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect()
        };
        let mut seen = Vec::new();
        for _ in 0..5 {
            view.sort = view.sort.next();
            seen.push((view.sort.name(), first_rows(&view)));
        }
        assert_eq!(
            seen,
            [
                ("p50", vec!["CPUID".into(), "IO".into(), "MSR_READ".into()]),
                ("p99", vec!["CPUID".into(), "IO".into(), "MSR_READ".into()]),
                ("max", vec!["IO".into(), "CPUID".into(), "MSR_READ".into()]),
                ("reason", vec!["CPUID".into(), "IO".into(), "MSR_READ".into()]),
                ("count", vec!["IO".into(), "CPUID".into(), "MSR_READ".into()]),
            ]
        );
        view.sort = SortColumn::Max;
        assert!(screen(&view).contains("GAP MAX*"));
    }

    #[test]
    fn per_vcpu_rows_and_handling_time_columns() {
        let mut iv = interval();
        iv.exits.handling_time_available = true;
        for v in &mut iv.exits.vcpus {
            for r in &mut v.reasons {
                r.handling = dist(1_200, 3_400, 9_000);
            }
        }
        let view = TopView { per_vcpu: true, ..Default::default() };
        let mut out = Vec::new();
        write_screen(&iv, &view, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("handling time = kvm_exit -> kvm_entry (1 us resolution)  sort: count\n")
        );
        assert!(s.contains("VCPU   REASON               COUNT*      RATE/s         P50         P99         MAX\n"), "{s}");
        assert!(s.contains("tid 7  IO                      300       150.0    1.200 us    3.400 us    9.000 us\n"), "{s}");
        assert!(s.contains("tid 8  MSR_READ                  1         0.5    1.200 us"), "{s}");
        assert!(!s.contains("q quit"), "no key help without a terminal");
    }

    #[test]
    fn an_empty_interval_says_so_and_json_is_one_line() {
        let iv = LiveInterval { interval: 1, seconds: 1.0, ..Default::default() };
        let mut out = Vec::new();
        write_screen(&iv, &TopView::default(), &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("No VM exits in this interval."));
        let mut j = Vec::new();
        write_json_line(&interval(), &mut j).unwrap();
        let text = String::from_utf8(j).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["exits"]["reasons"][0]["reason"], "IO");
        assert_eq!(v["exits"]["reasons"][0]["inter_arrival"]["p99_ns"], 8000);
        assert_eq!(v["exits"]["vcpus"][1]["vcpu"], "tid 8");
        assert_eq!(v["lost_events"], 7);
    }
}
