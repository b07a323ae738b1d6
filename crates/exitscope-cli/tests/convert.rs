//! `exitscope convert`: trace.dat → kernel-style text, and exit code 2 on bad input.

use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/tracedat").join(name)
}

mod common;

use common::command as exitscope;

#[test]
fn converts_event_trace_to_kernel_event_lines() {
    let dir = std::env::temp_dir().join(format!("exitscope-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("kvm.txt");
    let st = exitscope()
        .arg("convert")
        .arg(data("kvm-v7-zstd.dat"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# tracer: nop\n"));
    assert!(text.contains(
        "         python3-6817    [000] .....   390.136899: kvm_pio: pio_write at 0x10 size 1 count 1 val 0x41 \n"
    ));
    assert!(text.contains(": kvm_userspace_exit: reason KVM_EXIT_MMIO (6)\n"));
    let events = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(events, 597);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn converts_function_graph_trace_to_graph_lines() {
    let o = exitscope().arg("convert").arg(data("funcgraph-v6.dat")).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("# tracer: function_graph\n"));
    assert!(text.contains(
        "    1.000000 |   0)  qemu-vc-1000  |               |  vcpu_enter_guest [kvm]() {\n"
    ));
    assert!(text.contains("|   0.090 us    |    kvm_load_guest_xsave_state [kvm]();\n"));
    assert!(text.contains("|   1.850 us    |  } /* vcpu_enter_guest [kvm] */\n"));
}

#[test]
fn bad_input_exits_2_with_offset() {
    let bytes = std::fs::read(data("kvm-v6.dat")).unwrap();
    let dir = std::env::temp_dir().join(format!("exitscope-convert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.dat");
    std::fs::write(&cut, &bytes[..3000]).unwrap();
    let o = exitscope().arg("convert").arg(&cut).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("byte 0x") && err.contains("truncated"), "{err}");
    let txt = dir.join("not.dat");
    std::fs::write(&txt, " 0)   0.080 us    |  f();\n").unwrap();
    let o = exitscope().arg("convert").arg(&txt).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr).unwrap().contains("not a trace-cmd trace.dat file"));
    std::fs::remove_dir_all(&dir).unwrap();
}
