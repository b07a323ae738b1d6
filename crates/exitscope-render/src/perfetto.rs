//! A Perfetto / `chrome://tracing` timeline of every call, in Chrome's trace-event JSON:
//!
//! ```text
//! {"traceEvents":[
//!   {"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"cpuid-amd.fgraph.txt: CPUs","synthetic_time":true}},
//!   {"ph":"X","name":"vcpu_enter_guest [kvm]","pid":1,"tid":98,"ts":0.0,"dur":4.278,"args":{...}},
//!   {"ph":"i","s":"t","name":"kvm_exit","pid":1,"tid":98,"ts":0.0,"args":{"text":"..."}}
//! ],"displayTimeUnit":"ns","otherData":{"synthetic_time":true,...}}
//! ```
//!
//! `ts`/`dur` are microseconds (fractions carry the nanoseconds); `args.duration_ns` is the
//! exact integer. Tracks: each input is a process whose threads are its CPUs (`tid` = CPU
//! number), and each traced task (a vCPU thread) is a process of its own with one thread, so
//! the same call shows on the CPU it ran on and on the thread that ran it.
//!
//! **Streaming.** [`PerfettoTimeline`] is a [`CallSink`](exitscope_analyze::calls::CallSink) (one complete slice per call of each
//! [`RootCall`] the analysis rebuilds) and a [`RecordSink`](exitscope_model::RecordSink) (timestamped event records become
//! instant events), added to the same `Analysis` that produces the report: nothing is parsed
//! twice and nothing is held in memory beyond one root call.
//!
//! **Synthetic time.** Traces without timestamps (function_graph without `funcgraph-abstime`,
//! like the seed files) still have durations. Their calls are laid out one after another: each
//! root starts [`PerfettoOptions::synthetic_gap_ns`] after the previous root ended, and each
//! child starts after its preceding siblings, with the parent's self time spread evenly in
//! the gaps, so slices nest exactly as the calls did and keep their true durations. Such a
//! file says so: `"synthetic_time": true` in `otherData` and in every track's metadata.
//! Events in such traces are placed at the start of the call they occurred in.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{self, Write};

use serde_json::{Value, json};

use exitscope_analyze::calls::{NO_PARENT, RootCall};
use exitscope_analyze::funcs::FuncTable;
use exitscope_model::{Nanos, Record, RecordKind};

use crate::timeline::{CallHalf, RecordHalf, Timeline};

/// Settings of a timeline.
#[non_exhaustive]
pub struct PerfettoOptions {
    /// Input names, by input index (process names of the CPU tracks).
    pub input_names: Vec<String>,
    /// Gap between consecutive roots when the trace has no timestamps.
    pub synthetic_gap_ns: Nanos,
}

impl Default for PerfettoOptions {
    fn default() -> Self {
        PerfettoOptions { input_names: Vec::new(), synthetic_gap_ns: 1000 }
    }
}

impl PerfettoOptions {
    /// Options naming the inputs.
    pub fn with_inputs(input_names: Vec<String>) -> Self {
        PerfettoOptions { input_names, ..Default::default() }
    }
}

/// Process id of the CPU tracks of input `input`.
pub fn cpu_process(input: usize) -> u64 {
    input as u64 + 1
}

/// Process (and thread) id of task `pid` of input `input`: pids are below 2^22 on Linux, so
/// inputs get disjoint ranges above the CPU processes.
pub fn task_process(input: usize, pid: u32) -> u64 {
    (input as u64 + 1) * (1 << 24) + u64::from(pid)
}

/// `tid` of the track of events whose CPU is unknown.
pub const UNKNOWN_CPU: u64 = u32::MAX as u64;

struct State<W: Write> {
    w: W,
    error: Option<io::Error>,
    events: u64,
    tracks: BTreeSet<(u64, u64)>,
    processes: BTreeSet<u64>,
    cursor: Nanos,
    synthetic: Option<bool>,
    slices: u64,
    instants: u64,
    skipped_events: u64,
    input: usize,
}

/// Streaming writer of the timeline. Add [`PerfettoTimeline::call_sink`] and
/// [`PerfettoTimeline::record_sink`] to an `Analysis`, run it, then call
/// [`PerfettoTimeline::finish`].
///
/// ```
/// use exitscope_analyze::{Analysis, AnalysisOptions};
/// use exitscope_model::InputSink;
/// use exitscope_render::perfetto::{PerfettoOptions, PerfettoTimeline};
/// let text = " 98)               |  vcpu_enter_guest [kvm]() {\n 98)   0.080 us    |    kvm_vcpu_exit_request [kvm]();\n 98)   4.278 us    |  }\n";
/// let timeline = PerfettoTimeline::new(Vec::new(), PerfettoOptions::default()).unwrap();
/// let (mut calls, mut records) = (timeline.call_sink(), timeline.record_sink());
/// let mut a = Analysis::new(AnalysisOptions::default());
/// a.add_call_sink(&mut calls);
/// a.add_record_sink(&mut records);
/// a.begin_input("seed", exitscope_model::InputFormat::FtraceText);
/// exitscope_ftrace::parse_reader("seed", text.as_bytes(), &mut a).unwrap();
/// let _report = a.finish();
/// let json: serde_json::Value = serde_json::from_slice(&timeline.finish().unwrap()).unwrap();
/// // Two calls on the CPU track (this trace names no task), laid out in synthetic time.
/// assert_eq!(json["otherData"]["slices"], 2);
/// assert_eq!(json["otherData"]["synthetic_time"], true);
/// ```
pub struct PerfettoTimeline<W: Write> {
    state: RefCell<State<W>>,
    opts: PerfettoOptions,
}

impl<W: Write> PerfettoTimeline<W> {
    /// Start a timeline on `w` (writes the opening of the document).
    ///
    /// # Errors
    /// I/O errors from `w`.
    pub fn new(mut w: W, opts: PerfettoOptions) -> io::Result<Self> {
        w.write_all(b"{\"traceEvents\":[\n")?;
        Ok(PerfettoTimeline {
            state: RefCell::new(State {
                w,
                error: None,
                events: 0,
                tracks: BTreeSet::new(),
                processes: BTreeSet::new(),
                cursor: 0,
                synthetic: None,
                slices: 0,
                instants: 0,
                skipped_events: 0,
                input: 0,
            }),
            opts,
        })
    }

    /// The [`CallSink`](exitscope_analyze::calls::CallSink) half: one slice per call.
    pub fn call_sink(&self) -> CallHalf<'_, Self> {
        CallHalf(self)
    }

    /// The [`RecordSink`](exitscope_model::RecordSink) half: instant events for timestamped event records.
    pub fn record_sink(&self) -> RecordHalf<'_, Self> {
        RecordHalf(self)
    }

    /// Events recorded from now on belong to input `index` (call with the same index as
    /// `Analysis::begin_input`; root calls carry their input themselves).
    pub fn begin_input(&self, index: usize) {
        self.state.borrow_mut().input = index;
    }

    /// Close the document and return the writer.
    ///
    /// # Errors
    /// The first I/O error met while streaming, or one from closing.
    pub fn finish(self) -> io::Result<W> {
        let mut st = self.state.into_inner();
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        let other = json!({
            "generator": "exitscope",
            "synthetic_time": st.synthetic.unwrap_or(false),
            "slices": st.slices,
            "instants": st.instants,
            "events_without_time": st.skipped_events,
        });
        write!(st.w, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{other}}}\n")?;
        st.w.flush()?;
        Ok(st.w)
    }

    fn input_name(&self, input: usize) -> String {
        self.opts.input_names.get(input).cloned().unwrap_or_else(|| format!("input {input}"))
    }

    /// Root slices are named by the exit reasons the analysis found in them (`CPUID`, or
    /// `3 exits: CPUID, IO, HLT` for a `kvm_arch_vcpu_ioctl_run` root); roots without an exit
    /// keep their function's name, which every slice also carries in `args.function`.
    fn root(&self, root: &RootCall, funcs: &FuncTable, exits: &[&str]) {
        let mut st = self.state.borrow_mut();
        if st.error.is_some() || root.nodes.is_empty() {
            return;
        }
        let real = root.nodes[0].start.is_some();
        let synthetic = *st.synthetic.get_or_insert(!real);
        let starts = layout(root, if real { 0 } else { st.cursor });
        let mut tracks = vec![(cpu_process(root.input), root.cpu.map_or(UNKNOWN_CPU, u64::from))];
        if let Some(pid) = root.pid.filter(|&p| p != 0) {
            let p = task_process(root.input, pid);
            tracks.push((p, p));
        }
        let input_name = self.input_name(root.input);
        for &(pid, tid) in &tracks {
            st.track(pid, tid, root, &input_name, synthetic);
        }
        let root_label = match exits {
            [] => None,
            [one] => Some((*one).to_string()),
            many => Some(format!("{} exits: {}", many.len(), many.join(", "))),
        };
        for (i, n) in root.nodes.iter().enumerate() {
            let Some(d) = n.duration else { continue };
            let info = funcs.get(n.func);
            let name = match (&root_label, i) {
                (Some(l), 0) => l.clone(),
                _ => info.display(),
            };
            let mut args = json!({
                "function": info.name,
                "module": info.module,
                "duration_ns": d,
                "self_ns": n.self_ns(),
                "depth": n.depth,
                "line": n.line,
            });
            if n.interrupt {
                args["interrupt"] = Value::Bool(true);
            }
            if i == 0 {
                args["cpu"] = json!(root.cpu);
                args["task"] = json!(root.pid);
                args["input"] = json!(input_name);
            }
            for &(pid, tid) in &tracks {
                st.emit(&json!({
                    "ph": "X", "name": name, "cat": "call", "pid": pid, "tid": tid,
                    "ts": us(starts[i]), "dur": us(d), "args": args,
                }));
                st.slices += 1;
            }
        }
        if synthetic {
            // Without timestamps, the only place an event has is the call it fell in.
            for e in &root.events {
                let ts = starts.get(e.node as usize).copied().unwrap_or(starts[0]);
                for &(pid, tid) in &tracks {
                    st.emit(&json!({
                        "ph": "i", "s": "t", "name": e.name, "cat": "event", "pid": pid,
                        "tid": tid, "ts": us(ts), "args": {"text": e.text, "line": e.line},
                    }));
                    st.instants += 1;
                }
            }
            let end = starts[0] + root.nodes[0].duration.unwrap_or(root.nodes[0].child_ns);
            st.cursor = end + self.opts.synthetic_gap_ns;
        }
    }

    fn record(&self, rec: &Record<'_>) {
        let RecordKind::Event { name, text, .. } = rec.kind else { return };
        let mut st = self.state.borrow_mut();
        let Some(ts) = rec.timestamp else {
            // Placed through its root call (if any) in synthetic time; see the module doc.
            st.skipped_events += 1;
            return;
        };
        let input = st.input;
        let mut tracks = vec![(cpu_process(input), rec.cpu.map_or(UNKNOWN_CPU, u64::from))];
        if let Some(t) = rec.task.filter(|t| t.pid != 0) {
            let p = task_process(input, t.pid);
            tracks.push((p, p));
        }
        let input_name = self.input_name(input);
        for &(pid, tid) in &tracks {
            st.track_named(pid, tid, &input_name, rec.cpu, rec.task.map(|t| t.pid), false);
            st.emit(&json!({
                "ph": "i", "s": "t", "name": if name.is_empty() { "trace_printk" } else { name },
                "cat": "event", "pid": pid, "tid": tid, "ts": us(ts),
                "args": {"text": text, "line": rec.line},
            }));
            st.instants += 1;
        }
    }
}

/// Nanoseconds as trace-event microseconds.
fn us(ns: Nanos) -> f64 {
    ns as f64 / 1000.0
}

/// Start time of every node of `root`: its timestamp when it has one, else the synthetic
/// layout described in the module doc, with the root at `origin`.
pub(crate) fn layout(root: &RootCall, origin: Nanos) -> Vec<Nanos> {
    let n = root.nodes.len();
    let dur = |i: usize| root.nodes[i].duration.unwrap_or(root.nodes[i].child_ns);
    let mut kids = vec![0u64; n];
    for node in &root.nodes {
        if let Some(k) = kids.get_mut(node.parent as usize) {
            *k += 1;
        }
    }
    // Per parent: spread of its self time, and where its next child starts.
    let gap = |i: usize| root.nodes[i].self_ns().unwrap_or(0) / (kids[i] + 1);
    let mut starts = vec![0; n];
    let mut next = vec![0; n];
    for (i, node) in root.nodes.iter().enumerate() {
        let synthetic = if node.parent == NO_PARENT {
            origin
        } else {
            let p = node.parent as usize;
            next[p]
        };
        starts[i] = node.start.unwrap_or(synthetic);
        next[i] = starts[i] + gap(i);
        if node.parent != NO_PARENT {
            let p = node.parent as usize;
            next[p] = starts[i] + dur(i) + gap(p);
        }
    }
    starts
}

impl<W: Write> State<W> {
    fn emit(&mut self, v: &Value) {
        if self.error.is_some() {
            return;
        }
        let sep: &[u8] = if self.events == 0 { b"" } else { b",\n" };
        let r = self
            .w
            .write_all(sep)
            .and_then(|()| serde_json::to_writer(&mut self.w, v).map_err(io::Error::other));
        if let Err(e) = r {
            self.error = Some(e);
        }
        self.events += 1;
    }

    fn track(&mut self, pid: u64, tid: u64, root: &RootCall, input: &str, synthetic: bool) {
        self.track_named(pid, tid, input, root.cpu, root.pid, synthetic);
    }

    /// Metadata naming a track the first time it is used.
    fn track_named(
        &mut self,
        pid: u64,
        tid: u64,
        input: &str,
        cpu: Option<u32>,
        task: Option<u32>,
        synthetic: bool,
    ) {
        if !self.tracks.insert((pid, tid)) {
            return;
        }
        let is_task = pid == tid;
        if self.processes.insert(pid) {
            let pname = if is_task {
                format!("task {}", task.unwrap_or(0))
            } else {
                format!("{input}: CPUs")
            };
            self.emit(&json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                "args": {"name": pname, "synthetic_time": synthetic}}));
            self.emit(&json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                "args": {"sort_index": pid}}));
        }
        let tname = match (is_task, cpu) {
            (true, _) => format!("vCPU thread {} ({input})", task.unwrap_or(0)),
            (false, Some(c)) => format!("CPU {c}"),
            (false, None) => "CPU ?".to_string(),
        };
        self.emit(&json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
            "args": {"name": tname, "synthetic_time": synthetic}}));
        self.emit(&json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
            "args": {"sort_index": tid}}));
    }
}

impl<W: Write> Timeline for PerfettoTimeline<W> {
    fn root(&self, root: &RootCall, funcs: &FuncTable, exit_labels: &[&str]) {
        PerfettoTimeline::root(self, root, funcs, exit_labels);
    }

    fn record(&self, rec: &Record<'_>) {
        PerfettoTimeline::record(self, rec);
    }

    fn failed(&self) -> bool {
        self.state.borrow().error.is_some()
    }
}

#[cfg(test)]
mod tests {
    use exitscope_analyze::calls::CallNode;

    use super::*;

    fn node(parent: u32, depth: u32, duration: Nanos, child_ns: Nanos) -> CallNode {
        CallNode {
            func: 0,
            parent,
            depth,
            start: None,
            duration: Some(duration),
            child_ns,
            interrupt_child_ns: 0,
            interrupt: false,
            line: 0,
            return_lost: false,
        }
    }

    #[test]
    fn synthetic_layout_spreads_self_time_between_children() {
        // a (100, self 40) { b (30) { c (10) }, d (30) }
        let root = RootCall {
            nodes: vec![
                node(NO_PARENT, 0, 100, 60),
                node(0, 1, 30, 10),
                node(1, 2, 10, 0),
                node(0, 1, 30, 0),
            ],
            ..Default::default()
        };
        // a's gap = 40 / 3 = 13; b's gap = 20 / 2 = 10.
        let s = layout(&root, 1000);
        assert_eq!(s, [1000, 1013, 1023, 1056]);
        // Every child ends inside its parent.
        for (i, n) in root.nodes.iter().enumerate().skip(1) {
            let p = n.parent as usize;
            let (end, parent_end) =
                (s[i] + n.duration.unwrap(), s[p] + root.nodes[p].duration.unwrap());
            assert!(end <= parent_end, "{i}: {s:?}");
        }
    }

    #[test]
    fn timestamps_win_over_the_synthetic_layout() {
        let mut root = RootCall {
            nodes: vec![node(NO_PARENT, 0, 100, 30), node(0, 1, 30, 0)],
            ..Default::default()
        };
        root.nodes[0].start = Some(5000);
        root.nodes[1].start = Some(5050);
        assert_eq!(layout(&root, 0), [5000, 5050]);
    }
}
