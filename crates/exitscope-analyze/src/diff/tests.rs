//! Normalization, alignment and the seed golden numbers.

use super::*;
use crate::AnalysisOptions;
use crate::testutil::{analyse_text, graph, seed};

fn opts() -> AnalysisOptions {
    AnalysisOptions::for_diff()
}

fn seed_diff(sort: DiffSort) -> DiffReport {
    let a = analyse_text(&seed("cpuid-amd.fgraph.txt"), opts());
    let b = analyse_text(&seed("cpuid-intel.fgraph.txt"), opts());
    diff(&a, &b, Some(&NormTable::builtin()), sort)
}

fn means(n: &DiffNode) -> (Option<Nanos>, Option<Nanos>) {
    (n.a.as_ref().and_then(|s| s.mean_ns), n.b.as_ref().and_then(|s| s.mean_ns))
}

fn names(n: &DiffNode) -> (String, String) {
    let f = |s: &Option<DiffSide>| s.as_ref().map_or("-".to_string(), |s| s.function.clone());
    (f(&n.a), f(&n.b))
}

#[test]
fn builtin_map_parses_and_normalizes_vendor_names() {
    let t = NormTable::builtin();
    let k = |n: &str, m: Option<&str>| t.key(n, m);
    assert_eq!(k("svm_vcpu_run", Some("kvm_amd")), k("vmx_vcpu_run", Some("kvm_intel")));
    assert_eq!(
        k("svm_prepare_guest_switch", Some("kvm_amd")),
        k("vmx_prepare_switch_to_guest", Some("kvm_intel"))
    );
    assert_eq!(k("handle_exit", Some("kvm_amd")), k("vmx_handle_exit", Some("kvm_intel")));
    assert_eq!(k("svm_handle_exit", Some("kvm_amd")), k("vmx_handle_exit", Some("kvm_intel")));
    assert_eq!(
        k("svm_handle_exit_irqoff", Some("kvm_amd")),
        k("vmx_handle_exit_irqoff", Some("kvm_intel"))
    );
    assert_eq!(k("svm_get_rflags", Some("kvm_amd")), k("vmx_get_rflags", Some("kvm_intel")));
    assert_eq!(k("svm_set_rflags", Some("kvm_amd")), k("vmx_set_rflags", Some("kvm_intel")));
    assert_eq!(k("svm_get_msr", Some("kvm_amd")), k("vmx_get_msr", Some("kvm_intel")));
    assert_eq!(
        k("skip_emulated_instruction", Some("kvm_amd")),
        k("vmx_skip_emulated_instruction", Some("kvm_intel"))
    );
    // Intel's inner helper of the same name is not the AMD callback.
    assert_ne!(
        k("skip_emulated_instruction", Some("kvm_amd")),
        k("skip_emulated_instruction", Some("kvm_intel"))
    );
    assert_eq!(
        k("amd_msr_idx_to_pmc", Some("kvm_amd")),
        k("intel_msr_idx_to_pmc", Some("kvm_intel"))
    );
    assert_eq!(k("amd_is_valid_msr", Some("kvm_amd")), k("intel_is_valid_msr", Some("kvm_intel")));
    // Module only, and compiler suffixes.
    assert_eq!(k("clear_foo", Some("kvm_amd")), k("clear_foo", Some("kvm_intel")));
    assert_eq!(k("kvm_set_cr8.part.119", Some("kvm")), "kvm_set_cr8 [kvm]");
    // vmlinux functions with vendor-looking names are left alone.
    assert_eq!(k("amd_iommu_foo", None), "amd_iommu_foo");
    assert!(t.collapses("cpuid_interception", Some("kvm_amd")));
    assert!(!t.collapses("kvm_emulate_cpuid", Some("kvm")));
}

#[test]
fn user_map_extends_and_overrides() {
    let mut t = NormTable::builtin();
    let user = NormTable::parse(
        "collapse = [\"my_wrapper\"]\n[modules]\nkvm_vendor = [\"kvm_hygon\"]\n[[alias]]\ncanonical = \"same\"\nfunctions = [\"svm_vcpu_run [kvm_amd]\", \"foo\"]\n",
    )
    .unwrap();
    t.extend_with(user);
    assert_eq!(t.key("svm_vcpu_run", Some("kvm_amd")), t.key("foo", Some("kvm_amd")));
    assert!(t.collapses("my_wrapper", None));
    // Aliases and patterns match the module as traced; [modules] only merges module names.
    assert_eq!(t.key("clear_foo", Some("kvm_hygon")), t.key("clear_foo", Some("kvm_intel")));
    assert!(NormTable::parse("[[pattern]]\ncanonical = \"x\"\nfunctions = [\"a*\"]\n").is_err());
    assert!(NormTable::parse("[[alias]]\ncanon = \"x\"\n").is_err());
    let e = NormTable::parse("collapse = [\n").unwrap_err();
    assert!(e.message.contains("line"), "{e}");
}

#[test]
fn seed_golden_pairs() {
    let d = seed_diff(DiffSort::Tree);
    assert!(d.normalized);
    assert_eq!(d.tree.len(), 2, "vcpu_enter_guest and the kvm_emulate_cpuid roots");
    let v = &d.tree[0];
    assert_eq!(names(v), ("vcpu_enter_guest".into(), "vcpu_enter_guest".into()));
    assert_eq!(means(v), (Some(4278), Some(5684)));
    assert_eq!((v.delta_ns, v.ratio), (Some(1406), Some(1.3287)));
    let run = v.find("svm_vcpu_run").unwrap();
    assert_eq!(names(run), ("svm_vcpu_run".into(), "vmx_vcpu_run".into()));
    assert_eq!((means(run), run.delta_ns), ((Some(2265), Some(2090)), Some(-175)));
    let he = v.find("handle_exit").unwrap();
    assert_eq!(names(he), ("handle_exit".into(), "vmx_handle_exit".into()));
    assert_eq!(means(he), (Some(1232), Some(1840)));
    // The collapsed wrapper's self time (921 - 761) moved to handle_exit: 1232 - 90 - 761.
    assert_eq!(he.a.as_ref().unwrap().self_ns, Some(381));
    let cpuid = he.children.iter().find(|c| c.key == "kvm_emulate_cpuid [kvm]").unwrap();
    assert_eq!((cpuid.status, means(cpuid)), (DiffStatus::Both, (Some(761), Some(1634))));
    let skip = cpuid.find("skip_emulated_instruction").unwrap();
    assert_eq!(
        names(skip),
        ("skip_emulated_instruction".into(), "vmx_skip_emulated_instruction".into())
    );
    assert_eq!(skip.children[0].status, DiffStatus::OnlyB);
    // Only in B, placed after the prepare-switch call it follows in B.
    let pir = v.find("vmx_sync_pir_to_irr").unwrap();
    assert_eq!((pir.status, pir.delta_ns), (DiffStatus::OnlyB, Some(615)));
    let order: Vec<&str> = v.children.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        &order[..3],
        [
            "vendor_prepare_switch_to_guest [*]",
            "vendor_sync_pir_to_irr [*]",
            "kvm_vcpu_exit_request [kvm]"
        ]
    );
    assert_eq!(v.find("kvm_get_cr8").unwrap().status, DiffStatus::OnlyA);
    // The standalone cpuid_interception (A) and kvm_emulate_cpuid (B) roots line up,
    // slow path included.
    let k = &d.tree[1];
    assert_eq!(
        (names(k), means(k)),
        (("kvm_emulate_cpuid".into(), "kvm_emulate_cpuid".into()), (Some(1633), Some(3410)))
    );
    let msr = k.find("__kvm_get_msr").unwrap();
    assert_eq!((msr.status, means(msr)), (DiffStatus::Both, (Some(1443), Some(3104))));
    let get = msr.find("svm_get_msr").unwrap();
    assert_eq!(names(get), ("svm_get_msr".into(), "vmx_get_msr".into()));
    let pmu = k.find("kvm_pmu_is_valid_msr").unwrap();
    assert_eq!(means(pmu), (Some(751), Some(1493)));
    let idx = pmu.find("amd_msr_idx_to_pmc").unwrap();
    assert_eq!(
        (names(idx), means(idx)),
        (("amd_msr_idx_to_pmc".into(), "intel_msr_idx_to_pmc".into()), (Some(131), Some(385)))
    );
    assert_eq!(pmu.find("kvm_find_cpuid_entry").unwrap().status, DiffStatus::OnlyB);
    // Collapsed: once inside a tree (moved to the caller), twice as a root (left out).
    assert_eq!(d.collapsed.len(), 2);
    assert!(d.collapsed.iter().any(|c| c.at_root && c.count == 2 && c.self_ns == 341));
}

#[test]
fn sort_by_delta_puts_the_largest_difference_first() {
    let d = seed_diff(DiffSort::Delta);
    assert_eq!(d.sorted_by, "delta");
    assert_eq!(d.tree[0].key, "kvm_emulate_cpuid [kvm]", "+1777 ns before +1406 ns");
    let v = &d.tree[1];
    let deltas: Vec<u64> = v.children.iter().map(|c| c.delta_ns.unwrap().unsigned_abs()).collect();
    let mut sorted = deltas.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(deltas, sorted);
}

#[test]
fn without_normalization_vendor_names_do_not_pair() {
    let a = analyse_text(&seed("cpuid-amd.fgraph.txt"), opts());
    let b = analyse_text(&seed("cpuid-intel.fgraph.txt"), opts());
    let d = diff(&a, &b, None, DiffSort::Tree);
    assert!(!d.normalized);
    assert_eq!(d.tree[0].status, DiffStatus::Both, "vcpu_enter_guest is common");
    assert_eq!(d.tree[0].find("svm_vcpu_run").unwrap().status, DiffStatus::OnlyA);
    assert!(d.collapsed.is_empty());
    // Same trace on both sides: every node paired, every delta 0.
    let d = diff(&a, &a, None, DiffSort::Tree);
    fn all_zero(n: &DiffNode) -> bool {
        n.status == DiffStatus::Both && n.delta_ns == Some(0) && n.children.iter().all(all_zero)
    }
    assert!(d.tree.iter().all(all_zero));
}

#[test]
fn big_roots_compare_as_vcpu_enter_guest_units() {
    let big = graph(
        "kvm_arch_vcpu_ioctl_run [kvm] 5000 {
  vcpu_load [kvm] 300
  svm_prepare_switch_to_guest [kvm_amd] 100
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    svm_invoke_exit_handler [kvm_amd] 20 {
      kvm_emulate_cpuid [kvm] 700
    }
  }
  svm_prepare_switch_to_guest [kvm_amd] 100
  svm_vcpu_run [kvm_amd] 2200
  svm_handle_exit [kvm_amd] 50 {
    svm_invoke_exit_handler [kvm_amd] 20 {
      kvm_emulate_cpuid [kvm] 900
    }
  }
  vcpu_put [kvm] 400
}",
    );
    let a = analyse_text(&seed("cpuid-amd.fgraph.txt"), opts());
    let b = analyse_text(&big, opts());
    let d = diff(&a, &b, Some(&NormTable::builtin()), DiffSort::Tree);
    let v = &d.tree[0];
    assert_eq!(v.key, "vcpu_enter_guest [kvm]");
    assert_eq!(v.b.as_ref().map(|s| s.count), Some(2));
    assert_eq!((d.b.split_roots, d.b.exits), (1, 2));
    assert_eq!(d.b.unattributed_ns, 5400);
    assert_eq!(v.find("svm_vcpu_run").unwrap().b.as_ref().unwrap().mean_ns, Some(2100));
    let he = v.find("handle_exit").unwrap();
    let cpuid = he.children.iter().find(|c| c.key == "kvm_emulate_cpuid [kvm]").unwrap();
    assert_eq!((cpuid.status, means(cpuid)), (DiffStatus::Both, (Some(761), Some(800))));
}

#[test]
fn siblings_with_one_key_merge() {
    let t = graph("root 10 {\n  f.part.0 100\n  f.cold 50\n}\n");
    let a = analyse_text(&t, opts());
    let d = diff(&a, &a, None, DiffSort::Tree);
    let f = &d.tree[0].children;
    assert_eq!(f.len(), 1);
    let s = f[0].a.as_ref().unwrap();
    assert_eq!((s.count, s.total_ns, s.mean_ns, s.p50_ns), (2, Some(150), Some(75), None));
}

#[test]
fn event_traces_compare_per_exit_reason() {
    let trace = |cpuid_us: [u32; 3]| {
        let mut t = String::new();
        let mut ts = 1_000_000u64;
        for us in cpuid_us {
            t.push_str(&format!(
                " q-7 [001] {}.{:06}: kvm_exit: vcpu 0 reason CPUID rip 0x1\n",
                ts / 1_000_000,
                ts % 1_000_000
            ));
            ts += u64::from(us);
            t.push_str(&format!(
                " q-7 [001] {}.{:06}: kvm_entry: vcpu 0, rip 0x3\n",
                ts / 1_000_000,
                ts % 1_000_000
            ));
            ts += 10;
        }
        t.push_str(&format!(
            " q-7 [001] {}.{:06}: kvm_exit: vcpu 0 reason HLT rip 0x1\n",
            ts / 1_000_000,
            ts % 1_000_000
        ));
        t
    };
    let a = analyse_text(&trace([1, 1, 2]), opts());
    let b = analyse_text(&trace([2, 2, 3]), opts());
    let d = diff(&a, &b, Some(&NormTable::builtin()), DiffSort::Tree);
    assert!(d.tree.is_empty(), "no graph, no tree");
    let cpuid = d.exits.iter().find(|r| r.reason == "CPUID").unwrap();
    assert_eq!((cpuid.status, cpuid.measure.as_str()), (DiffStatus::Both, "handling"));
    let (sa, sb) = (cpuid.a.as_ref().unwrap(), cpuid.b.as_ref().unwrap());
    assert_eq!((sa.count, sa.p50_ns, sb.p50_ns), (3, Some(1000), Some(2000)));
    assert_eq!((cpuid.p50_delta_ns, cpuid.delta_ns), (Some(1000), Some(1000)));
    let hlt = d.exits.iter().find(|r| r.reason == "HLT").unwrap();
    assert_eq!((hlt.measure.as_str(), hlt.delta_ns), ("count", None), "never paired: counts only");
    // The regression check sees exits when there is no tree.
    let slow = d.regressions(5.0);
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert!(slow[0].what.contains("CPUID") && slow[0].change_pct > 70.0);
    assert!(d.regressions(100.0).is_empty());
}
