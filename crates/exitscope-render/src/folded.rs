//! The merged call tree as collapsed ("folded") stacks, the format read by `flamegraph.pl`,
//! inferno and speedscope:
//!
//! ```text
//! vcpu_enter_guest [kvm] 541
//! vcpu_enter_guest [kvm];svm_prepare_guest_switch [kvm_amd] 80
//! ```
//!
//! One line per call path of [`Report::tree`], in tree pre-order, frames separated by `;`,
//! then the **self time in nanoseconds** of that path. A flame graph sums a frame's own value
//! and its descendants', so frame widths come out as total (inclusive) time, as in the tree.
//! Paths with no self time (or no durations at all) are omitted, like zero-sample stacks.

use std::io::{self, Write};

use exitscope_analyze::report::{Report, TreeNode};

/// Frame name of `n` in folded output: `func [module]` or `func`. A `;` (the frame separator)
/// would split the frame, so it is replaced by `:`; it never occurs in kernel symbols.
pub fn frame_name(n: &TreeNode) -> String {
    n.display_name().replace(';', ":")
}

/// The folded lines of `report`, in tree pre-order, without newlines.
pub fn lines(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    for root in &report.tree {
        walk(root, &mut path, &mut out);
    }
    out
}

fn walk(n: &TreeNode, path: &mut String, out: &mut Vec<String>) {
    let len = path.len();
    if !path.is_empty() {
        path.push(';');
    }
    path.push_str(&frame_name(n));
    if let Some(s) = n.self_ns.filter(|&s| s > 0) {
        out.push(format!("{path} {s}"));
    }
    for c in &n.children {
        walk(c, path, out);
    }
    path.truncate(len);
}

/// Write the folded stacks of `report`, one per line.
pub fn write(report: &Report, w: &mut impl Write) -> io::Result<()> {
    for l in lines(report) {
        writeln!(w, "{l}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(f: &str, m: Option<&str>, self_ns: u64, children: Vec<TreeNode>) -> TreeNode {
        let total = self_ns + children.iter().map(|c| c.total_ns.unwrap()).sum::<u64>();
        TreeNode {
            function: f.into(),
            module: m.map(Into::into),
            count: 1,
            total_ns: Some(total),
            self_ns: Some(self_ns),
            children,
            ..Default::default()
        }
    }

    #[test]
    fn self_time_per_path_in_preorder() {
        let r = Report {
            tree: vec![node(
                "a",
                Some("kvm"),
                5,
                vec![
                    node("b", None, 3, vec![node("c;x", None, 2, vec![])]),
                    node("d", None, 0, vec![]),
                ],
            )],
            ..Default::default()
        };
        assert_eq!(lines(&r), ["a [kvm] 5", "a [kvm];b 3", "a [kvm];b;c:x 2"]);
    }
}
