//! A/B comparison of exitscope results: "is B really slower than A, and are A and B even
//! comparable?"
//!
//! # Brief overview
//!
//! A [`Comparison`] holds, in the order a reader needs them:
//!
//! 1. the environment difference of the two [`Fingerprint`]s ([`exitscope_host::differences`]),
//!    with the categories that make it an *unlike comparison* (different CPU, microcode,
//!    kernel, mitigations, KVM module or parameters, nesting);
//! 2. one [`Row`] per test (or, for traces, per exit reason): A's and B's median with their
//!    own confidence intervals, Δ = median(B) − median(A), the ratio, the Hodges–Lehmann
//!    shift B − A with its distribution-free confidence interval from the Mann–Whitney U
//!    distribution, and a [`Verdict`] from whether that interval excludes 0 (see
//!    [`exitscope_stats`] for the method and its references).
//!
//! Rows are built from [`Samples`], i.e. `(value, count)` pairs, by [`compare_samples`]: the
//! bench loader passes each repeat's cycles per iteration with count 1; a trace comparison
//! passes one latency histogram per exit reason (bucket value, count) and gets the same
//! rows, with the interval's resolution limited by the bucket width.
//!
//! ```no_run
//! use exitscope_compare::{bench, compare_bench};
//! let a = bench::load("a.json".as_ref())?;
//! let b = bench::load("runs/b".as_ref())?; // a `run -o` directory: runs/b/bench.json
//! let c = compare_bench(&a, &b, exitscope_stats::DEFAULT_CONFIDENCE);
//! for row in c.regressions_above(0.05) {
//!     println!("{} is slower by more than 5 %", row.name);
//! }
//! # Ok::<(), exitscope_compare::bench::LoadError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod trace;

use exitscope_host::{Difference, Fingerprint, differences, unlike_categories};
use exitscope_stats::{Interval, Samples, Shift, Verdict, WIDE_CI_FRACTION, shift};
use serde::{Deserialize, Serialize};

/// Version of the comparison JSON layout.
pub const SCHEMA_VERSION: u32 = 1;

/// How the numbers are computed, for the JSON document and the table footer.
pub const METHOD: &str = "Δ = median(B) − median(A); shift = Hodges–Lehmann estimate of B − A \
    (median of all pairwise differences) with its distribution-free confidence interval from \
    the Mann–Whitney U distribution (Bauer 1972; exact without ties up to 50 samples per side, \
    else normal approximation); verdict slower/faster when that interval excludes 0; median \
    intervals from order statistics (binomial ranks)";

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Where it was read from.
    pub path: String,
    /// Its environment (empty when the result carries none).
    pub host: Fingerprint,
}

/// A's or B's figures in one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideStats {
    /// Number of samples (repeats, or exits for a histogram).
    pub n: u64,
    /// Median.
    pub median: f64,
    /// Confidence interval of the median; `null` with too few samples.
    pub median_ci: Option<Interval>,
}

/// One test or exit reason, A against B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Test name or exit reason.
    pub name: String,
    /// Unit of the values (`cycles`, `ns`).
    pub unit: String,
    /// A's figures (`null` if A has no samples for it).
    pub a: Option<SideStats>,
    /// B's figures.
    pub b: Option<SideStats>,
    /// median(B) − median(A): positive means B is slower.
    pub delta: Option<f64>,
    /// median(B) / median(A) (only for a positive A median).
    pub ratio: Option<f64>,
    /// The shift B − A with its test and interval.
    pub shift: Option<Shift>,
    /// The shift's interval in percent of A's median.
    pub shift_ci_percent: Option<[f64; 2]>,
    /// Slower, faster, no significant difference, or insufficient data.
    pub verdict: Verdict,
    /// Why a row could not be compared, or a caveat (different CPL, dropped samples).
    pub note: Option<String>,
    /// Whether `--fail-above` looks at this row: not for the empty-loop check, whose median is
    /// ~0 cycles by construction, so any jitter is a huge percentage.
    pub gated: bool,
    /// For an exit reason of a trace: the latency compared (`total`, `handling`,
    /// `inter_arrival`, see [`trace`]); `null` for a bench test.
    #[serde(default)]
    pub measure: Option<String>,
    /// For an exit reason of a trace: the resolution of the values compared.
    #[serde(default)]
    pub resolution: Option<trace::Resolution>,
}

impl Row {
    /// The shift as a fraction of A's median (`None` without a positive A median).
    pub fn relative_shift(&self) -> Option<f64> {
        let a = self.a.as_ref()?.median;
        let s = self.shift.as_ref()?.estimate;
        (a > 0.0).then(|| s / a)
    }
}

/// A whole A/B comparison; serialized as `compare --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Version of this layout ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// How the numbers are computed ([`METHOD`]).
    pub method: String,
    /// The baseline.
    pub a: Source,
    /// The result compared with it.
    pub b: Source,
    /// Every environment difference, unlike ones first.
    pub environment: Vec<Difference>,
    /// Categories that make this an unlike comparison; empty when A and B are alike.
    pub unlike: Vec<String>,
    /// Conditions that make the figures themselves doubtful (an oversubscribed machine).
    pub warnings: Vec<String>,
    /// One row per test or exit reason, A's order first.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Builds a comparison of `rows` between two sources, computing the environment part.
    pub fn new(a: Source, b: Source, rows: Vec<Row>, confidence: f64) -> Comparison {
        let environment = differences(&a.host, &b.host);
        let unlike = unlike_categories(&environment).into_iter().map(str::to_string).collect();
        let warnings = [("A", &a), ("B", &b)]
            .into_iter()
            .filter_map(|(label, s)| oversubscribed(label, &s.host))
            .collect();
        Comparison {
            schema_version: SCHEMA_VERSION,
            confidence,
            method: METHOD.to_string(),
            a,
            b,
            environment,
            unlike,
            warnings,
            rows,
        }
    }

    /// Rows significantly slower in B by more than `fraction` of A's median (Hodges–Lehmann
    /// shift), e.g. `0.05` for `--fail-above 5%`.
    pub fn regressions_above(&self, fraction: f64) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.gated && r.verdict == Verdict::Slower)
            .filter(|r| r.relative_shift().is_some_and(|s| s > fraction))
            .collect()
    }
}

/// A warning when the 1-minute load average exceeded the online CPUs and the vCPU thread was
/// not real-time: runnable threads were waiting for a CPU, the vCPU thread among them, and
/// guest TSC cycles count that wait.
fn oversubscribed(label: &str, host: &Fingerprint) -> Option<String> {
    let sched = host.vcpu.as_ref().and_then(|v| v.sched.as_deref());
    if sched.is_some_and(|s| s.starts_with("SCHED_FIFO") || s.starts_with("SCHED_RR")) {
        return None;
    }
    let load = host.loadavg?[0];
    let cpus = exitscope_host::parse_cpu_list(host.online_cpus.as_deref()?)?.len();
    #[allow(clippy::cast_precision_loss)] // a CPU count
    let over = load > cpus as f64;
    over.then(|| {
        format!(
            "{label} ran with load average {load:.2} on {cpus} CPUs and a vCPU thread that was not \
             real-time: it waited for a CPU, and the guest's TSC counts that wait, so its \
             figures include scheduling delay (isolate a CPU, or `chrt -f 1` with --pin)"
        )
    })
}

fn side(s: &Samples, confidence: f64) -> Option<SideStats> {
    Some(SideStats {
        n: s.len(),
        median: s.median()?,
        median_ci: s.median_ci(confidence).ok().flatten(),
    })
}

/// True when the interval of `s` is wider than [`WIDE_CI_FRACTION`] of its median.
pub fn is_wide(s: &SideStats) -> bool {
    s.median_ci.and_then(|ci| ci.relative_width(s.median)).is_some_and(|w| w > WIDE_CI_FRACTION)
}

/// One row from two sets of samples (repeats, or histogram buckets with counts).
pub fn compare_samples(name: &str, unit: &str, a: &Samples, b: &Samples, confidence: f64) -> Row {
    let (sa, sb) = (side(a, confidence), side(b, confidence));
    let mut row = Row {
        name: name.to_string(),
        unit: unit.to_string(),
        delta: sa.as_ref().zip(sb.as_ref()).map(|(x, y)| y.median - x.median),
        ratio: sa
            .as_ref()
            .zip(sb.as_ref())
            .filter(|(x, _)| x.median > 0.0)
            .map(|(x, y)| y.median / x.median),
        a: sa,
        b: sb,
        shift: None,
        shift_ci_percent: None,
        verdict: Verdict::InsufficientData,
        note: None,
        gated: true,
        measure: None,
        resolution: None,
    };
    match shift(a, b, confidence) {
        Ok(s) => {
            row.verdict = s.verdict();
            if let (Some(ci), Some(a)) = (s.ci, row.a.as_ref().filter(|a| a.median > 0.0)) {
                row.shift_ci_percent =
                    Some([100.0 * ci.low / a.median, 100.0 * ci.high / a.median]);
            }
            if s.ci.is_none() {
                row.note = Some(format!(
                    "{} and {} samples are too few for a {:.0} % interval (4 per side at least)",
                    s.n_a,
                    s.n_b,
                    confidence * 100.0
                ));
            }
            row.shift = Some(s);
        }
        Err(e) => row.note = Some(e.to_string()),
    }
    row
}

/// Compares two bench results test by test (see [`mod@bench`]).
pub fn compare_bench(
    a: &bench::BenchResults,
    b: &bench::BenchResults,
    confidence: f64,
) -> Comparison {
    let mut names: Vec<&str> = a.tests.iter().map(|t| t.test.as_str()).collect();
    for t in &b.tests {
        if !names.contains(&t.test.as_str()) {
            names.push(&t.test);
        }
    }
    let rows = names
        .into_iter()
        .map(|name| {
            let (ta, tb) = (a.find(name), b.find(name));
            bench_row(name, ta, tb, confidence)
        })
        .collect();
    Comparison::new(
        Source { path: a.source.clone(), host: a.host.clone() },
        Source { path: b.source.clone(), host: b.host.clone() },
        rows,
        confidence,
    )
}

fn bench_row(
    name: &str,
    a: Option<&bench::BenchTest>,
    b: Option<&bench::BenchTest>,
    confidence: f64,
) -> Row {
    let samples = |t: Option<&bench::BenchTest>| {
        t.filter(|t| t.status == "ok")
            .and_then(|t| Samples::from_values(t.samples.iter().copied()).ok())
            .unwrap_or_default()
    };
    let mut row = compare_samples(name, "cycles", &samples(a), &samples(b), confidence);
    row.gated = ![a, b].iter().flatten().any(|t| t.exit_kind.as_deref() == Some("none"));
    let why = |t: Option<&bench::BenchTest>| match t {
        None => Some("not run".to_string()),
        Some(t) if t.status != "ok" => Some(format!(
            "{}{}",
            t.status,
            t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        )),
        Some(t) if t.samples.is_empty() => Some("no samples recorded".to_string()),
        Some(_) => None,
    };
    let mut notes: Vec<String> = match (why(a), why(b)) {
        (Some(x), Some(y)) if x == y => vec![format!("{x} in A and B")],
        (x, y) => {
            let x =
                x.map(|w| if w == "not run" { "not run in A".into() } else { format!("A: {w}") });
            let y =
                y.map(|w| if w == "not run" { "not run in B".into() } else { format!("B: {w}") });
            x.into_iter().chain(y).collect()
        }
    };
    if !notes.is_empty() {
        row.note = Some(notes.join("; "));
        return row;
    }
    if !row.gated {
        notes
            .push("empty-loop check (~0 cycles by construction): not gated by --fail-above".into());
    }
    if let (Some(x), Some(y)) = (a.and_then(|t| t.cpl), b.and_then(|t| t.cpl))
        && x != y
    {
        notes.push(format!("A ran at CPL{x}, B at CPL{y}: different code paths"));
    }
    for (t, label) in [(a, "A"), (b, "B")] {
        if let Some(t) = t.filter(|t| t.dropped_samples > 0) {
            notes.push(format!("{label}: {} samples were null and left out", t.dropped_samples));
        }
    }
    if let Some(n) = row.note.take() {
        notes.push(n);
    }
    row.note = (!notes.is_empty()).then(|| notes.join("; "));
    row
}

#[cfg(test)]
mod tests;
