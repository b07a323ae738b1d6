//! `exitscope bench --kut`: the real binary booting kvm-unit-tests' own `vmexit.flat`.
//!
//! Tests that need /dev/kvm or `../shared/kut/vmexit.flat` (or `EXITSCOPE_KUT_FLAT`) print
//! `SKIP: <reason>` where those are missing, and fail instead when `EXITSCOPE_REQUIRE_HW=1`.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::exitscope;
use serde_json::Value;

fn skip(why: &str) {
    assert!(
        std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
        "EXITSCOPE_REQUIRE_HW=1 but {why}"
    );
    println!("SKIP: {why}");
}

/// The shared vmexit.flat when it and /dev/kvm are usable.
fn flat() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        skip(&format!("/dev/kvm unusable: {e}"));
        return None;
    }
    let path = std::env::var_os("EXITSCOPE_KUT_FLAT")
        .map_or_else(|| common::root().join("../shared/kut/vmexit.flat"), PathBuf::from);
    if path.is_file() {
        Some(path.to_string_lossy().into_owned())
    } else {
        skip(&format!("{} not found (set EXITSCOPE_KUT_FLAT)", path.display()));
        None
    }
}

fn is_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("exitscope-cli-kut-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_images_and_flags_are_usage_errors() {
    let out = exitscope(&["bench", "--kut", "/nonexistent/vmexit.flat", "cpuid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/vmexit.flat"), "{}", stderr(&out));

    let elf64 = temp("elf64", b"\x7fELF\x02\x01\x01\0");
    let out = exitscope(&["bench", "--kut", elf64.to_str().unwrap()]);
    std::fs::remove_file(&elf64).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("byte offset 4: not an ELF32 file"), "{}", stderr(&out));

    for args in [
        &["bench", "--smp", "2", "cpuid"][..],
        &["bench", "--kut", "x.flat", "--cpl", "0"],
        &["bench", "--kut", "x.flat", "--smp", "0"],
        &["bench", "--kut", "x.flat", "--mem", "4096"],
        &["bench", "--kut", "x.flat", "--list"],
    ] {
        let out = exitscope(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_bad_cfg_line_is_reported_with_its_number() {
    let Some(flat) = flat() else { return };
    let cfg = temp("bad.cfg", b"[vmexit_cpuid]\nfile = vmexit.flat\nthis is not a key\n");
    let out = exitscope(&["bench", "--kut", &flat, "--kut-cfg", cfg.to_str().unwrap()]);
    std::fs::remove_file(&cfg).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.cfg:line 3: expected `[name]`"), "{}", stderr(&out));
}

#[test]
fn prints_the_guest_lines_then_the_table() {
    let Some(flat) = flat() else { return };
    let out = exitscope(&["bench", "--kut", &flat, "inl_from_qemu", "mov_dr"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let guest = text.lines().position(|l| {
        l.split_once(' ').is_some_and(|(n, c)| n == "inl_from_qemu" && c.parse::<u64>().is_ok())
    });
    let table = text.lines().position(|l| l.starts_with("test ") && l.contains("cyc median"));
    assert!(guest.unwrap() < table.unwrap(), "{text}");
    assert!(text.contains("isa-debug-exit with code 0 (QEMU status 1: PASS)"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("inl_from_qemu ") && l.contains(" ok ")), "{text}");
    assert!(text.contains("host: ") && text.contains("\nkvm: "), "the fingerprint header: {text}");
    assert!(text.contains("mode: CPL0"), "{text}");
}

#[test]
fn json_has_the_bench_schema_with_kvm_unit_tests_as_source() {
    let Some(flat) = flat() else { return };
    let out = exitscope(&["bench", "--kut", &flat, "--json", "--repeat", "2", "inl_from_qemu"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "kvm-unit-tests");
    assert_eq!(report["repeat"], 2);
    assert_eq!(report["mode"]["cpl"], 0);
    assert_eq!(report["mode"]["emulated"], is_pvm());
    let r = &report["results"][0];
    assert_eq!(r["test"], "inl_from_qemu");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["exit_kind"], "io-user");
    assert_eq!(r["samples"].as_array().unwrap().len(), 2);
    let (lo, med, hi) = (
        r["cycles_min"].as_f64().unwrap(),
        r["cycles_median"].as_f64().unwrap(),
        r["cycles_max"].as_f64().unwrap(),
    );
    assert!(lo > 100.0 && lo <= med && med <= hi, "{r}");
    let exits = r["exits_per_iteration"].as_f64().unwrap();
    assert!((0.95..1.1).contains(&exits), "{r}");
    let user = r["userspace_exits_per_iteration"].as_f64().unwrap();
    assert!((0.99..1.01).contains(&user), "{r}");
    assert!(r["iterations"].as_u64().unwrap() >= 64);
    let boots = report["kut"]["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 2);
    assert_eq!(boots[0]["end"]["kind"], "exited");
    assert_eq!(boots[0]["end"]["status"], 1);
    assert!(boots[0]["lines"].as_array().unwrap().iter().any(|l| l == "enabling apic"));
    assert!(boots[0]["vcpu_tids"][0].as_i64().unwrap() > 0);
    // The guest's lines went to stderr, the JSON alone to stdout.
    assert!(stderr(&out).contains("inl_from_qemu "));
}

#[test]
fn kut_cfg_runs_the_vmexit_entries_with_their_smp() {
    let Some(flat) = flat() else { return };
    // Written for this test in unittests.cfg's format (not kvm-unit-tests' own file).
    let cfg = temp(
        "unittests.cfg",
        b"[vmexit_mov_dr]\nfile = vmexit.flat\ntest_args = 'mov_dr'\ngroups = vmexit\n\n\
          [vmexit_ipi]\nfile = vmexit.flat\nsmp = 2\ntest_args = 'ipi'\n\
          qemu_params = -machine pit=off\ngroups = vmexit\n\n\
          [other]\nfile = other.flat\n",
    );
    let out = exitscope(&["bench", "--kut", &flat, "--kut-cfg", cfg.to_str().unwrap(), "--json"]);
    std::fs::remove_file(&cfg).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests: Vec<&str> =
        report["results"].as_array().unwrap().iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, ["mov_dr", "ipi"]);
    let boots = report["kut"]["boots"].as_array().unwrap();
    assert_eq!((boots[0]["smp"].as_u64(), boots[1]["smp"].as_u64()), (Some(1), Some(2)));
    assert!(report["kut"]["notes"][0].as_str().unwrap().contains("pit=off"));
}

#[test]
fn a_hanging_test_is_reported_as_timeout() {
    let Some(flat) = flat() else { return };
    if !is_pvm() {
        skip("vmcall only hangs on PVM hosts");
        return;
    }
    let out = exitscope(&["bench", "--kut", &flat, "vmcall", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("vmcall ") && l.contains("timeout")), "{text}");
    assert!(text.contains("after the 5 s deadline: vCPU 0 at RIP"), "{text}");
}
