//! kvm_exit / kvm_entry / kvm_msr records rendered with the real format files of a 6.18
//! kernel (tests/data/tracedat/formats/, copied from /sys/kernel/tracing/events/kvm):
//! reason names come from the `__print_symbolic` tables stored in the file, for VMX and
//! SVM, with VMX flag bits, exactly as the kernel's TP_printk prints them.

mod common;

use common::{Collect, Rec, data_dir};
use exitscope_tracedat::Compression;
use exitscope_tracedat::write::fixture;

fn format(name: &str) -> String {
    std::fs::read_to_string(data_dir().join("formats").join(format!("{name}.format"))).unwrap()
}

fn payload(id: u16, len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0..2].copy_from_slice(&id.to_le_bytes());
    p[4..8].copy_from_slice(&4242i32.to_le_bytes());
    for (off, b) in fields {
        p[*off..*off + b.len()].copy_from_slice(b);
    }
    p
}

fn exit(vcpu: u32, isa: u32, reason: u32, rip: u64, info1: u64) -> Vec<u8> {
    payload(
        103,
        72,
        &[
            (8, &reason.to_le_bytes()),
            (16, &rip.to_le_bytes()),
            (24, &isa.to_le_bytes()),
            (32, &info1.to_le_bytes()),
            (56, &vcpu.to_le_bytes()),
        ],
    )
}

#[test]
fn kvm_events_render_like_the_kernel() {
    let mut w = fixture::demo_funcgraph(7, Compression::Zstd, 0);
    w.systems = vec![(
        "kvm".into(),
        ["kvm_exit", "kvm_entry", "kvm_msr", "kvm_nested_vmexit", "kvm_hypercall"]
            .iter()
            .map(|n| format(n))
            .collect(),
    )];
    let entry = payload(
        115,
        40,
        &[
            (8, &0u32.to_le_bytes()),
            (16, &0x1000u64.to_le_bytes()),
            (24, &[1]),
            (28, &0x8000_0306u32.to_le_bytes()),
        ],
    );
    let msr = payload(
        99,
        32,
        &[
            (8, &1u32.to_le_bytes()),
            (12, &0x1bu32.to_le_bytes()),
            (16, &0xfee0_0900u64.to_le_bytes()),
        ],
    );
    let recs = vec![
        exit(1, 1, 48, 0xfff0, 0x181),
        exit(0, 1, 0x8000_0021, 0x10, 0),
        exit(2, 2, 0x40 + 14, 0xffff_ffff_8100_0000, 0),
        exit(3, 2, 0x400, 0x20, 0),
        exit(0, 1, 99, 0x30, 0),
        entry,
        msr,
    ];
    w.cpus = vec![recs.into_iter().enumerate().map(|(i, p)| (100 + i as u64, p)).collect()];
    let mut sink = Collect::default();
    exitscope_tracedat::read(&w.to_bytes(), "kvm.dat", &mut sink).unwrap();
    let got: Vec<String> = sink
        .0
        .iter()
        .map(|r| match r {
            Rec::Event { name, text, pid, .. } => {
                assert_eq!(*pid, 4242);
                format!("{name}: {text}")
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let tail = "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000";
    assert_eq!(
        got,
        vec![
            format!("kvm_exit: vcpu 1 reason EPT_VIOLATION rip 0xfff0 info1 0x0000000000000181 {tail}"),
            format!("kvm_exit: vcpu 0 reason INVALID_STATE FAILED_VMENTRY rip 0x10 info1 0x0000000000000000 {tail}"),
            format!("kvm_exit: vcpu 2 reason PF excp rip 0xffffffff81000000 info1 0x0000000000000000 {tail}"),
            format!("kvm_exit: vcpu 3 reason npf rip 0x20 info1 0x0000000000000000 {tail}"),
            format!("kvm_exit: vcpu 0 reason 0x63 rip 0x30 info1 0x0000000000000000 {tail}"),
            "kvm_entry: vcpu 0, rip 0x1000 intr_info 0x80000306 error_code 0x00000000[immediate exit]".to_string(),
            "kvm_msr: msr_write 1b = 0xfee00900".to_string(),
        ]
    );
}

/// Every kvm event format of the 6.18 kernel (all 91 in formats/) is understood and renders
/// as the kernel does: no fallback to `field=value`, no construct left unevaluated. The
/// enum constants these formats name without a value (VDSO_CLOCKMODE_*,
/// APICV_INHIBIT_REASON_*, VMXERR_*) are resolved from the kernel headers.
#[test]
fn every_kvm_format_of_a_6_18_kernel_is_understood() {
    let mut n = 0;
    for e in std::fs::read_dir(data_dir().join("formats")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let f = exitscope_tracedat::EventFormat::parse("kvm", &text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!f.print_text.is_empty(), "{}", path.display());
        assert_eq!(f.print_problems(), Vec::<String>::new(), "{}", f.name);
        n += 1;
    }
    assert!(n >= 91, "{n} formats");
}

/// A print fmt with an enum constant exitscope does not know, and one it cannot parse:
/// each event is named once (however many records it has), in `read`'s diagnostics and in
/// `convert`'s warnings; the rest of the line still renders.
#[test]
fn unsupported_print_fmt_constructs_are_named_once_per_event() {
    let head = "format:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned int mode;\toffset:8;\tsize:4;\tsigned:0;\n\n";
    let enum_fmt = format!(
        "name: kvm_mode\nID: 900\n{head}print fmt: \"mode %s\", __print_symbolic(REC->mode, {{ KVM_MODE_A, \"a\" }}, {{ 2, \"b\" }})\n"
    );
    let bad_fmt =
        format!("name: kvm_weird\nID: 901\n{head}print fmt: \"mode %d\", REC->mode == SOME_ENUM\n");
    let mut w = fixture::demo_funcgraph(7, Compression::None, 0);
    w.systems = vec![("kvm".into(), vec![enum_fmt, bad_fmt])];
    let rec = |id: u16, mode: u32| payload(id, 16, &[(8, &mode.to_le_bytes())]);
    w.cpus = vec![vec![(10, rec(900, 2)), (11, rec(900, 7)), (12, rec(901, 3)), (13, rec(901, 4))]];
    let bytes = w.to_bytes();

    let mut sink = Collect::default();
    exitscope_tracedat::read(&bytes, "x.dat", &mut sink).unwrap();
    let texts: Vec<String> = sink
        .0
        .iter()
        .filter_map(|r| match r {
            Rec::Event { name, text, .. } => Some(format!("{name}: {text}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["kvm_mode: mode b", "kvm_mode: mode 0x7", "kvm_weird: mode=3", "kvm_weird: mode=4"]
    );
    assert_eq!(sink.1.len(), 2, "{:?}", sink.1);
    assert!(
        sink.1[0].contains(
            "warning: event kvm:kvm_mode: `__print_symbolic` entry \"a\" is keyed by `KVM_MODE_A`"
        ),
        "{}",
        sink.1[0]
    );
    assert!(
        sink.1[1].contains("event kvm:kvm_weird: print fmt not understood (`SOME_ENUM`"),
        "{}",
        sink.1[1]
    );
    assert!(sink.1[1].contains("fields are printed as name=value"), "{}", sink.1[1]);

    let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
    let mut out = Vec::new();
    let stats = exitscope_tracedat::text::write_text(
        &t,
        exitscope_tracedat::text::Layout::Events,
        &mut out,
    )
    .unwrap();
    assert_eq!(stats.warnings.len(), 2, "{:?}", stats.warnings);
    assert!(stats.warnings[0].starts_with("event kvm:kvm_mode: "));
    assert!(String::from_utf8(out).unwrap().contains(": kvm_mode: mode 0x7\n"));
}
