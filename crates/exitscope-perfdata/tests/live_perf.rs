//! On a machine with perf, KVM and root: `perf record -e kvm:kvm_cpuid -e kvm:kvm_pio -e
//! kvm:kvm_userspace_exit -- <KVM workload>` in file, pipe and compressed mode, then this
//! reader's per-event counts and event text against `perf script`'s. Skips with the reason
//! where something is missing (fails instead under `EXITSCOPE_REQUIRE_HW=1`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

const EVENTS: [&str; 3] = ["kvm:kvm_cpuid", "kvm:kvm_pio", "kvm:kvm_userspace_exit"];

fn environment() -> Result<(), String> {
    common::perf().ok_or("perf is not installed (Debian: linux-perf)")?;
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .unwrap_or_default();
    if uid.split_whitespace().nth(1).is_none_or(|u| u != "0") {
        return Err("not root (perf needs it to record kvm tracepoints)".into());
    }
    Ok(())
}

/// The workload: tests/data/tracedat/kvm_workload.py (port I/O, CPUID and MMIO exits).
fn workload(loops: u32) -> Vec<String> {
    let script = common::data_dir().join("tracedat/kvm_workload.py");
    vec!["python3".into(), script.display().to_string(), loops.to_string()]
}

/// `perf record` into `out` (`-` for a pipe, whose stdout is written to `out_pipe`).
fn record(out: &Path, extra: &[&str], loops: u32) -> Result<(), String> {
    let mut c = Command::new("perf");
    c.arg("record").arg("-o").arg(out).args(extra);
    for e in EVENTS {
        c.args(["-e", e]);
    }
    c.arg("--").args(workload(loops)).stdout(Stdio::null());
    let o = c.output().map_err(|e| format!("perf record: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "perf record failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default()
        ));
    }
    Ok(())
}

/// `perf script` per event: the event texts in order.
fn perf_script(path: &Path) -> Result<BTreeMap<String, Vec<String>>, String> {
    let o = Command::new("perf")
        .arg("script")
        .arg("-i")
        .arg(path)
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    if !o.status.success() {
        return Err(format!("perf script failed: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(common::parse_perf_script(&String::from_utf8_lossy(&o.stdout)))
}

fn ours(path: &Path) -> (exitscope_perfdata::Summary, BTreeMap<String, Vec<String>>) {
    let bytes = std::fs::read(path).expect("read perf.data");
    assert!(exitscope_perfdata::is_perf_data(&bytes));
    common::read_events(&bytes, &path.display().to_string())
}

fn check(mode: &str, path: &Path, loops: u64) {
    let theirs = perf_script(path).unwrap_or_else(|e| panic!("{mode}: {e}"));
    let (summary, ours) = ours(path);
    eprintln!("{mode}: {:<22} {:>8} {:>8}", "event", "ours", "perf");
    for e in EVENTS {
        let name = e.trim_start_matches("kvm:");
        let (a, b) = (ours.get(name).map_or(0, Vec::len), theirs.get(name).map_or(0, Vec::len));
        eprintln!("{mode}: {name:<22} {a:>8} {b:>8}");
    }
    let counts: BTreeMap<String, u64> = summary.event_counts.iter().cloned().collect();
    for (name, texts) in &theirs {
        assert_eq!(counts.get(name).copied(), Some(texts.len() as u64), "{mode}: {name} count");
    }
    assert_eq!(counts.len(), theirs.len(), "{mode}: same events: {counts:?}");
    // The text, in order, is the kernel's print fmt rendering in both.
    assert_eq!(ours, theirs, "{mode}: event text");
    assert!(
        counts.get("kvm_pio").copied().unwrap_or(0) >= loops,
        "{mode}: the workload's port I/O"
    );
    if mode == "zstd" {
        assert!(summary.compressed_records > 1, "{mode}: {summary:?}");
    }
}

#[test]
fn counts_and_text_equal_perf_script() {
    if let Err(reason) = environment() {
        common::skip(&reason);
        return;
    }
    let dir = common::scratch("live");
    let file = dir.join("perf.data");
    if let Err(e) = record(&file, &[], 40) {
        // perf or the kernel refused (no kvm tracepoints, perf_event_paranoid): environment.
        common::skip(&e);
        return;
    }
    check("file", &file, 40);
    let z = dir.join("perf.z.data");
    // Enough records that the zstd stream spans several PERF_RECORD_COMPRESSED records.
    match record(&z, &["-z"], 3000) {
        Ok(()) => check("zstd", &z, 3000),
        Err(e) => eprintln!("SKIP (zstd mode only): {e}"),
    }
    // Pipe mode: perf record -o - > file.
    let pipe = dir.join("perf.pipe.data");
    let out = std::fs::File::create(&pipe).expect("pipe output");
    let mut c = Command::new("perf");
    c.args(["record", "-o", "-"]);
    for e in EVENTS {
        c.args(["-e", e]);
    }
    let st = c.arg("--").args(workload(40)).stdout(out).stderr(Stdio::null()).status();
    assert!(st.is_ok_and(|s| s.success()), "perf record -o - failed");
    let (s, _) = ours(&pipe);
    assert!(s.pipe);
    check("pipe", &pipe, 40);
    let _ = std::fs::remove_dir_all(dir);
}
