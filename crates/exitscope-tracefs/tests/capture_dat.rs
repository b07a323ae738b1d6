//! Binary capture against a fake tracefs whose `per_cpu/cpuN/trace_pipe_raw` files hold real
//! ring-buffer pages: those of the recorded fixture `tests/data/tracedat/kvm-v6.dat` (kernel
//! 6.18, 2 CPUs), with its real format files, cmdlines and printk formats. The trace.dat
//! written must hold exactly those pages, formats and cmdlines, the per-CPU stats, and read
//! back (with exitscope's reader, and with `trace-cmd report` where installed) as the same
//! records as the fixture.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use exitscope_tracedat::{Compression, Merged, TraceDat};
use exitscope_tracefs::{CaptureFormat, Mode, Session, SessionConfig, StopWhen, Tracefs};

mod common;

use common::TempDir;
use exitscope_testkit::fake_tracefs::{fake_from_fixture, fixture_pages, parse_v6, put};

fn fixture(name: &str) -> Vec<u8> {
    exitscope_testkit::fake_tracefs::tracedat_fixture(name)
}

/// Every record of a trace.dat in merged order: (ts, cpu, payload), lost markers as
/// (ts, cpu, count).
fn records(file: &[u8]) -> Vec<(u64, u32, Vec<u8>)> {
    let t = TraceDat::parse(file).unwrap();
    let mut m = t.merge().unwrap();
    let mut v = Vec::new();
    while let Some(it) = m.next_event().unwrap() {
        match it {
            Merged::Event(e) => v.push((e.ts, e.cpu, e.payload.to_vec())),
            Merged::Lost { cpu, ts, count } => {
                v.push((ts, cpu, format!("lost {count:?}").into_bytes()))
            }
        }
    }
    v
}

fn capture(
    root: &Path,
    format: CaptureFormat,
    out_name: &Path,
) -> (Vec<u8>, exitscope_tracefs::CaptureSummary) {
    let fs = Tracefs::fake(root);
    let mut cfg = SessionConfig::new(Mode::events(["kvm:*", "sched:*"]));
    cfg.instance_name = "exitscope-dat".into();
    cfg.format = format;
    let mut s = Session::start(&fs, &cfg).unwrap();
    let mut out = Vec::new();
    let sum = s.capture(&mut out, out_name, &mut |_| Some(StopWhen::Duration)).unwrap();
    s.finish().unwrap();
    assert!(!root.join("instances/exitscope-dat").exists(), "instance left behind");
    (out, sum)
}

#[test]
fn fixture_pages_become_the_same_trace_dat() {
    let fixture_file = fixture("kvm-v6.dat");
    let meta = parse_v6(&fixture_file);
    let mut pages = fixture_pages(&fixture_file);
    assert_eq!(pages.keys().copied().collect::<Vec<_>>(), [0, 1]);
    // Mark the first page of CPU 1 as following 7 lost events, as the kernel does after an
    // overrun (count stored after the page's data).
    let p = pages.get_mut(&1).unwrap();
    let commit = u64::from_le_bytes(p[8..16].try_into().unwrap());
    let used = (commit & ((1 << 27) - 1)) as usize;
    assert!(16 + used + 8 <= 4096, "no room for the count");
    p[16 + used..24 + used].copy_from_slice(&7u64.to_le_bytes());
    p[8..16].copy_from_slice(&(commit | (1 << 31) | (1 << 30)).to_le_bytes());

    for compression in [Compression::Zstd, Compression::None] {
        let dir = TempDir::new("fixture");
        fake_from_fixture(&dir.0, &pages, &meta);
        let out_name = dir.0.join("t.dat");
        let (out, sum) = capture(&dir.0, CaptureFormat::TraceDat { compression }, &out_name);
        let what = format!("{compression:?}");
        assert_eq!(sum.bytes, out.len() as u64, "{what}");
        assert_eq!(sum.pages, pages.values().map(|p| p.len() as u64 / 4096).sum::<u64>());
        assert_eq!(sum.lost_in_stream, BTreeMap::from([(1, 7)]), "{what}");
        assert!(sum.lost_from_stats.is_empty(), "{what}");
        assert!(sum.notes.is_empty(), "{what}: {:?}", sum.notes);
        assert_eq!(
            fs::read_dir(&dir.0)
                .unwrap()
                .flatten()
                .filter(|e| { e.file_name().to_string_lossy().ends_with(".spool") })
                .count(),
            0,
            "spool files left behind"
        );

        let t = TraceDat::parse(&out).unwrap();
        let h = &t.header;
        assert_eq!((h.version, h.compression), (7, compression), "{what}");
        assert_eq!(h.buffers.len(), 1);
        assert_eq!((h.buffers[0].name.as_str(), h.buffers[0].clock.as_str()), ("", "local"));
        assert_eq!(h.buffers[0].page_size, 4096);
        if compression == Compression::None {
            // Byte for byte the pages that were in trace_pipe_raw.
            for c in &h.buffers[0].cpus {
                let d = &out[c.offset as usize..(c.offset + c.size) as usize];
                assert_eq!(d, &pages[&c.cpu][..], "cpu {}", c.cpu);
            }
        }
        // The same formats (names and ids), cmdlines and printk formats as the fixture.
        let f = TraceDat::parse(&fixture_file).unwrap();
        let ids = |t: &TraceDat<'_>| -> Vec<(String, String, u16)> {
            let mut v: Vec<_> =
                t.header.formats.iter().map(|f| (f.system.clone(), f.name.clone(), f.id)).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&t), ids(&f), "{what}");
        let cmdlines = String::from_utf8_lossy(&meta.cmdlines).into_owned();
        for (pid, comm) in cmdlines.lines().filter_map(|l| l.trim().split_once(' ')) {
            let pid: u32 = pid.parse().unwrap();
            assert_eq!(h.cmdlines.comm(pid), Some(comm), "{what}: pid {pid}");
        }
        assert_eq!(
            h.trace_clock.as_deref(),
            Some("[local] global counter uptime perf mono x86-tsc")
        );
        assert_eq!(h.cpu_stats.len(), 2, "{what}");
        assert!(h.cpu_stats[1].starts_with("CPU: 1\nentries: 0\n"), "{:?}", h.cpu_stats[1]);
        assert!(h.tracer_version.as_deref().is_some_and(|v| v.starts_with("exitscope ")));
        // The same records, in the same order, with the same lost-event marker.
        let mut want = records(&fixture_file);
        let first_cpu1 = want.iter().position(|r| r.1 == 1).unwrap();
        want.insert(first_cpu1, (want[first_cpu1].0, 1, b"lost Some(7)".to_vec()));
        let got = records(&out);
        assert_eq!(got.len(), want.len(), "{what}");
        assert!(got == want, "{what}: records differ");
        trace_cmd_agrees(&out_name, &out, &fixture_file);
    }
}

/// `trace-cmd report` of the capture prints the fixture's lines (without the instance-name
/// prefix the fixture's lines carry) and the lost-event line.
fn trace_cmd_agrees(out_name: &Path, out: &[u8], fixture_file: &[u8]) {
    let have = std::process::Command::new("trace-cmd").arg("--version").output().is_ok();
    if !have {
        assert!(
            std::env::var_os("EXITSCOPE_REQUIRE_HW").is_none_or(|v| v != "1"),
            "EXITSCOPE_REQUIRE_HW=1 but trace-cmd is not installed"
        );
        println!("SKIP: trace-cmd is not installed (apt-get install trace-cmd)");
        return;
    }
    let report = |bytes: &[u8], name: &Path| -> Vec<String> {
        fs::write(name, bytes).unwrap();
        let o = std::process::Command::new("trace-cmd")
            .args(["report", "-t", "-N", "-i"])
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("cpus=") && !l.trim().is_empty())
            .map(|l| {
                let mut w: Vec<&str> = l.split_whitespace().collect();
                if w.first().is_some_and(|f| f.starts_with("tdfix-") && f.ends_with(':')) {
                    w.remove(0);
                }
                w.join(" ")
            })
            .collect()
    };
    let got = report(out, out_name);
    let want = report(fixture_file, &out_name.with_extension("fixture.dat"));
    let lost: Vec<&String> = got.iter().filter(|l| l.contains("EVENTS DROPPED")).collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let got: Vec<String> = got.into_iter().filter(|l| !l.contains("EVENTS DROPPED")).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn text_and_trace_dat_follow_the_output_name() {
    use std::path::Path;
    let z = Compression::Zstd;
    assert_eq!(CaptureFormat::for_path(Path::new("t.txt"), z), CaptureFormat::Text);
    assert_eq!(CaptureFormat::for_path(Path::new("T.TXT"), z), CaptureFormat::Text);
    for p in ["t.dat", "exitscope.dat", "-", "trace", "x.trace"] {
        assert_eq!(
            CaptureFormat::for_path(Path::new(p), z),
            CaptureFormat::TraceDat { compression: z },
            "{p}"
        );
    }
}

#[test]
fn plain_reads_give_the_same_file_as_splice() {
    let fixture_file = fixture("kvm-v6.dat");
    let meta = parse_v6(&fixture_file);
    let pages = fixture_pages(&fixture_file);
    let run = |no_splice: bool| {
        let dir = TempDir::new("nosplice");
        fake_from_fixture(&dir.0, &pages, &meta);
        if no_splice {
            put(&dir.0, ".no-splice", b"");
        }
        let (out, _) = capture(
            &dir.0,
            CaptureFormat::TraceDat { compression: Compression::None },
            &dir.0.join("t.dat"),
        );
        records(&out)
    };
    let a = run(false);
    assert!(!a.is_empty());
    assert!(a == run(true));
}
