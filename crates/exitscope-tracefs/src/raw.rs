//! One CPU's ring-buffer pages from `per_cpu/cpuN/trace_pipe_raw` (all `splice(2)` and pipe
//! handling of the crate).
//!
//! Two ways to read, as trace-cmd/libtracefs do:
//! - **splice** (preferred): `trace_pipe_raw → pipe → us`. The kernel moves only sub-buffers
//!   the writer has left, so every page arrives full, and the pages are handed over without
//!   being formatted or copied inside the kernel.
//! - **plain reads**, where splice is refused (and always for the final drain): each
//!   `read(2)` of one sub-buffer size returns one page, including the page still being
//!   written (partially filled, its tail zeroed).
//!
//! Both consume the pages from the ring buffer, so a reader of the same pages for a live
//! view (`exitscope top`) uses this type the same way, calling [`PageReader::read_rest`] at
//! each refresh to take the partial pages too.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Pipe capacity asked for (best effort; the default 64 KiB also works).
const PIPE_BYTES: i32 = 256 << 10;

/// How a [`PageReader`] gets pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMethod {
    /// `splice(2)` through a pipe: whole pages only.
    Splice,
    /// `read(2)` of one sub-buffer at a time.
    Read,
}

/// Reads whole sub-buffers of `page_size` bytes from one `trace_pipe_raw` (opened
/// non-blocking by the caller, who keeps the file so a restore can close it first).
#[derive(Debug)]
pub(crate) struct PageReader {
    page_size: usize,
    /// Read end and write end of the splice pipe; `None` once splice is not used.
    pipe: Option<(File, OwnedFd)>,
    /// Bytes of a page a short `read(2)` left incomplete.
    partial: Vec<u8>,
    buf: Vec<u8>,
}

impl PageReader {
    /// A reader for sub-buffers of `page_size` bytes; with `method` [`ReadMethod::Splice`] it
    /// makes its pipe now (falling back to reads if that fails).
    pub(crate) fn new(page_size: usize, method: ReadMethod) -> PageReader {
        let pipe = if method == ReadMethod::Splice { make_pipe().ok() } else { None };
        PageReader { page_size, pipe, partial: Vec::new(), buf: vec![0; page_size] }
    }

    /// The method in use now.
    pub(crate) fn method(&self) -> ReadMethod {
        if self.pipe.is_some() { ReadMethod::Splice } else { ReadMethod::Read }
    }

    /// Appends to `out` the whole pages available now (at most `max_pages`), and returns how
    /// many bytes it appended: 0 when nothing is ready. With splice these are only the pages
    /// the writer has left; with reads, also the page being written. A splice the kernel
    /// refuses (EINVAL, ENOSYS, ...) switches this reader to reads for good.
    pub(crate) fn read_ready(
        &mut self,
        raw: &File,
        out: &mut Vec<u8>,
        max_pages: usize,
    ) -> io::Result<usize> {
        if self.pipe.is_some() {
            match self.splice_pages(raw, out, max_pages) {
                Err(e) if splice_unsupported(&e) => self.pipe = None,
                r => return r,
            }
        }
        self.read_pages(raw, out, max_pages)
    }

    /// Appends to `out` every page left (the partial page being written included) with plain
    /// reads, at most `max_pages`; for the end of a recording, or a live view's refresh.
    pub(crate) fn read_rest(
        &mut self,
        raw: &File,
        out: &mut Vec<u8>,
        max_pages: usize,
    ) -> io::Result<usize> {
        self.read_pages(raw, out, max_pages)
    }

    fn splice_pages(
        &mut self,
        raw: &File,
        out: &mut Vec<u8>,
        max_pages: usize,
    ) -> io::Result<usize> {
        let Some((rd, wr)) = &mut self.pipe else { return Ok(0) };
        let want =
            (PIPE_BYTES as usize / self.page_size).clamp(1, max_pages.max(1)) * self.page_size;
        let moved = loop {
            // SAFETY: both descriptors are open for the duration of the call (`raw` is
            // borrowed, `wr` is owned by `self`); null offsets mean "use and advance the file
            // position"; splice writes no memory of ours.
            let n = unsafe {
                libc::splice(
                    raw.as_raw_fd(),
                    std::ptr::null_mut(),
                    wr.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n >= 0 {
                break usize::try_from(n).unwrap_or(0);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        // The pipe now holds exactly `moved` bytes; take them all.
        let start = out.len();
        out.resize(start + moved, 0);
        let mut got = 0;
        while got < moved {
            match rd.read(&mut out[start + got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    out.truncate(start + got);
                    return Err(e);
                }
            }
        }
        out.truncate(start + got);
        self.keep_whole_pages(out, start)
    }

    fn read_pages(&mut self, raw: &File, out: &mut Vec<u8>, max_pages: usize) -> io::Result<usize> {
        let start = out.len();
        let mut raw = raw;
        while (out.len() - start) / self.page_size < max_pages {
            let n = match raw.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            out.extend_from_slice(&self.buf[..n]);
        }
        self.keep_whole_pages(out, start)
    }

    /// Keeps whole pages of `out[start..]` (with any bytes left over from before in front)
    /// and holds back an incomplete tail.
    fn keep_whole_pages(&mut self, out: &mut Vec<u8>, start: usize) -> io::Result<usize> {
        if !self.partial.is_empty() {
            let fresh = out.split_off(start);
            out.append(&mut self.partial);
            out.extend_from_slice(&fresh);
        }
        let whole = (out.len() - start) / self.page_size * self.page_size;
        self.partial = out.split_off(start + whole);
        Ok(whole)
    }

    /// Bytes of an incomplete page still held back (a kernel never leaves any).
    pub(crate) fn held_back(&self) -> usize {
        self.partial.len()
    }
}

fn splice_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF))
}

fn make_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an open descriptor we own; F_SETPIPE_SZ takes an int and touches no
    // memory of ours. Failure (a lower pipe-max-size) keeps the default size.
    let _ = unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
    Ok((File::from(rd), wr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(n: usize, ps: usize) -> Vec<u8> {
        (0..n * ps).map(|i| (i / ps) as u8 ^ (i % 251) as u8).collect()
    }

    fn read_all(method: ReadMethod, data: &[u8], ps: usize, max: usize) -> (Vec<u8>, ReadMethod) {
        let dir =
            std::env::temp_dir().join(format!("exitscope-raw-{}-{method:?}", std::process::id()));
        std::fs::write(&dir, data).unwrap();
        let f = File::open(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let mut r = PageReader::new(ps, method);
        let mut out = Vec::new();
        loop {
            let n = r.read_ready(&f, &mut out, max).unwrap();
            assert_eq!(n % ps, 0);
            assert!(n <= max * ps);
            if n == 0 {
                break;
            }
        }
        r.read_rest(&f, &mut out, max).unwrap();
        assert_eq!(r.held_back(), 0);
        (out, r.method())
    }

    #[test]
    fn splice_and_reads_give_the_same_pages() {
        for ps in [4096, 8192] {
            let data = pages(37, ps);
            let (a, m) = read_all(ReadMethod::Splice, &data, ps, 5);
            assert_eq!(m, ReadMethod::Splice, "splicing from a regular file works");
            assert_eq!(a, data);
            let (b, m) = read_all(ReadMethod::Read, &data, ps, 64);
            assert_eq!(m, ReadMethod::Read);
            assert_eq!(b, data);
        }
    }

    #[test]
    fn short_reads_are_held_until_a_page_is_whole() {
        let ps = 4096;
        let mut r = PageReader::new(ps, ReadMethod::Read);
        let mut out = vec![9u8; 3];
        // Simulate a short read: 1.5 pages arrive, then the other half.
        out.extend(pages(2, ps).into_iter().take(ps + ps / 2));
        assert_eq!(r.keep_whole_pages(&mut out, 3).unwrap(), ps);
        assert_eq!((out.len(), r.held_back()), (3 + ps, ps / 2));
        let start = out.len();
        out.extend(vec![1u8; ps / 2]);
        assert_eq!(r.keep_whole_pages(&mut out, start).unwrap(), ps);
        assert_eq!(r.held_back(), 0);
    }
}
