//! What `bench --kut`, `run --kut` and `record --kut` share around exitscope-vmm's
//! kvm-unit-tests boot: exit codes for its errors, the boot as a recording target, the
//! plumbing ports the analysis keeps apart, and the summary of one boot.

use std::path::Path;

use exitscope_tracefs::Target;
use exitscope_vmm::HostInfo;
use exitscope_vmm::kut::{self, BootPlan, KutConfig, KutError, KutOutcome, PlanRuns};

use crate::exit::Failure;

/// The exit code of a boot that could not start: KVM or the machine is the environment (3),
/// the image and the configuration are the input (2).
pub fn failure(e: KutError) -> Failure {
    match e {
        KutError::Open(_) | KutError::Setup(_) | KutError::Thread(_) => Failure::environment(e),
        KutError::Read { .. }
        | KutError::Image { .. }
        | KutError::Config(_)
        | KutError::BootInfo(_) => Failure::input(e),
    }
}

/// What the traced boot's thread returns.
pub type KutTraced = Result<KutOutcome, KutError>;

/// Boot `config` on a thread of this process, for the tracefs `Recorder`: the thread is the
/// pid filter and the vCPU threads it creates are followed (function-fork / event-fork), so
/// exactly this guest is recorded. `echo` gets every guest line as it is printed.
pub fn boot_target(config: KutConfig, echo: fn(&str)) -> Target<KutTraced> {
    Target::Thread(Box::new(move || kut::run(&config, move |l| echo(&l.text))))
}

/// The ports of the VMM's own plumbing (serial console, isa-debug-exit, the shutdown port,
/// fw_cfg, PCI probing): exits on them are the harness, not the guest's test.
pub fn plumbing_ports() -> Vec<u16> {
    (0..=u16::MAX).filter(|p| kut::devices::device_at(*p).is_plumbing()).collect()
}

/// One boot's lines after the fact: the partial last line and how it ended.
pub fn finish_lines(outcome: &KutOutcome, echo: fn(&str)) {
    if let Some(p) = &outcome.partial_line {
        echo(p);
    }
    echo(&format!("# {} in {:.1} s", outcome.end.describe(), outcome.seconds));
}

/// The header line printed before a boot's guest lines.
pub fn boot_header(label: &str, config: &KutConfig) -> String {
    format!(
        "# {label}: -smp {} -m {} -append \"{}\"",
        config.smp,
        config.mem_mib,
        config.tests.join(" ")
    )
}

/// The bench report of `boots` of `config` (`source` = kvm-unit-tests).
pub fn summarize(
    config: &KutConfig,
    label: &str,
    boots: Vec<KutOutcome>,
    host: &HostInfo,
    kernel: &Path,
) -> exitscope_vmm::Report {
    let repeat = u32::try_from(boots.len()).unwrap_or(u32::MAX);
    let plan = BootPlan { label: label.into(), config: config.clone(), notes: Vec::new() };
    kut::summarize(&[PlanRuns { plan, boots }], host, kernel, repeat)
}

/// `TEST: N iterations (2N − 64 over the doubling rounds, last round M)` for each measured
/// test of `outcome`, as far as the image lets the VMM count them.
pub fn iteration_lines(outcome: &KutOutcome) -> Vec<String> {
    outcome
        .tests()
        .iter()
        .filter_map(|t| {
            let (n, w) = t.iterations.zip(t.window_iterations)?;
            Some(format!(
                "{}: {w} iterations in the guest (all doubling rounds, 2N − 64 with N = {n} in \
                 the last)",
                t.name
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plumbing_ports_are_the_consoles_and_firmware_not_the_tests() {
        let p = plumbing_ports();
        for port in [0x3f8, 0x3fd, 0xf4, 0x510, 0x511, 0xcf8, 0xcfc] {
            assert!(p.contains(&port), "{port:#x}");
        }
        // inl_from_kernel's ELCR, inl_from_qemu's 0x1234, the PM timer: the tests themselves.
        for port in [0x4d0, 0x1234, 0xb008] {
            assert!(!p.contains(&port), "{port:#x}");
        }
    }

    #[test]
    fn a_missing_kvm_is_the_environment_and_a_bad_config_the_input() {
        assert_eq!(failure(KutError::Config("x".into())).code, crate::exit::BAD_INPUT);
        assert_eq!(failure(KutError::Thread("x".into())).code, crate::exit::ENVIRONMENT);
    }
}
