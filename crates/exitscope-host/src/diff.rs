//! What differs between two fingerprints, and which differences make an A/B comparison one
//! of unlike environments.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Fingerprint, format_cpu_list};

/// How much a difference matters to an A/B comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The two results come from different configurations that are known to move exit
    /// costs by more than the effects usually looked for (CPU, microcode, kernel,
    /// mitigations, KVM module or parameters, nesting): an unlike comparison.
    Unlike,
    /// Worth knowing (frequency scaling, SMT, TSC, placement, load, versions), or unknown on
    /// one side.
    Note,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What kind of setting: `CPU model`, `microcode`, `kernel`, `mitigations`,
    /// `KVM module`, `KVM parameters`, `virtualization`, `kernel command line`,
    /// `frequency scaling`, `SMT`, `CPUs`, `TSC`, `vCPU placement`, `load`,
    /// `exitscope version`, `fingerprint`.
    pub category: String,
    /// The field, as a JSON path into [`Fingerprint`] (`cpu.microcode`,
    /// `vulnerabilities.spectre_v2`, `kvm_modules.kvm.tdp_mmu`).
    pub field: String,
    /// A's value (`null` if unknown).
    pub a: Option<String>,
    /// B's value.
    pub b: Option<String>,
    /// Whether it makes the comparison unlike; a value unknown on one side is only a note.
    pub severity: Severity,
}

const ABSENT: &str = "(absent)";
const UNREADABLE: &str = "(unreadable)";

struct Collector(Vec<Difference>);

impl Collector {
    fn push(
        &mut self,
        category: &str,
        field: &str,
        a: Option<String>,
        b: Option<String>,
        s: Severity,
    ) {
        if a == b {
            return;
        }
        let severity = if a.is_none() || b.is_none() { Severity::Note } else { s };
        self.0.push(Difference { category: category.into(), field: field.into(), a, b, severity });
    }

    fn map(
        &mut self,
        category: &str,
        prefix: &str,
        a: &BTreeMap<String, Option<String>>,
        b: &BTreeMap<String, Option<String>>,
        severity: impl Fn(Option<&str>, Option<&str>) -> Severity,
    ) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let show = |m: &BTreeMap<String, Option<String>>| match m.get(key) {
                None => ABSENT.to_string(),
                Some(None) => UNREADABLE.to_string(),
                Some(Some(v)) => v.clone(),
            };
            let (va, vb) = (show(a), show(b));
            let s = severity(
                a.get(key).cloned().flatten().as_deref(),
                b.get(key).cloned().flatten().as_deref(),
            );
            self.push(category, &format!("{prefix}.{key}"), Some(va), Some(vb), s);
        }
    }
}

fn s<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Every difference between `a` and `b`, unlike ones first within the field order of
/// [`Fingerprint`]. A side without any fingerprint gives one note instead of a list.
pub fn differences(a: &Fingerprint, b: &Fingerprint) -> Vec<Difference> {
    use Severity::{Note, Unlike};
    let mut c = Collector(Vec::new());
    if a.is_empty() || b.is_empty() {
        if a.is_empty() != b.is_empty() {
            let has =
                |f: &Fingerprint| Some(if f.is_empty() { "none" } else { "recorded" }.to_string());
            c.push("fingerprint", "host", has(a), has(b), Note);
        }
        return c.0;
    }
    let (ca, cb) = (&a.cpu, &b.cpu);
    c.push("CPU model", "cpu.vendor", ca.vendor.clone(), cb.vendor.clone(), Unlike);
    c.push("CPU model", "cpu.family", s(ca.family), s(cb.family), Unlike);
    c.push("CPU model", "cpu.model", s(ca.model), s(cb.model), Unlike);
    c.push("CPU model", "cpu.stepping", s(ca.stepping), s(cb.stepping), Unlike);
    c.push("CPU model", "cpu.model_name", ca.model_name.clone(), cb.model_name.clone(), Unlike);
    c.push("microcode", "cpu.microcode", ca.microcode.clone(), cb.microcode.clone(), Unlike);
    c.push("kernel", "os.release", a.os.release.clone(), b.os.release.clone(), Unlike);
    c.push("kernel", "os.version", a.os.version.clone(), b.os.version.clone(), Unlike);
    c.push(
        "virtualization",
        "virtualization",
        s(a.virtualization.map(|v| v.as_str())),
        s(b.virtualization.map(|v| v.as_str())),
        Unlike,
    );
    match (&a.vulnerabilities, &b.vulnerabilities) {
        (Some(va), Some(vb)) => {
            // A file only one kernel has is a real difference only if it mitigates something.
            let affects = |x: Option<&str>| x.is_some_and(|t| !t.starts_with("Not affected"));
            c.map("mitigations", "vulnerabilities", va, vb, |x, y| {
                if affects(x) || affects(y) { Unlike } else { Note }
            });
        }
        (va, vb) => c.push(
            "mitigations",
            "vulnerabilities",
            va.as_ref().map(|_| "recorded".into()),
            vb.as_ref().map(|_| "recorded".into()),
            Note,
        ),
    }
    match (&a.kvm_modules, &b.kvm_modules) {
        (Some(ma), Some(mb)) => {
            let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for name in names {
                match (ma.get(name), mb.get(name)) {
                    (Some(pa), Some(pb)) => {
                        c.map("KVM parameters", &format!("kvm_modules.{name}"), pa, pb, |_, _| {
                            Unlike
                        });
                    }
                    (pa, pb) => {
                        let loaded = |p: Option<&BTreeMap<String, Option<String>>>| {
                            Some(if p.is_some() { "loaded" } else { "not loaded" }.to_string())
                        };
                        c.push(
                            "KVM module",
                            &format!("kvm_modules.{name}"),
                            loaded(pa),
                            loaded(pb),
                            Unlike,
                        );
                    }
                }
            }
        }
        (ma, mb) => c.push(
            "KVM module",
            "kvm_modules",
            ma.as_ref().map(|_| "recorded".into()),
            mb.as_ref().map(|_| "recorded".into()),
            Note,
        ),
    }
    c.push("kernel command line", "os.cmdline", a.os.cmdline.clone(), b.os.cmdline.clone(), Note);
    let freq = |f: &Fingerprint| {
        f.cpufreq.as_ref().map(|c| {
            let g: Vec<String> =
                c.governors.iter().map(|(g, cpus)| format!("{g} on {cpus}")).collect();
            format!(
                "driver {}, governors [{}], boost {}",
                c.driver.as_deref().unwrap_or("unknown"),
                g.join(", "),
                c.boost.map_or("unknown", |b| if b { "on" } else { "off" })
            )
        })
    };
    let no_freq = |f: &Fingerprint| f.cpufreq.is_none() && f.vulnerabilities.is_some();
    // A kernel without cpufreq (a VM) is a known "none", not an unknown.
    let freq_or_none = |f: &Fingerprint| freq(f).or_else(|| no_freq(f).then(|| "none".into()));
    c.push("frequency scaling", "cpufreq", freq_or_none(a), freq_or_none(b), Note);
    c.push("SMT", "smt.control", a.smt.control.clone(), b.smt.control.clone(), Note);
    c.push("SMT", "smt.active", s(a.smt.active), s(b.smt.active), Note);
    c.push("CPUs", "online_cpus", a.online_cpus.clone(), b.online_cpus.clone(), Note);
    c.push("TSC", "tsc.khz", s(a.tsc.khz), s(b.tsc.khz), Note);
    c.push("TSC", "tsc.clocksource", a.tsc.clocksource.clone(), b.tsc.clocksource.clone(), Note);
    let pinned = |f: &Fingerprint| {
        f.vcpu.as_ref().map(|v| v.pinned.map_or("not pinned".to_string(), |c| format!("CPU {c}")))
    };
    c.push("vCPU placement", "vcpu.pinned", pinned(a), pinned(b), Note);
    let seen = |f: &Fingerprint| {
        f.vcpu.as_ref().filter(|v| !v.cpus_seen.is_empty()).map(|v| format_cpu_list(&v.cpus_seen))
    };
    c.push("vCPU placement", "vcpu.cpus_seen", seen(a), seen(b), Note);
    let sched = |f: &Fingerprint| f.vcpu.as_ref().and_then(|v| v.sched.clone());
    c.push("vCPU placement", "vcpu.sched", sched(a), sched(b), Note);
    let load = |f: &Fingerprint| f.loadavg.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]));
    // Load always differs a little; one runnable task more or less is worth a note.
    let load_differs = match (a.loadavg, b.loadavg) {
        (Some(x), Some(y)) => (x[0] - y[0]).abs() >= 1.0,
        (None, None) => false,
        _ => true,
    };
    if load_differs {
        c.push("load", "loadavg", load(a), load(b), Note);
    }
    c.push(
        "exitscope version",
        "exitscope_version",
        a.exitscope_version.clone(),
        b.exitscope_version.clone(),
        Note,
    );
    let mut all = c.0;
    all.sort_by_key(|d| d.severity != Severity::Unlike);
    all
}

/// The distinct categories of the unlike differences, in order: what to name in an
/// "unlike comparison" warning.
pub fn unlike_categories(diffs: &[Difference]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for d in diffs.iter().filter(|d| d.severity == Severity::Unlike) {
        if !out.contains(&d.category.as_str()) {
            out.push(&d.category);
        }
    }
    out
}
