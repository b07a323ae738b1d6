//! Truncated and corrupt perf.data: an error naming the byte offset and what was expected,
//! or (for one bad sample) a diagnostic; never a panic.

mod common;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::data_dir().join("perfdata").join(name)).expect("fixture")
}

fn read_err(bytes: &[u8]) -> exitscope_perfdata::Error {
    match exitscope_perfdata::read(bytes, "bad.data", &mut common::Collect::default()) {
        Ok(s) => panic!("expected an error, read {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_truncation_is_an_error_with_an_offset_inside_the_file() {
    for name in ["kvm-file.data", "kvm-zstd.data", "kvm-pipe.data"] {
        let full = fixture(name);
        let pipe = name.contains("pipe");
        // Every cut in the first 4 KiB (header, attrs, first records), then every 61st.
        let cuts = (0..4096.min(full.len())).chain((4096..full.len()).step_by(61));
        for cut in cuts {
            let part = &full[..cut];
            let r = exitscope_perfdata::read(part, name, &mut common::Collect::default());
            match r {
                Err(e) => {
                    let msg = e.to_string();
                    // Inside the file, or where a section the header declares should be.
                    let inside = e.offset() <= cut as u64 || msg.contains(", 0 available");
                    assert!(inside, "{name} cut {cut}: {msg}");
                    assert!(msg.starts_with("byte 0x"), "{name} cut {cut}: {msg}");
                }
                // A pipe has no table of contents: a cut at a record boundary after the
                // tracing data reads as a shorter recording, as perf itself reads it.
                Ok(_) if pipe => {}
                Ok(s) => panic!("{name} cut at {cut} of {} read as {s:?}", full.len()),
            }
        }
    }
}

#[test]
fn truncated_data_section_names_the_record_that_runs_past_the_end() {
    let full = fixture("kvm-file.data");
    let data_at = u64::from_le_bytes(full[40..48].try_into().unwrap());
    let cut = data_at as usize + 100;
    let e = read_err(&full[..cut]);
    let msg = e.to_string();
    assert!(msg.contains("truncated record (the file ends)"), "{msg}");
    assert!(e.offset() >= data_at && e.offset() < cut as u64, "{msg}");
}

#[test]
fn a_killed_perf_record_is_named() {
    // perf writes the data size at the end; killed, the header still says 0.
    let mut b = fixture("kvm-file.data");
    b[48..56].copy_from_slice(&0u64.to_le_bytes());
    let msg = read_err(&b).to_string();
    assert!(msg.starts_with("byte 0x30: data section size is 0"), "{msg}");
    assert!(msg.contains("did not finish"), "{msg}");
}

#[test]
fn bad_magic_and_header_size() {
    let e = read_err(b"PERFFILE and more bytes");
    assert_eq!(e.to_string(), "byte 0x0: not a perf.data file: expected the magic \"PERFILE2\"");
    assert!(!exitscope_perfdata::is_perf_data(b"\x17\x08\x44tracing6"));
    let mut b = fixture("kvm-file.data");
    b[8..16].copy_from_slice(&99u64.to_le_bytes());
    assert_eq!(
        read_err(&b).to_string(),
        "byte 0x8: header size 99: expected 104 (file) or 16 (pipe)"
    );
}

/// File offset of the first record of `kind` in the data section.
fn first_record(b: &[u8], kind: u32) -> usize {
    let data_at = u64::from_le_bytes(b[40..48].try_into().unwrap()) as usize;
    let mut pos = data_at;
    loop {
        let k = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
        let size = u16::from_le_bytes(b[pos + 6..pos + 8].try_into().unwrap()) as usize;
        if k == kind {
            return pos;
        }
        pos += size;
    }
}

/// Offset of the `u32` raw size of the sample record at `at` (the raw data ends the record).
fn raw_size_field(b: &[u8], at: usize) -> usize {
    let size = u16::from_le_bytes(b[at + 6..at + 8].try_into().unwrap()) as usize;
    (at + 8..at + size - 4)
        .find(|&i| {
            let n = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            i + 4 + n == at + size
        })
        .expect("raw size field")
}

#[test]
fn a_record_size_below_its_header_is_an_error_at_that_record() {
    let mut b = fixture("kvm-file.data");
    let at = first_record(&b, 9);
    b[at + 6..at + 8].copy_from_slice(&4u16.to_le_bytes());
    let e = read_err(&b);
    assert_eq!(e.offset(), at as u64);
    assert!(e.to_string().contains("has size 4: expected at least 8"), "{e}");
}

#[test]
fn a_sample_too_short_for_its_sample_type_is_a_diagnostic_and_reading_goes_on() {
    let mut b = fixture("kvm-file.data");
    let at = first_record(&b, 9);
    // Claim a raw size larger than the record holds.
    let raw_size_at = raw_size_field(&b, at);
    b[raw_size_at..raw_size_at + 4].copy_from_slice(&4000u32.to_le_bytes());
    let mut c = common::Collect::default();
    let s = exitscope_perfdata::read(&b, "bad.data", &mut c).unwrap();
    assert_eq!(s.skipped_samples, 1);
    assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
    let d = &c.diagnostics[0];
    assert_eq!(d.column, at as u64);
    assert!(d.message.contains("truncated sample raw data: need 4000 bytes"), "{}", d.message);
    let total: u64 = s.event_counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 20, "the other 20 samples are read");
}

#[test]
fn an_unknown_tracepoint_id_is_a_diagnostic() {
    let mut b = fixture("kvm-file.data");
    let at = first_record(&b, 9);
    let raw_at = raw_size_field(&b, at) + 4;
    b[raw_at..raw_at + 2].copy_from_slice(&65000u16.to_le_bytes());
    let mut c = common::Collect::default();
    let s = exitscope_perfdata::read(&b, "bad.data", &mut c).unwrap();
    assert_eq!(s.unknown_events, 1);
    assert!(c.diagnostics[0].message.contains("unknown event id 65000"), "{:?}", c.diagnostics);
}

#[test]
fn corrupt_tracing_data_is_named() {
    let mut b = fixture("kvm-file.data");
    let at = b.windows(10).position(|w| w == b"\x17\x08\x44tracing").unwrap();
    b[at] = b'X';
    let e = read_err(&b);
    assert_eq!(e.offset(), at as u64);
    assert!(e.to_string().contains("tracing data"), "{e}");
}

/// Found by `fuzz/perfdata`: two LOST records whose counts add past `u64::MAX` (a corrupt
/// count) panicked with an overflow; the sum saturates instead.
#[test]
fn lost_counts_that_overflow_saturate() {
    let data = [
        80u8, 69, 82, 70, 73, 76, 69, 50, 16, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 69, 80, 40, 0, 0,
        66, 0, 0, 0, 69, 80, 40, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 69, 80, 40, 50, 16, 0, 0, 0,
        0, 0, 0, 0, 13, 0, 0, 0, 69, 80, 40, 0, 0, 0, 40, 0, 0, 0, 0, 253, 0, 0, 3, 0, 0, 0, 69,
        80, 19, 0, 32, 159, 253, 253, 253, 253, 40, 253, 253, 253, 253, 253, 253, 253,
    ];
    struct Count(u64);
    impl exitscope_model::RecordSink for Count {
        fn record(&mut self, _: &exitscope_model::Record<'_>) -> exitscope_model::Flow {
            self.0 += 1;
            exitscope_model::Flow::Continue
        }
    }
    let mut sink = Count(0);
    match exitscope_perfdata::read(&data, "crash", &mut sink) {
        Ok(s) => assert_eq!(s.records, sink.0),
        Err(e) => assert!(e.to_string().starts_with("byte 0x"), "{e}"),
    }
}
