//! Writing trace.dat files (versions 6 and 7), behind the `write` feature.
//!
//! The per-CPU data of a trace.dat is the kernel's ring-buffer sub-buffers ("pages") exactly
//! as `per_cpu/cpuN/trace_pipe_raw` hands them out, so a recorder never decodes an event:
//!
//! ```text
//!  trace_pipe_raw (cpu0) ─pages─▶ CpuSpool 0 ─┐   (raw pages, or chunks of 10 pages
//!  trace_pipe_raw (cpu1) ─pages─▶ CpuSpool 1 ─┤    compressed as trace-cmd 3.x does,
//!  ...                                        │    in a temp file: memory stays bounded)
//!  Metadata (formats, kallsyms, cmdlines,  ───┴─▶ write_file ─▶ trace.dat, in one sequential
//!            printk formats, options)                           pass (no seek: stdout works)
//! ```
//!
//! [`CpuSpool`] keeps one CPU's pages as they arrive and counts the pages that carry the
//! kernel's missed-events flag; [`write_file`] lays out the header, the metadata, every CPU's
//! data and the options once all sizes are known. [`fixture`] packs `(timestamp, payload)`
//! records into pages for test fixtures, fuzz seeds and benchmark inputs, on top of the same
//! two pieces.
//!
//! ```
//! use exitscope_tracedat::write::{CpuSpool, FileOptions, Metadata, write_file};
//! use exitscope_tracedat::{Compression, Endian, PageFormat};
//!
//! let pf = PageFormat { page_size: 4096, long_size: 8, endian: Endian::Little };
//! let mut spool = CpuSpool::new(0, std::io::Cursor::new(Vec::new()), Compression::Zstd, pf);
//! spool.push_pages(&vec![0u8; 4096]).unwrap(); // one empty page, as read from the kernel
//! let opts = FileOptions::new(7, Compression::Zstd, pf);
//! let mut file = Vec::new();
//! write_file(&mut file, &opts, &Metadata::default(), &mut [spool]).unwrap();
//! assert!(exitscope_tracedat::is_trace_dat(&file));
//! ```

pub mod fixture;

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::{Compression, Endian, PageFormat};

/// Ring-buffer pages per compressed chunk (trace-cmd's `PAGES_IN_CHUNK`).
pub const PAGES_PER_CHUNK: usize = 10;

/// Option ids this writer and its callers use (trace-cmd's `TRACECMD_OPTION_*`).
pub mod option {
    /// Per-CPU `stats` text (`CPU: N\n` then the file's content).
    pub const CPUSTAT: u16 = 2;
    /// Content of `trace_clock` (the selected clock in brackets).
    pub const TRACECLOCK: u16 = 4;
    /// `uname` string: system, node, release, machine.
    pub const UNAME: u16 = 5;
    /// Name and version of the program that wrote the file.
    pub const VERSION: u16 = 9;
    /// exitscope's own: the recording host's fingerprint (see [`crate::HOST_OPTION`]).
    pub const EXITSCOPE_HOST: u16 = crate::HOST_OPTION;
    /// exitscope's own: thread → process of the recorded threads (see [`crate::TGIDS_OPTION`]).
    pub const EXITSCOPE_TGIDS: u16 = crate::TGIDS_OPTION;
}

/// Standard `header_page` text of a 64-bit kernel with 4 KiB sub-buffers.
pub const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n";
/// Standard `header_event` text.
pub const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

/// The file's version, compression and page layout.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions {
    /// 6 or 7.
    pub version: u32,
    /// Compression of a version 7 file (version 6 files are never compressed).
    pub compression: Compression,
    /// Sub-buffer size, kernel long size and byte order of the recorded pages.
    pub pages: PageFormat,
}

impl FileOptions {
    /// Options for a file of `version` (6 or 7) holding pages of layout `pages`.
    pub fn new(version: u32, compression: Compression, pages: PageFormat) -> FileOptions {
        FileOptions { version, compression, pages }
    }
}

/// Everything a trace.dat holds besides the pages, as the kernel shows it in tracefs.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// `events/header_page`.
    pub header_page: Vec<u8>,
    /// `events/header_event`.
    pub header_event: Vec<u8>,
    /// `events/ftrace/*/format`.
    pub ftrace_formats: Vec<Vec<u8>>,
    /// Per event system, `events/<system>/*/format` of the events recorded.
    pub systems: Vec<(String, Vec<Vec<u8>>)>,
    /// `/proc/kallsyms` (may be empty).
    pub kallsyms: Vec<u8>,
    /// `printk_formats` (may be empty).
    pub printk: Vec<u8>,
    /// `saved_cmdlines` (may be empty).
    pub cmdlines: Vec<u8>,
    /// Name of the recorded instance (`""`: the top-level buffer, which is how trace-cmd
    /// presents a trace of one buffer).
    pub buffer_name: String,
    /// The trace clock the pages' timestamps use (`local`, `x86-tsc`, ...).
    pub clock: String,
    /// Further options, written as given: `(id, data)`; see [`option`].
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Default for Metadata {
    fn default() -> Metadata {
        Metadata {
            header_page: HEADER_PAGE.into(),
            header_event: HEADER_EVENT.into(),
            ftrace_formats: Vec::new(),
            systems: Vec::new(),
            kallsyms: Vec::new(),
            printk: Vec::new(),
            cmdlines: Vec::new(),
            buffer_name: String::new(),
            clock: "local".into(),
            options: Vec::new(),
        }
    }
}

/// What went through a [`CpuSpool`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStats {
    /// Pages pushed.
    pub pages: u64,
    /// Pages whose header carries the missed-events flag.
    pub missed_pages: u64,
    /// Sum of the missed-event counts the kernel stored in those pages.
    pub missed_events: u64,
    /// Flagged pages without a stored count (the kernel had no room for it).
    pub missed_unknown: u64,
}

/// One CPU's page stream on its way into a trace.dat: raw pages, or compressed chunks of
/// [`PAGES_PER_CHUNK`] pages, appended to `store` (a temp file while recording, a
/// `Cursor<Vec<u8>>` for fixtures). Only one chunk is ever held in memory.
pub struct CpuSpool<S> {
    cpu: u32,
    store: S,
    compression: Compression,
    pages: PageFormat,
    pending: Vec<u8>,
    compressed: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    chunks: u32,
    stored: u64,
    stats: PageStats,
}

impl<S: Read + Write + Seek> CpuSpool<S> {
    /// An empty spool for `cpu` writing to `store` (which must be empty and positioned at 0).
    pub fn new(cpu: u32, store: S, compression: Compression, pages: PageFormat) -> CpuSpool<S> {
        CpuSpool {
            cpu,
            store,
            compression,
            pages,
            pending: Vec::new(),
            compressed: Vec::new(),
            zstd: None,
            chunks: 0,
            stored: 0,
            stats: PageStats::default(),
        }
    }

    /// The CPU.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// What was pushed so far.
    pub fn stats(&self) -> PageStats {
        self.stats
    }

    /// Bytes in the store so far (compressed chunks with their headers, or raw pages).
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }

    /// Appends whole pages (a multiple of the page size, each starting with its header).
    ///
    /// # Errors
    /// `InvalidInput` for a length that is not a multiple of the page size; the store's
    /// write errors; a compression failure.
    pub fn push_pages(&mut self, data: &[u8]) -> io::Result<()> {
        let ps = self.pages.page_size;
        if !data.len().is_multiple_of(ps) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} bytes is not a whole number of {ps}-byte pages", data.len()),
            ));
        }
        for page in data.chunks_exact(ps) {
            self.stats.pages += 1;
            match self.pages.header(page).and_then(|h| h.missed) {
                None => {}
                Some(Some(n)) => {
                    self.stats.missed_pages += 1;
                    self.stats.missed_events += n;
                }
                Some(None) => {
                    self.stats.missed_pages += 1;
                    self.stats.missed_unknown += 1;
                }
            }
        }
        if self.compression == Compression::None {
            self.store.write_all(data)?;
            self.stored += data.len() as u64;
            return Ok(());
        }
        let chunk = ps * PAGES_PER_CHUNK;
        let mut rest = data;
        while !rest.is_empty() {
            let take = (chunk - self.pending.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() == chunk {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let endian = self.pages.endian;
        self.compressed.clear();
        match self.compression {
            Compression::None => return Ok(()),
            Compression::Zstd => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    z => z.insert(zstd::bulk::Compressor::new(3)?),
                };
                self.compressed.reserve(zstd::zstd_safe::compress_bound(self.pending.len()));
                z.compress_to_buffer(&self.pending, &mut self.compressed)?;
            }
            Compression::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(
                    std::mem::take(&mut self.compressed),
                    flate2::Compression::default(),
                );
                e.write_all(&self.pending)?;
                self.compressed = e.finish()?;
            }
        }
        let mut head = Vec::with_capacity(8);
        put_u32(&mut head, endian, len_u32(self.compressed.len())?);
        put_u32(&mut head, endian, len_u32(self.pending.len())?);
        self.store.write_all(&head)?;
        self.store.write_all(&self.compressed)?;
        self.stored += (head.len() + self.compressed.len()) as u64;
        self.chunks += 1;
        self.pending.clear();
        Ok(())
    }

    /// Size of this CPU's data in the file: the stored bytes, plus the leading chunk count
    /// when compressed; 0 for a CPU without pages.
    fn file_size(&self) -> u64 {
        match (self.stored, self.compression) {
            (0, _) => 0,
            (n, Compression::None) => n,
            (n, _) => 4 + n,
        }
    }

    /// Writes the CPU's data (chunk count first when compressed) to `out`.
    fn copy_to(&mut self, out: &mut Out<'_>) -> io::Result<()> {
        if self.stored == 0 {
            return Ok(());
        }
        if self.compression != Compression::None {
            out.u32(self.chunks)?;
        }
        self.store.flush()?;
        self.store.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut (&mut self.store).take(self.stored), out)?;
        if copied != self.stored {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("cpu {} spool ends {} bytes early", self.cpu, self.stored - copied),
            ));
        }
        Ok(())
    }
}

fn len_u32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other(format!("{n} bytes do not fit a u32 size")))
}

fn put_u32(v: &mut Vec<u8>, e: Endian, x: u32) {
    v.extend_from_slice(&match e {
        Endian::Little => x.to_le_bytes(),
        Endian::Big => x.to_be_bytes(),
    });
}

fn put_u64(v: &mut Vec<u8>, e: Endian, x: u64) {
    v.extend_from_slice(&match e {
        Endian::Little => x.to_le_bytes(),
        Endian::Big => x.to_be_bytes(),
    });
}

fn put_u16(v: &mut Vec<u8>, e: Endian, x: u16) {
    v.extend_from_slice(&match e {
        Endian::Little => x.to_le_bytes(),
        Endian::Big => x.to_be_bytes(),
    });
}

/// A sequential writer that knows its position.
struct Out<'w> {
    w: &'w mut dyn Write,
    pos: u64,
    endian: Endian,
}

impl Write for Out<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.w.write(b)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn u32(&mut self, x: u32) -> io::Result<()> {
        let mut v = Vec::with_capacity(4);
        put_u32(&mut v, self.endian, x);
        self.bytes(&v)
    }
    fn pad_to(&mut self, at: u64) -> io::Result<()> {
        let n = at.saturating_sub(self.pos);
        io::copy(&mut io::repeat(0).take(n), self)?;
        Ok(())
    }
    /// Fails when the layout computed up front and the bytes written disagree (a bug).
    fn expect_at(&self, at: u64, what: &str) -> io::Result<()> {
        if self.pos == at {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "trace.dat layout: {what} at {} instead of {at}",
                self.pos
            )))
        }
    }
}

fn compress(c: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Zstd => zstd::bulk::compress(data, 3),
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()
        }
    }
}

/// A v7 section: 16-byte header, then the body (compressed as `u32 csize, u32 size, data`).
fn section(e: Endian, c: Compression, id: u16, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(body.len() / 2 + 32);
    put_u16(&mut v, e, id);
    put_u16(&mut v, e, u16::from(c != Compression::None));
    put_u32(&mut v, e, 0);
    if c == Compression::None {
        put_u64(&mut v, e, body.len() as u64);
        v.extend_from_slice(body);
    } else {
        let z = compress(c, body)?;
        put_u64(&mut v, e, 8 + z.len() as u64);
        put_u32(&mut v, e, len_u32(z.len())?);
        put_u32(&mut v, e, len_u32(body.len())?);
        v.extend_from_slice(&z);
    }
    Ok(v)
}

fn compression_name(c: Compression) -> &'static [u8] {
    match c {
        Compression::None => b"none\0",
        Compression::Zlib => b"zlib\0",
        Compression::Zstd => b"zstd\0",
    }
}

impl Metadata {
    fn header_info(&self, e: Endian) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"header_page\0");
        put_u64(&mut v, e, self.header_page.len() as u64);
        v.extend_from_slice(&self.header_page);
        v.extend_from_slice(b"header_event\0");
        put_u64(&mut v, e, self.header_event.len() as u64);
        v.extend_from_slice(&self.header_event);
        v
    }
    fn ftrace(&self, e: Endian) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        put_u32(&mut v, e, len_u32(self.ftrace_formats.len())?);
        for f in &self.ftrace_formats {
            put_u64(&mut v, e, f.len() as u64);
            v.extend_from_slice(f);
        }
        Ok(v)
    }
    fn systems(&self, e: Endian) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        put_u32(&mut v, e, len_u32(self.systems.len())?);
        for (s, fs) in &self.systems {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
            put_u32(&mut v, e, len_u32(fs.len())?);
            for f in fs {
                put_u64(&mut v, e, f.len() as u64);
                v.extend_from_slice(f);
            }
        }
        Ok(v)
    }
    fn sized32(&self, e: Endian, text: &[u8]) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(text.len() + 4);
        put_u32(&mut v, e, len_u32(text.len())?);
        v.extend_from_slice(text);
        Ok(v)
    }
    fn cmdlines_body(&self, e: Endian) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.cmdlines.len() + 8);
        put_u64(&mut v, e, self.cmdlines.len() as u64);
        v.extend_from_slice(&self.cmdlines);
        v
    }
}

/// Writes a whole trace.dat to `out` in one sequential pass: the initial header, the
/// metadata, each spool's data (page-aligned, in the order given) and the options (CPUCOUNT,
/// the section offsets, `meta.options`, the BUFFER option with every CPU's offset and size).
/// Spools are finished first. Returns the bytes written.
///
/// # Errors
/// Write, read and compression errors; `InvalidInput` for a version other than 6 and 7, a
/// compressed version 6, or spools whose compression or page size differ from `opts`.
pub fn write_file<S: Read + Write + Seek>(
    out: &mut dyn Write,
    opts: &FileOptions,
    meta: &Metadata,
    cpus: &mut [CpuSpool<S>],
) -> io::Result<u64> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if opts.version != 6 && opts.version != 7 {
        return Err(invalid(format!("trace.dat version {} (6 or 7 can be written)", opts.version)));
    }
    if opts.version == 6 && opts.compression != Compression::None {
        return Err(invalid("trace.dat version 6 cannot be compressed".into()));
    }
    for s in cpus.iter_mut() {
        if s.compression != opts.compression || s.pages != opts.pages {
            return Err(invalid(format!("cpu {}: spool does not match the file options", s.cpu)));
        }
        s.flush_chunk()?;
    }
    let e = opts.pages.endian;
    let page_size = u32::try_from(opts.pages.page_size)
        .map_err(|_| invalid(format!("page size {}", opts.pages.page_size)))?;
    let cpu_count = cpus.iter().map(|s| s.cpu + 1).max().unwrap_or(0);
    let mut head = Vec::new();
    head.extend_from_slice(crate::file::MAGIC);
    head.extend_from_slice(if opts.version == 6 { b"6\0" } else { b"7\0" });
    head.push(u8::from(e == Endian::Big));
    head.push(8);
    put_u32(&mut head, e, page_size);
    let mut o = Out { w: out, pos: 0, endian: e };
    if opts.version == 6 {
        write_v6(&mut o, head, page_size, cpu_count, meta, cpus)?;
    } else {
        write_v7(&mut o, head, opts, page_size, cpu_count, meta, cpus)?;
    }
    o.w.flush()?;
    Ok(o.pos)
}

fn align(x: u64, to: u64) -> u64 {
    x.next_multiple_of(to)
}

fn write_v6<S: Read + Write + Seek>(
    o: &mut Out<'_>,
    mut v: Vec<u8>,
    page_size: u32,
    cpu_count: u32,
    meta: &Metadata,
    cpus: &mut [CpuSpool<S>],
) -> io::Result<()> {
    let e = o.endian;
    v.extend_from_slice(&meta.header_info(e));
    v.extend_from_slice(&meta.ftrace(e)?);
    v.extend_from_slice(&meta.systems(e)?);
    v.extend_from_slice(&meta.sized32(e, &meta.kallsyms)?);
    v.extend_from_slice(&meta.sized32(e, &meta.printk)?);
    v.extend_from_slice(&meta.cmdlines_body(e));
    put_u32(&mut v, e, cpu_count);
    v.extend_from_slice(b"options  \0");
    put_u16(&mut v, e, 8);
    put_u32(&mut v, e, 4);
    put_u32(&mut v, e, cpu_count);
    for (id, d) in &meta.options {
        put_u16(&mut v, e, *id);
        put_u32(&mut v, e, len_u32(d.len())?);
        v.extend_from_slice(d);
    }
    put_u16(&mut v, e, 0);
    v.extend_from_slice(b"flyrecord\0");
    let clock = format!("[{}]", meta.clock);
    // The CPU table is dense in v6: CPUs without a spool get offset and size 0.
    let table_end = v.len() as u64 + 16 * u64::from(cpu_count) + 8 + clock.len() as u64;
    let mut at = table_end;
    let mut places = vec![(0u64, 0u64); cpu_count as usize];
    for s in cpus.iter() {
        let size = s.file_size();
        if size > 0
            && let Some(p) = places.get_mut(s.cpu as usize)
        {
            at = align(at, u64::from(page_size));
            *p = (at, size);
            at += size;
        }
    }
    for (off, size) in &places {
        put_u64(&mut v, e, *off);
        put_u64(&mut v, e, *size);
    }
    put_u64(&mut v, e, clock.len() as u64);
    v.extend_from_slice(clock.as_bytes());
    o.bytes(&v)?;
    for s in cpus.iter_mut() {
        let Some(&(off, size)) = places.get(s.cpu as usize) else { continue };
        if size == 0 {
            continue;
        }
        o.pad_to(off)?;
        s.copy_to(o)?;
        o.expect_at(off + size, "end of cpu data")?;
    }
    Ok(())
}

fn write_v7<S: Read + Write + Seek>(
    o: &mut Out<'_>,
    mut head: Vec<u8>,
    opts: &FileOptions,
    page_size: u32,
    cpu_count: u32,
    meta: &Metadata,
    cpus: &mut [CpuSpool<S>],
) -> io::Result<()> {
    let (e, c) = (o.endian, opts.compression);
    head.extend_from_slice(compression_name(c));
    // The library version, informational only (trace-cmd writes "" for none).
    let version = match c {
        Compression::None => "",
        Compression::Zstd => zstd::zstd_safe::version_string(),
        Compression::Zlib => "1",
    };
    head.extend_from_slice(version.as_bytes());
    head.push(0);
    let options_ptr = head.len() as u64;
    let mut at = options_ptr + 8;
    // Metadata sections, built (and compressed) in memory: they are small and of fixed size.
    let bodies: [(u16, Vec<u8>); 6] = [
        (16, meta.header_info(e)),
        (17, meta.ftrace(e)?),
        (18, meta.systems(e)?),
        (19, meta.sized32(e, &meta.kallsyms)?),
        (20, meta.sized32(e, &meta.printk)?),
        (21, meta.cmdlines_body(e)),
    ];
    let mut sections = Vec::with_capacity(bodies.len());
    for (id, body) in &bodies {
        let s = section(e, c, *id, body)?;
        sections.push((*id, at, s));
        at += sections.last().map_or(0, |s| s.2.len() as u64);
    }
    drop(bodies);
    // The flyrecord section: header, then each CPU's data at a page-aligned offset.
    let buffer_at = at;
    let body_start = buffer_at + 16;
    let mut end = body_start;
    let mut table = Vec::with_capacity(cpus.len());
    for s in cpus.iter() {
        let size = s.file_size();
        let off = if size == 0 { 0 } else { align(end, u64::from(page_size)) };
        if size > 0 {
            end = off + size;
        }
        table.push((s.cpu, off, size));
    }
    let options_at = end;
    let mut opt = Vec::new();
    put_u16(&mut opt, e, 8);
    put_u32(&mut opt, e, 4);
    put_u32(&mut opt, e, cpu_count);
    for (id, off, _) in &sections {
        put_u16(&mut opt, e, *id);
        put_u32(&mut opt, e, 8);
        put_u64(&mut opt, e, *off);
    }
    for (id, d) in &meta.options {
        put_u16(&mut opt, e, *id);
        put_u32(&mut opt, e, len_u32(d.len())?);
        opt.extend_from_slice(d);
    }
    let mut b = Vec::new();
    put_u64(&mut b, e, buffer_at);
    b.extend_from_slice(meta.buffer_name.as_bytes());
    b.push(0);
    b.extend_from_slice(meta.clock.as_bytes());
    b.push(0);
    put_u32(&mut b, e, page_size);
    put_u32(&mut b, e, len_u32(table.len())?);
    for (cpu, off, size) in &table {
        put_u32(&mut b, e, *cpu);
        put_u64(&mut b, e, *off);
        put_u64(&mut b, e, *size);
    }
    put_u16(&mut opt, e, 3);
    put_u32(&mut opt, e, len_u32(b.len())?);
    opt.extend_from_slice(&b);
    put_u16(&mut opt, e, 0);
    put_u32(&mut opt, e, 8);
    put_u64(&mut opt, e, 0);
    let options = section(e, c, 0, &opt)?;

    put_u64(&mut head, e, options_at);
    o.bytes(&head)?;
    for (_, off, s) in &sections {
        o.expect_at(*off, "metadata section")?;
        o.bytes(s)?;
    }
    let mut bh = Vec::with_capacity(16);
    put_u16(&mut bh, e, 3);
    put_u16(&mut bh, e, u16::from(c != Compression::None));
    put_u32(&mut bh, e, 0);
    put_u64(&mut bh, e, end - body_start);
    o.bytes(&bh)?;
    for (s, (_, off, size)) in cpus.iter_mut().zip(&table) {
        if *size == 0 {
            continue;
        }
        o.pad_to(*off)?;
        s.copy_to(o)?;
        o.expect_at(off + size, "end of cpu data")?;
    }
    o.expect_at(options_at, "options section")?;
    o.bytes(&options)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const PF: PageFormat = PageFormat { page_size: 4096, long_size: 8, endian: Endian::Little };

    /// A page with `n` 8-byte records and, optionally, the missed flag with a stored count.
    fn page(ts: u64, n: u32, missed: Option<u64>) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[..8].copy_from_slice(&ts.to_le_bytes());
        let len = u64::from(n) * 8;
        let mut commit = len;
        if let Some(m) = missed {
            commit |= (1 << 31) | (1 << 30);
            p[16 + len as usize..24 + len as usize].copy_from_slice(&m.to_le_bytes());
        }
        p[8..16].copy_from_slice(&commit.to_le_bytes());
        for i in 0..n as usize {
            p[16 + i * 8..20 + i * 8].copy_from_slice(&(1u32 | (10 << 5)).to_le_bytes());
        }
        p
    }

    #[test]
    fn spool_counts_missed_pages_and_rejects_partial_pages() {
        let mut s = CpuSpool::new(0, Cursor::new(Vec::new()), Compression::Zstd, PF);
        let mut data = page(100, 3, None);
        data.extend(page(200, 2, Some(17)));
        s.push_pages(&data).unwrap();
        assert_eq!(
            s.stats(),
            PageStats { pages: 2, missed_pages: 1, missed_events: 17, missed_unknown: 0 }
        );
        let e = s.push_pages(&data[..100]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn compressed_spool_holds_at_most_one_chunk() {
        let mut s = CpuSpool::new(1, Cursor::new(Vec::new()), Compression::Zstd, PF);
        for i in 0..25 {
            s.push_pages(&page(i * 1000, 5, None)).unwrap();
            assert!(s.pending.len() < PF.page_size * PAGES_PER_CHUNK);
        }
        assert_eq!(s.chunks, 2);
        s.flush_chunk().unwrap();
        assert_eq!(s.chunks, 3);
        assert_eq!(s.stored_bytes(), s.store.get_ref().len() as u64);
    }

    #[test]
    fn pages_come_back_out_of_every_file_kind() {
        let mut data = Vec::new();
        for i in 0..23 {
            data.extend(page(1_000_000 + i * 5000, 4, (i == 7).then_some(3)));
        }
        for (version, c) in [
            (6, Compression::None),
            (7, Compression::None),
            (7, Compression::Zstd),
            (7, Compression::Zlib),
        ] {
            let mut a = CpuSpool::new(0, Cursor::new(Vec::new()), c, PF);
            let b = CpuSpool::new(1, Cursor::new(Vec::new()), c, PF);
            let mut d = CpuSpool::new(3, Cursor::new(Vec::new()), c, PF);
            a.push_pages(&data).unwrap();
            d.push_pages(&data[..4096 * 2]).unwrap();
            let mut file = Vec::new();
            let mut spools = [a, b, d];
            let n = write_file(
                &mut file,
                &FileOptions::new(version, c, PF),
                &Metadata::default(),
                &mut spools,
            )
            .unwrap();
            assert_eq!(n, file.len() as u64);
            let t = crate::TraceDat::parse(&file).unwrap();
            assert_eq!(t.header.cpu_count, 4, "v{version} {c:?}");
            let bufs = &t.header.buffers;
            let with_data: Vec<u32> =
                bufs[0].cpus.iter().filter(|c| c.size > 0).map(|c| c.cpu).collect();
            assert_eq!(with_data, [0, 3], "v{version} {c:?}");
            let streams: Vec<&[u8]> = t.streams.iter().map(|s| &*s.data).collect();
            assert_eq!(streams.len(), 2);
            assert_eq!(streams[0], &data[..], "v{version} {c:?}");
            assert_eq!(streams[1], &data[..4096 * 2], "v{version} {c:?}");
        }
    }

    #[test]
    fn version_6_cannot_be_compressed() {
        let mut file = Vec::new();
        let e = write_file::<Cursor<Vec<u8>>>(
            &mut file,
            &FileOptions::new(6, Compression::Zstd, PF),
            &Metadata::default(),
            &mut [],
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
