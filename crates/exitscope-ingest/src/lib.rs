//! # Brief overview
//!
//! The one owner of reading exitscope's inputs. Give it paths (`-` is stdin) and an
//! [`InputSink`]; it recognises each input by its first bytes, undoes gzip or zstd
//! compression, reads trace-cmd `trace.dat` zero-copy from a memory map (from memory for
//! stdin and compressed inputs), perf's `perf.data` the same way, and ftrace text as a stream
//! through a fixed buffer, and pushes the records into the sink between
//! [`InputSink::begin_input`] and [`InputSink::end_input`]. It returns one [`InputSummary`]
//! per input.
//!
//! A large plain text file with [`Options::jobs`] above 1 is mapped instead and cut into
//! chunks at line ends; worker threads pre-parse the chunks (everything a line says on its
//! own) while the calling thread applies them in order, so the sink gets exactly the records
//! and diagnostics of one thread, and memory stays a window of chunks (`parallel.rs`). A
//! sink that analyses chunks itself ([`exitscope_model::ChunkedSink`], the analysis) gets
//! chunks of event lines as parts analysed on the worker threads, merged in order.
//!
//! ```
//! use exitscope_ingest::{Options, read_bytes};
//! use exitscope_model::{Flow, InputFormat, InputSink, InputSummary, Record, RecordSink};
//!
//! #[derive(Default)]
//! struct Count(u64);
//! impl RecordSink for Count {
//!     fn record(&mut self, _: &Record<'_>) -> Flow { self.0 += 1; Flow::Continue }
//! }
//! impl InputSink for Count {
//!     fn begin_input(&mut self, _: &str, _: InputFormat) {}
//!     fn end_input(&mut self, _: &InputSummary) {}
//! }
//! let text = b" 0)               |  vcpu_enter_guest [kvm]() {\n 0)   4.278 us    |  }\n";
//! let mut sink = Count::default();
//! let got = read_bytes("seed", text, &mut sink, &Options::default())?;
//! assert_eq!((sink.0, got.summary.format.as_str()), (2, "ftrace-text"));
//!
//! // Input that holds no trace is one error, whatever the command.
//! let e = read_bytes("blank", b"  \n\n", &mut sink, &Options::default()).unwrap_err();
//! assert!(e.to_string().starts_with("blank holds no trace: it holds only whitespace"));
//! # Ok::<(), exitscope_ingest::Error>(())
//! ```
//!
//! ## Formats, and where a new one goes
//! [`sniff`] decides from the first bytes: [`Sniffed::Binary`] for formats with a magic
//! number (trace.dat, perf.data), [`Sniffed::Compressed`] for gzip/zstd (the decompressed
//! stream is sniffed again), [`Sniffed::Text`] for ftrace text, [`Sniffed::Unknown`] for
//! anything else (which holds no trace). A new binary format gets a magic in `sniff.rs`, an
//! [`InputFormat`] variant in the model, and one arm in `read_binary` that calls its reader
//! with the whole input as `&[u8]`.
//!
//! **perf.data** (`perf record -e 'kvm:*'`, `perf kvm stat record`; file or pipe mode) is read
//! by `exitscope_perfdata::read`, which mirrors `exitscope_tracedat::read`.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod error;
mod mmap;
mod parallel;
mod sniff;

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::rc::Rc;
use std::sync::Arc;

use exitscope_model::{InputFormat, InputSink, InputSummary, RecordSink};

pub use error::Error;
pub use sniff::{Compression, Sniffed, sniff};

/// The input name that means standard input.
pub const STDIN: &str = "-";

/// How much of an input is read to recognise it.
const HEAD: usize = 64 * 1024;

/// How to read inputs. Build with `Options::default()` and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// An input without a single record is [`Error::NoTrace`] (default). `exitscope run`
    /// turns this off for its own recording, where "no events fired" is a finding to explain.
    pub require_records: bool,
    /// Threads that parse a large ftrace text file (a plain file of at least 16 MB): the
    /// file is mapped and cut into chunks at line boundaries, the chunks are pre-parsed in
    /// parallel and applied to the sink in order, so the sink sees exactly what one thread
    /// gives it. 1 (the default) streams through a fixed buffer on the calling thread.
    /// A trace.dat is decompressed and decoded on this many threads and merged by
    /// timestamp on the calling thread, with the same result.
    pub jobs: usize,
    /// Chunk size for `jobs > 1`, also for files under 16 MB (tests cut fixtures into tiny
    /// chunks this way). `None`: 4 MB. For a trace.dat: the bytes of pages decoded as one
    /// unit (`None`: about 320 KB), at every `jobs`.
    pub chunk_bytes: Option<usize>,
    /// Told how far reading a file has come.
    pub progress: Option<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options { require_records: true, jobs: 1, chunk_bytes: None, progress: None }
    }
}

/// A callback told `(bytes read, bytes in the input)` while a file is read (for a progress
/// bar). Called from the reading thread, at most a few times per megabyte.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64, u64) + Send + Sync>);

impl Progress {
    /// Call `f(done, total)` as reading advances.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    pub(crate) fn update(&self, done: u64, total: u64) {
        (self.0)(done, total);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// What reading one input produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingested {
    /// The input's counts (also given to [`InputSink::end_input`]).
    pub summary: InputSummary,
    /// Things the user should know (most lines unreadable); printed by the caller.
    pub warnings: Vec<String>,
}

/// Read every input in order into `sink`.
///
/// # Errors
/// The first input that cannot be opened or read, or that holds no trace.
pub fn read_paths<S: InputSink + ?Sized>(
    names: &[impl AsRef<str>],
    sink: &mut S,
    opts: &Options,
) -> Result<Vec<Ingested>, Error> {
    names.iter().map(|n| read_path(n.as_ref(), sink, opts)).collect()
}

/// Read one input (a path, or `-` for stdin) into `sink`.
///
/// # Errors
/// See [`Error`].
pub fn read_path<S: InputSink + ?Sized>(
    name: &str,
    sink: &mut S,
    opts: &Options,
) -> Result<Ingested, Error> {
    if name == STDIN {
        return Reader::new(name, opts).read(io::stdin().lock(), None, None, sink);
    }
    let file = File::open(name).map_err(|source| Error::Open { name: name.to_owned(), source })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::IsDirectory { name: name.to_owned() });
    }
    Reader::new(name, opts).read(&file, Some(&file), None, sink)
}

/// Read an input held in memory (tests, fuzzing, embedders).
///
/// # Errors
/// See [`Error`].
pub fn read_bytes<S: InputSink + ?Sized>(
    name: &str,
    bytes: &[u8],
    sink: &mut S,
    opts: &Options,
) -> Result<Ingested, Error> {
    Reader::new(name, opts).read(bytes, None, None, sink)
}

/// A whole input in memory: mapped for plain files, read (and decompressed) otherwise.
pub struct Bytes {
    data: BytesData,
    /// What the (decompressed) bytes are.
    pub sniffed: Sniffed,
    /// The compression that was undone, if any.
    pub compression: Option<Compression>,
}

enum BytesData {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.data {
            BytesData::Mapped(m) => m,
            BytesData::Owned(v) => v,
        }
    }
}

/// Load a whole input (`-` = stdin) for a reader that needs random access (`exitscope
/// convert`): mapped when it is a plain file, decompressed when it is gzip or zstd.
///
/// # Errors
/// [`Error::Open`], [`Error::IsDirectory`], [`Error::Read`], [`Error::Decompress`].
pub fn load(name: &str) -> Result<Bytes, Error> {
    let read_err = |source: io::Error| Error::Read { name: name.to_owned(), offset: 0, source };
    let raw = if name == STDIN {
        let mut v = Vec::new();
        io::stdin().lock().read_to_end(&mut v).map_err(read_err)?;
        BytesData::Owned(v)
    } else {
        let file =
            File::open(name).map_err(|source| Error::Open { name: name.to_owned(), source })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::IsDirectory { name: name.to_owned() });
        }
        BytesData::Mapped(mmap::map(&file).map_err(read_err)?)
    };
    let mut bytes = Bytes { sniffed: Sniffed::Empty, compression: None, data: raw };
    bytes.sniffed = sniff(&bytes[..bytes.len().min(HEAD)]);
    if let Sniffed::Compressed(c) = bytes.sniffed {
        let mut out = Vec::new();
        let r = match c {
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out)
            }
            Compression::Zstd => zstd::stream::read::Decoder::new(&bytes[..])
                .and_then(|mut d| d.read_to_end(&mut out)),
        };
        r.map_err(|e| Error::Decompress {
            name: name.to_owned(),
            algo: c.as_str(),
            offset: 0,
            msg: e.to_string(),
        })?;
        let sniffed = sniff(&out[..out.len().min(HEAD)]);
        bytes = Bytes { data: BytesData::Owned(out), sniffed, compression: Some(c) };
    }
    Ok(bytes)
}

/// The [`Error::NoTrace`] for an input of `bytes` that is not the binary format a command
/// needs, or [`None`] when it holds text (which the caller names itself).
pub fn no_trace(name: &str, bytes: &Bytes) -> Option<Error> {
    let why = match bytes.sniffed {
        Sniffed::Empty => "it is empty".to_owned(),
        Sniffed::Unknown => "it is binary data in no format exitscope knows".to_owned(),
        Sniffed::Compressed(c) => format!("it is {} data compressed twice", c.as_str()),
        Sniffed::Text if bytes.iter().all(u8::is_ascii_whitespace) => {
            "it holds only whitespace".to_owned()
        }
        Sniffed::Text | Sniffed::Binary(_) => return None,
    };
    Some(Error::NoTrace { name: name.to_owned(), why })
}

/// An [`InputSink`] that drops everything: for checking that an input holds a trace.
#[derive(Debug, Default)]
pub struct Discard;

impl RecordSink for Discard {
    fn record(&mut self, _: &exitscope_model::Record<'_>) -> exitscope_model::Flow {
        exitscope_model::Flow::Continue
    }
}

impl InputSink for Discard {
    fn begin_input(&mut self, _: &str, _: InputFormat) {}
    fn end_input(&mut self, _: &InputSummary) {}
}

struct Reader<'n> {
    name: &'n str,
    opts: &'n Options,
}

/// Counts the bytes read from the raw input (before decompression), for error offsets.
struct Counting<'p, R> {
    inner: R,
    count: Rc<Cell<u64>>,
    /// Told the count against the file's size, when reading a file.
    progress: Option<(&'p Progress, u64)>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.count.get();
        self.count.set(before + n as u64);
        // About once per megabyte.
        if let Some((p, total)) = self.progress
            && (before >> 20 != (before + n as u64) >> 20 || n == 0)
        {
            p.update(before + n as u64, total);
        }
        Ok(n)
    }
}

impl<'n> Reader<'n> {
    fn new(name: &'n str, opts: &'n Options) -> Self {
        Reader { name, opts }
    }

    fn no_trace(&self, why: impl Into<String>) -> Error {
        Error::NoTrace { name: self.name.to_owned(), why: why.into() }
    }

    /// `rdr` yields the input's bytes; `file` is its file when it can be mapped (plain files
    /// only); `compression` is set once a decompressor has been put in front.
    fn read<S: InputSink + ?Sized>(
        &self,
        rdr: impl Read,
        file: Option<&File>,
        compression: Option<Compression>,
        sink: &mut S,
    ) -> Result<Ingested, Error> {
        let count = Rc::new(Cell::new(0));
        let file_size = file.and_then(|f| f.metadata().ok()).map(|m| m.len());
        let progress = match (&self.opts.progress, file_size, compression) {
            (Some(p), Some(size), None) => Some((p, size)),
            _ => None,
        };
        let mut rdr = Counting { inner: rdr, count: Rc::clone(&count), progress };
        let read_err = |source: io::Error, offset: u64| match compression {
            Some(c) => Error::Decompress {
                name: self.name.to_owned(),
                algo: c.as_str(),
                offset,
                msg: source.to_string(),
            },
            None => Error::Read { name: self.name.to_owned(), offset, source },
        };
        let mut head = Vec::with_capacity(HEAD);
        (&mut rdr)
            .take(HEAD as u64)
            .read_to_end(&mut head)
            .map_err(|e| read_err(e, count.get()))?;
        let what = sniff(&head);
        // Large plain text files are mapped and parsed on several threads.
        let parallel_file = file.filter(|_| {
            compression.is_none()
                && self.opts.jobs > 1
                && file_size.is_some_and(|n| {
                    n >= parallel::MIN_PARALLEL as u64 || self.opts.chunk_bytes.is_some()
                })
        });
        match what {
            Sniffed::Empty => Err(self.no_trace(match compression {
                Some(c) => format!("it is {} data that decompresses to nothing", c.as_str()),
                None => "it is empty".to_owned(),
            })),
            Sniffed::Unknown => Err(self.no_trace(format!(
                "it is binary data{} in no format exitscope knows",
                compression.map(|c| format!(" (inside {})", c.as_str())).unwrap_or_default()
            ))),
            Sniffed::Compressed(c) if compression.is_some() => {
                Err(self.no_trace(format!("it is {} data compressed twice", c.as_str())))
            }
            Sniffed::Compressed(c) => {
                let raw = Cursor::new(head).chain(rdr);
                // Boxed: the recursion would otherwise instantiate ever deeper reader types.
                let decoded: Box<dyn Read + '_> = match c {
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
                    Compression::Zstd => Box::new(
                        zstd::stream::read::Decoder::new(raw)
                            .map_err(|e| read_err(e, count.get()))?,
                    ),
                };
                self.read(decoded, None, Some(c), sink)
            }
            Sniffed::Binary(format) => {
                let mapped = match (file, compression) {
                    (Some(f), None) => Some(mmap::map(f).map_err(|e| read_err(e, 0))?),
                    _ => None,
                };
                let owned;
                let data: &[u8] = match &mapped {
                    Some(m) => m,
                    None => {
                        let mut all = head;
                        rdr.read_to_end(&mut all).map_err(|e| read_err(e, count.get()))?;
                        owned = all;
                        &owned
                    }
                };
                self.read_binary(format, data, mapped.as_ref(), compression, sink)
            }
            Sniffed::Text => {
                let host = self.host_of_text(&head);
                match parallel_file {
                    Some(f) => {
                        let map = mmap::map(f).map_err(|e| read_err(e, 0))?;
                        self.read_text_mapped(&map, host, sink).map_err(|e| match e {
                            Err2::Io(e) => read_err(e, 0),
                            Err2::Ingest(e) => e,
                        })
                    }
                    None => self
                        .read_text(Cursor::new(head).chain(rdr), compression, host, sink)
                        .map_err(|e| match e {
                            Err2::Io(e) => read_err(e, count.get()),
                            Err2::Ingest(e) => e,
                        }),
                }
            }
        }
    }

    /// The recording host named by a text input's first line (`# exitscope host: {json}`),
    /// from the input's first bytes; a warning when the line is there but unreadable.
    fn host_of_text(&self, head: &[u8]) -> HostTag {
        let Some(rest) = head.strip_prefix(b"# ") else { return HostTag::default() };
        if !rest.starts_with(exitscope_host::TAG_PREFIX.as_bytes()) {
            return HostTag::default();
        }
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return HostTag::warn(format!(
                "{}:1: the `# exitscope host:` line is longer than {HEAD} bytes; the recording \
                 host is unknown",
                self.name
            ));
        };
        self.host_of_tag(&String::from_utf8_lossy(&rest[..end]), ":1: the `# exitscope host:` line")
    }

    /// The fingerprint of a host tag; `what` says where it was, for the warning.
    fn host_of_tag(&self, tag: &str, what: &str) -> HostTag {
        match exitscope_host::Fingerprint::from_tag(tag) {
            None => HostTag::default(),
            Some(Ok(f)) => HostTag { host: Some(f), warning: None },
            Some(Err(e)) => HostTag::warn(format!(
                "{}{what} is not an exitscope fingerprint ({e}); the recording host is unknown",
                self.name
            )),
        }
    }

    fn read_binary<S: InputSink + ?Sized>(
        &self,
        format: InputFormat,
        data: &[u8],
        map: Option<&memmap2::Mmap>,
        compression: Option<Compression>,
        sink: &mut S,
    ) -> Result<Ingested, Error> {
        let size = data.len() as u64;
        let name = self.name.to_owned();
        let mut host: Option<HostTag> = None;
        // Per format: records, records that could not be read, and what an empty file is.
        let (records, unreadable, empty) = match format {
            InputFormat::TraceDat => {
                sink.begin_input(self.name, format);
                let mut ro = exitscope_tracedat::ReadOptions::default();
                ro.jobs = self.opts.jobs;
                ro.unit_bytes = self.opts.chunk_bytes;
                // Pages of the map already decoded go back to the kernel.
                let release = |from: usize, to: usize| {
                    if let Some(m) = map {
                        mmap::release(m, from, to);
                    }
                };
                ro.release = Some(&release);
                let s = exitscope_tracedat::read_with(data, self.name, &mut RecordsOf(sink), &ro)
                    .map_err(|error| Error::TraceDat { name, size, error })?;
                let empty = format!("a valid trace.dat (version {}, {} CPUs)", s.version, s.cpus);
                host = s
                    .host_tag
                    .as_deref()
                    .map(|t| self.host_of_tag(t, ": the exitscope host option"));
                (s.records, s.unknown_events, empty)
            }
            InputFormat::PerfData => {
                sink.begin_input(self.name, format);
                let s = exitscope_perfdata::read(data, self.name, &mut RecordsOf(sink))
                    .map_err(|error| Error::PerfData { name, size, error })?;
                let empty =
                    format!("a valid perf.data{}", if s.pipe { " (pipe mode)" } else { "" });
                (s.records, s.skipped_samples + s.unknown_events, empty)
            }
            _ => return Err(Error::Unsupported { name, what: "an unknown format" }),
        };
        if records == 0 && self.opts.require_records {
            return Err(self
                .no_trace(format!("it is {empty} without a single record: nothing was recorded")));
        }
        let summary = InputSummary {
            name: self.name.to_owned(),
            format: format.as_str().to_owned(),
            bytes: size,
            records,
            error_lines: unreadable,
            compression: compression.map(|c| c.as_str().to_owned()),
            host: host.as_mut().and_then(|h| h.host.take()),
            ..Default::default()
        };
        sink.end_input(&summary);
        Ok(Ingested { summary, warnings: host.and_then(|h| h.warning).into_iter().collect() })
    }

    fn read_text<S: InputSink + ?Sized>(
        &self,
        rdr: impl Read,
        compression: Option<Compression>,
        host: HostTag,
        sink: &mut S,
    ) -> Result<Ingested, Err2> {
        // The first bytes decide "only whitespace" (the parser counts blank and header lines
        // alike).
        let mut first = [0u8; 4096];
        let mut rdr = rdr;
        let n = read_up_to(&mut rdr, &mut first).map_err(Err2::Io)?;
        let blank_start = first[..n].iter().all(u8::is_ascii_whitespace);
        sink.begin_input(self.name, InputFormat::FtraceText);
        let s = exitscope_ftrace::parse_reader(
            self.name,
            Cursor::new(&first[..n]).chain(rdr),
            &mut RecordsOf(sink),
        )
        .map_err(Err2::Io)?;
        self.text_result(&s, blank_start && s.bytes == n as u64, compression, host, sink)
    }

    /// A plain file mapped whole, parsed on `opts.jobs` threads.
    fn read_text_mapped<S: InputSink + ?Sized>(
        &self,
        map: &memmap2::Mmap,
        host: HostTag,
        sink: &mut S,
    ) -> Result<Ingested, Err2> {
        let data: &[u8] = map;
        let blank = data.iter().take(4096).all(u8::is_ascii_whitespace) && data.len() <= 4096;
        sink.begin_input(self.name, InputFormat::FtraceText);
        let chunk = self.opts.chunk_bytes.unwrap_or(parallel::DEFAULT_CHUNK);
        let (jobs, progress) = (self.opts.jobs, self.opts.progress.as_ref());
        let s = match sink.chunked() {
            Some(c) => parallel::parse_text(self.name, Some(map), data, jobs, chunk, c, progress),
            None => parallel::parse_text(
                self.name,
                Some(map),
                data,
                jobs,
                chunk,
                &mut parallel::InOrder(RecordsOf(&mut *sink)),
                progress,
            ),
        };
        self.text_result(&s, blank, None, host, sink)
    }

    /// The summary of a parsed text input, or why it holds no trace. `blank`: the input is
    /// only whitespace.
    fn text_result<S: InputSink + ?Sized>(
        &self,
        s: &exitscope_ftrace::ParseSummary,
        blank: bool,
        compression: Option<Compression>,
        host: HostTag,
        sink: &mut S,
    ) -> Result<Ingested, Err2> {
        if s.records == 0 && self.opts.require_records {
            let why = if blank {
                "it holds only whitespace".to_owned()
            } else if s.error_lines > 0 {
                match s.lines {
                    1 => "its only line is not an ftrace line".to_owned(),
                    n => format!("none of its {n} lines is an ftrace line"),
                }
            } else {
                match s.lines {
                    1 => "its only line is a header or comment: no events or calls (was \
                          anything recorded?)"
                        .to_owned(),
                    n => format!(
                        "its {n} lines are only headers, comments and blank lines: no events or \
                         calls (was anything recorded?)"
                    ),
                }
            };
            return Err(Err2::Ingest(self.no_trace(why)));
        }
        let summary = InputSummary {
            name: self.name.to_owned(),
            format: InputFormat::FtraceText.as_str().to_owned(),
            bytes: s.bytes,
            lines: s.lines,
            records: s.records,
            error_lines: s.error_lines,
            ignored_lines: s.ignored_lines,
            compression: compression.map(|c| c.as_str().to_owned()),
            host: host.host,
        };
        sink.end_input(&summary);
        let mut warnings: Vec<String> = host.warning.into_iter().collect();
        if s.records > 0 && s.error_lines > s.record_lines {
            warnings.push(format!(
                "{}: {} of its {} lines could not be read and only {} could; is it an ftrace \
                 trace?",
                self.name, s.error_lines, s.lines, s.record_lines
            ));
        }
        Ok(Ingested { summary, warnings })
    }
}

/// The recording host an input names, or why it names none.
#[derive(Default)]
struct HostTag {
    host: Option<exitscope_host::Fingerprint>,
    warning: Option<String>,
}

impl HostTag {
    fn warn(w: String) -> HostTag {
        HostTag { host: None, warning: Some(w) }
    }
}

/// An error from the text path: I/O (mapped to a byte offset by the caller) or final.
enum Err2 {
    Io(io::Error),
    Ingest(Error),
}

/// Fill `buf` as far as the input goes.
fn read_up_to(rdr: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match rdr.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The records half of an [`InputSink`], as a sized [`RecordSink`] for the parsers.
struct RecordsOf<'s, S: ?Sized>(&'s mut S);

impl<S: InputSink + ?Sized> RecordSink for RecordsOf<'_, S> {
    fn record(&mut self, rec: &exitscope_model::Record<'_>) -> exitscope_model::Flow {
        self.0.record(rec)
    }
    fn diagnostic(&mut self, diag: exitscope_model::Diagnostic) -> exitscope_model::Flow {
        self.0.diagnostic(diag)
    }
    fn text_use(&self, event: &str) -> exitscope_model::TextUse {
        self.0.text_use(event)
    }
    fn wants_text(&self, rec: &exitscope_model::Record<'_>) -> bool {
        self.0.wants_text(rec)
    }
}

#[cfg(test)]
mod tests;
