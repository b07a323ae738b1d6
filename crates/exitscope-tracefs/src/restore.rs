//! Save-before-write and restore, shared by the RAII guard, the panic hook and signals.

use std::fs::File;
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};

use crate::error::Error;
use crate::fs::{ALL_FUNCTIONS_ENABLED, Tracefs};
use crate::ledger;

/// What one session changed and how to undo it.
#[derive(Debug)]
pub(crate) struct RestoreState {
    pub(crate) fs: Tracefs,
    /// Files touched at the top level (or in an instance we do not own), with their content
    /// before the first write, in first-touch order.
    pub(crate) saved: Vec<(String, String)>,
    /// Instance directory (relative) that we created and must remove.
    pub(crate) instance: Option<String>,
    /// The open `trace_pipe`, closed before anything else (an open reader makes `rmdir`
    /// fail with EBUSY).
    pub(crate) pipe: Option<File>,
    /// The open `per_cpu/cpuN/trace_pipe_raw` files of a binary capture (closed first too).
    pub(crate) raw_readers: Vec<File>,
    pub(crate) done: bool,
}

impl RestoreState {
    pub(crate) fn new(fs: Tracefs) -> Self {
        RestoreState {
            fs,
            saved: Vec::new(),
            instance: None,
            pipe: None,
            raw_readers: Vec::new(),
            done: false,
        }
    }

    /// Write `value` to `rel`, saving the file first if this is its first touch.
    pub(crate) fn write(&mut self, rel: &str, value: &str, save: bool) -> Result<(), Error> {
        if save && !self.saved.iter().any(|(p, _)| p == rel) {
            let before = self.fs.read(rel)?;
            self.save(rel, before);
        }
        self.fs.write(rel, value)
    }

    /// Remember `before` as the content of top-level file `rel`, in memory and in the
    /// ledger on disk (so that a SIGKILL still leaves a way back: `exitscope record --reset`).
    pub(crate) fn save(&mut self, rel: &str, before: String) {
        if self.saved.iter().any(|(p, _)| p == rel) {
            return;
        }
        // Best effort: without the ledger, only a SIGKILL loses the way back.
        let _ = ledger::append(&self.fs, rel, &before);
        self.saved.push((rel.to_owned(), before));
    }

    /// Undo everything, once. Keeps going after a failure and reports all of them.
    ///
    /// Order: close the pipes; stop tracing; put the tracer back (so that restoring filters
    /// does not change a live tracer); restore the other files in reverse order of first
    /// touch; `tracing_on` last; remove the instance.
    pub(crate) fn restore(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        self.pipe = None;
        self.raw_readers.clear();
        let mut failures = Vec::new();
        let mut put = |rel: &str, value: &str| {
            if let Err(e) = self.fs.write(rel, value) {
                failures.push(e.to_string());
            }
        };
        let is = |rel: &str, name: &str| rel.rsplit('/').next() == Some(name);
        let tracing_on = self.saved.iter().find(|(p, _)| is(p, "tracing_on"));
        if let Some((p, _)) = tracing_on {
            put(p, "0");
        }
        if let Some((p, before)) = self.saved.iter().find(|(p, _)| is(p, "current_tracer")) {
            put(p, &restore_value(p, before));
        }
        for (p, before) in self.saved.iter().rev() {
            if is(p, "tracing_on") || is(p, "current_tracer") {
                continue;
            }
            put(p, &restore_value(p, before));
        }
        if let Some((p, before)) = tracing_on {
            put(p, &restore_value(p, before));
        }
        if let Some(inst) = self.instance.take() {
            // Stop the instance first so the rmdir does not race with new events.
            let _ = self.fs.write(&format!("{inst}/tracing_on"), "0");
            if let Err(e) = self.fs.rmdir(&inst) {
                failures.push(e.to_string());
            }
        }
        if failures.is_empty() {
            if !self.saved.is_empty() {
                ledger::remove(&self.fs);
            }
            Ok(())
        } else {
            Err(Error::Restore { failures: failures.join("; ") })
        }
    }
}

/// What to write to `rel` to bring back content `before` (as read from the kernel).
pub(crate) fn restore_value(rel: &str, before: &str) -> String {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let t = before.trim();
    match base {
        "set_ftrace_pid" | "set_event_pid" | "set_ftrace_notrace_pid" | "set_event_notrace_pid" => {
            if t == "no pid" {
                String::new()
            } else {
                t.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        }
        "set_graph_function" | "set_graph_notrace" | "set_ftrace_filter" | "set_ftrace_notrace" => {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != ALL_FUNCTIONS_ENABLED)
                .map(|l| match l.split_once(" [") {
                    // `func [mod]` reads back; `func:mod:mod` is how it is written.
                    Some((f, m)) => format!("{f}:mod:{}", m.trim_end_matches(']')),
                    None => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        "trace_clock" => match (t.find('['), t.find(']')) {
            (Some(a), Some(b)) if a < b => t[a + 1..b].to_owned(),
            _ => t.to_owned(),
        },
        "buffer_size_kb" => match t.split_once("(expanded: ") {
            // Not yet expanded: the kernel would expand to this size on first use.
            Some((_, rest)) => rest.trim_end_matches(')').trim().to_owned(),
            None => t.to_owned(),
        },
        "enable" => t.trim_end_matches('*').to_owned(),
        _ => t.to_owned(),
    }
}

/// Undo what killed exitscope processes left behind in `fs`: their instances, and the
/// top-level files listed in their ledger (restored to the contents saved before the first
/// change, in the usual order). Returns one line per thing undone.
///
/// # Errors
/// [`Error::Invalid`] while the exitscope that wrote the ledger still runs; [`Error::Rmdir`]
/// or [`Error::Restore`] when something could not be undone (the ledger is kept then).
pub fn reset(fs: &Tracefs) -> Result<Vec<String>, Error> {
    let mut done: Vec<String> =
        fs.remove_stale_instances()?.into_iter().map(|i| format!("removed {i}")).collect();
    if let Some(l) = ledger::read(fs) {
        if ledger::live_exitscope(l.pid) {
            return Err(Error::Invalid(format!(
                "exitscope pid {} is still recording at the top level of {}; stop it (Ctrl-C) \
                 and it restores tracefs itself",
                l.pid,
                fs.root().display()
            )));
        }
        let files: Vec<String> = l.saved.iter().map(|(p, _)| p.clone()).collect();
        let mut st = RestoreState::new(fs.clone());
        st.saved = l.saved;
        st.restore()?;
        ledger::remove(fs);
        done.push(format!(
            "restored {} top-level file{} changed by exitscope pid {}: {}",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            l.pid,
            files.join(", ")
        ));
    }
    Ok(done)
}

type Registry = Mutex<Vec<Weak<Mutex<RestoreState>>>>;

static ACTIVE: Registry = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Remember a live session so the panic hook can restore it.
pub(crate) fn register(state: &Arc<Mutex<RestoreState>>) {
    let mut v = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    v.retain(|w| w.strong_count() > 0);
    v.push(Arc::downgrade(state));
}

/// Restore every live session now (used by the panic hook).
pub(crate) fn restore_all() {
    let v = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for w in v {
        let Some(state) = w.upgrade() else { continue };
        // try_lock: the panic may have happened while this very lock was held.
        let guard = match state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(mut g) = guard
            && let Err(e) = g.restore()
        {
            crate::say(&format!("{e}"));
        }
    }
}

/// Install (once per process) a panic hook that restores every live [`crate::Session`]
/// before the previous hook prints the panic. Unwinding drops the sessions too, but this also
/// covers `panic = "abort"` builds and panics on other threads.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_all();
            prev(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::restore_value;

    #[test]
    fn restore_values_follow_kernel_read_formats() {
        assert_eq!(restore_value("trace_clock", "[local] global counter\n"), "local");
        assert_eq!(restore_value("trace_clock", "local [mono] x86-tsc\n"), "mono");
        assert_eq!(restore_value("set_event_pid", "no pid\n"), "");
        assert_eq!(restore_value("set_ftrace_pid", "12\n34\n"), "12 34");
        assert_eq!(restore_value("set_graph_function", "#### all functions enabled ####\n"), "");
        assert_eq!(
            restore_value("set_ftrace_filter", "vcpu_run [kvm]\nschedule\n"),
            "vcpu_run:mod:kvm schedule"
        );
        assert_eq!(restore_value("buffer_size_kb", "7 (expanded: 1408)\n"), "1408");
        assert_eq!(restore_value("buffer_size_kb", "1410\n"), "1410");
        assert_eq!(restore_value("events/kvm/kvm_exit/enable", "0*\n"), "0");
        assert_eq!(restore_value("instances/x/options/event-fork", "0\n"), "0");
    }
}
