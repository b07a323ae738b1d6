//! One recording's tracefs setup and its guaranteed undo.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::capture::CaptureFormat;
use crate::error::Error;
use crate::fs::{ALL_FUNCTIONS_ENABLED, Tracefs};
use crate::ledger;
use crate::restore::{self, RestoreState};

/// The default `--events` set: the generic exit/entry pair plus the reason-specific
/// tracepoints that fire where kvm_exit/kvm_entry do not (PVM), and `sched_switch`, which
/// says whether a vCPU thread was scheduled out during an exit (`preempted`; with a pid filter
/// only the traced threads' switches are recorded).
pub const DEFAULT_EVENTS: &[&str] = &[
    "kvm:kvm_exit",
    "kvm:kvm_entry",
    "kvm:kvm_cpuid",
    "kvm:kvm_pio",
    "kvm:kvm_mmio",
    "kvm:kvm_msr",
    "kvm:kvm_hypercall",
    "kvm:kvm_userspace_exit",
    "kvm:kvm_emulate_insn",
    "kvm:kvm_inj_exception",
    "kvm:kvm_cr",
    "kvm:kvm_nested_vmexit",
    "sched:sched_switch",
];

/// Graph roots tried, in order, when the requested ones are not traceable (stock kernels
/// inline `vcpu_enter_guest` and often `vcpu_run` into `kvm_arch_vcpu_ioctl_run`).
pub const GRAPH_FALLBACK_FUNCTIONS: &[&str] = &["vcpu_run", "kvm_arch_vcpu_ioctl_run"];

/// What to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The seed's function_graph setup rooted at `functions`.
    Graph {
        /// Graph roots written to `set_graph_function`.
        functions: Vec<String>,
        /// Fall back to [`GRAPH_FALLBACK_FUNCTIONS`] when none of `functions` is traceable.
        fallback: bool,
        /// `max_graph_depth` (`None` leaves it alone).
        max_depth: Option<u32>,
        /// `options/funcgraph-abstime` on (absolute timestamps column).
        abstime: bool,
        /// `options/funcgraph-proc` on (comm-pid column).
        proc_column: bool,
    },
    /// Tracepoints (`system:event`, `event` meaning `kvm:event`, or `system:*`).
    Events {
        /// The events.
        events: Vec<String>,
        /// Fail on a missing event (true when the user chose them); otherwise skip it with
        /// a note.
        strict: bool,
    },
}

impl Mode {
    /// function_graph rooted at `vcpu_enter_guest` with fallbacks, abstime and proc columns.
    pub fn default_graph() -> Mode {
        Mode::Graph {
            functions: vec!["vcpu_enter_guest".into()],
            fallback: true,
            max_depth: None,
            abstime: true,
            proc_column: true,
        }
    }

    /// Strict event mode for the given events.
    pub fn events<I: IntoIterator<Item = S>, S: Into<String>>(events: I) -> Mode {
        Mode::Events { events: events.into_iter().map(Into::into).collect(), strict: true }
    }

    /// The [`DEFAULT_EVENTS`], missing ones skipped.
    pub fn default_events() -> Mode {
        Mode::Events {
            events: DEFAULT_EVENTS.iter().map(|s| (*s).to_owned()).collect(),
            strict: false,
        }
    }

    /// The tracer this mode needs.
    pub fn tracer(&self) -> &'static str {
        match self {
            Mode::Graph { .. } => "function_graph",
            Mode::Events { .. } => "nop",
        }
    }
}

/// Where to set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// A private instance when the kernel supports the mode there, else the top level.
    #[default]
    Auto,
    /// Only a private instance (fail otherwise).
    Instance,
    /// Only the top level (every touched file saved and restored).
    TopLevel,
}

/// Everything a [`Session`] needs. Build with [`SessionConfig::new`] and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// What to record.
    pub mode: Mode,
    /// Trace only these tasks (`set_ftrace_pid` / `set_event_pid`); empty traces everyone.
    pub pids: Vec<u32>,
    /// Follow forks and new threads of `pids` (`options/function-fork`, `options/event-fork`).
    pub follow_forks: bool,
    /// Per-CPU ring buffer size in KiB (`buffer_size_kb`); `None` leaves it alone.
    pub buffer_size_kb: Option<u64>,
    /// Instance or top level.
    pub placement: Placement,
    /// Instance directory name under `instances/` (default `exitscope-<pid>`).
    pub instance_name: String,
    /// What [`Session::capture`] writes (default: text; `exitscope record` picks trace.dat
    /// unless the output is a `.txt` file, see [`CaptureFormat::for_path`]).
    pub format: CaptureFormat,
    /// The recording host's tag (`exitscope_host::Fingerprint::to_tag`, one line): the first
    /// line of a text capture (after `# `, a comment to every ftrace reader) and exitscope's
    /// own option in trace.dat (`exitscope_tracedat::HOST_OPTION`, which trace-cmd skips).
    /// `None` writes neither.
    pub host_tag: Option<String>,
}

impl SessionConfig {
    /// A config for `mode`: no pid filter, follow forks, automatic placement.
    pub fn new(mode: Mode) -> SessionConfig {
        SessionConfig {
            mode,
            pids: Vec::new(),
            follow_forks: true,
            buffer_size_kb: None,
            placement: Placement::Auto,
            instance_name: format!("exitscope-{}", std::process::id()),
            format: CaptureFormat::default(),
            host_tag: None,
        }
    }
}

/// A live tracefs setup. Dropping it (normal return, `?`, unwinding) restores everything;
/// [`Session::finish`] does the same and reports failures. While it lives, the panic hook
/// ([`crate::install_panic_hook`]) can restore it too.
#[derive(Debug)]
pub struct Session {
    pub(crate) state: Arc<Mutex<RestoreState>>,
    /// `""` or `instances/<name>/`.
    pub(crate) dir: String,
    tracer: &'static str,
    notes: Vec<String>,
    enabled: Vec<String>,
    format: CaptureFormat,
    host_tag: Option<String>,
    /// The pid filter as set.
    pids: Vec<u32>,
    /// Process (tgid) of each thread put in the pid filter, read when it was added (a thread
    /// that ends before the recording does is gone from `/proc` by then).
    tgids: BTreeMap<u32, u32>,
}

impl Session {
    /// Set up tracing as `cfg` says and turn it on. On any error everything done so far is
    /// undone before returning.
    ///
    /// # Errors
    /// [`Error::TracerUnavailable`], [`Error::TracerRefused`] (EPERM for function_graph under
    /// lockdown), [`Error::Busy`], [`Error::UnknownEvent`], [`Error::GraphFilterEmpty`],
    /// [`Error::NoTraceableFunction`], or any read/write error.
    pub fn start(fs: &Tracefs, cfg: &SessionConfig) -> Result<Session, Error> {
        restore::install_panic_hook();
        if cfg.instance_name.is_empty() || cfg.instance_name.contains('/') {
            return Err(Error::Invalid(format!("bad instance name {:?}", cfg.instance_name)));
        }
        let tracer = cfg.mode.tracer();
        if tracer != "nop" {
            let available = fs.read("available_tracers")?;
            if !available.split_whitespace().any(|t| t == tracer) {
                return Err(Error::TracerUnavailable {
                    tracer: tracer.into(),
                    path: fs.path("available_tracers"),
                    available: available.trim().to_owned(),
                });
            }
        }
        let state = Arc::new(Mutex::new(RestoreState::new(fs.clone())));
        restore::register(&state);
        let mut s = Session {
            state,
            dir: String::new(),
            tracer,
            notes: Vec::new(),
            enabled: Vec::new(),
            format: cfg.format,
            // One line, whatever the caller passed.
            host_tag: cfg.host_tag.as_ref().map(|t| t.replace(['\n', '\r'], " ")),
            pids: cfg.pids.clone(),
            tgids: tgids_of(&cfg.pids),
        };
        if let Some(l) = ledger::read(fs).filter(|l| !ledger::live_exitscope(l.pid)) {
            s.notes.push(format!(
                "the top level still holds changes made by exitscope pid {} (killed before it \
                 could restore them); `exitscope record --reset` restores them",
                l.pid
            ));
        }
        s.place(fs, cfg)?;
        match &cfg.mode {
            Mode::Graph { .. } => s.setup_graph(fs, cfg)?,
            Mode::Events { .. } => s.setup_events(fs, cfg)?,
        }
        Ok(s)
    }

    fn lock(&self) -> MutexGuard<'_, RestoreState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_instance(&self) -> bool {
        !self.dir.is_empty()
    }

    /// Write `value` to `rel` inside the session's directory, saving it first at the top level.
    fn put(&self, rel: &str, value: &str) -> Result<(), Error> {
        let full = format!("{}{rel}", self.dir);
        let save = !self.in_instance();
        self.lock().write(&full, value, save)
    }

    fn place(&mut self, fs: &Tracefs, cfg: &SessionConfig) -> Result<(), Error> {
        let want_instance = cfg.placement != Placement::TopLevel;
        if want_instance && fs.exists("instances") {
            let rel = format!("instances/{}", cfg.instance_name);
            // On kernels with one global "buffer expanded" flag (seen on 6.1), creating an
            // instance expands nothing at the top level but clears its pending expansion: a
            // top level that read `7 (expanded: 1408)` stays at 7 KB for good. Save it first
            // so the restore writes the size the kernel would have expanded to.
            let top_buffer = fs.read("buffer_size_kb").ok().filter(|b| b.contains("(expanded:"));
            match fs.mkdir(&rel) {
                Ok(()) => {
                    if let Some(b) = top_buffer {
                        self.lock().save("buffer_size_kb", b);
                    }
                    self.lock().instance = Some(rel.clone());
                    self.dir = format!("{rel}/");
                    let supported = match &cfg.mode {
                        Mode::Events { .. } => fs.exists(&format!("{rel}/events")),
                        Mode::Graph { .. } => fs
                            .read(&format!("{rel}/available_tracers"))
                            .is_ok_and(|a| a.split_whitespace().any(|t| t == self.tracer)),
                    };
                    if supported {
                        return Ok(());
                    }
                    // Remove the useless instance now, before touching the top level.
                    let inst = self.lock().instance.take();
                    self.dir.clear();
                    if let Some(inst) = inst {
                        fs.rmdir(&inst)?;
                    }
                    self.notes.push(format!(
                        "this kernel does not support {} in tracefs instances; using the top \
                         level (every file touched is saved and restored)",
                        self.tracer
                    ));
                }
                Err(e) if cfg.placement == Placement::Instance => return Err(e),
                Err(e) => self.notes.push(format!("{e}; using the top level")),
            }
        } else if cfg.placement == Placement::Instance {
            return Err(Error::Invalid(format!(
                "{} has no instances directory",
                fs.root().display()
            )));
        }
        // Top level: refuse to touch someone else's session, and name exitscope's own
        // leftovers as such.
        let leftover = ledger::read(fs).filter(|l| !ledger::live_exitscope(l.pid));
        let busy = |what: String| match &leftover {
            Some(l) => Error::Leftover { what, pid: l.pid },
            None => Error::Busy { what },
        };
        let current = fs.read("current_tracer")?;
        if current.trim() != "nop" {
            return Err(busy(format!("current_tracer is {}", current.trim())));
        }
        if matches!(cfg.mode, Mode::Events { .. }) && fs.exists("set_event") {
            let set = fs.read("set_event")?;
            if let Some(first) = set.lines().find(|l| !l.trim().is_empty()) {
                return Err(busy(format!("set_event lists {}", first.trim())));
            }
            // Switching the tracer clears the buffer; enabling events does not, and the top
            // level's buffer is not ours to clear.
            let old = crate::capture::buffered_entries(fs, "");
            if old > 0 {
                self.notes.push(format!(
                    "the top-level ring buffer already holds {old} entries from before; they \
                     will appear at the start of the output"
                ));
            }
        }
        if let Some(l) = &leftover {
            let files: Vec<&str> = l.saved.iter().map(|(p, _)| p.as_str()).collect();
            return Err(busy(format!("{} still changed", files.join(", "))));
        }
        if matches!(cfg.mode, Mode::Graph { .. }) && fs.exists("set_ftrace_filter") {
            let filter = fs.read("set_ftrace_filter").unwrap_or_default();
            let n = filter.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
            if n > 0 {
                self.notes.push(format!(
                    "set_ftrace_filter lists {n} functions (left as it is): the graph shows only \
                     those"
                ));
            }
        }
        Ok(())
    }

    /// Add tasks to the pid filter of a running session (tasks `--pid`'s process created
    /// between listing its threads and the start of tracing, which fork-following cannot
    /// see). No-op for a session that traces everyone.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn add_pids(&mut self, pids: &[u32]) -> Result<(), Error> {
        if pids.is_empty() || self.pids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let file = if self.tracer == "nop" { "set_event_pid" } else { "set_ftrace_pid" };
        let full = format!("{}{file}", self.dir);
        {
            let mut st = self.lock();
            if !self.in_instance() && !st.saved.iter().any(|(p, _)| *p == full) {
                let before = st.fs.read(&full)?;
                st.save(&full, before);
            }
            st.fs.append(&full, &list.join(" "))?;
        }
        self.pids.extend_from_slice(pids);
        self.tgids.extend(tgids_of(pids));
        Ok(())
    }

    /// Thread → process of the threads put in the pid filter, as they were when added (see
    /// [`Session::add_pids`]).
    pub fn filter_tgids(&self) -> &BTreeMap<u32, u32> {
        &self.tgids
    }

    /// Adds to the pid filter the threads (and child processes) of `pid` that it lacks: those
    /// created between the listing of its threads and the start of tracing, which
    /// fork-following cannot see (it follows only tasks created while tracing is on). Lists
    /// again until a listing finds nothing new (a process spawning threads in a loop gets a
    /// few rounds); returns the tasks added. A process that has ended meanwhile adds nothing.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn add_new_threads_of(&mut self, pid: u32) -> Result<Vec<u32>, Error> {
        let mut added = Vec::new();
        if self.pids.is_empty() {
            return Ok(added);
        }
        for _ in 0..8 {
            let Ok(now) = process_tree_threads(pid) else { break };
            let new: Vec<u32> = now.into_iter().filter(|t| !self.pids.contains(t)).collect();
            if new.is_empty() {
                break;
            }
            self.add_pids(&new)?;
            added.extend(new);
        }
        Ok(added)
    }

    /// The tasks the pid filter holds (empty: everyone).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    fn set_pids(
        &self,
        cfg: &SessionConfig,
        pid_file: &str,
        fork_option: &str,
    ) -> Result<(), Error> {
        if cfg.pids.is_empty() {
            return Ok(());
        }
        if cfg.follow_forks {
            self.put(&format!("options/{fork_option}"), "1")?;
        }
        let pids: Vec<String> = cfg.pids.iter().map(u32::to_string).collect();
        self.put(pid_file, &pids.join(" "))
    }

    fn setup_graph(&mut self, fs: &Tracefs, cfg: &SessionConfig) -> Result<(), Error> {
        let Mode::Graph { functions, fallback, max_depth, abstime, proc_column } = &cfg.mode else {
            return Ok(());
        };
        // Resolve the roots before touching anything.
        let mut roots: Vec<String> = Vec::new();
        let mut unchecked = false;
        for f in functions {
            match fs.lists_function(f) {
                Some(true) => roots.push(f.clone()),
                Some(false) => self.notes.push(format!(
                    "{f} is not traceable (not in available_filter_functions: inlined or notrace)"
                )),
                None => {
                    unchecked = true;
                    roots.push(f.clone());
                }
            }
        }
        if roots.is_empty()
            && *fallback
            && let Some(f) =
                GRAPH_FALLBACK_FUNCTIONS.iter().find(|f| fs.lists_function(f) == Some(true))
        {
            self.notes.push(format!("falling back to graph root {f}"));
            roots.push((*f).to_owned());
        }
        if roots.is_empty() {
            let mut tried: Vec<&str> = functions.iter().map(String::as_str).collect();
            if *fallback {
                tried.extend(GRAPH_FALLBACK_FUNCTIONS);
            }
            return Err(Error::NoTraceableFunction {
                requested: tried.join(", "),
                path: fs.path("available_filter_functions"),
            });
        }
        if unchecked {
            self.notes.push(
                "available_filter_functions is unreadable; checking set_graph_function after \
                 writing instead"
                    .into(),
            );
        }

        // The seed's sequence, with our settings between `tracing_on 0` and `tracing_on 1`.
        self.put("current_tracer", "nop")?;
        self.put("tracing_on", "0")?;
        if let Some(kb) = cfg.buffer_size_kb {
            self.put("buffer_size_kb", &kb.to_string())?;
        }
        if *abstime {
            self.put("options/funcgraph-abstime", "1")?;
        }
        if *proc_column {
            self.put("options/funcgraph-proc", "1")?;
        }
        if let Some(d) = max_depth {
            self.put("max_graph_depth", &d.to_string())?;
        }
        self.set_pids(cfg, "set_ftrace_pid", "function-fork")?;
        self.set_graph_functions(fs, &roots)?;
        self.put("tracing_on", "1")?;
        let cur = format!("{}current_tracer", self.dir);
        self.put("current_tracer", self.tracer).map_err(|e| match e {
            Error::Write { source, .. } => {
                Error::TracerRefused { tracer: self.tracer.into(), path: fs.path(&cur), source }
            }
            e => e,
        })?;
        self.enabled = roots;
        Ok(())
    }

    /// Write the graph roots and read them back: an empty filter would trace every function,
    /// so it aborts the session.
    fn set_graph_functions(&mut self, fs: &Tracefs, roots: &[String]) -> Result<(), Error> {
        let rel = format!("{}set_graph_function", self.dir);
        let value = roots.join(" ");
        let written = self.put("set_graph_function", &value);
        let back = fs.read(&rel)?;
        let listed: Vec<&str> = back
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != ALL_FUNCTIONS_ENABLED)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if listed.is_empty() {
            return Err(Error::GraphFilterEmpty { path: fs.path(&rel), value });
        }
        written?;
        for r in roots {
            if !listed.contains(&r.as_str()) {
                self.notes.push(format!("{r} did not stick in set_graph_function"));
            }
        }
        Ok(())
    }

    fn setup_events(&mut self, fs: &Tracefs, cfg: &SessionConfig) -> Result<(), Error> {
        let Mode::Events { events, strict } = &cfg.mode else { return Ok(()) };
        let mut enables = Vec::new();
        for spec in events {
            let (sys, ev) = parse_event(spec)?;
            let rel = if ev == "*" {
                format!("events/{sys}/enable")
            } else {
                format!("events/{sys}/{ev}/enable")
            };
            if fs.exists(&format!("{}{rel}", self.dir)) {
                enables.push((format!("{sys}:{ev}"), rel));
            } else if *strict {
                return Err(Error::UnknownEvent {
                    event: format!("{sys}:{ev}"),
                    path: fs.path(&format!("{}{rel}", self.dir)),
                });
            } else {
                self.notes.push(format!("event {sys}:{ev} does not exist here; skipped"));
            }
        }
        if enables.is_empty() {
            return Err(Error::Invalid("no event to record".into()));
        }
        self.put("tracing_on", "0")?;
        if let Some(kb) = cfg.buffer_size_kb {
            self.put("buffer_size_kb", &kb.to_string())?;
        }
        self.set_pids(cfg, "set_event_pid", "event-fork")?;
        for (_, rel) in &enables {
            self.put(rel, "1")?;
        }
        self.put("tracing_on", "1")?;
        self.enabled = enables.into_iter().map(|(e, _)| e).collect();
        Ok(())
    }

    /// Messages worth showing the user (fallbacks, skipped events, placement).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// What [`Session::capture`] writes.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The recording host's tag written with the capture ([`SessionConfig::host_tag`]).
    pub fn host_tag(&self) -> Option<&str> {
        self.host_tag.as_deref()
    }

    /// The tracer in use (`function_graph` or `nop`).
    pub fn tracer(&self) -> &'static str {
        self.tracer
    }

    /// The graph roots or the events enabled.
    pub fn enabled(&self) -> &[String] {
        &self.enabled
    }

    /// The instance directory relative to the root, or `None` at the top level.
    pub fn instance(&self) -> Option<String> {
        self.lock().instance.clone()
    }

    /// Stop tracing (without restoring yet).
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn stop_tracing(&self) -> Result<(), Error> {
        self.put("tracing_on", "0")
    }

    /// Restore everything now and report failures (dropping does the same silently, printing
    /// failures to stderr).
    ///
    /// # Errors
    /// [`Error::Restore`] listing every file that could not be restored.
    pub fn finish(self) -> Result<(), Error> {
        self.lock().restore()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(e) = self.lock().restore() {
            crate::say(&format!("{e}"));
        }
    }
}

/// `kvm:kvm_exit` → (`kvm`, `kvm_exit`); `kvm_exit` → (`kvm`, `kvm_exit`); `kvm:*`.
fn parse_event(spec: &str) -> Result<(String, String), Error> {
    let (sys, ev) = spec.split_once(':').unwrap_or(("kvm", spec));
    let ok = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !ok(sys) || !(ok(ev) || ev == "*") {
        return Err(Error::Invalid(format!("bad event {spec:?}: expected system:event or event")));
    }
    Ok((sys.to_owned(), ev.to_owned()))
}

/// All thread ids of process `pid` and of its current descendant processes (`/proc`), for
/// `--pid`: a wrapper (a shell, pyenv's shim) has often forked the real VMM already.
///
/// # Errors
/// [`Error::NoSuchProcess`] when the process does not exist.
pub fn process_tree_threads(pid: u32) -> Result<Vec<u32>, Error> {
    let mut tids = threads_of(pid)?;
    // ppid of every process, from /proc/N/stat field 4 (after the parenthesised comm).
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
            let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else { continue };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|x| x.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut todo = children.remove(&pid).unwrap_or_default();
    while let Some(c) = todo.pop() {
        if let Ok(t) = threads_of(c) {
            tids.extend(t);
        }
        todo.extend(children.remove(&c).unwrap_or_default());
    }
    tids.sort_unstable();
    tids.dedup();
    Ok(tids)
}

/// The process (`Tgid:` of `/proc/<tid>/status`) of each of `tids` that still exists.
pub fn tgids_of(tids: &[u32]) -> BTreeMap<u32, u32> {
    tids.iter()
        .filter_map(|&t| {
            let st = std::fs::read_to_string(format!("/proc/{t}/status")).ok()?;
            let g = st.lines().find_map(|l| l.strip_prefix("Tgid:"))?.trim().parse().ok()?;
            Some((t, g))
        })
        .collect()
}

/// Adds to `out` thread → process of every thread of the processes `roots` and of their
/// descendants alive now (`/proc/<p>/task/<t>/children`; a kernel without that file gives the
/// roots' own threads).
pub fn tree_tgids(roots: impl IntoIterator<Item = u32>, out: &mut BTreeMap<u32, u32>) {
    let mut todo: Vec<u32> = roots.into_iter().collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(p) = todo.pop() {
        if !seen.insert(p) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            out.insert(tid, p);
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                todo.extend(c.split_ascii_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
}

/// Thread → process of every thread alive now (`/proc/<tgid>/task/<tid>`: a directory
/// listing, no file is read).
pub fn all_tgids() -> BTreeMap<u32, u32> {
    let mut m = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return m };
    for e in rd.flatten() {
        let Some(g) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(e.path().join("task")) else { continue };
        for t in tasks.flatten() {
            if let Some(t) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                m.insert(t, g);
            }
        }
    }
    m
}

/// All thread ids of process `pid` (`/proc/<pid>/task`).
///
/// # Errors
/// [`Error::NoSuchProcess`] when the process does not exist.
pub fn threads_of(pid: u32) -> Result<Vec<u32>, Error> {
    let dir = format!("/proc/{pid}/task");
    let rd = std::fs::read_dir(&dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NoSuchProcess { pid }
        } else {
            Error::Process { what: format!("listing {dir}"), source }
        }
    })?;
    let mut tids: Vec<u32> =
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::parse_event;

    #[test]
    fn event_specs() {
        assert_eq!(parse_event("kvm:kvm_exit").unwrap(), ("kvm".into(), "kvm_exit".into()));
        assert_eq!(parse_event("kvm_cpuid").unwrap(), ("kvm".into(), "kvm_cpuid".into()));
        assert_eq!(parse_event("kvmmmu:*").unwrap(), ("kvmmmu".into(), "*".into()));
        assert!(parse_event("../x").is_err());
        assert!(parse_event("kvm:").is_err());
    }
}
