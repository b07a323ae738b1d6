//! [`TraceDat::read_into`]: records of all CPUs, decoded in units of pages on worker threads
//! and merged by timestamp on the calling thread.
//!
//! ```text
//!  cpu0 pages ─▶ units 0 1 2 …─┐  workers: decompress a unit's chunks, walk its pages,
//!  cpu1 pages ─▶ units 0 1 2 …─┤  decode each record (kind, task, function, rendered text)
//!  ...                         │  into a compact batch
//!                              ▼
//!          calling thread: k-way merge of the CPUs' batches by (timestamp, stream) → sink
//! ```
//!
//! A unit is a run of pages of one CPU (for compressed data, the chunks that hold them);
//! pages decode on their own (each starts with its timestamp), so one busy CPU still spreads
//! over every worker. The calling thread asks for units in the order it will need them and
//! keeps a bounded window of them in flight, so memory holds a few units per CPU, never the
//! file. With N jobs there are N - 1 workers: the calling thread is the N-th, and decodes the
//! unit it waits for itself when no worker has taken it yet; with one job it decodes each
//! unit when it needs it. The same code, the same order.
//!
//! The merge is the one [`crate::Merge`] does (smallest raw timestamp first, ties to the lower
//! stream), and errors come where it raises them: a CPU's page error when the record before
//! it is taken, and a decompression error anywhere before everything else (it found those
//! while decompressing whole streams up front; here the first one in stream order is looked
//! up when the merge stops, so the result is the same error).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Condvar, Mutex};

use exitscope_model::{
    Diagnostic, Flow, Func, Record, RecordKind, RecordSink, Severity, Task, TextUse, exit::KvmExit,
};
use rustc_hash::FxHashMap;

use crate::bytes::{Bytes, Endian};
use crate::print::{ExitPlan, ExitValues, ReasonCache};
use crate::ring::{CpuCursor, Fail, Item, Win};
use crate::{Compression, Error, Graph, HEAP_STREAMS, Kind, ReadOptions, Summary, TraceDat, file};

/// One compressed chunk of a lazy stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk {
    /// File offset of the chunk's header (for errors).
    at: u64,
    /// Offset of the compressed bytes in the stream's data.
    src: usize,
    /// Compressed size.
    csize: usize,
    /// Uncompressed size, as stored.
    size: u64,
    /// Offset of its first byte in the decompressed stream.
    out: usize,
}

/// The chunk table of a compressed stream (`data` starts at file offset `offset`).
/// The chunk table of a compressed stream (`data` starts at file offset `offset`): the
/// chunks up to where it breaks, and the error there.
/// `release` is told the file ranges read, a few megabytes at a time.
pub(crate) fn chunk_table(
    data: &[u8],
    offset: u64,
    e: Endian,
    release: Option<&(dyn Fn(usize, usize) + Sync)>,
) -> (Vec<Chunk>, Option<Error>) {
    let mut v = Vec::new();
    let mut c = Bytes::new(data, offset, e);
    let mut out = 0usize;
    let mut released = offset as usize;
    let mut one = |c: &mut Bytes<'_>| -> Result<(), Error> {
        let at = c.offset();
        if let Some(r) = release
            && at as usize >= released + (4 << 20)
        {
            r(released, at as usize);
            released = at as usize;
        }
        let csize = c.u32("chunk compressed size")? as usize;
        let size = c.u32("chunk uncompressed size")?;
        let src = (c.offset() - offset) as usize;
        c.read_bytes(csize, "compressed chunk")?;
        v.push(Chunk { at, src, csize, size: u64::from(size), out });
        out = out.saturating_add(size as usize);
        Ok(())
    };
    let r = c.u32("chunk count").and_then(|n| (0..n).try_for_each(|_| one(&mut c)));
    if let Some(r) = release {
        r(offset as usize, offset as usize + data.len());
    }
    (v, r.err())
}

/// Pages per unit for uncompressed data, and chunks per unit for compressed data (a chunk
/// is 10 pages as trace-cmd writes them).
const UNIT_PAGES: usize = 96;
const UNIT_CHUNKS: usize = 8;

/// A run of pages of one stream, decoded on its own.
#[derive(Clone, Copy, Debug)]
struct Unit {
    first_page: usize,
    last_page: usize,
    /// Lazy streams: the chunk holding the first page's first byte.
    chunk: usize,
    /// Whether the stream ends with this unit.
    last: bool,
}

/// How a batch ends.
#[derive(Debug)]
enum End {
    /// The stream's next unit follows.
    More,
    /// The stream ends.
    Eos,
    /// The stream is broken here (the records before it are in the batch).
    Err(Error),
}

/// A function as decoded: its symbol, or an address without one.
#[derive(Clone, Copy, Debug)]
enum FuncRef<'t> {
    Sym(&'t str, Option<&'t str>),
    Addr(u64),
}

#[derive(Clone, Copy, Debug)]
enum What<'t> {
    Lost(Option<u64>),
    Unknown(u16),
    Rec { fmt: u32, pid: u32, comm: &'t str, kind: RecKind<'t> },
}

/// An event whose text is not read.
const NO_TEXT: RecKind<'static> = RecKind::Event { start: 0, len: 0 };

#[derive(Clone, Copy, Debug)]
enum RecKind<'t> {
    /// Rendered text: a range of the batch's text.
    Event {
        start: u32,
        len: u32,
    },
    /// Text the sink may read ([`TextUse::Sometimes`]): the payload, a range of the batch's
    /// raw bytes, rendered by the consumer if the sink asks for it. For a `kvm_exit` decoded
    /// from its fields ([`TextUse::Parsed`]), its values: an index into the batch's exits.
    Deferred {
        start: u32,
        len: u32,
        exit: Option<u32>,
    },
    Entry {
        func: FuncRef<'t>,
        depth: u32,
    },
    Exit {
        func: FuncRef<'t>,
        depth: u32,
        duration: Option<u64>,
    },
}

/// One decoded item.
#[derive(Clone, Copy, Debug)]
struct Ev<'t> {
    /// Raw timestamp (the merge key).
    ts: u64,
    /// Byte offset of the payload for diagnostics.
    offset: u64,
    what: What<'t>,
}

/// A decoded unit.
#[derive(Debug)]
struct Batch<'t> {
    evs: Vec<Ev<'t>>,
    text: String,
    /// Payloads of deferred events.
    raw: Vec<u8>,
    /// Decoded `kvm_exit`s (their reasons are in `text`).
    exits: Vec<ExitValues>,
    /// The reasons in `text`, for the next `kvm_exit`s with the same ones.
    reasons: ReasonCache,
    end: End,
}

impl Batch<'_> {
    fn new() -> Self {
        Batch {
            evs: Vec::new(),
            text: String::new(),
            raw: Vec::new(),
            exits: Vec::new(),
            reasons: ReasonCache::default(),
            end: End::Eos,
        }
    }

    fn clear(&mut self) {
        self.evs.clear();
        self.text.clear();
        self.raw.clear();
        self.exits.clear();
        self.reasons.clear();
    }
}

/// A worker's reusable state.
#[derive(Default)]
struct Scratch {
    buf: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

/// The per-stream plan.
struct Plan {
    units: Vec<Vec<Unit>>,
    /// Per event format: how its records' text is decoded.
    text: Vec<Decode>,
}

/// How the text of one event format's records is decoded, from what the sink reads of it.
#[derive(Clone, Debug)]
enum Decode {
    /// Rendered on the decode threads.
    Render,
    /// Kept raw for the merging thread to render if the sink asks.
    Defer,
    /// Not at all.
    Skip,
    /// A `kvm_exit` decoded from its fields, its text deferred.
    Exit(ExitPlan),
}

impl Decode {
    fn of(f: &crate::EventFormat, text_use: TextUse) -> Decode {
        match text_use {
            TextUse::Always => Decode::Render,
            TextUse::Sometimes => Decode::Defer,
            TextUse::Never => Decode::Skip,
            TextUse::Parsed => match f.print.as_ref().and_then(|p| p.kvm_exit_plan(&f.fields)) {
                Some(plan) => Decode::Exit(plan),
                None => Decode::Render,
            },
        }
    }
}

impl<'a> TraceDat<'a> {
    fn total_len(&self, si: usize) -> usize {
        let Some(s) = self.streams.get(si) else { return 0 };
        if s.lazy {
            s.chunks.last().map_or(0, |c| c.out.saturating_add(c.size as usize))
        } else {
            s.data.len()
        }
    }

    fn plan(&self, unit_scale: usize, unit_bytes: Option<usize>, text: Vec<Decode>) -> Plan {
        let mut units = Vec::with_capacity(self.streams.len());
        for (si, s) in self.streams.iter().enumerate() {
            let total = self.total_len(si);
            let ps = s.page_size.max(1);
            let npages = total.div_ceil(ps);
            let per = if let Some(b) = unit_bytes {
                (b / ps).max(1)
            } else if s.lazy {
                // Chunks are normally whole numbers of pages.
                let chunk_pages = s.chunks.first().map_or(1, |c| (c.size as usize / ps).max(1));
                (chunk_pages * UNIT_CHUNKS / unit_scale).max(1)
            } else {
                (UNIT_PAGES / unit_scale).max(1)
            };
            let chunks: &[Chunk] = &s.chunks;
            let mut v = Vec::with_capacity(npages.div_ceil(per));
            let mut p = 0;
            while p < npages {
                let q = (p + per).min(npages);
                let off = p * ps;
                let chunk =
                    chunks.partition_point(|c| c.out.saturating_add(c.size as usize) <= off);
                v.push(Unit { first_page: p, last_page: q, chunk, last: q == npages });
                p = q;
            }
            units.push(v);
        }
        Plan { units, text }
    }

    /// Decodes unit `u` of stream `si` into `b` (cleared first); `text` says, per format,
    /// how much of its records' text the sink reads.
    fn decode_unit<'t>(
        &'t self,
        si: usize,
        u: Unit,
        text: &[Decode],
        sc: &mut Scratch,
        b: &mut Batch<'t>,
    ) {
        b.clear();
        let Some(s) = self.streams.get(si) else {
            b.end = End::Eos;
            return;
        };
        let total = self.total_len(si);
        if !s.lazy {
            let w = Win { bytes: &s.data, base: 0, total };
            // A whole stream in memory never asks for more.
            let _ = self.walk(si, u, &w, text, b);
            return;
        }
        let chunks: &[Chunk] = &s.chunks;
        let want = (u.last_page.saturating_mul(s.page_size)).min(total);
        sc.buf.clear();
        let base = chunks.get(u.chunk).map_or(total, |c| c.out);
        let mut next = u.chunk;
        let decomp = |sc: &mut Scratch, next: &mut usize| -> Result<bool, Error> {
            let Some(c) = chunks.get(*next) else { return Ok(false) };
            let src = s.data.get(c.src..c.src + c.csize).unwrap_or_default();
            file::decompress(
                self.header.compression,
                src,
                c.size,
                c.at,
                &mut sc.buf,
                &mut sc.zstd,
            )?;
            *next += 1;
            Ok(true)
        };
        loop {
            while base + sc.buf.len() < want {
                match decomp(sc, &mut next) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        b.clear();
                        b.end = End::Err(e);
                        return;
                    }
                }
            }
            let w = Win { bytes: &sc.buf, base, total };
            if self.walk(si, u, &w, text, b) {
                return;
            }
            // The last page reads past the chunks decoded: one more, then again.
            match decomp(sc, &mut next) {
                Ok(true) => {}
                Ok(false) => {
                    b.end = End::Err(Error::Malformed {
                        offset: s.file_offset,
                        what: "internal: compressed stream shorter than its chunk table".into(),
                    });
                    return;
                }
                Err(e) => {
                    b.clear();
                    b.end = End::Err(e);
                    return;
                }
            }
        }
    }

    /// Walks the pages of unit `u` in window `w` into `b`; false when the window is too
    /// short (`b` is then cleared).
    fn walk<'t>(
        &'t self,
        si: usize,
        u: Unit,
        w: &Win<'_>,
        text: &[Decode],
        b: &mut Batch<'t>,
    ) -> bool {
        b.clear();
        let Some(s) = self.streams.get(si) else { return true };
        let mut c = CpuCursor::new(
            s.cpu,
            s.file_offset,
            s.page_size,
            self.header.long_size,
            self.header.endian,
        )
        .pages(u.first_page, u.last_page);
        let payload_off =
            |start: usize| s.file_offset + if s.compressed { 0 } else { start as u64 };
        loop {
            match c.next_in(w) {
                Ok(None) => {
                    b.end = if u.last { End::Eos } else { End::More };
                    return true;
                }
                Ok(Some(Item::Lost { ts, count })) => {
                    b.evs.push(Ev { ts, offset: 0, what: What::Lost(count) });
                }
                Ok(Some(Item::Record { ts, start, len })) => {
                    let payload = start
                        .checked_sub(w.base)
                        .and_then(|o| w.bytes.get(o..o + len))
                        .unwrap_or_default();
                    let what = self.decode_record(payload, text, b);
                    b.evs.push(Ev { ts, offset: payload_off(start), what });
                }
                Err(Fail::Err(e)) => {
                    b.end = End::Err(e);
                    return true;
                }
                Err(Fail::More) => {
                    b.clear();
                    return false;
                }
            }
        }
    }

    /// Everything the sink will need of one record, decoded now (event text as `text` says:
    /// rendered into `b.text`, deferred with its payload in `b.raw`, or not at all).
    #[inline]
    fn decode_record<'t>(&'t self, payload: &[u8], text: &[Decode], b: &mut Batch<'t>) -> What<'t> {
        let (id, kind) = self.kind(payload);
        let fmt = match kind {
            Kind::Unknown => return What::Unknown(id),
            Kind::Event(i) | Kind::Entry(i, _) | Kind::Exit(i, _) => i,
        };
        let pid = self.pid(payload) as u32;
        let comm = self.header.cmdlines.comm(pid).unwrap_or("<...>");
        let func = |addr: u64| match self.header.symbols.lookup(addr) {
            Some((n, m, _)) => FuncRef::Sym(n, m),
            None => FuncRef::Addr(addr),
        };
        let kind = match self.graph(payload) {
            Some(Graph::Entry { func: f, depth }) => RecKind::Entry { func: func(f), depth },
            Some(Graph::Exit { func: f, depth, duration }) => {
                RecKind::Exit { func: func(f), depth, duration }
            }
            None => {
                let f = self.header.formats.get(fmt as usize);
                let exit = match (text.get(fmt as usize), f) {
                    (Some(Decode::Skip), _) => return What::Rec { fmt, pid, comm, kind: NO_TEXT },
                    (Some(Decode::Defer), _) => Some(None),
                    (Some(Decode::Exit(plan)), Some(f)) => {
                        let h = &self.header;
                        h.decode_kvm_exit(f, plan, payload, &mut b.text, &mut b.reasons).map(|v| {
                            b.exits.push(v);
                            Some(b.exits.len() as u32 - 1)
                        })
                    }
                    _ => None,
                };
                match exit {
                    Some(exit) => {
                        let start = b.raw.len();
                        b.raw.extend_from_slice(payload);
                        RecKind::Deferred { start: start as u32, len: payload.len() as u32, exit }
                    }
                    None => {
                        let start = b.text.len();
                        if let Some(f) = f {
                            self.header.render_event(f, payload, &mut b.text);
                        }
                        RecKind::Event { start: start as u32, len: (b.text.len() - start) as u32 }
                    }
                }
            }
        };
        What::Rec { fmt, pid, comm, kind }
    }

    /// The first decompression error of the trace, in stream order (what decompressing every
    /// stream before reading any record finds).
    fn decompression_error(&self) -> Option<Error> {
        let mut buf = Vec::new();
        let mut zstd = None;
        for s in self.streams.iter().filter(|s| s.lazy) {
            for c in &s.chunks {
                buf.clear();
                let src = s.data.get(c.src..c.src + c.csize).unwrap_or_default();
                if let Err(e) = file::decompress(
                    self.header.compression,
                    src,
                    c.size,
                    c.at,
                    &mut buf,
                    &mut zstd,
                ) {
                    return Some(e);
                }
            }
            if let Some(e) = &s.chunk_error {
                return Some(e.clone());
            }
        }
        None
    }

    /// Converts a raw ring-buffer timestamp of stream `si` to nanoseconds.
    fn ns_fn(&self, si: usize) -> impl Fn(u64) -> u64 + use<> {
        let tsc = match (self.header.tsc2nsec, self.streams.get(si)) {
            (Some(t), Some(s))
                if self.header.buffers.get(s.buffer).is_some_and(|b| b.clock == "x86-tsc") =>
            {
                Some(t)
            }
            _ => None,
        };
        let off = self.header.ts_offset;
        move |ts| {
            let t = match tsc {
                Some((mult, shift)) => ((u128::from(ts) * u128::from(mult)) >> shift) as u64,
                None => ts,
            };
            t.wrapping_add_signed(off)
        }
    }

    /// Streams this trace into `sink`, decoding on `jobs` threads; see [`crate::read`].
    pub(crate) fn read_jobs(
        &self,
        input_name: &str,
        sink: &mut impl RecordSink,
        opts: &ReadOptions<'_>,
    ) -> Result<Summary, Error> {
        let jobs = opts.jobs;
        if let Some(e) = self.streams.iter().find_map(|s| s.chunk_error.as_ref()) {
            // A broken chunk table: the error decompressing every stream first would give.
            return Err(self.decompression_error().unwrap_or_else(|| e.clone()));
        }
        let nstreams = self.streams.len().max(1);
        // Smaller units when there are many CPUs: memory stays a few MB per job.
        let scale = (nstreams / 16).clamp(1, 8);
        let text =
            self.header.formats.iter().map(|f| Decode::of(f, sink.text_use(&f.name))).collect();
        let plan = self.plan(scale, opts.unit_bytes, text);
        let total_units: usize = plan.units.iter().map(Vec::len).sum();
        let jobs = jobs.clamp(1, total_units.max(1));
        let mut out = Consumer::new(self, input_name);
        out.release = opts.release;
        let result = if jobs == 1 {
            let mut src =
                Inline { trace: self, plan: &plan, scratch: Scratch::default(), free: Vec::new() };
            out.run(sink, &plan, &mut src)
        } else {
            // Units in flight per stream.
            let window = (4 * jobs + 4).div_ceil(nstreams).max(2);
            let shared = Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    done: FxHashMap::default(),
                    free: Vec::new(),
                    closed: false,
                }),
                work: Condvar::new(),
                ready: Condvar::new(),
            };
            std::thread::scope(|scope| {
                // The calling thread is one of the jobs: it merges, and decodes the unit it
                // waits for when no worker has taken it yet. (With a worker per job besides
                // it, N + 1 busy threads share N CPUs and the merge, the one serial part,
                // gets only N / (N + 1) of a CPU.)
                for _ in 0..jobs - 1 {
                    scope.spawn(|| worker(self, &plan, &shared));
                }
                let mut src = Pool {
                    trace: self,
                    shared: &shared,
                    plan: &plan,
                    window,
                    submitted: Vec::new(),
                    scratch: Scratch::default(),
                };
                src.start();
                let r = out.run(sink, &plan, &mut src);
                if let Ok(mut st) = shared.state.lock() {
                    st.closed = true;
                    st.queue.clear();
                }
                shared.work.notify_all();
                r
            })
        };
        match result {
            Ok(()) => {}
            Err(e) => return Err(self.decompression_error().unwrap_or(e)),
        }
        if out.sum.stopped
            && let Some(e) = self.decompression_error()
        {
            return Err(e);
        }
        Ok(out.finish())
    }
}

/// Where the consumer gets unit `k` of stream `s` from.
trait Source<'t> {
    fn get(&mut self, s: usize, k: usize) -> Batch<'t>;
    fn recycle(&mut self, b: Batch<'t>);
}

/// One job: the calling thread decodes a unit when it needs it.
struct Inline<'t, 'p, 'a> {
    trace: &'t TraceDat<'a>,
    plan: &'p Plan,
    scratch: Scratch,
    free: Vec<Batch<'t>>,
}

impl<'t> Source<'t> for Inline<'t, '_, '_> {
    fn get(&mut self, s: usize, k: usize) -> Batch<'t> {
        let mut b = self.free.pop().unwrap_or_else(Batch::new);
        match self.plan.units.get(s).and_then(|u| u.get(k)) {
            Some(&u) => self.trace.decode_unit(s, u, &self.plan.text, &mut self.scratch, &mut b),
            None => {
                b.clear();
                b.end = End::Eos;
            }
        }
        b
    }
    fn recycle(&mut self, b: Batch<'t>) {
        self.free.push(b);
    }
}

struct State<'t> {
    queue: VecDeque<(usize, usize)>,
    done: FxHashMap<(usize, usize), Batch<'t>>,
    free: Vec<Batch<'t>>,
    closed: bool,
}

struct Shared<'t> {
    state: Mutex<State<'t>>,
    /// A job was queued (or the pool closed).
    work: Condvar,
    /// A unit was decoded.
    ready: Condvar,
}

fn worker<'t>(trace: &'t TraceDat<'_>, plan: &Plan, shared: &Shared<'t>) {
    let mut scratch = Scratch::default();
    loop {
        let (job, mut b) = {
            let Ok(mut st) = shared.state.lock() else { return };
            loop {
                if st.closed {
                    return;
                }
                if let Some(j) = st.queue.pop_front() {
                    let b = st.free.pop().unwrap_or_else(Batch::new);
                    break (j, b);
                }
                st = match shared.work.wait(st) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        };
        let (s, k) = job;
        let guard = PanicGuard { shared, job };
        match plan.units.get(s).and_then(|u| u.get(k)) {
            Some(&u) => trace.decode_unit(s, u, &plan.text, &mut scratch, &mut b),
            None => {
                b.clear();
                b.end = End::Eos;
            }
        }
        std::mem::forget(guard);
        let Ok(mut st) = shared.state.lock() else { return };
        st.done.insert(job, b);
        drop(st);
        shared.ready.notify_all();
    }
}

/// Armed while a worker decodes a unit: if decoding panics (a bug), the unit is handed to the
/// waiting caller as an error instead of never arriving, so the reader fails rather than hangs
/// (the scope then re-raises the panic).
struct PanicGuard<'s, 't> {
    shared: &'s Shared<'t>,
    job: (usize, usize),
}

impl Drop for PanicGuard<'_, '_> {
    fn drop(&mut self) {
        let mut b = Batch::new();
        b.end = End::Err(Error::Unsupported(
            "a decoding thread failed (an exitscope bug; -j 1 avoids threads)",
        ));
        if let Ok(mut st) = self.shared.state.lock() {
            st.done.insert(self.job, b);
        }
        self.shared.ready.notify_all();
    }
}

/// Several jobs: workers decode units the calling thread queued ahead.
struct Pool<'s, 't, 'p> {
    trace: &'t TraceDat<'t>,
    shared: &'s Shared<'t>,
    plan: &'p Plan,
    window: usize,
    /// Per stream: units queued so far.
    submitted: Vec<usize>,
    /// For the units the calling thread decodes itself.
    scratch: Scratch,
}

impl Pool<'_, '_, '_> {
    /// Queues the first units of every stream, round robin.
    fn start(&mut self) {
        self.submitted = vec![0; self.plan.units.len()];
        if let Ok(mut st) = self.shared.state.lock() {
            for k in 0..self.window {
                for (s, units) in self.plan.units.iter().enumerate() {
                    if k < units.len() {
                        st.queue.push_back((s, k));
                        if let Some(n) = self.submitted.get_mut(s) {
                            *n = k + 1;
                        }
                    }
                }
            }
        }
        self.shared.work.notify_all();
    }
}

impl<'t> Pool<'_, 't, '_> {
    /// Decodes unit `k` of stream `s` on the calling thread.
    fn decode(&mut self, s: usize, k: usize, b: &mut Batch<'t>) {
        match self.plan.units.get(s).and_then(|u| u.get(k)) {
            Some(&u) => self.trace.decode_unit(s, u, &self.plan.text, &mut self.scratch, b),
            None => {
                b.clear();
                b.end = End::Eos;
            }
        }
    }
}

impl<'t> Source<'t> for Pool<'_, 't, '_> {
    fn get(&mut self, s: usize, k: usize) -> Batch<'t> {
        let Ok(mut st) = self.shared.state.lock() else { return Batch::new() };
        // Keep the window full: the unit `window` ahead of this one.
        let n = self.plan.units.get(s).map_or(0, Vec::len);
        if let Some(sub) = self.submitted.get_mut(s)
            && *sub < n
            && *sub <= k + self.window
        {
            st.queue.push_back((s, *sub));
            *sub += 1;
            self.shared.work.notify_one();
        }
        if k >= n {
            return Batch::new();
        }
        loop {
            if let Some(b) = st.done.remove(&(s, k)) {
                return b;
            }
            if let Some(at) = st.queue.iter().position(|&j| j == (s, k)) {
                // No worker has started it: decode it here rather than wait.
                st.queue.remove(at);
                let mut b = st.free.pop().unwrap_or_else(Batch::new);
                drop(st);
                self.decode(s, k, &mut b);
                return b;
            }
            if let Some(job) = st.queue.pop_back() {
                // A worker is on it: rather than wait, decode the unit queued furthest ahead
                // (the one needed last), so that this thread's idle time decodes too.
                let mut b = st.free.pop().unwrap_or_else(Batch::new);
                drop(st);
                self.decode(job.0, job.1, &mut b);
                st = match self.shared.state.lock() {
                    Ok(g) => g,
                    Err(_) => return Batch::new(),
                };
                st.done.insert(job, b);
                continue;
            }
            st = match self.shared.ready.wait(st) {
                Ok(g) => g,
                Err(_) => return Batch::new(),
            };
        }
    }
    fn recycle(&mut self, b: Batch<'t>) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.free.push(b);
        }
    }
}

/// One stream's place in the merge.
struct Lane<'t> {
    cur: Batch<'t>,
    pos: usize,
    /// The batch after `cur`, fetched to look ahead past `cur`'s last item.
    next: Option<Batch<'t>>,
    /// Index of the next unit to fetch.
    unit: usize,
}

/// The calling thread: merge, then everything the old single-threaded loop did per item.
struct Consumer<'t, 'a, 'n> {
    trace: &'t TraceDat<'a>,
    input_name: &'n str,
    sum: Summary,
    counts: Vec<u64>,
    fname: String,
    /// The text of a deferred event, rendered when the sink asks for it.
    deferred: String,
    release: Option<&'n (dyn Fn(usize, usize) + Sync)>,
    /// Per stream: file offset up to which its data was released.
    released: Vec<usize>,
}

impl<'t, 'a, 'n> Consumer<'t, 'a, 'n> {
    fn new(trace: &'t TraceDat<'a>, input_name: &'n str) -> Self {
        let h = &trace.header;
        let sum = Summary {
            version: h.version,
            compression: match h.compression {
                Compression::None => "none",
                Compression::Zlib => "zlib",
                Compression::Zstd => "zstd",
            },
            cpus: h.cpu_count,
            buffers: h.buffers.iter().map(|b| b.name.clone()).collect(),
            host_tag: h.host_tag.clone(),
            ..Summary::default()
        };
        Consumer {
            trace,
            input_name,
            sum,
            counts: vec![0u64; h.formats.len()],
            fname: String::with_capacity(64),
            deferred: String::new(),
            release: None,
            released: trace.streams.iter().map(|s| s.file_offset as usize).collect(),
        }
    }

    fn finish(mut self) -> Summary {
        let mut ec: Vec<(String, u64)> = self
            .trace
            .header
            .formats
            .iter()
            .zip(&self.counts)
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| (f.name.clone(), *n))
            .collect();
        ec.sort();
        self.sum.event_counts = ec;
        self.sum
    }

    /// The timestamp of the lane's next item, fetching batches as needed; `None` at the
    /// stream's end, the error where the stream breaks.
    #[inline]
    fn peek(
        lane: &mut Lane<'t>,
        s: usize,
        src: &mut impl Source<'t>,
    ) -> Result<Option<u64>, Error> {
        match lane.cur.evs.get(lane.pos) {
            Some(e) => Ok(Some(e.ts)),
            None => Self::peek_next(lane, s, src),
        }
    }

    /// [`Consumer::peek`] past the current batch.
    #[cold]
    fn peek_next(
        lane: &mut Lane<'t>,
        s: usize,
        src: &mut impl Source<'t>,
    ) -> Result<Option<u64>, Error> {
        let mut end = std::mem::replace(&mut lane.cur.end, End::Eos);
        loop {
            match end {
                End::Eos => return Ok(None),
                End::Err(e) => return Err(e),
                End::More => {}
            }
            if let Some(e) = lane.next.as_ref().and_then(|n| n.evs.first()) {
                lane.cur.end = End::More;
                return Ok(Some(e.ts));
            }
            // Fetch the next unit (dropping an empty one looked at before).
            if let Some(old) = lane.next.take() {
                src.recycle(old);
            }
            let mut b = src.get(s, lane.unit);
            lane.unit += 1;
            end = std::mem::replace(&mut b.end, End::Eos);
            if let Some(e) = b.evs.first() {
                let ts = e.ts;
                b.end = end;
                lane.next = Some(b);
                lane.cur.end = End::More;
                return Ok(Some(ts));
            }
            src.recycle(b);
        }
    }

    fn run(
        &mut self,
        sink: &mut impl RecordSink,
        plan: &Plan,
        src: &mut impl Source<'t>,
    ) -> Result<(), Error> {
        let n = plan.units.len();
        let mut lanes: Vec<Lane<'t>> = Vec::with_capacity(n);
        let mut heads: Vec<Option<u64>> = Vec::with_capacity(n);
        for s in 0..n {
            let mut lane =
                Lane { cur: Batch { end: End::More, ..Batch::new() }, pos: 0, next: None, unit: 0 };
            heads.push(Self::peek(&mut lane, s, src)?);
            Self::promote(&mut lane, src);
            lanes.push(lane);
        }
        let ns: Vec<_> = (0..n).map(|s| self.trace.ns_fn(s)).collect();
        // Many CPUs: a heap of (timestamp, stream); few: a scan is faster.
        let use_heap = n > HEAP_STREAMS;
        let mut heap = BinaryHeap::new();
        if use_heap {
            for (i, h) in heads.iter().enumerate() {
                if let Some(ts) = *h {
                    heap.push(Reverse((ts, i)));
                }
            }
        }
        loop {
            // The stream with the smallest (timestamp, index), and the best of the others.
            let (i, second) = if use_heap {
                let Some(Reverse((_, i))) = heap.pop() else { return Ok(()) };
                (i, heap.peek().map(|r| r.0))
            } else {
                let mut best: Option<(u64, usize)> = None;
                let mut second: Option<(u64, usize)> = None;
                for (i, h) in heads.iter().enumerate() {
                    if let Some(ts) = *h {
                        if best.is_none_or(|(b, _)| ts < b) {
                            second = best;
                            best = Some((ts, i));
                        } else if second.is_none_or(|(b, _)| ts < b) {
                            second = Some((ts, i));
                        }
                    }
                }
                let Some((_, i)) = best else { return Ok(()) };
                (i, second)
            };
            let (Some(lane), Some(head), Some(ns)) =
                (lanes.get_mut(i), heads.get_mut(i), ns.get(i))
            else {
                return Ok(());
            };
            let cpu = self.trace.streams.get(i).map_or(0, |s| s.cpu);
            // A run of this stream while it stays before every other stream's head.
            while let Some(&ev) = lane.cur.evs.get(lane.pos) {
                lane.pos += 1;
                *head = Self::peek(lane, i, src)?;
                let flow = self.emit(sink, &lane.cur, cpu, ns(ev.ts), ev);
                if Self::promote(lane, src) {
                    self.release_before(plan, i, lane.unit.saturating_sub(1));
                }
                if flow == Flow::Stop {
                    self.sum.stopped = true;
                    return Ok(());
                }
                match (*head, second) {
                    (Some(ts), Some((b, j))) if ts < b || (ts == b && i < j) => {}
                    (Some(_), None) => {}
                    _ => break,
                }
            }
            if use_heap && let Some(ts) = *head {
                heap.push(Reverse((ts, i)));
            }
        }
    }

    /// Moves the looked-ahead batch in once the current one is used up; true when it did.
    fn promote(lane: &mut Lane<'t>, src: &mut impl Source<'t>) -> bool {
        if lane.pos >= lane.cur.evs.len()
            && let Some(n) = lane.next.take()
        {
            let old = std::mem::replace(&mut lane.cur, n);
            lane.pos = 0;
            src.recycle(old);
            return true;
        }
        false
    }

    /// Stream `s` is at unit `k`: the file bytes of its earlier units are not needed again.
    fn release_before(&mut self, plan: &Plan, s: usize, k: usize) {
        let Some(release) = self.release else { return };
        let (Some(st), Some(u), Some(done)) = (
            self.trace.streams.get(s),
            plan.units.get(s).and_then(|u| u.get(k)),
            self.released.get_mut(s),
        ) else {
            return;
        };
        if !matches!(st.data, std::borrow::Cow::Borrowed(_)) {
            return;
        }
        let start = st.file_offset as usize;
        let to = if st.lazy {
            start + st.chunks.get(u.chunk).map_or(0, |c| c.src)
        } else {
            start + u.first_page * st.page_size
        };
        // In steps of a megabyte or more: one system call per step.
        if to >= *done + (1 << 20) {
            release(*done, to);
            *done = to;
        }
    }

    /// One item to the sink, as the single-threaded loop did it.
    #[inline]
    fn emit(
        &mut self,
        sink: &mut impl RecordSink,
        batch: &Batch<'t>,
        cpu: u32,
        ts: u64,
        ev: Ev<'t>,
    ) -> Flow {
        let trace = self.trace;
        let flow = match ev.what {
            What::Lost(count) => {
                self.sum.lost_markers += 1;
                self.sum.lost_events = self.sum.lost_events.saturating_add(count.unwrap_or(0));
                let r = Record {
                    line: 0,
                    cpu: Some(cpu),
                    task: None,
                    timestamp: Some(ts),
                    kind: RecordKind::Lost { count },
                };
                sink.record(&r)
            }
            What::Unknown(id) => {
                self.sum.unknown_events += 1;
                let d = Diagnostic {
                    file: self.input_name.to_string(),
                    line: 0,
                    column: ev.offset,
                    severity: Severity::Warning,
                    message: format!("cpu {cpu}: record with unknown event id {id} skipped"),
                };
                return sink.diagnostic(d);
            }
            What::Rec { fmt, pid, comm, kind } => {
                let idx = fmt as usize;
                if let Some(c) = self.counts.get_mut(idx) {
                    // The first record of an event: say once if it cannot be printed as the
                    // kernel prints it.
                    if *c == 0
                        && let Some(f) = trace.header.formats.get(idx)
                    {
                        let mut stop = false;
                        for p in f.print_problems() {
                            let d = Diagnostic {
                                file: self.input_name.to_string(),
                                line: 0,
                                column: ev.offset,
                                severity: Severity::Warning,
                                message: format!("event {}:{}: {p}", f.system, f.name),
                            };
                            if sink.diagnostic(d) == Flow::Stop {
                                stop = true;
                            }
                        }
                        if stop {
                            return Flow::Stop;
                        }
                    }
                    *c += 1;
                }
                let tgids = &trace.header.tgids;
                let tgid = if tgids.is_empty() { None } else { tgids.get(&pid).copied() };
                let task = Some(Task { comm, pid, tgid });
                let fname = &mut self.fname;
                let kvm: Option<KvmExit<'_>>;
                let name = || trace.header.formats.get(idx).map_or("", |f| f.name.as_str());
                let kind = match kind {
                    RecKind::Entry { func: f, depth } => {
                        RecordKind::Entry { func: func_of(f, fname), depth }
                    }
                    RecKind::Exit { func: f, depth, duration } => {
                        RecordKind::Exit { func: Some(func_of(f, fname)), duration, depth }
                    }
                    RecKind::Event { start, len } => {
                        let t = batch.text.get(start as usize..(start + len) as usize);
                        RecordKind::Event { name: name(), text: t.unwrap_or(""), exit: None }
                    }
                    RecKind::Deferred { start, len, exit } => {
                        kvm = exit
                            .and_then(|i| batch.exits.get(i as usize))
                            .map(|v| v.exit(&batch.text));
                        let exit = kvm.as_ref();
                        let r = Record {
                            line: 0,
                            cpu: Some(cpu),
                            task,
                            timestamp: Some(ts),
                            kind: RecordKind::Event { name: name(), text: "", exit },
                        };
                        let deferred = &mut self.deferred;
                        deferred.clear();
                        if sink.wants_text(&r)
                            && let Some(f) = trace.header.formats.get(idx)
                        {
                            let payload = batch.raw.get(start as usize..(start + len) as usize);
                            trace.header.render_event(f, payload.unwrap_or_default(), deferred);
                        }
                        RecordKind::Event { name: name(), text: deferred, exit }
                    }
                };
                let r = Record { line: 0, cpu: Some(cpu), task, timestamp: Some(ts), kind };
                sink.record(&r)
            }
        };
        self.sum.records += 1;
        self.sum.first_ts.get_or_insert(ts);
        self.sum.last_ts = Some(ts);
        flow
    }
}

/// The function of a decoded record: its symbol, or its address written into `buf`.
fn func_of<'x>(f: FuncRef<'x>, buf: &'x mut String) -> Func<'x> {
    match f {
        FuncRef::Sym(n, m) => Func::new(n, m),
        FuncRef::Addr(a) => {
            use std::fmt::Write as _;
            buf.clear();
            let _ = write!(buf, "0x{a:x}");
            Func::new(buf, None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use exitscope_model::{Flow, Record, RecordKind, RecordSink, TextUse};

    use crate::write::fixture::{Fixture, KVM_ENTRY_FORMAT};
    use crate::{Compression, Merged, ReadOptions, TraceDat};

    #[derive(Default)]
    struct Seen(Vec<(Option<u32>, Option<u64>, String)>);

    impl RecordSink for Seen {
        fn record(&mut self, r: &Record<'_>) -> Flow {
            let t = match r.kind {
                RecordKind::Event { text, .. } => text.to_string(),
                RecordKind::Lost { count } => format!("lost {count:?}"),
                _ => String::new(),
            };
            self.0.push((r.cpu, r.timestamp, t));
            Flow::Continue
        }
    }

    /// A sink that reads event text as `text_use` says, and when asked, that of records at
    /// multiples of 30 ns.
    struct Picky {
        text_use: TextUse,
        /// Times asked (through a shared reference).
        asked: std::cell::Cell<usize>,
        seen: Seen,
    }

    impl Picky {
        fn wants(ts: Option<u64>) -> bool {
            ts.is_some_and(|t| t % 30 == 0)
        }
    }

    impl RecordSink for Picky {
        fn record(&mut self, r: &Record<'_>) -> Flow {
            self.seen.record(r)
        }
        fn text_use(&self, _: &str) -> TextUse {
            self.text_use
        }
        fn wants_text(&self, r: &Record<'_>) -> bool {
            assert!(matches!(r.kind, RecordKind::Event { text: "", .. }));
            self.asked.set(self.asked.get() + 1);
            Self::wants(r.timestamp)
        }
    }

    #[test]
    fn event_text_is_rendered_only_where_the_sink_reads_it() {
        let bytes = fixture(7, Compression::Zstd, 3).to_bytes();
        let mut want = Seen::default();
        crate::read(&bytes, "t", &mut want).unwrap();
        let events = want.0.iter().filter(|(_, _, t)| !t.starts_with("lost")).count();
        assert!(events > 4000 && want.0.iter().all(|(_, _, t)| !t.is_empty()));
        for jobs in [1, 2, 5] {
            for text_use in [TextUse::Always, TextUse::Sometimes, TextUse::Never] {
                let mut p = Picky { text_use, asked: Default::default(), seen: Seen::default() };
                let o = ReadOptions { jobs, ..ReadOptions::default() };
                crate::read_with(&bytes, "t", &mut p, &o).unwrap();
                assert_eq!(p.seen.0.len(), want.0.len());
                for (got, want) in p.seen.0.iter().zip(&want.0) {
                    let lost = want.2.starts_with("lost");
                    let text = match text_use {
                        _ if lost => want.2.as_str(),
                        TextUse::Always => want.2.as_str(),
                        TextUse::Sometimes if Picky::wants(want.1) => want.2.as_str(),
                        _ => "",
                    };
                    assert_eq!((got.0, got.1, got.2.as_str()), (want.0, want.1, text));
                }
                let asked = if text_use == TextUse::Sometimes { events } else { 0 };
                assert_eq!(p.asked.get(), asked, "{text_use:?} jobs {jobs}");
            }
        }
    }

    #[test]
    fn a_sink_that_parses_kvm_exit_gets_it_decoded_and_its_text_only_when_asked() {
        use exitscope_model::exit::parse_kvm_exit;
        /// Owned `KvmExit` fields.
        type Exit = (Option<u32>, String, Option<u64>, Option<u64>, Option<u64>);
        struct Parses {
            exits: Vec<(Option<Exit>, String)>,
            ask: bool,
        }
        impl RecordSink for Parses {
            fn record(&mut self, r: &Record<'_>) -> Flow {
                if let RecordKind::Event { name: "kvm_exit", text, exit } = r.kind {
                    let e = exit.map(|k| (k.vcpu, k.reason.to_string(), k.rip, k.info1, k.info2));
                    self.exits.push((e, text.to_string()));
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
        let bytes = crate::write::fixture::demo_funcgraph(7, Compression::Zstd, 200).to_bytes();
        let mut texts = Parses { exits: Vec::new(), ask: false };
        // The reference: a sink that reads the text (the reader then renders it).
        struct Texts<'a>(&'a mut Parses);
        impl RecordSink for Texts<'_> {
            fn record(&mut self, r: &Record<'_>) -> Flow {
                self.0.record(r)
            }
        }
        crate::read(&bytes, "t", &mut Texts(&mut texts)).unwrap();
        assert!(texts.exits.len() > 100 && texts.exits.iter().all(|(e, _)| e.is_none()));
        for (jobs, ask) in [(1, false), (2, false), (1, true), (3, true)] {
            let mut p = Parses { exits: Vec::new(), ask };
            let o = ReadOptions { jobs, ..ReadOptions::default() };
            crate::read_with(&bytes, "t", &mut p, &o).unwrap();
            assert_eq!(p.exits.len(), texts.exits.len());
            for ((got, text), (_, want)) in p.exits.iter().zip(&texts.exits) {
                let k = parse_kvm_exit(want).unwrap();
                let want_exit = (k.vcpu, k.reason.to_string(), k.rip, k.info1, k.info2);
                assert_eq!(got.as_ref(), Some(&want_exit), "{want}");
                assert_eq!(text, if ask { want.as_str() } else { "" });
            }
        }
    }

    /// `cpus` CPUs whose records share timestamps (ties across CPUs everywhere), some CPUs
    /// sparse, some empty.
    fn fixture(version: u32, compression: Compression, cpus: usize) -> Fixture {
        let mut per = vec![Vec::new(); cpus];
        for (c, recs) in per.iter_mut().enumerate() {
            if c % 5 == 3 {
                continue; // an empty CPU
            }
            let step = 1 + (c as u64 % 3);
            for k in 0..(3000 / step) {
                let mut p = vec![0u8; 24];
                p[0..2].copy_from_slice(&1501u16.to_le_bytes());
                p[4..8].copy_from_slice(&(100 + c as i32).to_le_bytes());
                p[8..12].copy_from_slice(&(c as u32).to_le_bytes());
                p[16..24].copy_from_slice(&k.to_le_bytes());
                recs.push((1000 + k * step * 10, p));
            }
        }
        Fixture {
            version,
            compression,
            page_size: 4096,
            ftrace_formats: Vec::new(),
            systems: vec![("kvm".into(), vec![KVM_ENTRY_FORMAT.into()])],
            kallsyms: String::new(),
            printk: String::new(),
            cmdlines: String::new(),
            cpus: per,
            missed_first_page: vec![(1, 7)],
            big_endian: false,
            extra_options: Vec::new(),
        }
    }

    #[test]
    fn every_job_count_and_unit_size_merges_as_the_whole_stream_merge_does() {
        for cpus in [2, 12] {
            for (v, comp) in [(6, Compression::None), (7, Compression::Zstd)] {
                let bytes = fixture(v, comp, cpus).to_bytes();
                // The reference: the merge over whole decompressed streams, rendered.
                let t = TraceDat::parse(&bytes).unwrap();
                let mut want = Vec::new();
                let mut m = t.merge().unwrap();
                while let Some(it) = m.next_event().unwrap() {
                    match it {
                        Merged::Event(e) => {
                            let mut s = String::new();
                            t.render(e.payload, &mut s);
                            want.push((Some(e.cpu), Some(e.ts), s));
                        }
                        Merged::Lost { cpu, ts, count } => {
                            want.push((Some(cpu), Some(ts), format!("lost {count:?}")));
                        }
                    }
                }
                assert!(want.len() > 4000, "{}", want.len());
                for jobs in [1, 2, 5] {
                    for unit in [None, Some(4096), Some(3 * 4096)] {
                        let o = ReadOptions { jobs, unit_bytes: unit, ..ReadOptions::default() };
                        let mut got = Seen::default();
                        let s = crate::read_with(&bytes, "t", &mut got, &o).unwrap();
                        assert_eq!(s.records as usize, want.len());
                        assert!(got.0 == want, "{cpus} cpus v{v} jobs {jobs} unit {unit:?}");
                    }
                }
            }
        }
    }
}
