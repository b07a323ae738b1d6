//! File layout: initial header, v6 sequential metadata, v7 sections and options, buffers.

use std::borrow::Cow;
use std::io::Read as _;

use crate::Error;
use crate::bytes::{Bytes, Endian};
use crate::format::EventFormat;
use crate::meta::{Cmdlines, PrintkFormats, Symbols};
use rustc_hash::FxHashMap;

/// The 10-byte magic: `0x17 0x08 0x44` + `tracing`.
pub(crate) const MAGIC: &[u8; 10] = b"\x17\x08\x44tracing";

/// Largest decompressed metadata section or data chunk accepted (guards against hostile
/// sizes before allocating).
const MAX_UNCOMPRESSED: u64 = 1 << 30;

/// Compression algorithm of a v7 file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// zlib (deflate with zlib header).
    Zlib,
    /// Zstandard.
    Zstd,
}

/// One CPU's data in a buffer.
#[derive(Clone, Debug)]
pub struct CpuData {
    /// CPU number.
    pub cpu: u32,
    /// Absolute file offset of the data (or of its chunk table when compressed).
    pub offset: u64,
    /// Stored size in bytes.
    pub size: u64,
}

/// A ring buffer (the top-level one has an empty name; `-B` instances have theirs).
#[derive(Clone, Debug)]
pub struct Buffer {
    /// Instance name (`""` for the top level).
    pub name: String,
    /// Trace clock (`local`, `x86-tsc`, ...), when known.
    pub clock: String,
    /// Sub-buffer (page) size.
    pub page_size: u32,
    /// Whether the data is chunk-compressed.
    pub compressed: bool,
    /// Per-CPU data.
    pub cpus: Vec<CpuData>,
}

/// A guest traced together with its host (`trace-cmd record -A`): GUEST option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// Guest name.
    pub name: String,
    /// Trace id of the guest's own trace file.
    pub trace_id: u64,
    /// (vCPU number, host thread pid running it).
    pub vcpus: Vec<(u32, u32)>,
}

/// Everything read from a trace.dat except the ring-buffer records.
#[derive(Debug)]
pub struct Header<'a> {
    /// File version (6 or 7).
    pub version: u32,
    /// Byte order.
    pub endian: Endian,
    /// Userspace `long` size from the initial header.
    pub user_long_size: u8,
    /// Kernel `long` size (from `header_page`'s `commit`).
    pub long_size: usize,
    /// Page size of the traced machine.
    pub page_size: u32,
    /// Compression of a v7 file.
    pub compression: Compression,
    /// Event formats indexed by id.
    pub formats: Vec<EventFormat>,
    /// kallsyms.
    pub symbols: Symbols<'a>,
    /// saved_cmdlines.
    pub cmdlines: Cmdlines<'a>,
    /// printk formats (for `bprint`/`bputs`).
    pub printk: PrintkFormats,
    /// CPU count from the header or CPUCOUNT option.
    pub cpu_count: u32,
    /// Buffers with flyrecord data.
    pub buffers: Vec<Buffer>,
    /// OFFSET and DATE options: added to every timestamp.
    pub ts_offset: i64,
    /// TSC2NSEC option: (mult, shift), applied when the clock is `x86-tsc`.
    pub tsc2nsec: Option<(u32, u32)>,
    /// UNAME option.
    pub uname: Option<String>,
    /// VERSION option (trace-cmd version that wrote the file).
    pub tracer_version: Option<String>,
    /// TRACECLOCK option content.
    pub trace_clock: Option<String>,
    /// Whether the file holds latency-format text instead of records (not decoded).
    pub latency: bool,
    /// Guests recorded with this host trace (vCPU → host pid maps).
    pub guests: Vec<Guest>,
    /// CPUSTAT options: each CPU's `per_cpu/cpuN/stats` text at the end of recording
    /// (`entries:`, `overrun:`, `dropped events:`, ...).
    pub cpu_stats: Vec<String>,
    /// TRACEID option.
    pub trace_id: Option<u64>,
    /// exitscope's own option ([`crate::HOST_OPTION`]): the recording
    /// host's tag, `exitscope host: {json}`, when its data starts so.
    pub host_tag: Option<String>,
    /// exitscope's own option ([`crate::TGIDS_OPTION`]): thread → process.
    pub tgids: FxHashMap<u32, u32>,
}

/// The `pid tgid` lines of a [`crate::TGIDS_OPTION`] after its prefix (`None` when the data does
/// not start so: another program's use of the id). Lines that are not two numbers are skipped.
pub fn parse_tgids(text: &str) -> Option<FxHashMap<u32, u32>> {
    let body = text.strip_prefix(crate::TGIDS_PREFIX)?;
    let mut m = FxHashMap::default();
    for line in body.lines() {
        let mut it = line.split_ascii_whitespace();
        if let (Some(Ok(pid)), Some(Ok(tgid)), None) =
            (it.next().map(str::parse::<u32>), it.next().map(str::parse::<u32>), it.next())
            && tgid != 0
        {
            m.insert(pid, tgid);
        }
    }
    Some(m)
}

fn text<'a>(b: Cow<'a, [u8]>) -> Cow<'a, str> {
    match b {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

fn slice_cow<'a>(c: &Cow<'a, [u8]>, s: &[u8]) -> Cow<'a, [u8]> {
    match c {
        Cow::Borrowed(b) => {
            let start = s.as_ptr() as usize - b.as_ptr() as usize;
            Cow::Borrowed(b.get(start..start + s.len()).unwrap_or_default())
        }
        Cow::Owned(_) => Cow::Owned(s.to_vec()),
    }
}

/// Decompresses one block into `dst` (appending exactly `usize` bytes).
pub(crate) fn decompress(
    algo: Compression,
    src: &[u8],
    usize_: u64,
    offset: u64,
    dst: &mut Vec<u8>,
    zstd_ctx: &mut Option<zstd::bulk::Decompressor<'static>>,
) -> Result<(), Error> {
    if usize_ > MAX_UNCOMPRESSED {
        return Err(Error::Malformed {
            offset,
            what: format!("uncompressed size {usize_} is too large"),
        });
    }
    let n = usize_ as usize;
    let old = dst.len();
    dst.resize(old + n, 0);
    let out = dst.get_mut(old..).unwrap_or_default();
    let got = match algo {
        Compression::Zstd => {
            let zerr =
                |e: std::io::Error| Error::Decompress { offset, algo: "zstd", msg: e.to_string() };
            if zstd_ctx.is_none() {
                *zstd_ctx = Some(zstd::bulk::Decompressor::new().map_err(zerr)?);
            }
            match zstd_ctx.as_mut() {
                Some(d) => d.decompress_to_buffer(src, out).map_err(zerr)?,
                None => 0,
            }
        }
        Compression::Zlib => {
            let mut d = flate2::read::ZlibDecoder::new(src);
            d.read_exact(out).map_err(|e| Error::Decompress {
                offset,
                algo: "zlib",
                msg: e.to_string(),
            })?;
            n
        }
        Compression::None => {
            return Err(Error::Malformed {
                offset,
                what: "compressed flag set in an uncompressed file".into(),
            });
        }
    };
    if got != n {
        return Err(Error::Decompress {
            offset,
            algo: "zstd",
            msg: format!("got {got} bytes, expected {n}"),
        });
    }
    Ok(())
}

fn parse_formats(
    system: &str,
    c: &mut Bytes<'_>,
    n: u32,
    out: &mut Vec<EventFormat>,
) -> Result<(), Error> {
    for _ in 0..n {
        let size = c.u64("event format size")?;
        let at = c.offset();
        let t = c.read_bytes_u64(size, "event format text")?;
        let t = String::from_utf8_lossy(t);
        let f = EventFormat::parse(system, &t).map_err(|what| Error::Malformed {
            offset: at,
            what: format!("event format ({system}): {what}"),
        })?;
        out.push(f);
    }
    Ok(())
}

fn parse_systems(c: &mut Bytes<'_>, out: &mut Vec<EventFormat>) -> Result<(), Error> {
    let n = c.u32("event system count")?;
    for _ in 0..n {
        let sys = String::from_utf8_lossy(c.cstr("event system name")?).into_owned();
        let count = c.u32("event count")?;
        parse_formats(&sys, c, count, out)?;
    }
    Ok(())
}

fn parse_ftrace(c: &mut Bytes<'_>, out: &mut Vec<EventFormat>) -> Result<(), Error> {
    let n = c.u32("ftrace event count")?;
    parse_formats("ftrace", c, n, out)
}

/// Kernel long size from header_page's `commit` field.
fn long_size_from_header_page(text: &[u8]) -> usize {
    let t = String::from_utf8_lossy(text);
    for line in t.lines() {
        if line.contains(" commit;")
            && let Some(s) = line.split(';').find_map(|p| p.trim().strip_prefix("size:"))
            && let Ok(n) = s.trim().parse::<usize>()
            && (n == 4 || n == 8)
        {
            return n;
        }
    }
    8
}

struct Options {
    buffers: Vec<(Buffer, u64)>,
    v6_buffers: Vec<(u64, String)>,
    sections: Vec<(u16, u64)>,
    next: u64,
}

impl<'a> Header<'a> {
    /// Parses everything but the records.
    pub fn parse(data: &'a [u8]) -> Result<Header<'a>, Error> {
        if !data.starts_with(MAGIC) {
            return Err(Error::NotTraceDat);
        }
        let mut c = Bytes::new(data, 0, Endian::Little);
        c.read_bytes(10, "magic")?;
        let v = c.cstr("version")?;
        let version = match v {
            b"6" => 6,
            b"7" => 7,
            _ => return Err(Error::UnsupportedVersion(String::from_utf8_lossy(v).into_owned())),
        };
        let mut h = Header::preamble(&mut c)?;
        h.version = version;
        if version == 6 {
            h.parse_v6(data, c)?;
        } else {
            h.parse_v7(data, c)?;
        }
        Ok(h)
    }

    /// Parses the tracing-data block that perf stores in perf.data (the `HEADER_TRACING_DATA`
    /// feature section, or a pipe's `PERF_RECORD_HEADER_TRACING_DATA`): the same magic,
    /// header files, event formats, kallsyms and printk formats as a v6 file, then
    /// saved_cmdlines (perf's version "0.6"; absent in "0.5"), and no CPU data. `base` is the
    /// file offset of `data`, so errors name absolute offsets. `version` is set to 6.
    pub(crate) fn parse_tracing_data(data: &'a [u8], base: u64) -> Result<Header<'a>, Error> {
        if !data.starts_with(MAGIC) {
            return Err(Error::Malformed {
                offset: base,
                what: "expected the tracing data magic \\x17\\x08\\x44tracing".into(),
            });
        }
        let mut c = Bytes::new(data, base, Endian::Little);
        c.read_bytes(10, "magic")?;
        let v = c.cstr("version")?;
        if !v.starts_with(b"0.") {
            return Err(Error::UnsupportedVersion(String::from_utf8_lossy(v).into_owned()));
        }
        let mut h = Header::preamble(&mut c)?;
        h.version = 6;
        h.metadata_v6(&mut c, v != b"0.5")?;
        Ok(h)
    }

    /// Endianness, long size and page size, after the magic and version string: the start
    /// of both a trace.dat and perf's tracing data. Returns a header holding those fields.
    fn preamble(c: &mut Bytes<'a>) -> Result<Header<'a>, Error> {
        let endian = match c.u8("endianness")? {
            0 => Endian::Little,
            1 => Endian::Big,
            e => {
                return Err(Error::Malformed {
                    offset: c.offset() - 1,
                    what: format!("endianness byte {e}"),
                });
            }
        };
        c.set_endian(endian);
        let user_long_size = c.u8("long size")?;
        let page_size = c.u32("page size")?;
        let h = Header {
            version: 0,
            endian,
            user_long_size,
            long_size: 8,
            page_size,
            compression: Compression::None,
            formats: Vec::new(),
            symbols: Symbols::default(),
            cmdlines: Cmdlines::default(),
            printk: PrintkFormats::default(),
            cpu_count: 0,
            buffers: Vec::new(),
            ts_offset: 0,
            tsc2nsec: None,
            uname: None,
            tracer_version: None,
            trace_clock: None,
            latency: false,
            guests: Vec::new(),
            cpu_stats: Vec::new(),
            trace_id: None,
            host_tag: None,
            tgids: FxHashMap::default(),
        };
        Ok(h)
    }

    fn header_info(&mut self, c: &mut Bytes<'_>) -> Result<(), Error> {
        let at = c.offset();
        if c.cstr("header_page tag")? != b"header_page" {
            return Err(Error::Malformed { offset: at, what: "expected \"header_page\"".into() });
        }
        let n = c.u64("header_page size")?;
        let hp = c.read_bytes_u64(n, "header_page text")?;
        self.long_size = long_size_from_header_page(hp);
        let at = c.offset();
        if c.cstr("header_event tag")? != b"header_event" {
            return Err(Error::Malformed { offset: at, what: "expected \"header_event\"".into() });
        }
        let n = c.u64("header_event size")?;
        c.read_bytes_u64(n, "header_event text")?;
        Ok(())
    }

    fn options(&mut self, c: &mut Bytes<'_>) -> Result<Options, Error> {
        let mut o =
            Options { buffers: Vec::new(), v6_buffers: Vec::new(), sections: Vec::new(), next: 0 };
        loop {
            let id = c.u16("option id")?;
            if id == 0 && self.version == 6 {
                break;
            }
            let size = c.u32("option size")?;
            let at = c.offset();
            let body = c.read_bytes(size as usize, "option data")?;
            let mut b = Bytes::new(body, at, self.endian);
            let s = || String::from_utf8_lossy(body).trim_end_matches(['\0', '\n']).to_string();
            match id {
                0 => {
                    o.next = b.u64("next options offset")?;
                    break;
                }
                3 if self.version == 6 => {
                    let off = b.u64("buffer offset")?;
                    let name = String::from_utf8_lossy(b.cstr("buffer name")?).into_owned();
                    o.v6_buffers.push((off, name));
                }
                3 => {
                    let section = b.u64("buffer section offset")?;
                    let name = String::from_utf8_lossy(b.cstr("buffer name")?).into_owned();
                    let clock = String::from_utf8_lossy(b.cstr("buffer clock")?).into_owned();
                    let page_size = b.u32("buffer page size")?;
                    let n = b.u32("buffer cpu count")?;
                    let mut cpus = Vec::new();
                    for _ in 0..n {
                        let cpu = b.u32("buffer cpu")?;
                        let offset = b.u64("cpu data offset")?;
                        let size = b.u64("cpu data size")?;
                        cpus.push(CpuData { cpu, offset, size });
                    }
                    o.buffers.push((
                        Buffer { name, clock, page_size, compressed: false, cpus },
                        section,
                    ));
                }
                4 => self.trace_clock = Some(s()),
                5 => self.uname = Some(s()),
                7 => {
                    self.ts_offset =
                        self.ts_offset.wrapping_add(s().trim().parse::<i64>().unwrap_or(0))
                }
                1 => {
                    // DATE: "0x..." offset to wall-clock time, added like trace-cmd report.
                    let d = s();
                    let d = d.trim();
                    let v = match d.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).ok().map(|v| v as i64),
                        None => d.parse::<i64>().ok(),
                    };
                    self.ts_offset = self.ts_offset.wrapping_add(v.unwrap_or(0));
                }
                8 => self.cpu_count = b.u32("cpu count")?,
                9 => self.tracer_version = Some(s()),
                14 => {
                    let mult = b.u32("tsc2nsec mult")?;
                    let shift = b.u32("tsc2nsec shift")?;
                    self.tsc2nsec = Some((mult, shift));
                }
                16..=21 | 23 | 25 => o.sections.push((id, b.u64("section offset")?)),
                22 => self.latency = true,
                2 => self.cpu_stats.push(s()),
                11 => self.trace_id = Some(b.u64("trace id")?),
                13 => {
                    let name = String::from_utf8_lossy(b.cstr("guest name")?).into_owned();
                    let trace_id = b.u64("guest trace id")?;
                    let n = b.u32("guest vcpu count")?;
                    let mut vcpus = Vec::new();
                    for _ in 0..n {
                        let vcpu = b.u32("guest vcpu")?;
                        let pid = b.u32("guest vcpu host pid")?;
                        vcpus.push((vcpu, pid));
                    }
                    self.guests.push(Guest { name, trace_id, vcpus });
                }
                crate::HOST_OPTION => {
                    // Only exitscope's own tag: another program's use of the id is ignored,
                    // as trace-cmd ignores this option.
                    let t = s();
                    if t.starts_with(crate::HOST_TAG_PREFIX) {
                        self.host_tag = Some(t);
                    }
                }
                crate::TGIDS_OPTION => {
                    if let Some(m) = parse_tgids(&s()) {
                        self.tgids.extend(m);
                    }
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// The v6 metadata: header files, event formats, kallsyms, printk formats and, when
    /// `cmdlines`, saved_cmdlines.
    fn metadata_v6(&mut self, c: &mut Bytes<'a>, cmdlines: bool) -> Result<(), Error> {
        self.header_info(c)?;
        parse_ftrace(c, &mut self.formats)?;
        parse_systems(c, &mut self.formats)?;
        let n = c.u32("kallsyms size")?;
        self.symbols =
            Symbols::parse(String::from_utf8_lossy(c.read_bytes(n as usize, "kallsyms")?));
        let n = c.u32("printk size")?;
        self.printk = PrintkFormats::parse(&String::from_utf8_lossy(
            c.read_bytes(n as usize, "printk formats")?,
        ));
        if cmdlines {
            let n = c.u64("cmdlines size")?;
            self.cmdlines =
                Cmdlines::parse(String::from_utf8_lossy(c.read_bytes_u64(n, "cmdlines")?));
        }
        Ok(())
    }

    fn parse_v6(&mut self, data: &'a [u8], mut c: Bytes<'a>) -> Result<(), Error> {
        self.metadata_v6(&mut c, true)?;
        let cpus = c.u32("cpu count")?;
        if self.cpu_count == 0 {
            self.cpu_count = cpus;
        }
        let mut opts = None;
        loop {
            let at = c.offset();
            let tag = c.read_bytes(10, "data tag")?;
            match tag {
                b"options  \0" => opts = Some(self.options(&mut c)?),
                b"latency  \0" => {
                    self.latency = true;
                    return Ok(());
                }
                b"flyrecord\0" => break,
                _ => {
                    return Err(Error::Malformed {
                        offset: at,
                        what: "expected options/latency/flyrecord tag".into(),
                    });
                }
            }
        }
        let top = read_cpu_table(&mut c, cpus)?;
        let page_size = self.page_size;
        let clock =
            self.trace_clock.as_deref().map(selected_clock).unwrap_or_else(|| "local".into());
        self.buffers.push(Buffer {
            name: String::new(),
            clock: clock.clone(),
            page_size,
            compressed: false,
            cpus: top,
        });
        for (off, name) in opts.map(|o| o.v6_buffers).unwrap_or_default() {
            let at =
                usize::try_from(off).ok().filter(|&o| o <= data.len()).ok_or(Error::Truncated {
                    offset: off,
                    what: "instance buffer",
                    needed: 10,
                    available: 0,
                })?;
            let mut b = Bytes::new(data.get(at..).unwrap_or_default(), off, self.endian);
            loop {
                let tat = b.offset();
                match b.read_bytes(10, "instance tag")? {
                    b"options  \0" => {
                        self.options(&mut b)?;
                    }
                    b"flyrecord\0" => break,
                    _ => {
                        return Err(Error::Malformed {
                            offset: tat,
                            what: "expected instance flyrecord tag".into(),
                        });
                    }
                }
            }
            let cpus = read_cpu_table(&mut b, cpus)?;
            self.buffers.push(Buffer {
                name,
                clock: clock.clone(),
                page_size,
                compressed: false,
                cpus,
            });
        }
        Ok(())
    }

    fn parse_v7(&mut self, data: &'a [u8], mut c: Bytes<'a>) -> Result<(), Error> {
        let comp = c.cstr("compression name")?;
        self.compression = match comp {
            b"none" | b"" => Compression::None,
            b"zlib" => Compression::Zlib,
            b"zstd" => Compression::Zstd,
            other => {
                return Err(Error::UnsupportedCompression(
                    String::from_utf8_lossy(other).into_owned(),
                ));
            }
        };
        c.cstr("compression version")?;
        let mut next = c.u64("first options offset")?;
        let mut sections = Vec::new();
        let mut buffers = Vec::new();
        let mut seen = 0;
        while next != 0 {
            seen += 1;
            if seen > 1000 {
                return Err(Error::Malformed {
                    offset: next,
                    what: "options sections form a loop".into(),
                });
            }
            let (id, body, base) = self.section(data, next)?;
            if id != 0 {
                return Err(Error::Malformed {
                    offset: next,
                    what: format!("expected an OPTIONS section, found id {id}"),
                });
            }
            let mut b = Bytes::new(&body, base, self.endian);
            let o = self.options(&mut b)?;
            sections.extend(o.sections);
            buffers.extend(o.buffers);
            next = o.next;
        }
        for (id, off) in sections {
            if let 16..=21 = id {
                let (sid, body, base) = self.section(data, off)?;
                if sid != id {
                    return Err(Error::Malformed {
                        offset: off,
                        what: format!("section id {sid}, option said {id}"),
                    });
                }
                let mut b = Bytes::new(&body, base, self.endian);
                match id {
                    16 => self.header_info(&mut b)?,
                    17 => parse_ftrace(&mut b, &mut self.formats)?,
                    18 => parse_systems(&mut b, &mut self.formats)?,
                    19 => {
                        let n = b.u32("kallsyms size")?;
                        let s = b.read_bytes(n as usize, "kallsyms")?;
                        self.symbols = Symbols::parse(text(slice_cow(&body, s)));
                    }
                    20 => {
                        let n = b.u32("printk size")?;
                        let s = b.read_bytes(n as usize, "printk formats")?;
                        self.printk = PrintkFormats::parse(&String::from_utf8_lossy(s));
                    }
                    _ => {
                        let n = b.u64("cmdlines size")?;
                        let s = b.read_bytes_u64(n, "cmdlines")?;
                        self.cmdlines = Cmdlines::parse(text(slice_cow(&body, s)));
                    }
                }
            }
        }
        for (mut b, off) in buffers {
            if b.page_size == 0 {
                b.page_size = self.page_size;
            }
            if b.cpus.iter().any(|c| c.size != 0) {
                // BUFFER FLYRECORD section header: only its compression flag matters.
                let (id, flags, _, _) = section_header(data, off, self.endian)?;
                if id != 3 {
                    return Err(Error::Malformed {
                        offset: off,
                        what: format!("expected a BUFFER section, found id {id}"),
                    });
                }
                b.compressed = flags & 1 != 0;
            }
            self.buffers.push(b);
        }
        if self.cpu_count == 0 {
            self.cpu_count = self
                .buffers
                .iter()
                .flat_map(|b| b.cpus.iter().map(|c| c.cpu.saturating_add(1)))
                .max()
                .unwrap_or(0);
        }
        Ok(())
    }

    /// Reads a v7 section: (id, body decompressed if needed, file offset of the body).
    fn section(&self, data: &'a [u8], off: u64) -> Result<(u16, Cow<'a, [u8]>, u64), Error> {
        let (id, flags, size, body_at) = section_header(data, off, self.endian)?;
        let mut c =
            Bytes::new(data.get(body_at as usize..).unwrap_or_default(), body_at, self.endian);
        let body = c.read_bytes_u64(size, "section body")?;
        if flags & 1 == 0 {
            return Ok((id, Cow::Borrowed(body), body_at));
        }
        let mut b = Bytes::new(body, body_at, self.endian);
        let csize = b.u32("compressed size")?;
        let usize_ = b.u32("uncompressed size")?;
        let src = b.read_bytes(csize as usize, "compressed section data")?;
        let mut out = Vec::new();
        decompress(self.compression, src, u64::from(usize_), body_at, &mut out, &mut None)?;
        Ok((id, Cow::Owned(out), body_at))
    }
}

/// (id, flags, size, body offset) of the section header at `off`.
fn section_header(data: &[u8], off: u64, e: Endian) -> Result<(u16, u16, u64, u64), Error> {
    let at = usize::try_from(off).ok().filter(|&o| o <= data.len()).ok_or(Error::Truncated {
        offset: off,
        what: "section header",
        needed: 16,
        available: 0,
    })?;
    let mut c = Bytes::new(data.get(at..).unwrap_or_default(), off, e);
    let id = c.u16("section id")?;
    let flags = c.u16("section flags")?;
    c.u32("section description")?;
    let size = c.u64("section size")?;
    Ok((id, flags, size, c.offset()))
}

fn read_cpu_table(c: &mut Bytes<'_>, cpus: u32) -> Result<Vec<CpuData>, Error> {
    let mut v = Vec::new();
    for cpu in 0..cpus {
        let offset = c.u64("cpu data offset")?;
        let size = c.u64("cpu data size")?;
        v.push(CpuData { cpu, offset, size });
    }
    Ok(v)
}

/// `[local] global counter` → `local`.
fn selected_clock(s: &str) -> String {
    s.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("local")
        .to_string()
}
