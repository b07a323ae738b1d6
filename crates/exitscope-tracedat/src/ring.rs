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
        }
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
    fn load_page(&mut self, data: &[u8]) -> Result<Option<Item>, Error> {
        let ps = self.page_start;
        let e = self.endian;
        let ts = read_uint(data, ps, 8, e).ok_or_else(|| self.err(ps, "truncated page header"))?;
        let commit = read_uint(data, ps + 8, self.long_size, e)
            .ok_or_else(|| self.err(ps, "truncated page header"))?;
        let hdr = 8 + self.long_size;
        let len = (commit & COMMIT_MASK) as usize;
        if hdr + len > self.page_size {
            return Err(self.err(
                ps + 8,
                format!("page commit {len} exceeds the page size {}", self.page_size),
            ));
        }
        if ps + hdr + len > data.len() {
            return Err(self.err(ps, "page data is truncated"));
        }
        self.ts = ts;
        self.pos = ps + hdr;
        self.end = ps + hdr + len;
        if commit & MISSED_EVENTS != 0 {
            let count = if commit & MISSED_STORED != 0 {
                read_uint(data, self.end, self.long_size, e)
            } else {
                None
            };
            return Ok(Some(Item::Lost { ts, count }));
        }
        Ok(None)
    }

    /// The next item of the stream, `None` at its end.
    pub fn next_item(&mut self, data: &[u8]) -> Result<Option<Item>, Error> {
        let e = self.endian;
        loop {
            if !self.started {
                self.started = true;
                if data.is_empty() {
                    return Ok(None);
                }
                if let Some(l) = self.load_page(data)? {
                    return Ok(Some(l));
                }
            }
            if self.pos >= self.end {
                // Next page.
                let next = self.page_start + self.page_size;
                if next >= data.len() {
                    self.pos = self.end;
                    return Ok(None);
                }
                self.page_start = next;
                self.page += 1;
                if let Some(l) = self.load_page(data)? {
                    return Ok(Some(l));
                }
                continue;
            }
            let at = self.pos;
            let w = read_uint(data, at, 4, e)
                .ok_or_else(|| self.err(at, "truncated event header"))? as u32;
            let (type_len, delta) = match e {
                Endian::Little => (w & 0x1f, u64::from(w >> 5)),
                Endian::Big => (w >> 27, u64::from(w & ((1 << 27) - 1))),
            };
            let array0 = || {
                read_uint(data, at + 4, 4, e)
                    .ok_or_else(|| self.err(at, "truncated event array word"))
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
                        return Err(self.err(at, format!("event length {len} is too small")));
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
