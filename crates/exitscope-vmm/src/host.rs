//! What kind of host this is: KVM flavour (VMX, SVM or PVM), CPU model, TSC rate, load, and
//! the full environment fingerprint (`exitscope-host`).

use std::path::Path;

use exitscope_host::Fingerprint;
use serde::Serialize;

/// Which KVM vendor module runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// Intel VT-x (`kvm_intel`).
    Vmx,
    /// AMD-V (`kvm_amd`).
    Svm,
    /// Pagetable-based Virtual Machine (`kvm_pvm`): the guest always runs at hardware CPL3;
    /// guest CPL0 code is emulated.
    Pvm,
    /// None of the above could be identified.
    Unknown,
}

impl Flavour {
    /// Detects the flavour from `/sys/module` under `sys_root` (normally `/`).
    pub fn detect_in(sys_root: &Path) -> Flavour {
        let has = |m: &str| sys_root.join("sys/module").join(m).exists();
        if has("kvm_pvm") {
            Flavour::Pvm
        } else if has("kvm_intel") {
            Flavour::Vmx
        } else if has("kvm_amd") {
            Flavour::Svm
        } else {
            Flavour::Unknown
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::Vmx => "vmx",
            Flavour::Svm => "svm",
            Flavour::Pvm => "pvm",
            Flavour::Unknown => "unknown",
        }
    }
}

/// Facts about the host that go into every report.
///
/// The first six fields are what the benchmark itself uses; the [`Fingerprint`]'s fields
/// follow them in the same JSON object (`host`), so readers of either find what they expect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    /// KVM flavour.
    pub kvm_flavour: Flavour,
    /// Guest TSC rate from `KVM_GET_TSC_KHZ` (None if KVM could not say).
    pub tsc_khz: Option<u32>,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// True for AMD/Hygon hosts (`vmmcall` instead of `vmcall`).
    pub amd: bool,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// 1, 5 and 15 minute load averages when the report was started.
    pub load_average: [f64; 3],
    /// Everything else known about the environment (microcode, KVM parameters, mitigations,
    /// nesting, frequency scaling, where the vCPU threads ran), flattened into `host`.
    #[serde(flatten)]
    pub fingerprint: Fingerprint,
}

/// `model name` and AMD-ness from /proc/cpuinfo text.
pub fn parse_cpuinfo(text: &str) -> (String, bool) {
    let field = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown".into());
    let vendor = field("vendor_id").unwrap_or_default();
    (model, vendor == "AuthenticAMD" || vendor == "HygonGenuine")
}

/// The three load averages from /proc/loadavg text.
pub fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut it = text.split_whitespace().map(|s| s.parse().unwrap_or(f64::NAN));
    [it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN)]
}

/// Current load averages (NaN if /proc/loadavg is unreadable).
pub fn load_average() -> [f64; 3] {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default())
}

impl HostInfo {
    /// Reads everything but the TSC rate, which needs a vCPU (see [`crate::probe`]).
    pub fn detect() -> HostInfo {
        let (cpu_model, amd) =
            parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
        let fingerprint = Fingerprint::collect();
        HostInfo {
            kvm_flavour: Flavour::detect_in(Path::new("/")),
            tsc_khz: None,
            cpu_model,
            amd,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            // The same reading as the fingerprint's, so the two never disagree.
            load_average: fingerprint.loadavg.unwrap_or([f64::NAN; 3]),
            fingerprint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_and_loadavg() {
        let t = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon Processor\n";
        assert_eq!(parse_cpuinfo(t), ("Intel Xeon Processor".into(), false));
        let t = "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654\n";
        assert_eq!(parse_cpuinfo(t), ("AMD EPYC 9654".into(), true));
        assert_eq!(parse_loadavg("0.13 0.10 0.03 1/123 456\n"), [0.13, 0.10, 0.03]);
        assert!(parse_loadavg("")[0].is_nan());
    }

    #[test]
    fn flavour_from_sys_module() {
        let root = std::env::temp_dir().join(format!("exitscope-flavour-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sys/module/kvm_intel")).unwrap();
        assert_eq!(Flavour::detect_in(&root), Flavour::Vmx);
        std::fs::create_dir_all(root.join("sys/module/kvm_pvm")).unwrap();
        assert_eq!(Flavour::detect_in(&root), Flavour::Pvm);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(Flavour::detect_in(&root), Flavour::Unknown);
    }
}
