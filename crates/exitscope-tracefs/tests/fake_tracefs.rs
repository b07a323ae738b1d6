//! Sessions against a fake tracefs (a directory of plain files): the exact sequence of
//! writes, and a full restore after success, refusal, a child killed by SIGINT or SIGKILL,
//! and a panic.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;

use exitscope_tracefs::{
    Error, Mode, Op, PausedChild, Placement, Session, SessionConfig, StopWhen, Tracefs,
};

mod common;

use common::{TempDir, put};

const TRACE_LINES: &str = "\
         python3-5832    [001] .....   979.002051: kvm_cpuid: func 0 idx ffff rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found
         python3-5832    [001] .....   979.002053: kvm_cpuid: func 0 idx ffff rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found
";

/// The files a kernel with function_graph shows at the top level, with typical content.
fn fake_top_level(root: &Path) {
    for (rel, content) in [
        ("tracing_on", "1\n"),
        ("current_tracer", "nop\n"),
        ("available_tracers", "function_graph function nop\n"),
        (
            "available_filter_functions",
            "vcpu_enter_guest [kvm]\nvcpu_run [kvm]\nkvm_arch_vcpu_ioctl_run [kvm]\nschedule\n",
        ),
        ("set_graph_function", "#### all functions enabled ####\n"),
        ("set_graph_notrace", ""),
        ("set_ftrace_filter", "#### all functions enabled ####\n"),
        ("set_ftrace_pid", "no pid\n"),
        ("set_event_pid", ""),
        ("set_event", ""),
        ("max_graph_depth", "0\n"),
        ("buffer_size_kb", "1408\n"),
        ("trace_clock", "[local] global counter\n"),
        ("options/funcgraph-abstime", "0\n"),
        ("options/funcgraph-proc", "0\n"),
        ("options/function-fork", "0\n"),
        ("options/event-fork", "0\n"),
        ("events/kvm/kvm_exit/enable", "0\n"),
        ("events/kvm/kvm_entry/enable", "0\n"),
        ("events/kvm/kvm_cpuid/enable", "0\n"),
        ("trace_pipe", TRACE_LINES),
        ("per_cpu/cpu0/stats", "entries: 0\noverrun: 0\ncommit overrun: 0\ndropped events: 0\n"),
        ("per_cpu/cpu1/stats", "entries: 0\noverrun: 3\ncommit overrun: 0\ndropped events: 0\n"),
    ] {
        put(root, rel, content);
    }
    fs::create_dir_all(root.join("instances")).unwrap();
}

/// What a kernel puts in a new instance that supports events but not function_graph.
fn fake_instance_template(root: &Path) {
    let t = root.join(".instance-template");
    for (rel, content) in [
        ("tracing_on", "1\n"),
        ("current_tracer", "nop\n"),
        ("available_tracers", "nop\n"),
        ("set_event_pid", ""),
        ("set_event", ""),
        ("buffer_size_kb", "7 (expanded: 1408)\n"),
        ("options/event-fork", "0\n"),
        ("events/kvm/kvm_exit/enable", "0\n"),
        ("events/kvm/kvm_entry/enable", "0\n"),
        ("events/kvm/kvm_cpuid/enable", "0\n"),
        ("trace_pipe", TRACE_LINES),
        ("per_cpu/cpu0/stats", "entries: 0\noverrun: 0\ncommit overrun: 0\ndropped events: 0\n"),
    ] {
        put(&t, rel, content);
    }
}

/// Every file under the root (hidden control files excluded) with its content.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
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
                out.insert(rel, fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn w(path: &str, value: &str) -> Op {
    Op::Write { path: path.into(), value: value.into(), errno: None }
}

fn graph_config(pid: u32) -> SessionConfig {
    let mut cfg = SessionConfig::new(Mode::Graph {
        functions: vec!["vcpu_enter_guest".into()],
        fallback: true,
        max_depth: Some(5),
        abstime: true,
        proc_column: true,
    });
    cfg.pids = vec![pid];
    cfg.instance_name = "exitscope-test".into();
    cfg
}

/// The seed's sequence plus our settings, then the restore in its fixed order.
#[test]
fn graph_mode_top_level_exact_writes_and_full_restore() {
    let dir = TempDir::new("graph");
    fake_top_level(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let s = Session::start(&fs, &graph_config(4242)).unwrap();
    assert_eq!(s.instance(), None);
    assert!(
        s.notes()
            .iter()
            .any(|n| n.contains("does not support function_graph in tracefs instances"))
    );
    assert_eq!(fs::read_to_string(dir.0.join("current_tracer")).unwrap(), "function_graph\n");
    assert_eq!(fs::read_to_string(dir.0.join("set_graph_function")).unwrap(), "vcpu_enter_guest\n");
    s.finish().unwrap();
    let setup = vec![
        // The instance is tried first; it lacks function_graph, so it goes at once.
        Op::Mkdir("instances/exitscope-test".into()),
        Op::Rmdir("instances/exitscope-test".into()),
        // The seed: nop, tracing_on 0, set_graph_function, tracing_on 1, function_graph.
        w("current_tracer", "nop"),
        w("tracing_on", "0"),
        w("options/funcgraph-abstime", "1"),
        w("options/funcgraph-proc", "1"),
        w("max_graph_depth", "5"),
        w("options/function-fork", "1"),
        w("set_ftrace_pid", "4242"),
        w("set_graph_function", "vcpu_enter_guest"),
        w("tracing_on", "1"),
        w("current_tracer", "function_graph"),
    ];
    let restore = vec![
        w("tracing_on", "0"),
        w("current_tracer", "nop"),
        w("set_graph_function", ""),
        w("set_ftrace_pid", ""),
        w("options/function-fork", "0"),
        w("max_graph_depth", "0"),
        w("options/funcgraph-proc", "0"),
        w("options/funcgraph-abstime", "0"),
        w("tracing_on", "1"),
    ];
    assert_eq!(fs.ops(), [setup, restore].concat());
    assert_eq!(snapshot(&dir.0), before);
}

/// With no pid filter and no depth, only the seed's five writes touch the top level.
#[test]
fn graph_mode_minimal_is_the_seed_sequence() {
    let dir = TempDir::new("seed");
    fake_top_level(&dir.0);
    fs::remove_dir_all(dir.0.join("instances")).unwrap();
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut cfg = SessionConfig::new(Mode::Graph {
        functions: vec!["vcpu_enter_guest".into()],
        fallback: false,
        max_depth: None,
        abstime: false,
        proc_column: false,
    });
    cfg.placement = Placement::TopLevel;
    drop(Session::start(&fs, &cfg).unwrap());
    let ops = fs.ops();
    assert_eq!(
        ops[..5],
        [
            w("current_tracer", "nop"),
            w("tracing_on", "0"),
            w("set_graph_function", "vcpu_enter_guest"),
            w("tracing_on", "1"),
            w("current_tracer", "function_graph"),
        ]
    );
    assert_eq!(snapshot(&dir.0), before);
}

#[test]
fn graph_refused_with_eperm_restores_everything_and_says_so() {
    let dir = TempDir::new("eperm");
    fake_top_level(&dir.0);
    put(&dir.0, ".fail-writes", "current_tracer function_graph 1\n");
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let err = Session::start(&fs, &graph_config(1)).unwrap_err();
    assert!(matches!(err, Error::TracerRefused { .. }), "{err:?}");
    assert_eq!(err.raw_os_error(), Some(1));
    assert!(err.is_environment());
    let msg = err.to_string();
    assert!(msg.contains("current_tracer") && msg.contains("EPERM"), "{msg}");
    let ops = fs.ops();
    let failed = ops.iter().position(|o| matches!(o, Op::Write { errno: Some(1), .. })).unwrap();
    assert_eq!(ops[failed + 1], w("tracing_on", "0"), "restore starts right after the refusal");
    assert_eq!(snapshot(&dir.0), before);
}

#[test]
fn tracer_missing_from_available_tracers_touches_nothing() {
    let dir = TempDir::new("notracer");
    fake_top_level(&dir.0);
    put(&dir.0, "available_tracers", "blk function nop\n");
    let fs = Tracefs::fake(&dir.0);
    let err = Session::start(&fs, &graph_config(1)).unwrap_err();
    assert!(matches!(err, Error::TracerUnavailable { .. }), "{err:?}");
    assert!(fs.ops().is_empty());
}

#[test]
fn inlined_root_falls_back_to_a_traceable_one() {
    let dir = TempDir::new("inlined");
    fake_top_level(&dir.0);
    put(&dir.0, "available_filter_functions", "kvm_arch_vcpu_ioctl_run [kvm]\nschedule\n");
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let s = Session::start(&fs, &graph_config(1)).unwrap();
    assert_eq!(s.enabled(), ["kvm_arch_vcpu_ioctl_run"]);
    assert!(s.notes().iter().any(|n| n.contains("vcpu_enter_guest is not traceable")));
    assert!(fs.ops().contains(&w("set_graph_function", "kvm_arch_vcpu_ioctl_run")));
    drop(s);
    assert_eq!(snapshot(&dir.0), before);
}

/// The kernel bug the lab found: a rejected name leaves the filter empty, and function_graph
/// would then trace every function. The read-back must abort before the tracer is set.
#[test]
fn empty_graph_filter_after_write_aborts_before_tracing() {
    let dir = TempDir::new("emptyfilter");
    fake_top_level(&dir.0);
    fs::remove_file(dir.0.join("available_filter_functions")).unwrap(); // as under lockdown
    put(&dir.0, ".fail-writes", "set_graph_function * 22\n");
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let err = Session::start(&fs, &graph_config(1)).unwrap_err();
    assert!(matches!(err, Error::GraphFilterEmpty { .. }), "{err:?}");
    assert!(!fs.ops().contains(&w("current_tracer", "function_graph")));
    assert!(
        !fs.ops().contains(&w("tracing_on", "1")) || {
            // tracing_on 1 may only appear as the restore of the saved value, after the failure.
            let ops = fs.ops();
            let fail =
                ops.iter().position(|o| matches!(o, Op::Write { errno: Some(_), .. })).unwrap();
            ops.iter().position(|o| *o == w("tracing_on", "1")).unwrap() > fail
        }
    );
    assert_eq!(snapshot(&dir.0), before);
}

#[test]
fn none_traceable_is_an_error_before_any_write() {
    let dir = TempDir::new("nonetraceable");
    fake_top_level(&dir.0);
    put(&dir.0, "available_filter_functions", "schedule\n");
    let fs = Tracefs::fake(&dir.0);
    let err = Session::start(&fs, &graph_config(1)).unwrap_err();
    assert!(matches!(err, Error::NoTraceableFunction { .. }), "{err:?}");
    assert_eq!(
        fs.ops(),
        [
            Op::Mkdir("instances/exitscope-test".into()),
            Op::Rmdir("instances/exitscope-test".into())
        ]
    );
}

#[test]
fn someone_elses_top_level_session_is_never_clobbered() {
    let dir = TempDir::new("busy");
    fake_top_level(&dir.0);
    put(&dir.0, "current_tracer", "function\n");
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut cfg = graph_config(1);
    cfg.placement = Placement::TopLevel;
    let err = Session::start(&fs, &cfg).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(fs.ops().is_empty());
    assert_eq!(snapshot(&dir.0), before);
}

fn events_config(pid: u32) -> SessionConfig {
    let mut cfg = SessionConfig::new(Mode::Events {
        events: vec!["kvm:kvm_exit".into(), "kvm_cpuid".into(), "kvm:kvm_msr".into()],
        strict: false,
    });
    cfg.pids = vec![pid];
    cfg.instance_name = "exitscope-test".into();
    cfg
}

#[test]
fn events_mode_uses_a_private_instance_and_streams_lost_events() {
    let dir = TempDir::new("events");
    fake_top_level(&dir.0);
    fake_instance_template(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut s = Session::start(&fs, &events_config(77)).unwrap();
    assert_eq!(s.instance().as_deref(), Some("instances/exitscope-test"));
    assert_eq!(s.enabled(), ["kvm:kvm_exit", "kvm:kvm_cpuid"]);
    assert!(s.notes().iter().any(|n| n.contains("kvm:kvm_msr does not exist")));
    let mut out = Vec::new();
    let stats = dir.0.join("instances/exitscope-test/per_cpu/cpu0/stats");
    let sum = s
        .capture(&mut out, Path::new("t.txt"), &mut |_| {
            // The kernel overwrote 4 events meanwhile.
            fs::write(&stats, "overrun: 4\ndropped events: 1\n").unwrap();
            Some(StopWhen::Duration)
        })
        .unwrap();
    s.finish().unwrap();
    let text = String::from_utf8(out).unwrap();
    let header = "# tracer: nop\n# exitscope record: kvm:kvm_exit kvm:kvm_cpuid\n";
    assert_eq!(text, format!("{header}{TRACE_LINES}CPU:0 [LOST 5 EVENTS]\n"));
    assert_eq!(sum.lines, 2);
    assert_eq!(sum.lost_total(), 5);
    assert_eq!(sum.stop, Some(StopWhen::Duration));
    let i = "instances/exitscope-test";
    assert_eq!(
        fs.ops(),
        [
            Op::Mkdir(i.into()),
            w(&format!("{i}/tracing_on"), "0"),
            w(&format!("{i}/options/event-fork"), "1"),
            w(&format!("{i}/set_event_pid"), "77"),
            w(&format!("{i}/events/kvm/kvm_exit/enable"), "1"),
            w(&format!("{i}/events/kvm/kvm_cpuid/enable"), "1"),
            w(&format!("{i}/tracing_on"), "1"),
            // capture: stop
            w(&format!("{i}/tracing_on"), "0"),
            // restore: stop, remove
            w(&format!("{i}/tracing_on"), "0"),
            Op::Rmdir(i.into()),
        ]
    );
    // Nothing at the top level was written, and the instance is gone.
    assert_eq!(snapshot(&dir.0), before);
}

/// The session knows the process of its pid filter's threads (this test's own thread: its
/// process is this one), and touches nothing at the top level for it (`record-tgid` is left
/// as it is).
#[test]
fn filter_threads_have_their_process_and_record_tgid_is_left_alone() {
    let dir = TempDir::new("tgid");
    fake_top_level(&dir.0);
    fake_instance_template(&dir.0);
    put(&dir.0, "options/record-tgid", "0\n");
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let me = std::process::id();
    let s = Session::start(&fs, &events_config(me)).unwrap();
    assert_eq!(s.filter_tgids().get(&me), Some(&me));
    // The process tree's threads, as the trace.dat capture looks them up while recording.
    let mut tree = BTreeMap::new();
    exitscope_tracefs::tree_tgids([me], &mut tree);
    assert!(tree.len() > 1 && tree.values().all(|&g| g == me), "{tree:?}");
    s.finish().unwrap();
    assert!(
        !fs.ops()
            .iter()
            .any(|o| matches!(o, Op::Write { path, .. } if path.contains("record-tgid")))
    );
    assert_eq!(snapshot(&dir.0), before);
}

/// Found by the lab test on Debian 6.1: the "buffer expanded" flag is global there, so using an
/// instance leaves an unexpanded top level (`7 (expanded: 1408)`) at 7 KB for good. The session
/// saves it and writes back the size the kernel would have expanded to.
#[test]
fn unexpanded_top_level_buffer_is_restored_to_its_expansion_size() {
    let dir = TempDir::new("expanded");
    fake_top_level(&dir.0);
    fake_instance_template(&dir.0);
    put(&dir.0, "buffer_size_kb", "7 (expanded: 1408)\n");
    let fs = Tracefs::fake(&dir.0);
    let s = Session::start(&fs, &events_config(77)).unwrap();
    assert_eq!(s.instance().as_deref(), Some("instances/exitscope-test"));
    s.finish().unwrap();
    let ops = fs.ops();
    assert_eq!(ops.iter().filter(|o| **o == w("buffer_size_kb", "1408")).count(), 1, "{ops:?}");
    // An expanded top level is never written.
    let dir2 = TempDir::new("expanded2");
    fake_top_level(&dir2.0);
    fake_instance_template(&dir2.0);
    let fs2 = Tracefs::fake(&dir2.0);
    Session::start(&fs2, &events_config(77)).unwrap().finish().unwrap();
    assert!(
        !fs2.ops().iter().any(|o| matches!(o, Op::Write { path, .. } if path == "buffer_size_kb"))
    );
}

#[test]
fn events_mode_at_top_level_saves_and_restores_each_enable_file() {
    let dir = TempDir::new("eventstop");
    fake_top_level(&dir.0);
    put(&dir.0, "events/kvm/kvm_exit/enable", "1\n"); // someone left it on: keep it on
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut cfg = events_config(77);
    cfg.placement = Placement::TopLevel;
    cfg.buffer_size_kb = Some(4096);
    let s = Session::start(&fs, &cfg).unwrap();
    assert_eq!(fs::read_to_string(dir.0.join("buffer_size_kb")).unwrap(), "4096\n");
    drop(s);
    let ops = fs.ops();
    assert_eq!(
        ops,
        [
            w("tracing_on", "0"),
            w("buffer_size_kb", "4096"),
            w("options/event-fork", "1"),
            w("set_event_pid", "77"),
            w("events/kvm/kvm_exit/enable", "1"),
            w("events/kvm/kvm_cpuid/enable", "1"),
            w("tracing_on", "1"),
            w("tracing_on", "0"),
            w("events/kvm/kvm_cpuid/enable", "0"),
            w("events/kvm/kvm_exit/enable", "1"),
            w("set_event_pid", ""),
            w("options/event-fork", "0"),
            w("buffer_size_kb", "1408"),
            w("tracing_on", "1"),
        ]
    );
    assert_eq!(snapshot(&dir.0), before);
}

#[test]
fn unknown_event_is_an_error_in_strict_mode() {
    let dir = TempDir::new("unknown");
    fake_top_level(&dir.0);
    fake_instance_template(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut cfg = SessionConfig::new(Mode::events(["kvm:kvm_nonexistent"]));
    cfg.instance_name = "exitscope-test".into();
    let err = Session::start(&fs, &cfg).unwrap_err();
    assert!(matches!(err, Error::UnknownEvent { .. }), "{err:?}");
    assert_eq!(snapshot(&dir.0), before);
}

/// A child killed by `sig` ends the capture; everything is restored.
fn child_killed_restores(sig: i32) {
    let dir = TempDir::new("child");
    fake_top_level(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let argv: Vec<OsString> = ["sleep", "30"].iter().map(OsString::from).collect();
    let mut child = PausedChild::spawn(&argv).unwrap();
    let mut cfg = graph_config(child.pid());
    cfg.placement = Placement::TopLevel;
    let mut s = Session::start(&fs, &cfg).unwrap();
    assert_eq!(
        fs::read_to_string(dir.0.join("set_ftrace_pid")).unwrap(),
        format!("{}\n", child.pid())
    );
    child.resume().unwrap();
    let mut out = Vec::new();
    let mut signalled = false;
    let sum = s
        .capture(&mut out, Path::new("t.txt"), &mut |_| {
            if !signalled {
                child.signal(sig);
                signalled = true;
            }
            child.try_wait().unwrap().map(|_| StopWhen::TargetExited)
        })
        .unwrap();
    assert_eq!(sum.stop, Some(StopWhen::TargetExited));
    s.finish().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.child_mut().wait().unwrap().signal(), Some(sig));
    assert_eq!(snapshot(&dir.0), before);
    assert!(fs.ops().last() == Some(&w("tracing_on", "1")));
}

#[test]
fn child_killed_by_sigint_restores_everything() {
    child_killed_restores(libc_sig::SIGINT);
}

#[test]
fn child_killed_by_sigkill_restores_everything() {
    child_killed_restores(libc_sig::SIGKILL);
}

mod libc_sig {
    pub const SIGINT: i32 = 2;
    pub const SIGKILL: i32 = 9;
}

#[test]
fn paused_child_does_not_run_the_command_if_never_resumed() {
    let dir = TempDir::new("paused");
    let marker = dir.0.join("ran");
    let argv: Vec<OsString> = vec!["touch".into(), marker.clone().into_os_string()];
    let child = PausedChild::spawn(&argv).unwrap();
    let mut c = child.into_child();
    assert_eq!(c.wait().unwrap().code(), Some(127));
    assert!(!marker.exists());
}

#[test]
fn panic_restores_through_the_hook_and_unwinding() {
    let dir = TempDir::new("panic");
    fake_top_level(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let root = dir.0.clone();
    let r = std::panic::catch_unwind(move || {
        let mut cfg = graph_config(5);
        cfg.placement = Placement::TopLevel;
        let _s = Session::start(&fs, &cfg).unwrap();
        assert_eq!(fs::read_to_string(root.join("current_tracer")).unwrap(), "function_graph\n");
        panic!("boom");
    });
    assert!(r.is_err());
    assert_eq!(snapshot(&dir.0), before);
}

/// `Recorder` with a thread of this process as the target: the pid filter names the thread,
/// the closure starts only after `tracing_on 1`, its value comes back, and all is restored.
#[test]
fn recorder_thread_target_runs_once_tracing_is_on() {
    use exitscope_tracefs::{Outcome, Recorder, Target};
    let dir = TempDir::new("recorder-thread");
    fake_top_level(&dir.0);
    fake_instance_template(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut rec = Recorder::new(fs.clone(), SessionConfig::new(Mode::events(["kvm:kvm_cpuid"])));
    let log_path = dir.0.join(".ops.log");
    let target = Target::Thread(Box::new(move || {
        // SAFETY: gettid(2) has no preconditions.
        let tid = unsafe { libc::gettid() };
        (tid, fs::read_to_string(&log_path).unwrap_or_default())
    }));
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let r =
        rec.record(target, &mut out, Path::new("mem"), &mut |n| notes.push(n.to_owned())).unwrap();
    let Outcome::Returned((tid, log_when_started)) = r.outcome else { panic!("{:?}", r.outcome) };
    assert!(log_when_started.contains("tracing_on \"1\""), "{log_when_started}");
    assert!(log_when_started.contains(&format!("set_event_pid \"{tid}\"")), "{log_when_started}");
    assert_ne!(u32::try_from(tid).unwrap(), std::process::id(), "a thread, not the main thread");
    assert!(String::from_utf8(out).unwrap().contains("kvm_cpuid"));
    assert_eq!(r.silent_events, Vec::<String>::new());
    assert_eq!(snapshot(&dir.0), before);
}

/// A command that cannot be run, and a pid that does not exist, fail before tracefs is touched.
#[test]
fn recorder_validates_before_touching_tracefs() {
    use exitscope_tracefs::{Recorder, Target};
    let dir = TempDir::new("recorder-validate");
    fake_top_level(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let mut rec = Recorder::new(fs.clone(), SessionConfig::new(Mode::default_events()));
    let mut out = Vec::new();
    let e = rec
        .record::<()>(
            Target::Command(vec!["/nonexistent/x".into()]),
            &mut out,
            Path::new("m"),
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(e, Error::CommandNotFound { .. }), "{e}");
    let e = rec
        .record::<()>(Target::Pid(4_000_000), &mut out, Path::new("m"), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.to_string(), "no such process: 4000000");
    assert!(fs.ops().is_empty(), "{:?}", fs.ops());
}

/// `--pid`: a thread the target creates after its threads were listed but before tracing
/// started is added to the pid filter (appended: the kernel merges, the list is never empty
/// meanwhile), and the whole filter is restored afterwards.
#[test]
fn pid_target_relists_threads_created_before_tracing_started() {
    let dir = TempDir::new("relist");
    fake_top_level(&dir.0);
    let before = snapshot(&dir.0);
    let fs = Tracefs::fake(&dir.0);
    let me = std::process::id();
    // The listing as `record --pid` made it: this process's threads so far.
    let listed = exitscope_tracefs::process_tree_threads(me).unwrap();
    let mut cfg = SessionConfig::new(Mode::events(["kvm:kvm_cpuid".to_string()]));
    cfg.pids = listed.clone();
    cfg.placement = Placement::TopLevel;
    // The target spawns a thread after that listing.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(u32::try_from(unsafe { libc::gettid() }).unwrap()).unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    assert!(!listed.contains(&tid));
    let mut s = Session::start(&fs, &cfg).unwrap();
    let added = s.add_new_threads_of(me).unwrap();
    assert!(added.contains(&tid), "{added:?} lacks the new thread {tid}");
    let filter = fs::read_to_string(dir.0.join("set_event_pid")).unwrap();
    let filter: Vec<u32> = filter.split_whitespace().map(|p| p.parse().unwrap()).collect();
    for p in listed.iter().chain([&tid]) {
        assert!(filter.contains(p), "{p} missing from set_event_pid {filter:?}");
    }
    assert!(
        fs.ops().iter().any(|o| matches!(o, Op::Append { path, .. } if path == "set_event_pid")),
        "{:?}",
        fs.ops()
    );
    // Listing again finds nothing new.
    assert_eq!(s.add_new_threads_of(me).unwrap(), Vec::<u32>::new());
    s.finish().unwrap();
    assert_eq!(snapshot(&dir.0), before, "everything restored");
    stop_tx.send(()).unwrap();
    t.join().unwrap();
}
