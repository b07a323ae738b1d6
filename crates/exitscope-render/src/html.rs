//! One self-contained HTML report: a file a person can send to a colleague.
//!
//! The page carries the serialized [`Report`] (the same document as `--json`) in a
//! `<script type="application/json" id="exitscope-data">` block, and an inline script
//! (`assets/report.js`) renders the sections from it: summary, collapsible call tree, exit
//! reasons, exit phases and events (when the report has them), flat profile, log-scaled latency
//! histograms, diagnostics, and for `--diff` a side-by-side tree. The flame graph is inline SVG
//! drawn here by inferno ([`crate::flame`]). Nothing is recomputed and nothing is fetched: the
//! page has no external URL (no fonts, scripts, styles or images from anywhere).
//!
//! Sections for report fields that later schema versions add (`exit_reasons`, `exits`,
//! `events`, `host`) render when the field is present, so this renderer does not need to know
//! their Rust types: it serializes the whole report.

use std::io::{self, Write};

use serde_json::{Value, json};

use exitscope_analyze::diff::DiffReport;
use exitscope_analyze::report::Report;

use crate::flame::{self, FlameOptions};

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// Settings of a page.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct HtmlOptions {
    /// Page title; defaults to "exitscope report" / "exitscope diff".
    pub title: Option<String>,
    /// A benchmark result to show in a section of its own (`exitscope run`): the serialized
    /// bench report (`{host, mode, results: [{test, cpl, status, cycles_median, ns_median,
    /// exits_per_iteration, exit_kind, reason, ...}]}`).
    pub bench: Option<Value>,
}

/// A page's content, before layout: what [`write()`] and [`write_diff`] build from reports.
/// Public so that documents of any schema version (or hand-made ones, in tests) can be laid
/// out the same way.
#[derive(Clone, Debug)]
pub struct Page {
    /// `<title>` and heading.
    pub title: String,
    /// `"single"` or `"diff"` (exactly two reports).
    pub mode: &'static str,
    /// Labels and report documents (serialized [`Report`]s).
    pub reports: Vec<(String, Value)>,
    /// Standalone inferno SVG of the flame graph, if there is one to show.
    pub flame_svg: Option<String>,
    /// Caption over the flame graph.
    pub flame_caption: String,
    /// For `"diff"` pages: the comparison document (`exitscope_analyze::diff::DiffReport`
    /// serialized: `{"sign", "normalized", "tree": [{"key", "status", "a", "b", "delta_ns",
    /// "ratio", "self_delta_ns", "children"}], "exits": [...]}`), which the side-by-side tree
    /// and the exit table show.
    pub diff: Option<Value>,
    /// A benchmark section (see [`HtmlOptions::bench`]).
    pub bench: Option<Value>,
}

/// Write the report page of `report`, whose inputs are called `label`.
///
/// # Errors
/// I/O errors from `w`.
pub fn write(
    report: &Report,
    label: &str,
    opts: &HtmlOptions,
    w: &mut impl Write,
) -> io::Result<()> {
    let fo = FlameOptions {
        subtitle: Some(format!("{label}: widths are total time (ns); click a frame to zoom")),
        ..FlameOptions::titled("Flame graph")
    };
    let flame_svg = flame::to_string(|b| flame::write(report, &fo, b)).ok();
    let page = Page {
        title: opts.title.clone().unwrap_or_else(|| "exitscope report".into()),
        mode: "single",
        reports: vec![(label.to_string(), to_value(report)?)],
        flame_svg,
        flame_caption: "Merged call tree; frame width = total time, self time is the part not \
                        covered by callees. Hover for times, click to zoom."
            .into(),
        diff: None,
        bench: opts.bench.clone(),
    };
    write_page(&page, w)
}

/// Write the comparison page of `a` (left, before) and `b` (right, after) whose comparison is
/// `diff` (`exitscope diff`'s one alignment: vendor-normalized unless it was made without a
/// table): both summaries, a side-by-side tree with deltas, the exit reasons side by side, and
/// a differential flame graph.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_diff(
    a: (&str, &Report),
    b: (&str, &Report),
    diff: &DiffReport,
    opts: &HtmlOptions,
    w: &mut impl Write,
) -> io::Result<()> {
    let normalized = diff.normalized;
    let fo = FlameOptions {
        subtitle: Some(format!(
            "{} → {}: widths from {}; red = slower, blue = faster{}",
            a.0,
            b.0,
            b.0,
            if normalized { "; vendor-normalized" } else { "" }
        )),
        ..FlameOptions::titled("Differential flame graph")
    };
    let flame_svg = flame::to_string(|buf| flame::write_diff(diff, &fo, buf)).ok();
    let flame_caption = if normalized {
        format!(
            "Frames are the call paths aligned by the vendor-normalized comparison \
             (vendor_* stands for svm_*/vmx_*), sized by {} and colored by the change in self \
             time from {}.",
            b.0, a.0
        )
    } else {
        format!(
            "Frames are the call paths aligned by exact name (not vendor-normalized), sized by {} \
             and colored by the change in self time from {}.",
            b.0, a.0
        )
    };
    let page = Page {
        title: opts.title.clone().unwrap_or_else(|| "exitscope diff".into()),
        mode: "diff",
        reports: vec![(a.0.to_string(), to_value(a.1)?), (b.0.to_string(), to_value(b.1)?)],
        flame_svg,
        flame_caption,
        diff: Some(serde_json::to_value(diff).map_err(io::Error::other)?),
        bench: opts.bench.clone(),
    };
    write_page(&page, w)
}

fn to_value(r: &Report) -> io::Result<Value> {
    serde_json::to_value(r).map_err(io::Error::other)
}

/// Lay out `page`.
///
/// # Errors
/// I/O errors from `w`.
pub fn write_page(page: &Page, w: &mut impl Write) -> io::Result<()> {
    let data = json!({
        "generator": concat!("exitscope ", env!("CARGO_PKG_VERSION")),
        "title": page.title,
        "mode": page.mode,
        "reports": page.reports.iter().map(|(l, r)| json!({"label": l, "report": r})).collect::<Vec<_>>(),
        "diff": page.diff,
        "bench": page.bench,
    });
    let title = escape(&page.title);
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{title}</title>\n<style>\n{CSS}</style>\n\
         </head>\n<body>\n<main>\n<header id=\"summary\"></header>\n\
         <noscript><p>This report is drawn by an inline script; enable JavaScript to see the \
         tables. The flame graph below works without it.</p></noscript>\n"
    )?;
    match &page.flame_svg {
        Some(svg) => write!(
            w,
            "<section id=\"flame-section\">\n<h2>Flame graph</h2>\n<p class=\"note\">{}</p>\n\
             <div id=\"flame\">\n{}\n</div>\n</section>\n",
            escape(&page.flame_caption),
            flame::inline_svg(svg)
        )?,
        None => write!(
            w,
            "<section id=\"flame-section\">\n<h2>Flame graph</h2>\n<p class=\"note\">No flame \
             graph: the trace has no function_graph calls with durations.</p>\n</section>\n"
        )?,
    }
    write!(
        w,
        "<div id=\"sections\"></div>\n<footer>{}</footer>\n</main>\n",
        data["generator"].as_str().unwrap_or_default()
    )?;
    write!(
        w,
        "<script type=\"application/json\" id=\"exitscope-data\">{}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        script_json(&data)?
    )
}

/// JSON safe inside a `<script>` element: `<` (as in `</script>` or `<!--`) only occurs in
/// strings, where `\u003c` means the same.
fn script_json(v: &Value) -> io::Result<String> {
    let s = serde_json::to_string(v).map_err(io::Error::other)?;
    Ok(s.replace('<', "\\u003c"))
}

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page without its embedded data block: what must reference nothing external.
pub fn without_data(html: &str) -> String {
    let open = "<script type=\"application/json\" id=\"exitscope-data\">";
    match (html.find(open), html.find("</script>")) {
        (Some(i), Some(_)) => {
            let rest = &html[i..];
            let j = rest.find("</script>").map_or(html.len(), |j| i + j + "</script>".len());
            format!("{}{}", &html[..i], &html[j..])
        }
        _ => html.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::diff::{DiffSort, diff};
    use exitscope_analyze::report::TreeNode;

    use super::*;

    fn report(f: &str) -> Report {
        Report {
            roots: 1,
            tree: vec![TreeNode {
                function: f.into(),
                module: Some("kvm".into()),
                count: 1,
                total_ns: Some(100),
                self_ns: Some(100),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn data_cannot_close_the_script() {
        let mut out = Vec::new();
        write(&report("</script><b>x"), "a<b>", &HtmlOptions::default(), &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("</script><b>"));
        assert!(s.contains("\\u003c/script>\\u003cb>x"));
        assert_eq!(s.matches("</script>").count(), 2);
    }

    #[test]
    fn no_external_urls_outside_the_data() {
        for as_diff in [false, true] {
            let mut out = Vec::new();
            if as_diff {
                let (a, b) = (report("a"), report("b"));
                let d = diff(&a, &b, None, DiffSort::Tree);
                write_diff(("A", &a), ("B", &b), &d, &HtmlOptions::default(), &mut out).unwrap();
            } else {
                write(&report("a"), "A", &HtmlOptions::default(), &mut out).unwrap();
            }
            let s = without_data(&String::from_utf8(out).unwrap());
            for bad in ["http://", "https://", "//cdn", "src=\"//", "@import"] {
                assert!(!s.contains(bad), "{bad}");
            }
            assert!(s.contains("<svg "));
            assert!(!s.contains("id=\"exitscope-data\""));
        }
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
