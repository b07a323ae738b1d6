use std::io::Write;

use exitscope_model::{Diagnostic, Flow, Record};

use super::*;

#[derive(Default)]
struct Sink {
    records: u64,
    begun: Vec<(String, InputFormat)>,
    ended: Vec<InputSummary>,
}

impl RecordSink for Sink {
    fn record(&mut self, _: &Record<'_>) -> Flow {
        self.records += 1;
        Flow::Continue
    }
    fn diagnostic(&mut self, _: Diagnostic) -> Flow {
        Flow::Continue
    }
}

impl InputSink for Sink {
    fn begin_input(&mut self, name: &str, format: InputFormat) {
        self.begun.push((name.to_owned(), format));
    }
    fn end_input(&mut self, s: &InputSummary) {
        self.ended.push(s.clone());
    }
}

const SEED: &str = " 0)               |  vcpu_enter_guest [kvm]() {\n 0)   0.080 us    |    f();\n \
                    0)   4.278 us    |  }\n";

fn read(bytes: &[u8]) -> (Result<Ingested, Error>, Sink) {
    let mut sink = Sink::default();
    let r = read_bytes("t", bytes, &mut sink, &Options::default());
    (r, sink)
}

fn no_trace_why(bytes: &[u8]) -> String {
    let r = read(bytes).0;
    let why = match &r {
        Err(Error::NoTrace { why, .. }) => Some(why.clone()),
        _ => None,
    };
    why.unwrap_or_else(|| format!("expected NoTrace, got {r:?}"))
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)).unwrap()
}

#[test]
fn text_is_read_with_begin_and_end() {
    let (r, sink) = read(SEED.as_bytes());
    let got = r.unwrap();
    assert_eq!(sink.records, 3);
    assert_eq!(sink.begun, [("t".to_owned(), InputFormat::FtraceText)]);
    assert_eq!(sink.ended, std::slice::from_ref(&got.summary));
    assert_eq!((got.summary.lines, got.summary.records, got.summary.compression), (3, 3, None));
}

#[test]
fn gzip_and_zstd_are_read_transparently() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(SEED.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let (r, sink) = read(&gz);
    let got = r.unwrap();
    assert_eq!((sink.records, got.summary.compression.as_deref()), (3, Some("gzip")));
    assert_eq!(got.summary.bytes, SEED.len() as u64);

    let zst = zstd::stream::encode_all(SEED.as_bytes(), 3).unwrap();
    let (r, sink) = read(&zst);
    assert_eq!((sink.records, r.unwrap().summary.compression.as_deref()), (3, Some("zstd")));

    // A trace.dat inside gzip is read from memory.
    let dat = fixture("tests/data/tracedat/kvm-v6.dat");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&dat).unwrap();
    let (r, sink) = read(&gz.finish().unwrap());
    let got = r.unwrap();
    assert_eq!(got.summary.format, "trace-dat");
    assert!(sink.records > 0 && got.summary.records == sink.records);
}

#[test]
fn corrupt_compressed_data_names_the_algorithm_and_offset() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(SEED.repeat(100).as_bytes()).unwrap();
    let mut gz = gz.finish().unwrap();
    let n = gz.len();
    gz.truncate(n / 2);
    let e = read(&gz).0.unwrap_err();
    assert!(matches!(e, Error::Decompress { algo: "gzip", .. }), "{e:?}");
    assert!(e.to_string().contains("gzip data is corrupt or cut short"), "{e}");
}

#[test]
fn input_without_a_trace_is_one_error() {
    assert_eq!(no_trace_why(b""), "it is empty");
    assert_eq!(no_trace_why(b"  \n\n\t \n"), "it holds only whitespace");
    let noise: Vec<u8> =
        (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(no_trace_why(&noise).starts_with("it is binary data"), "{}", no_trace_why(&noise));
    assert_eq!(no_trace_why(b"Dear colleague\n"), "its only line is not an ftrace line");
    assert_eq!(no_trace_why(b"Dear colleague,\nhi\n"), "none of its 2 lines is an ftrace line");
    assert!(no_trace_why(b"# tracer: nop\n#\n").starts_with("its 2 lines are only headers"));
    let e = read(b"").0.unwrap_err().to_string();
    assert!(e.starts_with("t holds no trace: it is empty; expected ftrace text"), "{e}");
    // Unless the caller accepts empty recordings.
    let mut sink = Sink::default();
    let opts = Options { require_records: false };
    let got = read_bytes("t", b"# tracer: nop\n", &mut sink, &opts).unwrap();
    assert_eq!(got.summary.records, 0);
}

#[test]
fn trace_dat_is_sniffed_and_a_cut_file_says_its_size() {
    let dat = fixture("tests/data/tracedat/kvm-v6.dat");
    let (r, sink) = read(&dat);
    assert_eq!(r.unwrap().summary.format, "trace-dat");
    assert_eq!(sink.begun[0].1, InputFormat::TraceDat);
    let e = read(&dat[..100]).0.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("100 bytes"), "{msg}");
    assert!(msg.contains("cut short"), "{msg}");
}

#[test]
fn perf_data_is_sniffed_and_read() {
    let data = fixture("tests/data/perfdata/kvm-file.data");
    let (r, sink) = read(&data);
    let got = r.unwrap();
    assert_eq!(sink.begun[0].1, InputFormat::PerfData);
    assert_eq!((got.summary.format.as_str(), got.summary.records), ("perf-data", sink.records));
    assert!(sink.records > 0);
    // A cut file is an error naming its size, never a panic.
    let e = read(&data[..200]).0.unwrap_err();
    assert!(matches!(e, Error::PerfData { size: 200, .. }), "{e:?}");
}

#[test]
fn directories_and_missing_files_are_named() {
    let mut sink = Sink::default();
    let e = read_path("/", &mut sink, &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "/ is a directory, expected a trace file");
    let e = read_path("/nonexistent/t.txt", &mut sink, &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "cannot open /nonexistent/t.txt: No such file or directory");
}

#[test]
fn mostly_unreadable_text_warns() {
    let (r, _) = read(b"function f() {\n  var x = 1;\n  let y = 2;\n  g();\n}\n");
    let got = r.unwrap();
    assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
    assert!(got.warnings[0].contains("is it an ftrace trace?"));
}
