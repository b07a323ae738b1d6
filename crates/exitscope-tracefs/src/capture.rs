//! Capture: the kernel's text (`trace_pipe`) or its binary pages (`per_cpu/cpuN/
//! trace_pipe_raw`, see `dat.rs`) to a file, and lost events from `per_cpu/cpuN/stats`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use exitscope_tracedat::Compression;

use crate::error::Error;
use crate::session::Session;

/// What [`Session::capture`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureFormat {
    /// The kernel's formatted text from `trace_pipe` (one merged stream, µs timestamps),
    /// after a `# tracer:` header.
    #[default]
    Text,
    /// trace-cmd's trace.dat (version 7): the ring-buffer pages of every CPU's
    /// `trace_pipe_raw` as the kernel wrote them (ns timestamps, nothing formatted), with the
    /// event formats, kallsyms, printk formats, saved cmdlines and per-CPU stats. Read by
    /// `exitscope report` and `trace-cmd report`.
    TraceDat {
        /// zstd by default (as trace-cmd 3.x); `None` for the least CPU.
        compression: Compression,
    },
}

impl CaptureFormat {
    /// The format an output path asks for: text for a `.txt` file, otherwise trace.dat
    /// with `compression` (`-o t.dat`, `-o -`, any other name).
    pub fn for_path(path: &Path, compression: Compression) -> CaptureFormat {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt")) {
            CaptureFormat::Text
        } else {
            CaptureFormat::TraceDat { compression }
        }
    }
}

/// Why a capture stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopWhen {
    /// The traced command exited.
    TargetExited,
    /// The requested duration passed.
    Duration,
    /// A signal (SIGINT, SIGTERM, SIGHUP) arrived.
    Signal(i32),
    /// The caller asked to stop (`exitscope top`'s `q` key, its `--once` interval). The text
    /// capture then drops what is still buffered instead of draining it.
    Requested,
}

/// What a capture wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// The format written.
    pub format: CaptureFormat,
    /// Bytes written to the output (text: including LOST lines appended at the end).
    pub bytes: u64,
    /// Lines copied from `trace_pipe` (text).
    pub lines: u64,
    /// Ring-buffer pages written (trace.dat).
    pub pages: u64,
    /// Per CPU: events the kernel reported lost inside the stream (text: `CPU:N [LOST n
    /// EVENTS]` lines; trace.dat: the counts stored in pages flagged with missed events).
    pub lost_in_stream: BTreeMap<u32, u64>,
    /// Per CPU: further events lost according to `per_cpu/cpuN/stats` (overrun + dropped
    /// events since the start); text appends them as LOST lines at the end, trace.dat keeps
    /// the stats in its CPUSTAT options.
    pub lost_from_stats: BTreeMap<u32, u64>,
    /// Things worth telling the user that happened while recording.
    pub notes: Vec<String>,
    /// Per event name (`kvm_pio`), the event lines copied: which requested events fired.
    pub events: BTreeMap<String, u64>,
    /// Why it stopped.
    pub stop: Option<StopWhen>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl CaptureSummary {
    /// All lost events, in the stream and from the stats.
    pub fn lost_total(&self) -> u64 {
        self.lost_in_stream.values().chain(self.lost_from_stats.values()).sum()
    }

    /// What was written, for a message: `1200 lines (96000 bytes)`, `30 ring-buffer pages
    /// (4096 bytes, zstd)`.
    pub fn written(&self) -> String {
        match self.format {
            CaptureFormat::Text => format!(
                "{} line{} ({} bytes)",
                self.lines,
                if self.lines == 1 { "" } else { "s" },
                self.bytes
            ),
            CaptureFormat::TraceDat { compression } => format!(
                "{} ring-buffer page{} as trace.dat ({} bytes, {})",
                self.pages,
                if self.pages == 1 { "" } else { "s" },
                self.bytes,
                match compression {
                    Compression::None => "uncompressed",
                    Compression::Zstd => "zstd",
                    Compression::Zlib => "zlib",
                }
            ),
        }
    }
}

/// How often to look at the pipe, the stop condition and the signals when nothing arrives.
pub(crate) const POLL: Duration = Duration::from_millis(20);

impl Session {
    /// Record into `out` (named `out_name` in errors) in the session's
    /// [`SessionConfig::format`](crate::SessionConfig::format) until `stop` returns `Some` (it
    /// is called with the elapsed time after every round of reads). Then turn tracing off,
    /// drain what is left, and account for losses: text appends a `CPU:N [LOST n EVENTS]`
    /// line for each CPU whose stats show losses the stream did not already report; trace.dat
    /// keeps the kernel's flags in its pages and the stats in its options. Tracing stays off
    /// and nothing is restored yet (see [`Session::finish`]).
    ///
    /// # Errors
    /// [`Error::Read`] for the pipes or stats, [`Error::Output`] naming `out_name` (or the
    /// directory of trace.dat's per-CPU temp files).
    pub fn capture(
        &mut self,
        out: &mut dyn Write,
        out_name: &Path,
        stop: &mut dyn FnMut(Duration) -> Option<StopWhen>,
    ) -> Result<CaptureSummary, Error> {
        match self.format() {
            CaptureFormat::Text => self.capture_text(out, out_name, stop),
            CaptureFormat::TraceDat { compression } => {
                self.capture_dat(compression, out, out_name, stop)
            }
        }
    }

    fn capture_text(
        &mut self,
        out: &mut dyn Write,
        out_name: &Path,
        stop: &mut dyn FnMut(Duration) -> Option<StopWhen>,
    ) -> Result<CaptureSummary, Error> {
        let started = Instant::now();
        let fs = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fs.clone();
        let before = read_stats(&fs, &self.dir);
        let pipe_rel = format!("{}trace_pipe", self.dir);
        let pipe = fs.open_nonblocking(&pipe_rel)?;
        self.with_pipe(|p| *p = Some(pipe));
        let mut sum = CaptureSummary::default();
        let mut lines = LineCopier::default();
        let out_err = |source| Error::Output { path: out_name.to_owned(), source };
        // The host first: readers look for it on the first line only.
        let host = self.host_tag().map(|t| format!("# {t}\n")).unwrap_or_default();
        let header = format!(
            "{host}# tracer: {}\n# exitscope record: {}\n",
            self.tracer(),
            self.enabled().join(" ")
        );
        out.write_all(header.as_bytes()).map_err(out_err)?;
        sum.bytes += header.len() as u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut round = || -> Result<usize, Error> {
            let n = self.read_pipe(&mut buf, &fs, &pipe_rel)?;
            if n > 0 {
                lines.push(&buf[..n], out, &mut sum).map_err(out_err)?;
            }
            Ok(n)
        };
        let why = poll_until(started, stop, &mut round)?;
        self.stop_tracing()?;
        // Everything recorded before tracing_on went to 0, unless the caller said it wants
        // no more (the kernel formats every buffered line: megabytes take seconds).
        if why != StopWhen::Requested {
            drain(10_000, &mut round)?;
        }
        sum.stop = Some(why);
        lines.finish(out, &mut sum).map_err(out_err)?;
        self.with_pipe(|p| *p = None);
        sum.lost_from_stats =
            lost_beyond(&before, &read_stats(&fs, &self.dir), &sum.lost_in_stream);
        for (cpu, n) in &sum.lost_from_stats {
            let line = format!("CPU:{cpu} [LOST {n} EVENTS]\n");
            out.write_all(line.as_bytes()).map_err(out_err)?;
            sum.bytes += line.len() as u64;
        }
        out.flush().map_err(out_err)?;
        sum.elapsed = started.elapsed();
        Ok(sum)
    }

    fn with_pipe<R>(&self, f: impl FnOnce(&mut Option<std::fs::File>) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pipe)
    }

    /// One non-blocking read; 0 when nothing is available now.
    fn read_pipe(&self, buf: &mut [u8], fs: &crate::Tracefs, rel: &str) -> Result<usize, Error> {
        self.with_pipe(|p| {
            let Some(f) = p.as_mut() else { return Ok(0) };
            loop {
                return match f.read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => Err(Error::Read { path: fs.path(rel), source }),
                };
            }
        })
    }
}

/// Copies whole lines and notices the kernel's LOST lines on the way.
#[derive(Default)]
struct LineCopier {
    partial: Vec<u8>,
}

impl LineCopier {
    fn push(
        &mut self,
        data: &[u8],
        out: &mut dyn Write,
        sum: &mut CaptureSummary,
    ) -> io::Result<()> {
        self.partial.extend_from_slice(data);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else { return Ok(()) };
        let complete: Vec<u8> = self.partial.drain(..=last_nl).collect();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            sum.lines += 1;
            if let Some((cpu, n)) = parse_lost(line) {
                *sum.lost_in_stream.entry(cpu).or_default() += n;
            } else if let Some(name) = event_name(line) {
                match sum.events.get_mut(name) {
                    Some(n) => *n += 1,
                    None => {
                        sum.events.insert(name.to_owned(), 1);
                    }
                }
            }
        }
        out.write_all(&complete)?;
        sum.bytes += complete.len() as u64;
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write, sum: &mut CaptureSummary) -> io::Result<()> {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            let rest = std::mem::take(&mut self.partial);
            self.push(&rest, out, sum)?;
        }
        Ok(())
    }
}

/// The event name of a `trace_pipe` event line, `comm-pid [cpu] flags ts: name: args`.
fn event_name(line: &[u8]) -> Option<&str> {
    let close = line.iter().position(|&b| b == b']')?;
    let rest = &line[close + 1..];
    let colon = rest.windows(2).position(|w| w == b": ")?;
    let rest = &rest[colon + 2..];
    let end = rest.iter().position(|&b| b == b':')?;
    let name = &rest[..end];
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// `CPU:3 [LOST 120 EVENTS]` → (3, 120).
fn parse_lost(line: &[u8]) -> Option<(u32, u64)> {
    let s = std::str::from_utf8(line).ok()?.trim();
    let rest = s.strip_prefix("CPU:")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let n = rest.strip_prefix("[LOST ")?.strip_suffix(" EVENTS]")?;
    Some((cpu.parse().ok()?, n.parse().ok()?))
}

/// Sum of `entries:` over `<dir>per_cpu/cpuN/stats`: what sits unread in the ring buffer.
pub(crate) fn buffered_entries(fs: &crate::Tracefs, dir: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(fs.path(&format!("{dir}per_cpu"))) else { return 0 };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stats")).ok())
        .filter_map(|t| {
            t.lines().find_map(|l| l.strip_prefix("entries:")?.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Runs `round` (one pass of reads, returning the bytes moved) until `stop`, asked after
/// every pass with the time since `started`, says why to stop; sleeps [`POLL`] after a pass
/// that moved nothing.
pub(crate) fn poll_until(
    started: Instant,
    stop: &mut dyn FnMut(Duration) -> Option<StopWhen>,
    round: &mut dyn FnMut() -> Result<usize, Error>,
) -> Result<StopWhen, Error> {
    loop {
        let n = round()?;
        if let Some(why) = stop(started.elapsed()) {
            return Ok(why);
        }
        if n == 0 {
            std::thread::sleep(POLL);
        }
    }
}

/// Runs `round` until a pass moves nothing, at most `max` passes: a flood from another writer
/// cannot keep us here.
pub(crate) fn drain(
    max: usize,
    round: &mut dyn FnMut() -> Result<usize, Error>,
) -> Result<(), Error> {
    for _ in 0..max {
        if round()? == 0 {
            break;
        }
    }
    Ok(())
}

/// Per CPU, the events the stats count as lost between `before` and `after` beyond those the
/// stream itself reported (`in_stream`).
pub(crate) fn lost_beyond(
    before: &BTreeMap<u32, u64>,
    after: &BTreeMap<u32, u64>,
    in_stream: &BTreeMap<u32, u64>,
) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for (&cpu, &total) in after {
        let lost = total.saturating_sub(before.get(&cpu).copied().unwrap_or(0));
        let seen = in_stream.get(&cpu).copied().unwrap_or(0);
        if lost > seen {
            m.insert(cpu, lost - seen);
        }
    }
    m
}

/// The CPU numbers of the `<dir>per_cpu/cpuN` directories.
pub(crate) fn cpu_numbers(fs: &crate::Tracefs, dir: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(fs.path(&format!("{dir}per_cpu"))) else { return Vec::new() };
    rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok()).collect()
}

/// Per CPU, `overrun + dropped events` from `<dir>per_cpu/cpuN/stats` (missing files: none).
pub(crate) fn read_stats(fs: &crate::Tracefs, dir: &str) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for cpu in cpu_numbers(fs, dir) {
        let Ok(text) = fs.read(&format!("{dir}per_cpu/cpu{cpu}/stats")) else { continue };
        let field = |k: &str| -> u64 {
            text.lines().find_map(|l| l.strip_prefix(k)?.trim().parse().ok()).unwrap_or(0)
        };
        m.insert(cpu, field("overrun:") + field("dropped events:"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_taken_from_event_lines() {
        let l = b"  python3-5832    [001] .....   979.002051: kvm_cpuid: func 0 idx ffff";
        assert_eq!(event_name(l), Some("kvm_cpuid"));
        assert_eq!(event_name(b" 0)   0.080 us    |  f();"), None);
    }

    #[test]
    fn lost_lines_are_recognised() {
        assert_eq!(parse_lost(b"CPU:3 [LOST 120 EVENTS]"), Some((3, 120)));
        assert_eq!(parse_lost(b"CPU:3 [LOST EVENTS]"), None);
        assert_eq!(parse_lost(b" python3-1 [000] ....: kvm_cpuid: x"), None);
    }

    #[test]
    fn copier_keeps_partial_lines_until_complete() {
        let mut c = LineCopier::default();
        let mut out = Vec::new();
        let mut sum = CaptureSummary::default();
        c.push(b"a\nCPU:1 [LOST 2 EV", &mut out, &mut sum).unwrap();
        assert_eq!(out, b"a\n");
        c.push(b"ENTS]\nb", &mut out, &mut sum).unwrap();
        c.finish(&mut out, &mut sum).unwrap();
        assert_eq!(out, b"a\nCPU:1 [LOST 2 EVENTS]\nb\n");
        assert_eq!(sum.lines, 3);
        assert_eq!(sum.lost_in_stream.get(&1), Some(&2));
    }
}
