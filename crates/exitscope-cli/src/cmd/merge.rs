//! `exitscope merge`: many hosts' `report --json` documents combined into one (the numbers are
//! `exitscope_analyze::combine`'s).

use anyhow::anyhow;
use clap::{Args as ClapArgs, ValueEnum};

use exitscope_analyze::combine::{merge, merge_by_host};
use exitscope_analyze::live::LiveInterval;
use exitscope_analyze::report::Report;

use crate::args::OutputFile;
use crate::exit::{self, CmdResult, Failure};
use crate::output::Output;

/// Arguments of `exitscope merge`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope merge host1.json host2.json -o fleet.json
  exitscope merge --by host web-01.json web-02.json db-01=/tmp/r.json

Counts add; percentiles come from the merged histograms (exact while a histogram is exact,
else within 1/sub_buckets: 0.2 % for exit statistics). With --by host each host's reports
are merged and kept under merged.hosts; the host is NAME in NAME=FILE, else the recording
host's name in the report (`host.hostname`), else the file name up to its first dot. Merged
documents can be merged again. `top --json` output merges too: each line is one interval,
combined like a report (`exitscope merge --by host web-01=top-web-01.jsonl db-01=top-db-01.jsonl`).")]
pub struct Args {
    /// `report --json` documents (or earlier merges) or `top --json` interval lines (a file
    /// may hold many of either, one JSON value after another), `-` = stdin; `NAME=FILE` names
    /// the host.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Keep a per-host breakdown (`merged.hosts`).
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Option<By>,
    #[command(flatten)]
    pub output: OutputFile,
}

/// What `--by` groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One group per host.
    Host,
}

/// `(NAME, path)` of a `NAME=FILE` argument, `(None, arg)` otherwise.
fn name_and_path(arg: &str) -> (Option<String>, &str) {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            (Some(name.to_string()), path)
        }
        _ => (None, arg),
    }
}

/// The host of a report read from `path`: the recording host's name when the report has one,
/// else the file name up to its first dot.
fn host_of(report: &Report, path: &str) -> String {
    if let Some(h) = report.host.as_ref().and_then(|h| h.hostname.clone()) {
        return h;
    }
    let base = std::path::Path::new(path).file_name().map_or(path.into(), |n| n.to_string_lossy());
    base.split('.').next().unwrap_or(&base).to_string()
}

/// The reports in `path`: one `report --json` document, or JSON Lines of documents and of
/// `top --json` intervals (each interval a report of its own, named `FILE#N`).
fn load(path: &str) -> Result<Vec<Report>, Failure> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::input(anyhow!("reading stdin: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::input(anyhow!("cannot read {path}: {e}")))?
    };
    let expected = "an `exitscope report --json` document or `exitscope top --json` lines";
    let mut out = Vec::new();
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let (mut end, mut line, mut counted) = (0, 1, 0);
    while let Some(v) = values.next() {
        let v = v.map_err(|e| {
            Failure::input(anyhow!("{path}:{}:{}: expected {expected}: {e}", e.line(), e.column()))
        })?;
        // The line this value starts on (after the previous one and the blanks between).
        let rest = &text[end..];
        let start = end + (rest.len() - rest.trim_start().len());
        end = values.byte_offset();
        line += text[counted..start].bytes().filter(|&b| b == b'\n').count();
        counted = start;
        let is_interval = v.get("interval").is_some() && v.get("schema_version").is_none();
        let report = if is_interval {
            let iv: LiveInterval = serde_json::from_value(v).map_err(|e| {
                Failure::input(anyhow!("{path}:{line}: expected a `top --json` interval: {e}"))
            })?;
            iv.into_report(path)
        } else {
            let report: Report = serde_json::from_value(v)
                .map_err(|e| Failure::input(anyhow!("{path}:{line}: expected {expected}: {e}")))?;
            if report.schema_version != exitscope_analyze::report::SCHEMA_VERSION {
                return Err(Failure::input(anyhow!(
                    "{path}:{line}: schema_version {} (this exitscope reads {})",
                    report.schema_version,
                    exitscope_analyze::report::SCHEMA_VERSION
                )));
            }
            report
        };
        out.push(report);
    }
    if out.is_empty() {
        return Err(Failure::input(anyhow!("{path}: empty: expected {expected}")));
    }
    Ok(out)
}

/// Run `exitscope merge`.
pub fn run(args: Args) -> CmdResult {
    let mut out = Output::create(args.output.path())?;
    let mut named = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let (name, path) = name_and_path(f);
        for report in load(path)? {
            let host = name.clone().unwrap_or_else(|| host_of(&report, path));
            named.push((host, report));
        }
    }
    let merged = match args.by {
        Some(By::Host) => merge_by_host(named),
        None => merge(&named.into_iter().map(|(_, r)| r).collect::<Vec<_>>()),
    };
    exitscope_render::json::write(&merged, &mut out)?;
    out.commit()?;
    Ok(exit::OK)
}
