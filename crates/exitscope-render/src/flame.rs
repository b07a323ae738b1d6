//! Flame graphs (SVG) of the merged call tree, drawn by [inferno] from the folded stacks of
//! [`crate::folded`]: frame widths are total time in nanoseconds, not samples.
//!
//! Differential flame graphs ([`write_diff`]) draw a [`DiffReport`], the one alignment of
//! `exitscope diff`: frames are the call paths it aligned (vendor-normalized ones such as
//! `vendor_vcpu_run [*]` for `svm_vcpu_run` and `vmx_vcpu_run`, or exact names with
//! `--no-normalize`), sized by the second trace and colored by the change in self time from
//! the first (red: slower, blue: faster).

use std::io::{self, Write};

use inferno::flamegraph::{self, Options};

use exitscope_analyze::diff::{DiffNode, DiffReport};
use exitscope_analyze::report::Report;

use crate::folded;

/// Settings of one flame graph.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FlameOptions {
    /// Title drawn at the top.
    pub title: String,
    /// Optional second line under the title.
    pub subtitle: Option<String>,
    /// Width in pixels (the SVG scales; this sets the text truncation).
    pub width: usize,
}

impl Default for FlameOptions {
    fn default() -> Self {
        FlameOptions { title: "VM-exit call tree".into(), subtitle: None, width: 1200 }
    }
}

impl FlameOptions {
    /// Options with `title`.
    pub fn titled(title: impl Into<String>) -> Self {
        FlameOptions { title: title.into(), ..Default::default() }
    }
}

fn inferno_options(opts: &FlameOptions) -> Options<'static> {
    let mut o = Options::default();
    o.title = opts.title.clone();
    o.subtitle = opts.subtitle.clone();
    o.count_name = "ns".into();
    o.name_type = "Function:".into();
    o.image_width = Some(opts.width);
    // A flat, light background: the frames carry the color.
    o.bgcolors = "#f6f8fa".parse().ok();
    // Same function, same color, on every run and in every report.
    o.deterministic = true;
    // A generic family renders everywhere (Verdana, inferno's default, is rarely installed
    // on Linux, and the fallback was monospace).
    o.font_type = "sans-serif".into();
    o
}

/// Error for a report with nothing to draw (no timed calls).
fn nothing_to_draw() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "nothing to draw: the report has no timed calls (does the trace have durations?)",
    )
}

/// Draw the flame graph of `report` as a standalone, interactive SVG (inferno's own
/// click-to-zoom and search script included).
///
/// # Errors
/// I/O errors from `w`, or `InvalidData` when the report has no timed calls.
pub fn write(report: &Report, opts: &FlameOptions, w: &mut impl Write) -> io::Result<()> {
    let mut lines = folded::lines(report);
    if lines.is_empty() {
        return Err(nothing_to_draw());
    }
    // inferno::flamegraph::from_lines expects sorted stacks.
    lines.sort_unstable();
    flamegraph::from_lines(&mut inferno_options(opts), lines.iter().map(String::as_str), w)
}

/// The two-column folded lines (`stack a_self_ns b_self_ns`, sorted) of a [`DiffReport`]:
/// one per aligned path, frames named by the normalized key the sides were aligned on.
pub fn diff_lines(d: &DiffReport) -> Vec<String> {
    fn walk(n: &DiffNode, normalized: bool, prefix: &str, out: &mut Vec<String>) {
        // Exact-name comparisons draw the names as traced (suffixes and all); normalized ones
        // the key both sides met on.
        let name = match (normalized, n.b.as_ref().or(n.a.as_ref())) {
            (false, Some(side)) => side.display_name(),
            _ => n.key.clone(),
        };
        let frame = name.replace(';', ":");
        let path = if prefix.is_empty() { frame } else { format!("{prefix};{frame}") };
        let a = n.a.as_ref().and_then(|s| s.self_ns).unwrap_or(0);
        let b = n.b.as_ref().and_then(|s| s.self_ns).unwrap_or(0);
        if a > 0 || b > 0 {
            out.push(format!("{path} {a} {b}"));
        }
        for c in &n.children {
            walk(c, normalized, &path, out);
        }
    }
    let mut out = Vec::new();
    for n in &d.tree {
        walk(n, d.normalized, "", &mut out);
    }
    out.sort_unstable();
    out
}

/// Draw the differential flame graph of `d` (aligned as `exitscope diff` aligns: vendor
/// normalized unless `d` was made without a table) as a standalone SVG.
///
/// # Errors
/// I/O errors from `w`, or `InvalidData` when neither side has timed calls.
pub fn write_diff(d: &DiffReport, opts: &FlameOptions, w: &mut impl Write) -> io::Result<()> {
    let lines = diff_lines(d);
    if lines.is_empty() {
        return Err(nothing_to_draw());
    }
    flamegraph::from_lines(&mut inferno_options(opts), lines.iter().map(String::as_str), w)
}

/// Render `f` into a string (SVG text).
///
/// # Errors
/// Whatever `f` returns.
pub fn to_string(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<String> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    String::from_utf8(buf).map_err(io::Error::other)
}

/// Turn a standalone inferno SVG into markup fit to inline in an HTML page: no XML prolog,
/// doctype, comments, namespace declarations (the HTML parser puts `<svg>` in the SVG
/// namespace by itself), `onload` handler, `<script>` or `<style>` (the page brings its own
/// scoped style and zoom script). What is left references nothing outside the page.
pub fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    let mut s = svg[start..].to_string();
    for (open, close) in [("<!--", "-->"), ("<script", "</script>"), ("<style", "</style>")] {
        while let Some(i) = s.find(open) {
            let Some(j) = s[i..].find(close) else { break };
            s.replace_range(i..i + j + close.len(), "");
        }
    }
    // Attributes of the root element only.
    let end = s.find('>').unwrap_or(0);
    let mut head = s[..end].to_string();
    for attr in ["xmlns:xlink", "xmlns:fg", "xmlns", "onload"] {
        let pat = format!(" {attr}=\"");
        if let Some(i) = head.find(&pat) {
            let v = i + pat.len();
            if let Some(q) = head[v..].find('"') {
                head.replace_range(i..v + q + 1, "");
            }
        }
    }
    s.replace_range(..end, &head);
    s
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::report::TreeNode;

    use super::*;

    fn report(self_a: u64, self_b: u64) -> Report {
        let b = TreeNode {
            function: "b".into(),
            count: 1,
            total_ns: Some(self_b),
            self_ns: Some(self_b),
            ..Default::default()
        };
        Report {
            tree: vec![TreeNode {
                function: "a".into(),
                module: Some("kvm".into()),
                count: 1,
                total_ns: Some(self_a + self_b),
                self_ns: Some(self_a),
                children: vec![b],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn svg_has_frames_with_totals() {
        let svg = to_string(|w| write(&report(100, 50), &FlameOptions::default(), w)).unwrap();
        assert!(svg.contains("a [kvm] (150 ns, 100.00%)"), "{svg}");
        assert!(svg.contains("b (50 ns, 33.33%)"), "{svg}");
    }

    #[test]
    fn empty_report_is_an_error() {
        let e = write(&Report::default(), &FlameOptions::default(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn diff_has_two_columns() {
        let d = exitscope_analyze::diff::diff(
            &report(100, 50),
            &report(100, 80),
            None,
            exitscope_analyze::diff::DiffSort::Tree,
        );
        assert_eq!(diff_lines(&d), ["a [kvm] 100 100", "a [kvm];b 50 80"]);
    }

    #[test]
    fn inline_svg_has_no_urls_or_scripts() {
        let svg = to_string(|w| write(&report(100, 50), &FlameOptions::default(), w)).unwrap();
        let s = inline_svg(&svg);
        assert!(s.starts_with("<svg "), "{}", &s[..40]);
        for bad in ["http", "<script", "<style", "onload", "<!--", "<?xml"] {
            assert!(!s.contains(bad), "{bad} in {s}");
        }
        assert!(s.contains("fg:w=\"150\""));
    }
}
