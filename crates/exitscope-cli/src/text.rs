//! Small text helpers for messages and summary lines.

/// `1 line`, `2 lines`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_prints_as_zero() {
        assert_eq!(fixed(Some(-0.0), 1), "0.0");
        assert_eq!(fixed(Some(-0.04), 1), "0.0");
        assert_eq!(fixed(Some(-0.06), 1), "-0.1");
        assert_eq!(fixed(None, 1), "-");
        assert_eq!(plural(1, "line", "lines"), "1 line");
        assert_eq!(plural(0, "line", "lines"), "0 lines");
    }
}
