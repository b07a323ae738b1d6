//! Bad and truncated input: a clear error with byte offset (and CPU/page for ring-buffer
//! data), never a panic.

mod common;

use common::{Collect, Rec, data_dir};
use exitscope_tracedat::write::fixture;
use exitscope_tracedat::{Compression, Error};

fn read(bytes: &[u8]) -> Result<exitscope_tracedat::Summary, Error> {
    exitscope_tracedat::read(bytes, "t.dat", &mut Collect::default())
}

#[test]
fn not_a_trace_dat() {
    assert!(!exitscope_tracedat::is_trace_dat(b"# tracer: nop\n"));
    assert!(matches!(read(b"# tracer: nop\n"), Err(Error::NotTraceDat)));
    let mut v = b"\x17\x08\x44tracing".to_vec();
    v.extend_from_slice(b"9\0");
    assert_eq!(
        read(&v).unwrap_err().to_string(),
        "unsupported trace.dat version \"9\" (supported: 6, 7)"
    );
}

#[test]
fn every_truncation_of_every_fixture_is_an_error_not_a_panic() {
    for name in ["kvm-v6.dat", "kvm-v7-zstd.dat", "funcgraph-v7-zlib.dat", "funcgraph-v6.dat"] {
        let bytes = std::fs::read(data_dir().join(name)).unwrap();
        let step = (bytes.len() / 400).max(1);
        for len in (0..bytes.len()).step_by(step) {
            // Either an error or (when only trailing padding was cut) a result.
            if let Err(e) = read(&bytes[..len]) {
                let msg = e.to_string();
                assert!(msg.contains("byte 0x") || msg.contains("magic"), "{name}[..{len}]: {msg}");
            }
        }
    }
}

#[test]
fn cpu_data_past_the_end_names_the_cpu() {
    let bytes = std::fs::read(data_dir().join("kvm-v6.dat")).unwrap();
    let cut = &bytes[..bytes.len() - 100];
    let e = read(cut).unwrap_err();
    assert!(matches!(e, Error::CpuData { .. }), "{e}");
    assert!(e.to_string().starts_with("cpu "), "{e}");
}

#[test]
fn corrupt_page_reports_cpu_page_and_offset() {
    let w = fixture::demo_funcgraph(6, Compression::None, 20);
    let mut bytes = w.to_bytes();
    // The first CPU's data starts at the first page-aligned offset after the metadata; its
    // second page's commit field gets an impossible size.
    let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
    let off = t.header.buffers[0].cpus[1].offset as usize + 4096 + 8;
    bytes[off..off + 8].copy_from_slice(&5000u64.to_le_bytes());
    let e = read(&bytes).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Page { cpu: 1, page: 1, .. }), "{msg}");
    assert!(msg.starts_with("cpu 1, page 1 (byte 0x"), "{msg}");
}

#[test]
fn random_byte_flips_never_panic() {
    let base = fixture::demo_funcgraph(7, Compression::None, 10).to_bytes();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1500 {
        let mut b = base.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] = (x >> 32) as u8;
        }
        let _ = read(&b);
        if let Ok(t) = exitscope_tracedat::TraceDat::parse(&b) {
            let _ = exitscope_tracedat::text::write_text(
                &t,
                exitscope_tracedat::text::Layout::Auto,
                &mut std::io::sink(),
            );
        }
    }
}

#[test]
fn missed_events_become_lost_records() {
    let mut w = fixture::demo_funcgraph(6, Compression::None, 5);
    w.missed_first_page = vec![(1, 1234)];
    let mut sink = Collect::default();
    let sum = exitscope_tracedat::read(&w.to_bytes(), "t.dat", &mut sink).unwrap();
    assert_eq!(sum.lost_markers, 1);
    assert_eq!(sum.lost_events, 1234);
    assert!(sink.0.contains(&Rec::Lost { cpu: 1, count: Some(1234) }));
}

#[test]
fn trace_printk_records_use_printk_formats() {
    let bprint = "name: bprint\nID: 6\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const char * fmt;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:u32 buf[];\toffset:24;\tsize:0;\tsigned:0;\n\nprint fmt: \"%ps: %s\", (void *)REC->ip, REC->fmt\n";
    let bputs = "name: bputs\nID: 15\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const char * str;\toffset:16;\tsize:8;\tsigned:0;\n\nprint fmt: \"%ps: %s\", (void *)REC->ip, REC->str\n";
    let mut w = fixture::demo_funcgraph(6, Compression::None, 0);
    w.ftrace_formats.push(bprint.into());
    w.ftrace_formats.push(bputs.into());
    w.printk = "0xffffffff82000000 : \"exit %d at %#lx %s/%c %5u|\\n\"\n0xffffffff82000100 : \"hello\\n\"\n".into();
    let ip = 0xffff_ffff_c080_0000u64 + 0x20; // vcpu_enter_guest [kvm]
    let mut p = vec![0u8; 24];
    p[0..2].copy_from_slice(&6u16.to_le_bytes());
    p[4..8].copy_from_slice(&1000i32.to_le_bytes());
    p[8..16].copy_from_slice(&ip.to_le_bytes());
    p[16..24].copy_from_slice(&0xffff_ffff_8200_0000u64.to_le_bytes());
    p.extend_from_slice(&(-12i32).to_le_bytes()); // %d
    p.extend_from_slice(&0xfff0u64.to_le_bytes()); // %#lx, 8 bytes aligned to 4
    p.extend_from_slice(b"ab\0"); // %s inline
    p.push(b'Z'); // %c, 1 byte
    p.extend_from_slice(&7u32.to_le_bytes()); // %5u, aligned to 4
    let mut q = vec![0u8; 24];
    q[0..2].copy_from_slice(&15u16.to_le_bytes());
    q[4..8].copy_from_slice(&1000i32.to_le_bytes());
    q[8..16].copy_from_slice(&ip.to_le_bytes());
    q[16..24].copy_from_slice(&0xffff_ffff_8200_0100u64.to_le_bytes());
    w.cpus = vec![vec![(10, p), (20, q)]];
    let mut sink = Collect::default();
    exitscope_tracedat::read(&w.to_bytes(), "t.dat", &mut sink).unwrap();
    let texts: Vec<(String, String)> = sink
        .0
        .iter()
        .filter_map(|r| match r {
            Rec::Event { name, text, .. } => Some((name.clone(), text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        vec![
            (
                "bprint".to_string(),
                "vcpu_enter_guest [kvm]: exit -12 at 0xfff0 ab/Z     7|".to_string()
            ),
            ("bputs".to_string(), "vcpu_enter_guest [kvm]: hello".to_string()),
        ]
    );
}

#[test]
fn guest_cpustat_and_offset_options_are_read() {
    for version in [6, 7] {
        let mut w = fixture::demo_funcgraph(version, Compression::Zlib, 2);
        let mut guest = b"vm0\0".to_vec();
        guest.extend_from_slice(&77u64.to_le_bytes());
        guest.extend_from_slice(&2u32.to_le_bytes());
        for (vcpu, pid) in [(0u32, 1000u32), (1, 1001)] {
            guest.extend_from_slice(&vcpu.to_le_bytes());
            guest.extend_from_slice(&pid.to_le_bytes());
        }
        w.extra_options = vec![
            (13, guest),
            (2, b"CPU: 0\nentries: 5\noverrun: 3\n\0".to_vec()),
            (7, b"1000000\0".to_vec()),
        ];
        let bytes = w.to_bytes();
        let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
        assert_eq!(
            t.header.guests,
            vec![exitscope_tracedat::Guest {
                name: "vm0".into(),
                trace_id: 77,
                vcpus: vec![(0, 1000), (1, 1001)]
            }]
        );
        assert!(t.header.cpu_stats[0].contains("overrun: 3"));
        assert_eq!(t.header.ts_offset, 1_000_000);
        let mut sink = Collect::default();
        let sum = t.read_into("t.dat", &mut sink).unwrap();
        assert_eq!(sum.first_ts, Some(1_001_000_000), "OFFSET is added to timestamps");
    }
}

#[test]
fn exitscope_host_option_is_read_and_a_foreign_one_ignored() {
    for version in [6, 7] {
        let mut w = fixture::demo_funcgraph(version, Compression::Zstd, 2);
        let tag = "exitscope host: {\"os\":{\"release\":\"6.1\"}}";
        w.extra_options = vec![(exitscope_tracedat::HOST_OPTION, format!("{tag}\0").into_bytes())];
        let bytes = w.to_bytes();
        let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
        assert_eq!(t.header.host_tag.as_deref(), Some(tag));
        let sum = t.read_into("t.dat", &mut Collect::default()).unwrap();
        assert_eq!(sum.host_tag.as_deref(), Some(tag));
        // Another program's data under the same id is not taken for a host.
        w.extra_options = vec![(exitscope_tracedat::HOST_OPTION, b"something else\0".to_vec())];
        let bytes = w.to_bytes();
        assert_eq!(exitscope_tracedat::TraceDat::parse(&bytes).unwrap().header.host_tag, None);
    }
}
