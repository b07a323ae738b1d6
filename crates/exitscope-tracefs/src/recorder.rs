//! One recording from start to end, the same for `exitscope record` and `exitscope run`:
//! validate, set up, start the target once tracing is on, capture, stop, restore.
//!
//! Targets: a command (started paused behind a shim so the pid filter is in place before it
//! runs, and killed with exitscope by `PR_SET_PDEATHSIG`), a running process tree, every
//! task, or a closure on a thread of this very process (`exitscope run` measures its own
//! VMM this way: the thread's tid is the filter, threads it creates are followed).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::capture::{CaptureSummary, StopWhen};
use crate::child::{PausedChild, resolve_command};
use crate::error::Error;
use crate::fs::Tracefs;
use crate::session::{Mode, Session, SessionConfig, process_tree_threads};
use crate::signals::SignalWatcher;

/// What to trace.
pub enum Target<T> {
    /// Run this command (argv) and trace it and whatever it forks.
    Command(Vec<OsString>),
    /// Trace this running process: its threads, its current children, and what they fork.
    Pid(u32),
    /// Every task (needs a duration).
    Everyone,
    /// Run this closure on a new thread of this process, traced by its tid (and the threads it
    /// creates), started only once tracing is on.
    Thread(Box<dyn FnOnce() -> T + Send>),
}

impl<T> std::fmt::Debug for Target<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Command(a) => f.debug_tuple("Command").field(a).finish(),
            Target::Pid(p) => f.debug_tuple("Pid").field(p).finish(),
            Target::Everyone => f.write_str("Everyone"),
            Target::Thread(_) => f.write_str("Thread(..)"),
        }
    }
}

/// How the target ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The command exited (successfully or not) or was killed.
    Exited(ExitStatus),
    /// `--duration` ended the recording; the command was still running and was stopped
    /// (SIGTERM, then SIGKILL after two seconds).
    StoppedAfterDuration {
        /// Its pid.
        pid: u32,
    },
    /// The traced process (`--pid`) exited.
    ProcessExited,
    /// The duration passed (pid or every task).
    DurationReached,
    /// The thread's closure returned this.
    Returned(T),
    /// The thread's closure panicked.
    Panicked,
    /// A signal stopped the recording (the command got it too); the thread target, if any,
    /// is left to end with the process.
    Interrupted(i32),
    /// The caller's tick asked to stop ([`Recorder::record_live`]): a command is stopped
    /// (SIGTERM, then SIGKILL after two seconds), a thread target is left to end with the
    /// process.
    Stopped,
}

/// What a recording did.
#[derive(Debug)]
pub struct Recording<T> {
    /// What was written.
    pub capture: CaptureSummary,
    /// The tracer (`function_graph`, or `nop` for events).
    pub tracer: &'static str,
    /// The graph roots or events enabled.
    pub enabled: Vec<String>,
    /// Requested events (`-e`) that not a single line of the recording came from.
    pub silent_events: Vec<String>,
    /// How the target ended.
    pub outcome: Outcome<T>,
    /// Wall time from start to the end of the capture.
    pub elapsed: Duration,
}

/// Sets up and runs one recording. Build with [`Recorder::new`].
#[derive(Debug)]
pub struct Recorder {
    fs: Tracefs,
    cfg: SessionConfig,
    duration: Option<Duration>,
}

impl Recorder {
    /// A recorder on `fs` with `cfg` (its `pids` are filled in from the target).
    pub fn new(fs: Tracefs, cfg: SessionConfig) -> Recorder {
        Recorder { fs, cfg, duration: None }
    }

    /// Stop after `d` even if the target still runs.
    #[must_use]
    pub fn with_duration(mut self, d: Option<Duration>) -> Recorder {
        self.duration = d;
        self
    }

    /// The tracefs in use.
    pub fn tracefs(&self) -> &Tracefs {
        &self.fs
    }

    /// Record in a different mode next time (`exitscope run` falls back to events when
    /// function_graph is refused).
    pub fn set_mode(&mut self, mode: Mode) {
        self.cfg.mode = mode;
    }

    /// Unmount tracefs if [`Tracefs::discover`] mounted it (call once, at the end).
    ///
    /// # Errors
    /// [`Error::Mount`] when umount fails.
    pub fn unmount(&mut self) -> Result<(), Error> {
        self.fs.unmount_if_mounted()
    }

    /// Check what can be checked without touching tracefs: the command can be run, the pid
    /// exists, a target or a duration is given. [`Recorder::record`] calls it first too.
    ///
    /// # Errors
    /// [`Error::CommandNotFound`], [`Error::NoSuchProcess`], [`Error::Invalid`].
    pub fn validate<T>(&self, target: &Target<T>) -> Result<(), Error> {
        match target {
            Target::Command(argv) => match argv.first() {
                Some(p) => resolve_command(p).map(|_| ()),
                None => Err(Error::Invalid("no command given".into())),
            },
            Target::Pid(p) => process_tree_threads(*p).map(|_| ()),
            Target::Everyone if self.duration.is_none() => {
                Err(Error::Invalid("tracing every task needs a duration (--duration SECS)".into()))
            }
            Target::Everyone | Target::Thread(_) => Ok(()),
        }
    }

    /// Record `target` into `out` (named `out_name` in errors) in the session's capture format
    /// (trace.dat pages, or a `# tracer:` header and the kernel's text). `notify` gets the messages worth showing (placement,
    /// fallbacks, stale instances removed, what is being recorded). SIGINT, SIGTERM and
    /// SIGHUP stop the recording (the output keeps what was captured) and are reported as
    /// [`Outcome::Interrupted`]. Tracefs is restored before this returns, whatever happens.
    ///
    /// # Errors
    /// Validation errors before anything is touched; set-up, capture and restore errors.
    pub fn record<T: Send + 'static>(
        &mut self,
        target: Target<T>,
        out: &mut dyn Write,
        out_name: &Path,
        notify: &mut dyn FnMut(&str),
    ) -> Result<Recording<T>, Error> {
        self.record_live(target, out, out_name, notify, &mut |_| false)
    }

    /// [`Recorder::record`] for a live consumer (`exitscope top`): `tick` is called with the
    /// time since the capture started after every round of reads (at least every 20 ms, also
    /// when nothing arrives), after `out` got what that round read; it returns `true` to stop
    /// ([`Outcome::Stopped`]). Signals, the target's end and the duration stop it as in
    /// `record`; tracefs is restored before this returns, whatever happens.
    ///
    /// # Errors
    /// As [`Recorder::record`].
    pub fn record_live<T: Send + 'static>(
        &mut self,
        target: Target<T>,
        out: &mut dyn Write,
        out_name: &Path,
        notify: &mut dyn FnMut(&str),
        tick: &mut dyn FnMut(Duration) -> bool,
    ) -> Result<Recording<T>, Error> {
        self.validate(&target)?;
        match self.fs.remove_stale_instances() {
            Ok(gone) => {
                for g in gone {
                    notify(&format!("removed {g}, left behind by a killed exitscope"));
                }
            }
            Err(e) => notify(&format!("warning: {e}")),
        }
        let signals = SignalWatcher::install()?;
        let mut cfg = self.cfg.clone();
        let mut running = match target {
            Target::Command(argv) => {
                let c = PausedChild::spawn(&argv)?;
                cfg.pids = vec![c.pid()];
                Running::Command(c)
            }
            Target::Pid(p) => {
                cfg.pids = process_tree_threads(p)?;
                Running::Pid(p)
            }
            Target::Everyone => {
                cfg.pids.clear();
                Running::Everyone
            }
            Target::Thread(f) => {
                let t = PausedThread::spawn(f)?;
                cfg.pids = vec![t.tid];
                Running::Thread(t)
            }
        };
        let mut session = match Session::start(&self.fs, &cfg) {
            Ok(s) => s,
            Err(e) => {
                running.abandon();
                return Err(e);
            }
        };
        if let Running::Pid(p) = running
            && let Err(e) = session.add_new_threads_of(p)
        {
            return Err(e);
        }
        for n in session.notes() {
            notify(n);
        }
        let place = session.instance().unwrap_or_else(|| "the top level".into());
        let tracer = session.tracer();
        let enabled = session.enabled().to_vec();
        notify(&format!(
            "recording {} ({}) in {} of {} to {}",
            if tracer == "nop" { "events" } else { tracer },
            enabled.join(", "),
            place,
            self.fs.root().display(),
            out_name.display()
        ));
        if let Err(e) = running.resume() {
            running.abandon();
            return Err(e);
        }
        let started = Instant::now();
        let duration = self.duration;
        let mut forwarded = false;
        let result = session.capture(out, out_name, &mut |elapsed| {
            if let Some(sig) = signals.pending() {
                if !forwarded {
                    // Pass it on (a terminal's Ctrl-C reaches both of us anyway).
                    running.signal(sig);
                    forwarded = true;
                }
                return Some(StopWhen::Signal(sig));
            }
            if running.finished() {
                return Some(StopWhen::TargetExited);
            }
            if tick(elapsed) {
                return Some(StopWhen::Requested);
            }
            match duration {
                Some(d) if elapsed >= d => Some(StopWhen::Duration),
                _ => None,
            }
        });
        let restored = session.finish();
        drop(signals);
        let capture = match result {
            Ok(c) => c,
            Err(e) => {
                running.abandon();
                return Err(e);
            }
        };
        restored?;
        let elapsed = started.elapsed();
        let outcome = running.outcome(capture.stop);
        let silent_events = match &self.cfg.mode {
            Mode::Events { strict: true, .. } => enabled
                .iter()
                .filter(|e| {
                    let name = e.rsplit(':').next().unwrap_or(e);
                    name != "*" && !capture.events.contains_key(name)
                })
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        Ok(Recording { capture, tracer, enabled, silent_events, outcome, elapsed })
    }
}

/// A thread of this process waiting for the go signal; it reports its tid first.
struct PausedThread<T> {
    tid: u32,
    go: Option<mpsc::Sender<bool>>,
    handle: Option<JoinHandle<Option<T>>>,
}

impl<T: Send + 'static> PausedThread<T> {
    fn spawn(f: Box<dyn FnOnce() -> T + Send>) -> Result<Self, Error> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        let handle = thread::Builder::new()
            .name("exitscope-target".into())
            .spawn(move || {
                // SAFETY: gettid(2) has no preconditions and cannot fail.
                let tid = unsafe { libc::gettid() };
                let _ = tid_tx.send(u32::try_from(tid).unwrap_or(0));
                match go_rx.recv() {
                    Ok(true) => Some(f()),
                    _ => None,
                }
            })
            .map_err(|source| Error::Process {
                what: "starting the target thread".into(),
                source,
            })?;
        let tid = tid_rx.recv().map_err(|_| Error::Invalid("the target thread died".into()))?;
        Ok(PausedThread { tid, go: Some(go_tx), handle: Some(handle) })
    }
}

enum Running<T> {
    Command(PausedChild),
    Pid(u32),
    Everyone,
    Thread(PausedThread<T>),
}

impl<T: Send + 'static> Running<T> {
    fn resume(&mut self) -> Result<(), Error> {
        match self {
            Running::Command(c) => c.resume(),
            Running::Thread(t) => {
                if let Some(go) = t.go.take() {
                    let _ = go.send(true);
                }
                Ok(())
            }
            Running::Pid(_) | Running::Everyone => Ok(()),
        }
    }

    /// Never resumed (or given up): a paused command exits 127 without running, a paused
    /// thread returns without calling its closure.
    fn abandon(&mut self) {
        match self {
            Running::Command(c) => {
                if c.is_resumed() {
                    c.signal(libc::SIGKILL);
                }
                c.release();
                let _ = c.child_mut().wait();
            }
            Running::Thread(t) => {
                if let Some(go) = t.go.take() {
                    let _ = go.send(false);
                    if let Some(h) = t.handle.take() {
                        let _ = h.join();
                    }
                }
            }
            Running::Pid(_) | Running::Everyone => {}
        }
    }

    fn signal(&mut self, sig: i32) {
        if let Running::Command(c) = self {
            c.signal(sig);
        }
    }

    fn finished(&mut self) -> bool {
        match self {
            Running::Command(c) => matches!(c.try_wait(), Ok(Some(_))),
            Running::Pid(p) => !alive(*p),
            Running::Everyone => false,
            Running::Thread(t) => t.handle.as_ref().is_none_or(JoinHandle::is_finished),
        }
    }

    fn outcome(self, stop: Option<StopWhen>) -> Outcome<T> {
        if let Some(StopWhen::Signal(sig)) = stop {
            if let Running::Command(mut c) = self {
                // It got the signal too; give it a moment, then make sure it is gone.
                stop_child(&mut c, Duration::from_secs(2));
            }
            return Outcome::Interrupted(sig);
        }
        if let Some(StopWhen::Requested) = stop {
            match self {
                Running::Command(mut c) => {
                    c.signal(libc::SIGTERM);
                    stop_child(&mut c, Duration::from_secs(2));
                }
                // A thread ends with the process; a pid is not ours to stop.
                Running::Thread(_) | Running::Pid(_) | Running::Everyone => {}
            }
            return Outcome::Stopped;
        }
        match self {
            Running::Command(mut c) => match c.try_wait() {
                Ok(Some(st)) => Outcome::Exited(st),
                _ => {
                    let pid = c.pid();
                    c.signal(libc::SIGTERM);
                    stop_child(&mut c, Duration::from_secs(2));
                    Outcome::StoppedAfterDuration { pid }
                }
            },
            Running::Pid(p) => {
                if alive(p) {
                    Outcome::DurationReached
                } else {
                    Outcome::ProcessExited
                }
            }
            Running::Everyone => Outcome::DurationReached,
            Running::Thread(mut t) => match t.handle.take().map(JoinHandle::join) {
                Some(Ok(Some(v))) => Outcome::Returned(v),
                Some(Ok(None)) | Some(Err(_)) | None => Outcome::Panicked,
            },
        }
    }
}

/// Wait up to `grace` for the child, then SIGKILL it and reap it.
fn stop_child(c: &mut PausedChild, grace: Duration) {
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if matches!(c.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    c.signal(libc::SIGKILL);
    let _ = c.child_mut().wait();
}

/// Whether process `pid` still runs (a zombie, not yet reaped by its parent, does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
