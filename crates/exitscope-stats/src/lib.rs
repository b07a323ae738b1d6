//! Distribution-free statistics for exitscope's A/B verdicts.
//!
//! # Brief overview
//!
//! Everything works on [`Samples`], a multiset of `(value, count)` pairs, so that the same
//! code serves ten benchmark repeats (each with count 1) and two latency histograms with
//! millions of exits (bucket value, count). Nothing assumes a normal distribution: VM-exit
//! timings are skewed and have outliers from preemption and interrupts.
//!
//! - [`Samples::median_ci`]: the median with a distribution-free confidence interval from
//!   order statistics. The number of samples below the true median is Binomial(n, ½), so
//!   `[x₍ₗ₎, x₍ₙ₊₁₋ₗ₎]` covers it with probability `1 − 2·P(B ≤ l − 1)`; `l` is the largest
//!   rank whose coverage is still at least the requested level (Conover, *Practical
//!   Nonparametric Statistics*, confidence interval for a quantile; David & Nagaraja,
//!   *Order Statistics*). The achieved coverage is returned, and with fewer than 6 samples no
//!   95 % interval exists (`[min, max]` of 5 covers only 93.75 %).
//! - [`shift`]: B − A as a location shift. The Hodges–Lehmann estimate is the median of all
//!   pairwise differences `b − a` (Hodges & Lehmann 1963), the confidence interval is the pair
//!   of order statistics of those differences given by the null distribution of the
//!   Mann–Whitney U statistic (Mann & Whitney 1947; the interval of Moses and Lehmann 1963,
//!   Bauer 1972, as in Hollander & Wolfe, *Nonparametric Statistical Methods*, two-sample
//!   location problem, and R's `wilcox.test(conf.int = TRUE)`). U's distribution is exact
//!   for up to [`EXACT_MAX_N`] samples per side without ties, and otherwise the normal
//!   approximation with the tie correction of the variance.
//! - [`Verdict`]: slower or faster when the test rejects "no shift" at the level (for data
//!   without ties exactly when the interval excludes 0; with ties an end of the interval can
//!   sit on 0 while a shift of exactly 0 is rejected), otherwise no significant difference;
//!   insufficient data when no interval exists at that level.
//!
//! The Hodges–Lehmann shift is not the difference of the two medians (it is the median of
//! the differences); callers that print both should say which is which.
//!
//! ```
//! use exitscope_stats::{Samples, Verdict, shift};
//! let a = Samples::from_values([100.0, 101.0, 99.0, 100.5, 100.2, 99.8])?;
//! let b = Samples::from_values([110.0, 111.1, 108.9, 110.6, 110.2, 109.8])?;
//! let s = shift(&a, &b, 0.95)?;
//! assert_eq!(s.verdict(), Verdict::Slower);
//! assert!(s.ci.unwrap().low > 0.0);
//! // Histograms work the same way: (bucket value, count).
//! let h = Samples::from_counts([(1000.0, 900_000), (1200.0, 90_000), (5000.0, 10_000)])?;
//! assert_eq!(h.median(), Some(1000.0));
//! # Ok::<(), exitscope_stats::StatsError>(())
//! ```
//!
//! # References
//!
//! - H. B. Mann, D. R. Whitney (1947), "On a test of whether one of two random variables is
//!   stochastically larger than the other", *Annals of Mathematical Statistics* 18, 50–60.
//! - J. L. Hodges, E. L. Lehmann (1963), "Estimates of location based on rank tests",
//!   *Annals of Mathematical Statistics* 34, 598–611.
//! - E. L. Lehmann (1963), "Nonparametric confidence intervals for a shift parameter",
//!   *Annals of Mathematical Statistics* 34, 1507–1512.
//! - D. F. Bauer (1972), "Constructing confidence sets using rank statistics", *Journal of
//!   the American Statistical Association* 67, 687–690.
//! - M. Hollander, D. A. Wolfe, *Nonparametric Statistical Methods*, Wiley.
//! - W. J. Conover, *Practical Nonparametric Statistics*, 3rd ed., Wiley (1999).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// The confidence level exitscope reports.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// A median interval wider than this fraction of the median gets a warning: a change of 5 %
/// (what a mitigation or a KVM patch typically moves) would not be visible.
pub const WIDE_CI_FRACTION: f64 = 0.05;
/// Up to this many samples per side (and no ties) U's null distribution is computed exactly.
pub const EXACT_MAX_N: u64 = 50;
/// Largest number of distinct (a, b) value pairs [`shift`] materializes (16 MiB): e.g. two
/// histograms of 1024 buckets each.
pub const MAX_PAIRS: usize = 1 << 20;

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A value was NaN or infinite.
    #[error("sample {index} is {value}, not a finite number")]
    NotFinite {
        /// Position in the input.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The counts add up to more than 2^64 − 1.
    #[error("sample counts add up to more than 2^64 - 1")]
    CountOverflow,
    /// One side has no samples.
    #[error("{0} has no samples")]
    Empty(&'static str),
    /// Too many distinct values on both sides for the pairwise differences.
    #[error(
        "{a} × {b} distinct values make more than {MAX_PAIRS} pairs; merge them into coarser \
         buckets first"
    )]
    TooManyPairs {
        /// Distinct values in A.
        a: usize,
        /// Distinct values in B.
        b: usize,
    },
    /// The confidence level is not strictly between 0 and 1.
    #[error("confidence level {0} is not between 0 and 1")]
    BadConfidence(f64),
}

/// A confidence interval and the coverage it actually has.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Coverage probability: exact for order-statistics and exact-U intervals (at least the
    /// requested level, often more, since ranks are integers), nominal for the normal
    /// approximation.
    pub confidence: f64,
}

impl Interval {
    /// `high − low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    /// Width as a fraction of `|of|` (None when `of` is 0).
    pub fn relative_width(&self, of: f64) -> Option<f64> {
        (of != 0.0).then(|| self.width() / of.abs())
    }

    /// True if `x` lies inside, ends included.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// A multiset of finite values, kept as sorted distinct `(value, count)` pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    points: Vec<(f64, u64)>,
    total: u64,
}

impl Samples {
    /// One sample per value.
    ///
    /// # Errors
    ///
    /// [`StatsError::NotFinite`] for NaN or infinity.
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Result<Self, StatsError> {
        Self::from_counts(values.into_iter().map(|v| (v, 1)))
    }

    /// `(value, count)` pairs in any order, repeated values allowed (a histogram's buckets,
    /// or several histograms merged). Zero counts are dropped.
    ///
    /// # Errors
    ///
    /// [`StatsError::NotFinite`] for NaN or infinity, [`StatsError::CountOverflow`].
    pub fn from_counts(pairs: impl IntoIterator<Item = (f64, u64)>) -> Result<Self, StatsError> {
        let mut points = Vec::new();
        for (index, (value, count)) in pairs.into_iter().enumerate() {
            if !value.is_finite() {
                return Err(StatsError::NotFinite { index, value });
            }
            if count > 0 {
                // -0.0 and 0.0 are one value.
                points.push((value + 0.0, count));
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, u64)> = Vec::with_capacity(points.len());
        let mut total = 0u64;
        for (value, count) in points {
            total = total.checked_add(count).ok_or(StatsError::CountOverflow)?;
            match merged.last_mut() {
                Some(last) if last.0 == value => last.1 += count,
                _ => merged.push((value, count)),
            }
        }
        Ok(Samples { points: merged, total })
    }

    /// Number of samples (sum of the counts).
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Distinct values, ascending, with their counts.
    pub fn points(&self) -> &[(f64, u64)] {
        &self.points
    }

    /// True if some value occurs more than once.
    pub fn has_ties(&self) -> bool {
        self.points.iter().any(|p| p.1 > 1)
    }

    /// The `rank`-th smallest value, 1-based (None outside `1..=len`).
    pub fn nth_smallest(&self, rank: u64) -> Option<f64> {
        nth_weighted(&self.points, u128::from(rank))
    }

    /// Smallest value.
    pub fn min(&self) -> Option<f64> {
        self.points.first().map(|p| p.0)
    }

    /// Largest value.
    pub fn max(&self) -> Option<f64> {
        self.points.last().map(|p| p.0)
    }

    /// The median (mean of the two middle values for an even count).
    pub fn median(&self) -> Option<f64> {
        weighted_median(&self.points, u128::from(self.total))
    }

    /// Distribution-free confidence interval for the median from order statistics; `None`
    /// when there are too few samples for `confidence` (fewer than 6 for 95 %).
    ///
    /// # Errors
    ///
    /// [`StatsError::BadConfidence`].
    pub fn median_ci(&self, confidence: f64) -> Result<Option<Interval>, StatsError> {
        let alpha_half = half_alpha(confidence)?;
        let n = self.total;
        if n == 0 {
            return Ok(None);
        }
        let binomial = Binomial::new(0.5, n).map_err(|_| StatsError::BadConfidence(confidence))?;
        // Largest j with P(B <= j) <= alpha/2; the interval is [x_(j+1), x_(n-j)].
        if binomial.cdf(0) > alpha_half {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0u64, (n - 1) / 2);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if binomial.cdf(mid) <= alpha_half { lo = mid } else { hi = mid - 1 }
        }
        let j = lo;
        let low = self.nth_smallest(j + 1);
        let high = self.nth_smallest(n - j);
        Ok(low.zip(high).map(|(low, high)| Interval {
            low,
            high,
            confidence: 1.0 - 2.0 * binomial.cdf(j),
        }))
    }
}

fn half_alpha(confidence: f64) -> Result<f64, StatsError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok((1.0 - confidence) / 2.0)
    } else {
        Err(StatsError::BadConfidence(confidence))
    }
}

/// The `rank`-th smallest (1-based) of sorted weighted points.
fn nth_weighted(points: &[(f64, u64)], rank: u128) -> Option<f64> {
    if rank == 0 {
        return None;
    }
    let mut seen = 0u128;
    for &(value, count) in points {
        seen += u128::from(count);
        if seen >= rank {
            return Some(value);
        }
    }
    None
}

fn weighted_median(points: &[(f64, u64)], total: u128) -> Option<f64> {
    let lo = nth_weighted(points, total.div_ceil(2))?;
    let hi = nth_weighted(points, total / 2 + 1)?;
    Some(lo + (hi - lo) / 2.0)
}

/// How U's null distribution was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Exact permutation distribution (no ties, at most [`EXACT_MAX_N`] per side).
    Exact,
    /// Normal approximation with tie-corrected variance (continuity-corrected p-value).
    Normal,
}

/// What the interval of B − A says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The interval lies above 0: B's values are larger (for latencies, B is slower).
    Slower,
    /// The interval lies below 0: B's values are smaller (B is faster).
    Faster,
    /// The interval contains 0.
    NoSignificantDifference,
    /// Too few samples for an interval at this confidence level.
    InsufficientData,
}

impl Verdict {
    /// Lower-case words, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::InsufficientData => "insufficient data",
        }
    }
}

/// B − A as a location shift, with the Mann–Whitney test behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    /// Samples in A.
    pub n_a: u64,
    /// Samples in B.
    pub n_b: u64,
    /// Hodges–Lehmann estimate: the median of all pairwise differences `b − a`.
    pub estimate: f64,
    /// Confidence interval of the shift; `None` when the samples are too few for the level
    /// (fewer than 4 per side for 95 % with equal sizes). Its ends are order statistics of
    /// the differences; with tied values an end can equal 0 although a shift of exactly 0 is
    /// rejected (the interval is open there): [`Shift::significant`] decides.
    pub ci: Option<Interval>,
    /// Mann–Whitney U of B: the number of pairs with `b > a`, plus half the tied pairs.
    pub u: f64,
    /// Two-sided p-value of "A and B come from the same distribution".
    pub p_value: f64,
    /// How U's distribution was evaluated.
    pub method: Method,
    /// True when the two-sided test rejects "no shift" at the level asked for
    /// (`p_value <= 1 − confidence`).
    pub significant: bool,
}

impl Shift {
    /// Slower, faster or neither: the test's decision, in the direction of U.
    pub fn verdict(&self) -> Verdict {
        #[allow(clippy::cast_precision_loss)] // a direction, not a figure
        let half = self.n_a as f64 * self.n_b as f64 / 2.0;
        match (self.ci, self.significant) {
            (None, _) => Verdict::InsufficientData,
            (Some(_), false) => Verdict::NoSignificantDifference,
            (Some(_), true) if self.u > half => Verdict::Slower,
            (Some(_), true) => Verdict::Faster,
        }
    }
}

/// Estimates the shift B − A with its confidence interval (see the crate docs).
///
/// Cost: O(Kₐ·K_b·log) for Kₐ and K_b distinct values, whatever the counts.
///
/// # Errors
///
/// [`StatsError::Empty`], [`StatsError::TooManyPairs`], [`StatsError::BadConfidence`].
pub fn shift(a: &Samples, b: &Samples, confidence: f64) -> Result<Shift, StatsError> {
    let alpha_half = half_alpha(confidence)?;
    if a.is_empty() {
        return Err(StatsError::Empty("A"));
    }
    if b.is_empty() {
        return Err(StatsError::Empty("B"));
    }
    let (ka, kb) = (a.points.len(), b.points.len());
    if ka.saturating_mul(kb) > MAX_PAIRS {
        return Err(StatsError::TooManyPairs { a: ka, b: kb });
    }
    let mut diffs: Vec<(f64, u64)> = Vec::with_capacity(ka * kb);
    for &(bv, bc) in &b.points {
        for &(av, ac) in &a.points {
            // Counts above 2^32 on both sides would overflow; saturate (ranks stay ordered).
            diffs.push((bv - av, bc.saturating_mul(ac)));
        }
    }
    diffs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (m, n) = (a.total, b.total);
    let pairs = u128::from(m) * u128::from(n);
    let estimate = weighted_median(&diffs, pairs).unwrap_or(0.0);
    let (u, tie_sum) = mann_whitney_u(a, b);

    let exact = tie_sum == 0.0 && m <= EXACT_MAX_N && n <= EXACT_MAX_N;
    #[allow(clippy::cast_precision_loss)] // m, n and their product are far below 2^53 here
    let (mf, nf, pf) = (m as f64, n as f64, pairs as f64);
    let (ci_rank, coverage, p_value, method) = if exact {
        let dist = u_null_distribution(m, n);
        let cdf = |k: u64| dist.iter().take(usize::try_from(k).unwrap_or(usize::MAX) + 1).sum();
        // Largest k >= 1 with P(U <= k - 1) <= alpha/2.
        let mut k = 0u64;
        let mut below = 0.0;
        while k < m * n && below + dist[usize::try_from(k).unwrap_or(0)] <= alpha_half {
            below += dist[usize::try_from(k).unwrap_or(0)];
            k += 1;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // U is an integer
        let ui = u.round() as u64;
        let lower: f64 = cdf(ui);
        let upper: f64 = 1.0 - if ui == 0 { 0.0 } else { cdf(ui - 1) };
        let p = (2.0 * lower.min(upper)).min(1.0);
        (u128::from(k), 1.0 - 2.0 * below, p, Method::Exact)
    } else {
        let total = mf + nf;
        let var = pf / 12.0 * ((total + 1.0) - tie_sum / (total * (total - 1.0)));
        let sd = var.max(0.0).sqrt();
        let normal = Normal::standard();
        if sd == 0.0 {
            // Every value is the same: every difference is 0.
            (1, confidence, 1.0, Method::Normal)
        } else {
            let z = normal.inverse_cdf(1.0 - alpha_half);
            let k = (pf / 2.0 - z * sd).floor();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // k >= 1 checked
            let k = if k >= 1.0 { k as u128 } else { 0 };
            let zs = ((u - pf / 2.0).abs() - 0.5).max(0.0) / sd;
            (k, confidence, (2.0 * normal.sf(zs)).min(1.0), Method::Normal)
        }
    };
    let ci = if ci_rank >= 1 {
        nth_weighted(&diffs, ci_rank)
            .zip(nth_weighted(&diffs, pairs + 1 - ci_rank))
            .map(|(low, high)| Interval { low, high, confidence: coverage })
    } else {
        None
    };
    let significant = ci.is_some() && p_value <= 2.0 * alpha_half;
    Ok(Shift { n_a: m, n_b: n, estimate, ci, u, p_value, method, significant })
}

/// U of B (pairs with b > a, ties count ½) and Σ(t³ − t) over tied groups of the pooled
/// sample, by one merge of the sorted points.
fn mann_whitney_u(a: &Samples, b: &Samples) -> (f64, f64) {
    let mut u = 0.0f64;
    let mut tie_sum = 0.0f64;
    let mut below = 0u64; // A's samples smaller than the current value
    let (mut i, mut j) = (0, 0);
    #[allow(clippy::cast_precision_loss)] // counts as weights; rounding far below 1 %
    let f = |x: u64| x as f64;
    while i < a.points.len() || j < b.points.len() {
        let av = a.points.get(i).map_or(f64::INFINITY, |p| p.0);
        let bv = b.points.get(j).map_or(f64::INFINITY, |p| p.0);
        let v = av.min(bv);
        let ac = if av == v { a.points[i].1 } else { 0 };
        let bc = if bv == v { b.points[j].1 } else { 0 };
        u += f(bc) * (f(below) + f(ac) / 2.0);
        let t = f(ac) + f(bc);
        tie_sum += t * t * t - t;
        below += ac;
        if av == v {
            i += 1;
        }
        if bv == v {
            j += 1;
        }
    }
    (u, tie_sum)
}

/// P(U = u) for u in 0..=m·n under the null hypothesis, no ties: the coefficients of the
/// Gaussian binomial [m+n choose m]_q, divided by C(m+n, m).
fn u_null_distribution(m: u64, n: u64) -> Vec<f64> {
    let (m, n) = (usize::try_from(m).unwrap_or(0), usize::try_from(n).unwrap_or(0));
    // g[k]: coefficients of [N choose k]_q for the current N, k <= m.
    let mut g: Vec<Vec<f64>> = vec![vec![1.0]];
    for big_n in 1..=m + n {
        let kmax = m.min(big_n);
        let mut next = Vec::with_capacity(kmax + 1);
        for k in 0..=kmax {
            // [N, k] = [N-1, k-1] + q^k [N-1, k]
            let mut p = vec![0.0; k * (big_n - k) + 1];
            if k >= 1 {
                for (i, c) in g[k - 1].iter().enumerate() {
                    p[i] += c;
                }
            }
            if let Some(prev) = g.get(k).filter(|_| k < big_n) {
                for (i, c) in prev.iter().enumerate() {
                    p[i + k] += c;
                }
            }
            next.push(p);
        }
        g = next;
    }
    let counts = g.swap_remove(m);
    let total: f64 = counts.iter().sum();
    counts.into_iter().map(|c| c / total).collect()
}

#[cfg(test)]
mod tests;
