//! Unit tests of the line grammar and the stateful parser, one per format variant.

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink};

use crate::line::{Body, Line, parse_duration, parse_line};
use crate::{TextParser, parse_reader};

/// Renders each record compactly so tests read like the trace.
#[derive(Default)]
struct Collect {
    out: Vec<String>,
    diags: Vec<Diagnostic>,
}

impl RecordSink for Collect {
    fn record(&mut self, r: &Record<'_>) -> Flow {
        let cpu = r.cpu.map_or("-".into(), |c| c.to_string());
        let task = r.task.map_or("-".into(), |t| format!("{}-{}", t.comm, t.pid));
        let ts = r.timestamp.map_or("-".into(), |t| t.to_string());
        let k = match r.kind {
            RecordKind::Entry { func, depth } => format!("entry {func} d{depth}"),
            RecordKind::Exit { func, duration, depth } => format!(
                "exit {} {:?} d{depth}",
                func.map_or("?".into(), |f| f.to_string()),
                duration
            ),
            RecordKind::Leaf { func, duration, depth } => {
                format!("leaf {func} {duration:?} d{depth}")
            }
            RecordKind::Event { name, text, .. } => format!("event {name}: {text}"),
            RecordKind::TaskSwitch { prev, next } => {
                format!("switch {}-{} => {}-{}", prev.comm, prev.pid, next.comm, next.pid)
            }
            RecordKind::Lost { count } => format!("lost {count:?}"),
            RecordKind::IrqMarker { enter } => format!("irq {enter}"),
        };
        self.out.push(format!("{cpu} {task} {ts} {k}"));
        Flow::Continue
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        self.diags.push(d);
        Flow::Continue
    }
}

fn parse(text: &str) -> Collect {
    let mut c = Collect::default();
    let s = parse_reader("t", text.as_bytes(), &mut c).unwrap();
    assert_eq!(
        s.lines,
        s.record_lines + s.ignored_lines + s.error_lines,
        "every line accounted for"
    );
    c
}

fn one(text: &str) -> String {
    let c = parse(text);
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(c.out.len(), 1, "{:?}", c.out);
    c.out[0].clone()
}

#[test]
fn durations_are_exact_integer_nanoseconds() {
    assert_eq!(parse_duration("0.080", "us"), Some(80));
    assert_eq!(parse_duration("4.278", "us"), Some(4278));
    assert_eq!(parse_duration("12202.93", "us"), Some(12_202_930));
    assert_eq!(parse_duration("119760.2", "us"), Some(119_760_200));
    assert_eq!(parse_duration("2000147", "us"), Some(2_000_147_000));
    assert_eq!(parse_duration("1.5", "ms"), Some(1_500_000));
    assert_eq!(parse_duration("2", "s"), Some(2_000_000_000));
    assert_eq!(parse_duration("0.0x0", "us"), None);
    assert_eq!(parse_duration("99999999999999999999", "us"), None);
}

#[test]
fn seed_lines_entry_leaf_exit_with_module_suffix() {
    assert_eq!(
        one("  98)               |  vcpu_enter_guest [kvm]() {"),
        "98 - - entry vcpu_enter_guest [kvm] d0"
    );
    assert_eq!(
        one("  98)   0.080 us    |    svm_prepare_guest_switch [kvm_amd]();"),
        "98 - - leaf svm_prepare_guest_switch [kvm_amd] Some(80) d1"
    );
    assert_eq!(one("  98)   4.278 us    |  }"), "98 - - exit ? Some(4278) d0");
    assert_eq!(one(" 182)   1.223 us    |          }"), "182 - - exit ? Some(1223) d4");
    assert_eq!(
        one("  98)               |        kvm_set_cr8.part.119 [kvm]() {"),
        "98 - - entry kvm_set_cr8.part.119 [kvm] d3"
    );
}

#[test]
fn cpu_column_widths_one_to_four_digits() {
    assert_eq!(
        one(" 0)   0.212 us    |      hrtimer_try_to_cancel();"),
        "0 - - leaf hrtimer_try_to_cancel Some(212) d2"
    );
    assert_eq!(one("  20) + 17.698 us   |  __kmalloc();"), "20 - - leaf __kmalloc Some(17698) d0");
    assert_eq!(one(" 1023)   1.000 us    |  f();"), "1023 - - leaf f Some(1000) d0");
}

#[test]
fn overhead_marks_all_six() {
    for (mark, dur) in [
        ("+", "17.698"),
        ("!", "140.417"),
        ("#", "1837.709"),
        ("*", "12202.93"),
        ("@", "119760.2"),
        ("$", "3594274"),
    ] {
        let line = format!(" 3) {mark} {dur} us  |      }} /* __schedule */");
        let got = one(&line);
        let ns = parse_duration(dur, "us").unwrap();
        assert_eq!(got, format!("3 - - exit __schedule Some({ns}) d2"), "{line}");
    }
}

#[test]
fn old_and_new_seven_digit_padding() {
    assert_eq!(one(" 1)   1000131 us |      }"), "1 - - exit ? Some(1000131000) d2");
    assert_eq!(one(" 0) $ 3594274 us  |  }"), "0 - - exit ? Some(3594274000) d0");
    assert_eq!(one(" 0)   19354026 us |  }"), "0 - - exit ? Some(19354026000) d0");
}

#[test]
fn funcgraph_tail_and_retval_and_retaddr_comments() {
    assert_eq!(
        one(" 0) ! 8147.120 us |  } /* ext3_readpages */"),
        "0 - - exit ext3_readpages Some(8147120) d0"
    );
    assert_eq!(one(" 1)   0.100 us    |    } /* f = 0x1 */"), "1 - - exit f Some(100) d1");
    assert_eq!(one(" 1)   0.100 us    |    } /* f ret=-22 */"), "1 - - exit f Some(100) d1");
    assert_eq!(
        one(" 1)   0.100 us    |    } /* svm_get_msr [kvm_amd] ret=0x0 */"),
        "1 - - exit svm_get_msr [kvm_amd] Some(100) d1"
    );
    assert_eq!(one(" 1)   0.100 us    |    f(); /* = 0x0 */"), "1 - - leaf f Some(100) d1");
    assert_eq!(
        one(" 1)   0.100 us    |    f(); /* <-caller+0x69/0x110 ret=0x0 */"),
        "1 - - leaf f Some(100) d1"
    );
    assert_eq!(one(" 1)               |    f() { /* <-caller+0x24/0x120 */"), "1 - - entry f d1");
}

#[test]
fn funcgraph_args_with_parentheses_and_brackets() {
    assert_eq!(
        one(" 0)               |  __x64_sys_dup2(regs=0xffffd26ac0567f48) {"),
        "0 - - entry __x64_sys_dup2 d0"
    );
    assert_eq!(
        one(" 0)   1.000 us    |  account(index=2 [CPUTIME_SYSTEM], f=(x)(y));"),
        "0 - - leaf account Some(1000) d0"
    );
}

#[test]
fn abstime_and_proc_columns() {
    assert_eq!(
        one("7238523.638008 |   0)               |              finish_task_switch() {"),
        "0 - 7238523638008000 entry finish_task_switch d6"
    );
    assert_eq!(
        one("2678112.003180 |   0)  cksum-26695   | ! 8145.268 us |  } /* ext3_readpages */"),
        "0 cksum-26695 2678112003180000 exit ext3_readpages Some(8145268) d0"
    );
    assert_eq!(
        one(
            "   11.469356 |   0)    cat-245     |               |  __x64_sys_dup2(regs=0xffffd26ac0567f48) { /* <-do_syscall_64+0xaa/0x660 */"
        ),
        "0 cat-245 11469356000 entry __x64_sys_dup2 d0"
    );
    // Proc column with a dash in the comm: pid after the last dash.
    assert_eq!(
        one(" 3)  irq/17--33   |   1.000 us    |  f();"),
        "3 irq/17--33 - leaf f Some(1000) d0"
    );
}

#[test]
fn latency_flags_column() {
    assert_eq!(
        one(" 0)  ...1. |   1.183 us    |  mutex_unlock();"),
        "0 - - leaf mutex_unlock Some(1183) d0"
    );
    assert_eq!(one(" 2)  d.h1. |               |    f() {"), "2 - - entry f d1");
}

#[test]
fn no_duration_column() {
    let c =
        parse(" 1) do_sys_open() {\n 1)   getname() {\n 1)     getname_flags();\n 1)   }\n 1) }\n");
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(
        c.out,
        [
            "1 - - entry do_sys_open d0",
            "1 - - entry getname d1",
            "1 - - leaf getname_flags None d2",
            "1 - - exit ? None d1",
            "1 - - exit ? None d0"
        ]
    );
}

#[test]
fn nocontext_info_bare_bodies() {
    let c = parse("f() {\n  g();\n}\n");
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(c.out, ["- - - entry f d0", "- - - leaf g None d1", "- - - exit ? None d0"]);
}

#[test]
fn irq_markers() {
    assert_eq!(one(" 2)   ==========> |"), "2 - - irq true");
    assert_eq!(one(" 2)   <========== |"), "2 - - irq false");
}

#[test]
fn task_switch_banners_set_the_task_of_following_lines() {
    let c = parse(concat!(
        " 0)   0.100 us    |  a();\n",
        " ------------------------------------------\n",
        " 0) registe-27414  =>  vmstat-27419 \n",
        " ------------------------------------------\n",
        "\n",
        " 0)   0.100 us    |  b();\n",
        " 1)   0.100 us    |  c();\n",
        " 2)    <idle>-0    =>   <...>-5785\n",
        " 3)   kworker-32   =>   irq/17--33  \n",
        " 3)   0.100 us    |  d();\n",
    ));
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(
        c.out,
        [
            "0 - - leaf a Some(100) d0",
            "0 vmstat-27419 - switch registe-27414 => vmstat-27419",
            "0 vmstat-27419 - leaf b Some(100) d0",
            "1 - - leaf c Some(100) d0",
            "2 <...>-5785 - switch <idle>-0 => <...>-5785",
            "3 irq/17--33 - switch kworker-32 => irq/17--33",
            "3 irq/17--33 - leaf d Some(100) d0",
        ]
    );
}

#[test]
fn lost_lines_all_spellings() {
    assert_eq!(one("CPU:3 [LOST 1234 EVENTS]"), "3 - - lost Some(1234)");
    assert_eq!(one("CPU:0 [LOST EVENTS]"), "0 - - lost None");
    assert_eq!(one("CPU:12 [77 EVENTS DROPPED]"), "12 - - lost Some(77)");
    assert_eq!(one("CPU:12 [EVENTS DROPPED]"), "12 - - lost None");
}

#[test]
fn event_comments_inside_graphs_and_printk() {
    assert_eq!(
        one(" 0)               |  /* irq_handler_entry: irq=17 name=3f00b880.mailbox */"),
        "0 - - event irq_handler_entry: irq=17 name=3f00b880.mailbox"
    );
    assert_eq!(
        one(" 3)               |  /* irq=17, process: irq/17-3f00b880  */"),
        "3 - - event : irq=17, process: irq/17-3f00b880"
    );
    assert_eq!(
        one(
            " 1)               |      /* kvm_exit: vcpu 0 reason CPUID rip 0xffffffff8106fd1e info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 */"
        ),
        "1 - - event kvm_exit: vcpu 0 reason CPUID rip 0xffffffff8106fd1e info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000"
    );
    // A comment containing `|` must not be split there.
    assert_eq!(
        one(
            " 0)               |  /* kvm_apic_ipi: dst 1 vec 253 (Fixed|physical|de-assert|edge|dst) */"
        ),
        "0 - - event kvm_apic_ipi: dst 1 vec 253 (Fixed|physical|de-assert|edge|dst)"
    );
}

#[test]
fn multi_line_comments_are_joined() {
    let c =
        parse(" 0)               |  /* first line\nsecond line */\n 0)   0.100 us    |  f();\n");
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(c.out, ["0 - - event : first line\nsecond line", "0 - - leaf f Some(100) d0"]);
}

#[test]
fn event_lines_from_trace_and_trace_pipe() {
    assert_eq!(
        one(
            "           repro-1289    [019] d....   140.314684: kvm_exit: vcpu 0 reason EXCEPTION_NMI rip 0x1 info1 0x0000000000004000"
        ),
        "19 repro-1289 140314684000 event kvm_exit: vcpu 0 reason EXCEPTION_NMI rip 0x1 info1 0x0000000000004000"
    );
    assert_eq!(
        one(
            " qemu-system-x86-18971   [015] d.... 95922.997039: kvm_entry: vcpu 0, rip 0xffffffff8106fd20"
        ),
        "15 qemu-system-x86-18971 95922997039000 event kvm_entry: vcpu 0, rip 0xffffffff8106fd20"
    );
    // No flags (noirq-info), tgid column, raw counter clock.
    assert_eq!(
        one("   kworker/3:1-32    [003]    24.521407: f: x"),
        "3 kworker/3:1-32 24521407000 event f: x"
    );
    assert_eq!(
        one("            bash-1977  (   1977) [000] .... 17284.993652: sys_close: fd=3"),
        "0 bash-1977 17284993652000 event sys_close: fd=3"
    );
    assert_eq!(
        one("   <...>-35787 [038] ....  2825.959082: kvm_exit: vcpu 1 reason npf rip 0x1"),
        "38 <...>-35787 2825959082000 event kvm_exit: vcpu 1 reason npf rip 0x1"
    );
    assert_eq!(one("  a b-c-7 [001] d.... 123456789: x: y"), "1 a b-c-7 123456789 event x: y");
}

#[test]
fn trace_cmd_report_funcgraph_lines() {
    assert_eq!(
        one(
            "          <idle>-0     [000] 157412.933969: funcgraph_entry:                  |  do_IRQ() {"
        ),
        "0 <idle>-0 157412933969000 entry do_IRQ d0"
    );
    assert_eq!(
        one("          <idle>-0     [000] 157412.934004: funcgraph_exit:       + 36.358 us |  }"),
        "0 <idle>-0 157412934004000 exit ? Some(36358) d0"
    );
    assert_eq!(
        one(
            "          <idle>-0     [001]   185.577231: funcgraph_entry:        1.040 us   |  hrtimer_get_next_event();"
        ),
        "1 <idle>-0 185577231000 leaf hrtimer_get_next_event Some(1040) d0"
    );
    let c = parse("cpus=4\nCPU 3 is empty\n");
    assert!(c.out.is_empty() && c.diags.is_empty(), "{:?} {:?}", c.out, c.diags);
}

#[test]
fn capture_prefixes_are_stripped() {
    assert_eq!(
        one("\t   2)   1.792 us    |    load_new_mm_cr3();"),
        "2 - - leaf load_new_mm_cr3 Some(1792) d1"
    );
    assert_eq!(one("[  210.222389]   0)   0.100 us    |  f();"), "0 - - leaf f Some(100) d0");
    assert_eq!(one(">  0)   0.100 us    |  f();"), "0 - - leaf f Some(100) d0");
}

#[test]
fn headers_and_frames_are_ignored() {
    let c = parse(
        "# tracer: function_graph\n#\n# CPU  DURATION                  FUNCTION CALLS\n# |     |   |                     |   |   |   |\ncpus=2\n (Overruns: 3)\n\n",
    );
    assert!(c.out.is_empty() && c.diags.is_empty());
}

#[test]
fn bad_lines_name_line_column_expected_and_found() {
    let c = parse(" 0)   0.080 us    |  f();\n 0)   0.0x0 us    |  g();\nhello world\n");
    assert_eq!(c.out.len(), 1);
    assert_eq!(c.diags.len(), 2);
    assert_eq!(
        c.diags[0].to_string(),
        "t:2:7: error: expected a duration like \"0.080 us\" before `|`, found \"0.0x0 us    |  g();\""
    );
    assert_eq!(c.diags[1].line, 3);
    assert!(c.diags[1].message.starts_with("expected a function_graph line"), "{}", c.diags[1]);
}

#[test]
fn binary_junk_and_huge_lines_are_diagnosed_not_panicked() {
    let mut junk = vec![0x17u8, 0x08, 0x44, b't', b'r', 0xff, 0xfe, b'\n'];
    junk.extend(std::iter::repeat_n(b'a', 1 << 20));
    junk.push(b'\n');
    let mut c = Collect::default();
    let s = parse_reader("junk", &junk[..], &mut c).unwrap();
    assert_eq!(s.records, 0);
    assert_eq!(s.error_lines, 2);
    assert!(c.diags[0].message.contains("UTF-8"), "{}", c.diags[0]);
    assert!(c.diags[1].message.contains("1048576 bytes"), "{}", c.diags[1]);
}

#[test]
fn line_grammar_direct() {
    assert_eq!(parse_line("").unwrap(), Line::Skip);
    assert!(matches!(
        parse_line(" 0)   0.1 us |  f();").unwrap(),
        Line::Graph { body: Body::Leaf { .. }, .. }
    ));
}

/// Found by the `ftrace_text` fuzz target: a timestamp with two dots underflowed.
#[test]
fn regression_fuzz_timestamp_with_two_dots() {
    let c = parse("  a-1 [000] 1.2.3: e: x\n");
    assert!(c.out.is_empty());
    assert_eq!(c.diags.len(), 1);
}

/// Issue 13 (3): event lines whose task, CPU or flags columns were cut when pasted are still
/// read; whatever is missing is left unknown.
#[test]
fn event_lines_with_trimmed_columns() {
    let exit = "kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0";
    for (line, want) in [
        (format!("  <idle>-0  [005] d..2. 123.456789: {exit}"), "5 <idle>-0 123456789000"),
        (format!("  <idle>-0  [005] 123.456789: {exit}"), "5 <idle>-0 123456789000"),
        (format!("  <idle>-0  d..2. 123.456789: {exit}"), "- <idle>-0 123456789000"),
        (format!("  <idle>-0 123.456789: {exit}"), "- <idle>-0 123456789000"),
        (format!("[005] d..2. 123.456789: {exit}"), "5 - 123456789000"),
        (format!("d..2. 123.456789: {exit}"), "- - 123456789000"),
        (format!("123.456789: {exit}"), "- - 123456789000"),
        (format!("123.456: {exit}"), "- - 123456000000"),
        (format!("   opt cgu.0-6915 [001] 12.5: {exit}"), "1 opt cgu.0-6915 12500000000"),
    ] {
        assert_eq!(one(&line), format!("{want} event {exit}"), "{line}");
    }
    // A timestamp is what makes it an event line: without one it is an error as before.
    let c = parse(&format!("  <idle>-0  [005] d..2. {exit}\n"));
    assert!(c.out.is_empty());
    assert!(c.diags[0].message.contains("a timestamp like"), "{}", c.diags[0]);
    // A number and a colon in prose is not an event.
    let c = parse("Elapsed 12.5: done\nTook 3: seconds in total\n");
    assert!(c.out.is_empty(), "{:?}", c.out);
    assert_eq!(c.diags.len(), 2);
}

/// Issue 13 (7): `ftrace_dump` prints non-graph tracers in latency format, through printk:
/// `%8.8s-%-7d %3d` + flags, then `%4lldus%c: ` (µs since the buffer start and a delay
/// mark), then the event.
#[test]
fn ftrace_dump_latency_format_lines() {
    assert_eq!(
        one(
            "[  210.222389] rcu_tort-155       1d..2. 10347723897us : sched_switch: prev_comm=rcu_torture_wri prev_pid=155 prev_prio=120 prev_state=I ==> next_comm=swapper/1 next_pid=0 next_prio=120"
        ),
        "1 rcu_tort-155 10347723897000 event sched_switch: prev_comm=rcu_torture_wri prev_pid=155 prev_prio=120 prev_state=I ==> next_comm=swapper/1 next_pid=0 next_prio=120"
    );
    assert_eq!(
        one(
            "  <idle>-0         0dNh4. 1234us!: sched_wakeup: comm=kworker/0:1 pid=7 prio=120 target_cpu=000"
        ),
        "0 <idle>-0 1234000 event sched_wakeup: comm=kworker/0:1 pid=7 prio=120 target_cpu=000"
    );
    assert_eq!(
        one("  kworker-7          3.N.1.   55us+: irq_enter_rcu <-sysvec_apic_timer_interrupt"),
        "3 kworker-7 55000 event function: irq_enter_rcu <-sysvec_apic_timer_interrupt"
    );
}

/// Issue 13 (7): the function tracer's `func <-parent` lines, with module suffixes and
/// sym-offset, and without the parent (noprint-parent).
#[test]
fn function_tracer_lines() {
    assert_eq!(
        one(
            "          <idle>-0       [003] d.s2.    24.521407: _raw_spin_unlock <-rq_unlock_irqrestore"
        ),
        "3 <idle>-0 24521407000 event function: _raw_spin_unlock <-rq_unlock_irqrestore"
    );
    assert_eq!(
        one(
            "   qemu-1234    [001] .....   5.000001: vcpu_enter_guest [kvm] <-kvm_arch_vcpu_ioctl_run+0x1a/0x40 [kvm]"
        ),
        "1 qemu-1234 5000001000 event function: vcpu_enter_guest [kvm] <-kvm_arch_vcpu_ioctl_run+0x1a/0x40 [kvm]"
    );
    assert_eq!(
        one("   qemu-1234    [001] .....   5.000002: schedule"),
        "1 qemu-1234 5000002000 event function: schedule"
    );
}

/// Issue 13 (7): `trace-cmd report` of an instance buffer prefixes every line with the
/// instance's name, lost-event markers included.
#[test]
fn trace_cmd_report_of_an_instance_buffer() {
    let c = parse(
        "cpus=2\ninst: CPU 0 is empty\ntdfix-6812:          python3-6817  [000]   390.136899184: kvm_pio:              pio_write at 0x10 size 1 count 1 val 0x41 \ninst: CPU:1 [EVENTS DROPPED]\ninst: CPU:0 [48009 EVENTS DROPPED]\n",
    );
    assert!(c.diags.is_empty(), "{:?}", c.diags);
    assert_eq!(
        c.out,
        [
            "0 python3-6817 390136899184 event kvm_pio: pio_write at 0x10 size 1 count 1 val 0x41",
            "1 - - lost None",
            "0 - - lost Some(48009)",
        ]
    );
}

/// Issue 13 (8): a funcgraph-tail comment written as a call (`} /* putname() */`, as the
/// kernel documentation prints it) still names the function.
#[test]
fn tail_comment_with_parentheses() {
    assert_eq!(one(" 1)   2.000 us    |  } /* putname() */"), "1 - - exit putname Some(2000) d0");
    assert_eq!(
        one(" 1)   2.000 us    |  } /* vcpu_run [kvm]() */"),
        "1 - - exit vcpu_run [kvm] Some(2000) d0"
    );
}

/// A live stream cut at every byte position gives the records of the whole text, and lines
/// go to the sink of the push that completes them.
#[test]
fn feed_gives_the_records_of_the_whole_text_wherever_it_is_cut() {
    let text = "# tracer: nop\n\
        \x20 vmm-5 [001] ..... 9.000001: kvm_pio: pio_read at 0x4d0 size 1 count 1 val 0x0\r\n\
        CPU:1 [LOST 3 EVENTS]\n\
        \x20 vmm-5 [001] ..... 9.000009: kvm_cpuid: func 0 idx 0 rax 1 rbx 2 rcx 3 rdx 4\n\
        \x20 vmm-5 [001] ..... 9.000012: kvm_pio: pio_write at 0x3f0 size 1 count 1 val 0x1";
    let mut whole = Collect::default();
    let s = parse_reader("t", text.as_bytes(), &mut whole).unwrap();
    for cut in 0..=text.len() {
        let mut feed = crate::Feed::new("t");
        let (mut a, mut b) = (Collect::default(), Collect::default());
        feed.push(&text.as_bytes()[..cut], &mut a);
        feed.push(&text.as_bytes()[cut..], &mut b);
        let done = feed.finish(&mut b);
        a.out.extend(b.out);
        assert_eq!(a.out, whole.out, "cut at {cut}");
        assert_eq!((done.lines, done.records, done.bytes), (s.lines, s.records, s.bytes));
    }
}

#[test]
fn feed_skips_an_over_long_line_with_a_diagnostic() {
    let mut feed = crate::Feed::new("t");
    let mut c = Collect::default();
    let long = vec![b'x'; crate::reader::MAX_LINE + 10];
    feed.push(&long, &mut c);
    feed.push(b"yy\n  vmm-5 [001] ..... 9.000001: kvm_cpuid: func 0\n", &mut c);
    let _ = feed.finish(&mut c);
    assert_eq!(c.out.len(), 1, "{:?}", c.out);
    assert!(c.diags[0].message.contains("shorter than"), "{:?}", c.diags);
    assert_eq!(c.diags[0].line, 1);
}

/// Every line of every text fixture of the workspace, split as the reader splits them.
fn fixture_lines() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![root.join("tests/data"), root.join("crates/exitscope-analyze/tests/data")];
    let mut out = Vec::new();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                out.extend(text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned()));
            }
        }
    }
    out
}

/// Lines of the common shapes the shortcuts in `parse_line` take, and lines one byte away
/// from them.
fn near_common_lines() -> Vec<String> {
    let seeds = [
        " 99)               |  vcpu_enter_guest [kvm]() {",
        " 99)   0.092 us    |    svm_prepare_guest_switch [kvm_amd]();",
        " 99)   0.337 us    |      }",
        " 1) + 10.5 us   |  } /* f */",
        "  3)   1.000 ms  |  f(a=1, b=(2));",
        " 0)   5 s|  g [m]();",
        " 12) $ 1.5 ns |}",
        " CPU 1/KVM-2001 [001] d..1. 1.000000: kvm_exit: vcpu 1 reason CPUID rip 0xffff info1 0x0",
        " CPU 1/KVM-2001 [001] d..1. 1.000001: kvm_entry: vcpu 1, rip 0xffffffff81000002",
        "  qemu-system-x86-1234  [003] .... 12.5: kvm_pio: pio_read at 0x4d0 size 1 count 1",
        " <...>-77 [000] d.h1. 9.000001: funcgraph_entry:        |  f() {",
    ];
    let subst = [
        " ", "\t", "|", ")", "(", ".", "0", "9", "x", "+", "!", "=", "<", "s", "u", "n", "/", "*",
        "{", "}", ";", "[", "]", ":", "-", "é", "", "  ", "\r", "\u{a0}",
    ];
    let mut out = Vec::new();
    for seed in seeds {
        out.push(seed.to_owned());
        for (at, _) in seed.char_indices() {
            let next = seed[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            for s in subst {
                out.push(format!("{}{s}{}", &seed[..at], &seed[next..]));
                out.push(format!("{}{s}{}", &seed[..at], &seed[at..]));
            }
        }
    }
    out
}

#[test]
fn shortcuts_agree_with_the_general_grammar() {
    let lines: Vec<String> = fixture_lines().into_iter().chain(near_common_lines()).collect();
    assert!(lines.len() > 10_000, "only {} lines", lines.len());
    for l in &lines {
        assert_eq!(parse_line(l), crate::line::parse_line_general(l), "{l:?}");
    }
}

#[test]
fn common_records_are_the_records_of_the_parsed_line() {
    let lines: Vec<String> = fixture_lines().into_iter().chain(near_common_lines()).collect();
    let mut taken = 0;
    for l in &lines {
        let Some((cpu, kind)) = crate::line::common_graph_record(l) else { continue };
        taken += 1;
        let parsed = parse_line(l);
        let taken = matches!(parsed, Ok(Line::Graph { abstime: None, task: None, .. }));
        assert!(taken, "{l:?}: shortcut took it, parse_line says {parsed:?}");
        let Ok(Line::Graph { cpu: c, body, .. }) = parsed else { continue };
        assert_eq!(c, Some(cpu), "{l:?}");
        assert!(!matches!(body, Body::Comment { .. } | Body::Irq { .. }), "{l:?}");
        assert_eq!(crate::body_kind(body), kind, "{l:?}");
    }
    assert!(taken > 1000, "only {taken} lines took the shortcut");
}

/// A parser fed through [`TextParser::common_line`] where it takes the line gives the
/// records, diagnostics and counts of [`TextParser::line`] alone.
#[test]
fn common_lines_apply_as_parsed_lines() {
    #[derive(Default)]
    struct Log(Vec<String>);
    impl RecordSink for Log {
        fn record(&mut self, r: &Record<'_>) -> Flow {
            self.0.push(format!("{r:?}"));
            Flow::Continue
        }
        fn diagnostic(&mut self, d: Diagnostic) -> Flow {
            self.0.push(format!("{d:?}"));
            Flow::Continue
        }
    }
    let mut lines = fixture_lines();
    // Banners give lines without a task column their task; an open comment takes lines.
    lines.insert(lines.len() / 2, " 1) qemu-77 => vcpu-88".to_owned());
    lines.insert(lines.len() / 3, " 1)   |  /* printk: open".to_owned());
    let (mut a, mut b) = (TextParser::new("x"), TextParser::new("x"));
    let (mut la, mut lb) = (Log::default(), Log::default());
    for (i, l) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        a.line(l.as_bytes(), n, &mut la);
        if b.common_line(l, n, &mut lb).is_none() {
            b.line(l.as_bytes(), n, &mut lb);
        }
    }
    assert_eq!(la.0, lb.0);
    assert_eq!(a.finish(&mut la), b.finish(&mut lb));
}
