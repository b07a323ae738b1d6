//! Exit cutting, classification and phases.

use super::*;
use crate::exits::ExitsReport;
use crate::histogram::Distribution;
use crate::testutil::{analyse_text, exits_opts, graph, seed};

const UNKNOWN: &str = "unknown";

fn mean(d: &Option<Distribution>) -> Option<u64> {
    d.as_ref().map(|d| d.mean_ns)
}

fn total(d: &Option<Distribution>) -> u64 {
    d.as_ref().map_or(0, |d| d.total_ns)
}

fn exits_of(outline: &str) -> ExitsReport {
    analyse_text(&graph(outline), exits_opts()).exits.unwrap()
}

/// A `vcpu_enter_guest` root around `handling` (outline lines placed after the run call).
fn veg(run_inside: &str, handling: &str) -> String {
    format!(
        "vcpu_enter_guest [kvm] 100 {{\n  svm_prepare_guest_switch [kvm_amd] 80\n  svm_vcpu_run \
         [kvm_amd] 2000 {{\n    kvm_load_guest_xsave_state [kvm] 90\n{run_inside}\n  }}\n{handling}\n}}\n"
    )
}

fn only_reason(ex: &ExitsReport) -> &str {
    assert_eq!(ex.reasons.len(), 1, "{ex:#?}");
    &ex.reasons[0].reason
}

#[test]
fn builtin_table_parses() {
    let t = ExitTable::builtin();
    assert_eq!(t.role("svm_vcpu_run"), Role::Run);
    assert_eq!(t.role("vcpu_enter_guest"), Role::ExitRoot);
    assert_eq!(t.role("vmx_handle_exit"), Role::Dispatcher);
    assert_eq!(t.role("complete_fast_pio_out"), Role::Completion);
    assert_eq!(t.role("svm_handle_exit_irqoff"), Role::IrqOff);
    assert_eq!(t.handler_kind("kvm_emulate_cpuid"), Some(ExitKind::Cpuid));
    assert_eq!(t.handler_kind("handle_io.isra.0"), Some(ExitKind::Io), "suffixes ignored");
    assert_eq!(t.handler_kind("kvm_cpuid"), None);
    assert_eq!(t.synthetic_root, ("vcpu_enter_guest".to_string(), Some("kvm".to_string())));
}

#[test]
fn table_errors_are_reported_not_panicked() {
    let base = "[structure]\nrun=[\"r\"]\nexit_roots=[]\ndispatchers=[]\nsynthetic_root=\"x\"\n";
    let dup = format!("{base}[reason.CPUID]\nhandlers=[\"h\"]\n[reason.IO]\nhandlers=[\"h\"]\n");
    assert!(ExitTable::parse(&dup).unwrap_err().message.contains("function h"));
    let not_a_kind = format!("{base}[reason.NOPE]\nhandlers=[\"h\"]\n");
    assert!(ExitTable::parse(&not_a_kind).unwrap_err().message.contains("NOPE"));
    let unknown_key = format!("{base}[reason.IO]\nhandler=[\"h\"]\n");
    assert!(ExitTable::parse(&unknown_key).is_err());
    let vendor_lists_moved = format!("{base}[reason.IO]\nvmx=[\"IO_INSTRUCTION\"]\n");
    assert!(ExitTable::parse(&vendor_lists_moved).is_err(), "names live in exitscope_model::exit");
    let e = ExitTable::parse("[structure\n").unwrap_err();
    assert!(e.message.contains("line 1"), "{e}");
}

#[test]
fn a_wrapped_kvm_exit_line_still_names_its_reason() {
    // An e-mail client wrapped the event after `rip`: the reason is `npf`, not `npf rip`.
    let ex = exits_of(&veg(
        "    # kvm_exit: vcpu 0 reason npf rip",
        "  svm_handle_exit [kvm_amd] 50 {\n npf_interception [kvm_amd] 900\n }",
    ));
    assert_eq!(only_reason(&ex), "EPT_NPF");
    assert_eq!(ex.reasons[0].evidence[0].name, "kvm_exit: npf");
    assert_eq!(ex.reasons[0].vendor[0].name, "npf");
}

#[test]
fn the_model_decodes_every_vocabulary_alike() {
    let mut reasons = Reasons::default();
    for (raws, want) in [
        (&["CPUID", "cpuid", "EXIT_CPUID"][..], "CPUID"),
        (&["IO_INSTRUCTION", "io", "EXIT_IOIO"][..], "IO"),
        (&["EPT_VIOLATION", "npf", "EXIT_NPF", "EPT_VIOLATION FAILED_VMENTRY"][..], "EPT_NPF"),
        (&["EPT_MISCONFIG"][..], "MMIO"),
        (&["msr", "EXIT_MSR"][..], "MSR"),
        (&["EXTERNAL_INTERRUPT", "interrupt", "EXIT_INTR"][..], "EXTERNAL_INTERRUPT"),
        (&["EXCEPTION_NMI", "PF excp", "UD excp", "EXIT_EXCP_PF"][..], "EXCEPTION"),
        (&["INTERRUPT_WINDOW", "PENDING_INTERRUPT", "vintr"][..], "INTERRUPT_WINDOW"),
    ] {
        for raw in raws {
            let id = reasons.vendor(raw);
            assert_eq!(reasons.get(id).label(), want, "{raw}");
        }
    }
    let id = reasons.vendor("0x4e");
    assert_eq!(reasons.get(id).label(), "0x4e");
}

#[test]
fn every_handler_family_classifies() {
    let cases = [
        (
            "handle_exit [kvm_amd] 50 {\n cpuid_interception [kvm_amd] 60 {\n kvm_emulate_cpuid [kvm] 300\n }\n }",
            "CPUID",
        ),
        ("vmx_handle_exit [kvm_intel] 50 {\n kvm_emulate_cpuid [kvm] 300\n }", "CPUID"),
        (
            "vmx_handle_exit [kvm_intel] 50 {\n handle_io [kvm_intel] 80 {\n kvm_fast_pio [kvm] 200\n }\n }",
            "IO",
        ),
        ("svm_handle_exit [kvm_amd] 50 {\n io_interception [kvm_amd] 80\n }", "IO"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_ept_violation [kvm_intel] 900\n }", "EPT_NPF"),
        ("svm_handle_exit [kvm_amd] 50 {\n npf_interception [kvm_amd] 900\n }", "EPT_NPF"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_ept_misconfig [kvm_intel] 900\n }", "MMIO"),
        (
            "vmx_handle_exit [kvm_intel] 50 {\n handle_rdmsr [kvm_intel] 90 {\n kvm_emulate_rdmsr [kvm] 200\n }\n }",
            "MSR_READ",
        ),
        (
            "svm_handle_exit [kvm_amd] 50 {\n msr_interception [kvm_amd] 90 {\n kvm_emulate_wrmsr [kvm] 200\n }\n }",
            "MSR_WRITE",
        ),
        ("svm_handle_exit [kvm_amd] 50 {\n msr_interception [kvm_amd] 90\n }", "MSR"),
        ("vmx_handle_exit [kvm_intel] 50 {\n kvm_emulate_halt [kvm] 300\n }", "HLT"),
        ("handle_exit [kvm_amd] 50 {\n halt_interception [kvm_amd] 300\n }", "HLT"),
        (
            "vmx_handle_exit_irqoff [kvm_intel] 50 {\n handle_external_interrupt_irqoff [kvm_intel] 400\n }\n vmx_handle_exit [kvm_intel] 50 {\n handle_external_interrupt [kvm_intel] 30\n }",
            "EXTERNAL_INTERRUPT",
        ),
        (
            "svm_handle_exit [kvm_amd] 50 {\n intr_interception [kvm_amd] 30\n }",
            "EXTERNAL_INTERRUPT",
        ),
        (
            "vmx_handle_exit [kvm_intel] 50 {\n handle_interrupt_window [kvm_intel] 30\n }",
            "INTERRUPT_WINDOW",
        ),
        (
            "vmx_handle_exit [kvm_intel] 50 {\n handle_vmcall [kvm_intel] 30 {\n kvm_emulate_hypercall [kvm] 200\n }\n }",
            "HYPERCALL",
        ),
        ("svm_handle_exit [kvm_amd] 50 {\n pf_interception [kvm_amd] 300\n }", "EXCEPTION"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_cr [kvm_intel] 300\n }", "CR_ACCESS"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_pause [kvm_intel] 300\n }", "PAUSE"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_apic_write [kvm_intel] 300\n }", "APIC"),
        ("vmx_handle_exit [kvm_intel] 50 {\n handle_xsetbv [kvm_intel] 300\n }", "XSETBV"),
        (
            "vmx_handle_exit [kvm_intel] 50 {\n handle_preemption_timer [kvm_intel] 300\n }",
            "PREEMPTION_TIMER",
        ),
    ];
    for (handling, want) in cases {
        let ex = exits_of(&veg("", handling));
        assert_eq!(only_reason(&ex), want, "{handling}");
        assert_eq!(ex.reasons[0].by_handler, 1);
    }
}

#[test]
fn fastpath_handler_inside_the_run_call_counts() {
    let ex = exits_of(&veg(
        "    handle_fastpath_set_msr_irqoff [kvm_intel] 300",
        "  vmx_handle_exit [kvm_intel] 40",
    ));
    assert_eq!(only_reason(&ex), "MSR_WRITE");
}

#[test]
fn the_event_wins_over_handlers_and_handlers_refine_it() {
    // The event says HLT; a cpuid handler (odd, but possible) does not override it.
    let ex = exits_of(&veg(
        "    # kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0",
        "  vmx_handle_exit [kvm_intel] 50 {\n kvm_emulate_cpuid [kvm] 300\n }",
    ));
    assert_eq!(only_reason(&ex), "HLT");
    assert_eq!((ex.reasons[0].by_event, ex.reasons[0].by_handler), (1, 0));
    assert_eq!(ex.reasons[0].evidence[0].name, "kvm_exit: HLT");
    // SVM's `msr` does not say read or write; the handler does.
    let ex = exits_of(&veg(
        "    # kvm_exit: vcpu 0 reason msr rip 0x1 info1 0x0000000000000000",
        "  svm_handle_exit [kvm_amd] 50 {\n msr_interception [kvm_amd] 90 {\n kvm_emulate_rdmsr [kvm] 200\n }\n }",
    ));
    assert_eq!(only_reason(&ex), "MSR_READ");
    assert_eq!(ex.reasons[0].evidence[0].name, "kvm_exit: msr + kvm_emulate_rdmsr");
    // npf that turns out to be MMIO.
    let ex = exits_of(&veg(
        "    # kvm_exit: vcpu 0 reason EXIT_NPF rip 0x1 info 0 0",
        "  svm_handle_exit [kvm_amd] 50 {\n npf_interception [kvm_amd] 90 {\n kvm_mmu_page_fault [kvm] 90 {\n handle_mmio_page_fault [kvm] 200\n }\n }\n }",
    ));
    assert_eq!(only_reason(&ex), "MMIO");
}

#[test]
fn handlers_inside_interrupts_are_ignored() {
    // A handler name inside an interrupt subtree says nothing about this exit.
    let ex = exits_of(&veg(
        "",
        "  __sysvec_apic_timer_interrupt 500 {\n kvm_emulate_halt [kvm] 100\n }\n  vmx_handle_exit [kvm_intel] 50 {\n handle_io [kvm_intel] 300\n }",
    ));
    assert_eq!(only_reason(&ex), "IO");
    let ex = exits_of(&veg(
        "",
        "  vmx_handle_exit [kvm_intel] 50 {\n __sysvec_apic_timer_interrupt 500 {\n kvm_emulate_halt [kvm] 100\n }\n }",
    ));
    assert_eq!(only_reason(&ex), UNKNOWN);
}

#[test]
fn unknown_exits_list_what_the_dispatcher_called() {
    let ex = exits_of(&veg(
        "    # kvm_exit: vcpu 0 reason 0x4e rip 0x1",
        "  svm_handle_exit_irqoff [kvm_amd] 40\n  svm_handle_exit [kvm_amd] 50 {\n svm_invoke_exit_handler [kvm_amd] 50 {\n svm_handle_invalid_exit [kvm_amd] 300 {\n dump_vmcb [kvm_amd] 900\n }\n }\n }",
    ));
    // A code with no name is kept as printed, with what the dispatcher did as evidence.
    assert_eq!(only_reason(&ex), "0x4e");
    assert_eq!(ex.reasons[0].evidence[0].name, "kvm_exit: 0x4e + svm_handle_invalid_exit");
    assert_eq!(ex.reasons[0].vendor[0].name, "0x4e");
    // Without a dispatcher: the calls after the run call.
    let ex = exits_of(&veg("", "  mystery_handler [kvm] 300"));
    assert_eq!(ex.reasons[0].evidence[0].name, "mystery_handler");
}

#[test]
fn seed_phases_add_up_to_the_root() {
    for (file, phases, handler) in [
        ("cpuid-amd.fgraph.txt", [160, 2265, 1312, 541], "cpuid_interception"),
        ("cpuid-intel.fgraph.txt", [856, 2090, 1949, 789], "kvm_emulate_cpuid"),
    ] {
        let r = analyse_text(&seed(file), exits_opts());
        let ex = r.exits.unwrap();
        assert_eq!((ex.exits, ex.whole_roots, ex.split_roots, ex.roots_without_run), (1, 1, 0, 2));
        let c = &ex.reasons[0];
        assert_eq!((c.reason.as_str(), c.count), ("CPUID", 1));
        let got = [mean(&c.before), mean(&c.run), mean(&c.after), mean(&c.other)];
        assert_eq!(got, phases.map(Some), "{file}");
        let root = r.tree.iter().find(|n| n.function == "vcpu_enter_guest").unwrap();
        assert_eq!(mean(&c.total), root.total_ns, "{file}: phases add up to the root");
        assert_eq!(c.evidence[0].name, handler);
    }
}

const IOCTL: &str = "kvm_arch_vcpu_ioctl_run [kvm] 1000 {
  vcpu_load [kvm] 300
  kvm_check_async_pf_completion [kvm] 50
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit_irqoff [kvm_amd] 40
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 300
  }
  kvm_check_async_pf_completion [kvm] 60
  svm_prepare_switch_to_guest [kvm_amd] 70
  svm_vcpu_run [kvm_amd] 2100
  svm_handle_exit_irqoff [kvm_amd] 40
  svm_handle_exit [kvm_amd] 50 {
    io_interception [kvm_amd] 500
  }
  svm_vcpu_run [kvm_amd] 2200
  svm_handle_exit [kvm_amd] 50 {
    halt_interception [kvm_amd] 700
  }
  vcpu_put [kvm] 400
}
";

#[test]
fn a_big_root_is_cut_at_each_run_call() {
    let r = analyse_text(&graph(IOCTL), exits_opts());
    let ex = r.exits.unwrap();
    assert_eq!((ex.exits, ex.whole_roots, ex.split_roots), (3, 0, 1));
    let by = |name: &str| ex.reasons.iter().find(|x| x.reason == name).unwrap();
    // First exit: from the container's first child (vcpu_load) to its dispatcher.
    let c = by("CPUID");
    assert_eq!((mean(&c.before), mean(&c.run), mean(&c.after)), (Some(350), Some(2000), Some(390)));
    assert_eq!(mean(&c.other), Some(0));
    // Second: what followed the first dispatcher is its `before`.
    let io = by("IO");
    assert_eq!(
        (mean(&io.before), mean(&io.run), mean(&io.after)),
        (Some(130), Some(2100), Some(590))
    );
    let hlt = by("HLT");
    assert_eq!((mean(&hlt.before), mean(&hlt.after)), (Some(0), Some(750)));
    // vcpu_put after the last dispatcher and the container's self time are outside every exit.
    let covered: u64 = ex.reasons.iter().map(|x| total(&x.total)).sum();
    assert_eq!(ex.unattributed_ns, 1400);
    assert_eq!(covered + ex.unattributed_ns, r.tree[0].total_ns.unwrap());
}

#[test]
fn cut_exits_have_the_statistics_of_separate_roots() {
    // The same three exits as three vcpu_enter_guest roots with no self time.
    let separate = "vcpu_enter_guest [kvm] 0 {
  kvm_check_async_pf_completion [kvm] 50
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 300
  }
}
vcpu_enter_guest [kvm] 0 {
  kvm_check_async_pf_completion [kvm] 60
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 500
  }
}
";
    let big = "kvm_arch_vcpu_ioctl_run [kvm] 777 {
  kvm_check_async_pf_completion [kvm] 50
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 300
  }
  kvm_check_async_pf_completion [kvm] 60
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 500
  }
}
";
    let a = analyse_text(&graph(separate), exits_opts()).exits.unwrap();
    let mut b = analyse_text(&graph(big), exits_opts()).exits.unwrap();
    // Cut exits know their completion work (none here); vcpu_enter_guest roots cannot see it.
    assert_eq!(b.reasons[0].completion.as_ref().map(|c| (c.count, c.total_ns)), Some((2, 0)));
    b.reasons[0].completion = None;
    assert_eq!(a.reasons, b.reasons);
    assert_eq!((a.exits, b.exits), (2, 2));
    assert_eq!(b.unattributed_ns, 777);
}

#[test]
fn split_exits_build_the_merged_tree_from_units() {
    let mut o = exits_opts();
    o.split_exits = true;
    let r = analyse_text(&graph(IOCTL), o);
    assert_eq!(r.tree.len(), 1);
    let v = &r.tree[0];
    assert_eq!(
        (v.function.as_str(), v.module.as_deref(), v.count),
        ("vcpu_enter_guest", Some("kvm"), 3)
    );
    assert_eq!(v.self_ns, Some(0), "a synthetic unit has no self time");
    let run = v.children.iter().find(|c| c.function == "svm_vcpu_run").unwrap();
    assert_eq!((run.count, run.total_ns), (3, Some(6300)));
    let sum: u64 = r.exits.unwrap().reasons.iter().map(|x| total(&x.total)).sum();
    assert_eq!(v.total_ns, Some(sum));
    // The flat profile still sees the real root.
    assert!(r.flat.iter().any(|f| f.function == "kvm_arch_vcpu_ioctl_run"));
    // A vcpu_enter_guest trace is left alone.
    let s = analyse_text(&seed("cpuid-amd.fgraph.txt"), crate::AnalysisOptions::for_diff());
    assert_eq!(s.tree[0].self_ns, Some(541));
}

#[test]
fn run_call_roots_and_roots_without_exits() {
    let ex = exits_of(
        "svm_vcpu_run [kvm_amd] 2000 {\n  kvm_load_guest_xsave_state [kvm] 90\n}\ncpuid_interception [kvm_amd] 100\n",
    );
    assert_eq!((ex.exits, ex.whole_roots, ex.roots_without_run), (1, 1, 1));
    assert_eq!(only_reason(&ex), UNKNOWN);
    assert_eq!(mean(&ex.reasons[0].run), Some(2090));
    assert_eq!(mean(&ex.reasons[0].before), Some(0));
}

#[test]
fn traces_without_durations_still_classify() {
    let text = " 0)               |  vcpu_enter_guest [kvm]() {\n 0)               |    vmx_vcpu_run [kvm_intel]() {\n 0)               |    }\n 0)               |    vmx_handle_exit [kvm_intel]() {\n 0)               |      handle_io [kvm_intel]() {\n 0)               |      }\n 0)               |    }\n 0)               |  }\n";
    let ex = analyse_text(text, exits_opts()).exits.unwrap();
    assert_eq!(only_reason(&ex), "IO");
    assert_eq!(ex.reasons[0].total, None, "no durations, no distribution");
}

#[test]
fn events_printed_at_the_container_level_go_to_their_exit_by_line() {
    let ex = exits_of(
        "kvm_arch_vcpu_ioctl_run [kvm] 10 {
  svm_vcpu_run [kvm_amd] 100
  # kvm_exit: vcpu 0 reason hlt rip 0x1
  svm_handle_exit [kvm_amd] 10
  svm_vcpu_run [kvm_amd] 100
  # kvm_exit: vcpu 0 reason io rip 0x1
  svm_handle_exit [kvm_amd] 10
}",
    );
    let mut got: Vec<&str> = ex.reasons.iter().map(|r| r.reason.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["HLT", "IO"]);
}

/// Random call trees made of the names the exit view cares about: never a panic, and the
/// numbers always add up.
#[test]
fn random_trees_never_panic_and_always_add_up() {
    const NAMES: &[&str] = &[
        "vcpu_enter_guest [kvm]",
        "kvm_arch_vcpu_ioctl_run [kvm]",
        "vcpu_run [kvm]",
        "svm_vcpu_run [kvm_amd]",
        "vmx_vcpu_run [kvm_intel]",
        "svm_handle_exit [kvm_amd]",
        "vmx_handle_exit [kvm_intel]",
        "kvm_emulate_cpuid [kvm]",
        "handle_io [kvm_intel]",
        "npf_interception [kvm_amd]",
        "handle_mmio_page_fault [kvm]",
        "__sysvec_apic_timer_interrupt",
        "kvm_load_guest_xsave_state [kvm]",
        "schedule",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for _ in 0..300 {
        let mut out = String::new();
        let mut depth = 0usize;
        for _ in 0..(5 + next(40)) {
            let name = NAMES[next(NAMES.len() as u64) as usize];
            let ind = "  ".repeat(depth);
            match next(4) {
                0 if depth > 0 => {
                    depth -= 1;
                    out.push_str(&format!("{}}}\n", "  ".repeat(depth)));
                }
                1 => {
                    out.push_str(&format!("{ind}{name} {} {{\n", next(500)));
                    depth += 1;
                }
                2 => out.push_str(&format!(
                    "{ind}# kvm_exit: vcpu 0 reason {} rip 0x1\n",
                    ["cpuid", "io", "npf", "0x7"][next(4) as usize]
                )),
                _ => out.push_str(&format!("{ind}{name} {}\n", next(500))),
            }
        }
        while depth > 0 {
            depth -= 1;
            out.push_str(&format!("{}}}\n", "  ".repeat(depth)));
        }
        let text = graph(&out);
        let r = analyse_text(&text, crate::AnalysisOptions::for_diff());
        let Some(ex) = r.exits else {
            assert!(!out.contains("_vcpu_run") && !out.contains("kvm_exit"), "{out}");
            continue;
        };
        let counted: u64 = ex.reasons.iter().map(|x| x.count).sum();
        assert_eq!(counted, ex.exits, "{out}");
        for x in &ex.reasons {
            let sum = [&x.before, &x.run, &x.after, &x.other, &x.completion]
                .iter()
                .map(|p| total(p))
                .sum::<u64>();
            assert_eq!(total(&x.total), sum, "{out}");
        }
        // Every root's time is in an exit, unattributed, or in a root without exits.
        let plain = analyse_text(&text, crate::AnalysisOptions::default());
        let all: u64 = plain.tree.iter().filter_map(|n| n.total_ns).sum();
        let in_exits: u64 = ex.reasons.iter().map(|x| total(&x.total)).sum();
        assert!(in_exits + ex.unattributed_ns <= all, "{out}");
    }
}

#[test]
fn an_interrupt_after_the_irqoff_step_with_an_empty_dispatcher_is_an_external_interrupt() {
    // SVM dispatches INTR to an inlined no-op: the host interrupt runs right after
    // svm_handle_exit_irqoff and svm_invoke_exit_handler calls nothing traced.
    let ex = exits_of(&veg(
        "",
        "  svm_handle_exit_irqoff [kvm_amd] 40\n  __sysvec_apic_timer_interrupt 900 {\n    hrtimer_interrupt 700\n  }\n  svm_handle_exit [kvm_amd] 30 {\n    svm_invoke_exit_handler [kvm_amd] 20\n  }",
    ));
    assert_eq!(only_reason(&ex), "EXTERNAL_INTERRUPT");
    let ev = &ex.reasons[0].evidence[0].name;
    assert!(
        ev.contains("__sysvec_apic_timer_interrupt") && ev.contains("svm_handle_exit_irqoff"),
        "{ev}"
    );
    // The interrupt's time is in the `after` phase (wall time it took), not lost.
    assert_eq!(mean(&ex.reasons[0].after), Some(40 + 1600 + 50));
    // Without the interrupt it stays unknown, and says why: evidence is never empty.
    let ex = exits_of(&veg(
        "",
        "  svm_handle_exit_irqoff [kvm_amd] 40\n  svm_handle_exit [kvm_amd] 30 {\n    svm_invoke_exit_handler [kvm_amd] 20\n  }",
    ));
    assert_eq!(only_reason(&ex), UNKNOWN);
    assert_eq!(ex.reasons[0].evidence[0].name, "svm_invoke_exit_handler called nothing");
    let ex = exits_of("vcpu_enter_guest [kvm] 100 {\n  svm_vcpu_run [kvm_amd] 2000\n}\n");
    assert!(!ex.reasons[0].evidence.is_empty() && !ex.reasons[0].evidence[0].name.is_empty());
}

/// Two KVM_RUN ioctls of one thread: the first ends with an OUT that goes to userspace, the
/// second starts by completing it.
const USERSPACE_IO: &str = "kvm_arch_vcpu_ioctl_run [kvm] 100 {
  vcpu_load [kvm] 300
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 300
  }
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    io_interception [kvm_amd] 400
  }
  vcpu_put [kvm] 200
}
kvm_arch_vcpu_ioctl_run [kvm] 100 {
  vcpu_load [kvm] 300
  complete_fast_pio_out [kvm] 700
  svm_vcpu_run [kvm_amd] 2000
  svm_handle_exit [kvm_amd] 50 {
    kvm_emulate_cpuid [kvm] 300
  }
  vcpu_put [kvm] 200
}
";

#[test]
fn completion_work_belongs_to_the_exit_it_completes() {
    let r = analyse_text(&graph(USERSPACE_IO), exits_opts());
    let ex = r.exits.unwrap();
    let by = |name: &str| ex.reasons.iter().find(|x| x.reason == name).unwrap();
    let io = by("IO");
    assert_eq!(io.count, 1);
    assert_eq!(mean(&io.completion), Some(700), "complete_fast_pio_out finishes the OUT");
    assert_eq!(mean(&io.total), Some(2000 + 450 + 700));
    // The next exit's `before` no longer holds it: vcpu_load only.
    let cpuid = by("CPUID");
    assert_eq!(cpuid.count, 2);
    assert_eq!(cpuid.before.as_ref().map(|d| d.max_ns), Some(300));
    assert_eq!(cpuid.completion.as_ref().map(|d| d.max_ns), Some(0));
    // Nothing is lost: exits + unattributed = both roots.
    let roots: u64 = r.tree.iter().filter_map(|n| n.total_ns).sum();
    let in_exits: u64 = ex.reasons.iter().map(|x| total(&x.total)).sum();
    assert_eq!(in_exits + ex.unattributed_ns, roots);
    // With no earlier exit in the trace, the completion is unattributed, not someone's before.
    let second_only =
        USERSPACE_IO.split_once("}\nkvm_arch").map(|(_, b)| format!("kvm_arch{b}")).unwrap();
    let ex = analyse_text(&graph(&second_only), exits_opts()).exits.unwrap();
    assert_eq!(ex.reasons[0].before.as_ref().map(|d| d.max_ns), Some(300));
    assert_eq!(ex.unattributed_ns, 100 + 700 + 200);
}
