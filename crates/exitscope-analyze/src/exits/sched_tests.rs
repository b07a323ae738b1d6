//! `vm_pid` and `preempted` of exit records, from the fixtures made for them
//! (`tests/data/fgraph/events-tgid-sched.txt`, `task-switch-in-exit.txt`).

use exitscope_ftrace::parse_reader;
use exitscope_model::{InputFormat, InputSink, InputSummary};

use super::{ExitRecord, ExitSink, Reasons};
use crate::{Analysis, AnalysisOptions};

/// (reason, vCPU thread, VM process, preempted).
type Row<'a> = (&'a str, Option<u32>, Option<u32>, Option<bool>);

#[derive(Default)]
struct Collect(Vec<(String, ExitRecord)>);

impl ExitSink for Collect {
    fn exit(&mut self, exit: &ExitRecord, reasons: &Reasons) {
        self.0.push((reasons.get(exit.reason).label().to_string(), exit.clone()));
    }
}

fn exits_of(fixture: &str) -> Vec<(String, ExitRecord)> {
    let path = format!("{}/../../tests/data/fgraph/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut c = Collect::default();
    {
        let mut a = Analysis::new(AnalysisOptions::default());
        a.add_exit_sink(&mut c);
        a.begin_input(fixture, InputFormat::FtraceText);
        let s = parse_reader(fixture, text.as_bytes(), &mut a).unwrap();
        a.end_input(&InputSummary { lines: s.lines, records: s.records, ..Default::default() });
        a.finish();
    }
    c.0
}

#[test]
fn event_text_gives_the_tgid_column_and_sched_switches_inside_exits() {
    let exits = exits_of("events-tgid-sched.txt");
    let got: Vec<Row<'_>> =
        exits.iter().map(|(r, e)| (r.as_str(), e.task, e.vm_pid, e.preempted)).collect();
    assert_eq!(
        got,
        [
            // Before the input's first sched_switch: it cannot say.
            ("CPUID", Some(4243), Some(4240), None),
            // Halted: switched out between kvm_exit and kvm_entry.
            ("HLT", Some(4242), Some(4240), Some(true)),
            ("CPUID", Some(4243), Some(4240), Some(false)),
            // `(-------)`: the kernel had no tgid for the thread; preempted (prev_state=R+).
            ("IO", Some(5101), None, Some(true)),
            // Unpaired at the end of the input.
            ("CPUID", Some(4243), Some(4240), Some(false)),
        ]
    );
}

#[test]
fn function_graph_exits_see_task_switches_and_scheduler_calls() {
    let exits = exits_of("task-switch-in-exit.txt");
    let got: Vec<Row<'_>> =
        exits.iter().map(|(r, e)| (r.as_str(), e.task, e.vm_pid, e.preempted)).collect();
    assert_eq!(
        got,
        [
            // function_graph text has no tgid column: vm_pid is null.
            ("CPUID", Some(4242), None, Some(false)),
            // schedule() + kvm_sched_out + the banner inside the exit.
            ("HLT", Some(4242), None, Some(true)),
            // Only the banner: preempted while vmx_handle_exit was open.
            ("CPUID", Some(4243), None, Some(true)),
        ]
    );
}
