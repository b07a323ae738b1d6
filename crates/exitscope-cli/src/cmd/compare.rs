//! `exitscope compare A B`: are two results (bench JSON, traces, `run -o` directories)
//! comparable, and is B really slower?

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;

use exitscope_analyze::report::Report;
use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_compare::{Comparison, Source, bench, compare_bench, trace};
use exitscope_stats::DEFAULT_CONFIDENCE;

use crate::args::parse_pct;
use crate::exit::{self, CmdResult, Failure};

/// Arguments of `exitscope compare`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope bench --json > a.json; exitscope bench --json > b.json
  exitscope compare a.json b.json
  exitscope compare --fail-above 5% baseline.json candidate.json   # CI gate
  exitscope compare before.dat after.dat        # traces: per exit reason, from its histogram
  exitscope compare runs/before runs/after      # `run -o` directories: bench.json and trace.dat

A and B must be of one kind: two bench results, two traces (trace.dat, ftrace text, perf.data,
compressed or not), or two `run -o` directories (a directory compares with a bench result by
its bench.json, with a trace by its trace.dat). Exit codes: 0 ok, 1 --fail-above found a
significant regression, 2 bad input.")]
pub struct Args {
    /// The baseline: a `bench --json` file, a trace (`record -o`), or a `run -o` directory
    /// (its bench.json and trace.dat).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The result compared with it. Δ = B − A: positive means B is slower.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print one JSON document (schema: `exitscope_compare::Comparison`).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a test or exit reason is significantly slower in B and its shift is more
    /// than PCT percent of A's median, e.g. `--fail-above 5%`.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_above: Option<f64>,
}

/// One side of a comparison, as read.
struct Side {
    /// What the user named.
    shown: String,
    bench: Option<bench::BenchResults>,
    /// The trace's name and its report.
    trace: Option<(String, Report)>,
    /// A `run -o` directory.
    run_dir: bool,
}

impl Side {
    fn kind(&self) -> &'static str {
        match (self.run_dir, &self.bench) {
            (true, _) => "a `run -o` directory",
            (false, Some(_)) => "a bench result",
            (false, None) => "a trace",
        }
    }
}

/// The trace of a `run -o` directory: `trace.dat` as `run` writes it.
const RUN_TRACE: &str = "trace.dat";

fn analyse_trace(path: &Path, run_dir: bool) -> Result<Report, Failure> {
    let mut opts = AnalysisOptions::default();
    if run_dir {
        // As `run` analysed it: the bench's own signalling is not the experiment.
        opts.harness_ports = vec![exitscope_guest::PORT_DONE, exitscope_guest::PORT_FAULT];
    }
    let mut analysis = Analysis::new(opts);
    let name = path.to_string_lossy().into_owned();
    crate::inputs::read(&[name], &mut analysis, &exitscope_ingest::Options::default())?;
    let report = analysis.finish();
    crate::inputs::print_diagnostics(&report);
    Ok(report)
}

/// A JSON document (a bench result) starts with `{`; anything else is read as a trace.
fn looks_like_json(path: &Path) -> bool {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn load(path: &Path) -> Result<Side, Failure> {
    let shown = path.display().to_string();
    let bad = |e: bench::LoadError| Failure::input(anyhow!(e));
    if path.is_dir() {
        let (json, dat) = (path.join("bench.json"), path.join(RUN_TRACE));
        if !json.is_file() && !dat.is_file() {
            return Err(Failure::input(anyhow!(
                "{shown}: no bench.json in this directory, nor {RUN_TRACE} (expected a `bench \
                 --json` file, a trace or a `run -o` directory)"
            )));
        }
        let bench = if json.is_file() { Some(bench::load(&json).map_err(bad)?) } else { None };
        let trace = if dat.is_file() {
            Some((dat.display().to_string(), analyse_trace(&dat, true)?))
        } else {
            None
        };
        return Ok(Side { shown, bench, trace, run_dir: true });
    }
    if !path.exists() || looks_like_json(path) {
        return Ok(Side {
            shown,
            bench: Some(bench::load(path).map_err(bad)?),
            trace: None,
            run_dir: false,
        });
    }
    let report = analyse_trace(path, false)?;
    Ok(Side { trace: Some((shown.clone(), report)), shown, bench: None, run_dir: false })
}

/// What A and B have in common, compared: bench tests, then exit reasons.
fn compare(a: &Side, b: &Side) -> Result<Comparison, Failure> {
    let benches = a.bench.as_ref().zip(b.bench.as_ref());
    let traces = a.trace.as_ref().zip(b.trace.as_ref());
    match (benches, traces) {
        (Some((x, y)), t) => {
            let mut c = compare_bench(x, y, DEFAULT_CONFIDENCE);
            if let Some(((_, ra), (_, rb))) = t {
                c.rows.extend(trace::reason_rows(ra, rb, DEFAULT_CONFIDENCE));
            }
            Ok(c)
        }
        (None, Some(((na, ra), (nb, rb)))) => {
            // A directory's bench host is the richer one (TSC rate, placement); a lone trace
            // has its own.
            let host = |s: &Side, r: &Report| {
                s.bench
                    .as_ref()
                    .map(|b| b.host.clone())
                    .or_else(|| r.host.clone())
                    .unwrap_or_default()
            };
            Ok(Comparison::new(
                Source { path: na.clone(), host: host(a, ra) },
                Source { path: nb.clone(), host: host(b, rb) },
                trace::reason_rows(ra, rb, DEFAULT_CONFIDENCE),
                DEFAULT_CONFIDENCE,
            ))
        }
        (None, None) => Err(Failure::input(anyhow!(
            "{} is {} and {} is {}: compare two of a kind (two bench results, two traces, or \
             `run -o` directories)",
            a.shown,
            a.kind(),
            b.shown,
            b.kind()
        ))),
    }
}

/// Run `exitscope compare`.
pub fn run(args: Args) -> CmdResult {
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let c = compare(&a, &b)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &c).context("writing JSON")?;
        writeln!(out)?;
    } else {
        exitscope_render::compare::write(&c, &exitscope_render::Style::plain(), &mut out)?;
    }
    out.flush()?;
    if let Some(pct) = args.fail_above {
        let slow: Vec<String> = c
            .regressions_above(pct / 100.0)
            .iter()
            .map(|r| format!("{} {:+.1}%", r.name, 100.0 * r.relative_shift().unwrap_or(0.0)))
            .collect();
        if !slow.is_empty() {
            return Err(Failure::check(anyhow!(
                "B is significantly slower than A by more than {pct}% (--fail-above): {}",
                slow.join(", ")
            )));
        }
    }
    Ok(exit::OK)
}
