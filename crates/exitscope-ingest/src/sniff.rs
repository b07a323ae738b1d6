//! What an input's first bytes say it is.

use exitscope_model::InputFormat;

const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";
/// How much of the head the text/binary decision looks at.
const TEXT_WINDOW: usize = 8192;

/// A compression an input is wrapped in; it is undone transparently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`.gz`; several members are read as one stream, like `zcat`).
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
}

impl Compression {
    /// `gzip` or `zstd`, as in [`exitscope_model::InputSummary::compression`].
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the first bytes of an input are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// Nothing at all.
    Empty,
    /// A format with a magic number: [`InputFormat::TraceDat`] or [`InputFormat::PerfData`].
    Binary(InputFormat),
    /// gzip or zstd around something else (sniffed again after decompression).
    Compressed(Compression),
    /// Bytes that are neither a known binary format nor text.
    Unknown,
    /// Text, read as ftrace text.
    Text,
}

/// Recognise `head`, the first bytes of an input (a few KiB are enough).
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.is_empty() {
        Sniffed::Empty
    } else if exitscope_tracedat::is_trace_dat(head) {
        Sniffed::Binary(InputFormat::TraceDat)
    } else if exitscope_perfdata::is_perf_data(head) {
        Sniffed::Binary(InputFormat::PerfData)
    } else if head.starts_with(GZIP_MAGIC) {
        Sniffed::Compressed(Compression::Gzip)
    } else if head.starts_with(ZSTD_MAGIC) {
        Sniffed::Compressed(Compression::Zstd)
    } else if looks_binary(head) {
        Sniffed::Unknown
    } else {
        Sniffed::Text
    }
}

/// A NUL byte, or more than one control character in sixteen, in the first 8 KiB: ftrace
/// text has neither (comm names are printable; tabs, newlines and ESC of colored pastes are
/// allowed), random or compressed bytes have both.
fn looks_binary(head: &[u8]) -> bool {
    let w = &head[..head.len().min(TEXT_WINDOW)];
    if w.contains(&0) {
        return true;
    }
    let control = w
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)) || b == 0x7f)
        .count();
    control * 16 > w.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_and_text() {
        assert_eq!(sniff(b""), Sniffed::Empty);
        assert_eq!(sniff(b"\x17\x08\x44tracing6\0"), Sniffed::Binary(InputFormat::TraceDat));
        assert_eq!(sniff(b"PERFILE2\x68\0\0\0"), Sniffed::Binary(InputFormat::PerfData));
        assert_eq!(sniff(b"\x1f\x8b\x08\0"), Sniffed::Compressed(Compression::Gzip));
        assert_eq!(sniff(b"\x28\xb5\x2f\xfd\x04"), Sniffed::Compressed(Compression::Zstd));
        assert_eq!(sniff(b" 0)   0.080 us    |  f();\n"), Sniffed::Text);
        assert_eq!(sniff(b"   \n\t\n"), Sniffed::Text);
        assert_eq!(sniff(b"ab\0cd"), Sniffed::Unknown);
        let noise: Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert_eq!(sniff(&noise), Sniffed::Unknown);
    }
}
