//! # Brief overview
//!
//! The one test kit of exitscope's crates (a dev-dependency only):
//!
//! - [`golden`] compares an output with its expected file. `EXITSCOPE_BLESS=1` rewrites it;
//!   a missing expected file is written *and fails the test*, so every new golden is looked
//!   at once; a difference names `expected_file:line` and saves the actual output to a
//!   temporary file (inferno's and object's habit).
//! - [`skip_unless`] prints `SKIP: <reason>` for a test whose hardware or tool is absent, and
//!   fails instead under `EXITSCOPE_REQUIRE_HW=1` (CI on a machine that has them).
//! - [`fake_tracefs`] fills a fake tracefs (`exitscope_tracefs::Tracefs::fake`) with the real
//!   ring-buffer pages and formats of a recorded trace.dat, so binary capture can be tested
//!   without tracefs.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("testkit-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("expected.txt");
//! std::fs::write(&path, "one\ntwo\n").unwrap();
//! exitscope_testkit::golden("one\ntwo\n", &path);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

pub mod fake_tracefs;
pub mod synth;

/// The workspace root (where `tests/data` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_default()
}

fn bless() -> bool {
    std::env::var_os("EXITSCOPE_BLESS").is_some_and(|v| v == "1")
}

/// Compare `actual` with the file at `expected` (absolute, or relative to the workspace root).
///
/// # Panics
/// When they differ (naming `expected_file:line` of the first difference), or when the
/// expected file did not exist (it is written, so the next run passes once it is checked).
pub fn golden(actual: &str, expected: impl AsRef<Path>) {
    let expected = expected.as_ref();
    let path = if expected.is_absolute() {
        expected.to_path_buf()
    } else {
        workspace_root().join(expected)
    };
    let Ok(want) = std::fs::read_to_string(&path) else {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        assert!(bless(), "{} did not exist; wrote it: check it and re-run", path.display());
        return;
    };
    if want == actual {
        return;
    }
    if bless() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let name: String =
        path.to_string_lossy().chars().map(|c| if c == '/' { '_' } else { c }).collect();
    let tmp = std::env::temp_dir().join(format!("exitscope-actual-{name}"));
    let _ = std::fs::write(&tmp, actual);
    let (w, a): (Vec<&str>, Vec<&str>) = (want.lines().collect(), actual.lines().collect());
    let line = w.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(w.len().min(a.len()));
    panic!(
        "{}:{}: output differs\n  expected: {:?}\n  actual:   {:?}\n(actual output saved to {}; \
         EXITSCOPE_BLESS=1 to accept)",
        path.display(),
        line + 1,
        w.get(line).unwrap_or(&"<end of file>"),
        a.get(line).unwrap_or(&"<end of output>"),
        tmp.display()
    );
}

/// [`golden`] for binary files (fixtures a test writes and commits): a missing or stale file
/// fails unless `EXITSCOPE_BLESS=1`, which rewrites it.
///
/// # Panics
/// When the committed bytes differ from `actual`, or the file is missing and not blessing.
pub fn golden_bytes(actual: &[u8], expected: impl AsRef<Path>) {
    let expected = expected.as_ref();
    let path = if expected.is_absolute() {
        expected.to_path_buf()
    } else {
        workspace_root().join(expected)
    };
    if bless() {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run with EXITSCOPE_BLESS=1 to create it", path.display())
    });
    if want != actual {
        let at = want
            .iter()
            .zip(actual)
            .position(|(x, y)| x != y)
            .unwrap_or(want.len().min(actual.len()));
        panic!(
            "{}: stale at byte {at} ({} bytes committed, {} now); EXITSCOPE_BLESS=1 rewrites it",
            path.display(),
            want.len(),
            actual.len()
        );
    }
}

/// `true` when the test can run; otherwise prints `SKIP: <test>: <why>` and returns `false`.
/// `missing` is `None` when everything needed is there.
///
/// # Panics
/// Under `EXITSCOPE_REQUIRE_HW=1` when something is missing: a machine that should have it
/// must not pass by skipping.
pub fn skip_unless(test: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else { return true };
    assert!(
        std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
        "{test}: EXITSCOPE_REQUIRE_HW=1 but {why}"
    );
    println!("SKIP: {test}: {why}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_golden_fails_and_is_written() {
        let dir = std::env::temp_dir().join(format!("testkit-{}", std::process::id()));
        let path = dir.join("new.txt");
        let _ = std::fs::remove_file(&path);
        let r = std::panic::catch_unwind(|| golden("x\n", &path));
        assert_eq!(r.is_err(), !bless());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
        golden("x\n", &path);
        let r = std::panic::catch_unwind(|| golden("y\n", &path));
        assert_eq!(r.is_err(), !bless());
    }

    #[test]
    fn skips_say_why() {
        assert!(skip_unless("t", None));
        if std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1") {
            assert!(!skip_unless("t", Some("no /dev/kvm".into())));
        }
    }
}
