//! `exitscope compare A B`: are two bench results comparable, and is B really slower?

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;

use exitscope_compare::{bench, compare_bench};
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
  exitscope compare runs/before runs/after                         # `run -o` directories")]
pub struct Args {
    /// The baseline: a `bench --json` file or a `run -o` directory (its bench.json).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The result compared with it. Δ = B − A: positive means B is slower.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Print one JSON document (schema: `exitscope_compare::Comparison`).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a test is significantly slower in B and its shift is more than PCT percent
    /// of A's median, e.g. `--fail-above 5%`.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_above: Option<f64>,
}

/// Run `exitscope compare`.
pub fn run(args: Args) -> CmdResult {
    let load = |p: &PathBuf| bench::load(p).map_err(|e| Failure::input(anyhow!(e)));
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let c = compare_bench(&a, &b, DEFAULT_CONFIDENCE);
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
