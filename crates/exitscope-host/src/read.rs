//! Reading the fingerprint from a `/proc` + `/sys` tree.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Cpu, Cpufreq, Fingerprint, Os, Smt, Tsc, Virtualization};

/// A file's text without surrounding whitespace; `None` if absent or unreadable.
fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok().map(|s| s.trim().to_string())
}

/// Names in a directory, sorted; `None` if it cannot be listed.
fn list(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Some(names)
}

pub(crate) fn collect(root: &Path) -> Fingerprint {
    let cpuinfo = read(root, "proc/cpuinfo");
    let cpu = cpuinfo.as_deref().map(parse_cpuinfo).unwrap_or_default();
    let flags = cpuinfo.as_deref().and_then(|t| first_processor_field(t, "flags"));
    let has_flag = |name: &str| flags.map(|f| f.split_whitespace().any(|x| x == name));
    let kvm_modules = kvm_modules(root);
    let virtualization = classify(cpu.hypervisor_flag, kvm_modules.as_ref());
    Fingerprint {
        exitscope_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        hostname: read(root, "proc/sys/kernel/hostname"),
        os: Os {
            release: read(root, "proc/sys/kernel/osrelease"),
            version: read(root, "proc/sys/kernel/version"),
            cmdline: read(root, "proc/cmdline"),
        },
        kvm_modules,
        virtualization,
        vulnerabilities: text_files(&root.join("sys/devices/system/cpu/vulnerabilities")),
        cpufreq: cpufreq(root),
        smt: Smt {
            control: read(root, "sys/devices/system/cpu/smt/control"),
            active: read(root, "sys/devices/system/cpu/smt/active").and_then(|s| flag01(&s)),
        },
        online_cpus: read(root, "sys/devices/system/cpu/online"),
        tsc: {
            let khz = read(root, "sys/devices/system/cpu/cpu0/tsc_freq_khz")
                .and_then(|s| s.parse::<u32>().ok());
            Tsc {
                khz,
                khz_source: khz.map(|_| "cpu0/tsc_freq_khz".to_string()),
                constant: has_flag("constant_tsc"),
                nonstop: has_flag("nonstop_tsc"),
                clocksource: read(
                    root,
                    "sys/devices/system/clocksource/clocksource0/current_clocksource",
                ),
            }
        },
        loadavg: read(root, "proc/loadavg").and_then(|s| parse_loadavg(&s)),
        vcpu: None,
        cpu: Cpu { cpuid_fault: has_flag("cpuid_fault"), ..cpu },
    }
}

fn flag01(s: &str) -> Option<bool> {
    match s {
        "1" | "Y" | "y" => Some(true),
        "0" | "N" | "n" => Some(false),
        _ => None,
    }
}

/// `key : value` of the first processor block of /proc/cpuinfo.
fn first_processor_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

/// CPU identity from /proc/cpuinfo text. The `hypervisor` flag is only known when the flags
/// line is there.
pub(crate) fn parse_cpuinfo(text: &str) -> Cpu {
    let field = |k: &str| first_processor_field(text, k).map(str::to_string);
    let number = |k: &str| first_processor_field(text, k).and_then(|v| v.parse().ok());
    let flags = first_processor_field(text, "flags");
    Cpu {
        vendor: field("vendor_id"),
        family: number("cpu family"),
        model: number("model"),
        stepping: number("stepping"),
        model_name: field("model name"),
        microcode: field("microcode"),
        hypervisor_flag: flags.map(|f| f.split_whitespace().any(|x| x == "hypervisor")),
        cpuid_fault: None,
    }
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Every regular file in `dir` → its text (`None` if unreadable); `None` if `dir` is absent.
fn text_files(dir: &Path) -> Option<BTreeMap<String, Option<String>>> {
    let names = list(dir)?;
    Some(
        names
            .into_iter()
            .filter(|n| dir.join(n).is_file())
            .map(|n| {
                let v = std::fs::read_to_string(dir.join(&n)).ok().map(|s| s.trim().to_string());
                (n, v)
            })
            .collect(),
    )
}

fn kvm_modules(root: &Path) -> Option<BTreeMap<String, BTreeMap<String, Option<String>>>> {
    let modules = root.join("sys/module");
    let names = list(&modules)?;
    Some(
        names
            .into_iter()
            .filter(|n| n.starts_with("kvm"))
            .map(|n| {
                let params = text_files(&modules.join(&n).join("parameters")).unwrap_or_default();
                (n, params)
            })
            .collect(),
    )
}

fn classify(
    hypervisor_flag: Option<bool>,
    modules: Option<&BTreeMap<String, BTreeMap<String, Option<String>>>>,
) -> Option<Virtualization> {
    let has = |m: &str| modules.map(|ms| ms.contains_key(m));
    if has("kvm_pvm") == Some(true) {
        return Some(Virtualization::Pvm);
    }
    match hypervisor_flag? {
        false => Some(Virtualization::BareMetal),
        true => {
            let vendor = has("kvm_intel")? || has("kvm_amd")?;
            Some(if vendor { Virtualization::Nested } else { Virtualization::GuestWithoutKvm })
        }
    }
}

fn cpufreq(root: &Path) -> Option<Cpufreq> {
    let cpu_dir = root.join("sys/devices/system/cpu");
    let mut by_governor: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for name in list(&cpu_dir).unwrap_or_default() {
        let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(g) = read(&cpu_dir, &format!("{name}/cpufreq/scaling_governor")) {
            by_governor.entry(g).or_default().push(n);
        }
    }
    let driver = read(&cpu_dir, "cpu0/cpufreq/scaling_driver");
    let boost = read(&cpu_dir, "cpufreq/boost").and_then(|s| flag01(&s)).or_else(|| {
        read(&cpu_dir, "intel_pstate/no_turbo").and_then(|s| flag01(&s)).map(|no_turbo| !no_turbo)
    });
    if by_governor.is_empty() && driver.is_none() && boost.is_none() {
        return None;
    }
    let governors = by_governor
        .into_iter()
        .map(|(g, mut cpus)| {
            cpus.sort_unstable();
            (g, format_cpu_list(&cpus))
        })
        .collect();
    Some(Cpufreq { driver, governors, boost })
}

/// Parses a kernel CPU list such as `0-3,8,10-11`; `None` if malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Formats CPUs as a kernel CPU list (`0-3,8`); the input need not be sorted.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`).
pub fn allowed_cpus() -> Option<Vec<u32>> {
    allowed_cpus_in(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `Cpus_allowed_list` of a `/proc/<pid>/status` text.
pub(crate) fn allowed_cpus_in(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(line)
}

/// The scheduling policy of the calling thread (`/proc/thread-self/stat`), as in
/// [`sched_policy`]. Threads a process creates inherit it.
pub fn thread_sched_policy() -> Option<String> {
    sched_policy(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// `SCHED_OTHER nice 0`, `SCHED_FIFO priority 1`, ... from a `/proc/.../stat` line: fields
/// 19 (nice), 40 (rt_priority) and 41 (policy), counted after the `)` that ends the name.
pub fn sched_policy(stat: &str) -> Option<String> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let nice: i32 = fields.get(19 - 3)?.parse().ok()?;
    let rt: u32 = fields.get(40 - 3)?.parse().ok()?;
    let policy: u32 = fields.get(41 - 3)?.parse().ok()?;
    Some(match policy {
        0 => format!("SCHED_OTHER nice {nice}"),
        1 => format!("SCHED_FIFO priority {rt}"),
        2 => format!("SCHED_RR priority {rt}"),
        3 => format!("SCHED_BATCH nice {nice}"),
        5 => "SCHED_IDLE".to_string(),
        6 => "SCHED_DEADLINE".to_string(),
        p => format!("policy {p}"),
    })
}
