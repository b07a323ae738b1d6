//! The mark exitscope leaves while it has changed the top level: a small file listing every
//! top-level file it touched with its content before, written before each first change and
//! removed once everything is restored. A SIGKILL leaves it behind, so the next run can tell
//! exitscope's own leftovers from someone else's session, and `exitscope record --reset` can
//! put the saved contents back. (Instances need no such file: their name is the mark.)
//!
//! Where: `<fake root>/.exitscope-top-level` for a fake tracefs; for a real one,
//! `$EXITSCOPE_STATE_DIR` (default `/run/exitscope`, a tmpfs cleared at boot, like tracefs
//! itself) `/top-level<root with / as _>`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::fs::Tracefs;

/// Environment variable naming the directory of ledgers for real tracefs mounts.
pub const STATE_DIR_ENV: &str = "EXITSCOPE_STATE_DIR";

/// A ledger as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) pid: u32,
    /// (file relative to the root, content before the first write), in first-touch order.
    pub(crate) saved: Vec<(String, String)>,
}

pub(crate) fn path(fs: &Tracefs) -> PathBuf {
    if fs.is_fake() {
        return fs.root().join(".exitscope-top-level");
    }
    let dir = std::env::var_os(STATE_DIR_ENV)
        .map_or_else(|| PathBuf::from("/run/exitscope"), PathBuf::from);
    let name: String =
        fs.root().to_string_lossy().chars().map(|c| if c == '/' { '_' } else { c }).collect();
    dir.join(format!("top-level{name}"))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// Append one saved file (creating the ledger with its header on the first one).
pub(crate) fn append(fs: &Tracefs, rel: &str, before: &str) -> std::io::Result<()> {
    let p = path(fs);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d)?;
    }
    let fresh = !p.exists();
    let mut f = fs::OpenOptions::new().create(true).append(true).open(&p)?;
    let mut text = String::new();
    if fresh {
        text.push_str(&format!(
            "# exitscope changed these top-level tracefs files of {}; `exitscope record --reset` \
             restores them\npid\t{}\n",
            fs.root().display(),
            std::process::id()
        ));
    }
    text.push_str(&format!("saved\t{}\t{}\n", escape(rel), escape(before)));
    f.write_all(text.as_bytes())
}

/// The ledger of `fs`, if one exists.
pub(crate) fn read(fs: &Tracefs) -> Option<Ledger> {
    let text = fs::read_to_string(path(fs)).ok()?;
    let mut pid = None;
    let mut saved = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("pid"), Some(p), None) => pid = p.parse().ok(),
            (Some("saved"), Some(rel), Some(before)) => {
                saved.push((unescape(rel), unescape(before)))
            }
            _ => {}
        }
    }
    Some(Ledger { pid: pid?, saved })
}

pub(crate) fn remove(fs: &Tracefs) {
    let _ = fs::remove_file(path(fs));
}

/// Whether `pid` is a running exitscope other than this process (its ledger is not stale).
pub(crate) fn live_exitscope(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim() == "exitscope"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for s in ["", "1\n", "a\tb\\c\n\nd", "[local] global\n"] {
            assert_eq!(unescape(&escape(s)), s);
            assert!(!escape(s).contains('\n') && !escape(s).contains('\t'));
        }
    }
}
