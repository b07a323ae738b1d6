//! Helpers shared by the CLI tests: run the real binary, compare against golden files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_exitscope");

/// The workspace root (where `tests/data` lives); tests run the binary from there so paths in
/// outputs are stable.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Run `exitscope ARGS` in the workspace root.
pub fn exitscope(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .expect("run exitscope")
}

/// Stdout as a string; panics with stderr when the command failed.
pub fn ok_stdout(args: &[&str]) -> String {
    let out = exitscope(args);
    assert!(
        out.status.success(),
        "exitscope {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compare `actual` with the golden file at `expected` (relative to the workspace root):
/// the one golden runner, `exitscope_testkit::golden`.
pub fn golden(actual: &str, expected: &str) {
    exitscope_testkit::golden(actual, expected);
}

/// The `exitscope` binary as a command, run in the workspace root.
pub fn command() -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(root()).env_remove("NO_COLOR");
    c
}

/// Start `exitscope ARGS` in the workspace root (stdin empty, stdout and stderr piped), for
/// tests that signal it or wait with a deadline ([`wait_timeout`]).
pub fn spawn(args: &[&str]) -> Child {
    command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start exitscope")
}

/// Stderr of a finished command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout of a finished command, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stdout of a finished command as one JSON document; panics with both streams when it is not.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `exitscope-cli-<tag>-<pid>-<n>` under the system temp dir, empty.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "exitscope-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// `dir/rel`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// The directory as `&str`.
    pub fn str(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// `dir/rel` as a `String` (an argument).
    pub fn arg(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().into_owned()
    }

    /// Names of the entries in the directory, sorted (temporary output files show up here).
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write `content` to `root/rel`, creating directories.
pub fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// What the hardware tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A usable `/dev/kvm`.
    Kvm,
    /// Root and a writable tracefs at /sys/kernel/tracing.
    Tracefs,
    /// python3 (the kvm_cpuid_loop helper).
    Python,
    /// Root (for `unshare`, real tracefs).
    Root,
}

/// Why `need` is not met here, if it is not.
pub fn missing(need: Need) -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match need {
        Need::Kvm => std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .err()
            .map(|e| format!("/dev/kvm unusable: {e}")),
        Need::Root => (!root).then(|| "not root".to_owned()),
        Need::Tracefs if !root => Some("not root".to_owned()),
        Need::Tracefs => std::fs::OpenOptions::new()
            .write(true)
            .open("/sys/kernel/tracing/tracing_on")
            .err()
            .map(|e| format!("no writable tracefs at /sys/kernel/tracing: {e}")),
        Need::Python => {
            (!Command::new("python3").arg("-c").arg("").status().is_ok_and(|s| s.success()))
                .then(|| "no python3".to_owned())
        }
    }
}

/// True (after printing `SKIP: <test>: <reason>`, see `exitscope_testkit::skip_unless`) when
/// something in `needs` is missing; under `EXITSCOPE_REQUIRE_HW=1` that fails the test.
pub fn skip_unless(needs: &[Need]) -> bool {
    let test = std::thread::current().name().unwrap_or("test").to_owned();
    !exitscope_testkit::skip_unless(&test, needs.iter().find_map(|n| missing(*n)))
}

/// One kvm_cpuid event line as trace_pipe prints it.
pub const CPUID_LINE: &str = "         python3-5832    [001] .....   979.002051: kvm_cpuid: func 0 idx ffff rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found\n";

/// A fake tracefs (see `exitscope_tracefs::Tracefs::fake`) whose instances support events
/// only (like this machine's kernel, but with function_graph available at the top level),
/// with kvm_cpuid and kvm_exit events; trace_pipe holds one kvm_cpuid line.
pub fn fake_tracefs(root: &Path) {
    for (rel, c) in [
        ("tracing_on", "1\n"),
        ("current_tracer", "nop\n"),
        ("available_tracers", "function_graph function nop\n"),
        ("set_graph_function", "#### all functions enabled ####\n"),
        ("set_ftrace_pid", "no pid\n"),
        ("set_event", ""),
        ("set_event_pid", ""),
        ("buffer_size_kb", "1408\n"),
        ("max_graph_depth", "0\n"),
        ("options/funcgraph-abstime", "0\n"),
        ("options/funcgraph-proc", "0\n"),
        ("options/function-fork", "0\n"),
        ("options/event-fork", "0\n"),
        ("events/kvm/kvm_cpuid/enable", "0\n"),
        ("events/kvm/kvm_exit/enable", "0\n"),
        ("trace_pipe", CPUID_LINE),
        (".instance-template/tracing_on", "1\n"),
        (".instance-template/available_tracers", "nop\n"),
        (".instance-template/set_event_pid", ""),
        (".instance-template/buffer_size_kb", "7\n"),
        (".instance-template/options/event-fork", "0\n"),
        (".instance-template/events/kvm/kvm_cpuid/enable", "0\n"),
        (".instance-template/events/kvm/kvm_exit/enable", "0\n"),
        (".instance-template/trace_pipe", CPUID_LINE),
    ] {
        put(root, rel, c);
    }
    // Instances can record binary too: real pages and formats of a kvm recording.
    exitscope_testkit::fake_tracefs::binary_instance_template(root);
    std::fs::create_dir_all(root.join("instances")).unwrap();
}

/// A new temporary directory holding a [`fake_tracefs`].
pub fn fake_tracefs_dir(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    fake_tracefs(&d.0);
    d
}

/// Every non-hidden file under `root` with its content (directories end in `/`).
pub fn snapshot_dir(root: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
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
                out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut m = std::collections::BTreeMap::new();
    walk(root, root, &mut m);
    m
}

/// The fake tracefs's log of changes (empty when nothing was touched).
pub fn ops_log(root: &Path) -> String {
    std::fs::read_to_string(root.join(".ops.log")).unwrap_or_default()
}

/// Wait until the fake tracefs log shows tracing switched on.
pub fn wait_for_tracing(root: &Path) {
    let start = std::time::Instant::now();
    while !ops_log(root).contains("tracing_on \"1\"") {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "recording never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Send `sig` to process `pid`.
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(i32::try_from(pid).unwrap(), sig);
    }
}

/// Wait for `child` with a deadline, then collect its output.
pub fn wait_timeout(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("exitscope did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The top-level tracefs files a recording could touch, with their content. Consuming files
/// (trace, trace_pipe) and huge lists are not read; unreadable files (lockdown) are skipped.
pub fn snapshot_tracefs() -> std::collections::BTreeMap<String, String> {
    let root = Path::new("/sys/kernel/tracing");
    let mut m = std::collections::BTreeMap::new();
    let mut add = |p: PathBuf| {
        if let Ok(s) = std::fs::read_to_string(&p) {
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
    for e in std::fs::read_dir(root.join("options")).unwrap().flatten() {
        add(e.path());
    }
    for sys in ["kvm", "kvmmmu"] {
        let d = root.join("events").join(sys);
        add(d.join("enable"));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                add(e.path().join("enable"));
            }
        }
    }
    m
}
