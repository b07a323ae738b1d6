//! The environment fingerprint of an exitscope measurement.
//!
//! # Brief overview
//!
//! An exit's cost moves with things that are not the change being measured: mitigation
//! settings alone move one by 20–60 %, microcode and KVM module parameters by as much,
//! nesting by 10–25×, frequency scaling by a few percent. A [`Fingerprint`] records them, so
//! every result says where it was measured and [`differences`] can say whether two results
//! are comparable at all.
//!
//! Everything is read from `/proc` and `/sys` ([`Fingerprint::collect`]), or from a copy of
//! them under another root ([`Fingerprint::collect_in`], which the tests use on fake trees).
//! A field that is absent or unreadable is `None` (`null` in JSON), never guessed. CPU
//! identity comes from the first processor in `/proc/cpuinfo`. Facts only the caller knows
//! (the TSC rate KVM reports, where the vCPU thread ran) are left `None` for it to fill in.
//!
//! ```
//! use exitscope_host::{Fingerprint, Severity, differences};
//! let here = Fingerprint::collect();
//! println!("{here}"); // a short header for terminal output
//! let mut there = here.clone();
//! there.cpu.microcode = Some("0xdeadbeef".into());
//! let d = differences(&here, &there);
//! assert!(d.iter().any(|d| d.category == "microcode" && d.severity == Severity::Unlike));
//! ```
//!
//! JSON field names are stable; see [`Fingerprint`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod diff;
mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use diff::{Difference, Severity, differences, unlike_categories};
pub use read::{allowed_cpus, format_cpu_list, parse_cpu_list, sched_policy, thread_sched_policy};

/// What a recording's host tag starts with ([`Fingerprint::to_tag`]).
pub const TAG_PREFIX: &str = "exitscope host: ";

/// Where and under what settings a measurement ran.
///
/// Serialized as one JSON object (`host` in bench results); every field may be `null`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Fingerprint {
    /// Version of the exitscope that wrote this.
    pub exitscope_version: Option<String>,
    /// `/proc/sys/kernel/hostname`: which machine of a fleet this is (the `host` column of
    /// the Parquet export, the `--by host` key of `exitscope merge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// CPU identity from `/proc/cpuinfo`.
    pub cpu: Cpu,
    /// The running kernel.
    pub os: Os,
    /// Every loaded module named `kvm*` (`/sys/module/kvm*`) with its parameters
    /// (`parameters/*`; an unreadable parameter is `null`). `null` if `/sys/module` cannot be
    /// read; empty if no KVM module is loaded.
    pub kvm_modules: Option<BTreeMap<String, BTreeMap<String, Option<String>>>>,
    /// Bare metal, nested or PVM (derived from the cpuinfo `hypervisor` flag and the modules).
    pub virtualization: Option<Virtualization>,
    /// `/sys/devices/system/cpu/vulnerabilities/*`: name → the kernel's mitigation text.
    pub vulnerabilities: Option<BTreeMap<String, Option<String>>>,
    /// Frequency scaling; `null` when the kernel exposes none (typical inside VMs).
    pub cpufreq: Option<Cpufreq>,
    /// Simultaneous multithreading.
    pub smt: Smt,
    /// `/sys/devices/system/cpu/online`, e.g. `"0-3"`.
    pub online_cpus: Option<String>,
    /// The time-stamp counter.
    pub tsc: Tsc,
    /// 1, 5 and 15 minute load averages from `/proc/loadavg` when collected.
    pub loadavg: Option<[f64; 3]>,
    /// Where the measuring vCPU thread ran; filled in by the benchmark, `null` elsewhere.
    pub vcpu: Option<VcpuPlacement>,
}

/// CPU identity (first processor of `/proc/cpuinfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// `vendor_id`, e.g. `GenuineIntel`, `AuthenticAMD`.
    pub vendor: Option<String>,
    /// `cpu family` (decimal).
    pub family: Option<u32>,
    /// `model` (decimal).
    pub model: Option<u32>,
    /// `stepping`.
    pub stepping: Option<u32>,
    /// `model name`.
    pub model_name: Option<String>,
    /// `microcode` revision as printed, e.g. `0x2b0005c0`.
    pub microcode: Option<String>,
    /// The `hypervisor` flag: this kernel itself runs in a VM.
    pub hypervisor_flag: Option<bool>,
    /// The `cpuid_fault` flag: CPUID at CPL3 can be made to fault (and so to exit under PVM).
    pub cpuid_fault: Option<bool>,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Os {
    /// `/proc/sys/kernel/osrelease`.
    pub release: Option<String>,
    /// `/proc/sys/kernel/version` (build number and date).
    pub version: Option<String>,
    /// `/proc/cmdline`.
    pub cmdline: Option<String>,
}

/// How this kernel's KVM relates to the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Virtualization {
    /// No `hypervisor` flag: KVM runs on the hardware.
    BareMetal,
    /// KVM (`kvm_intel`/`kvm_amd`) inside a VM: exits go through the outer hypervisor.
    Nested,
    /// `kvm_pvm`: pagetable-based paravirtualized KVM (guest CPL0 emulated), normally nested.
    Pvm,
    /// Inside a VM without a KVM vendor module.
    GuestWithoutKvm,
}

impl Virtualization {
    /// Short description.
    pub fn as_str(self) -> &'static str {
        match self {
            Virtualization::BareMetal => "bare metal",
            Virtualization::Nested => "nested",
            Virtualization::Pvm => "PVM",
            Virtualization::GuestWithoutKvm => "guest without KVM",
        }
    }
}

/// Frequency scaling.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpufreq {
    /// `cpu0/cpufreq/scaling_driver`.
    pub driver: Option<String>,
    /// Governor → the CPUs using it, e.g. `{"performance": "0-3", "powersave": "4-7"}`.
    pub governors: BTreeMap<String, String>,
    /// Turbo/boost enabled (`cpufreq/boost`, or the inverse of `intel_pstate/no_turbo`).
    pub boost: Option<bool>,
}

/// Simultaneous multithreading (`/sys/devices/system/cpu/smt`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Smt {
    /// `smt/control`: `on`, `off`, `forceoff`, `notsupported`, `notimplemented`.
    pub control: Option<String>,
    /// `smt/active`.
    pub active: Option<bool>,
}

/// The time-stamp counter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tsc {
    /// TSC rate in kHz.
    pub khz: Option<u32>,
    /// Where `khz` came from: `KVM_GET_TSC_KHZ` (set by the benchmark) or
    /// `cpu0/tsc_freq_khz` (sysfs, on kernels that have it).
    pub khz_source: Option<String>,
    /// `constant_tsc` flag.
    pub constant: Option<bool>,
    /// `nonstop_tsc` flag.
    pub nonstop: Option<bool>,
    /// `clocksource0/current_clocksource`.
    pub clocksource: Option<String>,
}

/// Where a measuring thread ran.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VcpuPlacement {
    /// The CPU it was pinned to (`--pin`), or `null` if the scheduler chose.
    pub pinned: Option<u32>,
    /// Its affinity mask (`Cpus_allowed_list`), e.g. `"0-1"`.
    pub cpus_allowed: Option<String>,
    /// CPUs it was seen on, sampled after every measured loop (`/proc/thread-self/stat`
    /// field 39); a migration between two samples can go unseen unless it was pinned.
    pub cpus_seen: Vec<u32>,
    /// Its scheduling policy, e.g. `SCHED_OTHER nice 0` or `SCHED_FIFO priority 1` (fields 19,
    /// 40 and 41 of `/proc/<pid>/task/<tid>/stat`).
    pub sched: Option<String>,
}

impl Fingerprint {
    /// Reads this machine's fingerprint from `/`.
    pub fn collect() -> Fingerprint {
        Fingerprint::collect_in(Path::new("/"))
    }

    /// Reads the fingerprint from `root/proc` and `root/sys`.
    pub fn collect_in(root: &Path) -> Fingerprint {
        read::collect(root)
    }

    /// True if nothing at all is known (e.g. a result written before fingerprints existed).
    pub fn is_empty(&self) -> bool {
        *self == Fingerprint::default()
    }

    /// The KVM vendor module, if exactly one of `kvm_intel`, `kvm_amd`, `kvm_pvm` is loaded
    /// (`kvm_pvm` wins: it is loaded next to the others on PVM hosts).
    pub fn kvm_vendor_module(&self) -> Option<&str> {
        let modules = self.kvm_modules.as_ref()?;
        ["kvm_pvm", "kvm_intel", "kvm_amd"].into_iter().find(|m| modules.contains_key(*m))
    }

    /// The fingerprint as a recording carries it: [`TAG_PREFIX`] and the fingerprint as one
    /// line of JSON (text traces put it after `# ` on their first line, trace.dat files in an
    /// option of their own).
    pub fn to_tag(&self) -> String {
        // Serializing plain structs of strings, numbers and maps cannot fail.
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        format!("{TAG_PREFIX}{json}")
    }

    /// The fingerprint of a tag written by [`Fingerprint::to_tag`]: `None` when `tag` does not
    /// start with [`TAG_PREFIX`] (it is something else), an error when what follows is not a
    /// fingerprint. Fields this version does not know are ignored, missing ones are `null`.
    ///
    /// # Errors
    ///
    /// The JSON error (with its column, counted from the start of the JSON).
    pub fn from_tag(tag: &str) -> Option<Result<Fingerprint, serde_json::Error>> {
        let json = tag.strip_prefix(TAG_PREFIX)?;
        Some(serde_json::from_str(json.trim_end()))
    }

    /// Vulnerability names whose text starts with `prefix` ("Mitigation", "Vulnerable",
    /// "Not affected").
    pub fn vulnerabilities_starting_with(&self, prefix: &str) -> Vec<&str> {
        self.vulnerabilities
            .iter()
            .flatten()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| v.starts_with(prefix)))
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

fn or_unknown<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

impl Fingerprint {
    /// One line for the head of a report: CPU, microcode, kernel, KVM module and nesting,
    /// e.g. `AMD EPYC 9B14 (microcode 0xa101148), kernel 6.18.44, kvm_pvm (PVM)`.
    pub fn short(&self) -> String {
        let c = &self.cpu;
        format!(
            "{} (microcode {}), kernel {}, {} ({})",
            or_unknown(c.model_name.as_deref()),
            or_unknown(c.microcode.as_deref()),
            or_unknown(self.os.release.as_deref()),
            self.kvm_vendor_module().unwrap_or("no KVM module"),
            or_unknown(self.virtualization.map(Virtualization::as_str)),
        )
    }
}

/// A short multi-line header for terminal output: `host:`, `kvm:`, `mitigations:`, `run:`.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.cpu;
        writeln!(
            f,
            "host: {} ({} family {} model {} stepping {}, microcode {}), kernel {}",
            or_unknown(c.model_name.as_deref()),
            or_unknown(c.vendor.as_deref()),
            or_unknown(c.family),
            or_unknown(c.model),
            or_unknown(c.stepping),
            or_unknown(c.microcode.as_deref()),
            or_unknown(self.os.release.as_deref()),
        )?;
        let tsc = match (self.tsc.khz, &self.tsc.khz_source) {
            (Some(k), Some(s)) => format!("{k} kHz ({s})"),
            (Some(k), None) => format!("{k} kHz"),
            _ => "unknown".into(),
        };
        writeln!(
            f,
            "kvm: {}, {}; TSC {tsc}, clocksource {}",
            or_unknown(self.kvm_vendor_module()),
            or_unknown(self.virtualization.map(Virtualization::as_str)),
            or_unknown(self.tsc.clocksource.as_deref()),
        )?;
        match &self.vulnerabilities {
            None => writeln!(f, "mitigations: unknown")?,
            Some(all) => {
                let vulnerable = self.vulnerabilities_starting_with("Vulnerable");
                let mitigated = self.vulnerabilities_starting_with("Mitigation");
                writeln!(
                    f,
                    "mitigations: {} of {} mitigated ({}), {} vulnerable{}{}",
                    mitigated.len(),
                    all.len(),
                    mitigated.join(", "),
                    vulnerable.len(),
                    if vulnerable.is_empty() { "" } else { ": " },
                    vulnerable.join(", "),
                )?;
            }
        }
        let governors = match &self.cpufreq {
            None => "none".to_string(),
            Some(c) if c.governors.is_empty() => or_unknown(c.driver.as_deref()),
            Some(c) => c
                .governors
                .iter()
                .map(|(g, cpus)| format!("{g} on {cpus}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let placement = match &self.vcpu {
            None => "unknown".to_string(),
            Some(v) => {
                let seen = if v.cpus_seen.is_empty() {
                    "unknown".to_string()
                } else {
                    format_cpu_list(&v.cpus_seen)
                };
                let sched = v.sched.as_deref().map(|s| format!(", {s}")).unwrap_or_default();
                match v.pinned {
                    Some(cpu) => format!("pinned to CPU {cpu}, ran on {seen}{sched}"),
                    None => format!("not pinned, ran on {seen}{sched}"),
                }
            }
        };
        let load = self.loadavg.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]));
        write!(
            f,
            "run: vCPU {placement}; SMT {}; cpufreq {governors}; load average {}; exitscope {}",
            or_unknown(self.smt.control.as_deref()),
            or_unknown(load),
            or_unknown(self.exitscope_version.as_deref()),
        )
    }
}

#[cfg(test)]
mod tests;
