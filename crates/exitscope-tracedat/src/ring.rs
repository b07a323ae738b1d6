//! Ring-buffer sub-buffers ("pages") of one CPU: page headers, the compressed event
//! headers (time extends, absolute timestamps, padding) and data records.

use crate::Error;
use crate::bytes::{Endian, read_uint};

const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const MISSED_EVENTS: u64 = 1 << 31;
const MISSED_STORED: u64 = 1 << 30;
const COMMIT_MASK: u64 = (1 << 27) - 1;

/// What the next position of a CPU stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A data record: timestamp and payload range within the stream.
    Record {
        /// Timestamp in trace-clock units.
        ts: u64,
        /// Payload start offset in the stream.
        start: usize,
        /// Payload length.
        len: usize,
    },
    /// Records were dropped before this page (count when the kernel stored it).
    Lost {
        /// Timestamp of the page that follows the gap.
        ts: u64,
        /// Number of records lost.
        count: Option<u64>,
    },
}

impl Item {
    /// The item's timestamp.
    pub fn ts(&self) -> u64 {
        match *self {
            Item::Record { ts, .. } | Item::Lost { ts, .. } => ts,
        }
    }
}

/// The layout of ring-buffer sub-buffers ("pages") as a kernel's `events/header_page` states
/// it. Live readers of `per_cpu/cpuN/trace_pipe_raw` must use it: sub-buffers are larger
/// than 4 KiB when `buffer_subbuf_size_kb` was raised, and 32-bit kernels have a 4-byte
/// `commit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFormat {
    /// Sub-buffer size in bytes: offset plus size of the `data` field.
    pub page_size: usize,
    /// Kernel `long` size: the size of the `commit` field (8 or 4).
    pub long_size: usize,
    /// Byte order of page and event headers.
    pub endian: Endian,
}

/// What a sub-buffer's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// Timestamp of the page start (trace-clock units).
    pub timestamp: u64,
    /// Bytes of record data used after the header.
    pub data_len: usize,
    /// `None`: nothing was lost before this page; `Some(None)`: events were lost, count
    /// unknown; `Some(Some(n))`: `n` events were lost.
    pub missed: Option<Option<u64>>,
}

impl PageFormat {
    /// The layout stated by `header_page` text (`field: local_t commit; offset:8; size:8;`,
    /// `field: char data; offset:16; size:4080;`), in byte order `endian`; `None` when the
    /// text lacks either field or states impossible sizes.
    pub fn from_header_page(text: &str, endian: Endian) -> Option<PageFormat> {
        let attr = |line: &str, key: &str| -> Option<usize> {
            line.split(';').find_map(|p| p.trim().strip_prefix(key)?.trim().parse().ok())
        };
        let mut long_size = None;
        let mut page_size = None;
        for line in text.lines() {
            if line.contains(" commit;") {
                long_size = attr(line, "size:");
            } else if line.contains(" data;") {
                page_size = attr(line, "offset:")?.checked_add(attr(line, "size:")?);
            }
        }
        let (long_size, page_size) = (long_size?, page_size?);
        let ok = matches!(long_size, 4 | 8) && page_size > 8 + long_size && page_size <= 1 << 27;
        ok.then_some(PageFormat { page_size, long_size, endian })
    }

    /// Size of the page header (timestamp and commit).
    pub fn header_len(&self) -> usize {
        8 + self.long_size
    }

    /// The header of the page starting at `page[0]`; `None` when `page` is shorter than the
    /// header or the commit exceeds the page.
    pub fn header(&self, page: &[u8]) -> Option<PageHeader> {
        let timestamp = read_uint(page, 0, 8, self.endian)?;
        let commit = read_uint(page, 8, self.long_size, self.endian)?;
        let data_len = (commit & COMMIT_MASK) as usize;
        let end = self.header_len() + data_len;
        if end > self.page_size {
            return None;
        }
        let missed = (commit & MISSED_EVENTS != 0).then(|| {
            if commit & MISSED_STORED != 0 {
                read_uint(page, end, self.long_size, self.endian)
            } else {
                None
            }
        });
        Some(PageHeader { timestamp, data_len, missed })
    }
}

/// A cursor over one CPU's page stream.
#[derive(Debug)]
pub struct CpuCursor {
    /// CPU number.
    pub cpu: u32,
    /// File offset of the stream (for errors; for compressed data, the chunk table).
    pub file_offset: u64,
    page_size: usize,
    long_size: usize,
    endian: Endian,
    /// Start of the current page in the stream.
    page_start: usize,
    /// Index of the current page.
    page: u64,
    /// Read position and end of data in the current page (stream offsets).
    pos: usize,
    end: usize,
    ts: u64,
    started: bool,
    /// Pages starting at or after this stream offset are not read (the end of a unit of
    /// pages decoded on its own; `usize::MAX` for a whole stream).
    limit: usize,
}

/// A window of a stream's bytes: `bytes` are the stream's bytes from offset `base`; the
/// stream is `total` bytes long. Reads past the window but inside the stream ask for more.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Win<'d> {
    pub(crate) bytes: &'d [u8],
    pub(crate) base: usize,
    pub(crate) total: usize,
}

/// Why [`CpuCursor::next_in`] did not return an item.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The stream is inconsistent here.
    Err(Error),
    /// The window ends before the bytes needed (which the stream has).
    More,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Err(e)
    }
}

impl Win<'_> {
    /// The `size`-byte integer at stream offset `off`; `None` past the stream's end.
    #[inline]
    fn uint(&self, off: usize, size: usize, e: Endian) -> Result<Option<u64>, Fail> {
        let Some(end) = off.checked_add(size) else { return Ok(None) };
        if end <= self.base + self.bytes.len() {
            return Ok(off.checked_sub(self.base).and_then(|o| read_uint(self.bytes, o, size, e)));
        }
        if end > self.total { Ok(None) } else { Err(Fail::More) }
    }
}

impl CpuCursor {
    /// A cursor at the start of a stream.
    pub fn new(
        cpu: u32,
        file_offset: u64,
        page_size: usize,
        long_size: usize,
        endian: Endian,
    ) -> Self {
        CpuCursor {
            cpu,
            file_offset,
            page_size,
            long_size,
            endian,
            page_start: 0,
            page: 0,
            pos: 0,
            end: 0,
            ts: 0,
            started: false,
            limit: usize::MAX,
        }
    }

    /// Reads only pages `first..last` (indices in the stream).
    pub(crate) fn pages(mut self, first: usize, last: usize) -> Self {
        self.page_start = first.saturating_mul(self.page_size);
        self.page = first as u64;
        self.limit = last.saturating_mul(self.page_size);
        self
    }

    fn err(&self, at: usize, what: impl Into<String>) -> Error {
        Error::Page {
            cpu: self.cpu,
            page: self.page,
            offset: self.file_offset + at as u64,
            what: what.into(),
        }
    }

    /// Loads the page at `page_start`; returns a Lost item if its header says so.
    fn load_page(&mut self, w: &Win<'_>) -> Result<Option<Item>, Fail> {
        let ps = self.page_start;
        let e = self.endian;
        let ts = w.uint(ps, 8, e)?.ok_or_else(|| self.err(ps, "truncated page header"))?;
        let commit = w
            .uint(ps + 8, self.long_size, e)?
            .ok_or_else(|| self.err(ps, "truncated page header"))?;
        let hdr = 8 + self.long_size;
        let len = (commit & COMMIT_MASK) as usize;
        if hdr + len > self.page_size {
            return Err(self
                .err(ps + 8, format!("page commit {len} exceeds the page size {}", self.page_size))
                .into());
        }
        if ps + hdr + len > w.total {
            return Err(self.err(ps, "page data is truncated").into());
        }
        if ps + hdr + len > w.base + w.bytes.len() {
            return Err(Fail::More);
        }
        self.ts = ts;
        self.pos = ps + hdr;
        self.end = ps + hdr + len;
        if commit & MISSED_EVENTS != 0 {
            let count = if commit & MISSED_STORED != 0 {
                w.uint(self.end, self.long_size, e)?
            } else {
                None
            };
            return Ok(Some(Item::Lost { ts, count }));
        }
        Ok(None)
    }

    /// The next item of the stream, `None` at its end.
    pub fn next_item(&mut self, data: &[u8]) -> Result<Option<Item>, Error> {
        let w = Win { bytes: data, base: 0, total: data.len() };
        match self.next_in(&w) {
            Ok(i) => Ok(i),
            Err(Fail::Err(e)) => Err(e),
            // The window is the whole stream: never asks for more.
            Err(Fail::More) => Err(self.err(self.pos, "internal: read past the stream")),
        }
    }

    /// The next item of the stream in window `w`, `None` at its end (or at the page limit).
    #[inline]
    pub(crate) fn next_in(&mut self, w: &Win<'_>) -> Result<Option<Item>, Fail> {
        let e = self.endian;
        loop {
            if !self.started {
                self.started = true;
                if w.total == 0 || self.page_start >= self.limit {
                    return Ok(None);
                }
                if let Some(l) = self.load_page(w)? {
                    return Ok(Some(l));
                }
            }
            if self.pos >= self.end {
                // Next page.
                let next = self.page_start + self.page_size;
                if next >= w.total || next >= self.limit {
                    self.pos = self.end;
                    return Ok(None);
                }
                self.page_start = next;
                self.page += 1;
                if let Some(l) = self.load_page(w)? {
                    return Ok(Some(l));
                }
                continue;
            }
            let at = self.pos;
            let word = w.uint(at, 4, e)?.ok_or_else(|| self.err(at, "truncated event header"))?;
            let word = word as u32;
            let (type_len, delta) = match e {
                Endian::Little => (word & 0x1f, u64::from(word >> 5)),
                Endian::Big => (word >> 27, u64::from(word & ((1 << 27) - 1))),
            };
            let array0 = || -> Result<u64, Fail> {
                w.uint(at + 4, 4, e)?
                    .ok_or_else(|| Fail::Err(self.err(at, "truncated event array word")))
            };
            match type_len {
                TYPE_PADDING => {
                    if delta == 0 {
                        self.pos = self.end;
                        continue;
                    }
                    let skip = array0()? as usize;
                    self.advance(at, 4 + skip)?;
                }
                TYPE_TIME_EXTEND => {
                    let hi = array0()?;
                    self.ts = self.ts.wrapping_add((hi << 27) + delta);
                    self.advance(at, 8)?;
                }
                TYPE_TIME_STAMP => {
                    let hi = array0()?;
                    self.ts = ((hi << 27) | delta) | (self.ts & (0xf8u64 << 56));
                    self.advance(at, 8)?;
                }
                0 => {
                    let len = array0()? as usize;
                    if len < 4 {
                        return Err(self
                            .err(at, format!("event length {len} is too small"))
                            .into());
                    }
                    let start = at + 8;
                    let plen = len - 4;
                    self.advance(at, 4 + len.next_multiple_of(4))?;
                    self.ts = self.ts.wrapping_add(delta);
                    return Ok(Some(Item::Record { ts: self.ts, start, len: plen }));
                }
                n => {
                    let plen = n as usize * 4;
                    self.advance(at, 4 + plen)?;
                    self.ts = self.ts.wrapping_add(delta);
                    return Ok(Some(Item::Record { ts: self.ts, start: at + 4, len: plen }));
                }
            }
        }
    }

    fn advance(&mut self, at: usize, n: usize) -> Result<(), Error> {
        let new = at + n;
        if new > self.end {
            return Err(self.err(at, format!("event of {n} bytes runs past the page data end")));
        }
        self.pos = new;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    /// Builds one 256-byte page from (type_len, time_delta, extra words) records.
    fn page(e: Endian, ts: u64, words: &[u32]) -> Vec<u8> {
        let mut p = Vec::new();
        let u64b = |v: u64| if e == Endian::Little { v.to_le_bytes() } else { v.to_be_bytes() };
        p.extend_from_slice(&u64b(ts));
        p.extend_from_slice(&u64b(words.len() as u64 * 4));
        for w in words {
            p.extend_from_slice(&if e == Endian::Little {
                w.to_le_bytes()
            } else {
                w.to_be_bytes()
            });
        }
        p.resize(256, 0);
        p
    }

    fn hdr(e: Endian, type_len: u32, delta: u32) -> u32 {
        match e {
            Endian::Little => type_len | (delta << 5),
            Endian::Big => (type_len << 27) | delta,
        }
    }

    fn items(e: Endian, data: &[u8]) -> Vec<Item> {
        let mut c = CpuCursor::new(3, 0x1000, 256, 8, e);
        let mut v = Vec::new();
        while let Some(i) = c.next_item(data).unwrap() {
            v.push(i);
        }
        v
    }

    #[test]
    fn page_format_from_header_page_text() {
        let text = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:8176;\tsigned:0;\n";
        let f = PageFormat::from_header_page(text, Endian::Little).unwrap();
        assert_eq!((f.page_size, f.long_size, f.header_len()), (8192, 8, 16));
        let k32 = text
            .replace("size:8;\tsigned:1", "size:4;\tsigned:1")
            .replace("offset:16", "offset:12");
        let f = PageFormat::from_header_page(&k32, Endian::Big).unwrap();
        assert_eq!((f.page_size, f.long_size), (8188, 4));
        assert_eq!(PageFormat::from_header_page("garbage", Endian::Little), None);
    }

    #[test]
    fn page_header_flags_and_stored_count() {
        let f = PageFormat { page_size: 256, long_size: 8, endian: Endian::Little };
        let mut p = page(Endian::Little, 77, &[hdr(Endian::Little, 1, 0), 5]);
        assert_eq!(f.header(&p), Some(PageHeader { timestamp: 77, data_len: 8, missed: None }));
        p[8..16].copy_from_slice(&(8u64 | MISSED_EVENTS).to_le_bytes());
        assert_eq!(f.header(&p).unwrap().missed, Some(None));
        p[8..16].copy_from_slice(&(8u64 | MISSED_EVENTS | MISSED_STORED).to_le_bytes());
        p[24..32].copy_from_slice(&42u64.to_le_bytes());
        assert_eq!(f.header(&p).unwrap().missed, Some(Some(42)));
        p[8..16].copy_from_slice(&300u64.to_le_bytes());
        assert_eq!(f.header(&p), None);
    }

    #[test]
    fn extends_absolute_stamps_large_records_and_padding() {
        for e in [Endian::Little, Endian::Big] {
            let words = [
                hdr(e, 1, 5),
                0xaaaa_aaaa, // 4-byte record at ts 1005
                hdr(e, TYPE_TIME_EXTEND, 3),
                1, // + (1 << 27) + 3
                hdr(e, 2, 2),
                1,
                2, // 8-byte record
                hdr(e, TYPE_PADDING, 1),
                12,
                0,
                0, // discarded event: 4 + 12 bytes (array[0] counts itself), no time
                hdr(e, TYPE_TIME_STAMP, 7),
                2, // absolute (2 << 27) | 7
                hdr(e, 0, 1),
                12,
                9,
                9, // type_len 0: length 12 → 8 payload bytes
            ];
            let data = page(e, 1000, &words);
            let got = items(e, &data);
            let t1 = 1005;
            let t2 = t1 + (1 << 27) + 3 + 2;
            let t3 = (2 << 27 | 7) + 1;
            assert_eq!(
                got,
                vec![
                    Item::Record { ts: t1, start: 20, len: 4 },
                    Item::Record { ts: t2, start: 36, len: 8 },
                    Item::Record { ts: t3, start: 76, len: 8 },
                ],
                "{e:?}"
            );
        }
    }

    #[test]
    fn thirty_two_bit_kernel_page_header_is_12_bytes() {
        let e = Endian::Little;
        let mut data = vec![0u8; 256];
        data[0..8].copy_from_slice(&500u64.to_le_bytes());
        data[8..12].copy_from_slice(&8u32.to_le_bytes());
        data[12..16].copy_from_slice(&hdr(e, 1, 4).to_le_bytes());
        data[16..20].copy_from_slice(&7u32.to_le_bytes());
        let mut c = CpuCursor::new(0, 0, 256, 4, e);
        assert_eq!(c.next_item(&data).unwrap(), Some(Item::Record { ts: 504, start: 16, len: 4 }));
        assert_eq!(c.next_item(&data).unwrap(), None);
    }

    #[test]
    fn missed_events_flag_and_count() {
        let e = Endian::Little;
        let mut data = page(e, 50, &[hdr(e, 1, 1), 7]);
        let commit: u64 = 8 | (1 << 31) | (1 << 30);
        data[8..16].copy_from_slice(&commit.to_le_bytes());
        data[24..32].copy_from_slice(&99u64.to_le_bytes());
        assert_eq!(
            items(e, &data),
            vec![
                Item::Lost { ts: 50, count: Some(99) },
                Item::Record { ts: 51, start: 20, len: 4 }
            ]
        );
    }

    #[test]
    fn bad_commit_is_a_page_error_with_cpu_and_page() {
        let e = Endian::Little;
        let mut data = page(e, 0, &[]);
        data.extend(page(e, 0, &[]));
        data[256 + 8..256 + 16].copy_from_slice(&1000u64.to_le_bytes());
        let mut c = CpuCursor::new(3, 0x1000, 256, 8, e);
        let err = loop {
            match c.next_item(&data) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            err.to_string(),
            "cpu 3, page 1 (byte 0x1108): page commit 1000 exceeds the page size 256"
        );
    }
}
