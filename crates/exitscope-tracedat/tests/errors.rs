//! Bad and truncated input: a clear error with byte offset (and CPU/page for ring-buffer
//! data), never a panic.

mod common;

use common::{Collect, Rec, data_dir};
use exitscope_tracedat::{Compression, Error, write};

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
    let w = write::demo_funcgraph(6, Compression::None, 20);
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
    let base = write::demo_funcgraph(7, Compression::None, 10).to_bytes();
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
    let mut w = write::demo_funcgraph(6, Compression::None, 5);
    w.missed_first_page = vec![(1, 1234)];
    let mut sink = Collect::default();
    let sum = exitscope_tracedat::read(&w.to_bytes(), "t.dat", &mut sink).unwrap();
    assert_eq!(sum.lost_markers, 1);
    assert_eq!(sum.lost_events, 1234);
    assert!(sink.0.contains(&Rec::Lost { cpu: 1, count: Some(1234) }));
}
