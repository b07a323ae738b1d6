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
    let opts = Options { require_records: false, ..Options::default() };
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

/// Every record and diagnostic, rendered, in the order the sink got them.
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

impl InputSink for Log {
    fn begin_input(&mut self, name: &str, format: InputFormat) {
        self.0.push(format!("begin {name} {format:?}"));
    }
    fn end_input(&mut self, s: &InputSummary) {
        self.0.push(format!("end {s:?}"));
    }
}

/// The parallel reader on random cuts of random mixtures of the fixtures' lines gives the
/// sink exactly what the streaming reader gives it: the same records (tasks from banners
/// before the cut, comments open across it), diagnostics and summary.
#[test]
fn random_chunks_give_the_stream_s_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let mut lines: Vec<String> = Vec::new();
    for dir in ["fgraph", "seed", "ioctl-run", "ioctl-run-events"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        names.sort();
        for p in names {
            let text = std::fs::read(&p).unwrap();
            lines.extend(String::from_utf8_lossy(&text).split_inclusive('\n').map(String::from));
        }
    }
    // Lines no fixture has: invalid UTF-8, CRLF, an over-long line.
    lines.push("\u{fffd}bad \r\n".into());
    lines.push(format!("{}\n", "x".repeat(exitscope_ftrace::reader::MAX_LINE + 3)));
    assert!(lines.len() > 500);
    let mut rng = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = std::env::temp_dir().join(format!("exitscope-ingest-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for round in 0..24 {
        // Runs of consecutive fixture lines (so calls, banners and comments stay whole or
        // get cut like real ones), from random places.
        let mut input = Vec::new();
        while input.len() < 20_000 {
            let at = (next() % lines.len() as u64) as usize;
            let run = 1 + (next() % 60) as usize;
            for l in lines.iter().skip(at).take(run) {
                input.extend_from_slice(l.as_bytes());
            }
        }
        if round % 3 == 0 {
            input.extend_from_slice(b" 0)   1.000 us    |  } /* no newline at the end */");
        }
        if round % 5 == 0 {
            input[7] = 0xff; // not UTF-8
        }
        let path = dir.join(format!("r{round}.txt"));
        std::fs::write(&path, &input).unwrap();
        let path = path.to_str().unwrap();
        let mut want = Log::default();
        let w = read_path(path, &mut want, &Options::default());
        let chunk = 1 + (next() % 3000) as usize;
        let jobs = 2 + (next() % 6) as usize;
        let opts = Options { jobs, chunk_bytes: Some(chunk), ..Options::default() };
        let mut got = Log::default();
        let g = read_path(path, &mut got, &opts);
        assert_eq!(format!("{w:?}"), format!("{g:?}"), "round {round}, chunk {chunk}");
        let diff = want.0.iter().zip(&got.0).position(|(a, b)| a != b);
        assert!(
            diff.is_none() && want.0.len() == got.0.len(),
            "round {round} (chunk {chunk}, {jobs} jobs): first difference at {diff:?}: {:?} vs {:?}",
            diff.map(|i| &want.0[i]),
            diff.map(|i| &got.0[i])
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A sink that stops early stops the parallel reader too, at the same record.
#[test]
fn stopping_early_stops_the_workers() {
    struct StopAt(u64, u64);
    impl RecordSink for StopAt {
        fn record(&mut self, _: &Record<'_>) -> Flow {
            self.0 += 1;
            if self.0 == self.1 { Flow::Stop } else { Flow::Continue }
        }
    }
    impl InputSink for StopAt {
        fn begin_input(&mut self, _: &str, _: InputFormat) {}
        fn end_input(&mut self, _: &InputSummary) {}
    }
    let dir = std::env::temp_dir().join(format!("exitscope-ingest-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.txt");
    std::fs::write(&path, SEED.repeat(5000)).unwrap();
    let path = path.to_str().unwrap();
    let one = read_path(path, &mut StopAt(0, 1000), &Options::default()).unwrap();
    let opts = Options { jobs: 3, chunk_bytes: Some(100), ..Options::default() };
    let many = read_path(path, &mut StopAt(0, 1000), &opts).unwrap();
    // (Bytes read before stopping depend on the buffer, not compared.)
    assert_eq!(
        (one.summary.records, one.summary.lines),
        (many.summary.records, many.summary.lines)
    );
    assert_eq!(one.summary.records, 1000);
    std::fs::remove_dir_all(&dir).ok();
}

/// The analysis of random cuts of random mixtures of event-trace lines (and, in odd rounds,
/// function-graph lines; every third round function-graph lines only, in runs long enough to
/// make whole parts) at `-j N` is the analysis of one thread: the whole report, whether
/// chunks are merged as parts, refused and applied in order, or applied in order.
#[test]
fn random_chunks_give_the_stream_s_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read_lines = |p: &std::path::Path| -> Vec<String> {
        let text = std::fs::read(p).unwrap();
        String::from_utf8_lossy(&text).split_inclusive('\n').map(String::from).collect()
    };
    let mut events: Vec<String> = Vec::new();
    let kvm = root.join("crates/exitscope-analyze/tests/data/kvm_events");
    let mut dirs: Vec<_> = std::fs::read_dir(&kvm).unwrap().filter_map(|e| e.ok()).collect();
    dirs.sort_by_key(|e| e.file_name());
    for d in dirs {
        events.extend(read_lines(&d.path().join("input.txt")));
    }
    for f in ["tests/data/chunks/events-adversarial.txt", "tests/data/compare/vmx-exits.txt"] {
        events.extend(read_lines(&root.join(f)));
    }
    let mut graphs: Vec<String> = Vec::new();
    for f in [
        "tests/data/seed/cpuid-amd.fgraph.txt",
        "tests/data/fgraph/task-switch.txt",
        "tests/data/fgraph/irq-markers.txt",
        "tests/data/fgraph/irq-race-before-entry.txt",
        "tests/data/fgraph/irq-race-after-return.txt",
        "tests/data/chunks/graph-adversarial.txt",
        "tests/data/chunks/graph-adversarial-proc.txt",
        "tests/data/chunks/graph-chaos.txt",
    ] {
        graphs.extend(read_lines(&root.join(f)));
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = std::env::temp_dir().join(format!("exitscope-ingest-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = |path: &str, opts: &Options| {
        let mut a = exitscope_analyze::Analysis::new(Default::default());
        read_path(path, &mut a, opts).unwrap();
        serde_json::to_string_pretty(&a.finish()).unwrap()
    };
    for round in 0..30 {
        let mut input = Vec::new();
        while input.len() < 30_000 {
            let only_graphs = round % 3 == 2;
            let pool =
                if only_graphs || (round % 2 == 1 && next() % 4 == 0) { &graphs } else { &events };
            let at = (next() % pool.len() as u64) as usize;
            let run = 1 + (next() % if only_graphs { 400 } else { 80 }) as usize;
            for l in pool.iter().skip(at).take(run) {
                input.extend_from_slice(l.as_bytes());
            }
        }
        let path = dir.join(format!("r{round}.txt"));
        std::fs::write(&path, &input).unwrap();
        let path = path.to_str().unwrap();
        let want = report(path, &Options::default());
        let chunk = 100 + (next() % 4000) as usize;
        let jobs = 2 + (next() % 4) as usize;
        let got = report(path, &Options { jobs, chunk_bytes: Some(chunk), ..Options::default() });
        let at = want.lines().zip(got.lines()).position(|(a, b)| a != b);
        assert!(
            want == got,
            "round {round} (chunk {chunk}, {jobs} jobs): reports differ at line {at:?}: {:?} vs {:?}",
            at.and_then(|i| want.lines().nth(i)),
            at.and_then(|i| got.lines().nth(i))
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
