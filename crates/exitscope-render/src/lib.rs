//! # Brief overview
//!
//! Renderers take a finished [`Report`] and write it somewhere; none of them parses or
//! computes anything. The terminal tree is laid out like ftrace's function_graph output (the
//! seed's look), with statistics columns in front.
//!
//! The pictures: [`folded`] stacks and [`flame`] graphs (SVG, by inferno; differential with
//! `--diff`), a self-contained [`html`] report, and the timelines, [`perfetto`] (Chrome JSON)
//! and [`pftrace`] (Perfetto's native protobuf), which are streaming sinks fed by the same
//! `Analysis` run as the report rather than renderers of it.
//! [`top`] draws `exitscope top`'s live table, one interval (`exitscope_analyze::live`) at a
//! time.
//!
//! ```
//! use exitscope_analyze::report::{Report, TreeNode};
//! let mut report = Report::default();
//! report.tree.push(TreeNode { function: "vcpu_enter_guest".into(), module: Some("kvm".into()),
//!     count: 1, total_ns: Some(4278), self_ns: Some(541), min_ns: Some(4278), max_ns: Some(4278),
//!     mean_ns: Some(4278), p50_ns: Some(4278), p99_ns: Some(4278), ..Default::default() });
//! let mut out = Vec::new();
//! exitscope_render::tree::write(&report, &exitscope_render::Style::plain(), &mut out).unwrap();
//! assert!(String::from_utf8(out).unwrap().contains("4.278 us"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod compare;
pub mod diff;
pub mod exits;
pub mod flame;
pub mod flat;
pub mod folded;
pub mod host;
pub mod html;
pub mod json;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod perfetto;
pub mod pftrace;
pub mod timeline;
pub mod top;
pub mod tree;
pub mod units;

pub use exitscope_analyze::report::Report;

/// How to decorate terminal output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// Use ANSI colors.
    pub color: bool,
}

impl Style {
    /// No colors.
    pub fn plain() -> Self {
        Style { color: false }
    }

    /// Wrap `s` in an ANSI SGR `code` when colors are on.
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
}

/// ANSI codes used across renderers.
pub mod colors {
    /// Dim, for braces and zero values.
    pub const DIM: &str = "2";
    /// Module suffixes.
    pub const MODULE: &str = "36";
    /// Hot spots (self time above 10 % of the root).
    pub const HOT: &str = "1;31";
    /// Warm (self time above 2 %).
    pub const WARM: &str = "33";
    /// Headers.
    pub const HEADER: &str = "1";
    /// Interrupt subtrees.
    pub const IRQ: &str = "35";
}
