//! The k-way merge: records of all CPUs come out in timestamp order, with the linear scan
//! (few CPUs) and with the heap (many CPUs).

mod common;

use common::{Collect, Rec};
use exitscope_tracedat::{Compression, write};

/// (timestamp, cpu) of each record.
type Order = Vec<(u64, u32)>;

fn merged_timestamps(ncpu: usize) -> (Order, Order) {
    let mut w = write::demo_funcgraph(7, Compression::Zstd, 0);
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
