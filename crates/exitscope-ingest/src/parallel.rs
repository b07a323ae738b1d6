//! Ftrace text on several threads: the input (a mapped file) is cut at line boundaries into
//! chunks; worker threads pre-parse each chunk (UTF-8, columns, numbers, function names:
//! everything a line says on its own, [`exitscope_ftrace::pre_parse_chunk`]) while this
//! thread applies the pre-parsed lines in input order to one [`TextParser`] and the sink
//! (task-switch banners, open comments, call trees, statistics). The sink therefore sees the
//! same records and diagnostics in the same order as with one thread, so every output is
//! byte-identical to `-j 1` whatever the chunk size.
//!
//! Memory stays bounded: at most a window of chunks is parsed ahead of the consumer, and the
//! pages of applied chunks are handed back to the kernel ([`mmap::release`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

use exitscope_ftrace::{ParseSummary, PreLine, TextParser};
use exitscope_model::{Flow, RecordSink};

use crate::Progress;
use crate::mmap;

/// Default chunk size: large enough that handing chunks over costs nothing, small enough
/// that the window of chunks in flight stays small (a pre-parsed line takes 128 bytes, so
/// a chunk of 50-byte lines takes about 2.5 MB parsed).
pub(crate) const DEFAULT_CHUNK: usize = 1 << 20;

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

/// Parse `data` (a whole ftrace text input called `name`) with `jobs` worker threads and
/// chunks of `chunk` bytes into `sink`. `map` is the mapping `data` lives in, so the pages
/// of applied chunks can be released.
pub(crate) fn parse_text<S: RecordSink + ?Sized>(
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
    let mut parser = TextParser::new(name);
    let mut lineno = 0u64;
    let mut stopped = false;
    std::thread::scope(|scope| {
        // (chunk index, its end, its lines)
        let (tx, rx) = mpsc::channel::<(usize, usize, Vec<PreLine<'_>>)>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, shared, pool) = (&next, &shared, &pool);
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
                    let mut lines =
                        pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
                    let end = chunk_start(data, chunk, i + 1);
                    exitscope_ftrace::pre_parse_chunk(&data[start..end], &mut lines);
                    if tx.send((i, end, lines)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        let mut released = 0usize;
        'recv: for (i, end, lines) in rx.iter() {
            pending.insert(i, (end, lines));
            while let Some((done, mut lines)) = pending.remove(&want) {
                for pre in lines.drain(..) {
                    lineno += 1;
                    if parser.apply(pre, lineno, sink) == Flow::Stop {
                        stopped = true;
                        break;
                    }
                }
                pool.lock().unwrap_or_else(|e| e.into_inner()).push(lines);
                want += 1;
                *shared.applied.lock().unwrap_or_else(|e| e.into_inner()) = want;
                shared.changed.notify_all();
                if let Some(map) = map {
                    released = mmap::release(map, released, done);
                }
                if let Some(p) = progress {
                    p.update(done as u64, data.len() as u64);
                }
                if stopped {
                    shared.stop.store(true, Ordering::Relaxed);
                    shared.changed.notify_all();
                    break 'recv;
                }
            }
        }
        // Workers blocked on the window see `stop`; the rest finish their chunk and quit
        // when the channel is gone.
        drop(rx);
    });
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
