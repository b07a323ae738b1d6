//! `exitscope run TEST`: the seed's experiment in one command. Run a built-in benchmark, record
//! its exit path (function_graph where the kernel allows it, else kvm tracepoints), and explain
//! the result: exit reasons, phases, call tree.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args as ClapArgs;
use serde_json::Value;

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_tracefs::Error as TfError;

use crate::cmd::record;
use crate::cmd::report::{self, ColorChoice};
use crate::exit::{CmdResult, Failure, OK};

/// Arguments of `exitscope run`.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  exitscope run cpuid                  # function_graph of the exit path, or kvm events
  exitscope run inl_from_kernel -o out # keep trace.txt, bench.json, report.json, report.html
  exitscope run --events mmio_from_vmm")]
pub struct Args {
    /// The benchmark to run and trace (`exitscope bench --list`).
    #[arg(value_name = "TEST")]
    pub test: String,
    /// Keep the raw trace, the benchmark's JSON, the report's JSON and the HTML report here.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Record kvm tracepoints even where function_graph is available.
    #[arg(long)]
    pub events: bool,
    /// Root of the function graph (default: vcpu_enter_guest, with fallbacks when inlined).
    #[arg(long, value_name = "FUNC", conflicts_with = "events")]
    pub graph: Option<String>,
    /// Privilege level of the benchmark loop (default: the bench's own choice for this host).
    #[arg(long, value_name = "0|3")]
    pub cpl: Option<u8>,
    /// Minimum TSC cycles of the measured loop. Smaller than `bench`'s default: every exit
    /// becomes trace lines, and function_graph writes dozens per exit.
    #[arg(long, value_name = "N", default_value = "2^24")]
    pub min_cycles: String,
    /// Per-CPU ring buffer size in KiB.
    #[arg(long, value_name = "KB", default_value_t = 65536)]
    pub buffer_size: u64,
    /// tracefs mount to use instead of looking for one.
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// Testing only: a directory of plain files that emulates tracefs.
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "tracefs")]
    pub fake_tracefs: Option<PathBuf>,
    /// Color the terminal output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Where the run's files go: the user's directory, or a temporary one removed at the end.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `sh -c 'exec exitscope bench --json ... TEST > bench.json'`: exec keeps the pid the tracer
/// filters on, and the benchmark's JSON goes to a file instead of the terminal. The file name
/// is the script's `$1`, so no quoting is involved.
fn bench_argv(a: &Args, json: &Path) -> Result<Vec<OsString>, Failure> {
    let mut extra = vec!["--json", "--repeat", "1", "--min-cycles", a.min_cycles.as_str()];
    let cpl = a.cpl.map(|c| c.to_string());
    if let Some(c) = &cpl {
        extra.extend(["--cpl", c.as_str()]);
    }
    let mut argv: Vec<OsString> = vec![
        "/bin/sh".into(),
        "-c".into(),
        "out=$1; shift; exec \"$@\" > \"$out\"".into(),
        "sh".into(),
        json.as_os_str().to_owned(),
    ];
    argv.extend(record::bench_command(&a.test, &extra)?);
    Ok(argv)
}

fn record_args(a: &Args, events: bool, trace: &Path, argv: Vec<OsString>) -> record::Args {
    record::Args {
        graph: if events { Vec::new() } else { a.graph.iter().cloned().collect() },
        events,
        event: Vec::new(),
        max_depth: None,
        no_abstime: false,
        no_proc: false,
        output: trace.to_path_buf(),
        buffer_size: Some(a.buffer_size),
        pid: None,
        bench: None,
        duration: None,
        no_follow: false,
        top_level: false,
        tracefs: a.tracefs.clone(),
        fake_tracefs: a.fake_tracefs.clone(),
        command: argv,
    }
}

/// True when the failure says function_graph itself cannot be used here.
fn graph_unavailable(f: &Failure) -> bool {
    f.error.chain().any(|c| {
        matches!(
            c.downcast_ref::<TfError>(),
            Some(TfError::TracerRefused { .. } | TfError::TracerUnavailable { .. })
        )
    })
}

/// Run `exitscope run`.
pub fn run(args: Args) -> CmdResult {
    // Check the name before tracefs is touched.
    if exitscope_guest::find(&args.test).is_none() {
        let known: Vec<&str> = exitscope_guest::BENCHMARKS.iter().map(|b| b.name).collect();
        return Err(Failure::input(anyhow!(
            "unknown test {:?}; known tests: {}",
            args.test,
            known.join(", ")
        )));
    }
    let work = match &args.output {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating {}", d.display()))
                .map_err(Failure::input)?;
            WorkDir { path: d.clone(), keep: true }
        }
        None => {
            let d = std::env::temp_dir().join(format!("exitscope-run-{}", std::process::id()));
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            WorkDir { path: d, keep: false }
        }
    };
    let trace = work.path.join("trace.txt");
    let bench_json = work.path.join("bench.json");
    let argv = bench_argv(&args, &bench_json)?;

    let mut events = args.events;
    let mut why = if events { "--events was given".to_string() } else { String::new() };
    let recorded = if events {
        record::run(record_args(&args, true, &trace, argv))
    } else {
        match record::run(record_args(&args, false, &trace, argv.clone())) {
            Err(f) if graph_unavailable(&f) => {
                why = format!("function_graph is not available: {}", f.error.root_cause());
                eprintln!("exitscope: {why}; recording kvm tracepoints instead");
                events = true;
                record::run(record_args(&args, true, &trace, argv))
            }
            other => other,
        }
    };
    recorded?;

    let (mut out, tty) = report::open_output(None)?;
    let style = report::style_for(args.color, tty);
    let mode = if events {
        format!("kvm tracepoints ({why})")
    } else {
        "function_graph of the exit path".to_string()
    };
    writeln!(out, "# exitscope run {}: recorded {mode}", args.test)?;
    print_bench(&bench_json, &mut out)?;

    let mut opts = AnalysisOptions::default();
    // The bench's own signalling (done and fault ports) is not the experiment.
    opts.harness_ports = vec![exitscope_guest::PORT_DONE, exitscope_guest::PORT_FAULT];
    let mut analysis = Analysis::new(opts);
    let name = trace.to_string_lossy().into_owned();
    report::analyse_inputs(std::slice::from_ref(&name), &mut analysis)?;
    let report = analysis.finish();
    report::print_diagnostics(&report);
    if let Some(ex) = &report.exits
        && ex.whole_roots + ex.split_roots > 0
    {
        writeln!(out)?;
        exitscope_render::exits::write_phases(ex, &style, &mut out)?;
    }
    if report.exits.is_some() && !report.events.is_empty() {
        writeln!(out)?;
        exitscope_render::exits::write_table(&report, &mut out)?;
    } else if events {
        writeln!(
            out,
            "\n# no kvm events were recorded: the benchmark's operation did not exit to this \
             KVM (see the bench note above)"
        )?;
    }
    if !report.tree.is_empty() {
        writeln!(out)?;
        exitscope_render::tree::write(&report, &style, &mut out)?;
    } else {
        exitscope_render::tree::footer(&report, &mut out)?;
    }
    let report_json = work.path.join("report.json");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&report_json)
            .with_context(|| format!("creating {}", report_json.display()))?,
    );
    exitscope_render::json::write(&report, &mut f)?;
    f.flush()?;
    if work.keep {
        let html_path = work.path.join("report.html");
        let mut h = std::io::BufWriter::new(
            std::fs::File::create(&html_path)
                .with_context(|| format!("creating {}", html_path.display()))?,
        );
        let mut opts = exitscope_render::html::HtmlOptions::default();
        opts.title = Some(format!("exitscope run {}", args.test));
        opts.bench =
            std::fs::read_to_string(&bench_json).ok().and_then(|t| serde_json::from_str(&t).ok());
        exitscope_render::html::write(&report, &format!("run {}", args.test), &opts, &mut h)?;
        h.flush()?;
        writeln!(
            out,
            "# kept {}: trace.txt, bench.json, report.json, report.html",
            work.path.display()
        )?;
    }
    out.flush()?;
    Ok(OK)
}

/// One line per benchmark result from the bench JSON, plus its notes.
fn print_bench(path: &Path, out: &mut impl Write) -> Result<(), Failure> {
    let Ok(text) = std::fs::read_to_string(path) else {
        writeln!(out, "# the benchmark wrote no results ({})", path.display())?;
        return Ok(());
    };
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("reading the benchmark's results in {}", path.display()))?;
    if let Some(reason) = v["mode"]["reason"].as_str() {
        writeln!(out, "# bench mode: CPL{} ({reason})", v["mode"]["cpl"])?;
    }
    for r in v["results"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let num = |k: &str| r[k].as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
        writeln!(
            out,
            "# bench {}: {} cycles/iter ({} ns), {} exits/iter, {} [{}]{}",
            r["test"].as_str().unwrap_or("?"),
            num("cycles_median"),
            num("ns_median"),
            r["exits_per_iteration"].as_f64().map_or("-".to_string(), |x| format!("{x:.2}")),
            r["exit_kind"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            r["reason"].as_str().map(|s| format!(": {s}")).unwrap_or_default()
        )?;
    }
    if v["results"].as_array().is_none_or(Vec::is_empty) {
        return Err(Failure::input(anyhow!("the benchmark produced no results")));
    }
    Ok(())
}
