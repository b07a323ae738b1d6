//! The record stream: walking the data section (and `perf record -z`'s compressed records),
//! indexing the records that matter in timestamp order, and decoding samples.

use std::collections::HashMap;

use crate::Error;
use crate::cursor::Cursor;
use crate::header::{Attr, read_format, sample};

/// `PERF_RECORD_*` types this reader looks at.
pub(crate) mod kind {
    pub const LOST: u32 = 2;
    pub const COMM: u32 = 3;
    pub const SAMPLE: u32 = 9;
    pub const LOST_SAMPLES: u32 = 13;
    pub const HEADER_ATTR: u32 = 64;
    pub const HEADER_TRACING_DATA: u32 = 66;
    pub const AUXTRACE: u32 = 71;
    pub const COMPRESSED: u32 = 81;
    pub const COMPRESSED2: u32 = 83;
}

/// Largest decompressed stream accepted (guards memory against hostile input).
const MAX_DECOMPRESSED: usize = 1 << 32;

/// A record kept for the second pass, in timestamp order after sorting.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Sort key: the record's time, or the last time seen before it when it has none.
    pub ts: u64,
    /// Whether `ts` is the record's own time.
    pub has_ts: bool,
    /// `PERF_RECORD_*` type.
    pub kind: u32,
    /// Body (after the 8-byte header) in the file or, when `decompressed`, in the
    /// decompressed stream.
    pub at: usize,
    pub len: u32,
    pub decompressed: bool,
    /// File offset of the record (of the compressed record that carried it).
    pub offset: u64,
}

/// The fields of a sample this reader uses.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample<'a> {
    /// The sampled thread's process (`PERF_SAMPLE_TID`'s pid: the thread group id).
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub time: Option<u64>,
    pub cpu: Option<u32>,
    pub raw: Option<&'a [u8]>,
}

/// Reads a sample body laid out by `sample_type`, up to the raw data (later fields are not
/// needed). `at` is the body's file offset (for errors).
pub(crate) fn parse_sample<'a>(
    body: &'a [u8],
    at: u64,
    big_endian: bool,
    attr: &Attr,
) -> Result<Sample<'a>, Error> {
    let st = attr.sample_type;
    let mut c = Cursor::new(body, at, big_endian);
    let mut s = Sample::default();
    let skip = |c: &mut Cursor<'_>, bit: u64, what| {
        if st & bit != 0 { c.u64(what).map(|_| ()) } else { Ok(()) }
    };
    skip(&mut c, sample::IDENTIFIER, "sample identifier")?;
    skip(&mut c, sample::IP, "sample ip")?;
    if st & sample::TID != 0 {
        s.pid = Some(c.u32("sample pid")?);
        s.tid = Some(c.u32("sample tid")?);
    }
    if st & sample::TIME != 0 {
        s.time = Some(c.u64("sample time")?);
    }
    skip(&mut c, sample::ADDR, "sample addr")?;
    skip(&mut c, sample::ID, "sample id")?;
    skip(&mut c, sample::STREAM_ID, "sample stream_id")?;
    if st & sample::CPU != 0 {
        s.cpu = Some(c.u32("sample cpu")?);
        c.u32("sample cpu reserved")?;
    }
    skip(&mut c, sample::PERIOD, "sample period")?;
    if st & sample::READ != 0 {
        let rf = attr.read_format;
        let times = u64::from(rf & read_format::TOTAL_TIME_ENABLED != 0)
            + u64::from(rf & read_format::TOTAL_TIME_RUNNING != 0);
        let per_value =
            1 + u64::from(rf & read_format::ID != 0) + u64::from(rf & read_format::LOST != 0);
        if rf & read_format::GROUP != 0 {
            let nr = c.u64("sample read nr")?;
            c.skip_u64s(times, "sample read times")?;
            c.skip_u64s(nr.saturating_mul(per_value), "sample read values")?;
        } else {
            c.skip_u64s(times + per_value, "sample read value")?;
        }
    }
    if st & sample::CALLCHAIN != 0 {
        let nr = c.u64("sample callchain nr")?;
        c.skip_u64s(nr, "sample callchain")?;
    }
    if st & sample::RAW != 0 {
        let n = c.u32("sample raw size")?;
        s.raw = Some(c.bytes(n as usize, "sample raw data")?);
    }
    Ok(s)
}

/// The `sample_id` trailer of a non-sample record (`sample_id_all`): (time, cpu).
fn sample_id_trailer(body: &[u8], big_endian: bool, st: u64) -> (Option<u64>, Option<u32>) {
    let fields = [sample::TID, sample::TIME, sample::ID, sample::STREAM_ID, sample::CPU]
        .iter()
        .chain(&[sample::IDENTIFIER])
        .filter(|&&b| st & b != 0)
        .count();
    let Some(start) = body.len().checked_sub(fields * 8) else { return (None, None) };
    let mut c = Cursor::new(body.get(start..).unwrap_or_default(), 0, big_endian);
    if st & sample::TID != 0 && c.u64("tid").is_err() {
        return (None, None);
    }
    let time = if st & sample::TIME != 0 { c.u64("time").ok() } else { None };
    if st & sample::ID != 0 {
        let _ = c.u64("id");
    }
    if st & sample::STREAM_ID != 0 {
        let _ = c.u64("stream id");
    }
    let cpu = if st & sample::CPU != 0 { c.u32("cpu").ok() } else { None };
    (time, cpu)
}

/// Which attr a record belongs to, from its sample id (perf puts the id at the same place
/// for every attr of a file: first for samples and last for other records with
/// `PERF_SAMPLE_IDENTIFIER`, else where attr 0's layout puts `PERF_SAMPLE_ID`).
pub(crate) struct AttrIndex {
    by_id: HashMap<u64, usize>,
}

impl AttrIndex {
    pub(crate) fn new(attrs: &[Attr]) -> AttrIndex {
        let mut by_id = HashMap::new();
        for (i, a) in attrs.iter().enumerate() {
            for &id in &a.ids {
                by_id.insert(id, i);
            }
        }
        AttrIndex { by_id }
    }

    pub(crate) fn add(&mut self, index: usize, attr: &Attr) {
        for &id in &attr.ids {
            self.by_id.insert(id, index);
        }
    }

    /// The attr of a record (`None`: an id no attr declares).
    pub(crate) fn find<'t>(
        &self,
        attrs: &'t [Attr],
        kind: u32,
        body: &[u8],
        big_endian: bool,
    ) -> Option<&'t Attr> {
        let first = attrs.first()?;
        if attrs.len() == 1 {
            return Some(first);
        }
        let st = first.sample_type;
        let word = |i: usize| {
            let b: [u8; 8] = body.get(i..i + 8)?.try_into().ok()?;
            Some(if big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
        };
        let id = if kind == kind::SAMPLE {
            if st & sample::IDENTIFIER != 0 {
                word(0)?
            } else if st & sample::ID != 0 {
                let before = [sample::IP, sample::TID, sample::TIME, sample::ADDR]
                    .iter()
                    .filter(|&&b| st & b != 0)
                    .count();
                word(before * 8)?
            } else {
                return Some(first);
            }
        } else {
            if !first.sample_id_all {
                return Some(first);
            }
            if st & sample::IDENTIFIER != 0 {
                word(body.len().checked_sub(8)?)?
            } else if st & sample::ID != 0 {
                let after = [sample::STREAM_ID, sample::CPU].iter().filter(|&&b| st & b != 0);
                word(body.len().checked_sub(8 * (after.count() + 1))?)?
            } else {
                return Some(first);
            }
        };
        self.by_id.get(&id).and_then(|&i| attrs.get(i))
    }
}

/// First pass over the records: finds the attrs and tracing data of a pipe, decompresses,
/// and indexes samples, COMM and LOST records by time.
pub(crate) struct Walker<'a> {
    pub file: &'a [u8],
    pub big_endian: bool,
    pub attrs: Vec<Attr>,
    pub index: AttrIndex,
    /// Pipe mode: (file offset, bytes) of the tracing data that follows its record.
    pub tracing_data: Option<(u64, &'a [u8])>,
    pub entries: Vec<Entry>,
    pub decompressed: Vec<u8>,
    /// Start of the first incomplete record in `decompressed`.
    decompressed_walk: usize,
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
    /// File offset of the last compressed record (for errors about the stream).
    last_compressed: u64,
    pub compressed_records: u64,
    last_ts: u64,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(file: &'a [u8], big_endian: bool, attrs: Vec<Attr>) -> Self {
        let index = AttrIndex::new(&attrs);
        Walker {
            file,
            big_endian,
            attrs,
            index,
            tracing_data: None,
            entries: Vec::new(),
            decompressed: Vec::new(),
            decompressed_walk: 0,
            zstd: None,
            last_compressed: 0,
            compressed_records: 0,
            last_ts: 0,
        }
    }

    /// Walks the records of the file's data section `[start, end)`.
    pub(crate) fn walk_file(&mut self, start: u64, end: u64) -> Result<(), Error> {
        let file = self.file;
        let mut pos = start;
        while pos < end {
            let avail = end - pos;
            let mut c = Cursor::new(
                file.get(pos as usize..end as usize).unwrap_or_default(),
                pos,
                self.big_endian,
            );
            let kind = c.u32("record header")?;
            c.u16("record header")?;
            let size = u64::from(c.u16("record header")?);
            if size < 8 {
                return Err(Error::Malformed {
                    offset: pos,
                    what: format!("record of type {kind} has size {size}: expected at least 8"),
                });
            }
            if size > avail {
                let what = if end == file.len() as u64 {
                    "record (the file ends)"
                } else {
                    "record (the data section ends)"
                };
                return Err(Error::Truncated { offset: pos, what, needed: size, available: avail });
            }
            let body_at = pos + 8;
            let body = c.bytes_u64(size - 8, "record body")?;
            let mut next = pos + size;
            match kind {
                kind::COMPRESSED | kind::COMPRESSED2 => {
                    let data = if kind == kind::COMPRESSED2 {
                        let mut b = Cursor::new(body, body_at, self.big_endian);
                        let n = b.u64("compressed data size")?;
                        b.bytes_u64(n, "compressed data")?
                    } else {
                        body
                    };
                    self.decompress(data, pos)?;
                }
                kind::HEADER_TRACING_DATA => {
                    // The tracing data follows the record, outside its size.
                    let n = u64::from(Cursor::new(body, body_at, self.big_endian).u32("size")?);
                    let mut t = Cursor::new(
                        file.get(next as usize..end as usize).unwrap_or_default(),
                        next,
                        self.big_endian,
                    );
                    let data = t.bytes_u64(n, "tracing data after its record")?;
                    self.tracing_data = Some((next, data));
                    next += n;
                }
                kind::AUXTRACE => {
                    // AUX area data follows the record, outside its size.
                    let n = Cursor::new(body, body_at, self.big_endian).u64("auxtrace size")?;
                    if n > end - next {
                        return Err(Error::Truncated {
                            offset: next,
                            what: "auxtrace data after its record",
                            needed: n,
                            available: end - next,
                        });
                    }
                    next += n;
                }
                kind::HEADER_ATTR => self.header_attr(body, body_at)?,
                _ => self.index_record(kind, body_at as usize, body, false, pos),
            }
            pos = next;
        }
        if self.decompressed_walk < self.decompressed.len() {
            return Err(Error::Malformed {
                offset: self.last_compressed,
                what: format!(
                    "compressed records end inside a record ({} bytes left over)",
                    self.decompressed.len() - self.decompressed_walk
                ),
            });
        }
        Ok(())
    }

    /// A pipe's `PERF_RECORD_HEADER_ATTR`: an attr followed by its ids.
    fn header_attr(&mut self, body: &[u8], at: u64) -> Result<(), Error> {
        let mut c = Cursor::new(body, at, self.big_endian);
        let mut probe = c;
        probe.u32("attr type")?;
        let size = u64::from(probe.u32("attr size")?);
        let mut attr = Attr::parse(&mut c, size)?;
        while c.remaining() >= 8 {
            attr.ids.push(c.u64("attr id")?);
        }
        self.index.add(self.attrs.len(), &attr);
        self.attrs.push(attr);
        Ok(())
    }

    /// Appends a compressed record's data to the decompressed stream (one zstd stream spans
    /// all of them) and indexes the records it completes.
    fn decompress(&mut self, data: &[u8], offset: u64) -> Result<(), Error> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        self.compressed_records += 1;
        self.last_compressed = offset;
        let err = |msg: String| Error::Decompress { offset, msg };
        if self.zstd.is_none() {
            self.zstd = Some(zstd::stream::raw::Decoder::new().map_err(|e| err(e.to_string()))?);
        }
        let Some(dec) = self.zstd.as_mut() else { return Ok(()) };
        let mut input = InBuffer::around(data);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let mut out = OutBuffer::around(&mut chunk[..]);
            dec.run(&mut input, &mut out).map_err(|e| err(e.to_string()))?;
            let n = out.pos();
            let produced = chunk.get(..n).unwrap_or_default();
            if self.decompressed.len() + n > MAX_DECOMPRESSED {
                return Err(err(format!(
                    "decompressed data exceeds {} GiB",
                    MAX_DECOMPRESSED >> 30
                )));
            }
            self.decompressed.extend_from_slice(produced);
            if input.pos() >= data.len() && n < chunk.len() {
                break;
            }
        }
        // Index the complete records now in the decompressed stream (taken out of `self`
        // for the loop, so its records can be borrowed while indexing).
        let stream = std::mem::take(&mut self.decompressed);
        let result = self.index_decompressed(&stream, offset);
        self.decompressed = stream;
        result
    }

    fn index_decompressed(&mut self, stream: &[u8], offset: u64) -> Result<(), Error> {
        loop {
            let rest = stream.get(self.decompressed_walk..).unwrap_or_default();
            let mut c = Cursor::new(rest, 0, self.big_endian);
            let (Ok(kind), Ok(_), Ok(size)) =
                (c.u32("record header"), c.u16("record header"), c.u16("record header"))
            else {
                break;
            };
            let size = usize::from(size);
            if size < 8 {
                return Err(Error::Malformed {
                    offset,
                    what: format!(
                        "record of type {kind} in compressed data (decompressed byte {:#x}) has size {size}: expected at least 8",
                        self.decompressed_walk
                    ),
                });
            }
            if rest.len() < size {
                break;
            }
            let body_at = self.decompressed_walk + 8;
            let len = size - 8;
            let body = stream.get(body_at..body_at + len).unwrap_or_default();
            self.index_record(kind, body_at, body, true, offset);
            self.decompressed_walk += size;
        }
        Ok(())
    }

    fn index_record(&mut self, kind: u32, at: usize, body: &[u8], decompressed: bool, offset: u64) {
        if !matches!(kind, kind::SAMPLE | kind::COMM | kind::LOST | kind::LOST_SAMPLES) {
            return;
        }
        let time = match self.index.find(&self.attrs, kind, body, self.big_endian) {
            Some(attr) if kind == kind::SAMPLE => {
                parse_sample(body, 0, self.big_endian, attr).ok().and_then(|s| s.time)
            }
            Some(attr) if attr.sample_id_all => {
                sample_id_trailer(body, self.big_endian, attr.sample_type).0
            }
            _ => None,
        };
        if let Some(t) = time {
            self.last_ts = t;
        }
        self.entries.push(Entry {
            ts: time.unwrap_or(self.last_ts),
            has_ts: time.is_some(),
            kind,
            at,
            len: body.len() as u32,
            decompressed,
            offset,
        });
    }
}

/// CPU of a non-sample record (LOST), from its `sample_id` trailer.
pub(crate) fn trailer_cpu(body: &[u8], big_endian: bool, attr: &Attr) -> Option<u32> {
    if !attr.sample_id_all {
        return None;
    }
    sample_id_trailer(body, big_endian, attr.sample_type).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(sample_type: u64, read_format: u64) -> Attr {
        Attr { kind: 2, config: 1, sample_type, read_format, sample_id_all: true, ids: vec![] }
    }

    fn words(w: &[u64]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn sample_fields_before_raw_are_skipped_by_sample_type() {
        // IDENTIFIER, IP, TID, TIME, CPU, READ (group of 2 with ids), CALLCHAIN (3), RAW.
        let st = sample::IDENTIFIER
            | sample::IP
            | sample::TID
            | sample::TIME
            | sample::CPU
            | sample::READ
            | sample::CALLCHAIN
            | sample::RAW;
        let rf = read_format::GROUP | read_format::ID | read_format::TOTAL_TIME_ENABLED;
        let mut b = words(&[7, 0xffff, (42 << 32) | 41, 1234, 3]);
        b.extend(words(&[2, 99, 10, 1, 20, 2])); // nr, enabled, (value, id) x2
        b.extend(words(&[3, 1, 2, 3])); // callchain
        b.extend(4u32.to_le_bytes());
        b.extend([0xaa, 0xbb, 0xcc, 0xdd]);
        let s = parse_sample(&b, 0, false, &attr(st, rf)).unwrap();
        assert_eq!((s.tid, s.time, s.cpu), (Some(42), Some(1234), Some(3)));
        assert_eq!(s.pid, Some(41));
        assert_eq!(s.raw, Some(&[0xaa, 0xbb, 0xcc, 0xdd][..]));
        // One byte short of the raw data: an error naming the field.
        let e = parse_sample(&b[..b.len() - 1], 0x100, false, &attr(st, rf)).unwrap_err();
        assert!(e.to_string().contains("truncated sample raw data"), "{e}");
    }

    #[test]
    fn records_are_matched_to_attrs_by_sample_id() {
        let st = sample::TID | sample::TIME | sample::ID | sample::CPU | sample::RAW;
        let mut a = attr(st, 0);
        a.ids = vec![5];
        let mut b = attr(st, 0);
        b.config = 2;
        b.ids = vec![6];
        let attrs = vec![a, b];
        let idx = AttrIndex::new(&attrs);
        // Sample: tid, time, id.
        let body = words(&[1, 2, 6, 0]);
        assert_eq!(idx.find(&attrs, kind::SAMPLE, &body, false).map(|a| a.config), Some(2));
        // Non-sample record: the trailer ends with id then cpu.
        let body = words(&[0, 0, 1, 2, 5, 0]);
        assert_eq!(idx.find(&attrs, kind::LOST, &body, false).map(|a| a.config), Some(1));
        let body = words(&[1, 2, 77, 0]);
        assert!(idx.find(&attrs, kind::SAMPLE, &body, false).is_none());
    }
}
