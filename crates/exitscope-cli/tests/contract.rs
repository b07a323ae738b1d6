//! Issue 11, "the CLI's contract holds everywhere": one test per promise, each running the
//! real binary (tracefs behaviour against the fake tracefs; hardware tests print `SKIP:`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    Need, TempDir, command, fake_tracefs_dir, kill, ops_log, put, skip_unless, snapshot_dir,
    stderr, wait_for_tracing, wait_timeout,
};

const SEED: &str = "tests/data/seed/cpuid-amd.fgraph.txt";

fn seed_text() -> String {
    std::fs::read_to_string(common::root().join(SEED)).unwrap()
}

// ---------------------------------------------------------------- 11.2 outputs

/// `echo keep > r.html; exitscope html /nonexistent -o r.html` used to leave r.html empty.
#[test]
fn failed_commands_leave_existing_outputs_untouched() {
    let d = TempDir::new("keep");
    let junk = d.join("junk.bin");
    std::fs::write(&junk, [0u8, 1, 2, 3, 255, 0, 7].repeat(1000)).unwrap();
    let junk = junk.to_str().unwrap();
    for (cmd, extra) in [
        ("report", vec![]),
        ("flame", vec![]),
        ("html", vec![]),
        ("export", vec!["--perfetto"]),
        ("convert", vec![]),
    ] {
        let out = d.join(&format!("{cmd}.out"));
        std::fs::write(&out, "keep\n").unwrap();
        for input in ["/nonexistent/trace.txt", junk] {
            let o = command()
                .arg(cmd)
                .args(&extra)
                .args([input, "-o", out.to_str().unwrap()])
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2), "{cmd} {input}: {}", stderr(&o));
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep\n", "{cmd} {input}");
        }
    }
    // No temporary file is left next to them.
    assert!(d.entries().iter().all(|e| !e.starts_with('.')), "{:?}", d.entries());
}

#[test]
fn successful_commands_replace_the_output_whole() {
    let d = TempDir::new("replace");
    let out = d.join("r.txt");
    std::fs::write(&out, "old content that is longer than nothing\n".repeat(1000)).unwrap();
    let o = command().args(["report", SEED, "-o", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("vcpu_enter_guest") && !text.contains("old content"), "{text}");
    assert_eq!(d.entries(), ["r.txt"]);
    // Outputs that are not regular files are written as they are.
    let o = command().args(["report", SEED, "-o", "/dev/null"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// `record -o` used to truncate the file, then fail with exit 3.
#[test]
fn failed_recording_leaves_the_old_output() {
    let d = fake_tracefs_dir("recfail");
    put(&d.0, ".fail-writes", "current_tracer function_graph 1\n");
    let out = d.join("t.txt");
    std::fs::write(&out, "keep\n").unwrap();
    let o = command()
        .args(["record", "--fake-tracefs", d.str(), "-o", out.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep\n");
    assert!(!d.entries().iter().any(|e| e.contains(".tmp")), "{:?}", d.entries());
}

/// Ctrl-C keeps what was recorded, renamed into place once flushed.
#[test]
fn interrupted_recording_keeps_what_was_captured() {
    let d = fake_tracefs_dir("recint");
    let out = d.join("t.txt");
    std::fs::write(&out, "keep\n").unwrap();
    let child = command()
        .args(["record", "--fake-tracefs", d.str(), "--events", "-o", out.to_str().unwrap()])
        .args(["--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_tracing(&d.0);
    std::thread::sleep(Duration::from_millis(100));
    // The old file stays until the recording is complete.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep\n");
    kill(child.id(), libc::SIGINT);
    let o = wait_timeout(child, Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let (host, rest) = text.split_once('\n').unwrap();
    assert!(host.starts_with("# exitscope host: {"), "{text}");
    assert!(rest.starts_with("# tracer: nop\n") && rest.contains("kvm_cpuid: func 0"), "{text}");
}

/// `run -o DIR` used to leave a 0-byte bench.json when it failed part-way.
#[test]
fn failed_run_leaves_existing_files_in_its_directory() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let d = fake_tracefs_dir("runfail");
    // Instances refused, and the top level busy: the recording cannot start.
    put(&d.0, "current_tracer", "function\n");
    std::fs::remove_dir_all(d.join("instances")).unwrap();
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["bench.json", "trace.txt"] {
        std::fs::write(out.join(f), "keep\n").unwrap();
    }
    let o = command()
        .args(["run", "nop", "--events", "--min-cycles", "2^16", "--fake-tracefs", d.str()])
        .args(["-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    for f in ["bench.json", "trace.txt"] {
        assert_eq!(std::fs::read_to_string(out.join(f)).unwrap(), "keep\n", "{f}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    assert_eq!(names, ["bench.json", "trace.txt"]);
}

// ---------------------------------------------------------------- 11.3 broken pipes

/// A reader that has already gone away: stdout or stderr of the child is a pipe whose read
/// end is closed before the child writes.
fn closed_pipe_run(args: &[&str], close_stdout: bool, close_stderr: bool) -> (Option<i32>, String) {
    let mut c = command();
    c.args(args).stdin(Stdio::null());
    c.stdout(if close_stdout { Stdio::piped() } else { Stdio::null() });
    c.stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if close_stdout {
        drop(child.stdout.take());
    }
    let err = if close_stderr {
        drop(child.stderr.take());
        String::new()
    } else {
        let mut s = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
        s
    };
    let st = wait_timeout(child, Duration::from_secs(60)).status;
    (st.code(), err)
}

#[test]
fn closed_stdout_ends_quietly_with_0() {
    for args in [
        vec!["report", SEED],
        vec!["export", "--perfetto", SEED],
        vec!["html", SEED],
        vec!["flame", "--folded", SEED],
        vec!["convert", "tests/data/tracedat/kvm-v6.dat"],
        vec!["report", "--json", "tests/data/tracedat/funcgraph-v7-zstd.dat"],
    ] {
        let (code, err) = closed_pipe_run(&args, true, false);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe") && !err.contains("error"), "{args:?}: {err}");
    }
}

/// `exitscope export --perfetto big.txt | head -c 10` printed "error: Broken pipe", exit 2: the
/// EPIPE came back wrapped in a JSON serializer error.
#[test]
fn export_to_a_reader_that_stops_early_ends_with_0() {
    let d = TempDir::new("headc");
    let big = d.join("big.txt");
    std::fs::write(&big, seed_text().repeat(3000)).unwrap();
    for args in [
        vec!["export", "--perfetto"],
        vec!["export", "--perfetto", "--format", "pftrace"],
        vec!["report", "--json"],
        vec!["flame", "--folded"],
    ] {
        let mut child = command()
            .args(&args)
            .arg(&big)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 10];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
        drop(child.stdout.take());
        let o = wait_timeout(child, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

/// `exitscope report junk 2>&1 | head -1` panicked ("failed printing to stderr").
#[test]
fn closed_stderr_never_panics() {
    let d = TempDir::new("stderr");
    let f = d.join("mostly-bad.txt");
    let mut text = seed_text();
    for i in 0..3000 {
        text.push_str(&format!(" 0)   garbage line {i} |\n"));
    }
    std::fs::write(&f, text).unwrap();
    let path = f.to_str().unwrap();
    let (code, _) = closed_pipe_run(&["report", "--max-diagnostics", "5000", path], false, true);
    assert_eq!(code, Some(0));
    let (code, _) = closed_pipe_run(&["report", "--strict", path], true, true);
    assert_eq!(code, Some(2), "an error is still an error when nobody reads it");
}

/// A recording whose reader went away restores tracefs and ends with 0.
#[test]
fn recording_to_a_closed_pipe_restores_and_ends_with_0() {
    let d = fake_tracefs_dir("recpipe");
    let before = snapshot_dir(&d.0);
    let (code, _) = closed_pipe_run(
        &["record", "--fake-tracefs", d.str(), "--events", "-o", "-", "--", "sleep", "0.3"],
        true,
        true,
    );
    assert_eq!(code, Some(0));
    assert_eq!(snapshot_dir(&d.0), before);
    assert!(ops_log(&d.0).contains("mkdir instances/"), "{}", ops_log(&d.0));
}

#[test]
fn run_with_closed_stdout_and_stderr_restores_and_ends_with_0() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let d = fake_tracefs_dir("runpipe");
    let before = snapshot_dir(&d.0);
    let args = ["run", "nop", "--events", "--min-cycles", "2^16", "--fake-tracefs", d.str()];
    let (code, _) = closed_pipe_run(&args, true, true);
    assert_eq!(code, Some(0));
    assert_eq!(snapshot_dir(&d.0), before);
}

// ---------------------------------------------------------------- 11.4 exit codes

#[test]
fn unknown_bench_test_is_exit_2_before_tracefs_is_touched() {
    let d = fake_tracefs_dir("nosuch");
    let o = command()
        .args(["record", "--events", "--bench", "nosuch", "--fake-tracefs", d.str(), "-o"])
        .arg(d.join("t.txt"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown test \"nosuch\""), "{}", stderr(&o));
    assert_eq!(ops_log(&d.0), "", "tracefs was touched");
    assert!(!d.join("t.txt").exists());
}

/// Without /dev/kvm, `run` and `record --bench` are exit 3 before any tracing, no files left.
#[test]
fn missing_kvm_is_exit_3_before_any_tracing() {
    let d = fake_tracefs_dir("nokvm");
    let out = d.join("out");
    let o = command()
        .args(["run", "cpuid", "--fake-tracefs", d.str(), "-o", out.to_str().unwrap()])
        .env("EXITSCOPE_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/kvm"), "{}", stderr(&o));
    assert_eq!(ops_log(&d.0), "");
    assert!(!out.exists(), "run left {}", out.display());

    let t = d.join("t.txt");
    let o = command()
        .args(["record", "--events", "--bench", "cpuid", "--fake-tracefs", d.str(), "-o"])
        .arg(&t)
        .env("EXITSCOPE_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(ops_log(&d.0), "");
    assert!(!t.exists());
}

/// The issue's own reproduction: a mount namespace whose /dev is an empty tmpfs.
#[test]
fn run_without_dev_kvm_in_a_mount_namespace_is_exit_3() {
    if skip_unless(&[Need::Root]) {
        return;
    }
    if !Path::new("/usr/bin/unshare").exists() {
        println!("SKIP: no unshare");
        return;
    }
    let d = fake_tracefs_dir("unshare");
    let script = format!(
        "mount -t tmpfs none /dev && exec {} run cpuid --fake-tracefs {} -o {}",
        env!("CARGO_BIN_EXE_exitscope"),
        d.str(),
        d.join("out").display()
    );
    let o =
        std::process::Command::new("unshare").args(["-m", "sh", "-c", &script]).output().unwrap();
    if stderr(&o).contains("unshare failed") || stderr(&o).contains("mount:") {
        println!("SKIP: cannot make a mount namespace here: {}", stderr(&o));
        return;
    }
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("/dev/kvm"), "{}", stderr(&o));
    assert_eq!(ops_log(&d.0), "");
    assert!(!d.join("out").exists());
}

#[test]
fn traced_command_failures_are_reported_with_exit_4_or_2() {
    let d = fake_tracefs_dir("cmdfail");
    let before = snapshot_dir(&d.0);
    let outdir = TempDir::new("cmdfail-out");
    let t = outdir.join("t.txt");
    let record = |cmd: &[&str]| {
        command()
            .args([
                "record",
                "--events",
                "--fake-tracefs",
                d.str(),
                "-o",
                t.to_str().unwrap(),
                "--",
            ])
            .args(cmd)
            .output()
            .unwrap()
    };
    // Not runnable at all: a usage error before anything is touched.
    let o = record(&["/nonexistent/cmd"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot run /nonexistent/cmd: no such file"), "{}", stderr(&o));
    assert_eq!(ops_log(&d.0), "");
    let o = record(&["no-such-command-anywhere"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not found on PATH"), "{}", stderr(&o));
    // Runs and fails: exit 4, the trace kept, tracefs restored.
    let o = record(&["false"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("the traced command exited with 1"), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&t).unwrap().contains("kvm_cpuid"));
    let o = record(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("killed by signal 9"), "{}", stderr(&o));
    assert_eq!(snapshot_dir(&d.0), before);
    let o = record(&["true"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Random bytes, only whitespace and an empty file: one error, exit 2, in every command.
#[test]
fn input_without_a_trace_is_one_error_in_every_command() {
    let d = TempDir::new("notrace");
    let mut noise = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..(1 << 20) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x >> 24) as u8);
    }
    let cases = [
        ("junk.bin", noise, "it is binary data"),
        ("blank.txt", b"  \n\n\t\n".to_vec(), "it holds only whitespace"),
        ("empty.txt", Vec::new(), "it is empty"),
        ("prose.txt", b"Dear colleague,\nplease find the trace.\n".to_vec(), "none of its 2 lines"),
    ];
    for (name, bytes, why) in &cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let p = p.to_str().unwrap();
        for args in [
            vec!["report", p],
            vec!["report", "--exits", p],
            vec!["diff", p, SEED],
            vec!["diff", SEED, p],
            vec!["html", p],
            vec!["flame", p],
            vec!["export", "--perfetto", p],
            vec!["convert", p],
        ] {
            let o = command().args(&args).output().unwrap();
            let e = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
            let want = format!("exitscope: error: {p} holds no trace: {why}");
            assert!(e.starts_with(&want), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
            assert!(o.stdout.is_empty(), "{args:?} printed a result");
        }
    }
}

/// The README's exit-code table names every code the commands use.
#[test]
fn readme_exit_code_table_matches_the_codes() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let table = &readme[readme.find("## Exit codes").unwrap()..];
    for row in ["| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |", "| 143 |", "| 129 |"] {
        assert!(table.contains(row), "README's exit-code table lacks {row}");
    }
    let help = String::from_utf8(command().arg("--help").output().unwrap().stdout).unwrap();
    assert!(help.contains("4 the traced command failed") && help.contains("130/143/129"), "{help}");
}

// ---------------------------------------------------------------- 11.5 nothing left behind

/// `kill -9` during `record --top-level` leaves the top level changed; the next run names
/// it as exitscope's own and `record --reset` puts it back.
#[test]
fn killed_top_level_recording_is_recognised_and_reset() {
    let d = fake_tracefs_dir("toplevel");
    let before = snapshot_dir(&d.0);
    let outdir = TempDir::new("toplevel-out");
    let t = outdir.join("t.txt");
    let args = ["record", "--top-level", "--events", "--fake-tracefs", d.str(), "-o"];
    let child = command()
        .args(args)
        .arg(&t)
        .args(["--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for_tracing(&d.0);
    kill(pid, libc::SIGKILL);
    let _ = wait_timeout(child, Duration::from_secs(10));
    assert_ne!(snapshot_dir(&d.0), before, "the kill left nothing to reset?");

    let o = command().args(args).arg(&t).args(["--", "true"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("exitscope pid {pid}")), "{e}");
    assert!(e.contains("exitscope record --reset"), "{e}");

    let o = command().args(["record", "--reset", "--fake-tracefs", d.str()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("changed by exitscope pid {pid}")), "{}", stderr(&o));
    assert_eq!(snapshot_dir(&d.0), before);
    // And the top level can be used again.
    let o = command().args(args).arg(&t).args(["--", "true"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(snapshot_dir(&d.0), before);
    let o = command().args(["record", "--reset", "--fake-tracefs", d.str()]).output().unwrap();
    assert!(stderr(&o).contains("nothing to reset"), "{}", stderr(&o));
}

/// The traced child used to run on for ~25 s after `record` was killed.
#[test]
fn traced_child_dies_with_exitscope() {
    let d = fake_tracefs_dir("pdeath");
    let child = command()
        .args(["record", "--events", "--fake-tracefs", d.str(), "-o"])
        .arg(d.join("t.txt"))
        .args(["--", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for_tracing(&d.0);
    let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let sleep: u32 = kids.split_whitespace().next().expect("a traced child").parse().unwrap();
    kill(pid, libc::SIGKILL);
    let _ = wait_timeout(child, Duration::from_secs(10));
    let start = Instant::now();
    while Path::new(&format!("/proc/{sleep}")).exists()
        && !std::fs::read_to_string(format!("/proc/{sleep}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(start.elapsed() < Duration::from_secs(5), "child {sleep} outlived exitscope");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- 11.6 messages

#[test]
fn messages_say_what_is_wrong_once() {
    let d = fake_tracefs_dir("msgs");
    let o = command()
        .args(["record", "--events", "--pid", "999999", "--fake-tracefs", d.str()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o), "exitscope: error: no such process: 999999\n");

    let o = command().args(["convert", "/tmp"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "exitscope: error: /tmp is a directory, expected a trace file\n");

    let o = command()
        .args(["record", "--buffer-size", "0", "--events", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be at least 1"), "{}", stderr(&o));

    let o = command()
        .args(["record", "--tracefs", "/nonexistent", "--events", "--", "true"])
        .output()
        .unwrap();
    if !stderr(&o).contains("needs root") {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o), "exitscope: error: --tracefs /nonexistent: no such directory\n");
    }

    // An OS error is printed once, not once per layer of the error chain.
    put(&d.0, ".fail-writes", "buffer_size_kb 7 22\n");
    std::fs::remove_dir_all(d.join("instances")).unwrap();
    put(&d.0, "buffer_size_kb", "1408\n");
    let o = command()
        .args(["record", "--events", "--buffer-size", "7", "--fake-tracefs", d.str(), "-o"])
        .arg(d.join("t.txt"))
        .args(["--", "true"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(e.matches("Invalid argument").count(), 1, "{e}");
}

#[test]
fn truncated_trace_dat_says_the_size_and_what_was_expected() {
    let data = std::fs::read(common::root().join("tests/data/tracedat/kvm-v6.dat")).unwrap();
    let d = TempDir::new("cut100");
    let p = d.join("cut.dat");
    std::fs::write(&p, &data[..100]).unwrap();
    for cmd in ["report", "convert"] {
        let o = command().args([cmd, p.to_str().unwrap()]).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(
            e.contains("it is 100 bytes long, but") && e.contains("were expected at byte"),
            "{e}"
        );
        let offset = e.split("at byte 0x").nth(1).unwrap();
        let offset =
            u64::from_str_radix(offset.split(|c: char| !c.is_ascii_hexdigit()).next().unwrap(), 16)
                .unwrap();
        assert!(offset < 100, "{e}");
    }
}

#[test]
fn compressed_traces_are_read_transparently() {
    let d = TempDir::new("gz");
    let plain = command().args(["report", "--json", SEED]).output().unwrap();
    assert!(plain.status.success());
    let gz = d.join("t.txt.gz");
    let mut enc =
        std::process::Command::new("gzip").arg("-c").arg(common::root().join(SEED)).output();
    if let Ok(o) = enc.as_mut()
        && o.status.success()
    {
        std::fs::write(&gz, &o.stdout).unwrap();
        let got = command().args(["report", "--json", gz.to_str().unwrap()]).output().unwrap();
        assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(&plain.stdout).unwrap(),
            serde_json::from_slice(&got.stdout).unwrap(),
        );
        assert_eq!(a["tree"], b["tree"]);
        assert_eq!(b["inputs"][0]["compression"], "gzip", "{}", b["inputs"]);
    } else {
        println!("SKIP: no gzip to make the fixture");
    }
    // zstd from stdin (a frame made by the zstd crate's format: magic 28 b5 2f fd).
    if let Ok(o) = std::process::Command::new("zstd")
        .args(["-q", "-c"])
        .arg(common::root().join(SEED))
        .output()
        && o.status.success()
    {
        let mut child = command()
            .args(["report", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&o.stdout).unwrap();
        let got = child.wait_with_output().unwrap();
        assert_eq!(got.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&got.stdout).contains("vcpu_enter_guest"));
    } else {
        println!("SKIP: no zstd binary to make the fixture");
    }
}

/// perf.data is sniffed by ingest like the other formats, in every command that reads traces.
#[test]
fn perf_data_is_read_like_the_other_formats() {
    let f = "tests/data/perfdata/kvm-file.data";
    let o = command().args(["report", "--json", f]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["inputs"][0]["format"], "perf-data", "{}", v["inputs"]);
    let reasons = v["exits"]["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["reason"] == "CPUID"), "{reasons:?}");
    for args in [vec!["html", f], vec!["export", "--perfetto", f], vec!["diff", f, f]] {
        let o = command().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn plurals_and_signs_are_right() {
    let d = TempDir::new("plural");
    let one = d.join("one.txt");
    std::fs::write(&one, "Dear colleague\n").unwrap();
    let o = command().args(["report", one.to_str().unwrap()]).output().unwrap();
    assert!(stderr(&o).contains("its only line is not an ftrace line"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("1 lines"));

    let bad = d.join("bad.txt");
    std::fs::write(&bad, format!("{} 0)   0.0x0 us    |  f();\n", seed_text())).unwrap();
    let o = command().args(["report", bad.to_str().unwrap()]).output().unwrap();
    let lines = seed_text().lines().count() + 1;
    assert!(stderr(&o).contains(&format!("skipped 1 of {lines} lines")), "{}", stderr(&o));

    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let o = command()
        .args(["bench", "--quick", "--min-cycles", "2^18", "nop", "fault_ud"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 test did not complete: fault_ud"), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(!table.contains("-0.0"), "{table}");
}

// ---------------------------------------------------------------- 11.7 run, record -e

#[test]
fn requested_events_that_never_fired_are_named() {
    let d = fake_tracefs_dir("silent");
    let o = command()
        .args(["record", "-e", "kvm:kvm_exit", "-e", "kvm:kvm_cpuid", "--fake-tracefs", d.str()])
        .args(["-o", d.join("t.txt").to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("warning: kvm:kvm_exit never fired"), "{e}");
    assert!(!e.contains("kvm:kvm_cpuid never fired"), "{e}");
    if Path::new("/sys/module/kvm_pvm").exists() {
        assert!(e.contains("PVM"), "{e}");
    }
}

#[test]
fn run_measures_untraced_then_traced_and_says_what_it_keeps() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let d = fake_tracefs_dir("runfake");
    let before = snapshot_dir(&d.0);
    let child = command()
        .args(["run", "nop", "--events", "--min-cycles", "2^18", "--fake-tracefs", d.str()])
        .args(["--color", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = wait_timeout(child, Duration::from_secs(120));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let untraced = out.lines().position(|l| l.starts_with("# bench nop, untraced:"));
    let traced = out.lines().position(|l| l.starts_with("# bench nop, traced, "));
    assert!(untraced.is_some() && traced.is_some() && untraced < traced, "{out}");
    assert!(out.contains("tracepoints on"), "{out}");
    assert!(!out.contains("root calls"), "no graph, no tree footer: {out}");
    let e = stderr(&o);
    assert!(e.contains("is temporary and deleted when exitscope ends; -o DIR keeps it"), "{e}");
    // The target is a thread of exitscope (no child process): the instance is named after
    // exitscope's pid and the pid filter names another task, its bench thread.
    let log = ops_log(&d.0);
    assert!(log.contains(&format!("mkdir instances/exitscope-{pid}\n")), "{log}");
    let filter = log.lines().find(|l| l.contains("set_event_pid")).expect("a pid filter");
    let tid: u32 = filter.split('"').nth(1).unwrap().parse().unwrap();
    assert!(tid > pid, "{filter}: the bench thread, not exitscope's main thread {pid}");
    assert_eq!(snapshot_dir(&d.0), before);
}

#[test]
fn run_falls_back_to_events_with_one_plain_reason() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let d = fake_tracefs_dir("runfallback");
    put(&d.0, "available_tracers", "nop\n");
    let o = command()
        .args(["run", "nop", "--min-cycles", "2^18", "--fake-tracefs", d.str(), "--color", "never"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("this kernel offers no function_graph tracer"), "{e}");
    assert!(!e.contains("is not available: tracer"), "{e}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("recorded kvm tracepoints (this kernel offers no function_graph"),
        "{out}"
    );
}

// ---------------------------------------------------------------- 11.8 help

#[test]
fn every_subcommand_help_teaches_with_the_same_names() {
    let help = |sub: &str| {
        let o = command().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help");
        String::from_utf8(o.stdout).unwrap()
    };
    for sub in
        ["run", "bench", "record", "report", "diff", "html", "flame", "export", "convert", "top"]
    {
        let h = help(sub);
        assert!(h.contains("Examples:\n  exitscope "), "{sub} --help has no example:\n{h}");
        if h.contains("--output") && sub != "run" {
            assert!(h.contains("-o, --output <FILE>"), "{sub}: {h}");
        }
        if h.contains("--color") {
            assert!(h.contains("--color <WHEN>"), "{sub}: {h}");
        }
        if h.contains("--max-diagnostics") {
            assert!(h.contains("--max-diagnostics <N>") && h.contains("--strict"), "{sub}: {h}");
        }
    }
    for sub in ["run", "bench", "record", "top"] {
        let h = help(sub);
        for flag in ["--cpl <0|3>", "--min-cycles <N|2^N>", "--repeat <N>", "--timeout <SECS>"] {
            assert!(h.contains(flag), "{sub} --help lacks {flag}:\n{h}");
        }
    }
    for sub in ["record", "run", "top"] {
        assert!(help(sub).contains("--buffer-size <KB>"), "{sub}");
    }
    for sub in ["report", "diff", "html", "flame", "export"] {
        assert!(help(sub).contains("trace.dat"), "{sub} --help never mentions trace.dat");
    }
}
