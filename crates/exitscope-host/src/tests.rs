use std::path::{Path, PathBuf};

use super::*;
use crate::read::{allowed_cpus_in, parse_cpuinfo};

/// A fake `/proc` + `/sys` tree in a temporary directory, removed on drop.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(name: &str) -> FakeRoot {
        let dir =
            std::env::temp_dir().join(format!("exitscope-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        FakeRoot(dir)
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.0.join(rel)).unwrap();
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SPR_CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
    model\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Gold 6442Y\nstepping\t: 8\n\
    microcode\t: 0x2b0005c0\nflags\t\t: fpu vme constant_tsc nonstop_tsc vmx\n\n\
    processor\t: 1\nvendor_id\t: GenuineIntel\nmicrocode\t: 0x99999999\n";

/// A bare-metal Sapphire Rapids host with kvm_intel, two CPUs under cpufreq.
fn spr_tree(name: &str) -> FakeRoot {
    let r = FakeRoot::new(name);
    r.file("proc/cpuinfo", SPR_CPUINFO)
        .file("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 spectre_bhi=on\n")
        .file("proc/sys/kernel/osrelease", "6.6.34\n")
        .file("proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC\n")
        .file("proc/loadavg", "0.13 0.10 0.03 1/123 456\n")
        .file("sys/module/kvm/parameters/tdp_mmu", "Y\n")
        .file("sys/module/kvm/parameters/halt_poll_ns", "200000\n")
        .file("sys/module/kvm_intel/parameters/ept", "Y\n")
        .dir("sys/module/kvmgt")
        .dir("sys/module/ext4/parameters")
        .file(
            "sys/devices/system/cpu/vulnerabilities/spectre_v2",
            "Mitigation: Enhanced / Automatic IBRS; BHI: BHI_DIS_S\n",
        )
        .file("sys/devices/system/cpu/vulnerabilities/meltdown", "Not affected\n")
        .file(
            "sys/devices/system/cpu/vulnerabilities/mds",
            "Vulnerable: Clear CPU buffers attempted, no microcode\n",
        )
        .file("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
        .file("sys/devices/system/cpu/cpu0/cpufreq/scaling_driver", "intel_pstate\n")
        .file("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "powersave\n")
        .file("sys/devices/system/cpu/cpu2/cpufreq/scaling_governor", "performance\n")
        .file("sys/devices/system/cpu/intel_pstate/no_turbo", "1\n")
        .file("sys/devices/system/cpu/smt/control", "on\n")
        .file("sys/devices/system/cpu/smt/active", "1\n")
        .file("sys/devices/system/cpu/online", "0-2\n")
        .file("sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc\n");
    r
}

#[test]
fn fake_bare_metal_tree_reads_every_field() {
    let root = spr_tree("spr");
    let f = Fingerprint::collect_in(root.path());
    assert_eq!(f.cpu.vendor.as_deref(), Some("GenuineIntel"));
    assert_eq!((f.cpu.family, f.cpu.model, f.cpu.stepping), (Some(6), Some(143), Some(8)));
    assert_eq!(f.cpu.model_name.as_deref(), Some("Intel(R) Xeon(R) Gold 6442Y"));
    // The first processor's microcode, not a later one's.
    assert_eq!(f.cpu.microcode.as_deref(), Some("0x2b0005c0"));
    assert_eq!((f.cpu.hypervisor_flag, f.cpu.cpuid_fault), (Some(false), Some(false)));
    assert_eq!(f.os.release.as_deref(), Some("6.6.34"));
    assert!(f.os.cmdline.as_deref().unwrap().contains("spectre_bhi=on"));
    let kvm = f.kvm_modules.as_ref().unwrap();
    assert_eq!(kvm.keys().collect::<Vec<_>>(), ["kvm", "kvm_intel", "kvmgt"]);
    assert_eq!(kvm["kvm"]["tdp_mmu"].as_deref(), Some("Y"));
    assert!(kvm["kvmgt"].is_empty());
    assert_eq!(f.kvm_vendor_module(), Some("kvm_intel"));
    assert_eq!(f.virtualization, Some(Virtualization::BareMetal));
    let v = f.vulnerabilities.as_ref().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(f.vulnerabilities_starting_with("Vulnerable"), ["mds"]);
    let freq = f.cpufreq.as_ref().unwrap();
    assert_eq!(freq.driver.as_deref(), Some("intel_pstate"));
    assert_eq!(freq.governors["performance"], "0,2");
    assert_eq!(freq.governors["powersave"], "1");
    assert_eq!(freq.boost, Some(false));
    assert_eq!((f.smt.control.as_deref(), f.smt.active), (Some("on"), Some(true)));
    assert_eq!(f.online_cpus.as_deref(), Some("0-2"));
    assert_eq!((f.tsc.constant, f.tsc.nonstop, f.tsc.khz), (Some(true), Some(true), None));
    assert_eq!(f.tsc.clocksource.as_deref(), Some("tsc"));
    assert_eq!(f.loadavg, Some([0.13, 0.10, 0.03]));
    assert_eq!(f.vcpu, None);
    assert_eq!(f.exitscope_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
}

#[test]
fn absent_and_unreadable_fields_are_none_not_guessed() {
    let empty = FakeRoot::new("empty");
    let f = Fingerprint::collect_in(empty.path());
    assert_eq!(
        f,
        Fingerprint { exitscope_version: f.exitscope_version.clone(), ..Default::default() }
    );
    assert!(!f.is_empty() && Fingerprint::default().is_empty());
    // cpuinfo without a flags line: the hypervisor flag is unknown, so is the nesting.
    let r = FakeRoot::new("partial");
    r.file("proc/cpuinfo", "vendor_id\t: AuthenticAMD\nmodel\t: zen\n").dir("sys/module/kvm_amd");
    let f = Fingerprint::collect_in(r.path());
    assert_eq!((f.cpu.model, f.cpu.hypervisor_flag, f.virtualization), (None, None, None));
    assert_eq!(f.cpu.vendor.as_deref(), Some("AuthenticAMD"));
    // A parameter file that cannot be read as text is listed with a null value; what is not
    // a file is not listed.
    let r = FakeRoot::new("unreadable");
    r.dir("sys/module/kvm/parameters/not_a_file");
    std::fs::write(r.path().join("sys/module/kvm/parameters/binary"), [0xff, 0xfe]).unwrap();
    let kvm = Fingerprint::collect_in(r.path()).kvm_modules.unwrap();
    assert_eq!(kvm["kvm"].iter().collect::<Vec<_>>(), [(&"binary".to_string(), &None)]);
    let r = FakeRoot::new("garbage");
    r.file("proc/loadavg", "x y z\n").file("sys/devices/system/cpu/smt/active", "maybe\n");
    let f = Fingerprint::collect_in(r.path());
    assert_eq!((f.loadavg, f.smt.active), (None, None));
}

#[test]
fn pvm_and_nested_are_told_apart() {
    let flags = |hv: &str| format!("vendor_id\t: AuthenticAMD\nflags\t: fpu {hv} lm\n");
    let r = FakeRoot::new("pvm");
    r.file("proc/cpuinfo", &flags("hypervisor")).dir("sys/module/kvm").dir("sys/module/kvm_pvm");
    assert_eq!(Fingerprint::collect_in(r.path()).virtualization, Some(Virtualization::Pvm));
    let r = FakeRoot::new("nested");
    r.file("proc/cpuinfo", &flags("hypervisor")).dir("sys/module/kvm_amd");
    let f = Fingerprint::collect_in(r.path());
    assert_eq!(
        (f.virtualization, f.kvm_vendor_module()),
        (Some(Virtualization::Nested), Some("kvm_amd"))
    );
    let r = FakeRoot::new("guest");
    r.file("proc/cpuinfo", &flags("hypervisor")).dir("sys/module/ext4");
    assert_eq!(
        Fingerprint::collect_in(r.path()).virtualization,
        Some(Virtualization::GuestWithoutKvm)
    );
    let r = FakeRoot::new("bare");
    r.file("proc/cpuinfo", &flags("svm")).dir("sys/module/kvm_amd");
    assert_eq!(Fingerprint::collect_in(r.path()).virtualization, Some(Virtualization::BareMetal));
}

#[test]
fn this_machine_is_read_without_errors() {
    let f = Fingerprint::collect();
    // Whatever this host is, /proc is there.
    assert!(f.os.release.is_some() && f.loadavg.is_some() && f.cpu.vendor.is_some(), "{f:?}");
    if Path::new("/sys/module/kvm_pvm").exists() {
        assert_eq!(f.virtualization, Some(Virtualization::Pvm));
    }
    let text = f.to_string();
    assert!(text.starts_with("host: ") && text.contains("\nkvm: ") && text.contains("\nrun: "));
}

#[test]
fn cpuinfo_first_block_only() {
    let c = parse_cpuinfo(SPR_CPUINFO);
    assert_eq!(c.microcode.as_deref(), Some("0x2b0005c0"));
    assert_eq!(parse_cpuinfo(""), Cpu::default());
}

#[test]
fn cpu_lists_round_trip() {
    assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
    assert_eq!(parse_cpu_list("5"), Some(vec![5]));
    assert_eq!(parse_cpu_list(""), Some(vec![]));
    assert_eq!(parse_cpu_list("3-1"), None);
    assert_eq!(parse_cpu_list("a"), None);
    assert_eq!(format_cpu_list(&[11, 0, 1, 2, 3, 8, 10, 2]), "0-3,8,10-11");
    assert_eq!(format_cpu_list(&[]), "");
    let stat = |nice: &str, rt: &str, policy: &str| {
        let mut f: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        (f[19 - 3], f[40 - 3], f[41 - 3]) = (nice.into(), rt.into(), policy.into());
        format!("77 (a (b) c) {}", f.join(" "))
    };
    assert_eq!(sched_policy(&stat("-5", "0", "0")).as_deref(), Some("SCHED_OTHER nice -5"));
    assert_eq!(sched_policy(&stat("0", "1", "1")).as_deref(), Some("SCHED_FIFO priority 1"));
    assert_eq!(sched_policy("12 (x) S 1"), None);
    assert!(thread_sched_policy().is_some_and(|p| p.starts_with("SCHED_")));
    let status = "Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
    assert_eq!(allowed_cpus_in(status), Some(vec![0, 1]));
    assert!(allowed_cpus().is_some_and(|c| !c.is_empty()));
}

#[test]
fn identical_fingerprints_have_no_differences() {
    let root = spr_tree("same");
    let f = Fingerprint::collect_in(root.path());
    assert!(differences(&f, &f).is_empty());
    let mut g = f.clone();
    g.loadavg = Some([0.9, 0.5, 0.1]); // less than one runnable task apart
    assert!(differences(&f, &g).is_empty());
}

#[test]
fn unlike_settings_are_flagged_and_notes_are_not() {
    let root = spr_tree("unlike");
    let a = Fingerprint::collect_in(root.path());
    let mut b = a.clone();
    b.cpu.microcode = Some("0x2b000600".into());
    b.vulnerabilities.as_mut().unwrap().insert("spectre_v2".into(), Some("Vulnerable".into()));
    // A newer kernel's extra "Not affected" file is a note, not a mitigation difference.
    b.vulnerabilities.as_mut().unwrap().insert("vmscape".into(), Some("Not affected".into()));
    b.kvm_modules
        .as_mut()
        .unwrap()
        .get_mut("kvm")
        .unwrap()
        .insert("tdp_mmu".into(), Some("N".into()));
    b.kvm_modules.as_mut().unwrap().remove("kvmgt");
    b.cpufreq.as_mut().unwrap().governors.clear();
    b.loadavg = Some([5.1, 2.0, 1.0]);
    b.cpu.model_name = None; // unknown on one side: a note
    let d = differences(&a, &b);
    let find = |field: &str| {
        d.iter().find(|d| d.field == field).unwrap_or_else(|| panic!("{field}: {d:#?}"))
    };
    assert_eq!(find("cpu.microcode").severity, Severity::Unlike);
    assert_eq!(find("vulnerabilities.spectre_v2").severity, Severity::Unlike);
    assert_eq!(find("vulnerabilities.vmscape").severity, Severity::Note);
    assert_eq!(find("vulnerabilities.vmscape").a.as_deref(), Some("(absent)"));
    assert_eq!(find("kvm_modules.kvm.tdp_mmu").severity, Severity::Unlike);
    let gone = find("kvm_modules.kvmgt");
    assert_eq!(
        (gone.a.as_deref(), gone.b.as_deref(), gone.severity),
        (Some("loaded"), Some("not loaded"), Severity::Unlike)
    );
    assert_eq!(find("cpufreq").severity, Severity::Note);
    assert_eq!(find("loadavg").b.as_deref(), Some("5.10 2.00 1.00"));
    assert_eq!(
        (find("cpu.model_name").severity, find("cpu.model_name").b.as_deref()),
        (Severity::Note, None)
    );
    // Unlike first, then notes; categories named once.
    let first_note = d.iter().position(|d| d.severity == Severity::Note).unwrap();
    assert!(d[first_note..].iter().all(|d| d.severity == Severity::Note));
    assert_eq!(unlike_categories(&d), ["microcode", "mitigations", "KVM parameters", "KVM module"]);
}

#[test]
fn pvm_versus_bare_metal_vmx_is_unlike_on_every_axis() {
    let root = spr_tree("vmx");
    let vmx = Fingerprint::collect_in(root.path());
    let pvm_root = FakeRoot::new("pvm-host");
    pvm_root
        .file("proc/cpuinfo", "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 1\nmicrocode\t: 0x1000065\nflags\t: fpu hypervisor\n")
        .file("proc/sys/kernel/osrelease", "6.18.44-fc-v1045\n")
        .file("sys/module/kvm/parameters/tdp_mmu", "N\n")
        .file("sys/module/kvm_pvm/parameters/pvm_native", "Y\n")
        .file("sys/devices/system/cpu/vulnerabilities/spectre_v2", "Mitigation: Retpolines\n");
    let pvm = Fingerprint::collect_in(pvm_root.path());
    let d = differences(&pvm, &vmx);
    let cats = unlike_categories(&d);
    for want in [
        "CPU model",
        "microcode",
        "kernel",
        "virtualization",
        "mitigations",
        "KVM module",
        "KVM parameters",
    ] {
        assert!(cats.contains(&want), "{want} missing from {cats:?}");
    }
    let v = d.iter().find(|d| d.field == "virtualization").unwrap();
    assert_eq!((v.a.as_deref(), v.b.as_deref()), (Some("PVM"), Some("bare metal")));
}

#[test]
fn a_result_without_fingerprint_is_one_note() {
    let root = spr_tree("legacy");
    let f = Fingerprint::collect_in(root.path());
    let d = differences(&Fingerprint::default(), &f);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].category.as_str(), d[0].severity), ("fingerprint", Severity::Note));
    assert!(differences(&Fingerprint::default(), &Fingerprint::default()).is_empty());
}

#[test]
fn json_round_trips_and_tolerates_missing_fields() {
    let root = spr_tree("json");
    let mut f = Fingerprint::collect_in(root.path());
    f.vcpu = Some(VcpuPlacement {
        pinned: Some(1),
        cpus_allowed: Some("1".into()),
        cpus_seen: vec![1],
        sched: None,
    });
    let text = serde_json::to_string(&f).unwrap();
    assert_eq!(serde_json::from_str::<Fingerprint>(&text).unwrap(), f);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["virtualization"], "bare-metal");
    assert_eq!(v["cpu"]["microcode"], "0x2b0005c0");
    assert_eq!(v["kvm_modules"]["kvm"]["tdp_mmu"], "Y");
    assert!(v["tsc"]["khz"].is_null());
    // Older or foreign documents: unknown fields ignored, missing ones null.
    let old: Fingerprint =
        serde_json::from_str(r#"{"kvm_flavour":"pvm","cpu":{"vendor":"AuthenticAMD"}}"#).unwrap();
    assert_eq!(old.cpu.vendor.as_deref(), Some("AuthenticAMD"));
    assert_eq!(old.os, Os::default());
}

#[test]
fn summary_header_names_the_essentials() {
    let root = spr_tree("display");
    let mut f = Fingerprint::collect_in(root.path());
    f.tsc.khz = Some(2_600_000);
    f.tsc.khz_source = Some("KVM_GET_TSC_KHZ".into());
    f.vcpu = Some(VcpuPlacement {
        pinned: Some(2),
        cpus_allowed: None,
        cpus_seen: vec![2],
        sched: Some("SCHED_FIFO priority 1".into()),
    });
    let text = f.to_string();
    for want in [
        "host: Intel(R) Xeon(R) Gold 6442Y (GenuineIntel family 6 model 143 stepping 8, microcode 0x2b0005c0), kernel 6.6.34",
        "kvm: kvm_intel, bare metal; TSC 2600000 kHz (KVM_GET_TSC_KHZ), clocksource tsc",
        "mitigations: 1 of 3 mitigated (spectre_v2), 1 vulnerable: mds",
        "run: vCPU pinned to CPU 2, ran on 2, SCHED_FIFO priority 1; SMT on; cpufreq performance on 0,2, powersave on 1; load average 0.13 0.10 0.03",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert_eq!(text.lines().count(), 4);
    let unknown = Fingerprint::default().to_string();
    assert!(
        unknown.contains("host: unknown (unknown family unknown")
            && unknown.contains("mitigations: unknown")
    );
}

#[test]
fn tag_round_trip_is_one_line() {
    let mut f = Fingerprint::default();
    f.cpu.vendor = Some("AuthenticAMD".into());
    f.cpu.model_name = Some("AMD EPYC\nwith a newline".into());
    f.os.cmdline = Some("quiet \"x\"".into());
    f.loadavg = Some([0.5, 0.25, 0.0]);
    let tag = f.to_tag();
    assert!(tag.starts_with(TAG_PREFIX), "{tag}");
    assert!(!tag.contains('\n'), "one line: {tag}");
    assert_eq!(Fingerprint::from_tag(&tag).unwrap().unwrap(), f);
    assert_eq!(Fingerprint::from_tag(&format!("{tag}\n")).unwrap().unwrap(), f);
    assert!(Fingerprint::from_tag("tracer: nop").is_none());
    assert!(Fingerprint::from_tag("exitscope host: {\"cpu\": 3}").unwrap().is_err());
    // Unknown fields (a newer exitscope) are ignored.
    let newer =
        Fingerprint::from_tag("exitscope host: {\"future\": 1, \"os\": {\"release\": \"7.0\"}}");
    assert_eq!(newer.unwrap().unwrap().os.release.as_deref(), Some("7.0"));
    assert!(f.short().starts_with("AMD EPYC"), "{}", f.short());
}
