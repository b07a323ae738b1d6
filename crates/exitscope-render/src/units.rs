//! Human units for nanoseconds, in the kernel's style (`4.278 us`).

/// `ns` as `N.NNN us` below 10 ms, `N.NNN ms` below 10 s, else `N.NNN s`. Truncated like
/// the kernel's output, never rounded up.
pub fn duration(ns: u64) -> String {
    if ns < 10_000_000 {
        format!("{}.{:03} us", ns / 1000, ns % 1000)
    } else if ns < 10_000_000_000 {
        format!("{}.{:03} ms", ns / 1_000_000, (ns / 1000) % 1000)
    } else {
        format!("{}.{:03} s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
    }
}

/// [`duration`] or `-` when unknown.
pub fn opt_duration(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), duration)
}

/// `part` as a percentage of `whole` with one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let permille = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
    format!("{}.{}%", permille / 10, permille % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_kernel() {
        assert_eq!(duration(80), "0.080 us");
        assert_eq!(duration(4278), "4.278 us");
        assert_eq!(duration(9_999_999), "9999.999 us");
        assert_eq!(duration(12_202_930), "12.202 ms");
        assert_eq!(duration(19_354_026_000), "19.354 s");
        assert_eq!(percent(541, 4278), "12.6%");
        assert_eq!(percent(1, 0), "-");
    }
}
