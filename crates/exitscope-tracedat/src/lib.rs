//! # Brief overview
//!
//! A native reader for trace-cmd's binary `trace.dat` (file versions 6 and 7), in the style
//! of gimli-rs/object: it works on a `&[u8]` (typically a memory map owned by the caller),
//! checks every offset and length read from the file before using it, and is generic over
//! the file's endianness and kernel `long` size. Version 7 sections and per-CPU data
//! compressed with zstd or zlib are decompressed (data once per CPU).
//!
//! Records of all CPUs (and all `-B` instances) are merged in timestamp order and pushed
//! into an [`exitscope_model::RecordSink`], so the analyses that consume ftrace text work
//! unchanged: `ftrace:funcgraph_entry`/`funcgraph_exit` become
//! [`RecordKind::Entry`](exitscope_model::RecordKind::Entry)/[`RecordKind::Exit`](exitscope_model::RecordKind::Exit), every other event becomes a
//! [`RecordKind::Event`](exitscope_model::RecordKind::Event) whose `text` is the kernel-style rendering of its `print fmt`
//! (for example `pio_write at 0x10 size 1 count 1 val 0x41 `), and pages with the
//! missed-events flag become [`RecordKind::Lost`](exitscope_model::RecordKind::Lost).
//!
//! ```no_run
//! use exitscope_model::{Flow, Record, RecordSink};
//! struct Count(u64);
//! impl RecordSink for Count {
//!     fn record(&mut self, _rec: &Record<'_>) -> Flow { self.0 += 1; Flow::Continue }
//! }
//! let bytes = std::fs::read("trace.dat").unwrap();
//! assert!(exitscope_tracedat::is_trace_dat(&bytes));
//! let mut sink = Count(0);
//! let summary = exitscope_tracedat::read(&bytes, "trace.dat", &mut sink).unwrap();
//! assert_eq!(summary.records, sink.0);
//! ```
//!
//! [`TraceDat`] gives lower-level access (headers, formats, raw merged events) and
//! [`text::write_text`] renders a whole file as kernel-style ftrace text. The writer
//! (`write`: streaming per-CPU pages into a file, and fixture building) is behind the `write`
//! feature and is not part of the reader.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// Binary decoding reinterprets integer bits on purpose (sign extension, truncation to the
// width a printf conversion names); each such cast is intended.
#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss, clippy::cast_possible_truncation)]

mod bytes;
mod file;
mod format;
mod meta;
mod par;
mod print;
mod ring;
pub mod text;
#[cfg(feature = "write")]
pub mod write;

/// exitscope's own option id: the recording host's fingerprint, `exitscope host: {json}` and
/// a NUL. Far above trace-cmd's ids (which count up from 0; 3.x ends near 25): trace-cmd
/// report skips an option it does not know and reads the file as before (it names it only
/// with `--debug`, "unknown option 17747"; `trace-cmd dump --options` lists it as unknown).
pub const HOST_OPTION: u16 = 0x4553;
/// What the data of [`HOST_OPTION`] starts with (the same text as `exitscope_host::TAG_PREFIX`).
pub const HOST_TAG_PREFIX: &str = "exitscope host: ";
/// exitscope's own option id: the process (thread group) of each recorded thread, the text
/// [`TGIDS_PREFIX`] then `pid tgid` lines (the layout of tracefs `saved_tgids`) and a NUL.
/// trace.dat records carry only the thread (`common_pid`); with this option the reader gives
/// each record's task its process ([`exitscope_model::Task::tgid`]): the VM of a vCPU thread.
/// trace-cmd skips it as it skips [`HOST_OPTION`].
pub const TGIDS_OPTION: u16 = 0x4554;
/// What the data of [`TGIDS_OPTION`] starts with.
pub const TGIDS_PREFIX: &str = "exitscope tgids:\n";

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use exitscope_model::{Func, RecordSink};

pub use bytes::Endian;
pub use file::{Buffer, Compression, CpuData, Guest, Header};
pub use format::{EventFormat, Field, FieldKind};
pub use meta::{Cmdlines, PrintkFormats, Symbols};
pub use ring::{CpuCursor, Item, PageFormat, PageHeader};

/// Why a trace.dat could not be read. Offsets are absolute byte offsets in the file (for
/// compressed data: of the compressed block).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with the trace.dat magic.
    #[error("not a trace.dat file (bad magic)")]
    NotTraceDat,
    /// A version other than 6 or 7.
    #[error("unsupported trace.dat version {0:?} (supported: 6, 7)")]
    UnsupportedVersion(String),
    /// A file kind this reader does not decode (latency-format text).
    #[error("unsupported trace.dat content: {0}")]
    Unsupported(&'static str),
    /// A compression algorithm other than none, zlib, zstd.
    #[error("unsupported compression algorithm {0:?} (supported: none, zlib, zstd)")]
    UnsupportedCompression(String),
    /// The file ends (or a section ends) before a structure it declares.
    #[error("byte {offset:#x}: truncated {what}: need {needed} bytes, {available} available")]
    Truncated {
        /// Where the structure starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A structure holds an impossible value.
    #[error("byte {offset:#x}: {what}")]
    Malformed {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A CPU's data lies (partly) outside the file: typically a file truncated while
    /// recording.
    #[error(
        "cpu {cpu}: data at byte {offset:#x} of {size} bytes runs past the end of the file ({file_len} bytes)"
    )]
    CpuData {
        /// CPU number.
        cpu: u32,
        /// Declared offset.
        offset: u64,
        /// Declared size.
        size: u64,
        /// Actual file length.
        file_len: u64,
    },
    /// A ring-buffer page or record is inconsistent.
    #[error("cpu {cpu}, page {page} (byte {offset:#x}): {what}")]
    Page {
        /// CPU number.
        cpu: u32,
        /// Page index within the CPU's data.
        page: u64,
        /// File offset (for compressed data: offset within the decompressed stream plus
        /// the stream's file offset).
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Compressed data did not decompress.
    #[error("byte {offset:#x}: {algo} decompression failed: {msg}")]
    Decompress {
        /// Where the compressed block starts.
        offset: u64,
        /// Algorithm.
        algo: &'static str,
        /// Library message.
        msg: String,
    },
}

/// Decodes the `kvm_exit` records of one event format from their fields, as [`read`] does
/// for a sink that reads only what `parse_kvm_exit` gives of them
/// ([`TextUse::Parsed`](exitscope_model::TextUse::Parsed)): only the reason is rendered, once
/// per distinct reason. For other readers of the same formats (perf.data).
#[derive(Debug)]
pub struct KvmExitDecoder {
    plan: print::ExitPlan,
    reasons: String,
    cache: print::ReasonCache,
}

impl KvmExitDecoder {
    /// A decoder for `f`'s records, when its print format has a layout the decoder knows (the
    /// kernels' kvm_exit layouts); `None` otherwise: render and parse its text then.
    pub fn new(f: &EventFormat) -> Option<KvmExitDecoder> {
        let plan = f.print.as_ref()?.kvm_exit_plan(&f.fields)?;
        Some(KvmExitDecoder { plan, reasons: String::new(), cache: print::ReasonCache::default() })
    }

    /// One record of `f` (the format this decoder was made for; `h` holds the file's
    /// endianness, long size and symbols): what `parse_kvm_exit` reads from its rendered
    /// text, or `None` where that text must be rendered and parsed instead.
    pub fn decode(
        &mut self,
        h: &Header<'_>,
        f: &EventFormat,
        payload: &[u8],
    ) -> Option<exitscope_model::exit::KvmExit<'_>> {
        // The reasons are kept for the next records; a few distinct ones normally.
        if self.reasons.len() > 1 << 16 {
            self.reasons.clear();
            self.cache.clear();
        }
        let v = h.decode_kvm_exit(f, &self.plan, payload, &mut self.reasons, &mut self.cache)?;
        Some(v.exit(&self.reasons))
    }
}

/// Whether `bytes` starts with the trace.dat magic (`\x17\x08\x44tracing`).
pub fn is_trace_dat(bytes: &[u8]) -> bool {
    bytes.starts_with(file::MAGIC)
}

/// What [`read`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// File version (6 or 7).
    pub version: u32,
    /// Compression algorithm name (`none`, `zlib`, `zstd`).
    pub compression: &'static str,
    /// Number of CPUs of the traced machine.
    pub cpus: u32,
    /// Names of the buffers read (`""` = top level).
    pub buffers: Vec<String>,
    /// Records emitted to the sink (entries, exits, events, lost markers).
    pub records: u64,
    /// Per event name (`kvm_exit`, `funcgraph_entry`), how many records: sorted by name.
    pub event_counts: Vec<(String, u64)>,
    /// Pages flagged with missed events.
    pub lost_markers: u64,
    /// Sum of the missed-event counts the kernel stored.
    pub lost_events: u64,
    /// Records whose event id has no format (skipped, reported as diagnostics).
    pub unknown_events: u64,
    /// First and last timestamp (ns).
    pub first_ts: Option<u64>,
    /// Last timestamp (ns).
    pub last_ts: Option<u64>,
    /// Whether the sink asked to stop early.
    pub stopped: bool,
    /// The recording host's tag (`exitscope host: {json}`) from the
    /// [`HOST_OPTION`] option, as written.
    pub host_tag: Option<String>,
}

struct Stream<'a> {
    buffer: usize,
    cpu: u32,
    file_offset: u64,
    /// The pages; in a [`TraceDat::parse_lazy`] trace, a compressed stream's chunk table and
    /// chunks as stored.
    data: Cow<'a, [u8]>,
    page_size: usize,
    compressed: bool,
    /// Whether `data` is still compressed (`chunks` locates its chunks).
    lazy: bool,
    /// The chunks of a lazy compressed stream (up to where its table breaks).
    chunks: Vec<par::Chunk>,
    /// Where the chunk table of a lazy compressed stream is broken.
    chunk_error: Option<Error>,
}

impl Stream<'_> {
    /// The decompressed pages (nothing for a lazy compressed stream).
    fn pages(&self) -> &[u8] {
        if self.lazy { &[] } else { &self.data }
    }
}

/// Field indices of a function-graph event.
#[derive(Clone, Copy, Debug, Default)]
struct GraphFields {
    func: usize,
    depth: usize,
    calltime: Option<usize>,
    rettime: Option<usize>,
}

/// How an event id is handled.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Unknown,
    Event(u32),
    Entry(u32, GraphFields),
    Exit(u32, GraphFields),
}

/// A parsed trace.dat: metadata plus per-CPU page streams (decompressed when needed).
pub struct TraceDat<'a> {
    /// Everything but the records.
    pub header: Header<'a>,
    streams: Vec<Stream<'a>>,
    /// Event id → index into `kinds` (`u32::MAX`: no format).
    by_id: Vec<u32>,
    /// Handling of each format, parallel to `header.formats`.
    kinds: Vec<Kind>,
    common: Common,
}

/// Offsets and sizes of the common fields (the same in every format of a file; taken
/// from the formats because PREEMPT_RT kernels add fields).
#[derive(Clone, Copy, Debug)]
struct Common {
    type_: (usize, usize),
    pid: (usize, usize),
    flags: Option<usize>,
    preempt: Option<usize>,
}

/// One record of the merged stream.
#[derive(Clone, Copy, Debug)]
pub struct Event<'t> {
    /// Timestamp in nanoseconds (after TSC2NSEC / OFFSET).
    pub ts: u64,
    /// CPU it was recorded on.
    pub cpu: u32,
    /// Index of the stream it came from (for [`Merge::peek_stream`]).
    pub stream: usize,
    /// Raw payload (common fields first).
    pub payload: &'t [u8],
    /// Byte offset of the payload (in the file for uncompressed data).
    pub offset: u64,
}

/// An item of the merged stream.
#[derive(Clone, Copy, Debug)]
pub enum Merged<'t> {
    /// A record.
    Event(Event<'t>),
    /// Records were lost on `cpu` before `ts`.
    Lost {
        /// CPU.
        cpu: u32,
        /// Timestamp (ns) of the page after the gap.
        ts: u64,
        /// Count when known.
        count: Option<u64>,
    },
}

/// A decoded function-graph record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Graph {
    /// `funcgraph_entry`.
    Entry {
        /// Function address.
        func: u64,
        /// Depth.
        depth: u32,
    },
    /// `funcgraph_exit`.
    Exit {
        /// Function address.
        func: u64,
        /// Depth.
        depth: u32,
        /// `rettime - calltime` in ns.
        duration: Option<u64>,
    },
}

impl<'a> TraceDat<'a> {
    /// Parses the metadata and locates (and, in compressed v7 files, decompresses) every
    /// CPU's data.
    pub fn parse(data: &'a [u8]) -> Result<TraceDat<'a>, Error> {
        Self::parse_with(data, false, None)
    }

    /// Like [`TraceDat::parse`], but leaves compressed CPU data compressed: only
    /// [`TraceDat::read_into`] reads such a trace (it decompresses chunk by chunk); its
    /// [`TraceDat::merge`] sees no compressed CPU's records.
    pub fn parse_lazy(data: &'a [u8]) -> Result<TraceDat<'a>, Error> {
        Self::parse_with(data, true, None)
    }

    /// `release`: see [`ReadOptions::release`] (the chunk tables of a lazy trace are read
    /// through the whole file).
    fn parse_with(
        data: &'a [u8],
        lazy: bool,
        release: Option<&(dyn Fn(usize, usize) + Sync)>,
    ) -> Result<TraceDat<'a>, Error> {
        let header = Header::parse(data)?;
        if header.latency && header.buffers.iter().all(|b| b.cpus.iter().all(|c| c.size == 0)) {
            return Err(Error::Unsupported(
                "latency-format trace text (trace-cmd record with a latency tracer)",
            ));
        }
        let mut streams = Vec::new();
        for (bi, b) in header.buffers.iter().enumerate() {
            for c in &b.cpus {
                if c.size == 0 {
                    continue;
                }
                let file_len = data.len() as u64;
                let cpu_err =
                    Error::CpuData { cpu: c.cpu, offset: c.offset, size: c.size, file_len };
                let end = c.offset.checked_add(c.size).filter(|&e| e <= file_len).ok_or(cpu_err)?;
                // Compressed streams: the size trace-cmd 3.1 stores excludes the leading u32
                // chunk count, so allow those 4 bytes when the file has them.
                let end = if b.compressed { end.saturating_add(4).min(file_len) } else { end };
                let range = data.get(c.offset as usize..end as usize).unwrap_or_default();
                let page_size = b.page_size as usize;
                if page_size < 8 + header.long_size {
                    return Err(Error::Malformed {
                        offset: c.offset,
                        what: format!("page size {page_size} is too small"),
                    });
                }
                streams.push(Stream {
                    buffer: bi,
                    cpu: c.cpu,
                    file_offset: c.offset,
                    data: Cow::Borrowed(range),
                    page_size,
                    compressed: b.compressed,
                    lazy: lazy && b.compressed,
                    chunks: Vec::new(),
                    chunk_error: None,
                });
            }
        }
        if lazy {
            for s in &mut streams {
                if s.lazy {
                    (s.chunks, s.chunk_error) =
                        par::chunk_table(&s.data, s.file_offset, header.endian, release);
                }
            }
        } else {
            decompress_streams(&mut streams, header.compression, header.endian)?;
        }
        let mut by_id = vec![u32::MAX; 1 << 16];
        let mut kinds = Vec::with_capacity(header.formats.len());
        for (i, f) in header.formats.iter().enumerate() {
            let i = i as u32;
            let graph = |f: &EventFormat| -> Option<GraphFields> {
                let idx = |n: &str| f.fields.iter().position(|x| x.name == n);
                Some(GraphFields {
                    func: idx("func")?,
                    depth: idx("depth")?,
                    calltime: idx("calltime"),
                    rettime: idx("rettime"),
                })
            };
            let k = match (f.system.as_str(), f.name.as_str()) {
                ("ftrace", "funcgraph_entry" | "fgraph_retaddr_entry") => {
                    graph(f).map_or(Kind::Event(i), |g| Kind::Entry(i, g))
                }
                ("ftrace", "funcgraph_exit") => {
                    graph(f).map_or(Kind::Event(i), |g| Kind::Exit(i, g))
                }
                _ => Kind::Event(i),
            };
            kinds.push(k);
            if let Some(slot) = by_id.get_mut(usize::from(f.id)) {
                *slot = i;
            }
        }
        let find =
            |n: &str| header.formats.iter().find_map(|f| f.field(n)).map(|f| (f.offset, f.size));
        let common = Common {
            type_: find("common_type").unwrap_or((0, 2)),
            pid: find("common_pid").unwrap_or((4, 4)),
            flags: find("common_flags").map(|f| f.0),
            preempt: find("common_preempt_count").map(|f| f.0),
        };
        Ok(TraceDat { header, streams, by_id, kinds, common })
    }

    /// The merged record stream.
    pub fn merge(&self) -> Result<Merge<'_, 'a>, Error> {
        let mut cursors = Vec::with_capacity(self.streams.len());
        for s in &self.streams {
            let mut c = ring::CpuCursor::new(
                s.cpu,
                s.file_offset,
                s.page_size,
                self.header.long_size,
                self.header.endian,
            );
            let first = c.next_item(s.pages())?;
            cursors.push((c, first));
        }
        let mut heap = BinaryHeap::new();
        if cursors.len() > HEAP_STREAMS {
            for (i, (_, it)) in cursors.iter().enumerate() {
                if let Some(it) = it {
                    heap.push(Reverse((it.ts(), i)));
                }
            }
        }
        Ok(Merge { trace: self, cursors, heap })
    }

    /// Whether the first records of any CPU (up to `per_stream` each) include
    /// function-graph records: a cheap test for "this is a function_graph trace".
    pub fn has_graph_records(&self, per_stream: usize) -> Result<bool, Error> {
        for s in &self.streams {
            let mut c = ring::CpuCursor::new(
                s.cpu,
                s.file_offset,
                s.page_size,
                self.header.long_size,
                self.header.endian,
            );
            for _ in 0..per_stream {
                match c.next_item(s.pages())? {
                    None => break,
                    Some(Item::Lost { .. }) => {}
                    Some(Item::Record { start, len, .. }) => {
                        let p = s.data.get(start..start + len).unwrap_or_default();
                        if matches!(self.kind(p).1, Kind::Entry(..) | Kind::Exit(..)) {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Converts a raw ring-buffer timestamp to nanoseconds.
    fn ns(&self, stream: usize, ts: u64) -> u64 {
        let mut t = ts;
        if let (Some((mult, shift)), Some(s)) = (self.header.tsc2nsec, self.streams.get(stream))
            && self.header.buffers.get(s.buffer).is_some_and(|b| b.clock == "x86-tsc")
        {
            t = ((u128::from(ts) * u128::from(mult)) >> shift) as u64;
        }
        t.wrapping_add_signed(self.header.ts_offset)
    }

    fn kind(&self, payload: &[u8]) -> (u16, Kind) {
        let (off, size) = self.common.type_;
        let id = bytes::read_uint(payload, off, size, self.header.endian).unwrap_or(0) as u16;
        let k = self.by_id.get(usize::from(id)).and_then(|&i| self.kinds.get(i as usize));
        (id, k.copied().unwrap_or(Kind::Unknown))
    }

    /// Index in `header.formats` of a record's format, `None` for an unknown id.
    pub fn format_index(&self, payload: &[u8]) -> Option<usize> {
        match self.kind(payload).1 {
            Kind::Unknown => None,
            Kind::Event(i) | Kind::Entry(i, _) | Kind::Exit(i, _) => Some(i as usize),
        }
    }

    /// The event format of a record, `None` for an unknown id.
    pub fn format_of(&self, payload: &[u8]) -> Option<&EventFormat> {
        match self.kind(payload).1 {
            Kind::Unknown => None,
            Kind::Event(i) | Kind::Entry(i, _) | Kind::Exit(i, _) => {
                self.header.formats.get(i as usize)
            }
        }
    }

    /// Integer field `name` of a record, read by its declared offset, size and
    /// signedness (`exit_reason`, `guest_rip`, `vcpu_id`, ...).
    pub fn field_int(&self, payload: &[u8], name: &str) -> Option<i64> {
        self.format_of(payload)?.field(name)?.int(payload, self.header.endian)
    }

    /// String field `name` of a record (char array or `__data_loc` string), lossily decoded.
    pub fn field_str<'p>(&self, payload: &'p [u8], name: &str) -> Option<Cow<'p, str>> {
        let f = self.format_of(payload)?.field(name)?;
        f.str(payload, self.header.endian).map(String::from_utf8_lossy)
    }

    /// `common_pid` of a record.
    pub fn pid(&self, payload: &[u8]) -> i32 {
        let (off, size) = self.common.pid;
        bytes::read_uint(payload, off, size, self.header.endian).unwrap_or(0) as u32 as i32
    }

    /// `common_flags` and `common_preempt_count` of a record.
    pub fn flags(&self, payload: &[u8]) -> (u8, u8) {
        let at = |o: Option<usize>| o.and_then(|o| payload.get(o)).copied().unwrap_or(0);
        (at(self.common.flags), at(self.common.preempt))
    }

    /// Decodes a function-graph record, `None` for other events.
    pub fn graph(&self, payload: &[u8]) -> Option<Graph> {
        let e = self.header.endian;
        let (k, g) = match self.kind(payload).1 {
            Kind::Entry(i, g) => (i, g),
            Kind::Exit(i, g) => (i, g),
            _ => return None,
        };
        let f = self.header.formats.get(k as usize)?;
        let int = |i: usize| f.fields.get(i).and_then(|x| x.int(payload, e));
        let func = int(g.func)? as u64;
        let depth = int(g.depth)? as u32;
        Some(match self.kind(payload).1 {
            Kind::Entry(..) => Graph::Entry { func, depth },
            _ => {
                let ct = g.calltime.and_then(int);
                let rt = g.rettime.and_then(int);
                let duration = ct.zip(rt).map(|(c, r)| (r as u64).wrapping_sub(c as u64));
                Graph::Exit { func, depth, duration }
            }
        })
    }

    /// Renders the event's arguments as the kernel prints them after `name: `, into `out`
    /// (appending). Falls back to `field=value` pairs when the print fmt is not understood.
    pub fn render(&self, payload: &[u8], out: &mut String) {
        if let Some(f) = self.format_of(payload) {
            self.header.render_event(f, payload, out);
        }
    }

    /// The function at `addr` (kallsyms), or its hex address written into `buf`.
    pub fn func<'s>(&'s self, addr: u64, buf: &'s mut String) -> Func<'s> {
        match self.header.symbols.lookup(addr) {
            Some((n, m, _)) => Func::new(n, m),
            None => {
                use std::fmt::Write as _;
                buf.clear();
                let _ = write!(buf, "0x{addr:x}");
                Func::new(buf, None)
            }
        }
    }

    /// Writes `%ps` of a kernel address into `out`.
    pub fn write_func(&self, addr: u64, out: &mut String) {
        self.header.symbols.write_sym(addr, false, out);
    }

    /// Streams this trace into `sink`; see [`read`].
    pub fn read_into(
        &self,
        input_name: &str,
        sink: &mut impl RecordSink,
    ) -> Result<Summary, Error> {
        self.read_jobs(input_name, sink, &ReadOptions::default())
    }

    /// Like [`TraceDat::read_into`], with the records decoded as `opts` says; the sink sees
    /// exactly what it sees with one job.
    pub fn read_into_with(
        &self,
        input_name: &str,
        sink: &mut impl RecordSink,
        opts: &ReadOptions<'_>,
    ) -> Result<Summary, Error> {
        self.read_jobs(input_name, sink, opts)
    }
}

impl Header<'_> {
    /// Renders a record of event `f` (its raw payload, common fields first) as the kernel
    /// prints it after `name: `, into `out` (appending): the `print fmt` with this file's
    /// endianness, long size, kallsyms and printk formats. Falls back to `field=value` pairs
    /// when the print fmt is not understood. [`TraceDat::render`] and the perf.data reader
    /// both render through here, so their text is identical.
    pub fn render_event(&self, f: &EventFormat, payload: &[u8], out: &mut String) {
        let e = self.endian;
        if f.system == "ftrace"
            && (f.name == "bprint" || f.name == "bputs")
            && self.render_printk(f, payload, out)
        {
            return;
        }
        match &f.print {
            Some(p) => p.render(&self.print_ctx(f, payload), out),
            None => {
                use std::fmt::Write as _;
                let mut first = true;
                for fl in f.fields.iter().filter(|x| !x.name.starts_with("common_")) {
                    if !first {
                        out.push(' ');
                    }
                    first = false;
                    out.push_str(&fl.name);
                    out.push('=');
                    match fl.kind {
                        FieldKind::Int => {
                            let v = fl.int(payload, e).unwrap_or(0);
                            let _ = if fl.signed {
                                write!(out, "{v}")
                            } else {
                                write!(out, "{}", v as u64)
                            };
                        }
                        _ if fl.is_char => {
                            out.push_str(&String::from_utf8_lossy(
                                fl.str(payload, e).unwrap_or_default(),
                            ));
                        }
                        _ => {
                            for (i, b) in
                                fl.bytes(payload, e).unwrap_or_default().iter().enumerate()
                            {
                                if i > 0 {
                                    out.push(',');
                                }
                                let _ = write!(out, "{b:02x}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// A `kvm_exit` record of `f` decoded by `plan` (made from `f`'s print fmt), its
    /// reason rendered into `text` (or found in `cache`, of the reasons rendered into it
    /// before); `None` where it must be rendered and parsed instead.
    pub(crate) fn decode_kvm_exit(
        &self,
        f: &EventFormat,
        plan: &print::ExitPlan,
        payload: &[u8],
        text: &mut String,
        cache: &mut print::ReasonCache,
    ) -> Option<print::ExitValues> {
        plan.decode(f.print.as_ref()?, &self.print_ctx(f, payload), text, cache)
    }

    fn print_ctx<'r>(&'r self, f: &'r EventFormat, payload: &'r [u8]) -> print::Ctx<'r> {
        print::Ctx {
            payload,
            fields: &f.fields,
            endian: self.endian,
            long_size: self.long_size,
            syms: &self.symbols,
        }
    }

    /// `trace_printk` records: `ip_sym: message`, the message from printk_formats (and,
    /// for bprint, the packed arguments). False when the format is not in the file.
    fn render_printk(&self, f: &EventFormat, payload: &[u8], out: &mut String) -> bool {
        let e = self.endian;
        let int = |n: &str| f.field(n).and_then(|x| x.int(payload, e)).map(|v| v as u64);
        let (Some(ip), Some(fmt)) = (int("ip"), int("fmt").or_else(|| int("str"))) else {
            return false;
        };
        let start = out.len();
        self.symbols.write_sym(ip, false, out);
        out.push_str(": ");
        if f.name == "bputs" {
            let Some(s) = self.printk.get(fmt) else {
                out.truncate(start);
                return false;
            };
            out.push_str(s);
        } else {
            let Some(b) = self.printk.bin(fmt) else {
                out.truncate(start);
                return false;
            };
            let buf = f.field("buf").and_then(|x| x.bytes(payload, e)).unwrap_or_default();
            b.render(buf, e, self.long_size, &self.symbols, out);
        }
        while out.ends_with('\n') {
            out.pop();
        }
        true
    }
}

/// Parses the tracing-data block of a perf.data file (the `HEADER_TRACING_DATA` feature
/// section, or the payload of a pipe's `PERF_RECORD_HEADER_TRACING_DATA`): the trace.dat v6
/// metadata (header files, event formats, kallsyms, printk formats, saved_cmdlines) without
/// CPU data. `base` is the file offset of `data`; errors name absolute offsets. Render its
/// records with [`Header::render_event`].
///
/// # Errors
/// A block that does not start with the tracing magic, or whose metadata is truncated or
/// malformed.
pub fn parse_tracing_data(data: &[u8], base: u64) -> Result<Header<'_>, Error> {
    Header::parse_tracing_data(data, base)
}

fn decompress_stream(
    algo: Compression,
    data: &[u8],
    offset: u64,
    e: Endian,
) -> Result<Vec<u8>, Error> {
    let mut c = bytes::Bytes::new(data, offset, e);
    let n = c.u32("chunk count")?;
    let mut out = Vec::new();
    let mut zstd_ctx = None;
    for _ in 0..n {
        let at = c.offset();
        let csize = c.u32("chunk compressed size")?;
        let usize_ = c.u32("chunk uncompressed size")?;
        let src = c.read_bytes(csize as usize, "compressed chunk")?;
        file::decompress(algo, src, u64::from(usize_), at, &mut out, &mut zstd_ctx)?;
    }
    Ok(out)
}

/// Decompresses the compressed streams, one CPU per thread (up to the available
/// parallelism).
fn decompress_streams(
    streams: &mut [Stream<'_>],
    algo: Compression,
    e: Endian,
) -> Result<(), Error> {
    let todo: Vec<&mut Stream<'_>> = streams.iter_mut().filter(|s| s.compressed).collect();
    if todo.is_empty() {
        return Ok(());
    }
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(todo.len()).max(1);
    let per = todo.len().div_ceil(threads);
    let mut groups: Vec<Vec<&mut Stream<'_>>> = Vec::new();
    let mut it = todo.into_iter();
    loop {
        let g: Vec<_> = it.by_ref().take(per).collect();
        if g.is_empty() {
            break;
        }
        groups.push(g);
    }
    let one = |g: Vec<&mut Stream<'_>>| -> Result<(), Error> {
        for s in g {
            let out = decompress_stream(algo, &s.data, s.file_offset, e)?;
            s.data = Cow::Owned(out);
        }
        Ok(())
    };
    if groups.len() == 1 {
        return groups.into_iter().try_for_each(one);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups.into_iter().map(|g| scope.spawn(move || one(g))).collect();
        let mut result = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::Malformed { offset: 0, what: "decompression thread panicked".into() })
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// The k-way merge of all CPU streams by timestamp (ties: lower stream index first).
pub struct Merge<'t, 'a> {
    trace: &'t TraceDat<'a>,
    cursors: Vec<(ring::CpuCursor, Option<Item>)>,
    /// Min-heap of (timestamp, stream) for machines with many CPUs; with few streams a
    /// linear scan is faster and the heap stays empty.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

/// Above this many streams the merge uses a heap instead of a linear scan.
const HEAP_STREAMS: usize = 8;

impl<'t, 'a> Merge<'t, 'a> {
    fn to_merged(&self, si: usize, item: Item) -> Merged<'t> {
        let trace: &'t TraceDat<'a> = self.trace;
        let s = trace.streams.get(si);
        let cpu = s.map_or(0, |s| s.cpu);
        match item {
            Item::Lost { ts, count } => Merged::Lost { cpu, ts: trace.ns(si, ts), count },
            Item::Record { ts, start, len } => {
                let data: &'t [u8] = s.map_or(&[][..], |s| &s.data);
                let payload = data.get(start..start + len).unwrap_or_default();
                let compressed = s.is_some_and(|s| s.compressed);
                let offset =
                    s.map_or(0, |s| s.file_offset) + if compressed { 0 } else { start as u64 };
                Merged::Event(Event { ts: trace.ns(si, ts), cpu, stream: si, payload, offset })
            }
        }
    }

    /// The next item in timestamp order, `None` at the end.
    pub fn next_event(&mut self) -> Result<Option<Merged<'t>>, Error> {
        let heap = self.cursors.len() > HEAP_STREAMS;
        let i = if heap {
            let Some(Reverse((_, i))) = self.heap.pop() else { return Ok(None) };
            i
        } else {
            let mut best: Option<(usize, u64)> = None;
            for (i, (_, it)) in self.cursors.iter().enumerate() {
                if let Some(it) = it {
                    let ts = it.ts();
                    if best.is_none_or(|(_, b)| ts < b) {
                        best = Some((i, ts));
                    }
                }
            }
            let Some((i, _)) = best else { return Ok(None) };
            i
        };
        let trace = self.trace;
        let Some((cur, slot)) = self.cursors.get_mut(i) else { return Ok(None) };
        let Some(item) = slot.take() else { return Ok(None) };
        let data: &[u8] = trace.streams.get(i).map_or(&[][..], |s| s.pages());
        *slot = cur.next_item(data)?;
        if heap && let Some(next) = slot {
            self.heap.push(Reverse((next.ts(), i)));
        }
        Ok(Some(self.to_merged(i, item)))
    }

    /// The item that will come next from stream `stream` (the same CPU), if any.
    pub fn peek_stream(&self, stream: usize) -> Option<Merged<'t>> {
        let item = self.cursors.get(stream)?.1?;
        Some(self.to_merged(stream, item))
    }
}

/// Reads a whole trace.dat and pushes its records, merged across CPUs in timestamp order,
/// into `sink`. `input_name` names the file in diagnostics.
///
/// # Errors
/// Any structural problem of the file, with its byte offset (and CPU and page for
/// ring-buffer data). Records with an unknown event id are diagnostics, not errors.
pub fn read(bytes: &[u8], input_name: &str, sink: &mut impl RecordSink) -> Result<Summary, Error> {
    read_with(bytes, input_name, sink, &ReadOptions::default())
}

/// How [`read_with`] decodes. Build with `ReadOptions::default()` and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct ReadOptions<'r> {
    /// Worker threads that decompress and decode pages (1, the default: the calling thread
    /// does everything).
    pub jobs: usize,
    /// Bytes of pages decoded as one unit (`None`: about 320 KB). Tests make units of a
    /// page or two so that every kind of record lands on a unit boundary somewhere.
    pub unit_bytes: Option<usize>,
    /// Told `(from, to)`, byte offsets in the file, once the CPU data there has been read
    /// and will not be needed again: a caller reading from a memory map hands those pages
    /// back to the kernel, so a file far larger than memory keeps only a window resident.
    /// Called from the calling thread, a few times per megabyte at most.
    pub release: Option<&'r (dyn Fn(usize, usize) + Sync)>,
}

impl Default for ReadOptions<'_> {
    fn default() -> Self {
        ReadOptions { jobs: 1, unit_bytes: None, release: None }
    }
}

impl std::fmt::Debug for ReadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("jobs", &self.jobs)
            .field("unit_bytes", &self.unit_bytes)
            .field("release", &self.release.is_some())
            .finish()
    }
}

/// [`read`] with the records decompressed and decoded on `opts.jobs` worker threads and
/// merged on the calling thread: the sink gets the same records, diagnostics and result as
/// with one job. Compressed CPU data is decompressed a few chunks at a time, so memory
/// stays a window of pages per CPU whatever the file's size.
///
/// # Errors
/// As [`read`].
pub fn read_with(
    bytes: &[u8],
    input_name: &str,
    sink: &mut impl RecordSink,
    opts: &ReadOptions<'_>,
) -> Result<Summary, Error> {
    TraceDat::parse_with(bytes, true, opts.release)?.read_jobs(input_name, sink, opts)
}
