//! The kvm-unit-tests boot on real KVM: hand-made multiboot images (assembled here with
//! iced-x86) that check the boot state and the devices, and kvm-unit-tests' own
//! `vmexit.flat` from `../shared/kut` (or `EXITSCOPE_KUT_FLAT`) when it is present.
//! Each test prints `SKIP: <reason>` where KVM or the image is missing, and fails instead
//! under `EXITSCOPE_REQUIRE_HW=1`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use exitscope_vmm::kut::{KutConfig, KutEnd, KutRun, KutTest, run};
use iced_x86::code_asm::*;

fn require_hw() -> bool {
    std::env::var_os("EXITSCOPE_REQUIRE_HW").is_some_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!require_hw(), "EXITSCOPE_REQUIRE_HW=1 but {why}");
    println!("SKIP: {why}");
}

fn have_kvm() -> bool {
    match exitscope_vmm::probe(&exitscope_vmm::Options::default()) {
        Ok(_) => true,
        Err(e) => {
            skip(&format!("KVM unavailable: {e}"));
            false
        }
    }
}

/// kvm-unit-tests' vmexit.flat, if present.
fn vmexit_flat() -> Option<PathBuf> {
    if !have_kvm() {
        return None;
    }
    let path = std::env::var_os("EXITSCOPE_KUT_FLAT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kut/vmexit.flat"),
        PathBuf::from,
    );
    if path.is_file() {
        Some(path)
    } else {
        skip(&format!("{} not found (set EXITSCOPE_KUT_FLAT)", path.display()));
        None
    }
}

fn is_pvm() -> bool {
    exitscope_vmm::Flavour::detect_in("/".as_ref()) == exitscope_vmm::Flavour::Pvm
}

/// Load address of the hand-made images.
const BASE: u32 = 0x10_0000;

/// A multiboot ELF32 image whose only segment holds `code` at [`BASE`], plus `bss`.
fn image(code: &[u8], bss: u32) -> Vec<u8> {
    let len = u32::try_from(code.len()).unwrap();
    exitscope_vmm::kut::multiboot::write_elf32(BASE, &[(BASE, code, len + bss)], &[])
}

fn write_image(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("exitscope-kut-{}-{name}.elf", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// 32-bit code at BASE: `body`, assembled.
fn code32(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(32).unwrap();
    body(&mut a).unwrap();
    a.assemble(u64::from(BASE)).unwrap()
}

/// Polls LSR then writes `al` to COM1, like kvm-unit-tests' serial_outb.
fn putc(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut wait = a.create_label();
    a.mov(ecx, eax)?;
    a.set_label(&mut wait)?;
    a.mov(dx, 0x3fdu32)?;
    a.in_(al, dx)?;
    a.test(al, 0x20)?;
    a.jz(wait)?;
    a.mov(eax, ecx)?;
    a.mov(dx, 0x3f8u32)?;
    a.out(dx, al)
}

/// Exits through isa-debug-exit with `eax` as the code.
fn exit_eax(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(dx, 0xf4u32)?;
    a.out(dx, eax)?;
    let mut spin = a.create_label();
    a.set_label(&mut spin)?;
    a.hlt()?;
    a.jmp(spin)
}

#[test]
fn boot_state_cmdline_and_mem_upper_reach_the_guest() {
    if !have_kvm() {
        return;
    }
    // Echo the command line to the serial port, then exit with mem_upper (or 1 if EAX
    // does not hold the multiboot loader magic).
    let code = code32(|a| {
        let mut bad = a.create_label();
        let mut next = a.create_label();
        let mut done = a.create_label();
        a.cmp(eax, 0x2bad_b002u32)?;
        a.jne(bad)?;
        a.mov(esi, dword_ptr(ebx + 16))?;
        a.set_label(&mut next)?;
        a.movzx(eax, byte_ptr(esi))?;
        a.test(al, al)?;
        a.jz(done)?;
        putc(a)?;
        a.inc(esi)?;
        a.jmp(next)?;
        a.set_label(&mut done)?;
        a.mov(eax, 10u32)?;
        putc(a)?;
        a.mov(eax, dword_ptr(ebx + 8))?;
        exit_eax(a)?;
        a.set_label(&mut bad)?;
        a.mov(eax, 1u32)?;
        exit_eax(a)
    });
    let path = write_image("echo", &image(&code, 0));
    let config = KutConfig::new(&path).with_tests(["cpuid", "mov_dr"]).with_mem_mib(64);
    let out = run(&config, |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    let lines: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
    let prog = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(lines, [format!("{prog} cpuid mov_dr")]);
    let mem_upper = (64 - 1) * 1024;
    assert_eq!(out.end, KutEnd::Exited { code: mem_upper, status: ((mem_upper << 1) | 1) as u8 });
    assert_eq!(out.vcpu_tids.len(), 1);
    assert_ne!(out.vcpu_tids[0], 0);
}

#[test]
fn fw_cfg_tells_the_guest_its_vcpu_count() {
    if !have_kvm() {
        return;
    }
    // outw(NB_CPUS, 0x510); exit(inb(0x511) | inb(0x511) << 8).
    let code = code32(|a| {
        a.mov(eax, 5u32)?;
        a.mov(dx, 0x510u32)?;
        a.out(dx, ax)?;
        a.mov(dx, 0x511u32)?;
        a.in_(al, dx)?;
        a.movzx(ebx, al)?;
        a.in_(al, dx)?;
        a.movzx(eax, al)?;
        a.shl(eax, 8)?;
        a.or(eax, ebx)?;
        exit_eax(a)
    });
    let path = write_image("fwcfg", &image(&code, 0x1000));
    let out = run(&KutConfig::new(&path).with_smp(3), |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.end, KutEnd::Exited { code: 3, status: 7 });
    assert_eq!(out.vcpu_tids.len(), 3);
}

#[test]
fn a_hung_guest_is_stopped_at_the_deadline_and_located() {
    if !have_kvm() {
        return;
    }
    let code = code32(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.jmp(l)
    });
    let path = write_image("hang", &image(&code, 0));
    let t = Instant::now();
    let config = KutConfig::new(&path).with_timeout(Duration::from_millis(800));
    let out = run(&config, |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    let KutEnd::Timeout { after_seconds, vcpus } = &out.end else { panic!("{:?}", out.end) };
    assert!((0.7..1.0).contains(after_seconds), "{after_seconds}");
    assert_eq!(vcpus.len(), 1);
    assert_eq!(vcpus[0].rip, Some(u64::from(BASE)));
    assert!(vcpus[0].instruction.as_deref().unwrap().starts_with("jmp"), "{vcpus:?}");
    assert!(out.stuck_vcpus.is_empty());
}

#[test]
fn a_paused_run_exposes_its_threads_and_stops_from_another_thread() {
    if !have_kvm() {
        return;
    }
    let code = code32(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.pause()?;
        a.jmp(l)
    });
    let path = write_image("stop", &image(&code, 0));
    let config = KutConfig::new(&path).with_smp(2).with_timeout(Duration::from_secs(60));
    let mut run = KutRun::spawn(&config, |_| {}).unwrap();
    let tids = run.vcpu_tids().to_vec();
    assert_eq!(tids.len(), 2);
    assert_ne!(tids[0], tids[1]);
    let pid = std::process::id();
    for tid in &tids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap();
        assert!(status.starts_with("kut-vcpu"), "{status}");
    }
    let stopper = run.stopper();
    run.start();
    let t = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stopper.stop();
    });
    let out = run.wait();
    std::fs::remove_file(&path).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    let KutEnd::Stopped { vcpus } = &out.end else { panic!("{:?}", out.end) };
    assert_eq!(vcpus.len(), 2);
    assert!(vcpus.iter().any(|v| v.rip.is_some_and(|r| r >= u64::from(BASE))));
}

#[test]
fn a_bad_image_names_the_offset() {
    let path = write_image("bad", b"\x7fELF\x02\x01\x01");
    let err = run(&KutConfig::new(&path), |_| {}).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(err.contains("byte offset 4") && err.contains("ELF32"), "{err}");
}

fn by<'a>(tests: &'a [KutTest], name: &str) -> &'a KutTest {
    tests.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing: {tests:?}"))
}

#[test]
fn vmexit_flat_runs_in_kernel_and_userspace_port_tests() {
    let Some(flat) = vmexit_flat() else { return };
    let config = KutConfig::new(flat).with_tests(["inl_from_qemu", "inl_from_kernel"]);
    let out = run(&config, |_| {}).unwrap();
    assert!(out.end.passed(), "{}", out.end.describe());
    let tests = out.tests();
    println!("{tests:#?}");
    let user = by(&tests, "inl_from_qemu");
    assert!(user.cycles.unwrap() > 100);
    // Counted by exitscope's own exit loop: exactly the guest's iterations.
    let per = user.userspace_exits_per_iteration.unwrap();
    assert!((0.99..1.01).contains(&per), "userspace exits/iter {per}");
    let exits = user.exits_per_iteration.unwrap();
    assert!((0.95..1.1).contains(&exits), "exits/iter {exits}");
    let kernel = by(&tests, "inl_from_kernel");
    assert!(kernel.userspace_exits_per_iteration.unwrap() < 0.01);
    let exits = kernel.exits_per_iteration.unwrap();
    if is_pvm() {
        // CPL0 is emulated: the in-kernel port read never leaves the emulator.
        assert!(exits < 0.2, "exits/iter {exits}");
        assert!(kernel.stats_per_iteration.get("insn_emulation").copied().unwrap_or(0.0) > 1.0);
    } else {
        assert!((0.95..1.1).contains(&exits), "exits/iter {exits}");
    }
}

#[test]
fn vmexit_flat_finds_the_pm_timer_through_acpi_and_skips_pci() {
    let Some(flat) = vmexit_flat() else { return };
    let config = KutConfig::new(flat).with_tests(["inl_from_pmtimer", "pci-mem"]);
    let out = run(&config, |_| {}).unwrap();
    assert!(out.end.passed(), "{}", out.end.describe());
    let lines: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
    assert!(lines.contains(&"PM timer port is b008"), "{lines:?}");
    assert!(lines.contains(&"pci-mem (skipped)"), "{lines:?}");
    let tests = out.tests();
    let pm = by(&tests, "inl_from_pmtimer");
    assert!(pm.cycles.unwrap() > 100);
    let per = pm.userspace_exits_per_iteration.unwrap();
    assert!((0.99..1.01).contains(&per), "{per}");
    assert!(by(&tests, "pci-mem").skipped);
}

#[test]
fn vmexit_flat_brings_up_an_ap_for_ipi() {
    let Some(flat) = vmexit_flat() else { return };
    let config = KutConfig::new(flat).with_tests(["ipi"]).with_smp(2);
    let out = run(&config, |_| {}).unwrap();
    assert!(out.end.passed(), "{}", out.end.describe());
    assert!(out.lines.iter().any(|l| l.text == "setup: CPU 1 online" && l.vcpu == 1));
    let tests = out.tests();
    let ipi = by(&tests, "ipi");
    assert!(ipi.cycles.unwrap() > 100);
    assert!(ipi.extras.contains_key("ipi"), "{ipi:?}");
    // The AP wakes from HLT for every IPI.
    assert!(ipi.other_vcpus_exits_per_iteration.unwrap() > 0.5, "{ipi:?}");
}

#[test]
fn vmexit_flat_vmcall_hangs_on_pvm_and_is_reported() {
    let Some(flat) = vmexit_flat() else { return };
    if !is_pvm() {
        let out = run(&KutConfig::new(flat).with_tests(["vmcall"]), |_| {}).unwrap();
        assert!(out.end.passed(), "{}", out.end.describe());
        assert!(by(&out.tests(), "vmcall").cycles.is_some());
        return;
    }
    // Stop the guest a few seconds after its setup is done (the `cr4 = ...` line of
    // setup_vm), whatever the load: by then it is in the vmcall test, stuck.
    let (tx, rx) = std::sync::mpsc::channel();
    let config = KutConfig::new(flat).with_tests(["vmcall"]).with_timeout(Duration::from_secs(120));
    let run = KutRun::spawn(&config, move |l| {
        if l.text.starts_with("cr4 = ") {
            let _ = tx.send(());
        }
    })
    .unwrap();
    let stopper = run.stopper();
    std::thread::spawn(move || {
        if rx.recv().is_ok() {
            std::thread::sleep(Duration::from_secs(4));
        }
        stopper.stop();
    });
    let out = run.wait();
    let KutEnd::Stopped { vcpus } = &out.end else { panic!("{:?}", out.end) };
    let insn = vcpus[0].instruction.as_deref().unwrap_or("");
    assert!(insn.contains("vmcall") || insn.contains("vmmcall"), "{vcpus:?}");
    assert!(out.tests().is_empty());
}
