//! `exitscope record` end to end: against a fake tracefs (exact restore after SIGINT to
//! exitscope, a child killed by SIGKILL, a refused tracer) and, when root + tracefs + /dev/kvm
//! are present, against the real tracefs with a tiny KVM program that makes kvm_cpuid events.
//! Hardware tests print `SKIP: <reason>` and fail instead under `EXITSCOPE_REQUIRE_HW=1`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use exitscope_model::{Record, RecordKind, Task};

const BIN: &str = env!("CARGO_BIN_EXE_exitscope");

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "exitscope-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

const LINES: &str = "         python3-5832    [001] .....   979.002051: kvm_cpuid: func 0 idx ffff rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found\n";

/// A fake tracefs whose instances support events only (like this machine's kernel, but with
/// function_graph available at the top level).
fn fake(root: &Path) {
    for (rel, c) in [
        ("tracing_on", "1\n"),
        ("current_tracer", "nop\n"),
        ("available_tracers", "function_graph function nop\n"),
        ("set_graph_function", "#### all functions enabled ####\n"),
        ("set_ftrace_pid", "no pid\n"),
        ("set_event", ""),
        ("max_graph_depth", "0\n"),
        ("options/funcgraph-abstime", "0\n"),
        ("options/funcgraph-proc", "0\n"),
        ("options/function-fork", "0\n"),
        ("trace_pipe", LINES),
        (".instance-template/tracing_on", "1\n"),
        (".instance-template/available_tracers", "nop\n"),
        (".instance-template/set_event_pid", ""),
        (".instance-template/options/event-fork", "0\n"),
        (".instance-template/events/kvm/kvm_cpuid/enable", "0\n"),
        (".instance-template/trace_pipe", LINES),
    ] {
        put(root, rel, c);
    }
    fs::create_dir_all(root.join("instances")).unwrap();
}

/// Every non-hidden file with its content.
fn snapshot_dir(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    spawn(args).wait_with_output().unwrap()
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our unreaped child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

fn wait_timeout(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < limit, "exitscope did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn fake_sigint_to_exitscope_restores_and_exits_130() {
    signal_to_exitscope_restores(libc::SIGINT, 130, "SIGINT");
}

#[test]
fn fake_sigterm_to_exitscope_restores_and_exits_143() {
    signal_to_exitscope_restores(libc::SIGTERM, 143, "SIGTERM");
}

#[test]
fn fake_sighup_to_exitscope_restores_and_exits_129() {
    signal_to_exitscope_restores(libc::SIGHUP, 129, "SIGHUP");
}

fn signal_to_exitscope_restores(sig: i32, code: i32, name: &str) {
    let dir = TempDir::new("sig");
    // A stale instance of a killed exitscope is cleaned up; a live one would be kept.
    fs::create_dir_all(dir.0.join("instances/exitscope-4000000000")).unwrap();
    fake(&dir.0);
    let before = snapshot_dir(&dir.0);
    let out = dir.0.join(".out.txt");
    let root = dir.0.to_str().unwrap();
    let child = spawn(&[
        "record",
        "--fake-tracefs",
        root,
        "--events",
        "-o",
        out.to_str().unwrap(),
        "--",
        "sleep",
        "30",
    ]);
    // Wait until recording has started (tracing_on 1 in the log), then interrupt.
    let start = Instant::now();
    while !fs::read_to_string(dir.0.join(".ops.log"))
        .unwrap_or_default()
        .contains("tracing_on \"1\"")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "recording never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, sig);
    let o = wait_timeout(child, Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("interrupted by {name}; tracefs restored")),
        "{}",
        stderr(&o)
    );
    let mut expected = before;
    expected.remove("instances/exitscope-4000000000/");
    assert_eq!(snapshot_dir(&dir.0), expected);
    let log = fs::read_to_string(dir.0.join(".ops.log")).unwrap();
    assert!(log.starts_with("rmdir instances/exitscope-4000000000\n"), "{log}");
    let first = log.lines().nth(1).unwrap();
    let last = log.lines().last().unwrap();
    assert!(first.starts_with("mkdir instances/exitscope-"), "{log}");
    assert!(last.starts_with("rmdir instances/exitscope-"), "{log}");
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# tracer: nop\n# exitscope record: kvm:kvm_cpuid\n"), "{text}");
    assert!(text.contains("kvm_cpuid: func 0"), "{text}");
}

#[test]
fn fake_graph_child_killed_by_sigkill_restores() {
    let dir = TempDir::new("sigkill");
    fake(&dir.0);
    let before = snapshot_dir(&dir.0);
    let out = dir.0.join(".out.txt");
    let o = run(&[
        "record",
        "--fake-tracefs",
        dir.0.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sleep 0.2; kill -KILL $$",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("signal: 9"), "{}", stderr(&o));
    assert_eq!(snapshot_dir(&dir.0), before);
    let log = fs::read_to_string(dir.0.join(".ops.log")).unwrap();
    assert!(log.contains("write current_tracer \"function_graph\""), "{log}");
    assert!(log.contains("write set_graph_function \"vcpu_enter_guest\""), "{log}");
    assert!(log.trim_end().ends_with("write tracing_on \"1\""), "{log}");
}

/// Issue 8: an explicit `--graph vcpu_enter_guest` that the compiler inlined falls back to the
/// nearest traceable root on KVM's exit path and says so; any other missing function is an
/// error, never an empty filter.
#[test]
fn fake_explicit_inlined_exit_path_root_falls_back_and_others_do_not() {
    let dir = TempDir::new("fallback");
    fake(&dir.0);
    put(&dir.0, "available_filter_functions", "kvm_arch_vcpu_ioctl_run [kvm]\nschedule\n");
    let before = snapshot_dir(&dir.0);
    let out = dir.0.join(".out.txt");
    let fake_dir = dir.0.to_str().unwrap();
    let o = run(&[
        "record",
        "--fake-tracefs",
        fake_dir,
        "--graph",
        "vcpu_enter_guest",
        "-o",
        out.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("vcpu_enter_guest is not traceable"), "{e}");
    assert!(e.contains("kvm_arch_vcpu_ioctl_run"), "{e}");
    let log = fs::read_to_string(dir.0.join(".ops.log")).unwrap();
    assert!(log.contains("write set_graph_function \"kvm_arch_vcpu_ioctl_run\""), "{log}");
    assert_eq!(snapshot_dir(&dir.0), before);

    fs::remove_file(dir.0.join(".ops.log")).unwrap();
    let o = run(&[
        "record",
        "--fake-tracefs",
        fake_dir,
        "--graph",
        "handle_io",
        "-o",
        out.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("handle_io"), "{}", stderr(&o));
    let log = fs::read_to_string(dir.0.join(".ops.log")).unwrap_or_default();
    assert!(!log.contains("current_tracer \"function_graph\""), "{log}");
    assert_eq!(snapshot_dir(&dir.0), before);
}

#[test]
fn fake_eperm_for_function_graph_says_use_events_and_exits_3() {
    let dir = TempDir::new("eperm");
    fake(&dir.0);
    put(&dir.0, ".fail-writes", "current_tracer function_graph 1\n");
    let before = snapshot_dir(&dir.0);
    let out = dir.0.join(".out.txt");
    let o = run(&[
        "record",
        "--fake-tracefs",
        dir.0.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.starts_with("exitscope: error: function_graph cannot be used"), "{e}");
    assert!(e.contains("--events") && e.contains("EPERM"), "{e}");
    assert_eq!(snapshot_dir(&dir.0), before);
}

#[test]
fn nothing_to_trace_is_a_usage_error() {
    let o = run(&["record", "--events"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing to trace"), "{}", stderr(&o));
}

// ---- real machine ----

/// Why the hardware tests cannot run here, if they cannot.
fn hw_missing() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/sys/kernel/tracing/tracing_on").exists() {
        return Some("no tracefs at /sys/kernel/tracing".into());
    }
    if !Path::new("/dev/kvm").exists() {
        return Some("no /dev/kvm".into());
    }
    if Command::new("python3").arg("-c").arg("").status().map_or(true, |s| !s.success()) {
        return Some("no python3".into());
    }
    None
}

fn skip_unless_hw() -> bool {
    match hw_missing() {
        None => false,
        Some(why) => {
            assert!(
                std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
                "EXITSCOPE_REQUIRE_HW=1 but {why}"
            );
            println!("SKIP: {why}");
            true
        }
    }
}

/// The top-level tracefs files a recording could touch, with their content. Consuming files
/// (trace, trace_pipe) and huge lists are not read; unreadable files (lockdown) are skipped.
fn snapshot_tracefs() -> BTreeMap<String, String> {
    let root = Path::new("/sys/kernel/tracing");
    let mut m = BTreeMap::new();
    let mut add = |p: PathBuf| {
        if let Ok(s) = fs::read_to_string(&p) {
            m.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned(), s);
        }
    };
    for f in [
        "tracing_on",
        "current_tracer",
        "trace_clock",
        "set_event",
        "set_event_pid",
        "set_event_notrace_pid",
        "set_ftrace_pid",
        "set_ftrace_notrace_pid",
        "set_graph_function",
        "set_graph_notrace",
        "set_ftrace_filter",
        "set_ftrace_notrace",
        "max_graph_depth",
        "buffer_size_kb",
        "trace_options",
    ] {
        add(root.join(f));
    }
    for e in fs::read_dir(root.join("options")).unwrap().flatten() {
        add(e.path());
    }
    for sys in ["kvm", "kvmmmu"] {
        let d = root.join("events").join(sys);
        add(d.join("enable"));
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                add(e.path().join("enable"));
            }
        }
    }
    m
}

fn helper() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers/kvm_cpuid_loop.py")
        .to_string_lossy()
        .into_owned()
}

/// Test-only splitter for the event lines of a recording (the real parser is exitscope-ftrace).
fn split(line: &str) -> Option<Record<'_>> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with("CPU:") || t.is_empty() {
        return None;
    }
    let open = t.find(" [")?;
    let close = open + t[open..].find(']')?;
    let task_s = t[..open].trim_end();
    let dash = task_s.rfind('-')?;
    let rest = &t[close + 1..];
    let colon = rest.find(": ")?;
    let (secs, frac) = rest[..colon].split_whitespace().last()?.split_once('.')?;
    let ts = secs.parse::<u64>().ok()? * 1_000_000_000
        + format!("{frac:0<9}")[..9].parse::<u64>().ok()?;
    let (name, text) = rest[colon + 2..].split_once(": ")?;
    Some(Record {
        line: 0,
        cpu: t[open + 2..close].parse().ok(),
        task: Some(Task { comm: &task_s[..dash], pid: task_s[dash + 1..].parse().ok()? }),
        timestamp: Some(ts),
        kind: RecordKind::Event { name, text },
    })
}

#[test]
fn real_events_record_counts_the_programs_kvm_cpuid_and_restores_tracefs() {
    if skip_unless_hw() {
        return;
    }
    let dir = TempDir::new("real");
    let out = dir.0.join("t.txt");
    let before = snapshot_tracefs();
    let started = Instant::now();
    let o = run(&[
        "record",
        "--events",
        "-o",
        out.to_str().unwrap(),
        "--",
        "python3",
        &helper(),
        "500",
    ]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(snapshot_tracefs(), before, "tracefs differs after the run");
    let text = fs::read_to_string(&out).unwrap();
    let mut pids = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(r) = split(line) {
            pids.insert(r.task.unwrap().pid);
        }
    }
    // Only the traced program's thread wrote events (set_event_pid), although other tenants'
    // VMs may be running.
    assert_eq!(pids.len(), 1, "events from other tasks: {pids:?}");
    let rep = Command::new(BIN).args(["report", "--json", out.to_str().unwrap()]).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(v["events"]["kvm_cpuid"], 500, "{}", v["events"]);
    assert_eq!(v["exits"]["source"], "tracepoints", "kvm_exit does not fire on PVM");
    let cpuid =
        v["exits"]["reasons"].as_array().unwrap().iter().find(|x| x["reason"] == "CPUID").unwrap();
    assert_eq!(cpuid["count"], 500);
    eprintln!(
        "real record: {} kvm_cpuid events, {} lines, exitscope ran {:.3} s; cpuid inter-arrival p50 {} ns; rate {:.0}/s",
        cpuid["count"],
        text.lines().count(),
        took.as_secs_f64(),
        cpuid["inter_arrival"]["p50_ns"],
        cpuid["rate_per_s"].as_f64().unwrap_or(0.0)
    );
}

/// `--bench TEST` records exitscope's own VMM; `exitscope report` of the file counts the exits.
#[test]
fn real_bench_target_records_its_port_io_exits_and_report_counts_them() {
    if skip_unless_hw() {
        return;
    }
    let dir = TempDir::new("bench");
    let out = dir.0.join("t.txt");
    let before = snapshot_tracefs();
    let o = run(&["record", "--events", "--bench", "inl_from_kernel", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(snapshot_tracefs(), before, "tracefs differs after the run");
    let rep = Command::new(BIN).args(["report", "--json", out.to_str().unwrap()]).output().unwrap();
    assert!(rep.status.success(), "{}", stderr(&rep));
    let v: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    let pio = v["events"]["kvm_pio"].as_u64().unwrap_or(0);
    // --quick runs at least 2^26 cycles of ~3-20 us exits, three times: thousands of exits.
    assert!(pio > 1000, "kvm_pio {pio}: {}", v["events"]);
    let io =
        v["exits"]["reasons"].as_array().unwrap().iter().find(|r| r["reason"] == "IO").unwrap();
    assert_eq!(io["count"].as_u64(), Some(pio));
    eprintln!("record --bench inl_from_kernel: {pio} kvm_pio events");
}

#[test]
fn real_sigint_mid_recording_leaves_tracefs_as_it_was() {
    if skip_unless_hw() {
        return;
    }
    let dir = TempDir::new("realint");
    let out = dir.0.join("t.txt");
    let before = snapshot_tracefs();
    let child = spawn(&["record", "--events", "-o", out.to_str().unwrap(), "--", "sleep", "30"]);
    let instance = PathBuf::from(format!("/sys/kernel/tracing/instances/exitscope-{}", child.id()));
    let start = Instant::now();
    // An instance starts with tracing_on 1; the enable files are written just before
    // exitscope's own `tracing_on 1`, so wait for one of them (and the sleep below).
    let last_enable = instance.join("events/kvm/kvm_cpuid/enable");
    while fs::read_to_string(&last_enable).unwrap_or_default().trim() != "1" {
        assert!(start.elapsed() < Duration::from_secs(10), "recording never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        fs::read_to_string(instance.join("events/kvm/kvm_cpuid/enable")).unwrap().trim(),
        "1"
    );
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let o = wait_timeout(child, Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(!instance.exists(), "instance {} left behind", instance.display());
    assert_eq!(snapshot_tracefs(), before, "tracefs differs after SIGINT");
}

#[test]
fn real_function_graph_is_refused_plainly_and_nothing_changes() {
    if skip_unless_hw() {
        return;
    }
    let available = fs::read_to_string("/sys/kernel/tracing/available_tracers").unwrap();
    if available.split_whitespace().any(|t| t == "function_graph") {
        println!("SKIP: this kernel offers function_graph; the refusal test is for lockdown hosts");
        return;
    }
    let dir = TempDir::new("realgraph");
    let before = snapshot_tracefs();
    let o = run(&["record", "-o", dir.0.join("g.txt").to_str().unwrap(), "--", "true"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("exitscope record --events"), "{}", stderr(&o));
    assert_eq!(snapshot_tracefs(), before);
}

#[test]
fn real_pid_target_follows_the_process_and_stops_when_it_exits() {
    if skip_unless_hw() {
        return;
    }
    let dir = TempDir::new("realpid");
    let out = dir.0.join("t.txt");
    // A wrapper that has already forked (sleep) and later runs the KVM program.
    let mut target = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 1; python3 {} 200 >/dev/null", helper()))
        .spawn()
        .unwrap();
    let pid = target.id().to_string();
    let before = snapshot_tracefs();
    let o = run(&[
        "record",
        "-e",
        "kvm:kvm_cpuid",
        "-o",
        out.to_str().unwrap(),
        "--pid",
        &pid,
        "--duration",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(target.wait().unwrap().success());
    assert_eq!(snapshot_tracefs(), before);
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains(" kvm_cpuid: ")).count(), 200, "{}", stderr(&o));
}

#[test]
fn fake_output_error_mid_recording_still_restores() {
    let dir = TempDir::new("full");
    fake(&dir.0);
    let before = snapshot_dir(&dir.0);
    let o = run(&[
        "record",
        "--fake-tracefs",
        dir.0.to_str().unwrap(),
        "--events",
        "-o",
        "/dev/full",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/dev/full") && stderr(&o).contains("ENOSPC"), "{}", stderr(&o));
    assert_eq!(snapshot_dir(&dir.0), before);
    let log = fs::read_to_string(dir.0.join(".ops.log")).unwrap();
    assert!(
        log.trim_end().lines().last().unwrap().starts_with("rmdir instances/exitscope-"),
        "{log}"
    );
}
