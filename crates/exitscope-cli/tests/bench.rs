//! `exitscope bench` end to end: the real binary on the real VMM.
//!
//! Tests that need /dev/kvm print `SKIP: <reason>` and pass where it is unavailable, and
//! fail instead when `EXITSCOPE_REQUIRE_HW=1`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Need, exitscope, json, skip_unless};

fn is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// False on PVM hosts without CPUID faulting, where CPL3 CPUID never reaches KVM.
fn cpuid_intercepted() -> bool {
    let fault =
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains("cpuid_fault");
    !is_pvm() || fault
}

fn result<'a>(report: &'a Value, test: &str) -> &'a Value {
    report["results"].as_array().unwrap().iter().find(|r| r["test"] == test).unwrap()
}

#[test]
fn list_shows_every_public_test_with_a_description() {
    let out = exitscope(&["bench", "--list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "nop",
        "cpuid",
        "vmcall",
        "inl_from_kernel",
        "outl_to_kernel",
        "inl_from_vmm",
        "mmio_from_vmm",
        "mov_from_cr8",
        "mov_to_cr8",
        "mov_dr",
        "rd_tsc_adjust_msr",
        "wr_tsc_adjust_msr",
        "wr_kernel_gs_base",
        "self_ipi_sti_hlt",
    ] {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(name));
        let line = line.unwrap_or_else(|| panic!("{name} missing from --list:\n{text}"));
        assert!(line.len() > name.len() + 20, "{line}");
    }
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(!names.contains(&"fault_ud") && !names.contains(&"hang"), "hidden tests listed");
}

#[test]
fn missing_kvm_device_exits_3_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_exitscope"))
        .args(["bench", "cpuid"])
        .env("EXITSCOPE_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("exitscope: error:") && err.contains("/nonexistent/kvm"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_test_and_bad_cpl_are_usage_errors() {
    let out = exitscope(&["bench", "no_such_test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("known tests"));
    assert_eq!(exitscope(&["bench", "--cpl", "1", "cpuid"]).status.code(), Some(2));
}

#[test]
fn json_schema_and_one_exit_per_iteration() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let tests =
        ["cpuid", "inl_from_vmm", "mmio_from_vmm", "inl_from_kernel", "nop", "mov_from_cr8"];
    let mut args = vec!["bench", "--json", "--min-cycles", "2^21", "--repeat", "3"];
    args.extend(tests);
    let out = exitscope(&args);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let host = &report["host"];
    assert!(["vmx", "svm", "pvm", "unknown"].contains(&host["kvm_flavour"].as_str().unwrap()));
    assert!(host["tsc_khz"].as_u64().unwrap() > 100_000);
    assert!(host["cpu_model"].is_string());
    // The environment fingerprint, flattened into `host` next to the fields above.
    assert!(host["cpu"]["vendor"].is_string() && host["os"]["release"].is_string(), "{host}");
    assert!(host["kvm_modules"]["kvm"].is_object(), "{host}");
    assert!(host["vulnerabilities"].is_object() || host["vulnerabilities"].is_null());
    assert_eq!(host["exitscope_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(host["tsc"]["khz"], host["tsc_khz"]);
    assert_eq!(host["tsc"]["khz_source"], "KVM_GET_TSC_KHZ");
    assert_eq!(host["loadavg"], host["load_average"]);
    if is_pvm() {
        assert_eq!(host["virtualization"], "pvm");
    }
    assert!(host["vcpu"]["pinned"].is_null());
    assert!(!host["vcpu"]["cpus_seen"].as_array().unwrap().is_empty(), "{}", host["vcpu"]);
    let cpl = report["mode"]["cpl"].as_u64().unwrap();
    assert!(report["mode"]["reason"].as_str().unwrap().len() > 10);
    if is_pvm() {
        assert_eq!(cpl, 3, "PVM hosts default to CPL3");
    }

    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), tests.len());
    for r in results {
        assert!(r["test"].is_string());
        assert_eq!(r["cpl"].as_u64(), Some(cpl));
        assert!(["ok", "skipped", "timeout", "failed"].contains(&r["status"].as_str().unwrap()));
        assert!(r["reason"].is_null() || r["reason"].is_string());
        assert!(r["iterations"].is_u64());
        assert!(r["exit_kind"].is_string());
        for key in ["cycles_median", "cycles_min", "cycles_max", "ns_median", "exits_per_iteration"]
        {
            if r["status"] == "ok" {
                assert!(r[key].is_number(), "{key} in {r}");
            } else {
                assert!(r[key].is_null(), "{key} in {r}");
            }
        }
    }

    for test in ["inl_from_vmm", "mmio_from_vmm", "inl_from_kernel"] {
        let r = result(&report, test);
        assert_eq!(r["status"], "ok", "{r}");
        let e = r["exits_per_iteration"].as_f64().unwrap();
        assert!((0.9..1.2).contains(&e), "{test}: {e} exits/iter");
        assert!(r["cycles_median"].as_f64().unwrap() > 500.0, "{r}");
        assert!(r["iterations"].as_u64().unwrap() >= 64);
    }
    let user = |t: &str| result(&report, t)["userspace_exits_per_iteration"].as_f64().unwrap();
    assert!((0.9..1.1).contains(&user("inl_from_vmm")));
    assert!((0.9..1.1).contains(&user("mmio_from_vmm")));
    assert!(user("inl_from_kernel") < 0.1);
    let loop_ns = result(&report, "inl_from_vmm")["vmm_loop_ns_per_exit"].as_f64().unwrap();
    assert!(loop_ns > 0.0 && loop_ns < 100_000.0, "{loop_ns}");
    assert!(result(&report, "inl_from_kernel")["vmm_loop_ns_per_exit"].is_null());
    let mmio = &result(&report, "mmio_from_vmm")["stats_per_iteration"]["mmio_exits"];
    assert!((0.9..1.1).contains(&mmio.as_f64().unwrap()), "{mmio}");

    let cpuid = result(&report, "cpuid");
    assert_eq!(cpuid["status"], "ok");
    let e = cpuid["exits_per_iteration"].as_f64().unwrap();
    if cpuid_intercepted() {
        assert!((0.9..1.2).contains(&e), "cpuid: {e} exits/iter");
    } else {
        assert!(e < 0.1, "cpuid: {e}");
        assert!(cpuid["reason"].as_str().unwrap().contains("cpuid_fault"));
    }

    let nop = result(&report, "nop");
    assert!(nop["exits_per_iteration"].as_f64().unwrap() < 0.01);

    let cr8 = result(&report, "mov_from_cr8");
    if cpl == 3 {
        assert_eq!(cr8["status"], "skipped");
        assert!(cr8["reason"].as_str().unwrap().contains("CPL0"));
    }
}

#[test]
fn faulting_guest_is_reported_with_vector_and_rip() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let out = exitscope(&["bench", "--json", "--min-cycles", "2^16", "fault_ud", "nop"]);
    assert_eq!(out.status.code(), Some(1), "a failed test exits 1");
    let report = json(&out);
    let r = result(&report, "fault_ud");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["fault"]["vector"], 6);
    assert!(r["fault"]["rip"].as_u64().unwrap() >= 0x10000);
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("#UD") && reason.contains("RIP 0x"), "{reason}");
    // The other test still ran.
    assert_eq!(result(&report, "nop")["status"], "ok");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fault_ud"));
}

#[test]
fn hanging_guest_is_stopped_by_the_deadline() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let started = Instant::now();
    let out =
        exitscope(&["bench", "--json", "--timeout", "1", "--min-cycles", "2^16", "hang", "nop"]);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let r = result(&report, "hang");
    assert_eq!(r["status"], "timeout");
    assert!(r["reason"].as_str().unwrap().contains("deadline"));
    assert_eq!(result(&report, "nop")["status"], "ok", "tests after a hang still run");
}

#[test]
fn table_names_mode_host_and_load() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let out = exitscope(&["bench", "--min-cycles", "2^18", "--repeat", "1", "inl_from_kernel"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    for col in [
        "test",
        "mode",
        "cyc median",
        "95% CI of median",
        "cyc min",
        "cyc max",
        "ns",
        "exits/iter",
        "exit kind",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(text.lines().any(|l| l.starts_with("inl_from_kernel") && l.contains(" ok ")), "{text}");
    assert!(
        text.contains("\nmode: CPL")
            && text.contains("\nhost: ")
            && text.contains("\nkvm: ")
            && text.contains("\nmitigations: ")
            && text.contains("load average"),
        "{text}"
    );
    // One repeat cannot give an interval, and the table says so.
    assert!(text.contains("warning: inl_from_kernel: 1 repeats give no 95 % interval"), "{text}");
}

#[test]
fn cpl0_override_runs_privileged_tests_and_says_why() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let tests = ["rd_tsc_adjust_msr", "wr_kernel_gs_base", "mov_to_cr8", "self_ipi_sti_hlt"];
    let mut args = vec!["bench", "--json", "--cpl", "0", "--min-cycles", "2^18", "--repeat", "1"];
    args.extend(tests);
    let out = exitscope(&args);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["mode"]["cpl"], 0);
    assert!(report["mode"]["reason"].as_str().unwrap().contains("--cpl 0"));
    assert_eq!(report["mode"]["emulated"].as_bool(), Some(is_pvm()));
    for t in tests {
        let r = result(&report, t);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["cpl"], 0);
        if is_pvm() {
            assert!(r["reason"].as_str().unwrap().contains("emulated"), "{r}");
        }
    }
    // The self-IPI is delivered through the IDT and wakes the HLT: at least one exit each.
    let hlt = result(&report, "self_ipi_sti_hlt")["exits_per_iteration"].as_f64().unwrap();
    assert!(hlt > 0.5, "{hlt}");
}

/// The first CPU this process may run on.
fn first_allowed_cpu() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap();
    let first = list.trim().split([',', '-']).next().unwrap();
    first.parse().unwrap()
}

#[test]
fn pin_records_placement_and_six_repeats_give_a_median_interval() {
    if skip_unless(&[Need::Kvm]) {
        return;
    }
    let cpu = first_allowed_cpu().to_string();
    let out = exitscope(&[
        "bench",
        "--json",
        "--min-cycles",
        "2^20",
        "--repeat",
        "6",
        "--pin",
        &cpu,
        "nop",
        "inl_from_kernel",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    let vcpu = &report["host"]["vcpu"];
    assert_eq!(vcpu["pinned"].to_string(), cpu);
    assert_eq!(vcpu["cpus_allowed"].as_str().unwrap(), cpu);
    assert_eq!(vcpu["cpus_seen"].to_string(), format!("[{cpu}]"));
    assert!(report["median_ci_method"].as_str().unwrap().contains("order-statistics"));
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["vcpu_cpus"].to_string(), format!("[{cpu}]"));
        assert_eq!(r["samples"].as_array().unwrap().len(), 6);
        // Six repeats: the interval is [min, max] with coverage 1 - 2/64.
        let ci = &r["cycles_median_ci"];
        assert_eq!(ci["low"], r["cycles_min"], "{r}");
        assert_eq!(ci["high"], r["cycles_max"], "{r}");
        assert!((ci["confidence"].as_f64().unwrap() - 0.968_75).abs() < 1e-9);
    }
}

#[test]
fn pin_to_a_cpu_outside_the_mask_is_a_usage_error() {
    let out = exitscope(&["bench", "--pin", "100000", "nop"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pin 100000"));
}
