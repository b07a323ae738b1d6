//! `exitscope bench` end to end: the real binary on the real VMM.
//!
//! Tests that need /dev/kvm print `SKIP: <reason>` and pass where it is unavailable, and
//! fail instead when `EXITSCOPE_REQUIRE_HW=1`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn exitscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exitscope")).args(args).output().unwrap()
}

/// True if /dev/kvm can be used; otherwise prints SKIP (or panics under REQUIRE_HW).
fn have_kvm() -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
                "EXITSCOPE_REQUIRE_HW=1 but /dev/kvm is unusable: {e}"
            );
            println!("SKIP: /dev/kvm unusable: {e}");
            false
        }
    }
}

fn is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// False on PVM hosts without CPUID faulting, where CPL3 CPUID never reaches KVM.
fn cpuid_intercepted() -> bool {
    let fault =
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains("cpuid_fault");
    !is_pvm() || fault
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
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
    if !have_kvm() {
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
    if !have_kvm() {
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
    if !have_kvm() {
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
    if !have_kvm() {
        return;
    }
    let out = exitscope(&["bench", "--min-cycles", "2^18", "--repeat", "1", "inl_from_kernel"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    for col in ["test", "mode", "cyc median", "cyc min", "cyc max", "ns", "exits/iter", "exit kind"]
    {
        assert!(header.contains(col), "{header}");
    }
    assert!(text.lines().any(|l| l.starts_with("inl_from_kernel") && l.contains(" ok ")), "{text}");
    assert!(
        text.contains("\nmode: CPL")
            && text.contains("\nhost: kvm ")
            && text.contains("load average")
    );
}

#[test]
fn cpl0_override_runs_privileged_tests_and_says_why() {
    if !have_kvm() {
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
