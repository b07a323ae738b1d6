//! `exitscope bench --kut FILE [TEST...]` (part of the bench command): boot kvm-unit-tests' own x86 image in
//! exitscope's VMM, print the guest's lines, then the bench table of what it printed.

use std::io::{IsTerminal, Write};

use anyhow::{Context, anyhow};
use exitscope_vmm::bench::Status;
use exitscope_vmm::kut::{self, BootPlan, PlanRuns};

use super::Args;
use crate::exit::{self, CmdResult, Failure};

/// The boot plans: the command line's tests, or the cfg file's vmexit entries.
fn plans(args: &Args, kernel: &std::path::Path) -> Result<Vec<BootPlan>, Failure> {
    let base = args.kut.config(kernel, &[], &args.bench);
    let Some(cfg_path) = &args.kut_cfg else {
        let config = base.with_tests(args.tests.iter().cloned());
        return Ok(vec![BootPlan { label: "command line".into(), config, notes: Vec::new() }]);
    };
    let text = std::fs::read_to_string(cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))
        .map_err(Failure::input)?;
    let entries = kut::cfg::parse(&text)
        .map_err(|e| Failure::input(anyhow!("{}:{e}", cfg_path.display())))?;
    let mut plans = kut::plans_from_cfg(&entries, &base, &args.tests)
        .map_err(|e| Failure::input(anyhow!("{}: {e}", cfg_path.display())))?;
    if args.bench.timeout.is_some() {
        // An explicit --timeout wins over the entries' own.
        for p in &mut plans {
            p.config = p.config.clone().with_timeout(base.timeout);
        }
    }
    Ok(plans)
}

/// Runs `bench --kut`.
pub fn run(args: &Args) -> CmdResult {
    let Some(kernel) = args.kut.image()? else {
        return Err(Failure::input(anyhow!("--kut FILE is required")));
    };
    let plans = plans(args, kernel)?;
    let repeat = args.bench.repeat.unwrap_or(1);
    let json = args.json;
    let chatty = std::io::stderr().is_terminal();

    let host = exitscope_vmm::probe(&exitscope_vmm::Options::default())
        .map_err(|e| Failure::environment(anyhow!(e)))?;
    let mut runs = Vec::new();
    for plan in plans {
        let mut boots = Vec::new();
        for boot in 1..=repeat {
            let header = format!(
                "# {} boot {boot}/{repeat}: -smp {} -m {} -append \"{}\"",
                plan.label,
                plan.config.smp,
                plan.config.mem_mib,
                plan.config.tests.join(" ")
            );
            guest_line(json, &header);
            let outcome = kut::run(&plan.config, move |l| guest_line(json, &l.text))
                .map_err(crate::kut::failure)?;
            if let Some(p) = &outcome.partial_line {
                guest_line(json, p);
            }
            let end = format!("# {} in {:.1} s", outcome.end.describe(), outcome.seconds);
            guest_line(json, &end);
            if chatty && json {
                eprintln!("exitscope: {} boot {boot}/{repeat} done", plan.label);
            }
            boots.push(outcome);
        }
        runs.push(PlanRuns { plan, boots });
    }

    let report = kut::summarize(&runs, &host, kernel, repeat);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing JSON")?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
        exitscope_render::bench::write_kut_table(&mut out, &report, &kut::result_plans(&runs))?;
    }
    out.flush()?;

    let bad: Vec<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Timeout))
        .map(|r| r.test.as_str())
        .collect();
    let failed_boots = runs.iter().flat_map(|r| &r.boots).filter(|b| !b.end.passed()).count();
    if bad.is_empty() && failed_boots == 0 {
        Ok(exit::OK)
    } else {
        if !bad.is_empty() {
            eprintln!("exitscope: {} did not complete: {}", bad.len(), bad.join(", "));
        }
        if failed_boots > 0 {
            eprintln!("exitscope: {failed_boots} boot(s) did not end with a PASS exit");
        }
        Ok(exit::CHECK_FAILED)
    }
}

/// One line of guest output (or a boot header): stdout for the table view, stderr when
/// stdout carries JSON.
fn guest_line(json: bool, text: &str) {
    if json {
        eprintln!("{text}");
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }
}
