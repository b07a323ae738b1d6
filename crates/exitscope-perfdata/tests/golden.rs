//! Recorded perf.data files (`tests/data/perfdata`, see its README) against the `perf
//! script` output stored next to them: same events, same counts, same text, in order.
//! Needs no perf.

mod common;

fn check(stem: &str, pipe: bool, compressed: bool) {
    let dir = common::data_dir().join("perfdata");
    let bytes = std::fs::read(dir.join(format!("{stem}.data"))).expect("fixture");
    let script = std::fs::read_to_string(dir.join(format!("{stem}.script"))).expect("script");
    let theirs = common::parse_perf_script(&script);
    let (s, ours) = common::read_events(&bytes, stem);
    assert_eq!(ours, theirs, "{stem}");
    assert_eq!(s.pipe, pipe, "{stem}");
    assert_eq!(s.compressed_records > 0, compressed, "{stem}");
    let counts: Vec<(String, u64)> =
        theirs.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect();
    assert_eq!(s.event_counts, counts, "{stem}");
    assert_eq!(s.events, ["kvm:kvm_cpuid", "kvm:kvm_pio", "kvm:kvm_userspace_exit"], "{stem}");
    assert!(s.first_ts.is_some() && s.first_ts <= s.last_ts, "{stem}");
}

#[test]
fn file_mode_matches_perf_script() {
    check("kvm-file", false, false);
}

#[test]
fn compressed_file_matches_perf_script() {
    check("kvm-zstd", false, true);
}

#[test]
fn pipe_mode_matches_perf_script() {
    check("kvm-pipe", true, false);
}

#[test]
fn tasks_times_and_cpus_come_from_the_samples() {
    let bytes = std::fs::read(common::data_dir().join("perfdata/kvm-file.data")).unwrap();
    let mut c = common::Collect::default();
    exitscope_perfdata::read(&bytes, "kvm-file", &mut c).unwrap();
    let script =
        std::fs::read_to_string(common::data_dir().join("perfdata/kvm-file.script")).unwrap();
    // perf script: `python3  3521 [001]  1531.284474: kvm:kvm_pio: ...`
    let first = script.lines().next().unwrap();
    let toks: Vec<&str> = first.split_whitespace().collect();
    let (comm, tid) = c.tasks[0].clone().unwrap();
    assert_eq!(comm, toks[0]);
    assert_eq!(tid.to_string(), toks[1]);
    assert_eq!(format!("[{:03}]", c.cpus[0].unwrap()), toks[2]);
    let ts = c.timestamps[0].unwrap();
    assert_eq!(format!("{}.{:06}:", ts / 1_000_000_000, ts % 1_000_000_000 / 1000), toks[3]);
}

/// A sink that reads no text of `kvm_userspace_exit` and only some of `kvm_pio` gets the
/// rest as perf script prints it and the skipped ones empty.
#[test]
fn text_is_rendered_only_where_the_sink_reads_it() {
    use exitscope_model::{Flow, Record, RecordKind, RecordSink, TextUse};
    #[derive(Default)]
    struct Picky {
        texts: Vec<(String, String)>,
        asked: std::cell::Cell<usize>,
    }
    impl RecordSink for Picky {
        fn record(&mut self, r: &Record<'_>) -> Flow {
            if let RecordKind::Event { name, text, .. } = r.kind {
                self.texts.push((name.to_string(), text.to_string()));
            }
            Flow::Continue
        }
        fn text_use(&self, event: &str) -> TextUse {
            match event {
                "kvm_userspace_exit" => TextUse::Never,
                "kvm_pio" => TextUse::Sometimes,
                _ => TextUse::Always,
            }
        }
        fn wants_text(&self, _: &Record<'_>) -> bool {
            self.asked.set(self.asked.get() + 1);
            self.asked.get() % 2 == 1
        }
    }
    let bytes = std::fs::read(common::data_dir().join("perfdata/kvm-file.data")).unwrap();
    let mut all = common::Collect::default();
    exitscope_perfdata::read(&bytes, "kvm-file", &mut all).unwrap();
    let mut p = Picky::default();
    exitscope_perfdata::read(&bytes, "kvm-file", &mut p).unwrap();
    let mut pio = 0;
    assert_eq!(p.texts.len(), all.events.len());
    for ((name, got), (_, want)) in p.texts.iter().zip(&all.events) {
        let want = match name.as_str() {
            "kvm_userspace_exit" => "",
            "kvm_pio" => {
                pio += 1;
                if pio % 2 == 1 { want.as_str() } else { "" }
            }
            _ => want.as_str(),
        };
        assert_eq!(got, want, "{name}");
    }
    assert!(pio > 1 && p.asked.get() == pio, "{pio} {}", p.asked.get());
}

/// `perf kvm stat record`'s kvm_exit samples decoded from their fields for a sink that only
/// parses them: what the rendered text parses to, and no text unless the sink asks.
#[test]
fn kvm_exit_is_decoded_for_a_sink_that_only_parses_it() {
    use exitscope_model::exit::parse_kvm_exit;
    use exitscope_model::{Flow, Record, RecordKind, RecordSink, TextUse};
    struct Parses {
        exits: Vec<(Option<String>, String)>,
        ask: bool,
    }
    impl RecordSink for Parses {
        fn record(&mut self, r: &Record<'_>) -> Flow {
            if let RecordKind::Event { name: "kvm_exit", text, exit } = r.kind {
                self.exits.push((exit.map(|k| format!("{k:?}")), text.to_string()));
            }
            Flow::Continue
        }
        fn text_use(&self, e: &str) -> TextUse {
            if e == "kvm_exit" { TextUse::Parsed } else { TextUse::Always }
        }
        fn wants_text(&self, _: &Record<'_>) -> bool {
            self.ask
        }
    }
    let bytes = std::fs::read(common::data_dir().join("perfdata/kvm-stat-vmx.data")).unwrap();
    let mut all = common::Collect::default();
    exitscope_perfdata::read(&bytes, "vmx", &mut all).unwrap();
    let texts: Vec<&String> =
        all.events.iter().filter(|(n, _)| n == "kvm_exit").map(|(_, t)| t).collect();
    assert!(texts.len() > 10, "{}", texts.len());
    for ask in [false, true] {
        let mut p = Parses { exits: Vec::new(), ask };
        exitscope_perfdata::read(&bytes, "vmx", &mut p).unwrap();
        assert_eq!(p.exits.len(), texts.len());
        for ((exit, text), want) in p.exits.iter().zip(&texts) {
            let parsed = parse_kvm_exit(want).map(|k| format!("{k:?}"));
            assert!(parsed.is_some(), "{want}");
            assert_eq!(exit, &parsed, "{want}");
            assert_eq!(text, if ask { want.as_str() } else { "" });
        }
    }
}
