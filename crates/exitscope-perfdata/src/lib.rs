//! # Brief overview
//!
//! A reader for perf's `perf.data` files holding tracepoint samples: `perf record -e
//! 'kvm:*'` output, `perf kvm stat record`'s `perf.data.guest`, in file or pipe mode
//! (`perf record -o -`), plain or compressed (`perf record -z`). Like
//! [`exitscope_tracedat`], it works on a `&[u8]` (typically a memory map owned by the
//! caller), checks every offset and length read from the file before using it, and pushes
//! [`Record`]s into an [`exitscope_model::RecordSink`] in timestamp order, so every
//! analysis that reads ftrace text or trace.dat reads perf.data unchanged:
//!
//! - each tracepoint sample becomes a [`RecordKind::Event`] named by its event (`kvm_exit`)
//!   whose `text` is the kernel's rendering of the event's `print fmt` (`vcpu 0 reason
//!   CPUID rip 0x...`). The formats come from the file's tracing-data section, which holds
//!   the same format files as a trace.dat, and are parsed and rendered by
//!   [`exitscope_tracedat`] ([`exitscope_tracedat::parse_tracing_data`],
//!   [`exitscope_tracedat::Header::render_event`]): the text is identical to what trace.dat,
//!   `perf script` and the kernel print;
//! - timestamp, CPU and thread id come from the sample (`PERF_SAMPLE_TIME`, `CPU`, `TID`),
//!   the command name from perf's `COMM` records (else the tracing data's saved_cmdlines).
//!   The vCPU id is the one `kvm_entry`/`kvm_exit` print, the field `perf kvm stat` reads;
//! - `PERF_RECORD_LOST` and `LOST_SAMPLES` become [`RecordKind::Lost`].
//!
//! Samples of other events (cycles, ...) are skipped and counted; records are ordered by a
//! stable sort on their timestamps (perf's own order: it sorts the same way, round by round).
//!
//! ```no_run
//! use exitscope_model::{Flow, Record, RecordSink};
//! struct Count(u64);
//! impl RecordSink for Count {
//!     fn record(&mut self, _rec: &Record<'_>) -> Flow { self.0 += 1; Flow::Continue }
//! }
//! let bytes = std::fs::read("perf.data.guest").unwrap();
//! assert!(exitscope_perfdata::is_perf_data(&bytes));
//! let mut sink = Count(0);
//! let summary = exitscope_perfdata::read(&bytes, "perf.data.guest", &mut sink).unwrap();
//! assert_eq!(summary.records, sink.0);
//! for (event, n) in &summary.event_counts {
//!     println!("{event}: {n}"); // the counts `perf script` prints per event
//! }
//! ```
//!
//! Truncated or corrupt files give an [`Error`] naming the byte offset and what was
//! expected (`byte 0x1f40: truncated record (data section ends): need 96 bytes, 40
//! available`), never a panic; a sample that cannot be decoded is a
//! [`exitscope_model::Diagnostic`] and the reader goes on with the next record.
//!
//! ## Why a reader of our own
//!
//! Two crates read perf.data; both were built and tried on this project's 2-core build
//! machine (December 2025):
//!
//! - `linux-perf-data` 0.13 (mstange) parses the header, attrs, feature sections (the
//!   tracing data as raw bytes), samples (with `linux-perf-event-reader`), sorts rounds and
//!   decompresses. It brings 25 crates (9 new to this workspace: `prost` + `prost-derive`
//!   for simpleperf files, `itertools`, `bytes`, `byteorder`, ...), ~38 s of CPU on top of
//!   what the workspace already builds (1 min 52 s wall alone, cold). Its errors say what
//!   but not where: a perf.data cut inside its data section gives `I/O error: failed to fill
//!   whole buffer`. It allocates each feature section by the size the file declares before
//!   checking it: a file whose tracing-data size field is corrupt (2^62) aborts the process
//!   (`memory allocation of 4611686018427387904 bytes failed`), where this reader says
//!   `byte 0x92d0: truncated tracing data feature section: need 4611686018427387904 bytes,
//!   17661 available`. It reads through `Read + Seek`, copying every record.
//! - `tracepoint_perf` 0.5 (Microsoft) is light (5 crates with `tracepoint_decode`,
//!   `eventheader_types`, `libc`; ~6 s of CPU cold) and can also write perf.data, but reads
//!   only from a path (`PerfDataFileReader::open_file(&str)`), not from bytes the caller
//!   holds (stdin, a memory map), returns `io::Error`s without offsets, and formats
//!   tracepoint fields itself rather than by the kernel's `print fmt`, so exitscope-tracedat
//!   would render them anyway.
//!
//! What exitscope needs from perf.data is small: the header, the attrs, five feature
//! sections and seven record types (about 1,400 lines here with docs and tests), while
//! everything tracepoint-specific is exitscope-tracedat's and compression is `zstd`,
//! already in the tree. A reader of our
//! own keeps the project's error contract (byte offset and what was expected, never a
//! panic; fuzzed by `fuzz/fuzz_targets/perfdata.rs`), decodes from the caller's bytes
//! without copying, and adds no dependency. The fixtures' writer is the test tree's
//! (`tests/common/writer.rs`), checked by perf itself reading what it writes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
// Offsets and sizes read from the file are u64 and checked against the (usize) file length
// before being used as indices; record sizes are u16.
#![allow(clippy::cast_possible_truncation)]

mod cursor;
mod header;
mod records;

use std::collections::HashMap;

use exitscope_model::{Diagnostic, Flow, Record, RecordKind, RecordSink, Severity, Task, TextUse};
use exitscope_tracedat::{EventFormat, KvmExitDecoder};

pub use header::Attr;

use crate::header::{FileHeader, TYPE_TRACEPOINT, feature};
use crate::records::{Entry, Walker, kind, parse_sample, trailer_cpu};

/// Why a perf.data file could not be read. Offsets are absolute byte offsets in the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with perf's magic.
    #[error("byte 0x0: not a perf.data file: expected the magic \"PERFILE2\"")]
    NotPerfData,
    /// The file (or a section) ends before a structure it declares.
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
        /// What is wrong and what was expected.
        what: String,
    },
    /// The tracing-data section (event formats) could not be read.
    #[error("byte {offset:#x}: tracing data: {source}")]
    TracingData {
        /// Where the tracing data starts.
        offset: u64,
        /// What the format parser said (with its own absolute offset).
        source: exitscope_tracedat::Error,
    },
    /// Compressed records (`perf record -z`) did not decompress.
    #[error("byte {offset:#x}: zstd decompression of a compressed record failed: {msg}")]
    Decompress {
        /// The compressed record.
        offset: u64,
        /// Library message.
        msg: String,
    },
}

impl Error {
    /// The byte offset the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            Error::NotPerfData => 0,
            Error::Truncated { offset, .. }
            | Error::Malformed { offset, .. }
            | Error::TracingData { offset, .. }
            | Error::Decompress { offset, .. } => *offset,
        }
    }
}

/// Whether `bytes` starts with perf.data's magic (`PERFILE2`, or `2ELIFREP` when written
/// on a big-endian machine), file or pipe mode.
pub fn is_perf_data(bytes: &[u8]) -> bool {
    bytes.starts_with(header::MAGIC_LE) || bytes.starts_with(header::MAGIC_BE)
}

/// What [`read`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pipe mode (`perf record -o -`).
    pub pipe: bool,
    /// `PERF_RECORD_COMPRESSED` records decompressed (`perf record -z`).
    pub compressed_records: u64,
    /// CPUs online on the recording machine (`HEADER_NRCPUS`), else the highest CPU seen
    /// plus one.
    pub cpus: u32,
    /// perf version that wrote the file (`HEADER_VERSION`).
    pub perf_version: Option<String>,
    /// Kernel release of the recording machine (`HEADER_OSRELEASE`).
    pub os_release: Option<String>,
    /// CPU id string (`GenuineIntel,6,85,7`): `perf kvm stat` picks VMX or SVM from it.
    pub cpuid: Option<String>,
    /// Tracepoint events recorded (`kvm:kvm_exit`), in attr order.
    pub events: Vec<String>,
    /// Records emitted to the sink (events and lost markers).
    pub records: u64,
    /// Per event name (`kvm_exit`), how many records: sorted by name.
    pub event_counts: Vec<(String, u64)>,
    /// `PERF_RECORD_LOST` / `LOST_SAMPLES` records.
    pub lost_markers: u64,
    /// Sum of the events they say were lost.
    pub lost_events: u64,
    /// Tracepoint samples whose event id has no format (skipped, reported as diagnostics).
    pub unknown_events: u64,
    /// Samples not emitted: of non-tracepoint events, without raw data, or unreadable.
    pub skipped_samples: u64,
    /// First timestamp (ns, perf's clock).
    pub first_ts: Option<u64>,
    /// Last timestamp (ns).
    pub last_ts: Option<u64>,
    /// Whether the sink asked to stop early.
    pub stopped: bool,
}

/// A parsed perf.data: header, attrs, event formats, and an index of its records in
/// timestamp order.
pub struct PerfData<'a> {
    file: &'a [u8],
    big_endian: bool,
    pipe: bool,
    attrs: Vec<Attr>,
    index: records::AttrIndex,
    /// The tracing data (event formats), when the file has tracepoint events.
    tracing: Option<exitscope_tracedat::Header<'a>>,
    /// Event id → index into the tracing data's formats.
    by_id: HashMap<u64, usize>,
    /// `common_type` (offset, size) in raw data.
    common_type: (usize, usize),
    common_pid: (usize, usize),
    entries: Vec<Entry>,
    decompressed: Vec<u8>,
    compressed_records: u64,
    nr_cpus: Option<u32>,
    perf_version: Option<String>,
    os_release: Option<String>,
    cpuid: Option<String>,
}

impl<'a> PerfData<'a> {
    /// Parses the header, attrs and tracing data and indexes every record (decompressing
    /// compressed ones).
    ///
    /// # Errors
    /// Any structural problem, with its byte offset.
    pub fn parse(file: &'a [u8]) -> Result<PerfData<'a>, Error> {
        let h = FileHeader::parse(file)?;
        let mut w = Walker::new(file, h.big_endian, h.attrs.clone());
        let data_end = h.data.offset.saturating_add(h.data.size);
        let file_len = file.len() as u64;
        // A file cut inside its data section: the record that runs past the end names the
        // place; one cut at a record boundary is caught after the walk.
        w.walk_file(h.data.offset, data_end.min(file_len))?;
        if data_end > file_len {
            return Err(Error::Truncated {
                offset: h.data.offset.min(file_len),
                what: "data section (the file ends before it does)",
                needed: h.data.size,
                available: file_len.saturating_sub(h.data.offset),
            });
        }
        let tracing_bytes = match w.tracing_data {
            Some(t) => Some(t),
            None => {
                let s = h.features.iter().find(|(b, _)| *b == feature::TRACING_DATA);
                match (s, h.feature(file, feature::TRACING_DATA)?) {
                    (Some((_, s)), Some(b)) => Some((s.offset, b)),
                    _ => None,
                }
            }
        };
        let has_tracepoints = w.attrs.iter().any(|a| a.kind == TYPE_TRACEPOINT);
        let tracing = match tracing_bytes {
            Some((offset, b)) => Some(
                exitscope_tracedat::parse_tracing_data(b, offset)
                    .map_err(|source| Error::TracingData { offset, source })?,
            ),
            None if has_tracepoints => {
                return Err(Error::Malformed {
                    offset: 0,
                    what: "the file has tracepoint events but no tracing data \
                           (HEADER_TRACING_DATA), so their payloads cannot be decoded"
                        .into(),
                });
            }
            None => None,
        };
        let mut by_id = HashMap::new();
        let (mut common_type, mut common_pid) = ((0, 2), (4, 4));
        if let Some(t) = &tracing {
            for (i, f) in t.formats.iter().enumerate() {
                by_id.insert(u64::from(f.id), i);
            }
            let find = |n: &str| t.formats.iter().find_map(|f| f.field(n));
            if let Some(f) = find("common_type") {
                common_type = (f.offset, f.size);
            }
            if let Some(f) = find("common_pid") {
                common_pid = (f.offset, f.size);
            }
        }
        let nr_cpus = match h.feature(file, feature::NRCPUS)? {
            // (available, online)
            Some(b) => b
                .get(4..8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| if h.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }),
            None => None,
        };
        let mut entries = std::mem::take(&mut w.entries);
        // Stable: records with equal timestamps stay in file order.
        entries.sort_by_key(|e| e.ts);
        Ok(PerfData {
            file,
            big_endian: h.big_endian,
            pipe: h.pipe,
            perf_version: h.feature_string(file, feature::VERSION)?,
            os_release: h.feature_string(file, feature::OSRELEASE)?,
            cpuid: h.feature_string(file, feature::CPUID)?,
            attrs: w.attrs,
            index: w.index,
            tracing,
            by_id,
            common_type,
            common_pid,
            entries,
            decompressed: w.decompressed,
            compressed_records: w.compressed_records,
            nr_cpus,
        })
    }

    /// The event attributes, in file order.
    pub fn attrs(&self) -> &[Attr] {
        &self.attrs
    }

    /// The tracing data (event formats, kallsyms, printk formats, saved_cmdlines), when the
    /// file has it.
    pub fn tracing_data(&self) -> Option<&exitscope_tracedat::Header<'a>> {
        self.tracing.as_ref()
    }

    /// The format of tracepoint event `id` (`perf_event_attr.config`, `common_type`).
    pub fn format(&self, id: u64) -> Option<&EventFormat> {
        let t = self.tracing.as_ref()?;
        t.formats.get(*self.by_id.get(&id)?)
    }

    /// `system:name` of each tracepoint attr.
    fn event_names(&self) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|a| a.kind == TYPE_TRACEPOINT)
            .map(|a| match self.format(a.config) {
                Some(f) => format!("{}:{}", f.system, f.name),
                None => format!("tracepoint {}", a.config),
            })
            .collect()
    }

    fn body(&self, e: &Entry) -> &[u8] {
        let src: &[u8] = if e.decompressed { &self.decompressed } else { self.file };
        src.get(e.at..e.at + e.len as usize).unwrap_or_default()
    }

    fn raw_uint(&self, raw: &[u8], (off, size): (usize, usize)) -> Option<u64> {
        let b = raw.get(off..off.checked_add(size)?)?;
        let mut v = 0u64;
        for i in 0..size {
            let byte = if self.tracing_big_endian() { b.get(i) } else { b.get(size - 1 - i) };
            v = (v << 8) | u64::from(*byte?);
        }
        Some(v)
    }

    fn tracing_big_endian(&self) -> bool {
        self.tracing.as_ref().is_some_and(|t| t.endian == exitscope_tracedat::Endian::Big)
    }

    /// Streams the records into `sink`; see [`read`].
    ///
    /// # Errors
    /// None today (every structural check is done by [`PerfData::parse`]); kept for
    /// symmetry with the trace.dat reader.
    pub fn read_into(
        &self,
        input_name: &str,
        sink: &mut impl RecordSink,
    ) -> Result<Summary, Error> {
        let mut sum = Summary {
            pipe: self.pipe,
            compressed_records: self.compressed_records,
            perf_version: self.perf_version.clone(),
            os_release: self.os_release.clone(),
            cpuid: self.cpuid.clone(),
            events: self.event_names(),
            ..Summary::default()
        };
        let nformats = self.tracing.as_ref().map_or(0, |t| t.formats.len());
        let mut counts = vec![0u64; nformats];
        let mut comms: HashMap<u32, String> = HashMap::new();
        let mut warned_attrs: Vec<usize> = Vec::new();
        let mut max_cpu: Option<u32> = None;
        let mut text = String::with_capacity(256);
        // Per format: how much of its text the sink reads (asked at its first sample), and
        // for a sink that only parses kvm_exit, its decoder.
        let mut text_use: Vec<Option<(TextUse, Option<KvmExitDecoder>)>> =
            (0..nformats).map(|_| None).collect();
        let diag = |offset: u64, severity, message: String| Diagnostic {
            file: input_name.to_string(),
            line: 0,
            column: offset,
            severity,
            message,
        };
        for e in &self.entries {
            let body = self.body(e);
            let attr = self.index.find(&self.attrs, e.kind, body, self.big_endian);
            let (rec, flow) = match e.kind {
                kind::COMM => {
                    // u32 pid, u32 tid, NUL-terminated comm, then the sample_id trailer.
                    let tid = body.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(|b| {
                        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
                    });
                    let name = body.get(8..).unwrap_or_default();
                    let name = name.split(|&b| b == 0).next().unwrap_or_default();
                    if let Some(tid) = tid {
                        comms.insert(tid, String::from_utf8_lossy(name).into_owned());
                    }
                    continue;
                }
                kind::LOST | kind::LOST_SAMPLES => {
                    let at = if e.kind == kind::LOST { 8 } else { 0 };
                    let count = body.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                    let count = count.map(|b| {
                        if self.big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) }
                    });
                    sum.lost_markers += 1;
                    sum.lost_events = sum.lost_events.saturating_add(count.unwrap_or(0));
                    let cpu = attr.and_then(|a| trailer_cpu(body, self.big_endian, a));
                    let r = Record {
                        line: 0,
                        cpu,
                        task: None,
                        timestamp: e.has_ts.then_some(e.ts),
                        kind: RecordKind::Lost { count },
                    };
                    (r.timestamp, sink.record(&r))
                }
                _ => {
                    let Some(attr) = attr else {
                        sum.skipped_samples += 1;
                        let d = diag(
                            e.offset,
                            Severity::Error,
                            "sample with an id no event attribute declares skipped".into(),
                        );
                        if sink.diagnostic(d) == Flow::Stop {
                            sum.stopped = true;
                            break;
                        }
                        continue;
                    };
                    let ai = self.attrs.iter().position(|a| std::ptr::eq(a, attr)).unwrap_or(0);
                    let s = match parse_sample(body, e.offset + 8, self.big_endian, attr) {
                        Ok(s) => s,
                        Err(err) => {
                            sum.skipped_samples += 1;
                            let d =
                                diag(e.offset, Severity::Error, format!("sample skipped: {err}"));
                            if sink.diagnostic(d) == Flow::Stop {
                                sum.stopped = true;
                                break;
                            }
                            continue;
                        }
                    };
                    let raw = s.raw.filter(|_| attr.kind == TYPE_TRACEPOINT);
                    let Some(raw) = raw else {
                        sum.skipped_samples += 1;
                        if !warned_attrs.contains(&ai) {
                            warned_attrs.push(ai);
                            let d = diag(
                                e.offset,
                                Severity::Warning,
                                format!(
                                    "samples of event attr {ai} (type {}, config {}) skipped: only tracepoint samples with raw data are read",
                                    attr.kind, attr.config
                                ),
                            );
                            if sink.diagnostic(d) == Flow::Stop {
                                sum.stopped = true;
                                break;
                            }
                        }
                        continue;
                    };
                    let id = self.raw_uint(raw, self.common_type);
                    let fi = id.and_then(|id| self.by_id.get(&id).copied());
                    let (Some(fi), Some(t)) = (fi, self.tracing.as_ref()) else {
                        sum.unknown_events += 1;
                        let d = diag(
                            e.offset,
                            Severity::Warning,
                            format!(
                                "sample with unknown event id {} skipped",
                                id.map_or("(none)".to_string(), |i| i.to_string())
                            ),
                        );
                        if sink.diagnostic(d) == Flow::Stop {
                            sum.stopped = true;
                            break;
                        }
                        continue;
                    };
                    let Some(f) = t.formats.get(fi) else { continue };
                    if let Some(c) = counts.get_mut(fi) {
                        *c += 1;
                    }
                    let tid =
                        s.tid.or_else(|| self.raw_uint(raw, self.common_pid).map(|p| p as u32));
                    let task = tid.map(|pid| {
                        let comm = comms
                            .get(&pid)
                            .map(String::as_str)
                            .or_else(|| t.cmdlines.comm(pid))
                            .unwrap_or("<...>");
                        // The sample's pid is the thread group; without TID samples the
                        // raw common_pid is the thread alone.
                        Task { comm, pid, tgid: s.tid.and(s.pid) }
                    });
                    if let Some(c) = s.cpu {
                        max_cpu = Some(max_cpu.map_or(c, |m| m.max(c)));
                    }
                    text.clear();
                    let mut r = Record {
                        line: 0,
                        cpu: s.cpu,
                        task,
                        timestamp: s.time,
                        kind: RecordKind::Event { name: &f.name, text: "", exit: None },
                    };
                    // Rendering is most of the work per sample: only for sinks that read it,
                    // and a kvm_exit decoded from its fields for sinks that only parse it.
                    let slot = text_use.get_mut(fi);
                    let (use_, decoder) = match slot {
                        Some(u) => {
                            let (use_, d) = u.get_or_insert_with(|| {
                                let use_ = sink.text_use(&f.name);
                                let d = (use_ == TextUse::Parsed)
                                    .then(|| KvmExitDecoder::new(f))
                                    .flatten();
                                (use_, d)
                            });
                            (*use_, d.as_mut())
                        }
                        None => (TextUse::Always, None),
                    };
                    let exit = decoder.and_then(|d| d.decode(t, f, raw));
                    r.kind = RecordKind::Event { name: &f.name, text: "", exit: exit.as_ref() };
                    let render = match use_ {
                        TextUse::Always => true,
                        TextUse::Parsed => exit.is_none() || sink.wants_text(&r),
                        TextUse::Sometimes => sink.wants_text(&r),
                        TextUse::Never => false,
                    };
                    if render {
                        t.render_event(f, raw, &mut text);
                        r.kind =
                            RecordKind::Event { name: &f.name, text: &text, exit: exit.as_ref() };
                    }
                    (s.time, sink.record(&r))
                }
            };
            sum.records += 1;
            if let Some(ts) = rec {
                sum.first_ts.get_or_insert(ts);
                sum.last_ts = Some(ts);
            }
            if flow == Flow::Stop {
                sum.stopped = true;
                break;
            }
        }
        // (A corrupt sample can name CPU u32::MAX.)
        sum.cpus = self.nr_cpus.or(max_cpu.map(|c| c.saturating_add(1))).unwrap_or(0);
        if let Some(t) = &self.tracing {
            let mut ec: Vec<(String, u64)> = t
                .formats
                .iter()
                .zip(&counts)
                .filter(|(_, n)| **n > 0)
                .map(|(f, n)| (f.name.clone(), *n))
                .collect();
            ec.sort();
            sum.event_counts = ec;
        }
        Ok(sum)
    }
}

/// Reads a whole perf.data and pushes its tracepoint samples, in timestamp order, into
/// `sink`. `input_name` names the file in diagnostics.
///
/// # Errors
/// Any structural problem of the file, with its byte offset. Samples that cannot be decoded
/// (unknown event id, a body shorter than its sample_type says) are diagnostics, not errors.
pub fn read(bytes: &[u8], input_name: &str, sink: &mut impl RecordSink) -> Result<Summary, Error> {
    PerfData::parse(bytes)?.read_into(input_name, sink)
}
