//! Runs the real VMM on /dev/kvm. Prints `SKIP: <reason>` where KVM is unavailable, and
//! fails instead under `EXITSCOPE_REQUIRE_HW=1`.

use std::time::Duration;

use exitscope_vmm::{Cpl, Options, Status, run_iterations, run_test};

fn hw() -> Option<Options> {
    let opts = Options::default().with_min_cycles(1 << 22).with_repeat(3);
    match exitscope_vmm::probe(&opts) {
        Ok(_) => Some(opts),
        Err(e) => {
            assert!(
                std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
                "EXITSCOPE_REQUIRE_HW=1 but KVM is unavailable: {e}"
            );
            println!("SKIP: {e}");
            None
        }
    }
}

/// False on PVM hosts without CPUID faulting, where CPL3 CPUID never reaches KVM.
fn cpuid_intercepted() -> bool {
    let pvm = exitscope_vmm::Flavour::detect_in("/".as_ref()) == exitscope_vmm::Flavour::Pvm;
    let fault =
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default().contains("cpuid_fault");
    !pvm || fault
}

#[test]
fn inl_from_kernel_causes_one_exit_per_iteration() {
    let Some(opts) = hw() else { return };
    let r = run_test("inl_from_kernel", &opts).unwrap();
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    let e = r.exits_per_iteration.unwrap();
    assert!((0.9..1.2).contains(&e), "exits/iter {e}");
    // A signal or host event can send a stray exit to userspace; the loop's own exits must not.
    let user = r.userspace_exits_per_iteration.unwrap();
    assert!(user < 0.01, "userspace exits/iter {user}");
}

#[test]
fn cpuid_causes_one_exit_per_iteration() {
    let Some(opts) = hw() else { return };
    let r = run_test("cpuid", &opts).unwrap();
    println!("{r:#?}");
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    let e = r.exits_per_iteration.unwrap();
    if cpuid_intercepted() {
        assert!((0.9..1.2).contains(&e), "exits/iter {e}");
    } else {
        // PVM without CPUID faulting: CPUID goes to L0 and the report must say so.
        assert!(e < 0.1, "exits/iter {e}");
        assert!(r.reason.unwrap().contains("cpuid_fault"));
    }
    assert!(r.cycles_median.unwrap() > 100.0);
}

#[test]
fn nop_causes_no_exit() {
    let Some(opts) = hw() else { return };
    let r = run_test("nop", &opts).unwrap();
    println!("{r:#?}");
    assert_eq!(r.status, Status::Ok, "{:?}", r.reason);
    assert!(r.exits_per_iteration.unwrap() < 0.01);
}

#[test]
fn ud2_is_reported_with_vector_and_rip() {
    let Some(opts) = hw() else { return };
    let r = run_test("fault_ud", &opts).unwrap();
    assert_eq!(r.status, Status::Failed);
    let f = r.fault.unwrap();
    assert_eq!(f.vector, 6);
    let body = exitscope_vmm::BenchVm::new(
        &exitscope_vmm::open_kvm(&opts.kvm_device).unwrap(),
        exitscope_vmm::find("fault_ud").unwrap(),
        Cpl::Three,
        exitscope_guest::Vendor::Intel,
    )
    .unwrap()
    .image()
    .body
    .clone();
    assert_eq!(f.rip, body.start);
    assert!(r.reason.unwrap().contains("#UD"));
}

#[test]
fn hang_is_stopped_by_the_deadline() {
    let Some(opts) = hw() else { return };
    let opts = opts.with_timeout(Duration::from_millis(500));
    let t = std::time::Instant::now();
    let r = run_test("hang", &opts).unwrap();
    assert_eq!(r.status, Status::Timeout, "{:?}", r.reason);
    assert!(r.reason.unwrap().contains("stopped"));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn run_iterations_runs_exactly_n() {
    let Some(opts) = hw() else { return };
    let bench = exitscope_vmm::find("inl_from_vmm").unwrap();
    let cpl = if exitscope_vmm::Flavour::detect_in("/".as_ref()) == exitscope_vmm::Flavour::Pvm {
        Cpl::Three
    } else {
        Cpl::Zero
    };
    let r = run_iterations(bench, cpl, 100, &opts).unwrap();
    assert_eq!(r.iterations, 100);
    assert_eq!(r.userspace_exits, 101);
}
