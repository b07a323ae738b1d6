//! `exitscope export`: timelines for other tools (Perfetto / `chrome://tracing`).

use clap::Args as ClapArgs;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline};

use exitscope_ingest::Options;

use crate::args::{DiagnosticsArgs, OutputFile};
use crate::exit::{self, CmdResult};
use crate::inputs;
use crate::output::Output;

/// Arguments of `exitscope export`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope export --perfetto tests/data/seed/cpuid-amd.fgraph.txt -o trace.json
  exitscope export --perfetto trace.dat.zst -o trace.json   # open in ui.perfetto.dev
  exitscope export --parquet out/ host1.dat host2.dat       # exits/calls/runs.parquet

--parquet writes one run per input (each analysed on its own). An input's environment
fingerprint is read from FILE.host.json beside it when present (as `exitscope record`
writes it); the runs.parquet columns are null otherwise. Schema: docs/parquet.md.")]
pub struct Args {
    /// Traces, analysed together (ftrace text, trace.dat or perf.data, plain or gzip/zstd; `-` = stdin).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Chrome trace-event JSON for ui.perfetto.dev and chrome://tracing: one track per CPU
    /// and per task, one slice per call (root slices named by exit reason), events as
    /// instants. Traces without timestamps are
    /// laid out in synthetic time (marked `synthetic_time` in the file).
    #[arg(long, required_unless_present = "parquet")]
    pub perfetto: bool,
    /// Write exits.parquet (one row per exit), calls.parquet (one row per merged call path)
    /// and runs.parquet (one row per input, with its fingerprint) into DIR (created if
    /// needed; the three files are replaced only when the export succeeds).
    #[arg(long, value_name = "DIR", conflicts_with = "perfetto")]
    pub parquet: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub diagnostics: DiagnosticsArgs,
    #[command(flatten)]
    pub output: OutputFile,
}

/// Run `exitscope export`.
pub fn run(args: Args) -> CmdResult {
    if let Some(dir) = &args.parquet {
        return parquet::run(dir, &args);
    }
    let out = Output::create(args.output.path())?;
    // Root slices are named by exit reason by the analysis itself.
    let popts = PerfettoOptions::with_inputs(args.files.clone());
    let timeline = PerfettoTimeline::new(out, popts)?;
    let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
    let mut opts = AnalysisOptions::default();
    opts.max_diagnostics = args.diagnostics.max_diagnostics;
    let mut analysis = Analysis::new(opts);
    analysis.add_call_sink(&mut calls);
    analysis.add_record_sink(&mut records);
    // One analysis run feeds the timeline as it goes; the report only supplies diagnostics.
    for (i, f) in args.files.iter().enumerate() {
        timeline.begin_input(i);
        inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
    }
    let report = analysis.finish();
    inputs::print_diagnostics(&report);
    inputs::check_strict(&report, &args.diagnostics)?;
    timeline.finish()?.commit()?;
    Ok(exit::OK)
}

#[cfg(feature = "parquet")]
mod parquet {
    use std::path::Path;
    use std::time::Instant;

    use anyhow::{Context, anyhow};

    use exitscope_analyze::{Analysis, AnalysisOptions};
    use exitscope_host::Fingerprint;
    use exitscope_ingest::Options;
    use exitscope_render::parquet::{CALLS, ExitsWriter, RUNS, Run, TableWriter};

    use super::Args;
    use crate::exit::{self, CmdResult, Failure};
    use crate::inputs;
    use crate::output::Output;

    /// The fingerprint recorded beside `input` (`INPUT.host.json`), if there is one.
    fn fingerprint(input: &str) -> Result<Option<Fingerprint>, Failure> {
        if input == "-" {
            return Ok(None);
        }
        let path = format!("{input}.host.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Failure::input(anyhow!(
                "{path}:{}:{}: expected an exitscope host fingerprint (JSON object): {e}",
                e.line(),
                e.column()
            ))
        })
    }

    pub(super) fn run(dir: &Path, args: &Args) -> CmdResult {
        if args.output.path().is_some() {
            return Err(Failure::input(anyhow!("--parquet writes into DIR; -o does not apply")));
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let started = Instant::now();
        let create = |name: &str| Output::create(Some(&dir.join(name)));
        let mut exits = ExitsWriter::new(create("exits.parquet")?)?;
        let mut calls = TableWriter::new(create("calls.parquet")?, "calls", CALLS)?;
        let mut runs = TableWriter::new(create("runs.parquet")?, "runs", RUNS)?;
        for f in &args.files {
            let fp = fingerprint(f)?;
            let mut opts = AnalysisOptions::default();
            opts.max_diagnostics = args.diagnostics.max_diagnostics;
            // The run id hashes host, name and size (stdin: 0), so a re-export keeps it.
            let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            let run = Run::new(f, bytes, fp);
            exits.begin_run(&run);
            let mut analysis = Analysis::new(opts);
            analysis.add_exit_sink(&mut exits);
            inputs::read(std::slice::from_ref(f), &mut analysis, &Options::default())?;
            let report = analysis.finish();
            inputs::print_diagnostics(&report);
            inputs::check_strict(&report, &args.diagnostics)?;
            exitscope_render::parquet::write_calls(&mut calls, &run, &report)?;
            let summary = report.inputs.first().cloned().unwrap_or_default();
            exitscope_render::parquet::write_run(&mut runs, &run, &summary, &report)?;
        }
        let rows = exits.rows();
        let secs = started.elapsed().as_secs_f64();
        exits.finish()?.commit()?;
        calls.finish()?.commit()?;
        runs.finish()?.commit()?;
        say!(
            "wrote {rows} exit rows ({:.0} rows/s) to {}",
            rows as f64 / secs.max(1e-9),
            dir.join("exits.parquet").display()
        );
        Ok(exit::OK)
    }
}

#[cfg(not(feature = "parquet"))]
mod parquet {
    use std::path::Path;

    use super::Args;
    use crate::exit::{CmdResult, Failure};

    pub(super) fn run(_dir: &Path, _args: &Args) -> CmdResult {
        Err(Failure::environment(anyhow::anyhow!(
            "this exitscope was built without Parquet support (cargo feature `parquet`)"
        )))
    }
}
