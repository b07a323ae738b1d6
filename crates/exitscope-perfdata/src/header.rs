//! The perf.data file header, the event attributes and the feature sections
//! (`tools/perf/util/header.h`, `include/uapi/linux/perf_event.h`).

use crate::Error;
use crate::cursor::Cursor;

/// `PERFILE2` as a little-endian u64 (a big-endian writer's file starts `2ELIFREP`).
pub(crate) const MAGIC_LE: &[u8; 8] = b"PERFILE2";
pub(crate) const MAGIC_BE: &[u8; 8] = b"2ELIFREP";

/// Size of `struct perf_file_header` (file mode) and of the pipe header.
const FILE_HEADER_SIZE: u64 = 104;
const PIPE_HEADER_SIZE: u64 = 16;
/// `PERF_ATTR_SIZE_VER0`: the smallest `perf_event_attr`.
const ATTR_SIZE_VER0: u64 = 64;

/// `PERF_TYPE_TRACEPOINT`.
pub(crate) const TYPE_TRACEPOINT: u32 = 2;

/// `perf_event_attr.sample_type` bits, in the order the fields appear in a sample.
pub(crate) mod sample {
    pub const IP: u64 = 1 << 0;
    pub const TID: u64 = 1 << 1;
    pub const TIME: u64 = 1 << 2;
    pub const ADDR: u64 = 1 << 3;
    pub const READ: u64 = 1 << 4;
    pub const CALLCHAIN: u64 = 1 << 5;
    pub const ID: u64 = 1 << 6;
    pub const CPU: u64 = 1 << 7;
    pub const PERIOD: u64 = 1 << 8;
    pub const STREAM_ID: u64 = 1 << 9;
    pub const RAW: u64 = 1 << 10;
    pub const IDENTIFIER: u64 = 1 << 16;
}

/// `perf_event_attr.read_format` bits.
pub(crate) mod read_format {
    pub const TOTAL_TIME_ENABLED: u64 = 1 << 0;
    pub const TOTAL_TIME_RUNNING: u64 = 1 << 1;
    pub const ID: u64 = 1 << 2;
    pub const GROUP: u64 = 1 << 3;
    pub const LOST: u64 = 1 << 4;
}

/// `perf_event_attr` flag bit `sample_id_all`.
const FLAG_SAMPLE_ID_ALL: u64 = 1 << 18;

/// Feature bits (`HEADER_*` in `tools/perf/util/header.h`).
pub(crate) mod feature {
    pub const TRACING_DATA: u32 = 1;
    pub const OSRELEASE: u32 = 4;
    pub const VERSION: u32 = 5;
    pub const NRCPUS: u32 = 7;
    pub const CPUID: u32 = 9;

    /// What a truncation error calls feature section `bit`.
    pub fn name(bit: u32) -> &'static str {
        match bit {
            TRACING_DATA => "tracing data feature section",
            2 => "build id feature section",
            3 => "hostname feature section",
            OSRELEASE => "osrelease feature section",
            VERSION => "version feature section",
            NRCPUS => "nrcpus feature section",
            CPUID => "cpuid feature section",
            12 => "event_desc feature section",
            _ => "feature section",
        }
    }
}

/// One `perf_event_attr` of the file, with the sample ids that belong to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// `type` (`2` = `PERF_TYPE_TRACEPOINT`).
    pub kind: u32,
    /// `config`: for tracepoints, the event id (`common_type` of its records).
    pub config: u64,
    /// `sample_type` bits (which fields each sample carries).
    pub sample_type: u64,
    /// `read_format` bits.
    pub read_format: u64,
    /// Whether non-sample records carry a `sample_id` trailer.
    pub sample_id_all: bool,
    /// Sample ids (`PERF_SAMPLE_ID`/`IDENTIFIER` values) of this event.
    pub ids: Vec<u64>,
}

impl Attr {
    /// Parses a `perf_event_attr` of `len` bytes at the cursor.
    pub(crate) fn parse(c: &mut Cursor<'_>, len: u64) -> Result<Attr, Error> {
        let at = c.offset();
        if len < ATTR_SIZE_VER0 {
            return Err(Error::Malformed {
                offset: at,
                what: format!("perf_event_attr of {len} bytes: expected at least {ATTR_SIZE_VER0}"),
            });
        }
        let body = c.bytes_u64(len, "perf_event_attr")?;
        let mut a = Cursor::new(body, at, c.is_big_endian());
        let kind = a.u32("attr type")?;
        a.u32("attr size")?;
        let config = a.u64("attr config")?;
        a.u64("attr sample_period")?;
        let sample_type = a.u64("attr sample_type")?;
        let read_format = a.u64("attr read_format")?;
        let flags = a.u64("attr flags")?;
        Ok(Attr {
            kind,
            config,
            sample_type,
            read_format,
            sample_id_all: flags & FLAG_SAMPLE_ID_ALL != 0,
            ids: Vec::new(),
        })
    }
}

/// A `perf_file_section`: where a part of the file lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Section {
    pub offset: u64,
    pub size: u64,
}

impl Section {
    fn parse(c: &mut Cursor<'_>, what: &'static str) -> Result<Section, Error> {
        Ok(Section { offset: c.u64(what)?, size: c.u64(what)? })
    }

    /// The section's bytes, or an error naming `what` when it lies outside the file.
    pub(crate) fn slice<'a>(&self, file: &'a [u8], what: &'static str) -> Result<&'a [u8], Error> {
        let range = usize::try_from(self.offset).ok().and_then(|start| {
            let end = start.checked_add(usize::try_from(self.size).ok()?)?;
            file.get(start..end)
        });
        range.ok_or(Error::Truncated {
            offset: self.offset,
            what,
            needed: self.size,
            available: (file.len() as u64).saturating_sub(self.offset),
        })
    }
}

/// What the header says, before any record is read.
#[derive(Debug)]
pub(crate) struct FileHeader {
    pub big_endian: bool,
    /// Pipe mode (`perf record -o -`): no sections; attrs and tracing data come as records.
    pub pipe: bool,
    pub attrs: Vec<Attr>,
    /// Where the records are (pipe mode: from the end of the header to the end of the file).
    pub data: Section,
    /// (feature bit, section) for each feature the file has.
    pub features: Vec<(u32, Section)>,
}

impl FileHeader {
    pub(crate) fn parse(file: &[u8]) -> Result<FileHeader, Error> {
        let big_endian = match file.get(..8) {
            Some(m) if m == MAGIC_LE => false,
            Some(m) if m == MAGIC_BE => true,
            _ => return Err(Error::NotPerfData),
        };
        let mut c = Cursor::new(file, 0, big_endian);
        c.bytes(8, "magic")?;
        let size = c.u64("header size")?;
        if size == PIPE_HEADER_SIZE {
            let data = Section { offset: size, size: (file.len() as u64).saturating_sub(size) };
            return Ok(FileHeader {
                big_endian,
                pipe: true,
                attrs: Vec::new(),
                data,
                features: Vec::new(),
            });
        }
        if size != FILE_HEADER_SIZE {
            return Err(Error::Malformed {
                offset: 8,
                what: format!(
                    "header size {size}: expected {FILE_HEADER_SIZE} (file) or {PIPE_HEADER_SIZE} (pipe)"
                ),
            });
        }
        let attr_size = c.u64("attr size")?;
        let attrs_section = Section::parse(&mut c, "attrs section")?;
        let data_at = c.offset();
        let data = Section::parse(&mut c, "data section")?;
        Section::parse(&mut c, "event_types section")?;
        let mut bits = [0u64; 4];
        for w in &mut bits {
            *w = c.u64("feature bitmap")?;
        }
        if data.size == 0 && (file.len() as u64) > data.offset.max(FILE_HEADER_SIZE) {
            return Err(Error::Malformed {
                offset: data_at + 8,
                what: "data section size is 0: perf record did not finish writing this file \
                       (killed?); perf cannot read it either"
                    .into(),
            });
        }

        if attr_size < ATTR_SIZE_VER0 + 16 {
            return Err(Error::Malformed {
                offset: 16,
                what: format!("attr size {attr_size}: expected at least {}", ATTR_SIZE_VER0 + 16),
            });
        }
        let attr_bytes = attrs_section.slice(file, "attrs section")?;
        let mut ac = Cursor::new(attr_bytes, attrs_section.offset, big_endian);
        let mut attrs = Vec::new();
        for _ in 0..attrs_section.size / attr_size {
            let mut attr = Attr::parse(&mut ac, attr_size - 16)?;
            let ids = Section::parse(&mut ac, "attr ids section")?;
            let id_bytes = ids.slice(file, "attr ids")?;
            let mut ic = Cursor::new(id_bytes, ids.offset, big_endian);
            for _ in 0..ids.size / 8 {
                attr.ids.push(ic.u64("attr id")?);
            }
            attrs.push(attr);
        }
        if attrs.is_empty() {
            return Err(Error::Malformed {
                offset: attrs_section.offset,
                what: "the file declares no event attributes".into(),
            });
        }

        // One perf_file_section per set feature bit, in bit order, right after the data.
        // When the file ends inside the data, the record walk names the place instead.
        let table_at = data.offset.saturating_add(data.size);
        let mut features = Vec::new();
        if table_at <= file.len() as u64 {
            let table = file.get(table_at as usize..).unwrap_or(&[]);
            let mut fc = Cursor::new(table, table_at, big_endian);
            for bit in 0..256u32 {
                let word = bits.get((bit / 64) as usize).copied().unwrap_or(0);
                if word & (1 << (bit % 64)) != 0 {
                    features.push((bit, Section::parse(&mut fc, "feature section table")?));
                }
            }
            // Every section must lie in the file: a file cut short loses its feature
            // sections first (they follow the data), and perf refuses such a file too.
            for (bit, s) in &features {
                if s.slice(file, "feature section").is_err() {
                    return Err(Error::Truncated {
                        offset: s.offset,
                        what: feature::name(*bit),
                        needed: s.size,
                        available: (file.len() as u64).saturating_sub(s.offset),
                    });
                }
            }
        }
        Ok(FileHeader { big_endian, pipe: false, attrs, data, features })
    }

    /// The bytes of feature `bit`, when the file has it.
    pub(crate) fn feature<'a>(&self, file: &'a [u8], bit: u32) -> Result<Option<&'a [u8]>, Error> {
        match self.features.iter().find(|(b, _)| *b == bit) {
            Some((_, s)) => s.slice(file, "feature section").map(Some),
            None => Ok(None),
        }
    }

    /// A string feature (`u32 len` + NUL-padded bytes), lossily decoded.
    pub(crate) fn feature_string(&self, file: &[u8], bit: u32) -> Result<Option<String>, Error> {
        let Some((_, s)) = self.features.iter().find(|(b, _)| *b == bit) else {
            return Ok(None);
        };
        let mut c = Cursor::new(s.slice(file, "feature section")?, s.offset, self.big_endian);
        let n = c.u32("string length")?;
        let b = c.bytes(n as usize, "string")?;
        let b = b.iter().position(|&x| x == 0).and_then(|i| b.get(..i)).unwrap_or(b);
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }
}
