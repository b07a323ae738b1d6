//! Splits a byte stream into lines with a fixed-size buffer, so memory does not grow with the
//! input and no line is ever copied. Over-long lines are reported, not buffered.

use std::io::{self, Read};

/// Lines longer than this are skipped with a diagnostic; real ftrace lines are far shorter, so
/// a longer "line" means the input is not text (or is one huge line of junk).
pub const MAX_LINE: usize = 64 * 1024;

const BUF_SIZE: usize = 1024 * 1024;

/// What the line callback is handed.
pub enum Chunk<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`), already known to be
    /// UTF-8 (the reader validates whole blocks of lines at once, which is much faster than
    /// line by line).
    Text(&'a str),
    /// A complete line without its `\n` (and without a trailing `\r`), not validated (a block
    /// that holds a line that is not UTF-8, or the last line).
    Line(&'a [u8]),
    /// A line longer than [`MAX_LINE`] that was skipped; its length in bytes.
    TooLong(u64),
}

/// Feed every line of `rdr` to `each`, which returns `false` to stop early.
/// Returns the number of bytes read.
pub fn for_each_line<R: Read>(
    mut rdr: R,
    mut each: impl FnMut(Chunk<'_>) -> bool,
) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut start = 0usize; // first byte of the pending (incomplete) line
    let mut end = 0usize; // end of valid data
    let mut total = 0u64;
    // When skipping an over-long line: bytes skipped so far.
    let mut skipping: Option<u64> = None;
    loop {
        // Make room: move the pending partial line to the front.
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = match rdr.read(&mut buf[end..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let eof = n == 0;
        end += n;
        let mut pos = 0usize;
        let complete = memchr::memrchr(b'\n', &buf[..end]).unwrap_or(0);
        let text = std::str::from_utf8(&buf[..complete]).ok();
        for nl in memchr::memchr_iter(b'\n', &buf[..end]) {
            let chunk = match skipping.take() {
                Some(skipped) => Chunk::TooLong(skipped + nl as u64),
                None => line_chunk(&buf, text, pos, nl),
            };
            if !each(chunk) {
                return Ok(total);
            }
            pos = nl + 1;
        }
        start = pos;
        if eof {
            if start < end {
                match skipping.take() {
                    Some(skipped) => {
                        each(Chunk::TooLong(skipped + (end - start) as u64));
                    }
                    None => {
                        each(line_chunk(&buf, None, start, end));
                    }
                }
            } else if let Some(skipped) = skipping.take() {
                each(Chunk::TooLong(skipped));
            }
            return Ok(total);
        }
        // A partial line that fills more than MAX_LINE: stop buffering it.
        if end - start > MAX_LINE {
            *skipping.get_or_insert(0) += (end - start) as u64;
            start = end;
        }
    }
}

/// Every line of `bytes`, which is all in memory, split exactly as [`for_each_line`] splits a
/// stream of the same bytes.
pub fn for_each_line_in<'a>(bytes: &'a [u8], mut each: impl FnMut(Chunk<'a>)) {
    let text = std::str::from_utf8(bytes).ok();
    let mut pos = 0usize;
    for nl in memchr::memchr_iter(b'\n', bytes) {
        each(line_chunk(bytes, text, pos, nl));
        pos = nl + 1;
    }
    if pos < bytes.len() {
        each(line_chunk(bytes, text, pos, bytes.len()));
    }
}

/// The complete line `buf[from..to]` (without its `\n`): too long, or the line without a
/// trailing `\r`, as text when `text` (the validated start of `buf`) covers it. The length
/// counts the raw bytes, as the streaming reader measures a line it skips.
#[inline]
fn line_chunk<'a>(buf: &'a [u8], text: Option<&'a str>, from: usize, to: usize) -> Chunk<'a> {
    if to - from > MAX_LINE {
        return Chunk::TooLong((to - from) as u64);
    }
    match text.and_then(|t| t.get(from..to)) {
        Some(t) => Chunk::Text(t.strip_suffix('\r').unwrap_or(t)),
        None => Chunk::Line(trim_cr(&buf[from..to])),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for_each_line(input, |c| {
            out.push(match c {
                Chunk::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Chunk::Text(l) => l.to_owned(),
                Chunk::TooLong(n) => format!("<too long: {n}>"),
            });
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn splits_lines_with_and_without_final_newline() {
        assert_eq!(lines(b"a\nb\n"), ["a", "b"]);
        assert_eq!(lines(b"a\r\nb"), ["a", "b"]);
        assert_eq!(lines(b""), Vec::<String>::new());
        assert_eq!(lines(b"\n\n"), ["", ""]);
    }

    #[test]
    fn over_long_lines_are_skipped_and_measured() {
        let mut input = vec![b'x'; 3 * 1024 * 1024];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input);
        assert_eq!(got, [format!("<too long: {}>", 3 * 1024 * 1024), "ok".to_string()]);
        // A long line that fits in the buffer with its newline is too long all the same.
        let mut input = vec![b'y'; MAX_LINE + 1];
        input.extend_from_slice(b"\nok");
        assert_eq!(lines(&input), [format!("<too long: {}>", MAX_LINE + 1), "ok".to_string()]);
    }

    #[test]
    fn in_memory_split_matches_the_stream() {
        let mut long = vec![b'z'; MAX_LINE + 5];
        long.extend_from_slice(b"\r\nx\r\n\n\nlast");
        for input in [&b"a\nb\n"[..], b"a\r\nb", b"", b"\n\n", &long] {
            let mut got = Vec::new();
            for_each_line_in(input, |c| {
                got.push(match c {
                    Chunk::Line(l) => String::from_utf8_lossy(l).into_owned(),
                    Chunk::Text(l) => l.to_owned(),
                    Chunk::TooLong(n) => format!("<too long: {n}>"),
                })
            });
            assert_eq!(got, lines(input));
        }
    }

    #[test]
    fn lines_spanning_buffer_refills_are_intact() {
        // Reader that returns 7 bytes at a time.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(7).min(b.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = b"first line here\nsecond\nthird and last";
        let mut out = Vec::new();
        for_each_line(Dribble(text), |c| {
            match c {
                Chunk::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
                Chunk::Text(l) => out.push(l.to_owned()),
                Chunk::TooLong(_) => {}
            }
            true
        })
        .unwrap();
        assert_eq!(out, ["first line here", "second", "third and last"]);
    }
}
