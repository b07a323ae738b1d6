//! Ftrace text on several threads: the input (a mapped file) is cut at line boundaries into
//! chunks; worker threads pre-parse each chunk (UTF-8, columns, numbers, function names:
//! everything a line says on its own, [`exitscope_ftrace::pre_parse_chunk`]). When the sink
//! analyses chunks itself ([`ChunkedSink`]: the analysis of `report`) and a chunk's lines
//! carry no state of the parser's (only events: [`TextParser::context_free`]), or the sink
//! takes function-graph parts ([`ChunkedSink::graph_part_maker`]: the worker's parser then
//! starts from the task-switch banners of the chunks before, which each worker publishes
//! once it has found its chunk's, [`BannerChain`]), the worker
//! also parses and analyses the chunk into a part of its own, and this thread applies the
//! few lines the part left to it and merges the part; otherwise (or when the sink refuses
//! the part) this thread applies the pre-parsed lines in input order to one [`TextParser`]
//! and the sink (task-switch banners, open comments, call trees, statistics). Either way
//! the sink ends with the same records, diagnostics and figures as with one thread, so
//! every output is byte-identical to `-j 1` whatever the chunk size.
//!
//! Memory stays bounded: at most a window of chunks is parsed ahead of the consumer, and the
//! pages of applied chunks are handed back to the kernel ([`mmap::release`]).
//!
//! With `EXITSCOPE_CHUNK_STATS` set in the environment, a line on stderr says how each chunk
//! went and how long this thread worked (tests check that parts are really merged).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use exitscope_ftrace::line::Line;
use exitscope_ftrace::{Banners, ParseSummary, PreLine, TextParser};
use exitscope_model::{ChunkPart, ChunkedSink, Flow, PartMaker, RecordSink};

use crate::Progress;
use crate::mmap;

/// Default chunk size: large enough that handing chunks over costs nothing, small enough
/// that the window of chunks in flight stays small (a pre-parsed line takes 128 bytes, so
/// a chunk of 50-byte lines takes about 2.5 MB parsed).
pub(crate) const DEFAULT_CHUNK: usize = 1 << 20;

/// How far back each release of applied pages reaches into what was released before. A
/// worker's fault on the next chunk maps the page cache's large folio around it (up to 2 MB,
/// the PMD order), pages of applied chunks included, and nobody would release those again:
/// the resident set grew with the input (about 6 % of it at -j 2, 1.1 GB for a 10 GB trace).
/// Releasing a range with nothing mapped in it costs only the page-table walk.
const RELEASE_OVERLAP: usize = 8 << 20;

/// Inputs smaller than this are parsed on one thread (starting threads would cost more).
pub(crate) const MIN_PARALLEL: usize = 16 << 20;

/// Where chunk `i` of `data` starts when chunks are about `chunk` bytes: the first line
/// start at or after `i * chunk` (`data.len()` past the end). Chunk `i` is
/// `chunk_start(i)..chunk_start(i + 1)`, possibly empty when one line spans several chunk
/// sizes. Each worker finds its own bounds, so no thread reads the whole file ahead (touching
/// one byte per chunk up front would map most of a large file: the page cache hands out
/// large folios).
fn chunk_start(data: &[u8], chunk: usize, i: usize) -> usize {
    let want = i.saturating_mul(chunk.max(1));
    if want == 0 {
        return 0;
    }
    if want >= data.len() {
        return data.len();
    }
    match memchr::memchr(b'\n', &data[want - 1..]) {
        Some(k) => want + k,
        None => data.len(),
    }
}

/// Shared between the workers and the consumer.
struct Window {
    /// Chunks applied so far.
    applied: Mutex<usize>,
    changed: Condvar,
    /// The consumer stopped early (the sink said stop): workers quit.
    stop: AtomicBool,
}

/// The task-switch banners before each chunk, for workers that analyse function-graph
/// chunks: each worker publishes its chunk's banners once pre-parsed; the state before chunk
/// `i` is known once chunks `0..i` are published.
#[derive(Default)]
struct BannerChain {
    inner: Mutex<ChainState>,
    changed: Condvar,
}

#[derive(Default)]
struct ChainState {
    /// Chunks whose banners are folded into `state`.
    next: usize,
    state: Banners,
    later: BTreeMap<usize, Banners>,
    starts: BTreeMap<usize, Banners>,
}

impl BannerChain {
    fn publish(&self, i: usize, banners: Banners) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.later.insert(i, banners);
        loop {
            let next = c.next;
            let Some(b) = c.later.remove(&next) else { break };
            let before = c.state.clone();
            c.starts.insert(next, before);
            c.state.then(&b);
            c.next += 1;
        }
        drop(c);
        self.changed.notify_all();
    }

    /// The banners before chunk `i`; `None` when the consumer stopped.
    fn before(&self, i: usize, stop: &AtomicBool) -> Option<Banners> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(b) = c.starts.remove(&i) {
                return Some(b);
            }
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            c = self
                .changed
                .wait_timeout(c, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The task-switch banners in `chunk` (found by their `=>`, without parsing every line).
fn chunk_banners(chunk: &[u8]) -> Banners {
    let mut lines = Vec::new();
    let mut from = 0;
    // Each `>` after `from + 1` with a `=` before it: one-byte search is the fastest there is,
    // and `>` is rare in function-graph text.
    while let Some(k) = memchr::memchr(b'>', chunk.get(from + 1..).unwrap_or_default()) {
        let at = from + k;
        if chunk[at] != b'=' {
            from = at + 1;
            continue;
        }
        let start = memchr::memrchr(b'\n', &chunk[..at]).map_or(0, |p| p + 1);
        let end = memchr::memchr(b'\n', &chunk[at..]).map_or(chunk.len(), |p| at + p);
        let line = &chunk[start..end];
        lines.push(exitscope_ftrace::pre_parse(line.strip_suffix(b"\r").unwrap_or(line)));
        from = end.min(chunk.len().saturating_sub(1)).max(at + 2);
    }
    Banners::of(&lines)
}

/// Parse and analyse a chunk with function-graph lines into a part line by line (the
/// parser started from `banners`); `None` when the part cannot stand for the chunk.
fn analyse_graph_stream<'a>(
    name: &str,
    data: &'a [u8],
    range: Range<usize>,
    make: &PartMaker,
    banners: Banners,
) -> Option<Done<'a>> {
    let mut part = make();
    let mut parser = TextParser::new(name);
    parser.set_banners(banners);
    let mut prefix = Vec::new();
    let mut n = 0u64;
    let mut ok = true;
    exitscope_ftrace::reader::for_each_line_in(&data[range.clone()], |c| {
        if !ok {
            return;
        }
        n += 1;
        if let exitscope_ftrace::reader::Chunk::Text(t) = c
            && parser.common_line(t, n, &mut *part).is_some()
        {
            // Most lines: straight to one record (which sets whether it was a prefix). A
            // part that cannot stand for its chunk ignores the records after, so asking for
            // that now and then is enough to stop early.
            if part.last_was_prefix() {
                prefix.push((n, t));
            }
            if n.is_multiple_of(256) {
                ok = part.usable();
            }
            return;
        }
        let pre = exitscope_ftrace::pre_parse_line(c);
        let text = match &pre {
            PreLine::Text { text, parsed: Ok(_) } => Some(*text),
            _ => None,
        };
        part.clear_prefix();
        parser.apply(pre, n, &mut *part);
        if let Some(text) = text
            && part.last_was_prefix()
        {
            prefix.push((n, text));
        }
        ok = part.usable();
    });
    if !ok || !part.usable() || parser.has_open_comment() {
        return None;
    }
    Some(finish_part(part, parser, prefix, n, range))
}

/// The part of a chunk of `lines` lines whose `prefix` lines were left to the sink. A prefix
/// line is one line and one record (a graph line, a banner or an event), counted by the
/// sink's parser when it applies it, so not here.
fn finish_part<'a>(
    mut part: Box<dyn ChunkPart>,
    parser: TextParser,
    prefix: Vec<(u64, &'a str)>,
    lines: u64,
    range: Range<usize>,
) -> Done<'a> {
    let mut summary = parser.finish(&mut *part);
    let k = prefix.len() as u64;
    summary.lines -= k;
    summary.record_lines -= k;
    summary.records -= k;
    Done::Part { part, summary, prefix, lines, range }
}

/// A plain record sink as a [`ChunkedSink`] that takes no parts.
pub(crate) struct InOrder<S>(pub(crate) S);

impl<S: RecordSink> RecordSink for InOrder<S> {
    fn record(&mut self, rec: &exitscope_model::Record<'_>) -> Flow {
        self.0.record(rec)
    }
    fn diagnostic(&mut self, diag: exitscope_model::Diagnostic) -> Flow {
        self.0.diagnostic(diag)
    }
    fn text_use(&self, event: &str) -> exitscope_model::TextUse {
        self.0.text_use(event)
    }
    fn wants_text(&self, rec: &exitscope_model::Record<'_>) -> bool {
        self.0.wants_text(rec)
    }
}

impl<S: RecordSink> ChunkedSink for InOrder<S> {
    fn part_maker(&self) -> Option<PartMaker> {
        None
    }
    fn accepts(&self, _: &dyn ChunkPart) -> bool {
        false
    }
    fn merge_part(&mut self, _: Box<dyn ChunkPart>, _: u64) {}
}

/// What a worker hands over for one chunk.
enum Done<'a> {
    /// Pre-parsed lines, to apply in order.
    Lines(Vec<PreLine<'a>>),
    /// The chunk analysed into `part`.
    Part {
        part: Box<dyn ChunkPart>,
        /// The chunk parser's counts, the prefix lines left out.
        summary: ParseSummary,
        /// Lines left to the sink: (line number within the chunk, text).
        prefix: Vec<(u64, &'a str)>,
        /// Lines in the chunk.
        lines: u64,
        /// The chunk's bytes, to pre-parse again if the sink refuses the part.
        range: Range<usize>,
    },
}

/// How the chunks went (see the module docs).
#[derive(Default)]
struct Tally {
    merged: u64,
    refused: u64,
    in_order: u64,
    busy: Duration,
    /// CPU time of the consumer thread (applying and merging, not waiting).
    cpu: Duration,
}

/// CPU time of the calling thread so far (`/proc/thread-self/schedstat`), for the chunk
/// stats: the consumer's own work, whatever else the machine runs.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// Parse and analyse a chunk of event lines into a part on a worker, each line applied as it
/// is pre-parsed (no vector of pre-parsed lines to write and read back); `None` when a line
/// carries parser state ([`TextParser::context_free`]) or the part cannot stand for the
/// chunk: the chunk's lines are then applied in order.
fn analyse_event_stream<'a>(
    name: &str,
    data: &'a [u8],
    range: Range<usize>,
    make: &PartMaker,
) -> Option<Done<'a>> {
    let mut part = make();
    let mut parser = TextParser::new(name);
    let mut prefix = Vec::new();
    let mut n = 0u64;
    let mut ok = true;
    exitscope_ftrace::reader::for_each_line_in(&data[range.clone()], |c| {
        if !ok {
            return;
        }
        n += 1;
        let pre = exitscope_ftrace::pre_parse_line(c);
        if !TextParser::context_free(std::slice::from_ref(&pre)) {
            ok = false;
            return;
        }
        let event = match &pre {
            PreLine::Text { text, parsed: Ok(Line::Event { .. }) } => Some(*text),
            _ => None,
        };
        parser.apply(pre, n, &mut *part);
        // An event line makes exactly one record (no comment is open in a context-free
        // chunk).
        if let Some(text) = event
            && part.last_was_prefix()
        {
            prefix.push((n, text));
        }
    });
    if !ok || !part.usable() {
        return None;
    }
    Some(finish_part(part, parser, prefix, n, range))
}

/// Apply pre-parsed `lines` in order (numbered after `lineno`); true when the sink said stop.
fn apply<S: ChunkedSink + ?Sized>(
    lines: &mut Vec<PreLine<'_>>,
    parser: &mut TextParser,
    lineno: &mut u64,
    sink: &mut S,
) -> bool {
    for pre in lines.drain(..) {
        *lineno += 1;
        if parser.apply(pre, *lineno, sink) == Flow::Stop {
            return true;
        }
    }
    false
}

/// Parse and apply the lines of `chunk` in order (numbered after `lineno`), common
/// function-graph lines straight to records; true when the sink said stop.
fn apply_text<S: ChunkedSink + ?Sized>(
    chunk: &[u8],
    parser: &mut TextParser,
    lineno: &mut u64,
    sink: &mut S,
) -> bool {
    use exitscope_ftrace::reader::Chunk;
    let mut stopped = false;
    exitscope_ftrace::reader::for_each_line_in(chunk, |c| {
        if stopped {
            return;
        }
        *lineno += 1;
        let flow = match c {
            Chunk::Text(t) => match parser.common_line(t, *lineno, sink) {
                Some(flow) => flow,
                None => parser.apply(exitscope_ftrace::pre_parse_str(t), *lineno, sink),
            },
            Chunk::Line(l) => parser.apply(exitscope_ftrace::pre_parse(l), *lineno, sink),
            Chunk::TooLong(n) => parser.too_long(n, *lineno, sink),
        };
        stopped = flow == Flow::Stop;
    });
    stopped
}

/// Parse `data` (a whole ftrace text input called `name`) with `jobs` worker threads and
/// chunks of `chunk` bytes into `sink`. `map` is the mapping `data` lives in, so the pages
/// of applied chunks can be released.
pub(crate) fn parse_text<S: ChunkedSink + ?Sized>(
    name: &str,
    map: Option<&memmap2::Mmap>,
    data: &[u8],
    jobs: usize,
    chunk: usize,
    sink: &mut S,
    progress: Option<&Progress>,
) -> ParseSummary {
    let jobs = jobs.clamp(1, data.len().div_ceil(chunk.max(1)).max(1));
    // Each worker may run eight chunks ahead of the consumer: enough slack that a worker
    // descheduled in the middle of a chunk (a busy machine) rarely starves the consumer;
    // about 30 MB in flight with two workers.
    let window = 8 * jobs;
    let next = AtomicUsize::new(0);
    let shared =
        Window { applied: Mutex::new(0), changed: Condvar::new(), stop: AtomicBool::new(false) };
    // Vectors of applied chunks go back to the workers.
    let pool: Mutex<Vec<Vec<PreLine<'_>>>> = Mutex::new(Vec::new());
    let maker = sink.part_maker();
    let graph_maker = sink.graph_part_maker();
    let chain = BannerChain::default();
    let mut parser = TextParser::new(name);
    let mut lineno = 0u64;
    let mut stopped = false;
    let mut tally = Tally::default();
    let stats = std::env::var_os("EXITSCOPE_CHUNK_STATS").is_some();
    std::thread::scope(|scope| {
        // (chunk index, its end, what the worker made of it)
        let (tx, rx) = mpsc::channel::<(usize, usize, Done<'_>)>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, shared, pool, maker) = (&next, &shared, &pool, maker.as_ref());
            let (graph_maker, chain) = (graph_maker.as_ref(), &chain);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let start = chunk_start(data, chunk, i);
                    if start >= data.len() && i > 0 {
                        break;
                    }
                    {
                        let mut applied = shared.applied.lock().unwrap_or_else(|e| e.into_inner());
                        while i >= *applied + window && !shared.stop.load(Ordering::Relaxed) {
                            applied =
                                shared.changed.wait(applied).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let end = chunk_start(data, chunk, i + 1);
                    let mut graph = None;
                    if let Some(make) = graph_maker {
                        // Function-graph chunks are parsed and analysed line by line (no
                        // pre-parsed vector to go through memory); others as below.
                        chain.publish(i, chunk_banners(&data[start..end]));
                        let Some(banners) = chain.before(i, &shared.stop) else { break };
                        graph = analyse_graph_stream(name, data, start..end, make, banners);
                    }
                    let done = match graph.or_else(|| {
                        maker.and_then(|make| analyse_event_stream(name, data, start..end, make))
                    }) {
                        Some(done) => done,
                        None => {
                            let mut lines = pool
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .pop()
                                .unwrap_or_default();
                            exitscope_ftrace::pre_parse_chunk(&data[start..end], &mut lines);
                            Done::Lines(lines)
                        }
                    };
                    if tx.send((i, end, done)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        let mut released = 0usize;
        let cpu_before = stats.then(thread_cpu).flatten();
        'recv: for (i, end, done) in rx.iter() {
            pending.insert(i, (end, done));
            while let Some((end, done)) = pending.remove(&want) {
                let began = Instant::now();
                match done {
                    Done::Lines(mut lines) => {
                        tally.in_order += 1;
                        stopped = apply(&mut lines, &mut parser, &mut lineno, sink);
                        pool.lock().unwrap_or_else(|e| e.into_inner()).push(lines);
                    }
                    Done::Part { part, summary, prefix, lines, range } => {
                        if !parser.has_open_comment() && sink.accepts(&*part) {
                            tally.merged += 1;
                            sink.prefix_begins(&*part);
                            for (l, text) in prefix {
                                let pre = exitscope_ftrace::pre_parse_str(text);
                                stopped |= parser.apply(pre, lineno + l, sink) == Flow::Stop;
                            }
                            parser.add_counts(&summary);
                            sink.merge_part(part, lineno);
                            lineno += lines;
                        } else {
                            tally.refused += 1;
                            stopped = apply_text(&data[range], &mut parser, &mut lineno, sink);
                        }
                    }
                }
                tally.busy += began.elapsed();
                want += 1;
                *shared.applied.lock().unwrap_or_else(|e| e.into_inner()) = want;
                shared.changed.notify_all();
                if let Some(map) = map {
                    released = mmap::release(map, released.saturating_sub(RELEASE_OVERLAP), end);
                }
                if let Some(p) = progress {
                    p.update(end as u64, data.len() as u64);
                }
                if stopped {
                    shared.stop.store(true, Ordering::Relaxed);
                    shared.changed.notify_all();
                    break 'recv;
                }
            }
        }
        if let (Some(a), Some(b)) = (cpu_before, stats.then(thread_cpu).flatten()) {
            tally.cpu = b.saturating_sub(a);
        }
        // Workers blocked on the window see `stop`; the rest finish their chunk and quit
        // when the channel is gone.
        drop(rx);
    });
    if stats {
        eprintln!(
            "exitscope: chunk stats: {} merged, {} refused, {} in order; consumer busy {:.3} s \
             wall, {:.3} s CPU",
            tally.merged,
            tally.refused,
            tally.in_order,
            tally.busy.as_secs_f64(),
            tally.cpu.as_secs_f64()
        );
    }
    let mut summary = parser.finish(sink);
    summary.bytes = data.len() as u64;
    summary.stopped = stopped;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_after_newlines_and_cover_everything() {
        let data = b"aa\nbbbb\n\nc\ndd";
        for chunk in 1..=data.len() + 1 {
            let starts: Vec<usize> =
                (0..=data.len() + 1).map(|i| chunk_start(data, chunk, i)).collect();
            assert_eq!(starts[0], 0);
            assert_eq!(*starts.last().unwrap(), data.len());
            for w in starts.windows(2) {
                assert!(w[0] <= w[1]);
                assert!(w[1] == data.len() || data[w[1] - 1] == b'\n', "chunk {chunk}: {starts:?}");
            }
        }
        assert_eq!(chunk_start(b"", 4, 0), 0);
    }
}
