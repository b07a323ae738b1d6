//! Call rebuilding and merging on the seed and on hand-made edge cases.

use exitscope_ftrace::parse_reader;

use crate::report::{Report, TreeNode};
use crate::{Analysis, AnalysisOptions};
use exitscope_model::{InputSink, InputSummary};

fn analyse(inputs: &[(&str, &str)]) -> Report {
    let mut a = Analysis::new(AnalysisOptions::default());
    for (name, text) in inputs {
        a.begin_input(name, exitscope_model::InputFormat::FtraceText);
        let s = parse_reader(name, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    }
    a.finish()
}

fn seed(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/seed/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

fn root<'a>(r: &'a Report, f: &str) -> &'a TreeNode {
    r.tree.iter().find(|n| n.function == f).unwrap_or_else(|| panic!("no root {f}"))
}

#[test]
fn seed_amd_numbers_are_exact() {
    let r = analyse(&[("amd", &seed("cpuid-amd.fgraph.txt"))]);
    assert_eq!(r.roots, 3);
    let v = root(&r, "vcpu_enter_guest");
    assert_eq!((v.count, v.total_ns, v.self_ns), (1, Some(4278), Some(541)));
    assert_eq!(v.module.as_deref(), Some("kvm"));
    let run = v.children.iter().find(|c| c.function == "svm_vcpu_run").unwrap();
    assert_eq!(run.total_ns, Some(2265));
    let c = root(&r, "cpuid_interception");
    assert_eq!((c.count, c.min_ns, c.max_ns, c.total_ns), (2, Some(1082), Some(2525), Some(3607)));
    assert_eq!((c.p50_ns, c.p99_ns, c.mean_ns), (Some(1082), Some(2525), Some(1804)));
    // The slow path exists only in the second call: count 1 below a count-2 parent.
    let msr = c.find("__kvm_get_msr").unwrap();
    assert_eq!((msr.count, msr.total_ns), (1, Some(1443)));
    assert_eq!(r.incomplete.count + r.orphans.count, 0);
}

#[test]
fn seed_intel_numbers_are_exact() {
    let r = analyse(&[("intel", &seed("cpuid-intel.fgraph.txt"))]);
    assert_eq!(root(&r, "vcpu_enter_guest").total_ns, Some(5684));
    let k = root(&r, "kvm_emulate_cpuid");
    assert_eq!((k.count, k.min_ns, k.max_ns), (2, Some(1704), Some(5116)));
}

#[test]
fn flat_profile_deduplicates_recursion() {
    let text = " 0)               |  f() {\n 0)               |    g() {\n 0)   1.000 us    |      f();\n 0)   3.000 us    |    }\n 0)   5.000 us    |  }\n";
    let r = analyse(&[("t", text)]);
    let f = r.flat.iter().find(|e| e.function == "f").unwrap();
    assert_eq!((f.calls, f.count, f.total_ns, f.self_ns), (2, 1, Some(5000), Some(2000 + 1000)));
}

#[test]
fn orphans_and_incomplete_stay_out_of_the_statistics() {
    let text = concat!(
        " 0)   9.000 us    |    } /* schedule */\n", // orphan at trace start
        " 0)   1.000 us    |  }\n",                  // orphan without name
        " 0)               |  a() {\n",
        " 0)   0.500 us    |    b();\n",
        " 0)   2.000 us    |  }\n",
        " 1)               |  c() {\n", // never closes
        " 1)   0.100 us    |    d();\n",
    );
    let r = analyse(&[("t", text)]);
    assert_eq!(r.roots, 1);
    assert_eq!(r.tree.len(), 1);
    assert_eq!(r.orphans.count, 2);
    assert_eq!(
        r.orphans
            .functions
            .iter()
            .find(|o| o.function.as_deref() == Some("schedule"))
            .unwrap()
            .total_ns,
        9000
    );
    assert_eq!(r.incomplete.count, 1);
    assert_eq!(r.incomplete.functions[0].function, "c");
    assert_eq!(r.incomplete.functions[0].reason, "end_of_input");
    assert_eq!(r.incomplete.discarded_calls, 1);
}

#[test]
fn lost_events_cut_open_calls_on_that_cpu() {
    let text = " 0)               |  a() {\n 1)               |  x() {\nCPU:0 [LOST 5 EVENTS]\n 0)   1.000 us    |  }\n 1)   2.000 us    |  }\n";
    let r = analyse(&[("t", text)]);
    assert_eq!(r.lost_events.markers, 1);
    assert_eq!(r.lost_events.events, 5);
    assert_eq!(r.incomplete.functions[0].reason, "lost_events");
    assert_eq!(r.orphans.count, 1, "a's return after the cut is an orphan");
    assert_eq!(root(&r, "x").total_ns, Some(2000));
}

#[test]
fn nesting_follows_tasks_across_switches_and_migrations() {
    // Task 10 enters a() on CPU 0, is switched out, another task runs, and 10 returns on CPU 1.
    let text = concat!(
        " 0)  t-10   |               |  a() {\n",
        " 0)  u-20   |               |  b() {\n",
        " 1)  t-10   |   0.100 us    |    c();\n",
        " 1)  t-10   |   5.000 us    |  }\n",
        " 0)  u-20   |   1.000 us    |  }\n",
    );
    let r = analyse(&[("t", text)]);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let a = root(&r, "a");
    assert_eq!(
        (a.total_ns, a.self_ns, a.children[0].function.as_str()),
        (Some(5000), Some(4900), "c")
    );
    assert_eq!(root(&r, "b").total_ns, Some(1000));
}

#[test]
fn banner_resumes_task_mid_stack() {
    // Without a proc column, tasks are known from banners only; task 7 resumes in schedule().
    let text = concat!(
        " 0)               |  schedule() {\n",
        " ------------------------------------------\n",
        " 0)    a-7    =>    b-8   \n",
        " ------------------------------------------\n",
        "\n",
        " 0)   0.200 us    |  f();\n",
        " ------------------------------------------\n",
        " 0)    b-8    =>    a-7   \n",
        " ------------------------------------------\n",
        "\n",
        " 0)   9.000 us    |  }\n",
    );
    let r = analyse(&[("t", text)]);
    assert_eq!(root(&r, "schedule").total_ns, Some(9000));
    assert_eq!(root(&r, "f").total_ns, Some(200));
    assert_eq!(r.orphans.count + r.incomplete.count, 0);
}

#[test]
fn interrupts_nested_without_markers_are_flagged_and_not_self_time() {
    let text = concat!(
        " 0)               |  kvm_emulate_cpuid() {\n",
        " 0)               |    __sysvec_apic_timer_interrupt() {\n",
        " 0)   3.000 us    |      hrtimer_interrupt();\n",
        " 0)   4.000 us    |    }\n",
        " 0)   5.000 us    |  }\n",
    );
    let r = analyse(&[("t", text)]);
    let k = root(&r, "kvm_emulate_cpuid");
    assert_eq!(k.self_ns, Some(1000));
    assert!(!k.interrupt);
    assert!(k.children[0].interrupt && k.children[0].children[0].interrupt);
}

#[test]
fn irq_markers_flag_the_handler_subtree() {
    let text = concat!(
        " 2)               |  f() {\n",
        " 2)   ==========> |\n",
        " 2)   1.000 us    |    handler();\n",
        " 2)   <========== |\n",
        " 2)   0.100 us    |    g();\n",
        " 2)   2.000 us    |  }\n",
    );
    let r = analyse(&[("t", text)]);
    let f = root(&r, "f");
    assert!(f.children[0].interrupt);
    assert!(!f.children[1].interrupt);
}

#[test]
fn named_return_skipping_a_frame_marks_it_incomplete() {
    let text = concat!(
        " 0)               |  a() {\n",
        " 0)               |    b() {\n",
        " 0)   3.000 us    |  } /* a */\n",
    );
    let r = analyse(&[("t", text)]);
    let a = root(&r, "a");
    assert_eq!(a.total_ns, Some(3000));
    assert_eq!(a.children[0].count, 0, "b's call is not counted: its return was lost");
    assert_eq!(r.incomplete.functions[0].function, "b");
    assert_eq!(r.incomplete.functions[0].reason, "skipped_by_return");
}

#[test]
fn indentation_disagreeing_with_braces_warns() {
    let text =
        " 0)               |  a() {\n 0)   1.000 us    |      b();\n 0)   2.000 us    |  }\n";
    let r = analyse(&[("t", text)]);
    assert_eq!(r.diagnostic_counts.warnings, 1);
    assert_eq!(root(&r, "a").total_ns, Some(2000));
}

#[test]
fn inputs_do_not_share_stacks() {
    let r = analyse(&[("a", " 0)               |  a() {\n"), ("b", " 0)   1.000 us    |  }\n")]);
    assert_eq!(r.incomplete.count, 1);
    assert_eq!(r.orphans.count, 1);
    assert_eq!(r.inputs.len(), 2);
}

#[test]
fn no_duration_column_gives_counts_and_null_times() {
    let r = analyse(&[("t", " 1) do_sys_open() {\n 1)   getname();\n 1) }\n")]);
    let d = root(&r, "do_sys_open");
    assert_eq!((d.count, d.total_ns, d.children[0].count), (1, None, 1));
}

/// Every root of `text`, as the builder hands it out, plus the report.
fn roots_of(text: &str) -> (Vec<crate::calls::RootCall>, Report) {
    #[derive(Default)]
    struct Keep(Vec<crate::calls::RootCall>);
    impl crate::calls::CallSink for Keep {
        fn root(&mut self, r: &crate::calls::RootCall, _f: &crate::funcs::FuncTable) {
            self.0.push(r.clone());
        }
    }
    let mut keep = Keep::default();
    let mut a = Analysis::new(AnalysisOptions::default());
    a.add_call_sink(&mut keep);
    a.begin_input("t", exitscope_model::InputFormat::FtraceText);
    let s = parse_reader("t", text.as_bytes(), &mut a).unwrap();
    a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
    let r = a.finish();
    for root in &keep.0 {
        root.check_conservation().unwrap();
    }
    (keep.0, r)
}

/// Issue 13 (1): an interrupt printed before a *leaf* it interrupted (the leaf's entry was
/// recorded after the interrupt, its return right after) goes inside the leaf.
#[test]
fn interrupt_printed_before_a_leaf_goes_inside_it() {
    let text = concat!(
        " 0)               |  f() {\n",
        " 0)               |      irq_enter_rcu() {\n",
        " 0)   0.500 us    |        irqtime_account_irq();\n",
        " 0)   1.000 us    |      }\n",
        " 0) + 12.000 us   |    g();\n",
        " 0) + 13.000 us   |  }\n",
    );
    let (roots, r) = roots_of(text);
    assert_eq!(roots.len(), 1);
    let f = root(&r, "f");
    assert_eq!((f.self_ns, f.children.len()), (Some(1000), 1));
    let g = &f.children[0];
    assert_eq!((g.function.as_str(), g.total_ns, g.self_ns), ("g", Some(12000), Some(11000)));
    assert!(g.children[0].interrupt);
    assert_eq!(r.diagnostic_counts.warnings, 1, "{:?}", r.diagnostics);
    assert!(r.diagnostics[0].message.contains("placed inside that call"), "{:?}", r.diagnostics);
}

/// When the next call is too short to hold the interrupt, the braces are followed (and the
/// indentation mismatch reported), and time is still conserved.
#[test]
fn interrupt_printed_too_deep_stays_when_the_next_call_cannot_hold_it() {
    let text = concat!(
        " 0)               |  f() {\n",
        " 0)               |      irq_enter_rcu() {\n",
        " 0)   5.000 us    |        irqtime_account_irq();\n",
        " 0)   6.000 us    |      }\n",
        " 0)   1.000 us    |    g();\n",
        " 0) + 10.000 us   |  }\n",
    );
    let (_, r) = roots_of(text);
    let f = root(&r, "f");
    assert_eq!(f.self_ns, Some(3000));
    assert_eq!(f.children[0].function, "irq_enter_rcu");
    assert!(r.diagnostics.iter().any(|d| d.message.starts_with("indentation says depth 2")));
}

/// An interrupt after the *root*'s return time was taken becomes a root of its own.
#[test]
fn interrupt_after_the_roots_return_becomes_its_own_root() {
    let text = concat!(
        " 0)               |  vcpu_enter_guest() {\n",
        " 0)   1.000 us    |    kvm_cpuid();\n",
        " 0)               |    __sysvec_apic_timer_interrupt() {\n",
        " 0) + 50.000 us   |      hrtimer_interrupt();\n",
        " 0) + 51.000 us   |    }\n",
        " 0)   3.000 us    |  }\n",
    );
    let (roots, r) = roots_of(text);
    assert_eq!((roots.len(), r.roots), (2, 2));
    let v = root(&r, "vcpu_enter_guest");
    assert_eq!((v.total_ns, v.self_ns, v.children.len()), (Some(3000), Some(2000), 1));
    let irq = root(&r, "__sysvec_apic_timer_interrupt");
    assert_eq!((irq.total_ns, irq.interrupt), (Some(51000), true));
}

/// Durations nothing explains (children longer than the call, no interrupt among them):
/// the root is counted apart with a warning, never given clamped self times.
#[test]
fn contradicting_durations_leave_the_root_out_of_the_statistics() {
    let text = concat!(
        " 0)               |  f() {\n",
        " 0)   5.000 us    |    g();\n",
        " 0)   2.000 us    |  }\n",
        " 0)   1.000 us    |  h();\n",
    );
    let (roots, r) = roots_of(text);
    assert_eq!(roots.len(), 1, "only h");
    assert_eq!(r.incomplete.functions[0].function, "f");
    assert_eq!(r.incomplete.functions[0].reason, "durations_contradict");
    assert_eq!(r.incomplete.discarded_calls, 1);
    let w = &r.diagnostics[0];
    assert_eq!(w.line, 1);
    assert!(w.message.contains("take 5000 ns of its 2000 ns"), "{}", w.message);
}

/// A long call printed with 1 µs resolution (7 digits) can be shorter than its exactly
/// printed children by less than that: it is the truncation, not a contradiction.
#[test]
fn a_duration_truncated_below_its_childrens_sum_is_widened_within_its_resolution() {
    let text = concat!(
        " 0)               |  schedule() {\n",
        " 0) $ 1999999 us  |    __schedule();\n",
        " 0)   0.900 us    |    finish_task_switch();\n",
        " 0)   0.500 us    |    balance_callbacks();\n",
        " 0) $ 2000000 us  |  }\n",
    );
    let (roots, r) = roots_of(text);
    assert_eq!(roots[0].nodes[0].duration, Some(2_000_000_400));
    assert_eq!(root(&r, "schedule").self_ns, Some(0));
    assert_eq!(r.diagnostics.len(), 1);
    assert!(
        r.diagnostics[0].message.starts_with("1 call(s) printed shorter"),
        "{:?}",
        r.diagnostics
    );
}

/// The children of a call whose return was lost are charged to no one's self time: its
/// caller's self excludes them.
#[test]
fn children_of_a_call_whose_return_was_lost_are_not_its_callers_self_time() {
    let text = concat!(
        " 0)               |  a() {\n",
        " 0)               |    b() {\n",
        " 0)   1.000 us    |      c();\n",
        " 0)   3.000 us    |  } /* a */\n",
    );
    let (roots, r) = roots_of(text);
    assert_eq!(roots.len(), 1);
    assert_eq!(root(&r, "a").self_ns, Some(2000));
}

/// Found by the `tracedat` fuzz target: depths near `u32::MAX` (trace.dat records carry any
/// depth) overflowed the indentation cross-check.
#[test]
fn regression_fuzz_depth_near_u32_max() {
    use exitscope_model::{Func, Record, RecordKind, RecordSink};
    let mut a = Analysis::new(AnalysisOptions::default());
    a.begin_input("t", exitscope_model::InputFormat::TraceDat);
    let f = Func::new("f", None);
    for (depth, kind) in [(u32::MAX - 1, 0), (u32::MAX, 0), (u32::MAX, 1), (u32::MAX, 0)] {
        let kind = match kind {
            0 => RecordKind::Entry { func: f, depth },
            _ => RecordKind::Exit { func: None, duration: Some(10), depth },
        };
        a.record(&Record { line: 0, cpu: Some(0), task: None, timestamp: None, kind });
    }
    a.end_input(&InputSummary::default());
    let r = a.finish();
    assert_eq!(r.incomplete.count, 2, "the outer call and the last one never returned");
}

#[test]
fn report_host_is_the_inputs_recording_host_or_none() {
    let host = |release: &str, load: f64| {
        let mut f = exitscope_host::Fingerprint::default();
        f.cpu.model_name = Some("AMD EPYC".into());
        f.os.release = Some(release.into());
        f.loadavg = Some([load, load, load]);
        f
    };
    let report = |hosts: &[Option<exitscope_host::Fingerprint>]| {
        let mut a = Analysis::new(AnalysisOptions::default());
        for (i, h) in hosts.iter().enumerate() {
            a.begin_input(&format!("t{i}.txt"), exitscope_model::InputFormat::FtraceText);
            a.end_input(&InputSummary { host: h.clone(), ..Default::default() });
        }
        a.finish()
    };
    // None: never guessed.
    assert_eq!(report(&[None]).host, None);
    let one = report(&[Some(host("6.1", 0.5))]);
    assert_eq!(one.host, Some(host("6.1", 0.5)));
    assert_eq!(one.diagnostic_counts.warnings, 0);
    // Two recordings on one host (only the load moved): the first one's.
    let two = report(&[Some(host("6.1", 0.5)), Some(host("6.1", 3.0))]);
    assert_eq!(two.host, Some(host("6.1", 0.5)));
    assert_eq!(two.diagnostic_counts.warnings, 0);
    // Different kernels, or one input that does not say: unknown, and a warning names it.
    for hosts in [
        vec![Some(host("6.1", 0.5)), Some(host("6.6", 0.5))],
        vec![Some(host("6.1", 0.5)), None],
        vec![None, Some(host("6.1", 0.5))],
    ] {
        let r = report(&hosts);
        assert_eq!(r.host, None, "{hosts:?}");
        assert_eq!(r.diagnostic_counts.warnings, 1, "{:?}", r.diagnostics);
        assert!(r.diagnostics[0].message.contains("host is left unknown"), "{:?}", r.diagnostics);
    }
}

/// What the analysis tells binary readers about event text: the exit events' text always;
/// any other event's only inside an open call and only when a call sink reads roots.
#[test]
fn event_text_is_asked_for_where_it_is_read() {
    use exitscope_model::{Record, RecordKind, RecordSink, Task, TextUse};
    struct Roots;
    impl crate::calls::CallSink for Roots {
        fn root(&mut self, _: &crate::calls::RootCall, _: &crate::funcs::FuncTable) {}
    }
    let task = Some(Task { comm: "qemu", pid: 7, tgid: None });
    let at = |kind| Record { line: 0, cpu: Some(0), task, timestamp: Some(1), kind };
    let fpu = at(RecordKind::Event { name: "kvm_fpu", text: "", exit: None });
    let bare = Analysis::new(AnalysisOptions::default());
    for e in ["sched_switch", "kvm_pio", "kvm_mmio", "kvm_msr"] {
        assert_eq!(bare.text_use(e), TextUse::Always, "{e}");
    }
    // kvm_exit: what parse_kvm_exit reads, which a reader may hand decoded; the text only in
    // a call's root (the graph's exits read it there).
    assert_eq!(bare.text_use("kvm_exit"), TextUse::Parsed);
    let kvm_exit = at(RecordKind::Event { name: "kvm_exit", text: "", exit: None });
    assert!(!bare.wants_text(&kvm_exit));
    assert_eq!(bare.text_use("kvm_fpu"), TextUse::Never);
    // kvm_entry: for the vCPU number its kvm_exit did not print.
    assert_eq!(bare.text_use("kvm_entry"), TextUse::Sometimes);
    let entry = at(RecordKind::Event { name: "kvm_entry", text: "", exit: None });
    let mut e = Analysis::new(AnalysisOptions::default());
    e.begin_input("t", exitscope_model::InputFormat::TraceDat);
    assert!(!e.wants_text(&entry), "no exit waits");
    e.record(&at(RecordKind::Event {
        name: "kvm_exit",
        text: "reason CPUID rip 0x1 info 0 0",
        exit: None,
    }));
    assert!(e.wants_text(&entry), "its exit has no vCPU number");
    e.record(&at(RecordKind::Event { name: "kvm_entry", text: "vcpu 3", exit: None }));
    e.record(&at(RecordKind::Event {
        name: "kvm_exit",
        text: "vcpu 3 reason CPUID rip 0x1",
        exit: None,
    }));
    assert!(!e.wants_text(&entry), "its exit has one");
    let mut roots = Roots;
    let mut a = Analysis::new(AnalysisOptions::default());
    a.add_call_sink(&mut roots);
    a.begin_input("t", exitscope_model::InputFormat::TraceDat);
    assert_eq!(a.text_use("kvm_fpu"), TextUse::Sometimes);
    assert!(!a.wants_text(&fpu), "no open call");
    let f = exitscope_model::Func::new("vcpu_enter_guest", None);
    a.record(&at(RecordKind::Entry { func: f, depth: 0 }));
    assert!(a.wants_text(&fpu), "inside vcpu_enter_guest");
    assert!(a.wants_text(&kvm_exit), "inside vcpu_enter_guest");
    a.record(&at(RecordKind::Exit { func: None, duration: None, depth: 0 }));
    assert!(!a.wants_text(&fpu), "after it returned");
    // A record sink that reads every text makes it always.
    struct All;
    impl RecordSink for All {
        fn record(&mut self, _: &Record<'_>) -> exitscope_model::Flow {
            exitscope_model::Flow::Continue
        }
    }
    let mut all = All;
    let mut b = Analysis::new(AnalysisOptions::default());
    b.add_record_sink(&mut all);
    assert_eq!(b.text_use("kvm_fpu"), TextUse::Always);
}
