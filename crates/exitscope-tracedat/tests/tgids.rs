//! exitscope's tgids option: each record's task gets its process from it, a foreign option
//! under the same id is ignored, and sched_switch renders with `prev_pid=` (what the exit
//! analysis reads to tell a preempted exit).

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink};
use exitscope_tracedat::Compression;
use exitscope_tracedat::write::fixture;

#[derive(Default)]
struct Tasks(Vec<(String, u32, Option<u32>, String)>);

impl RecordSink for Tasks {
    fn record(&mut self, r: &Record<'_>) -> Flow {
        if let (RecordKind::Event { name, text, .. }, Some(t)) = (r.kind, r.task) {
            self.0.push((name.to_string(), t.pid, t.tgid, text.to_string()));
        }
        Flow::Continue
    }
    fn diagnostic(&mut self, d: Diagnostic) -> Flow {
        panic!("{d}")
    }
}

#[test]
fn records_get_their_process_from_the_tgids_option() {
    for (version, c) in [(6, Compression::None), (7, Compression::Zstd)] {
        let w = fixture::kvm_sched_tgids(version, c);
        let bytes = w.to_bytes();
        let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
        assert_eq!(t.header.tgids.get(&4242), Some(&4240));
        assert_eq!(t.header.tgids.get(&1), Some(&1));
        let mut s = Tasks::default();
        t.read_into("t.dat", &mut s).unwrap();
        let by_pid = |pid: u32| s.0.iter().find(|r| r.1 == pid).map(|r| r.2);
        assert_eq!(by_pid(4242), Some(Some(4240)), "v{version}");
        assert_eq!(by_pid(4243), Some(Some(4240)));
        assert_eq!(by_pid(4244), Some(None), "a thread the option does not name");
        let sw = s.0.iter().find(|r| r.0 == "sched_switch").unwrap();
        assert_eq!(
            sw.3,
            "prev_comm=qemu-system-x86 prev_pid=4242 prev_prio=120 prev_state=S ==> \
             next_comm=swapper/0 next_pid=0 next_prio=120"
        );
    }
}

#[test]
fn a_foreign_option_under_the_tgids_id_is_ignored() {
    let mut w = fixture::kvm_sched_tgids(7, Compression::Zstd);
    w.extra_options = vec![(exitscope_tracedat::TGIDS_OPTION, b"4242 4240\n\0".to_vec())];
    let bytes = w.to_bytes();
    let t = exitscope_tracedat::TraceDat::parse(&bytes).unwrap();
    assert!(t.header.tgids.is_empty());
}
