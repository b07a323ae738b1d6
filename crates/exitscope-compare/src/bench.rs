//! Reading `exitscope bench --json` documents (or the `bench.json` of a `run -o` directory)
//! back for comparison.
//!
//! Only the fields a comparison needs are read: `host` (the [`Fingerprint`]), `repeat`, and
//! per result `test`, `cpl`, `status`, `reason`, `samples` (cycles per iteration of each
//! repeat). Other fields are ignored, so documents from newer or older exitscope versions
//! load as long as those are there.

use std::path::Path;

use exitscope_host::Fingerprint;
use serde::Deserialize;

/// A bench document, as far as comparisons need it.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResults {
    /// The file it came from.
    pub source: String,
    /// Its environment; empty for documents written before fingerprints existed.
    pub host: Fingerprint,
    /// Repeats per test.
    pub repeat: Option<u32>,
    /// One entry per test, in the order run.
    pub tests: Vec<BenchTest>,
}

impl BenchResults {
    /// The test called `name`.
    pub fn find(&self, name: &str) -> Option<&BenchTest> {
        self.tests.iter().find(|t| t.test == name)
    }
}

/// One test of a bench document.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTest {
    /// Test name.
    pub test: String,
    /// Privilege level of its loop.
    pub cpl: Option<u8>,
    /// `ok`, `skipped`, `timeout`, `failed`.
    pub status: String,
    /// Why it was skipped or failed, or a caveat.
    pub reason: Option<String>,
    /// Cycles per iteration of each repeat.
    pub samples: Vec<f64>,
    /// Samples written as `null` (not a number), left out of `samples`.
    pub dropped_samples: usize,
    /// What each iteration is expected to cause (`none` for the empty-loop check).
    pub exit_kind: Option<String>,
}

/// Why a bench document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was read.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A directory without `bench.json`.
    #[error(
        "{path}: no bench.json in this directory (expected a `bench --json` file or a \
         `run -o` directory)"
    )]
    NoBenchJson {
        /// The directory.
        path: String,
    },
    /// Not a bench document.
    #[error("{path}:{line}:{column}: {message}")]
    Format {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
    },
}

const NOT_BENCH_HINT: &str = "compare reads `exitscope bench --json` output and `run -o` \
    directories (a trace compares with another trace)";

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    host: Option<Fingerprint>,
    #[serde(default)]
    repeat: Option<u32>,
    results: Vec<DocResult>,
}

#[derive(Deserialize)]
struct DocResult {
    test: String,
    #[serde(default)]
    cpl: Option<u8>,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    samples: Vec<Option<f64>>,
    #[serde(default)]
    exit_kind: Option<String>,
}

/// Reads a bench JSON file, or `DIR/bench.json` when `path` is a directory.
///
/// # Errors
///
/// [`LoadError`] naming the file (and line and column for bad content).
pub fn load(path: &Path) -> Result<BenchResults, LoadError> {
    let file = if path.is_dir() {
        let inner = path.join("bench.json");
        if !inner.is_file() {
            return Err(LoadError::NoBenchJson { path: path.display().to_string() });
        }
        inner
    } else {
        path.to_path_buf()
    };
    let shown = file.display().to_string();
    let text =
        std::fs::read(&file).map_err(|source| LoadError::Io { path: shown.clone(), source })?;
    parse(&text, &shown)
}

/// Parses bench JSON text; `source` names it in errors and in the result.
///
/// # Errors
///
/// [`LoadError::Format`] with the line and column where it stopped making sense.
pub fn parse(text: &[u8], source: &str) -> Result<BenchResults, LoadError> {
    // A trace or other text that happens to start like a JSON number or word is still not
    // a bench document: say so at its first character.
    let first = text.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(at) = first.filter(|&i| text[i] != b'{') {
        let line = 1 + text[..at].iter().filter(|&&b| b == b'\n').count();
        let column = 1 + at - text[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        return Err(LoadError::Format {
            path: source.to_string(),
            line,
            column,
            message: format!("not JSON; {NOT_BENCH_HINT}: expected `{{`"),
        });
    }
    let doc: Doc = serde_json::from_slice(text).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            format!("not JSON; {NOT_BENCH_HINT}")
        } else {
            "not an exitscope bench document".to_string()
        };
        LoadError::Format {
            path: source.to_string(),
            line: e.line(),
            column: e.column(),
            message: format!("{what}: {e}"),
        }
    })?;
    Ok(BenchResults {
        source: source.to_string(),
        host: doc.host.unwrap_or_default(),
        repeat: doc.repeat,
        tests: doc
            .results
            .into_iter()
            .map(|r| {
                let samples: Vec<f64> = r.samples.iter().flatten().copied().collect();
                BenchTest {
                    dropped_samples: r.samples.len() - samples.len(),
                    test: r.test,
                    cpl: r.cpl,
                    status: r.status,
                    reason: r.reason,
                    exit_kind: r.exit_kind,
                    samples,
                }
            })
            .collect(),
    })
}
