//! `report -j N` on trace.dat: the per-CPU streams are decoded in units of pages on worker
//! threads and merged on the main thread; every fixture, and broken copies of them (cut
//! short, a page with a bad commit, garbage records, a corrupt compressed chunk), give
//! byte-identical stdout, stderr and exit status at every `-j` and unit size (the hidden
//! `--chunk-bytes`, which for a trace.dat is the bytes of pages per unit: one page puts every
//! kind of record next to a unit boundary somewhere).

mod common;

use std::path::Path;

use common::{TempDir, command, root};

/// Every trace.dat among the fixtures.
fn fixtures() -> Vec<String> {
    let dir = root().join("tests/data/tracedat");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// (exit status, stdout, stderr) of `exitscope ARGS`, with the input's directory removed
/// from the messages so that copies in different places compare.
fn run(args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = command().args(args).output().unwrap();
    (out.status.code(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `report --json` and `report --exits` on `file` at -j 1 and at several -j and unit
/// sizes; all must agree. Returns the -j 1 exit status.
fn same_at_every_j(file: &str) -> Option<i32> {
    let one = run(&["report", "--json", "-j", "1", file]);
    let one_exits = run(&["report", "--exits", "--color", "never", "-j", "1", file]);
    for j in ["1", "2", "3", "7"] {
        for unit in [None, Some("1"), Some("4096"), Some("9000")] {
            let mut args = vec!["report", "--json", "-j", j];
            if let Some(u) = unit {
                args.extend(["--chunk-bytes", u]);
            }
            args.push(file);
            let many = run(&args);
            assert!(
                one == many,
                "{file}: -j {j} units {unit:?} differs from -j 1:\n{one:?}\n{many:?}"
            );
        }
        let many =
            run(&["report", "--exits", "--color", "never", "-j", j, "--chunk-bytes", "4096", file]);
        assert!(one_exits == many, "{file}: --exits -j {j} differs from -j 1");
    }
    one.0
}

#[test]
fn every_trace_dat_fixture_gives_the_same_report_at_every_j() {
    let fx = fixtures();
    assert!(fx.len() >= 8, "{fx:?}");
    for f in &fx {
        assert_eq!(same_at_every_j(f), Some(0), "{f}");
    }
}

/// The CPU data regions of a trace.dat: (file offset, size, compressed).
fn cpu_regions(bytes: &[u8]) -> Vec<(usize, usize, bool)> {
    let t = exitscope_tracedat::TraceDat::parse(bytes).unwrap();
    let mut v = Vec::new();
    for b in &t.header.buffers {
        for c in &b.cpus {
            if c.size > 0 {
                v.push((c.offset as usize, c.size as usize, b.compressed));
            }
        }
    }
    v
}

/// A deterministic byte pattern.
fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn broken_trace_dat_files_give_the_same_diagnostics_and_errors_at_every_j() {
    let dir = TempDir::new("jobs-tracedat");
    let mut cases = 0;
    let mut failed = 0;
    for f in fixtures() {
        let bytes = std::fs::read(&f).unwrap();
        let stem = Path::new(&f).file_stem().unwrap().to_str().unwrap().to_owned();
        let regions = cpu_regions(&bytes);
        let (off, size, compressed) = *regions.iter().max_by_key(|r| r.1).unwrap();
        let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
        // Cut inside the largest CPU's data, and just after its first page.
        for cut in [off + size / 2, off + 4096 + 7] {
            variants.push((format!("cut{cut}"), bytes[..cut.min(bytes.len())].to_vec()));
        }
        if compressed {
            // Corrupt the middle of a compressed chunk, then the end of the stream.
            for (i, at) in [off + size / 2, off + size - 40].into_iter().enumerate() {
                let mut b = bytes.clone();
                for (k, g) in garbage(24, at as u64).into_iter().enumerate() {
                    b[at + k] ^= g | 1;
                }
                variants.push((format!("zcorrupt{i}"), b));
            }
        } else {
            let pages = size / 4096;
            // A commit larger than the page, on a page in the middle and on the last one.
            for p in [pages / 2, pages.saturating_sub(1)] {
                let mut b = bytes.clone();
                let at = off + p * 4096 + 8;
                b[at..at + 8].copy_from_slice(&5000u64.to_le_bytes());
                variants.push((format!("commit{p}"), b));
            }
            // Garbage records: unknown event ids, bad lengths, odd time stamps.
            for (i, p) in [1, pages / 3, pages * 2 / 3].into_iter().enumerate() {
                let mut b = bytes.clone();
                let at = off + p * 4096 + 16 + 64;
                let n = 200.min(b.len().saturating_sub(at));
                b[at..at + n].copy_from_slice(&garbage(n, 77 + i as u64));
                variants.push((format!("garbage{i}"), b));
            }
        }
        for (tag, b) in variants {
            let p = dir.join(&format!("{stem}-{tag}.dat"));
            std::fs::write(&p, &b).unwrap();
            let code = same_at_every_j(p.to_str().unwrap());
            cases += 1;
            if code != Some(0) {
                failed += 1;
            }
        }
    }
    // Most broken copies must fail (a page error or a decompression error), so the error
    // paths were compared, not only successful reads.
    assert!(cases >= 30 && failed * 2 >= cases, "{failed} of {cases} broken copies failed");
}
