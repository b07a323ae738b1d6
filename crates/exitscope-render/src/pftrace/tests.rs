use std::collections::{BTreeMap, HashMap};

use exitscope_analyze::{Analysis, AnalysisOptions};
use exitscope_model::{InputFormat, InputSink, InputSummary};

use super::*;

/// A decoded protobuf field.
#[derive(Clone, Copy, Debug)]
enum V<'a> {
    Int(u64),
    Bytes(&'a [u8]),
    F64(f64),
}

/// The fields of one message, in order (a reader written from the wire-format spec, so the
/// writer is not checked against itself).
fn fields(mut b: &[u8]) -> Vec<(u32, V<'_>)> {
    fn var(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = var(&mut b);
        let field = u32::try_from(key >> 3).unwrap();
        let val = match key & 7 {
            0 => V::Int(var(&mut b)),
            1 => {
                let (x, rest) = b.split_at(8);
                b = rest;
                V::F64(f64::from_le_bytes(x.try_into().unwrap()))
            }
            2 => {
                let n = usize::try_from(var(&mut b)).unwrap();
                let (x, rest) = b.split_at(n);
                b = rest;
                V::Bytes(x)
            }
            w => panic!("wire type {w}"),
        };
        out.push((field, val));
    }
    out
}

fn int(f: &[(u32, V<'_>)], n: u32) -> Option<u64> {
    f.iter().find_map(|&(k, v)| match (k == n, v) {
        (true, V::Int(x)) => Some(x),
        _ => None,
    })
}

fn sub<'a>(f: &[(u32, V<'a>)], n: u32) -> Option<&'a [u8]> {
    f.iter().find_map(|&(k, v)| match (k == n, v) {
        (true, V::Bytes(x)) => Some(x),
        _ => None,
    })
}

fn text(f: &[(u32, V<'_>)], n: u32) -> Option<String> {
    sub(f, n).map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// One decoded track event.
#[derive(Debug, Clone)]
struct Ev {
    ts: u64,
    kind: u64,
    track: u64,
    name: Option<String>,
    anns: BTreeMap<String, String>,
    counter: Option<f64>,
}

/// A decoded trace: descriptors by uuid (name, parent) and the events in file order. Checks
/// the sequence rules on the way: one sequence, the first packet clears the incremental
/// state, each iid is defined once before (or in) the packet that uses it, and such packets
/// say they need the incremental state.
struct Decoded {
    tracks: HashMap<u64, (String, Option<u64>)>,
    events: Vec<Ev>,
}

fn decode(bytes: &[u8]) -> Decoded {
    let mut tables: HashMap<u32, HashMap<u64, String>> = HashMap::new();
    let mut out = Decoded { tracks: HashMap::new(), events: Vec::new() };
    for (i, (field, v)) in fields(bytes).into_iter().enumerate() {
        assert_eq!(field, 1, "a Trace holds only packets");
        let V::Bytes(p) = v else { panic!("packet {i} is not a message") };
        let p = fields(p);
        assert_eq!(int(&p, 10), Some(SEQUENCE_ID), "packet {i}: sequence id");
        let flags = int(&p, 13).unwrap_or(0);
        assert_eq!(flags & 1 != 0, i == 0, "packet {i}: SEQ_INCREMENTAL_STATE_CLEARED");
        if let Some(data) = sub(&p, 12) {
            for (table, entry) in fields(data) {
                let V::Bytes(e) = entry else { panic!() };
                let e = fields(e);
                let iid = int(&e, 1).unwrap();
                let prev = tables.entry(table).or_default().insert(iid, text(&e, 2).unwrap());
                assert!(prev.is_none(), "iid {iid} of table {table} defined twice");
            }
        }
        let ts = int(&p, 8).expect("every packet has a timestamp");
        if let Some(d) = sub(&p, 60) {
            let d = fields(d);
            let name = text(&d, 2)
                .or_else(|| sub(&d, 4).and_then(|t| text(&fields(t), 5)))
                .or_else(|| sub(&d, 3).and_then(|t| text(&fields(t), 6)))
                .unwrap();
            out.tracks.insert(int(&d, 1).unwrap(), (name, int(&d, 5)));
        }
        if let Some(e) = sub(&p, 11) {
            let e = fields(e);
            let look = |table: u32, iid: u64| tables[&table][&iid].clone();
            let name = int(&e, 10).map(|iid| look(2, iid));
            let mut anns = BTreeMap::new();
            for &(k, v) in &e {
                let (4, V::Bytes(a)) = (k, v) else { continue };
                let a = fields(a);
                let key = look(3, int(&a, 1).unwrap());
                let val = match (int(&a, 3), int(&a, 2), text(&a, 6), int(&a, 17)) {
                    (Some(u), ..) => u.to_string(),
                    (_, Some(b), ..) => (b != 0).to_string(),
                    (_, _, Some(s), _) => s,
                    (.., Some(iid)) => look(29, iid),
                    _ => panic!("annotation {key} has no value"),
                };
                anns.insert(key, val);
            }
            let uses_iids = name.is_some() || !anns.is_empty();
            assert_eq!(flags & 2 != 0, uses_iids, "packet {i}: SEQ_NEEDS_INCREMENTAL_STATE");
            let counter = e.iter().find_map(|&(k, v)| match (k, v) {
                (44, V::F64(x)) => Some(x),
                _ => None,
            });
            let track = int(&e, 11).unwrap();
            assert!(out.tracks.contains_key(&track), "event on undescribed track {track}");
            out.events.push(Ev { ts, kind: int(&e, 9).unwrap(), track, name, anns, counter });
        }
    }
    out
}

impl Decoded {
    fn track(&self, name: &str) -> u64 {
        let found: Vec<u64> =
            self.tracks.iter().filter(|(_, (n, _))| n == name).map(|(&u, _)| u).collect();
        assert_eq!(found.len(), 1, "track {name:?} in {:?}", self.tracks);
        found[0]
    }

    fn child(&self, parent: u64, name: &str) -> u64 {
        *self.tracks.iter().find(|(_, (n, p))| n == name && *p == Some(parent)).unwrap().0
    }

    fn on(&self, track: u64) -> Vec<&Ev> {
        self.events.iter().filter(|e| e.track == track).collect()
    }

    /// Per track: begin/end balanced, time never going back, every slice inside its parent.
    /// Returns the (name, depth, begin, end) of every slice.
    fn slices(&self, track: u64) -> Vec<(String, usize, u64, u64)> {
        let mut stack: Vec<(usize, u64)> = Vec::new();
        let mut out: Vec<(String, usize, u64, u64)> = Vec::new();
        let mut last = 0;
        for e in self.on(track) {
            assert!(e.ts >= last, "time went back on track {track}: {e:?}");
            last = e.ts;
            match e.kind {
                1 => {
                    stack.push((out.len(), e.ts));
                    out.push((e.name.clone().unwrap(), stack.len() - 1, e.ts, 0));
                }
                2 => {
                    let (i, _) = stack.pop().expect("SLICE_END with nothing open");
                    out[i].3 = e.ts;
                }
                _ => {}
            }
        }
        assert!(stack.is_empty(), "unclosed slices on track {track}");
        // Children inside parents.
        for (i, s) in out.iter().enumerate() {
            if s.1 == 0 {
                continue;
            }
            let parent = out[..i].iter().rev().find(|p| p.1 + 1 == s.1).unwrap();
            assert!(parent.2 <= s.2 && s.3 <= parent.3, "{s:?} outside {parent:?}");
        }
        out
    }
}

fn run(inputs: &[(&str, &str)]) -> Decoded {
    let names = inputs.iter().map(|(n, _)| n.to_string()).collect();
    let timeline = PftraceTimeline::new(Vec::new(), PerfettoOptions::with_inputs(names));
    let (mut calls, mut records, mut exits) =
        (timeline.call_sink(), timeline.record_sink(), timeline.exit_sink());
    let mut a = Analysis::new(AnalysisOptions::default());
    a.add_call_sink(&mut calls);
    a.add_record_sink(&mut records);
    a.add_exit_sink(&mut exits);
    for (i, (name, text)) in inputs.iter().enumerate() {
        timeline.begin_input(i);
        a.begin_input(name, InputFormat::FtraceText);
        exitscope_ftrace::parse_reader(name, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary::default());
    }
    let _ = a.finish();
    decode(&timeline.finish().unwrap())
}

const GRAPH: &str = "\
 98)               |  vcpu_enter_guest [kvm]() {
 98)   0.080 us    |    kvm_vcpu_exit_request [kvm]();
 98)               |    svm_vcpu_run [kvm_amd]() {
 98)   1.000 us    |      __svm_vcpu_run [kvm_amd]();
 98)   1.500 us    |    }
 98)               |    svm_handle_exit [kvm_amd]() {
 98)               |      cpuid_interception [kvm_amd]() {
 98)   0.300 us    |        kvm_emulate_cpuid [kvm]();
 98)   0.500 us    |      }
 98)   0.700 us    |    }
 98)   4.278 us    |  }
";

#[test]
fn graph_without_timestamps_nests_on_a_cpu_track_with_its_exit() {
    let d = run(&[("seed", GRAPH)]);
    let cpu = d.track("cpu 98");
    let slices = d.slices(cpu);
    assert_eq!(slices.len(), 7, "{slices:?}");
    // The root is named by its exit and lasts the call's 4278 ns.
    assert_eq!((slices[0].0.as_str(), slices[0].1), ("CPUID", 0));
    assert_eq!(slices[0].3 - slices[0].2, 4278);
    assert_eq!(
        slices[5],
        ("cpuid_interception [kvm_amd]".into(), 2, slices[5].2, slices[5].2 + 500)
    );
    let root = &d.on(cpu)[0];
    assert_eq!(root.anns["function"], "vcpu_enter_guest [kvm]");
    assert_eq!(root.anns["self_ns"], "1998");
    // The exit, placed where its root was laid out.
    let exits = d.slices(d.child(cpu, "exits"));
    assert_eq!(exits, [("CPUID".to_string(), 0, slices[0].2, slices[0].3)]);
    let exit = d.on(d.child(cpu, "exits"))[0];
    assert_eq!(exit.anns["reason"], "CPUID");
    assert_eq!(exit.anns["source"], "function_graph");
    assert_eq!(exit.anns["phase_run_ns"], "1500");
    assert_eq!(exit.anns["duration_ns"], "4278");
    // Synthetic time: no counters, and the summary says so.
    assert!(d.events.iter().all(|e| e.kind != 4));
    let summary = d.on(d.track("exitscope"));
    assert_eq!(summary[0].anns["synthetic_time"], "true");
    assert_eq!(summary[0].anns["exits"], "1");
    assert_eq!(summary[0].anns["exits_without_time"], "0");
    assert_eq!(summary[0].anns["call_slices"], "7");
}

const EVENTS: &str = "\
 qemu-system-x86-4321    [005] d..2.   100.000100: kvm_exit: vcpu 2 reason CPUID rip 0xffffffff81001234 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000
 qemu-system-x86-4321    [005] d..2.   100.000300: kvm_entry: vcpu 2, rip 0xffffffff81001236
 qemu-system-x86-4321    [005] d..2.   100.000400: kvm_exit: vcpu 2 reason CPUID rip 0xffffffff81001234 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000
 qemu-system-x86-4321    [005] d..2.   100.000500: kvm_entry: vcpu 2, rip 0xffffffff81001236
CPU:5 [LOST 7 EVENTS]
 qemu-system-x86-4321    [005] d..2.   100.004000: kvm_exit: vcpu 2 reason HLT rip 0xffffffff81001234 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000
 qemu-system-x86-4321    [005] d..2.   100.004900: kvm_entry: vcpu 2, rip 0xffffffff81001236
";

#[test]
fn event_pairs_become_exit_slices_on_the_vcpu_thread_with_counters() {
    let d = run(&[("events", EVENTS)]);
    let thread = d.track("vcpu 2 (4321)");
    let exits = d.slices(d.child(thread, "exits"));
    let spans: Vec<(&str, u64, u64)> =
        exits.iter().map(|(n, _, b, e)| (n.as_str(), *b, *e)).collect();
    assert_eq!(
        spans,
        [
            ("CPUID", 100_000_100_000, 100_000_300_000),
            ("CPUID", 100_000_400_000, 100_000_500_000),
            ("HLT", 100_004_000_000, 100_004_900_000),
        ]
    );
    let first = d.on(d.child(thread, "exits"))[0];
    assert_eq!(first.anns["raw_reason"], "CPUID");
    assert_eq!(first.anns["code"], "10");
    assert_eq!(first.anns["isa"], "vmx");
    assert_eq!(first.anns["vcpu"], "2");
    assert_eq!(first.anns["rip"], 0xffff_ffff_8100_1234u64.to_string());
    // Every event record is an instant on the thread's events track.
    let events = d.on(d.child(thread, "events"));
    assert_eq!(events.len(), 6);
    assert!(events[0].anns["text"].starts_with("vcpu 2 reason CPUID"));
    // The lost marker, at the last time seen before it.
    let lost = d.on(d.track("lost events"));
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].name.as_deref(), Some("LOST 7 events"));
    assert_eq!(lost[0].ts, 100_000_500_000);
    assert_eq!(lost[0].anns["count"], "7");
    // 2 CPUIDs in the 1 ms window at 100.000 s = 2000/s, then 0 from the next window.
    let cpuid = d.on(d.track("exits/s CPUID"));
    let points: Vec<(u64, f64)> = cpuid.iter().map(|e| (e.ts, e.counter.unwrap())).collect();
    assert_eq!(points, [(100_000_000_000, 2000.0), (100_001_000_000, 0.0)]);
    let hlt = d.on(d.track("exits/s HLT"));
    assert_eq!(hlt[0].counter, Some(1000.0));
}

fn packets() -> Packets<Vec<u8>> {
    Packets::new(Vec::new())
}

/// (ts, kind) of the events written so far.
fn written(pk: Packets<Vec<u8>>, tracks: &[u64]) -> Vec<(u64, u64)> {
    // Describe the tracks after the fact so that `decode` accepts the events.
    let mut bytes = Vec::new();
    for &t in tracks {
        let mut d = Vec::new();
        proto::uint(&mut d, 1, t);
        proto::bytes(&mut d, 2, b"t");
        let mut p = Vec::new();
        proto::uint(&mut p, 8, 0);
        proto::uint(&mut p, 10, SEQUENCE_ID);
        if bytes.is_empty() {
            proto::uint(&mut p, 13, 1);
        }
        proto::bytes(&mut p, 60, &d);
        proto::bytes(&mut bytes, 1, &p);
    }
    // The writer's own first packet set the flag: drop it from the first event packet.
    let own = fields(&pk.w);
    for (i, (_, v)) in own.into_iter().enumerate() {
        let V::Bytes(p) = v else { panic!() };
        let mut re = Vec::new();
        for (k, v) in fields(p) {
            match (k, v) {
                (13, V::Int(f)) if i == 0 => {
                    if f & !1 != 0 {
                        proto::uint(&mut re, 13, f & !1);
                    }
                }
                (_, V::Int(x)) => proto::uint(&mut re, k, x),
                (_, V::Bytes(b)) => proto::bytes(&mut re, k, b),
                (_, V::F64(x)) => proto::double(&mut re, k, x),
            }
        }
        proto::bytes(&mut bytes, 1, &re);
    }
    decode(&bytes).events.iter().map(|e| (e.ts, e.kind)).collect()
}

const B: u64 = fe::TYPE_SLICE_BEGIN;
const E: u64 = fe::TYPE_SLICE_END;

#[test]
fn a_child_that_outlasts_its_parent_is_clipped_to_it() {
    let mut pk = packets();
    let mut t = Track::new(7);
    assert!(!t.slice(&mut pk, 0, 0, 100, ("parent", "call"), &[]));
    assert!(t.slice(&mut pk, 1, 10, 200, ("child", "call"), &[]));
    assert!(!t.slice(&mut pk, 2, 50, 10, ("grandchild", "call"), &[]));
    // A sibling after the parent's end closes both.
    assert!(!t.slice(&mut pk, 0, 150, 5, ("next", "call"), &[]));
    t.finish(&mut pk);
    assert_eq!(
        written(pk, &[7]),
        [(0, B), (10, B), (50, B), (60, E), (100, E), (100, E), (150, B), (155, E)]
    );
}

#[test]
fn a_child_the_timestamps_put_after_its_parent_stays_inside_it() {
    // µs-rounded timestamps: the call tree says nested, the times say after.
    let mut pk = packets();
    let mut t = Track::new(7);
    assert!(!t.slice(&mut pk, 0, 0, 10, ("parent", "call"), &[]));
    assert!(t.slice(&mut pk, 1, 20, 5, ("child", "call"), &[]));
    t.finish(&mut pk);
    assert_eq!(written(pk, &[7]), [(0, B), (10, B), (10, E), (10, E)]);
}

#[test]
fn a_slice_that_starts_before_the_last_event_starts_there() {
    let mut pk = packets();
    let mut t = Track::new(7);
    t.slice(&mut pk, 0, 100, 10, ("late", "call"), &[]);
    t.finish(&mut pk);
    // Out of order: it starts at 110 (where the track is), keeping its end at the latest.
    assert!(t.slice(&mut pk, 0, 50, 10, ("early", "call"), &[]));
    t.finish(&mut pk);
    assert_eq!(written(pk, &[7]), [(100, B), (110, E), (110, B), (110, E)]);
}

#[test]
fn overlapping_siblings_on_a_flat_track_end_where_the_next_begins() {
    let mut pk = packets();
    let mut t = Track::new(7);
    assert!(!t.slice(&mut pk, 0, 0, 100, ("exit 1", "exit"), &[]));
    assert!(t.slice(&mut pk, 0, 50, 100, ("exit 2", "exit"), &[]));
    t.instant(&mut pk, 120, ("tracepoint exit", "exit"), &[]);
    t.finish(&mut pk);
    assert_eq!(written(pk, &[7]), [(0, B), (50, E), (50, B), (120, fe::TYPE_INSTANT), (150, E)]);
}

#[test]
fn rate_windows_grow_tenfold_when_too_many_are_held() {
    let mut r = Rates::new();
    for i in 0..=MAX_RATE_BUCKETS as u64 {
        r.add(0, "IO", i * DEFAULT_RATE_WINDOW_NS);
    }
    assert_eq!(r.window, 10 * DEFAULT_RATE_WINDOW_NS);
    assert_eq!(r.buckets.len(), MAX_RATE_BUCKETS.div_ceil(10));
    assert_eq!(r.buckets[&(0, 0)], 10);
    assert_eq!(r.buckets.values().sum::<u64>(), MAX_RATE_BUCKETS as u64 + 1);
}
