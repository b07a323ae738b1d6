//! The k-way merge: records of all CPUs come out in timestamp order, with the linear scan
//! (few CPUs) and with the heap (many CPUs).

mod common;

use common::{Collect, Rec};
use exitscope_tracedat::Compression;
use exitscope_tracedat::write::fixture;

/// (timestamp, cpu) of each record.
type Order = Vec<(u64, u32)>;

fn merged_timestamps(ncpu: usize) -> (Order, Order) {
    let mut w = fixture::demo_funcgraph(7, Compression::Zstd, 0);
    let mut want = Vec::new();
    w.cpus = (0..ncpu)
        .map(|cpu| {
            let mut x = 0x1234_5678u64 + cpu as u64;
            let mut t = 1_000;
            (0..300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    t += x % 5000 + (cpu as u64 % 3);
                    want.push((t, cpu as u32));
                    let mut p = vec![0u8; 24];
                    p[0..2].copy_from_slice(&1501u16.to_le_bytes());
                    p[4..8].copy_from_slice(&1000i32.to_le_bytes());
                    (t, p)
                })
                .collect()
        })
        .collect();
    // Ties: lower CPU first, as the merge breaks them by stream index.
    want.sort();
    let mut sink = Collect::default();
    exitscope_tracedat::read(&w.to_bytes(), "t.dat", &mut sink).unwrap();
    let got = sink
        .0
        .iter()
        .map(|r| match r {
            Rec::Event { ts, cpu, .. } => (*ts, *cpu),
            other => panic!("{other:?}"),
        })
        .collect();
    (got, want)
}

#[test]
fn few_cpus_merge_in_timestamp_order() {
    let (got, want) = merged_timestamps(4);
    assert_eq!(got, want);
}

#[test]
fn many_cpus_merge_in_timestamp_order() {
    let (got, want) = merged_timestamps(40);
    assert_eq!(got.len(), 12_000);
    assert_eq!(got, want);
}

/// A kvm_entry record (format id 1501 of `fixture::KVM_ENTRY_FORMAT`) in either byte order.
fn kvm_entry(be: bool, pid: i32, vcpu: u32, rip: u64) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    if be {
        p[0..2].copy_from_slice(&1501u16.to_be_bytes());
        p[4..8].copy_from_slice(&pid.to_be_bytes());
        p[8..12].copy_from_slice(&vcpu.to_be_bytes());
        p[16..24].copy_from_slice(&rip.to_be_bytes());
    } else {
        p[0..2].copy_from_slice(&1501u16.to_le_bytes());
        p[4..8].copy_from_slice(&pid.to_le_bytes());
        p[8..12].copy_from_slice(&vcpu.to_le_bytes());
        p[16..24].copy_from_slice(&rip.to_le_bytes());
    }
    p
}

#[test]
fn big_endian_files_read_like_little_endian_ones() {
    let records = |be: bool| {
        vec![
            vec![
                (5u64, kvm_entry(be, 1000, 0, 0xfff0)),
                (400_000_000, kvm_entry(be, 1000, 0, 0x1234)),
            ],
            vec![(7u64, kvm_entry(be, 1001, 1, 0xabc))],
        ]
    };
    let mut outputs = Vec::new();
    for (version, compression) in
        [(6, Compression::None), (7, Compression::Zstd), (7, Compression::Zlib)]
    {
        for be in [false, true] {
            let mut w = fixture::demo_funcgraph(version, compression, 0);
            w.big_endian = be;
            w.cpus = records(be);
            let mut sink = Collect::default();
            let sum = exitscope_tracedat::read(&w.to_bytes(), "t.dat", &mut sink).unwrap();
            assert_eq!(sum.records, 3);
            outputs.push(sink.0);
        }
    }
    let first = &outputs[0];
    assert_eq!(
        first[0],
        Rec::Event {
            ts: 5,
            cpu: 0,
            comm: "qemu-vcpu0".into(),
            pid: 1000,
            name: "kvm_entry".into(),
            text: "vcpu 0, rip 0xfff0".into()
        }
    );
    assert!(
        matches!(&first[2], Rec::Event { ts: 400_000_000, text, .. } if text == "vcpu 0, rip 0x1234")
    );
    for o in &outputs {
        assert_eq!(o, first);
    }
}
