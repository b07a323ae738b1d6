//! `exitscope diff A B`: compare two traces call path by call path.

use anyhow::{Context, anyhow};
use clap::{Args as ClapArgs, ValueEnum};

use exitscope_analyze::diff::{self, DiffSort, NormTable};

use crate::args::{ColorArg, DiagnosticsArgs, OutputFile, parse_pct};
use crate::exit::{self, CmdResult, Failure};
use crate::inputs::{self, Depth};
use crate::output::Output;

/// Arguments of `exitscope diff`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope diff tests/data/seed/cpuid-amd.fgraph.txt tests/data/seed/cpuid-intel.fgraph.txt
  exitscope diff --sort delta before.dat after.dat
  exitscope diff --no-normalize --fail-above 5% base.txt.gz new.txt.gz   # exit 1 if slower")]
pub struct Args {
    /// The baseline trace (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` reads stdin).
    #[arg(value_name = "A")]
    pub a: String,
    /// The trace compared with it. Δ = B − A: positive means B is slower.
    #[arg(value_name = "B")]
    pub b: String,
    /// Print one JSON document (schema: `exitscope_analyze::diff::DiffReport`).
    #[arg(long)]
    pub json: bool,
    /// Sibling order: `tree` (as traced) or `delta` (largest |Δ| first at every level).
    #[arg(long, value_enum, value_name = "ORDER", default_value_t = SortChoice::Tree)]
    pub sort: SortChoice,
    /// A TOML file of extra normalization rules (same format as the built-in
    /// `diff_normalize.toml`: `collapse`, `[modules]`, `[[alias]]`, `[[pattern]]`), checked first.
    #[arg(long, value_name = "FILE", conflicts_with = "no_normalize")]
    pub map: Option<String>,
    /// Compare names as they are (same vendor, e.g. one host before/after a kernel change).
    #[arg(long)]
    pub no_normalize: bool,
    /// Exit 1 when a root present in both traces is more than PCT percent slower in B
    /// (mean per call), e.g. `--fail-above 5` or `5%`.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_above: Option<f64>,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
    #[command(flatten)]
    pub color: ColorArg,
}

/// `--sort` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortChoice {
    /// As traced.
    Tree,
    /// Largest |Δ| first.
    Delta,
}

fn load_table(args: &Args) -> Result<Option<NormTable>, Failure> {
    if args.no_normalize {
        return Ok(None);
    }
    let mut table = NormTable::builtin();
    if let Some(path) = &args.map {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read normalization map {path}"))?;
        let user = NormTable::parse(&text).map_err(|e| Failure::input(anyhow!("{path}: {e}")))?;
        table.extend_with(user);
    }
    Ok(Some(table))
}

/// Run `exitscope diff`.
pub fn run(args: Args) -> CmdResult {
    let table = load_table(&args)?;
    let mut out = Output::create(args.output.path())?;
    let a = inputs::analyse(std::slice::from_ref(&args.a), &args.diagnostics, Depth::Diff)?;
    let b = inputs::analyse(std::slice::from_ref(&args.b), &args.diagnostics, Depth::Diff)?;
    let sort = match args.sort {
        SortChoice::Tree => DiffSort::Tree,
        SortChoice::Delta => DiffSort::Delta,
    };
    let d = diff::diff(&a, &b, table.as_ref(), sort);
    if args.json {
        exitscope_render::json::write(&d, &mut out)?;
    } else {
        exitscope_render::diff::write(&d, &args.color.style(out.is_tty()), &mut out)?;
    }
    out.commit()?;
    if let Some(pct) = args.fail_above {
        let slow: Vec<String> = d
            .regressions(pct)
            .iter()
            .map(|r| format!("{} {:+.1}%", r.what, r.change_pct))
            .collect();
        if !slow.is_empty() {
            return Err(Failure::check(anyhow!(
                "B is slower than A by more than {pct}% (--fail-above): {}",
                slow.join(", ")
            )));
        }
    }
    Ok(exit::OK)
}
