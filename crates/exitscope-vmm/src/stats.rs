//! KVM binary statistics (`KVM_GET_STATS_FD`) of a vCPU: the `exits`, `io_exits`,
//! `mmio_exits`, ... counters that show how many exits one benchmark iteration caused.
//!
//! The fd holds a header, an array of descriptors (each followed by its name) and a
//! data block of `u64` values; see `Documentation/virt/kvm/api.rst`, "KVM_GET_STATS_FD".
//! The layout is read once; each [`StatsReader::snapshot`] is then one `pread` of the data.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Size of `struct kvm_stats_header`.
const HEADER_SIZE: usize = 24;
/// Size of `struct kvm_stats_desc` without its trailing name.
const DESC_SIZE: usize = 16;
/// `KVM_STATS_TYPE_MASK` and `KVM_STATS_TYPE_CUMULATIVE`.
const TYPE_MASK: u32 = 0xf;
const TYPE_CUMULATIVE: u32 = 0;

/// One single-value counter in the stats data block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// KVM's name (`exits`, `io_exits`, ...).
    pub name: String,
    /// Index of the counter's `u64` in the data block.
    pub index: usize,
    /// True for counters that only grow (the ones whose deltas mean "events").
    pub cumulative: bool,
}

/// Where things are in a stats fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsLayout {
    /// Offset of the data block.
    pub data_offset: u64,
    /// Number of `u64`s in the data block covered by the descriptors.
    pub data_len: usize,
    /// Single-value counters (histograms are left out).
    pub counters: Vec<Counter>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Parses the header and descriptors from the first bytes of a stats fd.
/// `buf` must extend at least to the end of the descriptor array.
pub fn parse_layout(buf: &[u8]) -> Option<StatsLayout> {
    let name_size = usize::try_from(u32_at(buf, 4)?).ok()?;
    let num_desc = usize::try_from(u32_at(buf, 8)?).ok()?;
    let desc_offset = usize::try_from(u32_at(buf, 16)?).ok()?;
    let data_offset = u64::from(u32_at(buf, 20)?);
    let stride = DESC_SIZE + name_size;
    let mut counters = Vec::with_capacity(num_desc);
    let mut data_len = 0;
    for i in 0..num_desc {
        let d = desc_offset + i * stride;
        let flags = u32_at(buf, d)?;
        let size = usize::from(u16_at(buf, d + 6)?);
        let offset = usize::try_from(u32_at(buf, d + 8)?).ok()?;
        let name_bytes = buf.get(d + DESC_SIZE..d + stride)?;
        let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        if offset % 8 != 0 {
            return None;
        }
        data_len = data_len.max(offset / 8 + size);
        if size == 1 {
            counters.push(Counter {
                name,
                index: offset / 8,
                cumulative: flags & TYPE_MASK == TYPE_CUMULATIVE,
            });
        }
    }
    Some(StatsLayout { data_offset, data_len, counters })
}

/// The values of every counter at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(pub Vec<u64>);

/// Reads a vCPU's stats fd.
#[derive(Debug)]
pub struct StatsReader {
    file: File,
    layout: StatsLayout,
    buf: Vec<u8>,
}

impl StatsReader {
    /// Reads the layout of the stats fd `file`.
    ///
    /// # Errors
    ///
    /// I/O errors, or `InvalidData` if the header is malformed.
    pub fn new(file: File) -> io::Result<Self> {
        let mut head = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut head, 0)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed KVM stats header");
        let desc_offset = u32_at(&head, 16).ok_or_else(bad)?;
        let data_offset = u32_at(&head, 20).ok_or_else(bad)?;
        // Descriptors lie between the header and the data block.
        let end = usize::try_from(data_offset.max(desc_offset)).map_err(|_| bad())?;
        let mut meta = vec![0u8; end];
        file.read_exact_at(&mut meta, 0)?;
        let layout = parse_layout(&meta).ok_or_else(bad)?;
        let buf = vec![0u8; layout.data_len * 8];
        Ok(StatsReader { file, layout, buf })
    }

    /// The counters this reader knows.
    pub fn layout(&self) -> &StatsLayout {
        &self.layout
    }

    /// Reads every counter now.
    ///
    /// # Errors
    ///
    /// I/O errors from `pread`.
    pub fn snapshot(&mut self) -> io::Result<Snapshot> {
        self.file.read_exact_at(&mut self.buf, self.layout.data_offset)?;
        Ok(Snapshot(
            self.buf
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ))
    }

    /// Cumulative counters that changed between `before` and `after`, with their deltas.
    pub fn deltas(&self, before: &Snapshot, after: &Snapshot) -> Vec<(String, u64)> {
        self.layout
            .counters
            .iter()
            .filter(|c| c.cumulative)
            .filter_map(|c| {
                let d = after.0.get(c.index)?.wrapping_sub(*before.0.get(c.index)?);
                (d != 0).then(|| (c.name.clone(), d))
            })
            .collect()
    }

    /// Index of the counter `name`, for cheap repeated lookups.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.layout.counters.iter().find(|c| c.name == name).map(|c| c.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a stats fd image the way the kernel lays it out.
    fn image(descs: &[(&str, u32, u16, u32)], values: &[u64]) -> Vec<u8> {
        let name_size = 48u32;
        let id_offset = HEADER_SIZE as u32;
        let desc_offset = id_offset + name_size;
        let stride = DESC_SIZE as u32 + name_size;
        let data_offset = desc_offset + stride * descs.len() as u32;
        let mut b = Vec::new();
        for v in [0, name_size, descs.len() as u32, id_offset, desc_offset, data_offset] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.resize(desc_offset as usize, 0);
        for (name, flags, size, offset) in descs {
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(name_size as usize, 0);
            b.extend_from_slice(&n);
        }
        for v in values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_counters_and_skips_histograms() {
        let img = image(
            &[
                ("exits", 0, 1, 0),
                ("halt_poll_hist", 3, 4, 8),
                ("io_exits", 0, 1, 40),
                ("peak", 2, 1, 48),
            ],
            &[10, 0, 0, 0, 0, 3, 99],
        );
        let l = parse_layout(&img).unwrap();
        assert_eq!(l.data_len, 7);
        let names: Vec<_> =
            l.counters.iter().map(|c| (c.name.as_str(), c.index, c.cumulative)).collect();
        assert_eq!(names, [("exits", 0, true), ("io_exits", 5, true), ("peak", 6, false)]);
    }

    #[test]
    fn reads_a_file_and_computes_deltas() {
        let dir = std::env::temp_dir().join(format!("exitscope-stats-{}", std::process::id()));
        let descs = [("exits", 0, 1, 0), ("io_exits", 0, 1, 8), ("mmio_exits", 0, 1, 16)];
        std::fs::write(&dir, image(&descs, &[5, 1, 7])).unwrap();
        let mut r = StatsReader::new(File::open(&dir).unwrap()).unwrap();
        let a = r.snapshot().unwrap();
        std::fs::write(&dir, image(&descs, &[105, 101, 7])).unwrap();
        let b = r.snapshot().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(r.deltas(&a, &b), [("exits".to_string(), 100), ("io_exits".to_string(), 100)]);
        assert_eq!(r.index_of("mmio_exits"), Some(2));
    }

    #[test]
    fn truncated_input_is_rejected() {
        let img = image(&[("exits", 0, 1, 0)], &[1]);
        assert!(parse_layout(&img[..30]).is_none());
    }
}
