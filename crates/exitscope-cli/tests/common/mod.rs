//! Helpers shared by the CLI tests: run the real binary, compare against golden files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (where `tests/data` lives); tests run the binary from there so paths in
/// outputs are stable.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Run `exitscope ARGS` in the workspace root.
pub fn exitscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exitscope"))
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

/// Compare `actual` with the golden file at `expected` (relative to the workspace root).
/// `EXITSCOPE_BLESS=1` rewrites it; a missing file is created (and the test fails, so a new
/// golden is always looked at). The failure names `expected_file:line` of the first difference.
pub fn golden(actual: &str, expected: &str) {
    let path = root().join(expected);
    let bless = std::env::var_os("EXITSCOPE_BLESS").is_some_and(|v| v == "1");
    let Ok(want) = std::fs::read_to_string(&path) else {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        assert!(bless, "{expected} did not exist; wrote it — check it and re-run");
        return;
    };
    if want == actual {
        return;
    }
    if bless {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let tmp = std::env::temp_dir().join(format!("exitscope-actual-{}", expected.replace('/', "_")));
    std::fs::write(&tmp, actual).unwrap();
    let (w, a): (Vec<&str>, Vec<&str>) = (want.lines().collect(), actual.lines().collect());
    let line = w.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(w.len().min(a.len()));
    panic!(
        "{expected}:{}: output differs\n  expected: {:?}\n  actual:   {:?}\n(actual output saved to {}; EXITSCOPE_BLESS=1 to accept)",
        line + 1,
        w.get(line).unwrap_or(&"<end of file>"),
        a.get(line).unwrap_or(&"<end of output>"),
        tmp.display()
    );
}
