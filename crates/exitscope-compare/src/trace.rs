//! Comparing two traces exit reason by exit reason, from the analysis' per-reason histograms.
//!
//! Each side is an [`exitscope_analyze::report::Report`] (the `report --json` document) of
//! one recording. Per exit reason the row compares one latency distribution that both sides
//! have, the best available first:
//!
//! 1. `total`: the whole exit, from function_graph traces;
//! 2. `handling`: `kvm_exit` → `kvm_entry`;
//! 3. `inter_arrival`: the time between two exits of that reason on one vCPU, the only time
//!    reason-specific tracepoints give (`kvm_pio`, `kvm_cpuid`, ... on PVM hosts). It moves
//!    with the exit's cost and with everything else the guest does in between.
//!
//! The samples are the histogram's bins as `(value, count)` (see
//! [`exitscope_analyze::histogram`]): exact values while a reason has at most
//! [`exitscope_analyze::histogram::EXACT_LIMIT`] exits, then buckets of 1/512 of the value,
//! each counted as its lower bound (as the report's percentiles are). When the two sides have
//! too many distinct values for the pairwise differences ([`exitscope_stats::MAX_PAIRS`]),
//! both are regrouped into coarser buckets, halving the buckets per power of two until they
//! fit. [`Resolution`] says what a row was computed from; the interval of the shift is no
//! finer than it, nor than the trace's timestamps (1 µs for kernel text).

use exitscope_analyze::exits::ReasonStats;
use exitscope_analyze::histogram::{Distribution, Histogram, HistogramBin};
use exitscope_analyze::report::Report;
use exitscope_stats::{MAX_PAIRS, Samples};
use serde::{Deserialize, Serialize};

use crate::{Comparison, Row, Source, compare_samples};

/// What the values of an exit row were compared at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// Both sides' values as recorded (every bin one value).
    pub exact: bool,
    /// Otherwise: buckets per power of two (512: each bucket spans < 0.2 % of its values;
    /// 64: < 1.6 %).
    pub buckets_per_octave: Option<u32>,
    /// The coarser of the two traces' timestamp steps in ns (1000 for kernel text, which
    /// prints microseconds; 1 for trace.dat).
    pub timestamp_ns: Option<u64>,
}

impl Resolution {
    /// Short form for a table cell: `exact`, `1/512`, with `@1us` for microsecond timestamps.
    pub fn short(&self) -> String {
        let values = match (self.exact, self.buckets_per_octave) {
            (true, _) | (false, None) => "exact".to_string(),
            (false, Some(n)) => format!("1/{n}"),
        };
        match self.timestamp_ns {
            Some(t) if t >= 1000 && t % 1000 == 0 => format!("{values}@{}us", t / 1000),
            Some(t) if t > 1 => format!("{values}@{t}ns"),
            _ => values,
        }
    }
}

/// The latency a row compares: the best measure both sides have.
fn measure<'r>(
    a: Option<&'r ReasonStats>,
    b: Option<&'r ReasonStats>,
) -> Option<(&'static str, Option<&'r Distribution>, Option<&'r Distribution>)> {
    type Pick = fn(&ReasonStats) -> Option<&Distribution>;
    let measures: [(&'static str, Pick); 3] = [
        ("total", |r| r.total.as_ref()),
        ("handling", |r| r.handling.as_ref()),
        ("inter_arrival", |r| r.inter_arrival.as_ref()),
    ];
    let get = |r: Option<&'r ReasonStats>, f: Pick| r.and_then(|r| f(r));
    // Both sides first; else what one side has (the other is then "not measured").
    measures
        .iter()
        .find(|(_, f)| get(a, *f).is_some() && get(b, *f).is_some())
        .or_else(|| measures.iter().find(|(_, f)| get(a, *f).is_some() || get(b, *f).is_some()))
        .map(|&(name, f)| (name, get(a, f), get(b, f)))
}

fn histogram(d: Option<&Distribution>) -> Histogram {
    let mut h = Histogram::default();
    if let Some(d) = d {
        d.histogram.merge_into(&mut h);
    }
    h
}

#[allow(clippy::cast_precision_loss)] // nanoseconds below 2^53 are exact in f64
fn samples(bins: &[HistogramBin]) -> Samples {
    Samples::from_counts(bins.iter().map(|b| (b.low_ns as f64, b.count))).unwrap_or_default()
}

/// A's and B's samples of one measure, regrouped until their pairs fit, and at what
/// resolution.
fn sample_pair(
    a: Option<&Distribution>,
    b: Option<&Distribution>,
    round_to: [Option<u64>; 2],
) -> (Samples, Samples, bool, u32) {
    let exact = [a, b].iter().flatten().all(|d| d.histogram.exact);
    let requantize = |h: Histogram, step: Option<u64>| match step {
        Some(step) if step > 1 => {
            let mut out = Histogram::default();
            for (v, n) in h.sorted() {
                out.add_n(v.saturating_add(step / 2) / step * step, n);
            }
            out
        }
        _ => h,
    };
    let (ha, hb) = (requantize(histogram(a), round_to[0]), requantize(histogram(b), round_to[1]));
    if exact {
        let (sa, sb) = (samples(&ha.to_json(512).bins), samples(&hb.to_json(512).bins));
        if sa.points().len().saturating_mul(sb.points().len()) <= MAX_PAIRS {
            return (sa, sb, true, 512);
        }
    }
    let mut per_octave = 512u32;
    loop {
        let (ba, bb) = (ha.log_bins(per_octave), hb.log_bins(per_octave));
        if ba.len().saturating_mul(bb.len()) <= MAX_PAIRS || per_octave == 1 {
            return (samples(&ba), samples(&bb), false, per_octave);
        }
        per_octave /= 2;
    }
}

/// One row for an exit reason. `timestamps` are A's and B's timestamp steps in ns
/// (`ExitsReport::timestamp_resolution_ns`): when they differ (a trace.dat against the
/// kernel's text, say), the finer side's values are rounded to the nearest multiple of the
/// coarser step first, as if it had been recorded at that resolution, so that the rounding
/// is not taken for a shift.
pub fn reason_row(
    reason: &str,
    a: Option<&ReasonStats>,
    b: Option<&ReasonStats>,
    timestamps: [Option<u64>; 2],
    confidence: f64,
) -> Row {
    let timestamp_ns = timestamps.iter().flatten().copied().max();
    let round_to = match timestamps {
        [Some(x), Some(y)] if x < y => [Some(y), None],
        [Some(x), Some(y)] if y < x => [None, Some(x)],
        _ => [None, None],
    };
    let Some((name, da, db)) = measure(a, b) else {
        let mut row =
            compare_samples(reason, "ns", &Samples::default(), &Samples::default(), confidence);
        row.measure = Some("none".into());
        row.note = Some("no timed exits on either side (counts only)".into());
        return row;
    };
    let (sa, sb, exact, per_octave) = sample_pair(da, db, round_to);
    let mut row = compare_samples(reason, "ns", &sa, &sb, confidence);
    row.measure = Some(name.to_string());
    row.resolution = Some(Resolution {
        exact,
        buckets_per_octave: (!exact).then_some(per_octave),
        timestamp_ns,
    });
    let mut notes: Vec<String> = Vec::new();
    match (a, b) {
        (None, _) => notes.push("no such exit in A".into()),
        (_, None) => notes.push("no such exit in B".into()),
        _ if da.is_none() => notes.push(format!("A has no {name} time for it")),
        _ if db.is_none() => notes.push(format!("B has no {name} time for it")),
        _ => {}
    }
    for (side, step) in ["A", "B"].into_iter().zip(round_to) {
        if let Some(step) = step {
            notes.push(format!(
                "{side}'s values rounded to {step} ns, the other trace's timestamp step"
            ));
        }
    }
    if name == "inter_arrival" && da.is_some() && db.is_some() {
        notes.push(
            "time between exits (tracepoints give no handling time): it moves with the exit's \
             cost and with the guest's work between exits"
                .into(),
        );
    }
    // A shift smaller than the trace can resolve is not a finding, whatever the test says
    // (heavily tied values make the test reject a zero shift for differences in rounding).
    #[allow(clippy::cast_precision_loss)] // a timestamp step
    let step = timestamp_ns.filter(|&t| t > 1).map_or(0.0, |t| t as f64);
    let bucket = match (exact, row.a.as_ref()) {
        (false, Some(a)) => a.median / f64::from(per_octave),
        _ => 0.0,
    };
    let finest = step.max(bucket);
    if let Some(s) = row.shift.as_ref().filter(|s| s.significant && s.estimate.abs() < finest) {
        notes.push(format!(
            "the shift ({:+.0} ns) is below what the values resolve ({finest:.0} ns: {}): not \
             counted as a difference",
            s.estimate,
            if step >= bucket { "the timestamps' step" } else { "the histogram's bucket" }
        ));
        row.verdict = exitscope_stats::Verdict::NoSignificantDifference;
    }
    if let Some(n) = row.note.take() {
        notes.push(n);
    }
    row.note = (!notes.is_empty()).then(|| notes.join("; "));
    row
}

/// Compares two trace reports exit reason by exit reason: A's reasons in A's order (most
/// frequent first), then those only B has. `a_name` and `b_name` name the sources.
pub fn compare_reports(
    a: &Report,
    a_name: &str,
    b: &Report,
    b_name: &str,
    confidence: f64,
) -> Comparison {
    let rows = reason_rows(a, b, confidence);
    Comparison::new(
        Source { path: a_name.to_string(), host: a.host.clone().unwrap_or_default() },
        Source { path: b_name.to_string(), host: b.host.clone().unwrap_or_default() },
        rows,
        confidence,
    )
}

/// The exit rows of two reports (see [`compare_reports`]).
pub fn reason_rows(a: &Report, b: &Report, confidence: f64) -> Vec<Row> {
    let (ra, rb) = (reasons(a), reasons(b));
    let mut names: Vec<&str> = ra.iter().map(|r| r.reason.as_str()).collect();
    for r in rb {
        if !names.contains(&r.reason.as_str()) {
            names.push(&r.reason);
        }
    }
    let step = |r: &Report| r.exits.as_ref().and_then(|e| e.timestamp_resolution_ns);
    let timestamps = [step(a), step(b)];
    names
        .into_iter()
        .map(|name| {
            let (x, y) =
                (ra.iter().find(|r| r.reason == name), rb.iter().find(|r| r.reason == name));
            reason_row(name, x, y, timestamps, confidence)
        })
        .collect()
}

fn reasons(r: &Report) -> &[ReasonStats] {
    r.exits.as_ref().map(|e| e.reasons.as_slice()).unwrap_or_default()
}
