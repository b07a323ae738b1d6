//! `exitscope report` on trace-cmd's binary trace.dat: detected by its magic, read natively,
//! and analysed exactly like the text of the same recording.

mod common;

use common::{exitscope, ok_stdout};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok_stdout(args)).unwrap()
}

#[test]
fn recorded_kvm_trace_dat_counts_events_in_every_file_version() {
    let mut seen = Vec::new();
    for f in ["kvm-v7-zstd.dat", "kvm-v7-none.dat", "kvm-v6.dat"] {
        let v = json(&["report", "--json", &format!("tests/data/tracedat/{f}")]);
        assert_eq!(v["inputs"][0]["format"], "trace-dat", "{f}");
        assert_eq!(v["events"]["kvm_cpuid"], 20, "{f}: {}", v["events"]);
        assert_eq!(v["events"]["kvm_pio"], 20, "{f}");
        assert_eq!(v["events"]["kvm_mmio"], 20, "{f}");
        let reasons: Vec<(String, u64)> = v["exits"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["reason"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(reasons, [("CPUID".into(), 20), ("IO".into(), 20), ("MMIO".into(), 20)]);
        seen.push((v["events"].clone(), v["exits"]["reasons"].clone()));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "v6, v7 and v7+zstd must agree");
}

#[test]
fn dropped_events_in_trace_dat_are_reported_as_lost() {
    let v = json(&["report", "--json", "tests/data/tracedat/kvm-drops-v7-zstd.dat"]);
    assert!(v["lost_events"]["events"].as_u64().unwrap() > 0, "{}", v["lost_events"]);
}

#[test]
fn function_graph_trace_dat_gives_the_same_tree_as_its_text_rendering() {
    let dat = json(&["report", "--json", "tests/data/tracedat/funcgraph-v7-zstd.dat"]);
    let dir = std::env::temp_dir().join(format!("exitscope-dat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let txt = dir.join("fg.txt");
    let out = exitscope(&[
        "convert",
        "tests/data/tracedat/funcgraph-v7-zstd.dat",
        "-o",
        txt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = json(&["report", "--json", txt.to_str().unwrap()]);
    assert_eq!(dat["tree"], text["tree"]);
    assert!(dat["roots"].as_u64().unwrap() > 0);
    // And the exit view classifies the .dat the same way.
    let e1 = json(&["report", "--json", "--exits", "tests/data/tracedat/funcgraph-v7-zstd.dat"]);
    let e2 = json(&["report", "--json", "--exits", txt.to_str().unwrap()]);
    // Counts, classification and phases agree; timestamp-derived figures (gaps, handling time)
    // are finer in the .dat (ns) than in its text rendering (µs).
    let view = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["exits"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                serde_json::json!([r["reason"], r["count"], r["evidence"], r["total"], r["run"]])
            })
            .collect()
    };
    assert_eq!(view(&e1), view(&e2));
    let handling = |v: &serde_json::Value| -> Vec<u64> {
        v["exits"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["handling"]["count"].as_u64().unwrap_or(0))
            .collect()
    };
    assert_eq!(handling(&e1), handling(&e2), "kvm_exit → kvm_entry pairs matched in both");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_trace_dat_is_a_clear_error_with_an_offset() {
    let data = std::fs::read(common::root().join("tests/data/tracedat/kvm-v6.dat")).unwrap();
    let dir = std::env::temp_dir().join(format!("exitscope-dat-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("cut.dat");
    std::fs::write(&p, &data[..data.len() / 3]).unwrap();
    let out = exitscope(&["report", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.dat: ") && err.contains("at byte 0x"), "{err}");
    assert!(err.contains("truncated") && err.contains("bytes long"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
