//! Golden tests: folded stacks of the seed traces (`tests/data/seed/expected/*.folded`).
//! `EXITSCOPE_BLESS=1 cargo test -p exitscope-render --test folded` rewrites them.

mod common;

use common::{analyse_seed, check_golden, seed_dir};
use exitscope_analyze::AnalysisOptions;
use exitscope_analyze::report::TreeNode;
use exitscope_render::{flame, folded};

fn golden(report: &exitscope_analyze::report::Report, expected: &str) {
    let mut out = Vec::new();
    folded::write(report, &mut out).unwrap();
    check_golden(&seed_dir().join("expected").join(expected), &String::from_utf8(out).unwrap());
}

#[test]
fn seed_amd_folded() {
    golden(&analyse_seed(&["cpuid-amd.fgraph.txt"]), "cpuid-amd.folded");
}

#[test]
fn seed_intel_folded() {
    golden(&analyse_seed(&["cpuid-intel.fgraph.txt"]), "cpuid-intel.folded");
}

/// `--no-normalize`: the same one alignment, by exact names.
#[test]
fn seed_amd_vs_intel_differential_folded() {
    use exitscope_analyze::diff::{DiffSort, diff};
    let a = analyse_seed(&["cpuid-amd.fgraph.txt"]);
    let b = analyse_seed(&["cpuid-intel.fgraph.txt"]);
    let lines = flame::diff_lines(&diff(&a, &b, None, DiffSort::Tree));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    check_golden(&seed_dir().join("expected/cpuid-amd-vs-intel.diff.folded"), &text);
}

/// The vendor-normalized differential stacks, from `exitscope diff`'s comparison of the
/// seeds analysed as that command does (exits split out).
#[test]
fn seed_amd_vs_intel_normalized_differential_folded() {
    use exitscope_analyze::diff::{DiffSort, NormTable, diff};
    let analyse = |name: &str| common::analyse_seed_with(&[name], AnalysisOptions::for_diff());
    let (a, b) = (analyse("cpuid-amd.fgraph.txt"), analyse("cpuid-intel.fgraph.txt"));
    let d = diff(&a, &b, Some(&NormTable::builtin()), DiffSort::Tree);
    let lines = flame::diff_lines(&d);
    assert!(lines.iter().any(|l| l.starts_with("vcpu_enter_guest [kvm];vendor_vcpu_run [*] ")));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    check_golden(&seed_dir().join("expected/cpuid-amd-vs-intel.normalized.diff.folded"), &text);
}

/// What a flame graph draws from the folded lines must be the tree: summing each path's
/// self time over the path and its extensions gives the path's total.
#[test]
fn folded_sums_reproduce_tree_totals() {
    for name in ["cpuid-amd.fgraph.txt", "cpuid-intel.fgraph.txt"] {
        let r = analyse_seed(&[name]);
        let lines = folded::lines(&r);
        fn check(n: &TreeNode, prefix: &str, lines: &[String]) {
            let path = if prefix.is_empty() {
                folded::frame_name(n)
            } else {
                format!("{prefix};{}", folded::frame_name(n))
            };
            let sum: u64 = lines
                .iter()
                .filter_map(|l| l.rsplit_once(' '))
                .filter(|(s, _)| *s == path || s.starts_with(&format!("{path};")))
                .map(|(_, v)| v.parse::<u64>().unwrap())
                .sum();
            assert_eq!(Some(sum), n.total_ns, "{path}");
            for c in &n.children {
                check(c, &path, lines);
            }
        }
        for root in &r.tree {
            check(root, "", &lines);
        }
    }
}
