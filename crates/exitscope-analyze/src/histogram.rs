//! Latency distributions with bounded memory: the one histogram of exitscope.
//!
//! The first [`EXACT_LIMIT`] values of a distribution are kept as they are, so percentiles of
//! small sets (most call paths of a trace) are exact. Beyond that the distribution switches to
//! log-linear buckets: 512 sub-buckets per power of two (relative error < 0.2 %, exact below
//! 1024 ns), stored as one lazily allocated array per power of two, so recording a value is an
//! array increment and memory per distribution stays a few KB however long the trace.
//!
//! # JSON
//!
//! Every histogram in a report has one shape ([`HistogramJson`]):
//!
//! ```text
//! {"sub_buckets": 512, "exact": true, "bins": [{"low_ns": 1082, "high_ns": 1083, "count": 1}, ...]}
//! ```
//!
//! Bins are non-empty, ascending and disjoint; `low_ns <= v < high_ns`. The bounds are fixed by
//! `sub_buckets` (per power of two: a power of two from 1 to 512), so histograms from any number
//! of reports can be merged by adding counts ([`HistogramJson::merge_into`]): while `exact` is
//! true every bin is one value (`high_ns = low_ns + 1`) and percentiles are exact; otherwise
//! values at or above `2 * sub_buckets` ns fall in buckets of relative width at most
//! `1 / sub_buckets`, which is the error of a percentile read from them. Exit statistics carry
//! 512 sub-buckets (< 0.2 %); the flat profile's display histograms 4.

use exitscope_model::Nanos;
use serde::{Deserialize, Serialize};

/// Values kept exactly before switching to buckets.
pub const EXACT_LIMIT: usize = 4096;
const SUB_BITS: u32 = 9;
const SUBS: usize = 1 << SUB_BITS;
const LINEAR_LIMIT: u64 = 1 << (SUB_BITS + 1); // 1024: below this every value is its own bucket

/// A distribution of durations.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Raw values while there are at most EXACT_LIMIT of them.
    exact: Vec<Nanos>,
    /// Bucket counts per "octave" (index 0: values 0..1024 one per value, split in two arrays
    /// of 512; index k >= 2: values in [2^(k+8), 2^(k+9)) in 512 buckets).
    octaves: Vec<Option<Box<[u64; SUBS]>>>,
    bucketed: bool,
    total: u64,
}

impl Histogram {
    /// Record one value.
    pub fn add(&mut self, v: Nanos) {
        self.total += 1;
        if !self.bucketed {
            self.exact.push(v);
            if self.exact.len() > EXACT_LIMIT {
                self.fold();
            }
            return;
        }
        self.bump(v, 1);
    }

    /// Record `n` copies of `v`.
    pub fn add_n(&mut self, v: Nanos, n: u64) {
        if n == 0 {
            return;
        }
        if !self.bucketed
            && self.exact.len() + usize::try_from(n).unwrap_or(usize::MAX) <= EXACT_LIMIT
        {
            self.total += n;
            self.exact.extend(std::iter::repeat_n(v, n as usize));
            return;
        }
        if !self.bucketed {
            self.fold();
        }
        self.total += n;
        self.bump(v, n);
    }

    fn bump(&mut self, v: Nanos, n: u64) {
        let k = bucket_of(v);
        let (oct, sub) = (k as usize / SUBS, k as usize % SUBS);
        if self.octaves.len() <= oct {
            self.octaves.resize_with(oct + 1, || None);
        }
        let arr = self.octaves[oct].get_or_insert_with(|| Box::new([0u64; SUBS]));
        arr[sub] += n;
    }

    /// Merge another distribution into this one: the same as adding `other`'s values one by
    /// one, without going through them where it can (the parts of a chunked analysis).
    pub fn merge(&mut self, other: &Histogram) {
        if !other.bucketed {
            if self.bucketed {
                for &v in &other.exact {
                    self.bump(v, 1);
                }
            } else {
                // No sort: the values are kept in any order until they fold.
                self.exact.extend_from_slice(&other.exact);
                if self.exact.len() > EXACT_LIMIT {
                    self.fold();
                }
            }
            self.total += other.total;
            return;
        }
        if !self.bucketed && self.exact.len() as u64 + other.total <= EXACT_LIMIT as u64 {
            // Only a histogram read back from bucketed JSON is bucketed with this few
            // values; its bucket bounds stay exact values here, as `add_n` keeps them.
            for (v, n) in other.sorted() {
                self.add_n(v, n);
            }
            return;
        }
        if !self.bucketed {
            self.fold();
        }
        if self.octaves.len() < other.octaves.len() {
            self.octaves.resize_with(other.octaves.len(), || None);
        }
        for (mine, theirs) in self.octaves.iter_mut().zip(&other.octaves) {
            let Some(theirs) = theirs else { continue };
            match mine {
                Some(arr) => {
                    for (a, &b) in arr.iter_mut().zip(theirs.iter()) {
                        *a += b;
                    }
                }
                None => *mine = Some(theirs.clone()),
            }
        }
        self.total += other.total;
    }

    /// An empty histogram that keeps its first values in `buf` (emptied), an allocation
    /// handed back by [`Histogram::take_buffer`]: a chunk's part makes thousands of small
    /// histograms, and growing each from nothing costs more than filling it.
    pub(crate) fn with_buffer(mut buf: Vec<Nanos>) -> Histogram {
        buf.clear();
        Histogram { exact: buf, ..Histogram::default() }
    }

    /// The allocation of the exact values, for [`Histogram::with_buffer`] (the histogram is
    /// left with no exact values: only for one about to be dropped).
    pub(crate) fn take_buffer(&mut self) -> Vec<Nanos> {
        std::mem::take(&mut self.exact)
    }

    fn fold(&mut self) {
        self.bucketed = true;
        for v in std::mem::take(&mut self.exact) {
            self.bump(v, 1);
        }
    }

    /// Whether percentiles are exact (no switch to buckets happened).
    pub fn is_exact(&self) -> bool {
        !self.bucketed
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Sorted (value, count) pairs; once bucketed, the value is the bucket's lower bound.
    pub fn sorted(&self) -> Vec<(Nanos, u64)> {
        if !self.bucketed {
            let mut v = self.exact.clone();
            v.sort_unstable();
            let mut out: Vec<(Nanos, u64)> = Vec::new();
            for x in v {
                match out.last_mut() {
                    Some((y, n)) if *y == x => *n += 1,
                    _ => out.push((x, 1)),
                }
            }
            return out;
        }
        let mut out = Vec::new();
        for (oct, arr) in self.octaves.iter().enumerate() {
            if let Some(arr) = arr {
                for (sub, &n) in arr.iter().enumerate() {
                    if n > 0 {
                        out.push((bucket_low((oct * SUBS + sub) as u64), n));
                    }
                }
            }
        }
        out
    }

    /// Nearest-rank percentiles (`q` in 0..=100) for several `q` at once; `None` when empty.
    /// The value at rank `ceil(q/100 * n)` (at least 1) in ascending order.
    pub fn percentiles(&self, qs: &[f64]) -> Vec<Option<Nanos>> {
        if self.total == 0 {
            return vec![None; qs.len()];
        }
        let sorted = self.sorted();
        qs.iter()
            .map(|&q| {
                let rank = rank_for(q, self.total);
                let mut seen = 0u64;
                for &(v, n) in &sorted {
                    seen += n;
                    if seen >= rank {
                        return Some(v);
                    }
                }
                sorted.last().map(|&(v, _)| v)
            })
            .collect()
    }
}

/// One bin of a histogram: values in `low_ns..high_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// Inclusive lower bound.
    pub low_ns: Nanos,
    /// Exclusive upper bound.
    pub high_ns: Nanos,
    /// Values in the bin.
    pub count: u64,
}

/// The JSON form of a [`Histogram`] (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramJson {
    /// Sub-buckets per power of two that fix the bin bounds (1..=512, a power of two).
    pub sub_buckets: u32,
    /// Every bin holds exactly one value: percentiles are exact.
    pub exact: bool,
    /// Non-empty bins, ascending.
    pub bins: Vec<HistogramBin>,
}

impl HistogramJson {
    /// Add this histogram's counts to `h` (each bin counts as its lower bound, which is exact
    /// for exact bins and falls in the same bucket otherwise when `sub_buckets` is 512).
    pub fn merge_into(&self, h: &mut Histogram) {
        for b in &self.bins {
            if self.exact {
                h.add_n(b.low_ns, b.count);
            } else {
                h.add_bucket(b.low_ns, b.high_ns, b.count);
            }
        }
    }
}

impl Histogram {
    /// The JSON form at `sub_buckets` per power of two (clamped to a power of two in 1..=512):
    /// exact values while the histogram is exact, else buckets of that resolution.
    pub fn to_json(&self, sub_buckets: u32) -> HistogramJson {
        let sub = sub_buckets.clamp(1, 512).next_power_of_two().min(512);
        let exact = self.is_exact();
        let mut bins: Vec<HistogramBin> = Vec::new();
        for (v, n) in self.sorted() {
            let (low, high) = if exact { (v, v.saturating_add(1)) } else { bin_bounds(v, sub) };
            match bins.last_mut() {
                Some(b) if b.low_ns == low => b.count += n,
                _ => bins.push(HistogramBin { low_ns: low, high_ns: high, count: n }),
            }
        }
        HistogramJson { sub_buckets: sub, exact, bins }
    }

    /// Log-scaled bins, `per_octave` bins per power of two, for plotting (the bins of
    /// [`Histogram::to_json`] with the histogram's exact values grouped too).
    pub fn log_bins(&self, per_octave: u32) -> Vec<HistogramBin> {
        let sub = per_octave.clamp(1, 512).next_power_of_two().min(512);
        let mut bins: Vec<HistogramBin> = Vec::new();
        for (v, n) in self.sorted() {
            let (low, high) = bin_bounds(v, sub);
            match bins.last_mut() {
                Some(b) if b.low_ns == low => b.count += n,
                _ => bins.push(HistogramBin { low_ns: low, high_ns: high, count: n }),
            }
        }
        bins
    }

    /// Record `n` values known only to lie in `low..high` (a bucket of a merged histogram):
    /// they count as `low`, and the histogram is no longer exact.
    pub fn add_bucket(&mut self, low: Nanos, high: Nanos, n: u64) {
        if n == 0 {
            return;
        }
        if high > low.saturating_add(1) && !self.bucketed {
            self.fold();
        }
        self.add_n(low, n);
    }
}

/// Bin of `v` at `sub` (a power of two) bins per octave: octave `[2^e, 2^(e+1))` split into
/// `sub` equal parts; octaves narrower than `sub` ns get one bin per value.
fn bin_bounds(v: Nanos, sub: u32) -> (Nanos, Nanos) {
    if v == 0 {
        return (0, 1);
    }
    let e = 63 - v.leading_zeros();
    let base = 1u128 << e;
    let p = u128::from(sub);
    if base < p {
        return (v, v + 1);
    }
    let j = (u128::from(v) - base) * p / base;
    let low = base + j * base / p;
    let high = base + (j + 1) * base / p;
    (u64::try_from(low).unwrap_or(u64::MAX), u64::try_from(high).unwrap_or(u64::MAX))
}

/// Statistics of a set of durations.
#[derive(Clone, Debug, Default)]
pub struct DurationStats {
    /// Calls counted (timed or not).
    pub count: u64,
    /// Calls that had a duration.
    pub timed: u64,
    /// Sum of durations.
    pub total: Nanos,
    /// Shortest.
    pub min: Nanos,
    /// Longest.
    pub max: Nanos,
    /// Distribution, for percentiles.
    pub hist: Histogram,
}

impl DurationStats {
    /// Add one call.
    pub fn add(&mut self, d: Option<Nanos>) {
        self.count += 1;
        if let Some(d) = d {
            if self.timed == 0 || d < self.min {
                self.min = d;
            }
            self.max = self.max.max(d);
            self.timed += 1;
            self.total = self.total.saturating_add(d);
            self.hist.add(d);
        }
    }

    /// Empty statistics whose histogram starts in `buf` (see [`Histogram::with_buffer`]).
    pub(crate) fn with_buffer(buf: Vec<Nanos>) -> DurationStats {
        DurationStats { hist: Histogram::with_buffer(buf), ..DurationStats::default() }
    }

    /// Mean over timed calls, rounded to the nearest ns.
    pub fn mean(&self) -> Option<Nanos> {
        // In u128: a trace.dat can hold durations near u64::MAX (the total saturates).
        let (total, timed) = (u128::from(self.total), u128::from(self.timed));
        (timed > 0).then(|| u64::try_from((total + timed / 2) / timed).unwrap_or(Nanos::MAX))
    }

    /// Merge another set.
    pub fn merge(&mut self, o: &DurationStats) {
        if o.timed > 0 {
            if self.timed == 0 || o.min < self.min {
                self.min = o.min;
            }
            self.max = self.max.max(o.max);
        }
        self.count += o.count;
        self.timed += o.timed;
        self.total = self.total.saturating_add(o.total);
        self.hist.merge(&o.hist);
    }
}

/// Summary of a set of durations in a report: the one JSON shape of a latency distribution.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// Values.
    pub count: u64,
    /// Sum.
    pub total_ns: Nanos,
    /// Smallest.
    pub min_ns: Nanos,
    /// Largest.
    pub max_ns: Nanos,
    /// Mean, rounded to the nearest nanosecond.
    pub mean_ns: Nanos,
    /// Median (nearest rank).
    pub p50_ns: Nanos,
    /// 90th percentile (nearest rank).
    pub p90_ns: Nanos,
    /// 99th percentile (nearest rank).
    pub p99_ns: Nanos,
    /// The values (see [`HistogramJson`]).
    pub histogram: HistogramJson,
}

impl Distribution {
    /// The summary of `s`'s timed values, `None` when it has none. `sub_buckets` sets the
    /// histogram's resolution once it is no longer exact.
    pub fn of(s: &DurationStats, sub_buckets: u32) -> Option<Distribution> {
        if s.timed == 0 {
            return None;
        }
        let p = s.hist.percentiles(&[50.0, 90.0, 99.0]);
        Some(Distribution {
            count: s.timed,
            total_ns: s.total,
            min_ns: s.min,
            max_ns: s.max,
            mean_ns: s.mean().unwrap_or(0),
            p50_ns: p[0].unwrap_or(0),
            p90_ns: p[1].unwrap_or(0),
            p99_ns: p[2].unwrap_or(0),
            histogram: s.hist.to_json(sub_buckets),
        })
    }
}

/// Nearest rank for percentile `q` of `n` values (1-based).
fn rank_for(q: f64, n: u64) -> u64 {
    // Integer arithmetic on per-mille avoids float rounding at exact ranks (p50 of 2 = 1).
    #[allow(clippy::cast_sign_loss, reason = "clamped to 0..=1000 first")]
    let permille = (q * 10.0).round().clamp(0.0, 1000.0) as u128;
    let r = (permille * u128::from(n)).div_ceil(1000);
    u64::try_from(r).unwrap_or(n).max(1)
}

fn bucket_of(v: u64) -> u64 {
    if v < LINEAR_LIMIT {
        return v;
    }
    let e = 63 - u64::from(v.leading_zeros()); // floor(log2 v) >= SUB_BITS + 1
    let shift = e - u64::from(SUB_BITS);
    let sub = (v >> shift) & ((1 << SUB_BITS) - 1);
    LINEAR_LIMIT + (e - u64::from(SUB_BITS) - 1) * (1 << SUB_BITS) + sub
}

fn bucket_low(k: u64) -> u64 {
    if k < LINEAR_LIMIT {
        return k;
    }
    let rel = k - LINEAR_LIMIT;
    let e = rel / (1 << SUB_BITS) + u64::from(SUB_BITS) + 1;
    let sub = rel % (1 << SUB_BITS);
    let shift = e - u64::from(SUB_BITS);
    ((1u64 << SUB_BITS) | sub) << shift
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `tracedat` fuzz target: the mean of durations near `u64::MAX` overflowed.
    #[test]
    fn regression_fuzz_mean_of_huge_durations() {
        let mut s = DurationStats::default();
        s.add(Some(u64::MAX - 1));
        s.add(Some(u64::MAX - 1));
        assert_eq!(s.total, u64::MAX);
        assert_eq!(s.mean(), Some(u64::MAX / 2 + 1));
        assert_eq!(DurationStats { timed: 2, total: 7, ..Default::default() }.mean(), Some(4));
    }

    #[test]
    fn nearest_rank_percentiles_are_exact_for_small_sets() {
        let mut h = Histogram::default();
        h.add(2525);
        h.add(1082);
        assert_eq!(
            h.percentiles(&[50.0, 99.0, 100.0, 0.0]),
            [Some(1082), Some(2525), Some(2525), Some(1082)]
        );
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.add(v);
        }
        assert_eq!(h.percentiles(&[50.0, 90.0, 99.0]), [Some(50), Some(90), Some(99)]);
        assert!(h.is_exact());
        assert_eq!(Histogram::default().percentiles(&[50.0]), [None]);
    }

    #[test]
    fn buckets_round_trip_within_relative_error() {
        for v in [1023u64, 1024, 1025, 4278, 5684, 999_999, 123_456_789, u64::MAX / 3] {
            let low = bucket_low(bucket_of(v));
            assert!(low <= v, "{v} -> {low}");
            assert!((v - low) as f64 / v as f64 <= 1.0 / 512.0, "{v} -> {low}");
        }
        for v in 0..1024 {
            assert_eq!(bucket_low(bucket_of(v)), v);
        }
    }

    #[test]
    fn many_values_fold_and_memory_stays_bounded() {
        let mut h = Histogram::default();
        for v in 0..1_000_000u64 {
            h.add(v * 7 + 1000);
        }
        assert!(!h.is_exact());
        assert!(h.exact.is_empty());
        let arrays = h.octaves.iter().filter(|o| o.is_some()).count();
        assert!(arrays <= 14, "{arrays}");
        let p50 = h.percentiles(&[50.0])[0].unwrap();
        let exact = 499_999 * 7 + 1000;
        assert!((p50 as f64 - exact as f64).abs() / (exact as f64) < 0.002, "{p50} vs {exact}");
    }

    #[test]
    fn json_bins_are_fixed_and_merge_by_adding() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in [1082u64, 2525, 1082] {
            a.add(v);
        }
        for v in 0..5000u64 {
            b.add(1000 + v);
        }
        let (ja, jb) = (a.to_json(512), b.to_json(512));
        assert!(ja.exact && !jb.exact);
        assert_eq!(ja.bins[0], HistogramBin { low_ns: 1082, high_ns: 1083, count: 2 });
        let mut merged = Histogram::default();
        ja.merge_into(&mut merged);
        jb.merge_into(&mut merged);
        assert_eq!(merged.count(), 5003);
        // Merging the JSON gives the same buckets as merging the histograms.
        let mut direct = a.clone();
        direct.merge(&b);
        assert_eq!(merged.to_json(512), direct.to_json(512));
        // Coarser views of the same histogram nest in the fine one.
        let coarse = b.to_json(4);
        assert_eq!(coarse.bins.iter().map(|x| x.count).sum::<u64>(), 5000);
        assert!(coarse.bins.len() < jb.bins.len());
    }

    #[test]
    fn log_bins_cover_every_value_once() {
        let mut h = Histogram::default();
        for v in [0u64, 1, 2, 3, 80, 90, 100, 1082, 2525, 4278, 4279, 1_000_000] {
            h.add(v);
        }
        let bins = h.log_bins(4);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 12);
        for w in bins.windows(2) {
            assert!(w[0].high_ns <= w[1].low_ns, "{bins:?}");
        }
        for v in [0u64, 1, 2, 3, 80, 90, 100, 1082, 2525, 4278, 1_000_000] {
            assert!(bins.iter().any(|b| b.low_ns <= v && v < b.high_ns), "{v} {bins:?}");
        }
    }

    /// A small xorshift generator: reproducible value sets without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[test]
    fn merging_parts_gives_the_histogram_of_adding_one_by_one() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let qs = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0];
        for round in 0..60 {
            // Set sizes around the exact limit and well beyond it; values narrow (many
            // repeats, below the linear limit), medium, or spread over many octaves.
            let n = match round % 4 {
                0 => rng.below(EXACT_LIMIT as u64),
                1 => EXACT_LIMIT as u64 - 3 + rng.below(7),
                2 => rng.below(3 * EXACT_LIMIT as u64),
                _ => 10_000 + rng.below(20_000),
            };
            let values: Vec<Nanos> = (0..n)
                .map(|_| match round % 3 {
                    0 => rng.below(1500),
                    1 => 1000 + rng.below(1_000_000),
                    _ => rng.next() >> rng.below(64),
                })
                .collect();
            let mut whole = Histogram::default();
            for &v in &values {
                whole.add(v);
            }
            // Random cuts into parts, some empty, some alone past the exact limit.
            let mut cuts: Vec<usize> =
                (0..rng.below(8)).map(|_| usize::try_from(rng.below(n + 1)).unwrap_or(0)).collect();
            cuts.extend([0, values.len()]);
            cuts.sort_unstable();
            let parts: Vec<Histogram> = cuts
                .windows(2)
                .map(|w| {
                    let mut h = Histogram::default();
                    for &v in &values[w[0]..w[1]] {
                        h.add(v);
                    }
                    h
                })
                .collect();
            let mut forward = Histogram::default();
            for p in &parts {
                forward.merge(p);
            }
            let mut backward = Histogram::default();
            for p in parts.iter().rev() {
                backward.merge(p);
            }
            for merged in [&forward, &backward] {
                assert_eq!(merged.count(), whole.count(), "round {round}");
                assert_eq!(merged.is_exact(), whole.is_exact(), "round {round}");
                assert_eq!(merged.to_json(512), whole.to_json(512), "round {round}");
                assert_eq!(merged.percentiles(&qs), whole.percentiles(&qs), "round {round}");
            }
        }
    }

    #[test]
    fn a_few_bucketed_values_merge_as_their_bucket_bounds() {
        // A histogram read back from bucketed JSON may be bucketed with few values.
        let mut few = Histogram::default();
        few.add_bucket(4096, 4104, 3);
        let mut h = Histogram::default();
        h.add(7);
        h.merge(&few);
        assert!(h.is_exact());
        assert_eq!(h.sorted(), [(7, 1), (4096, 3)]);
    }

    #[test]
    fn merge_combines_counts() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.add(10);
        b.add(20);
        b.add(30);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.percentiles(&[50.0]), [Some(20)]);
    }
}
