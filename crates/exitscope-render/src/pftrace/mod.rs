//! The timeline in Perfetto's native format: a `Trace` of `TracePacket`s carrying
//! `TrackDescriptor`s and `TrackEvent`s (protobuf; open in ui.perfetto.dev or load in
//! `trace_processor`). Unlike the JSON timeline ([`crate::perfetto`]), timestamps are integer
//! nanoseconds and slices nest by construction.
//!
//! **Tracks.** Each input is a process (`pid` [`PID_BASE`] + input index, named by the input).
//! Each traced thread is a thread track of it, named `vcpu N (tid)` when the trace names the
//! vCPU index (`kvm_exit`/`kvm_entry`), else `comm (tid)` or `tid T`; a trace that names no
//! task gets one track per CPU (`cpu N`). A track is named when first used, with what is
//! known by then (5.x kernels print the vCPU only in `kvm_entry`: a thread whose first record
//! is a `kvm_exit` keeps its `comm (tid)` name). A thread track holds the calls: one slice
//! per timed call (`SLICE_BEGIN`/`SLICE_END`), the root named by the exits the analysis found
//! in it as in the JSON timeline. Under it, child tracks hold
//!
//! - `exits`: one slice per exit ([`ExitRecord`], exactly the exits the report counts), named
//!   by its reason in the neutral vocabulary ([`exitscope_model::exit`]), with debug
//!   annotations: `reason`, `raw_reason` (the vendor spelling), `code`, `isa`, `source`,
//!   `duration_ns`, `phase_{before,run,after,other,completion}_ns`, `key`, `vcpu`, `task`,
//!   `cpu`, `line`, `rip`/`info1`/`info2`, `userspace`, `lost_before`, `evidence`. An exit
//!   with no duration (a reason-specific tracepoint, an unpaired `kvm_exit`) is an instant;
//! - `events`: one instant per event record (`kvm_exit`, `kvm_pio`, ...) with its text.
//!
//! Per input, a `lost events` track holds one instant per lost-events marker (at the marker's
//! time, or the last time seen before it when the marker has none), and one counter track per
//! reason, `exits/s REASON`: exits starting in each window of [`DEFAULT_RATE_WINDOW_NS`]
//! (1 ms) divided by the window, emitted at the window's start, with a 0 at the start of the
//! next window that has none. The window grows tenfold whenever more than
//! [`MAX_RATE_BUCKETS`] windows would be held (a long busy trace), and is in the summary.
//! Traces without timestamps get no counters (their time is synthetic). A global track
//! `exitscope` holds one `summary` instant at the end: how many calls, exits and events were
//! drawn, how many could not be placed in time, how many slices were clipped, the window.
//!
//! **Nesting is guaranteed.** Each track's events are written in time order by a small stack
//! machine, and the call tree (not the timestamps) decides what nests in what: a call is
//! drawn at its depth in the tree, the open slices at that depth or deeper end first (where
//! they end, or where it begins if they overlap it), and it starts no earlier than the last
//! event of its track and inside its parent, and ends inside its parent. Traces that print
//! µs timestamps next to ns durations (abstime text) contradict themselves by up to a µs, so
//! there a child can look like it starts after its parent ended: it is drawn at its parent's
//! end, still inside it. Exits are siblings on their track, so an exit still open when the
//! next begins (its completion phase lies in the next `KVM_RUN`) ends where the next begins;
//! its `duration_ns` keeps the measured value. Clipped slices are counted in the summary.
//! Calls that never completed are not drawn (the analysis drops them, as for the JSON
//! timeline); a call without a duration (its return was lost, or the trace has no duration
//! column) is not drawn, and its children nest in its caller.
//!
//! **Time.** Timestamps are the trace's, in ns. A trace without timestamps (function_graph
//! without `funcgraph-abstime`, like the seed files) is laid out in synthetic time exactly as
//! the JSON timeline does it ([`crate::perfetto`]), and its exits are placed at the calls they
//! were cut from; the summary says `synthetic_time`.
//!
//! **Encoding.** One packet sequence (`trusted_packet_sequence_id` [`SEQUENCE_ID`]) whose
//! first packet sets `SEQ_INCREMENTAL_STATE_CLEARED`; event names, categories, annotation
//! names and repeated annotation strings (function names, reasons) are interned on it
//! (`interned_data` in the packet that first uses an entry, `SEQ_NEEDS_INCREMENTAL_STATE` on
//! every packet that refers to one). Each track's descriptor is written just before its first
//! event, with that event's timestamp. The protobuf is written by hand (see `proto.rs` for
//! why): packets stream out as they are built, and nothing is held beyond the open slices,
//! the interning tables and the rate windows.

mod proto;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};

use exitscope_analyze::calls::RootCall;
use exitscope_analyze::exits::{ExitRecord, Reasons};
use exitscope_analyze::funcs::FuncTable;
use exitscope_model::{Nanos, Record, RecordKind};

use crate::perfetto::{PerfettoOptions, layout};
use crate::timeline::{CallHalf, ExitHalf, RecordHalf, Timeline};
use proto::fields::{annotation as fa, event as fe, interned as fi, packet as fp, track as ft};

/// `trusted_packet_sequence_id` of every packet.
pub const SEQUENCE_ID: u64 = 1;

/// Process id of input 0 (input `i` is `PID_BASE + i`): above Linux's largest pid (2^22), so
/// it never collides with a thread id of the trace.
pub const PID_BASE: u64 = 1 << 22;

/// The exits/s window a trace starts with.
pub const DEFAULT_RATE_WINDOW_NS: Nanos = 1_000_000;

/// Rate windows (per input and reason) held before the window grows tenfold.
pub const MAX_RATE_BUCKETS: usize = 1 << 20;

/// Uuid of the global track holding the summary.
const SUMMARY_UUID: u64 = 1;

/// A debug annotation value.
#[derive(Clone, Copy)]
enum Val<'a> {
    U(u64),
    B(bool),
    /// A string written inline (unique per event: event texts).
    S(&'a str),
    /// A string interned on the sequence (repeats: functions, reasons).
    Sym(&'a str),
}

type Ann<'a> = (&'static str, Val<'a>);

/// One interning table of the sequence.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u64>,
}

impl Interner {
    /// The iid of `s`, adding it (and recording it in `new` under `field`) the first time.
    fn get(&mut self, field: u32, s: &str, new: &mut Vec<(u32, u64, String)>) -> u64 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.ids.len() as u64 + 1;
        self.ids.insert(s.to_owned(), id);
        new.push((field, id, s.to_owned()));
        id
    }
}

/// The packet writer: framing, the sequence's flags and interning.
struct Packets<W: Write> {
    w: W,
    error: Option<io::Error>,
    first: bool,
    names: Interner,
    cats: Interner,
    ann_names: Interner,
    strings: Interner,
    new: Vec<(u32, u64, String)>,
    body: Vec<u8>,
    pkt: Vec<u8>,
    head: Vec<u8>,
}

impl<W: Write> Packets<W> {
    fn new(w: W) -> Self {
        Packets {
            w,
            error: None,
            first: true,
            names: Interner::default(),
            cats: Interner::default(),
            ann_names: Interner::default(),
            strings: Interner::default(),
            new: Vec::new(),
            body: Vec::new(),
            pkt: Vec::new(),
            head: Vec::new(),
        }
    }

    /// A `TracePacket` with `timestamp`, the sequence id and flags, the interned entries
    /// `self.new` and `self.body` as field `payload`; streamed out as `Trace.packet`.
    fn packet(&mut self, ts: Nanos, payload: u32, interning: bool) {
        let pkt = &mut self.pkt;
        pkt.clear();
        proto::uint(pkt, fp::TIMESTAMP, ts);
        proto::uint(pkt, fp::TRUSTED_PACKET_SEQUENCE_ID, SEQUENCE_ID);
        let mut flags = 0;
        if self.first {
            flags |= fp::SEQ_INCREMENTAL_STATE_CLEARED;
            self.first = false;
        }
        if interning {
            flags |= fp::SEQ_NEEDS_INCREMENTAL_STATE;
        }
        if flags != 0 {
            proto::uint(pkt, fp::SEQUENCE_FLAGS, flags);
        }
        if !self.new.is_empty() {
            proto::message(pkt, fp::INTERNED_DATA, |m| {
                for (field, iid, s) in self.new.drain(..) {
                    proto::message(m, field, |e| {
                        proto::uint(e, fi::IID, iid);
                        proto::bytes(e, fi::NAME, s.as_bytes());
                    });
                }
            });
        }
        proto::bytes(pkt, payload, &self.body);
        if self.error.is_some() {
            return;
        }
        // `Trace.packet`: its key and length, then the packet.
        let head = &mut self.head;
        head.clear();
        proto::varint(head, u64::from(proto::fields::TRACE_PACKET) << 3 | 2);
        proto::varint(head, pkt.len() as u64);
        let r = self.w.write_all(head).and_then(|()| self.w.write_all(pkt));
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// A `TrackDescriptor` packet whose body `desc` writes.
    fn descriptor(&mut self, ts: Nanos, desc: impl FnOnce(&mut Vec<u8>)) {
        self.body.clear();
        desc(&mut self.body);
        self.packet(ts, fp::TRACK_DESCRIPTOR, false);
    }

    /// A `TrackEvent` packet.
    fn event(
        &mut self,
        ts: Nanos,
        track: u64,
        kind: u64,
        name: Option<(&str, &str)>,
        anns: &[Ann<'_>],
        counter: Option<f64>,
    ) {
        let Packets { body, names, cats, ann_names, strings, new, .. } = self;
        body.clear();
        proto::uint(body, fe::TYPE, kind);
        proto::uint(body, fe::TRACK_UUID, track);
        if let Some((name, cat)) = name {
            let c = cats.get(fi::EVENT_CATEGORIES, cat, new);
            proto::uint(body, fe::CATEGORY_IIDS, c);
            let n = names.get(fi::EVENT_NAMES, name, new);
            proto::uint(body, fe::NAME_IID, n);
        }
        for &(key, val) in anns {
            let k = ann_names.get(fi::DEBUG_ANNOTATION_NAMES, key, new);
            proto::message(body, fe::DEBUG_ANNOTATIONS, |a| {
                proto::uint(a, fa::NAME_IID, k);
                match val {
                    Val::U(v) => proto::uint(a, fa::UINT_VALUE, v),
                    Val::B(v) => proto::boolean(a, fa::BOOL_VALUE, v),
                    Val::S(s) => proto::bytes(a, fa::STRING_VALUE, s.as_bytes()),
                    Val::Sym(s) => {
                        let id = strings.get(fi::DEBUG_ANNOTATION_STRING_VALUES, s, new);
                        proto::uint(a, fa::STRING_VALUE_IID, id);
                    }
                }
            });
        }
        if let Some(v) = counter {
            proto::double(body, fe::DOUBLE_COUNTER_VALUE, v);
        }
        let interning = name.is_some() || !anns.is_empty();
        self.packet(ts, fp::TRACK_EVENT, interning);
    }
}

/// One track's writer: its open slices (their end times, innermost last) and the time of the
/// last event written on it.
struct Track {
    uuid: u64,
    open: Vec<Nanos>,
    last: Nanos,
}

impl Track {
    fn new(uuid: u64) -> Self {
        Track { uuid, open: Vec::new(), last: 0 }
    }

    /// End the open slices that end by `ts`.
    fn close_until<W: Write>(&mut self, pk: &mut Packets<W>, ts: Nanos) {
        while let Some(&end) = self.open.last() {
            if end > ts {
                break;
            }
            self.open.pop();
            let at = end.max(self.last);
            pk.event(at, self.uuid, fe::TYPE_SLICE_END, None, &[], None);
            self.last = at;
        }
    }

    /// Begin a slice of `dur` at `start` as the `depth`-th nested slice (0: top level; the
    /// caller's tree says which): the open slices at `depth` or deeper end first, at their
    /// own end or, if that is later, where this one begins. The slice then starts no earlier
    /// than the last event of the track and inside its parent, and ends inside its parent.
    /// Returns whether anything had to be clipped.
    fn slice<W: Write>(
        &mut self,
        pk: &mut Packets<W>,
        depth: usize,
        start: Nanos,
        dur: Nanos,
        name: (&str, &str),
        anns: &[Ann<'_>],
    ) -> bool {
        let mut clipped = false;
        while self.open.len() > depth {
            let end = self.open.pop().unwrap_or(start);
            if end > start {
                clipped = true;
            }
            let at = end.min(start).max(self.last);
            pk.event(at, self.uuid, fe::TYPE_SLICE_END, None, &[], None);
            self.last = at;
        }
        let parent_end = self.open.last().copied();
        let mut s = start.max(self.last);
        if let Some(pe) = parent_end {
            s = s.min(pe);
        }
        clipped |= s != start;
        let mut end = start.saturating_add(dur).max(s);
        if let Some(pe) = parent_end
            && end > pe
        {
            end = pe;
            clipped = true;
        }
        pk.event(s, self.uuid, fe::TYPE_SLICE_BEGIN, Some(name), anns, None);
        self.open.push(end);
        self.last = s;
        clipped
    }

    /// An instant at `ts` (or at the last event written, if that is later).
    fn instant<W: Write>(
        &mut self,
        pk: &mut Packets<W>,
        ts: Nanos,
        name: (&str, &str),
        anns: &[Ann<'_>],
    ) {
        self.close_until(pk, ts);
        let at = ts.max(self.last);
        pk.event(at, self.uuid, fe::TYPE_INSTANT, Some(name), anns, None);
        self.last = at;
    }

    /// End every open slice.
    fn finish<W: Write>(&mut self, pk: &mut Packets<W>) {
        self.close_until(pk, Nanos::MAX);
    }
}

/// Whose track something goes on: the task, else the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Who {
    Task(u32),
    Cpu(u32),
    Unknown,
}

fn who(task: Option<u32>, cpu: Option<u32>) -> Who {
    match (task.filter(|&p| p != 0), cpu) {
        (Some(p), _) => Who::Task(p),
        (None, Some(c)) => Who::Cpu(c),
        (None, None) => Who::Unknown,
    }
}

/// The tracks of one thread (or CPU): indexes into `State::tracks`.
#[derive(Clone, Copy, Default)]
struct ThreadTracks {
    calls: usize,
    exits: Option<usize>,
    events: Option<usize>,
}

/// Exits per window, per input and reason.
struct Rates {
    window: Nanos,
    series: Vec<(usize, String)>,
    by_name: Vec<HashMap<String, usize>>,
    buckets: HashMap<(usize, u64), u64>,
}

impl Rates {
    fn new() -> Self {
        Rates {
            window: DEFAULT_RATE_WINDOW_NS,
            series: Vec::new(),
            by_name: Vec::new(),
            buckets: HashMap::new(),
        }
    }

    fn add(&mut self, input: usize, label: &str, ts: Nanos) {
        if self.by_name.len() <= input {
            self.by_name.resize_with(input + 1, HashMap::new);
        }
        let s = match self.by_name[input].get(label) {
            Some(&s) => s,
            None => {
                let s = self.series.len();
                self.series.push((input, label.to_owned()));
                self.by_name[input].insert(label.to_owned(), s);
                s
            }
        };
        *self.buckets.entry((s, ts / self.window)).or_insert(0) += 1;
        if self.buckets.len() > MAX_RATE_BUCKETS {
            self.window *= 10;
            let old = std::mem::take(&mut self.buckets);
            for ((s, w), n) in old {
                *self.buckets.entry((s, w / 10)).or_insert(0) += n;
            }
        }
    }
}

/// Where a root was drawn: its start and duration, and each call's start by input line.
struct Placed {
    start: Nanos,
    duration: Option<Nanos>,
    calls: Vec<(u64, Nanos)>,
}

/// Counts for the summary.
#[derive(Default)]
struct Summary {
    roots: u64,
    call_slices: u64,
    exits: u64,
    exit_slices: u64,
    exit_instants: u64,
    exits_without_time: u64,
    events: u64,
    /// Event records without a timestamp, and how many of them were placed through the
    /// root call they fell in (synthetic time).
    untimed_events: u64,
    placed_untimed: u64,
    lost_markers: u64,
    clipped: u64,
    counter_values: u64,
}

struct State<W: Write> {
    pk: Packets<W>,
    tracks: Vec<Track>,
    processes: Vec<Option<usize>>,
    lost: Vec<Option<usize>>,
    threads: HashMap<(usize, Who), ThreadTracks>,
    comms: HashMap<(usize, u32), String>,
    vcpus: HashMap<(usize, u32), u32>,
    /// Where each thread's last two roots were placed, for the exits cut from them (the last
    /// exit of a root comes with the next root).
    placed: HashMap<(usize, Who), VecDeque<Placed>>,
    synthetic: Option<bool>,
    cursor: Nanos,
    /// Latest timestamp seen, per input (for markers without one).
    last_ts: Vec<Nanos>,
    max_ts: Nanos,
    rates: Rates,
    sum: Summary,
    input: usize,
}

/// Streaming writer of the native timeline. Add [`PftraceTimeline::call_sink`],
/// [`PftraceTimeline::record_sink`] and [`PftraceTimeline::exit_sink`] to an `Analysis`, run
/// it (calling [`PftraceTimeline::begin_input`] before each input), then call
/// [`PftraceTimeline::finish`].
///
/// ```
/// use exitscope_analyze::{Analysis, AnalysisOptions};
/// use exitscope_model::{InputSink, InputSummary};
/// use exitscope_render::perfetto::PerfettoOptions;
/// use exitscope_render::pftrace::PftraceTimeline;
/// let text = " 98)               |  vcpu_enter_guest [kvm]() {\n 98)   0.080 us    |    kvm_vcpu_exit_request [kvm]();\n 98)   4.278 us    |  }\n";
/// let timeline = PftraceTimeline::new(Vec::new(), PerfettoOptions::default());
/// let (mut calls, mut records, mut exits) =
///     (timeline.call_sink(), timeline.record_sink(), timeline.exit_sink());
/// let mut a = Analysis::new(AnalysisOptions::default());
/// a.add_call_sink(&mut calls);
/// a.add_record_sink(&mut records);
/// a.add_exit_sink(&mut exits);
/// a.begin_input("seed", exitscope_model::InputFormat::FtraceText);
/// exitscope_ftrace::parse_reader("seed", text.as_bytes(), &mut a).unwrap();
/// a.end_input(&InputSummary::default());
/// let _report = a.finish();
/// let bytes = timeline.finish().unwrap();
/// // A `Trace` is a run of `packet` fields (field 1, length-delimited: key 0x0a).
/// assert_eq!(bytes[0], 0x0a);
/// ```
pub struct PftraceTimeline<W: Write> {
    state: RefCell<State<W>>,
    opts: PerfettoOptions,
}

impl<W: Write> PftraceTimeline<W> {
    /// Start a timeline on `w` (nothing is written until the first track).
    pub fn new(w: W, opts: PerfettoOptions) -> Self {
        PftraceTimeline {
            state: RefCell::new(State {
                pk: Packets::new(w),
                tracks: vec![Track::new(SUMMARY_UUID)],
                processes: Vec::new(),
                lost: Vec::new(),
                threads: HashMap::new(),
                comms: HashMap::new(),
                vcpus: HashMap::new(),
                placed: HashMap::new(),
                synthetic: None,
                cursor: 0,
                last_ts: Vec::new(),
                max_ts: 0,
                rates: Rates::new(),
                sum: Summary::default(),
                input: 0,
            }),
            opts,
        }
    }

    /// The [`CallSink`](exitscope_analyze::calls::CallSink) half: the call slices.
    pub fn call_sink(&self) -> CallHalf<'_, Self> {
        CallHalf(self)
    }

    /// The [`RecordSink`](exitscope_model::RecordSink) half: event instants, lost-event markers, track names.
    pub fn record_sink(&self) -> RecordHalf<'_, Self> {
        RecordHalf(self)
    }

    /// The [`ExitSink`](exitscope_analyze::exits::ExitSink) half: the exit slices and the exits/s counters.
    pub fn exit_sink(&self) -> ExitHalf<'_, Self> {
        ExitHalf(self)
    }

    /// Records from now on belong to input `index` (call with the same index as
    /// `Analysis::begin_input`; root calls and exits carry their input themselves).
    pub fn begin_input(&self, index: usize) {
        self.state.borrow_mut().input = index;
    }

    /// End the open slices, write the counters and the summary, and return the writer.
    ///
    /// # Errors
    /// The first I/O error met while streaming, or one from flushing.
    pub fn finish(self) -> io::Result<W> {
        let mut st = self.state.into_inner();
        let State { pk, tracks, .. } = &mut st;
        for t in tracks.iter_mut() {
            t.finish(pk);
        }
        st.write_rates();
        st.write_summary();
        let mut pk = st.pk;
        if let Some(e) = pk.error.take() {
            return Err(e);
        }
        pk.w.flush()?;
        Ok(pk.w)
    }

    fn input_name(&self, input: usize) -> String {
        self.opts.input_names.get(input).cloned().unwrap_or_else(|| format!("input {input}"))
    }

    fn root(&self, root: &RootCall, funcs: &FuncTable, exits: &[&str]) {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        if st.pk.error.is_some() || root.nodes.is_empty() {
            return;
        }
        let real = root.nodes[0].start.is_some();
        let synthetic = *st.synthetic.get_or_insert(!real);
        let starts = layout(root, if real { 0 } else { st.cursor });
        let whom = who(root.pid, root.cpu);
        let name = self.input_name(root.input);
        let tt = st.thread(root.input, whom, starts[0], &name);
        let root_label = match exits {
            [] => None,
            [one] => Some((*one).to_string()),
            many => Some(format!("{} exits: {}", many.len(), many.join(", "))),
        };
        st.sum.roots += 1;
        let mut calls = Vec::with_capacity(root.nodes.len());
        // The depth a child of each node is drawn at: calls without a duration are not
        // drawn, and their children nest in the nearest drawn caller.
        let mut child_depth = vec![0usize; root.nodes.len()];
        for (i, n) in root.nodes.iter().enumerate() {
            calls.push((n.line, starts[i]));
            let depth = child_depth.get(n.parent as usize).copied().unwrap_or(0);
            child_depth[i] = depth;
            let Some(d) = n.duration else { continue };
            child_depth[i] = depth + 1;
            let info = funcs.get(n.func);
            let display = info.display();
            let label = match (&root_label, i) {
                (Some(l), 0) => l.as_str(),
                _ => display.as_str(),
            };
            let mut anns: Vec<Ann<'_>> = Vec::with_capacity(8);
            anns.push(("duration_ns", Val::U(d)));
            if let Some(s) = n.self_ns() {
                anns.push(("self_ns", Val::U(s)));
            }
            if n.line > 0 {
                anns.push(("line", Val::U(n.line)));
            }
            if n.interrupt {
                anns.push(("interrupt", Val::B(true)));
            }
            if i == 0 {
                anns.push(("function", Val::Sym(&display)));
                if let Some(c) = root.cpu {
                    anns.push(("cpu", Val::U(u64::from(c))));
                }
                if let Some(p) = root.pid {
                    anns.push(("task", Val::U(u64::from(p))));
                }
                anns.push(("exits", Val::U(exits.len() as u64)));
            }
            let State { pk, tracks, sum, .. } = &mut *st;
            if tracks[tt.calls].slice(pk, depth, starts[i], d, (label, "call"), &anns) {
                sum.clipped += 1;
            }
            sum.call_slices += 1;
        }
        if synthetic {
            // Without timestamps, the only place an event has is the call it fell in.
            for e in &root.events {
                let ts = starts.get(e.node as usize).copied().unwrap_or(starts[0]);
                st.event_instant(root.input, whom, ts, &e.name, &e.text, e.line, &name);
                st.sum.placed_untimed += 1;
            }
            let end = starts[0] + root.nodes[0].duration.unwrap_or(root.nodes[0].child_ns);
            st.cursor = end + self.opts.synthetic_gap_ns;
        }
        let placed = Placed { start: starts[0], duration: root.nodes[0].duration, calls };
        let q = st.placed.entry((root.input, whom)).or_default();
        q.push_back(placed);
        if q.len() > 2 {
            q.pop_front();
        }
        st.max_ts = st.max_ts.max(starts[0]);
    }

    fn record(&self, rec: &Record<'_>) {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        if st.pk.error.is_some() {
            return;
        }
        let input = st.input;
        if st.last_ts.len() <= input {
            st.last_ts.resize(input + 1, 0);
        }
        if let Some(ts) = rec.timestamp {
            st.last_ts[input] = st.last_ts[input].max(ts);
            st.max_ts = st.max_ts.max(ts);
        }
        let task = rec.task.filter(|t| t.pid != 0);
        if let Some(t) = task
            && !st.comms.contains_key(&(input, t.pid))
        {
            st.comms.insert((input, t.pid), t.comm.to_owned());
        }
        match rec.kind {
            RecordKind::Event { name, text, .. } => {
                if let Some(t) = task
                    && let Some(v) = exitscope_model::exit::event_vcpu(name, text)
                {
                    st.vcpus.entry((input, t.pid)).or_insert(v);
                }
                let Some(ts) = rec.timestamp else {
                    // Placed through its root call in synthetic time (see the module doc).
                    st.sum.untimed_events += 1;
                    return;
                };
                let name = if name.is_empty() { "trace_printk" } else { name };
                let whom = who(task.map(|t| t.pid), rec.cpu);
                let input_name = self.input_name(input);
                st.event_instant(input, whom, ts, name, text, rec.line, &input_name);
            }
            RecordKind::Lost { count } => {
                let ts = rec.timestamp.unwrap_or(if st.synthetic == Some(true) {
                    st.cursor
                } else {
                    st.last_ts[input]
                });
                let input_name = self.input_name(input);
                let t = st.lost_track(input, ts, &input_name);
                let label = match count {
                    Some(n) => format!("LOST {n} events"),
                    None => "LOST events".to_string(),
                };
                let mut anns: Vec<Ann<'_>> = Vec::with_capacity(4);
                if let Some(n) = count {
                    anns.push(("count", Val::U(n)));
                }
                if let Some(c) = rec.cpu {
                    anns.push(("cpu", Val::U(u64::from(c))));
                }
                if rec.line > 0 {
                    anns.push(("line", Val::U(rec.line)));
                }
                anns.push(("timestamped", Val::B(rec.timestamp.is_some())));
                let State { pk, tracks, .. } = &mut *st;
                tracks[t].instant(pk, ts, (&label, "lost"), &anns);
                st.sum.lost_markers += 1;
            }
            _ => {}
        }
    }

    fn exit(&self, e: &ExitRecord, reasons: &Reasons) {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        if st.pk.error.is_some() {
            return;
        }
        st.sum.exits += 1;
        let whom = who(e.task, e.cpu);
        if let (Some(v), Who::Task(t)) = (e.vcpu, whom) {
            st.vcpus.entry((e.input, t)).or_insert(v);
        }
        // A function-graph exit starts at its first call; one that is its whole root (as long
        // as the root) is drawn over the root. In synthetic time the calls give the start.
        let root = (e.line > 0).then(|| st.placed.get(&(e.input, whom))).flatten().and_then(|q| {
            q.iter()
                .rev()
                .find_map(|p| p.calls.iter().find(|(l, _)| *l == e.line).map(|&(_, s)| (p, s)))
        });
        let start = match (root, e.start) {
            (Some((p, _)), _) if e.duration.is_some() && e.duration == p.duration => Some(p.start),
            (_, Some(s)) => Some(s),
            (Some((_, s)), None) if st.synthetic == Some(true) => Some(s),
            _ => None,
        };
        let Some(start) = start else {
            st.sum.exits_without_time += 1;
            return;
        };
        let r = reasons.get(e.reason);
        let label = r.label();
        let key = e.key.map(|k| k.to_string());
        let evidence = e.evidence.join(", ");
        let mut anns: Vec<Ann<'_>> = Vec::with_capacity(20);
        anns.push(("reason", Val::Sym(label)));
        if let Some(v) = &r.vendor {
            anns.push(("raw_reason", Val::Sym(v)));
        }
        if let Some(c) = r.code {
            anns.push(("code", Val::U(u64::from(c))));
        }
        if let Some(i) = r.isa {
            anns.push(("isa", Val::Sym(i.as_str())));
        }
        if let Some(s) = e.source {
            anns.push(("source", Val::Sym(s.as_str())));
        }
        if let Some(d) = e.duration {
            anns.push(("duration_ns", Val::U(d)));
        }
        if let Some(p) = &e.phases {
            for (k, v) in [
                ("phase_before_ns", p.before),
                ("phase_run_ns", p.run),
                ("phase_after_ns", p.after),
                ("phase_other_ns", p.other),
                ("phase_completion_ns", p.completion),
            ] {
                if let Some(v) = v {
                    anns.push((k, Val::U(v)));
                }
            }
        }
        if let Some(k) = &key {
            anns.push(("key", Val::Sym(k)));
        }
        for (k, v) in [("vcpu", e.vcpu), ("task", e.task), ("cpu", e.cpu)] {
            if let Some(v) = v {
                anns.push((k, Val::U(u64::from(v))));
            }
        }
        if e.line > 0 {
            anns.push(("line", Val::U(e.line)));
        }
        if let Some(f) = &e.fields {
            for (k, v) in [("rip", f.rip), ("info1", f.info1), ("info2", f.info2)] {
                if let Some(v) = v {
                    anns.push((k, Val::U(v)));
                }
            }
        }
        if e.userspace {
            anns.push(("userspace", Val::B(true)));
        }
        if e.lost_before {
            anns.push(("lost_before", Val::B(true)));
        }
        if !evidence.is_empty() {
            anns.push(("evidence", Val::Sym(&evidence)));
        }
        let input_name = self.input_name(e.input);
        let tt = st.thread(e.input, whom, start, &input_name);
        let t = match tt.exits {
            Some(t) => t,
            None => {
                let t = st.child_track(tt.calls, "exits", start);
                if let Some(x) = st.threads.get_mut(&(e.input, whom)) {
                    x.exits = Some(t);
                }
                t
            }
        };
        let State { pk, tracks, sum, .. } = &mut *st;
        match e.duration {
            Some(d) => {
                if tracks[t].slice(pk, 0, start, d, (label, "exit"), &anns) {
                    sum.clipped += 1;
                }
                sum.exit_slices += 1;
            }
            None => {
                tracks[t].instant(pk, start, (label, "exit"), &anns);
                sum.exit_instants += 1;
            }
        }
        if e.start.is_some() {
            st.rates.add(e.input, label, start);
        }
        st.max_ts = st.max_ts.max(start);
    }
}

impl<W: Write> State<W> {
    fn new_track(&mut self) -> usize {
        let i = self.tracks.len();
        self.tracks.push(Track::new(i as u64 + 1));
        i
    }

    /// The process track of `input`, described the first time.
    fn process(&mut self, input: usize, ts: Nanos, name: &str) -> usize {
        if self.processes.len() <= input {
            self.processes.resize(input + 1, None);
        }
        if let Some(p) = self.processes[input] {
            return p;
        }
        let p = self.new_track();
        self.processes[input] = Some(p);
        let uuid = self.tracks[p].uuid;
        self.pk.descriptor(ts, |d| {
            proto::uint(d, ft::UUID, uuid);
            proto::message(d, ft::PROCESS, |m| {
                proto::uint(m, ft::PID, PID_BASE + input as u64);
                proto::bytes(m, ft::PROCESS_NAME, name.as_bytes());
            });
        });
        p
    }

    /// The tracks of `whom` in `input`; the thread (or CPU) track is described the first
    /// time, named with what is known of it then.
    fn thread(&mut self, input: usize, whom: Who, ts: Nanos, input_name: &str) -> ThreadTracks {
        if let Some(&t) = self.threads.get(&(input, whom)) {
            return t;
        }
        let p = self.process(input, ts, input_name);
        let parent = self.tracks[p].uuid;
        let calls = self.new_track();
        let uuid = self.tracks[calls].uuid;
        let name = match whom {
            Who::Task(tid) => {
                match (self.vcpus.get(&(input, tid)), self.comms.get(&(input, tid))) {
                    (Some(v), _) => format!("vcpu {v} ({tid})"),
                    (None, Some(c)) => format!("{c} ({tid})"),
                    (None, None) => format!("tid {tid}"),
                }
            }
            Who::Cpu(c) => format!("cpu {c}"),
            Who::Unknown => "cpu ?".to_string(),
        };
        self.pk.descriptor(ts, |d| {
            proto::uint(d, ft::UUID, uuid);
            proto::bytes(d, ft::NAME, name.as_bytes());
            match whom {
                Who::Task(tid) => proto::message(d, ft::THREAD, |m| {
                    proto::uint(m, ft::PID, PID_BASE + input as u64);
                    proto::uint(m, ft::TID, u64::from(tid));
                    proto::bytes(m, ft::THREAD_NAME, name.as_bytes());
                }),
                Who::Cpu(_) | Who::Unknown => proto::uint(d, ft::PARENT_UUID, parent),
            }
        });
        let t = ThreadTracks { calls, exits: None, events: None };
        self.threads.insert((input, whom), t);
        t
    }

    /// A named track under track `parent`.
    fn child_track(&mut self, parent: usize, name: &str, ts: Nanos) -> usize {
        let parent = self.tracks[parent].uuid;
        let t = self.new_track();
        let uuid = self.tracks[t].uuid;
        self.pk.descriptor(ts, |d| {
            proto::uint(d, ft::UUID, uuid);
            proto::uint(d, ft::PARENT_UUID, parent);
            proto::bytes(d, ft::NAME, name.as_bytes());
        });
        t
    }

    fn lost_track(&mut self, input: usize, ts: Nanos, input_name: &str) -> usize {
        if self.lost.len() <= input {
            self.lost.resize(input + 1, None);
        }
        if let Some(t) = self.lost[input] {
            return t;
        }
        let p = self.process(input, ts, input_name);
        let t = self.child_track(p, "lost events", ts);
        self.lost[input] = Some(t);
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn event_instant(
        &mut self,
        input: usize,
        whom: Who,
        ts: Nanos,
        name: &str,
        text: &str,
        line: u64,
        input_name: &str,
    ) {
        let tt = self.thread(input, whom, ts, input_name);
        let t = match tt.events {
            Some(t) => t,
            None => {
                let t = self.child_track(tt.calls, "events", ts);
                if let Some(x) = self.threads.get_mut(&(input, whom)) {
                    x.events = Some(t);
                }
                t
            }
        };
        let mut anns: Vec<Ann<'_>> = vec![("text", Val::S(text))];
        if line > 0 {
            anns.push(("line", Val::U(line)));
        }
        let State { pk, tracks, sum, .. } = self;
        tracks[t].instant(pk, ts, (name, "event"), &anns);
        sum.events += 1;
    }

    /// The exits/s counters (see the module doc).
    fn write_rates(&mut self) {
        let window = self.rates.window;
        let mut by_series: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
        for (&(s, w), &n) in &self.rates.buckets {
            by_series.entry(s).or_default().push((w, n));
        }
        let per_s = 1e9 / window as f64;
        for (s, mut points) in by_series {
            points.sort_unstable();
            let (input, label) = self.rates.series[s].clone();
            let first = points[0].0 * window;
            let p = self.process(input, first, &format!("input {input}"));
            let name = format!("exits/s {label}");
            let parent = self.tracks[p].uuid;
            let t = self.new_track();
            let uuid = self.tracks[t].uuid;
            self.pk.descriptor(first, |d| {
                proto::uint(d, ft::UUID, uuid);
                proto::uint(d, ft::PARENT_UUID, parent);
                proto::bytes(d, ft::NAME, name.as_bytes());
                proto::message(d, ft::COUNTER, |c| {
                    proto::uint(c, ft::COUNTER_UNIT, ft::UNIT_COUNT);
                    proto::bytes(c, ft::COUNTER_UNIT_NAME, b"exits/s");
                });
            });
            for (i, &(w, n)) in points.iter().enumerate() {
                self.pk.event(
                    w * window,
                    uuid,
                    fe::TYPE_COUNTER,
                    None,
                    &[],
                    Some(n as f64 * per_s),
                );
                self.sum.counter_values += 1;
                if points.get(i + 1).is_none_or(|&(next, _)| next > w + 1) {
                    self.pk.event((w + 1) * window, uuid, fe::TYPE_COUNTER, None, &[], Some(0.0));
                    self.sum.counter_values += 1;
                }
            }
        }
    }

    fn write_summary(&mut self) {
        let s = &self.sum;
        let synthetic = self.synthetic == Some(true);
        let anns: Vec<Ann<'_>> = vec![
            ("generator", Val::S("exitscope")),
            ("synthetic_time", Val::B(synthetic)),
            ("roots", Val::U(s.roots)),
            ("call_slices", Val::U(s.call_slices)),
            ("exits", Val::U(s.exits)),
            ("exit_slices", Val::U(s.exit_slices)),
            ("exit_instants", Val::U(s.exit_instants)),
            ("exits_without_time", Val::U(s.exits_without_time)),
            ("events", Val::U(s.events)),
            ("events_without_time", Val::U(s.untimed_events.saturating_sub(s.placed_untimed))),
            ("lost_markers", Val::U(s.lost_markers)),
            ("clipped_slices", Val::U(s.clipped)),
            ("counter_values", Val::U(s.counter_values)),
            ("rate_window_ns", Val::U(self.rates.window)),
        ];
        let ts = self.max_ts;
        self.pk.descriptor(ts, |d| {
            proto::uint(d, ft::UUID, SUMMARY_UUID);
            proto::bytes(d, ft::NAME, b"exitscope");
            proto::bytes(
                d,
                ft::DESCRIPTION,
                b"exitscope export: what was drawn, and what could not be placed in time",
            );
        });
        let State { pk, tracks, .. } = self;
        tracks[0].instant(pk, ts, ("summary", "exitscope"), &anns);
    }
}

impl<W: Write> Timeline for PftraceTimeline<W> {
    fn root(&self, root: &RootCall, funcs: &FuncTable, exit_labels: &[&str]) {
        PftraceTimeline::root(self, root, funcs, exit_labels);
    }

    fn record(&self, rec: &Record<'_>) {
        PftraceTimeline::record(self, rec);
    }

    fn exit(&self, exit: &ExitRecord, reasons: &Reasons) {
        PftraceTimeline::exit(self, exit, reasons);
    }

    fn failed(&self) -> bool {
        self.state.borrow().pk.error.is_some()
    }
}

#[cfg(test)]
mod tests;
