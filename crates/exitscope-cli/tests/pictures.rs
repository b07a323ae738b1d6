//! End-to-end tests of the pictures: the `flame`, `export` and `html` subcommands on the seed
//! traces, and the HTML report and flame graph opened in headless Chromium.
//!
//! Chromium: Debian's `chromium` (`/usr/bin/chromium`). When it is missing, the test setup
//! installs it with `apt-get install -y chromium` if running as root with apt; otherwise the
//! browser tests print `SKIP: <reason>` and pass, unless `EXITSCOPE_REQUIRE_BROWSER=1`, which
//! turns the skip into a failure. `EXITSCOPE_CHROMIUM=/path` picks another browser binary. Console messages are read from Chromium's own log
//! (`--enable-logging=stderr`: every `console.*` call and uncaught error is a `CONSOLE` line),
//! the rendered page from `--dump-dom`. Screenshots go to `docs/img/` when
//! `EXITSCOPE_UPDATE_SCREENSHOTS=1` or when they are missing, else to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{ok_stdout as exitscope, root};

/// Seed path relative to the workspace root, where [`exitscope`] runs (so pages and
/// screenshots show `tests/data/seed/...`, not this machine's directories).
fn seed(name: &str) -> String {
    format!("tests/data/seed/{name}")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("exitscope-pictures-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- subcommands, no browser

#[test]
fn flame_folded_matches_the_golden() {
    let got = exitscope(&["flame", "--folded", &seed("cpuid-amd.fgraph.txt")]);
    let want =
        std::fs::read_to_string(root().join("tests/data/seed/expected/cpuid-amd.folded")).unwrap();
    assert_eq!(got, want);
}

#[test]
fn flame_svg_and_diff_svg() {
    let svg = exitscope(&["flame", &seed("cpuid-amd.fgraph.txt")]);
    assert!(svg.contains("<svg") && svg.contains("vcpu_enter_guest [kvm] (4,278 ns"), "{svg}");
    let diff = exitscope(&[
        "flame",
        "--diff",
        &seed("cpuid-amd.fgraph.txt"),
        &seed("cpuid-intel.fgraph.txt"),
    ]);
    // Differential frames carry the change in their tooltip.
    assert!(diff.contains("<svg") && diff.contains("vcpu_enter_guest [kvm] ("), "{diff}");
    assert!(diff.contains('%'));
}

#[test]
fn export_perfetto_is_trace_event_json() {
    let out = exitscope(&["export", "--perfetto", &seed("cpuid-intel.fgraph.txt")]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["displayTimeUnit"], "ns");
    assert_eq!(doc["otherData"]["synthetic_time"], true);
    let xs = doc["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count();
    assert!(xs > 30, "{xs}");
    // Root slices carry the exit reason (report --exits classification), the function stays
    // in args.
    let out = exitscope(&["export", "--perfetto", &seed("cpuid-amd.fgraph.txt")]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let roots: Vec<(&str, &str)> = doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["depth"] == 0)
        .map(|e| (e["name"].as_str().unwrap(), e["args"]["function"].as_str().unwrap()))
        .collect();
    assert_eq!(roots[0], ("CPUID", "vcpu_enter_guest"));
    // Roots that hold no vendor run call keep their function's name.
    assert_eq!(roots[1], ("cpuid_interception [kvm_amd]", "cpuid_interception"));
}

#[test]
fn flame_without_durations_fails_with_a_reason() {
    let d = scratch("nodur");
    let f = d.join("t.txt");
    std::fs::write(&f, " 0)               |  a() {\n 0)               |  }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_exitscope"))
        .args(["flame", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to draw"));
}

// ---------------------------------------------------------------- headless Chromium

struct Browser {
    exe: PathBuf,
}

fn find_chromium() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// The browser, or `None` after printing why the test is skipped. Tests install nothing:
/// `.ci/run` installs Debian's chromium; elsewhere `apt-get install chromium` first.
fn browser() -> Option<&'static Browser> {
    static B: OnceLock<Result<Browser, String>> = OnceLock::new();
    let b = B.get_or_init(|| {
        // An explicit browser (or a bad path, to exercise the skip) overrides the search.
        if let Some(exe) = std::env::var_os("EXITSCOPE_CHROMIUM").map(PathBuf::from) {
            if !exe.exists() {
                return Err(format!("EXITSCOPE_CHROMIUM={} does not exist", exe.display()));
            }
            return Ok(Browser { exe });
        }
        let exe = find_chromium()
            .ok_or("chromium is not installed (Debian: apt-get install chromium; .ci/run does)")?;
        Ok(Browser { exe })
    });
    match b {
        Ok(b) => Some(b),
        Err(reason) => {
            assert!(
                std::env::var_os("EXITSCOPE_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
                "EXITSCOPE_REQUIRE_BROWSER=1 but: {reason}"
            );
            println!("SKIP: {reason}");
            None
        }
    }
}

/// What one Chromium run printed.
struct Run {
    stdout: String,
    console: Vec<String>,
}

/// Run headless Chromium on `page` with `extra` flags (one run at a time: the machine is
/// shared), killing it after 60 s.
fn chromium(b: &Browser, page: &Path, extra: &[String]) -> Run {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch(&format!("chromium-{}", page.file_name().unwrap().to_string_lossy()));
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(&b.exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let console = stderr.lines().filter(|l| l.contains("CONSOLE")).map(str::to_string).collect();
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Run { stdout, console }
}

/// The DOM after the page's scripts ran, asserting the console stayed silent.
fn rendered_dom(b: &Browser, page: &Path) -> String {
    rendered_dom_at(b, page, "")
}

/// [`rendered_dom`] of `page` + `fragment` (e.g. `#selftest`).
fn rendered_dom_at(b: &Browser, page: &Path, fragment: &str) -> String {
    let run = chromium(
        b,
        &PathBuf::from(format!("{}{fragment}", page.display())),
        &["--dump-dom".into()],
    );
    assert!(
        run.console.is_empty(),
        "console output from {}:\n{}",
        page.display(),
        run.console.join("\n")
    );
    assert!(!run.stdout.is_empty(), "no DOM from {}", page.display());
    run.stdout
}

/// Screenshot `page` at `w`×`h` into `docs/img/<name>` (when updating or missing) or a
/// scratch file, and check it is a non-trivial PNG.
fn screenshot(b: &Browser, page: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let docs = root().join("docs/img").join(name);
    let update = std::env::var_os("EXITSCOPE_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");
    let target = if update || !docs.exists() {
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        docs
    } else {
        scratch(&format!("shot-{name}")).join(name)
    };
    let run = chromium(
        b,
        page,
        &[format!("--window-size={w},{h}"), format!("--screenshot={}", target.display())],
    );
    assert!(run.console.is_empty(), "console output:\n{}", run.console.join("\n"));
    let png = std::fs::read(&target).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {}", target.display());
    assert!(png.len() > 20_000, "suspiciously small screenshot ({} bytes)", png.len());
    target
}

/// Rows of the table with `id` in a DOM dump.
fn table_rows(dom: &str, id: &str) -> usize {
    let start = dom.find(&format!("<table id=\"{id}\"")).unwrap_or_else(|| panic!("no table#{id}"));
    let end = dom[start..].find("</table>").unwrap() + start;
    dom[start..end].matches("<tr").count()
}

fn assert_no_external_urls(html: &str) {
    let outside = exitscope_render::html::without_data(html);
    for bad in ["http://", "https://", "//cdn", "src=\"//", "href=\"//", "@import"] {
        assert!(!outside.contains(bad), "external reference {bad:?} in the page");
    }
}

#[test]
fn html_report_renders_in_chromium() {
    let d = scratch("report");
    let page = d.join("report.html");
    exitscope(&["html", &seed("cpuid-amd.fgraph.txt"), "-o", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_no_external_urls(&html);
    let Some(b) = browser() else { return };
    let t = Instant::now();
    let dom = rendered_dom(b, &page);
    assert!(dom.contains("data-rendered=\"true\""), "the report script did not finish");
    // One row per call path of the report's tree, plus the header row.
    let json: Value =
        serde_json::from_str(&exitscope(&["report", "--json", &seed("cpuid-amd.fgraph.txt")]))
            .unwrap();
    fn paths(nodes: &Value) -> usize {
        nodes.as_array().unwrap().iter().map(|n| 1 + paths(&n["children"])).sum()
    }
    assert_eq!(table_rows(&dom, "calltree"), paths(&json["tree"]) + 1);
    assert!(table_rows(&dom, "flat") > 20);
    assert!(dom.contains("id=\"flame\"") && dom.contains("id=\"frames\""), "flame graph SVG");
    assert!(dom.contains("id=\"func-hists\""), "histograms");
    assert!(dom.matches("class=\"h\"").count() >= 6, "histogram SVGs");
    assert!(dom.contains('▾'), "collapsible tree toggles");
    // Interactions, run by the page itself under #selftest: collapsing the first root hides
    // its subtree and expanding brings it back; zooming into a frame hides the frames outside
    // it and stretches it to full width; resetting the zoom shows everything again.
    let dom = rendered_dom_at(b, &page, "#selftest");
    let st = dom.split_once("data-selftest=\"").unwrap().1.split_once('"').unwrap().0;
    let (rows, zoom) = st.split_once(';').unwrap();
    let rows: Vec<usize> =
        rows.strip_prefix("rows:").unwrap().split('/').map(|n| n.parse().unwrap()).collect();
    assert!(rows[1] < rows[0] && rows[2] == rows[0], "collapse/expand: {st}");
    let zoom: Vec<&str> = zoom.strip_prefix("zoom:").unwrap().split('/').collect();
    assert!(zoom[0].parse::<usize>().unwrap() > 0, "zoom hides other frames: {st}");
    assert_eq!((zoom[1], zoom[2]), ("100%", "0"), "zoomed frame full width, reset: {st}");
    let shot = screenshot(b, &page, "report.png", 1280, 1700);
    println!("report rendered and captured in {:?}: {}", t.elapsed(), shot.display());
}

#[test]
fn html_diff_renders_in_chromium() {
    let d = scratch("diff");
    let page = d.join("diff.html");
    exitscope(&[
        "html",
        "--diff",
        &seed("cpuid-amd.fgraph.txt"),
        &seed("cpuid-intel.fgraph.txt"),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_no_external_urls(&std::fs::read_to_string(&page).unwrap());
    let Some(b) = browser() else { return };
    let dom = rendered_dom(b, &page);
    assert!(dom.contains("data-rendered=\"true\""));
    // The comparison of `exitscope diff`: vendor-normalized, svm_* next to vmx_*.
    assert!(table_rows(&dom, "difftree") > 40);
    assert!(dom.contains("Vendor-normalized"));
    assert!(dom.contains("svm_vcpu_run ↔ vmx_vcpu_run"));
    assert!(dom.contains("vendor_vcpu_run"), "normalized differential flame graph");
    assert!(dom.contains("id=\"frames\""));
    let dom = rendered_dom_at(b, &page, "#selftest");
    assert!(dom.contains("data-selftest=\"rows:"), "the side-by-side tree collapses");
    screenshot(b, &page, "diff.png", 1280, 1400);
}

#[test]
fn flame_svg_renders_in_chromium() {
    let d = scratch("flame");
    let svg = d.join("flame.svg");
    exitscope(&["flame", &seed("cpuid-amd.fgraph.txt"), "-o", svg.to_str().unwrap()]);
    let Some(b) = browser() else { return };
    let dom = rendered_dom(b, &svg);
    assert!(dom.contains("id=\"frames\"") && dom.contains("vcpu_enter_guest"));
    let text = std::fs::read_to_string(&svg).unwrap();
    let h: u32 = text
        .split_once("height=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .and_then(|(v, _)| v.parse().ok())
        .unwrap();
    screenshot(b, &svg, "flame.png", 1200, h);
}

/// A report with every optional section (`exits` with phases, handling time, rates and keys,
/// `events`, `host`) and a bench section, written by hand to their documented schemas: the page
/// must render them.
#[test]
fn optional_sections_render_in_chromium() {
    let dist = |mean: u64| {
        json!({"count": 10, "total_ns": mean * 10, "mean_ns": mean, "min_ns": mean / 2,
               "max_ns": mean * 4, "p50_ns": mean, "p90_ns": mean * 2, "p99_ns": mean * 4,
               "histogram": {"sub_buckets": 512, "exact": false, "bins": [
                   {"low_ns": mean / 2, "high_ns": mean / 2 + 1, "count": 3},
                   {"low_ns": mean, "high_ns": mean + 2, "count": 6},
                   {"low_ns": mean * 4, "high_ns": mean * 4 + 8, "count": 1}]}})
    };
    let reason = |name: &str, count: u64, mean: u64| {
        json!({"reason": name, "count": count, "samples_pct": count as f64 * 100.0 / 11.0,
               "vendor": [{"isa": "vmx", "code": 10, "name": name, "count": count}],
               "by_event": count, "by_handler": 0, "by_tracepoint": 0,
               "evidence": [{"name": format!("kvm_exit: {name}"), "count": count}],
               "total": dist(mean), "before": dist(mean / 5), "run": dist(mean / 2),
               "after": dist(mean / 4), "other": dist(mean / 20), "completion": null,
               "handling": dist(mean / 2), "time_pct": 50.0, "rate_per_s": 1234.5,
               "inter_arrival": dist(mean * 10), "keys": [{"name": "msr 0x10 read", "count": 1}]})
    };
    let report = json!({
        "schema_version": 1,
        "inputs": [{"name": "vm.dat", "format": "trace-dat", "bytes": 1000, "lines": 0,
                    "records": 40, "error_lines": 0, "ignored_lines": 0}],
        "roots": 11, "tree": [], "flat": [],
        "incomplete": {"count": 0, "discarded_calls": 0, "functions": []},
        "orphans": {"count": 0, "functions": []},
        "lost_events": {"markers": 1, "events": 12, "uncounted_markers": 0},
        "diagnostics": [], "diagnostic_counts": {"errors": 0, "warnings": 0},
        "percentiles_exact": true,
        "host": {"cpu": "AMD EPYC 7B13", "kernel": "6.8.0", "vendor": "amd"},
        "events": {"kvm_exit": 11, "kvm_entry": 11, "kvm_msr": 4},
        "exits": {
            "source": "function_graph", "exits": 11, "whole_roots": 11, "split_roots": 0,
            "roots_without_run": 0, "unattributed_ns": 0, "handling_time_available": true,
            "isa": "vmx", "span_ns": 1000000, "timestamp_resolution_ns": 1,
            "unpaired_exits": 0, "unmatched_entries": 0, "out_of_order": 0,
            "userspace_exits": 0, "harness_exits": 0,
            "notes": ["the kernel lost 12 events (1 LOST markers)"],
            "reasons": [reason("CPUID", 10, 1500), reason("MSR_READ", 1, 2500)]
        }
    });
    let bench = json!({
        "host": {"kvm_flavour": "vmx", "cpu_model": "Xeon Test", "kernel": "6.8.0", "tsc_khz": 2600000},
        "mode": {"cpl": 0, "reason": "VMX host"},
        "results": [{"test": "cpuid", "cpl": 0, "status": "ok", "cycles_median": 1050.5,
                     "cycles_min": 1040.0, "cycles_max": 1100.0, "ns_median": 404.0,
                     "exits_per_iteration": 1.0, "exit_kind": "CPUID", "reason": null}]
    });
    let page = exitscope_render::html::Page {
        title: "exitscope report".into(),
        mode: "single",
        reports: vec![("vm.dat".into(), report)],
        flame_svg: None,
        flame_caption: String::new(),
        diff: None,
        bench: Some(bench),
    };
    let d = scratch("optional");
    let path = d.join("optional.html");
    let mut buf = Vec::new();
    exitscope_render::html::write_page(&page, &mut buf).unwrap();
    std::fs::write(&path, &buf).unwrap();
    assert_no_external_urls(&String::from_utf8(buf).unwrap());
    let Some(b) = browser() else { return };
    let dom = rendered_dom(b, &path);
    assert!(dom.contains("data-rendered=\"true\""));
    assert_eq!(table_rows(&dom, "reasons"), 3);
    assert_eq!(table_rows(&dom, "exits"), 3);
    assert!(dom.contains("class=\"ph ph1\""), "phase bars");
    assert_eq!(table_rows(&dom, "events"), 4);
    assert!(dom.contains("AMD EPYC 7B13"), "host table");
    assert!(dom.contains("id=\"reason-hists\""), "per-reason histograms");
    assert!(dom.contains("Total exits</div><div class=\"v\">11<"), "total exits");
    assert_eq!(table_rows(&dom, "bench"), 2, "the benchmark section");
    assert!(dom.contains("Xeon Test"), "the bench's host");
    assert!(dom.contains("1234.5"), "rates");
    screenshot(b, &path, "report-exits.png", 1280, 1300);
}

/// A diff page carrying a vendor-normalized comparison (the `exitscope diff --json` document,
/// hand-made to its documented schema) shows that instead of the exact-path alignment.
#[test]
fn normalized_diff_renders_in_chromium() {
    let side = |f: &str, m: &str, mean: u64| {
        json!({"function": f, "module": m, "count": 1, "mean_ns": mean, "self_mean_ns": mean / 4,
               "total_ns": mean, "self_ns": mean / 4, "min_ns": mean, "max_ns": mean,
               "p50_ns": mean, "p99_ns": mean})
    };
    let diff = json!({
        "schema_version": 1,
        "sign": "delta = B - A (mean per call); positive means B is slower; ratio = B / A",
        "normalized": true, "sorted_by": "tree",
        "a": {"names": ["amd"], "roots": 1, "exits": 1, "split_roots": 0, "unattributed_ns": 0},
        "b": {"names": ["intel"], "roots": 1, "exits": 1, "split_roots": 0, "unattributed_ns": 0},
        "tree": [{"key": "vcpu_enter_guest", "status": "both",
                  "a": side("vcpu_enter_guest", "kvm", 4278), "b": side("vcpu_enter_guest", "kvm", 5684),
                  "delta_ns": 1406, "ratio": 1.3287, "self_delta_ns": 351,
                  "children": [
                      {"key": "vcpu_run", "status": "both",
                       "a": side("svm_vcpu_run", "kvm_amd", 2265), "b": side("vmx_vcpu_run", "kvm_intel", 2090),
                       "delta_ns": -175, "ratio": 0.9227, "self_delta_ns": -43, "children": []},
                      {"key": "vmx_sync_pir_to_irr", "status": "only_b", "a": null,
                       "b": side("vmx_sync_pir_to_irr", "kvm_intel", 615),
                       "delta_ns": 615, "ratio": null, "self_delta_ns": 153, "children": []}]}],
        "collapsed": []
    });
    let empty = json!({"schema_version": 1, "inputs": [], "roots": 1, "tree": [], "flat": [],
                       "lost_events": {}, "incomplete": {}, "diagnostic_counts": {}});
    let page = exitscope_render::html::Page {
        title: "exitscope diff".into(),
        mode: "diff",
        reports: vec![("amd".into(), empty.clone()), ("intel".into(), empty)],
        flame_svg: None,
        flame_caption: String::new(),
        diff: Some(diff),
        bench: None,
    };
    let path = scratch("normalized").join("normalized.html");
    let mut buf = Vec::new();
    exitscope_render::html::write_page(&page, &mut buf).unwrap();
    std::fs::write(&path, &buf).unwrap();
    let Some(b) = browser() else { return };
    let dom = rendered_dom(b, &path);
    assert!(dom.contains("data-rendered=\"true\""));
    assert_eq!(table_rows(&dom, "difftree"), 5, "2 header rows + 3 aligned paths");
    assert!(dom.contains("svm_vcpu_run ↔ vmx_vcpu_run"));
    assert!(dom.contains("Vendor-normalized"));
    assert!(dom.contains(">only B<"));
    assert!(dom.contains("1.33×"));
}

/// A real event-statistics report (kvm_exit/kvm_entry pairs from a VMX trace, a fixture of
/// the kvm-events analysis): its exit-reason table and histograms render without errors.
#[test]
fn kvm_event_report_renders_in_chromium() {
    let d = scratch("events");
    let page = d.join("events.html");
    let input = "crates/exitscope-analyze/tests/data/kvm_events/vmx-5.10/input.txt";
    exitscope(&["html", input, "-o", page.to_str().unwrap()]);
    let json: Value = serde_json::from_str(&exitscope(&["report", "--json", input])).unwrap();
    let reasons = json["exits"]["reasons"].as_array().unwrap().len();
    assert!(reasons > 0, "fixture has exit reasons");
    let Some(b) = browser() else { return };
    let dom = rendered_dom(b, &page);
    assert!(dom.contains("data-rendered=\"true\""));
    assert_eq!(table_rows(&dom, "reasons"), reasons + 1);
    assert!(dom.contains("id=\"reason-hists\""), "per-reason histograms");
    assert!(!dom.contains("NaN"), "every number drawn");
    assert_eq!(table_rows(&dom, "events"), json["events"].as_object().unwrap().len() + 1);
}
