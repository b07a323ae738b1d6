//! Reference values were computed independently with SciPy 1.17 (`scipy.stats.binom`,
//! `scipy.stats.mannwhitneyu`) and by enumerating every arrangement of the pooled ranks in
//! Python for U's exact distribution; they are copied here as numbers.

use super::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Ten repeats of a ~1500-cycle exit (A) and a run about 0.5 % slower (B).
const A10: [f64; 10] =
    [1510.2, 1498.7, 1503.3, 1520.9, 1495.1, 1501.8, 1507.4, 1499.9, 1512.6, 1504.0];
const B10: [f64; 10] =
    [1509.0, 1515.5, 1502.2, 1530.1, 1511.7, 1506.3, 1518.8, 1500.4, 1524.2, 1513.9];

#[test]
fn median_of_values_and_of_counts() {
    assert_eq!(Samples::from_values([]).unwrap().median(), None);
    assert_eq!(Samples::from_values([3.0, 1.0, 2.0]).unwrap().median(), Some(2.0));
    assert_eq!(Samples::from_values([4.0, 1.0, 2.0, 9.0]).unwrap().median(), Some(3.0));
    let h = Samples::from_counts([(10.0, 2), (30.0, 1), (10.0, 1), (20.0, 0)]).unwrap();
    assert_eq!(h.points(), &[(10.0, 3), (30.0, 1)]);
    assert_eq!((h.len(), h.median(), h.min(), h.max()), (4, Some(10.0), Some(10.0), Some(30.0)));
    assert!(h.has_ties());
    assert_eq!(Samples::from_values([-0.0, 0.0]).unwrap().points(), &[(0.0, 2)]);
}

#[test]
fn median_ci_ranks_and_coverage_are_binomial() {
    // n = 5: [min, max] covers 1 - 2/32 = 93.75 % < 95 %: no interval.
    let five = Samples::from_values([1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    assert_eq!(five.median_ci(0.95).unwrap(), None);
    // n = 6: [x1, x6], 1 - 2/64.
    let six = Samples::from_values([6.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let ci = six.median_ci(0.95).unwrap().unwrap();
    assert_eq!((ci.low, ci.high), (1.0, 6.0));
    assert!(close(ci.confidence, 0.968_75, 1e-12));
    // n = 10: [x2, x9], 1 - 2 * 11/1024.
    let ten = Samples::from_values((1..=10).map(f64::from)).unwrap();
    let ci = ten.median_ci(0.95).unwrap().unwrap();
    assert_eq!((ci.low, ci.high), (2.0, 9.0));
    assert!(close(ci.confidence, 1.0 - 22.0 / 1024.0, 1e-12));
    // n = 100: SciPy: largest j with binom.cdf(j, 100, .5) <= .025 is 39 -> [x40, x61],
    // coverage 0.964799799782.
    let hundred = Samples::from_values((1..=100).map(f64::from)).unwrap();
    let ci = hundred.median_ci(0.95).unwrap().unwrap();
    assert_eq!((ci.low, ci.high), (40.0, 61.0));
    assert!(close(ci.confidence, 0.964_799_799_782_295, 1e-9), "{}", ci.confidence);
    assert!(ci.contains(50.5) && !ci.contains(39.0));
    assert!(close(ci.relative_width(50.5).unwrap(), 21.0 / 50.5, 1e-12));
}

#[test]
fn median_ci_of_a_histogram_equals_the_expanded_samples() {
    let counts: [(f64, u64); 4] = [(1000.0, 40), (1100.0, 25), (1300.0, 20), (5000.0, 15)];
    let h = Samples::from_counts(counts).unwrap();
    let expanded: Vec<f64> =
        counts.iter().flat_map(|&(v, c)| std::iter::repeat_n(v, c as usize)).collect();
    let e = Samples::from_values(expanded).unwrap();
    assert_eq!(h.median(), e.median());
    assert_eq!(h.median_ci(0.95).unwrap(), e.median_ci(0.95).unwrap());
    // Large counts take the same path without expanding anything.
    let big = Samples::from_counts([(1.0, 4_000_000_000), (2.0, 6_000_000_000)]).unwrap();
    let ci = big.median_ci(0.95).unwrap().unwrap();
    assert_eq!((big.median(), ci.low, ci.high), (Some(2.0), 2.0, 2.0));
    // A median right at the boundary of two values: the interval spans both.
    let even = Samples::from_counts([(1.0, 5_000_000_000), (2.0, 5_000_000_001)]).unwrap();
    let ci = even.median_ci(0.95).unwrap().unwrap();
    assert_eq!((even.median(), ci.low, ci.high), (Some(2.0), 1.0, 2.0));
}

#[test]
fn exact_u_distribution_matches_enumeration() {
    // Enumerated in Python: P(U <= k - 1) for the largest admissible k, per (m, n).
    for (m, n, k, below) in [
        (5, 5, 3, 4.0 / 252.0),
        (10, 10, 24, 0.021_628_526_272_489_117),
        (4, 4, 1, 1.0 / 70.0),
        (6, 8, 9, 0.021_312_021_312_021_312),
    ] {
        let d = u_null_distribution(m, n);
        assert_eq!(d.len() as u64, m * n + 1);
        assert!(close(d.iter().sum::<f64>(), 1.0, 1e-12));
        let cdf: f64 = d[..k].iter().sum();
        assert!(close(cdf, below, 1e-12), "{m}x{n}: {cdf} vs {below}");
        assert!(cdf + d[k] > 0.025, "{m}x{n}: k not the largest");
    }
}

#[test]
fn shift_of_ten_repeats_matches_scipy_and_enumeration() {
    let a = Samples::from_values(A10).unwrap();
    let b = Samples::from_values(B10).unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    assert_eq!(s.method, Method::Exact);
    assert_eq!((s.n_a, s.n_b), (10, 10));
    // scipy.stats.mannwhitneyu(B, A, method="exact"): U = 75, p = 0.0630128385546.
    assert_eq!(s.u, 75.0);
    assert!(close(s.p_value, 0.063_012_838_554_634_22, 1e-9), "{}", s.p_value);
    // numpy.median of the 100 differences; the interval is [D(24), D(77)].
    assert!(close(s.estimate, 7.65, 1e-9), "{}", s.estimate);
    let ci = s.ci.unwrap();
    assert!(close(ci.low, -1.1, 1e-9) && close(ci.high, 16.6, 1e-9), "{ci:?}");
    assert!(close(ci.confidence, 0.956_742_947_455_021_8, 1e-12));
    assert_eq!(s.verdict(), Verdict::NoSignificantDifference);
}

#[test]
fn every_sample_ten_percent_slower_is_slower_with_an_interval_above_zero() {
    let a = Samples::from_values(A10).unwrap();
    let b = Samples::from_values(A10.map(|v| v * 1.1)).unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    assert_eq!(s.u, 100.0);
    let ci = s.ci.unwrap();
    assert!(ci.low > 0.0, "{ci:?}");
    assert!(ci.contains(s.estimate));
    assert!((0.09..0.11).contains(&(s.estimate / a.median().unwrap())), "{}", s.estimate);
    assert_eq!(s.verdict(), Verdict::Slower);
    // The same, the other way round.
    let back = shift(&b, &a, 0.95).unwrap();
    assert_eq!((back.verdict(), back.u), (Verdict::Faster, 0.0));
    assert!(close(back.estimate, -s.estimate, 1e-9));
    // 2 / C(20, 10): the two most extreme arrangements.
    assert!(close(s.p_value, 2.0 / 184_756.0, 1e-15), "{}", s.p_value);
}

#[test]
fn identical_runs_show_no_difference() {
    let a = Samples::from_values(A10).unwrap();
    let s = shift(&a, &a, 0.95).unwrap();
    assert_eq!(s.verdict(), Verdict::NoSignificantDifference);
    assert_eq!(s.estimate, 0.0);
    assert!(s.ci.unwrap().contains(0.0));
    // Every sample tied: all differences are 0.
    let flat = Samples::from_values([7.0; 8]).unwrap();
    let s = shift(&flat, &flat, 0.95).unwrap();
    assert_eq!(
        (s.method, s.p_value, s.verdict()),
        (Method::Normal, 1.0, Verdict::NoSignificantDifference)
    );
}

#[test]
fn too_few_repeats_give_insufficient_data() {
    let a = Samples::from_values([1.0, 2.0, 3.0]).unwrap();
    let b = Samples::from_values([10.0, 20.0, 30.0]).unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    assert_eq!((s.ci, s.verdict()), (None, Verdict::InsufficientData));
    // Four per side is the smallest equal size with a 95 % interval: [min, max] of the
    // differences, coverage 1 - 2/70.
    let a = Samples::from_values([1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = Samples::from_values([10.0, 20.0, 30.0, 40.0]).unwrap();
    let ci = shift(&a, &b, 0.95).unwrap().ci.unwrap();
    assert_eq!((ci.low, ci.high), (6.0, 39.0));
    assert!(close(ci.confidence, 1.0 - 2.0 / 70.0, 1e-12));
}

#[test]
fn ties_use_the_normal_approximation_like_scipy() {
    let x: Vec<f64> =
        [1., 2., 2., 3., 3., 3., 4., 4., 5., 6.].iter().cycle().take(30).copied().collect();
    let y: Vec<f64> =
        [2., 3., 3., 4., 4., 4., 5., 5., 6., 7.].iter().cycle().take(30).copied().collect();
    let a = Samples::from_values(x.clone()).unwrap();
    let b = Samples::from_values(y.clone()).unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    assert_eq!(s.method, Method::Normal);
    // scipy.stats.mannwhitneyu(y, x, method="asymptotic", use_continuity=True)
    assert_eq!(s.u, 616.5);
    assert!(close(s.p_value, 0.012_297_284_331_001_444, 1e-9), "{}", s.p_value);
    assert_eq!(s.estimate, 1.0);
    assert_eq!(s.verdict(), Verdict::Slower);
    // Tied differences: the lower end is the order statistic 0, open at 0 (0 is rejected).
    let ci = s.ci.unwrap();
    assert_eq!((ci.low, ci.high), (0.0, 2.0));
    assert!(s.significant);
    // The histogram form of the same data gives the same answer.
    let hist =
        |v: &[f64]| Samples::from_counts(v.iter().map(|&x| (x, 1))).unwrap().points().to_vec();
    let ha = Samples::from_counts(hist(&x)).unwrap();
    let hb = Samples::from_counts(hist(&y)).unwrap();
    assert_eq!(shift(&ha, &hb, 0.95).unwrap(), s);
}

#[test]
fn histograms_with_millions_of_exits() {
    // Two latency histograms: B has 3 % of its exits moved one bucket up.
    let a = Samples::from_counts([(1000.0, 6_000_000), (1100.0, 3_000_000), (2000.0, 1_000_000)])
        .unwrap();
    let b = Samples::from_counts([(1000.0, 5_700_000), (1100.0, 3_300_000), (2000.0, 1_000_000)])
        .unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    assert_eq!(s.method, Method::Normal);
    assert!(s.p_value < 1e-12);
    // The shift is below one bucket: the interval is bounded by bucket differences.
    let ci = s.ci.unwrap();
    assert!(ci.contains(s.estimate));
    assert_eq!(shift(&a, &a, 0.95).unwrap().verdict(), Verdict::NoSignificantDifference);
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(
        Samples::from_values([1.0, f64::NAN]).unwrap_err().to_string(),
        "sample 1 is NaN, not a finite number"
    );
    assert!(matches!(
        Samples::from_counts([(f64::INFINITY, 1)]),
        Err(StatsError::NotFinite { index: 0, .. })
    ));
    assert_eq!(Samples::from_counts([(1.0, u64::MAX), (2.0, 1)]), Err(StatsError::CountOverflow));
    let one = Samples::from_values([1.0]).unwrap();
    assert_eq!(shift(&Samples::default(), &one, 0.95), Err(StatsError::Empty("A")));
    assert_eq!(shift(&one, &Samples::default(), 0.95), Err(StatsError::Empty("B")));
    assert_eq!(one.median_ci(1.0), Err(StatsError::BadConfidence(1.0)));
    assert_eq!(shift(&one, &one, 0.0), Err(StatsError::BadConfidence(0.0)));
    let wide = Samples::from_values((0..2000).map(f64::from)).unwrap();
    assert!(matches!(shift(&wide, &wide, 0.95), Err(StatsError::TooManyPairs { .. })));
    assert_eq!(Samples::default().median_ci(0.95), Ok(None));
}

#[test]
fn results_serialize_with_stable_names() {
    let a = Samples::from_values(A10).unwrap();
    let b = Samples::from_values(B10).unwrap();
    let s = shift(&a, &b, 0.95).unwrap();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["method"], "exact");
    assert!(v["ci"]["low"].is_number() && v["ci"]["confidence"].is_number());
    assert_eq!(
        serde_json::to_value(Verdict::NoSignificantDifference).unwrap(),
        "no-significant-difference"
    );
    assert_eq!(Verdict::Slower.as_str(), "slower");
}
