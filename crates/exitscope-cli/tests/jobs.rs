//! `report -j N`: the parallel text reader gives byte-identical outputs to `-j 1` for every
//! text fixture, cut into tiny chunks (the hidden `--chunk-bytes`) so that every kind of line
//! lands on a chunk boundary somewhere; and the progress bar never reaches a pipe.

mod common;

use std::path::PathBuf;

use common::{exitscope, golden, root};

/// Every text trace among the fixtures (and the corpus of real captures when present).
fn text_fixtures() -> Vec<String> {
    let mut out = Vec::new();
    let base = root();
    for dir in [
        "tests/data/fgraph",
        "tests/data/seed",
        "tests/data/ioctl-run",
        "tests/data/ioctl-run-events",
        "tests/data/chunks",
        "tests/data/compare",
        "../shared/corpus/fgraph",
    ] {
        let Ok(rd) = std::fs::read_dir(base.join(dir)) else { continue };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .filter(|p| !p.to_string_lossy().contains("expected"))
            .collect();
        names.sort();
        out.extend(
            names.iter().map(|p| format!("{dir}/{}", p.file_name().unwrap().to_str().unwrap())),
        );
    }
    out.extend(event_fixtures().into_iter().filter(|f| !out.contains(f)).collect::<Vec<_>>());
    out
}

/// The kvm_exit/kvm_entry and tracepoint traces among the fixtures.
fn event_fixtures() -> Vec<String> {
    let mut out = vec![
        "tests/data/chunks/events-adversarial.txt".to_string(),
        "tests/data/fgraph/events-trimmed-columns.txt".to_string(),
        "tests/data/fgraph/event-lines.txt".to_string(),
        "tests/data/compare/vmx-exits.txt".to_string(),
        "tests/data/tracedat/kvm-all-v7-zstd.kernel.txt".to_string(),
    ];
    let dir = "crates/exitscope-analyze/tests/data/kvm_events";
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("{dir}/{}/input.txt", e.file_name().to_str().unwrap()))
        .collect();
    names.sort();
    out.extend(names);
    out
}

/// `report --json` of `f` at `-j 2` in chunks of `chunk` bytes, and how the chunks went:
/// (merged parts, refused parts, chunks applied in order), from `EXITSCOPE_CHUNK_STATS`.
fn chunk_stats(f: &str, chunk: &str) -> (Vec<u8>, [u64; 3]) {
    let out = common::command()
        .args(["report", "--json", "-j", "2", "--chunk-bytes", chunk, f])
        .env("EXITSCOPE_CHUNK_STATS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.contains("chunk stats:")).unwrap_or_else(|| panic!("{err}"));
    let rest = line.split("chunk stats: ").nth(1).unwrap();
    let n: Vec<u64> =
        rest.split(", ").take(3).map(|p| p.split(' ').next().unwrap().parse().unwrap()).collect();
    (out.stdout, [n[0], n[1], n[2]])
}

/// Event traces are analysed chunk by chunk and merged, not applied line by line on one
/// thread; the adversarial fixture also makes the analysis refuse parts (lost events not yet
/// accounted, the first kvm_exit, MMIO reads that may complete an earlier chunk's) and
/// apply those chunks in order. Every output equals `-j 1`'s.
#[test]
fn event_chunks_are_merged_and_refused_parts_applied_in_order() {
    let mut refused = 0;
    for f in event_fixtures() {
        let one = stdout(&["report", "--json", "-j", "1", &f]);
        for chunk in ["150", "400", "1500"] {
            let (many, [merged, no, in_order]) = chunk_stats(&f, chunk);
            assert!(one == many, "{f}: --chunk-bytes {chunk} differs from -j 1");
            let size = std::fs::metadata(root().join(&f)).unwrap().len();
            if size > 3 * chunk.parse::<u64>().unwrap() {
                assert!(merged > 0, "{f} in chunks of {chunk}: {merged} merged, {no} refused");
            }
            assert!(merged + no + in_order > 0);
            refused += no;
        }
    }
    assert!(refused > 0, "no part was ever refused: the fallback is not exercised");
}

/// Function-graph traces are analysed chunk by chunk too (roots crossing a boundary, orphan
/// returns, task switches, migrations, interrupts, lost events: `tests/data/chunks`); parts
/// whose assumptions fail are refused and their chunks applied in order. Every output
/// equals `-j 1`'s.
#[test]
fn graph_chunks_are_merged_and_refused_parts_applied_in_order() {
    let mut graphs: Vec<String> = text_fixtures()
        .into_iter()
        .filter(|f| !event_fixtures().contains(f))
        .filter(|f| f.contains("fgraph") || f.contains("chunks/") || f.contains("ioctl-run"))
        .collect();
    graphs.sort();
    assert!(graphs.len() >= 10, "{graphs:?}");
    let (mut merged_all, mut refused) = (0, 0);
    for f in &graphs {
        let one = stdout(&["report", "--json", "-j", "1", f]);
        for chunk in ["150", "700"] {
            let (many, [merged, no, _]) = chunk_stats(f, chunk);
            assert!(one == many, "{f}: --chunk-bytes {chunk} differs from -j 1");
            merged_all += merged;
            refused += no;
        }
    }
    let (_, [merged, _, _]) = chunk_stats("tests/data/seed/cpuid-amd.fgraph.txt", "200");
    assert!(merged > 3, "function graphs are merged in parts: {merged}");
    assert!(merged_all > 50, "{merged_all} parts merged");
    assert!(refused > 0, "no function-graph part was ever refused: the fallback is not exercised");
}

fn stdout(args: &[&str]) -> Vec<u8> {
    let out = exitscope(args);
    assert!(out.status.success(), "exitscope {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn every_text_fixture_gives_the_same_report_at_every_j() {
    let fixtures = text_fixtures();
    assert!(fixtures.len() >= 25, "{fixtures:?}");
    for f in &fixtures {
        let one = stdout(&["report", "--json", "-j", "1", f]);
        let one_exits = stdout(&["report", "--exits", "--color", "never", "-j", "1", f]);
        // The goldens of tests/data/fgraph hold at every -j too.
        let stem = f.strip_prefix("tests/data/fgraph/").and_then(|n| n.strip_suffix(".txt"));
        if let Some(stem) = stem {
            golden(
                std::str::from_utf8(&one).unwrap(),
                &format!("tests/data/fgraph/expected/{stem}.json"),
            );
        }
        for j in ["2", "3", "7"] {
            for chunk in ["1", "61", "900"] {
                let many = stdout(&["report", "--json", "-j", j, "--chunk-bytes", chunk, f]);
                assert!(one == many, "{f}: -j {j} --chunk-bytes {chunk} differs from -j 1");
            }
            let many = stdout(&[
                "report",
                "--exits",
                "--color",
                "never",
                "-j",
                j,
                "--chunk-bytes",
                "200",
                f,
            ]);
            assert!(one_exits == many, "{f}: --exits -j {j} differs from -j 1");
        }
    }
}

#[test]
fn several_inputs_and_the_seed_goldens_at_every_j() {
    let a = "tests/data/seed/cpuid-amd.fgraph.txt";
    let b = "tests/data/seed/cpuid-intel.fgraph.txt";
    let one = stdout(&["report", "--json", "-j", "1", a, b]);
    for j in ["2", "3", "7"] {
        assert!(
            one == stdout(&["report", "--json", "-j", j, "--chunk-bytes", "33", a, b]),
            "-j {j}"
        );
        let tree = stdout(&["report", "--color", "never", "-j", j, "--chunk-bytes", "5", a]);
        golden(std::str::from_utf8(&tree).unwrap(), "tests/data/seed/expected/report-amd.txt");
    }
}

#[test]
fn a_piped_stderr_never_gets_a_progress_bar() {
    // The bar's size threshold set to nothing: only the terminal test keeps it away.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_exitscope"))
        .args([
            "report",
            "--json",
            "-j",
            "2",
            "--chunk-bytes",
            "100",
            "tests/data/seed/cpuid-amd.fgraph.txt",
        ])
        .current_dir(root())
        .env("EXITSCOPE_PROGRESS_MIN_BYTES", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // On a terminal (script(1) gives the command a pseudo-terminal) the same run shows it.
    let script = std::path::Path::new("/usr/bin/script");
    if !exitscope_testkit::skip_unless(
        "a_piped_stderr_never_gets_a_progress_bar (terminal half)",
        (!script.exists()).then(|| "script(1) from util-linux is not installed".to_string()),
    ) {
        return;
    }
    let cmd = format!(
        "EXITSCOPE_PROGRESS_MIN_BYTES=1 {} report --json -j 2 --chunk-bytes 100 -o /dev/null tests/data/seed/cpuid-amd.fgraph.txt",
        env!("CARGO_BIN_EXE_exitscope")
    );
    let tty = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("exitscope: reading"), "no progress bar on a terminal: {shown:?}");
}
