//! Binary capture: every CPU's `trace_pipe_raw` pages into one trace.dat (v7, as trace-cmd
//! 3.x writes it), with the session's formats, kallsyms, printk formats, saved cmdlines and
//! per-CPU stats.
//!
//! Per CPU, pages go from a [`PageReader`] into a [`CpuSpool`] backed by an unlinked temp
//! file next to the output (compressed in chunks of ten pages as they arrive), so memory
//! stays at a few chunks whatever the length of the recording. When the recording stops, the
//! last partial pages are read, the metadata is collected while the instance still exists,
//! and [`write_file`] writes the whole file sequentially (stdout works too).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exitscope_tracedat::write::{CpuSpool, FileOptions, Metadata, option, write_file};
use exitscope_tracedat::{Compression, CpuCursor, Endian, Item, PageFormat};

use crate::capture::{
    CaptureFormat, CaptureSummary, StopWhen, cpu_numbers, drain, lost_beyond, poll_until,
    read_stats,
};
use crate::error::Error;
use crate::fs::Tracefs;
use crate::raw::{PageReader, ReadMethod};
use crate::session::Session;

/// Pages taken from one CPU before the next CPU gets its turn.
const PAGES_PER_TURN: usize = 256;

/// One CPU being recorded.
struct Cpu {
    cpu: u32,
    reader: PageReader,
    spool: CpuSpool<File>,
    /// Records per event id (`common_type`), to say which requested events fired.
    ids: BTreeMap<u16, u64>,
    pages: PageFormat,
}

/// Count the records of whole pages `data` by event id. Pages the walk cannot read are left
/// to the reader of the file (which reports them with their offset); counting is only for
/// the "never fired" message.
fn count_ids(pages: PageFormat, cpu: u32, data: &[u8], ids: &mut BTreeMap<u16, u64>) {
    let mut cur = CpuCursor::new(cpu, 0, pages.page_size, pages.long_size, pages.endian);
    while let Ok(Some(item)) = cur.next_item(data) {
        if let Item::Record { start, len, .. } = item
            && len >= 2
            && let Some(b) = data.get(start..start + 2)
        {
            let id = match pages.endian {
                Endian::Little => u16::from_le_bytes([b[0], b[1]]),
                Endian::Big => u16::from_be_bytes([b[0], b[1]]),
            };
            *ids.entry(id).or_insert(0) += 1;
        }
    }
}

/// `(id, name)` of an event `format` file.
fn format_id(format: &[u8]) -> Option<(u16, String)> {
    let t = std::str::from_utf8(format).ok()?;
    let name = t.lines().find_map(|l| l.strip_prefix("name:"))?.trim().to_owned();
    let id = t.lines().find_map(|l| l.strip_prefix("ID:"))?.trim().parse().ok()?;
    Some((id, name))
}

impl Session {
    pub(crate) fn capture_dat(
        &mut self,
        compression: Compression,
        out: &mut dyn Write,
        out_name: &Path,
        stop: &mut dyn FnMut(Duration) -> Option<StopWhen>,
    ) -> Result<CaptureSummary, Error> {
        let started = Instant::now();
        let fs = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fs.clone();
        let dir = self.dir.clone();
        let (header_page, pages) = page_format(&fs, &dir)?;
        let before = read_stats(&fs, &dir);
        let spool_dir = spool_dir(out_name);
        let spool_err = |source| Error::Output { path: spool_dir.clone(), source };
        let method = if fs.is_fake() && fs.exists(".no-splice") {
            ReadMethod::Read
        } else {
            ReadMethod::Splice
        };
        let mut cpus = Vec::new();
        let mut raw_files = Vec::new();
        for (cpu, rel) in cpu_dirs(&fs, &dir) {
            let raw = format!("{rel}/trace_pipe_raw");
            if !fs.exists(&raw) {
                continue;
            }
            raw_files.push(fs.open_nonblocking(&raw)?);
            let store = spool_file(&spool_dir, out_name, cpu).map_err(spool_err)?;
            cpus.push(Cpu {
                cpu,
                reader: PageReader::new(pages.page_size, method),
                spool: CpuSpool::new(cpu, store, compression, pages),
                ids: BTreeMap::new(),
                pages,
            });
        }
        if cpus.is_empty() {
            return Err(Error::Invalid(format!(
                "{} has no per_cpu/cpuN/trace_pipe_raw to record from",
                fs.path(&dir).display()
            )));
        }
        // The restore closes them first (an open reader makes rmdir of the instance fail).
        self.with_raw(|r| *r = raw_files);
        let mut sum = CaptureSummary {
            format: CaptureFormat::TraceDat { compression },
            ..CaptureSummary::default()
        };
        let mut buf = Vec::with_capacity(PAGES_PER_TURN * pages.page_size);
        // The traced processes' threads, looked up about once a second while recording: a
        // thread that starts and ends meanwhile (a VM's vCPU threads under `run`) is gone from
        // /proc by the end. Only with a pid filter (system-wide, the end's listing serves).
        let roots: std::collections::BTreeSet<u32> =
            self.filter_tgids().values().copied().collect();
        let mut seen_tgids = BTreeMap::new();
        let mut last_scan: Option<Instant> = None;
        let mut round = |rest| {
            if !roots.is_empty() && last_scan.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                crate::session::tree_tgids(roots.iter().copied(), &mut seen_tgids);
                last_scan = Some(Instant::now());
            }
            self.read_round(&mut cpus, &mut buf, &fs, &dir, rest, &spool_err)
        };
        sum.stop = Some(poll_until(started, stop, &mut || round(false))?);
        self.stop_tracing()?;
        // Full pages first, then the partial pages the writer left.
        drain(1000, &mut || round(false))?;
        drain(1000, &mut || round(true))?;
        for c in cpus.iter().filter(|c| c.reader.held_back() > 0) {
            sum.notes.push(format!(
                "cpu {}: trace_pipe_raw ended with {} bytes of an incomplete page; dropped",
                c.cpu,
                c.reader.held_back()
            ));
        }
        let methods: Vec<ReadMethod> = cpus.iter().map(|c| c.reader.method()).collect();
        self.with_raw(Vec::clear);
        if methods.contains(&ReadMethod::Read) && method == ReadMethod::Splice {
            sum.notes.push(
                "splice(2) of trace_pipe_raw was refused; pages were read with read(2)".into(),
            );
        }

        let after = read_stats(&fs, &dir);
        let meta = self.metadata(&fs, &dir, header_page, &cpus, &seen_tgids);
        let names: BTreeMap<u16, String> =
            meta.systems.iter().flat_map(|(_, f)| f.iter()).filter_map(|f| format_id(f)).collect();
        for c in &cpus {
            for (id, n) in &c.ids {
                if let Some(name) = names.get(id) {
                    *sum.events.entry(name.clone()).or_insert(0) += n;
                }
            }
        }
        let mut spools: Vec<CpuSpool<File>> = cpus.into_iter().map(|c| c.spool).collect();
        for s in &spools {
            let st = s.stats();
            sum.pages += st.pages;
            if st.missed_events > 0 {
                sum.lost_in_stream.insert(s.cpu(), st.missed_events);
            }
        }
        sum.lost_from_stats = lost_beyond(&before, &after, &sum.lost_in_stream);
        let opts = FileOptions::new(7, compression, pages);
        let out_err = |source| Error::Output { path: out_name.to_owned(), source };
        sum.bytes = write_file(out, &opts, &meta, &mut spools).map_err(out_err)?;
        sum.elapsed = started.elapsed();
        Ok(sum)
    }

    /// One turn over every CPU: up to [`PAGES_PER_TURN`] pages each into its spool. `rest`
    /// also takes the partial pages (after tracing stopped). Returns the bytes moved.
    fn read_round(
        &self,
        cpus: &mut [Cpu],
        buf: &mut Vec<u8>,
        fs: &Tracefs,
        dir: &str,
        rest: bool,
        spool_err: &dyn Fn(std::io::Error) -> Error,
    ) -> Result<usize, Error> {
        let mut total = 0;
        for (i, c) in cpus.iter_mut().enumerate() {
            buf.clear();
            let n = self.with_raw(|files| {
                let Some(f) = files.get(i) else { return Ok(0) };
                if rest {
                    c.reader.read_rest(f, buf, PAGES_PER_TURN)
                } else {
                    c.reader.read_ready(f, buf, PAGES_PER_TURN)
                }
            });
            let n = n.map_err(|source| Error::Read {
                path: fs.path(&format!("{dir}per_cpu/cpu{}/trace_pipe_raw", c.cpu)),
                source,
            })?;
            if n > 0 {
                count_ids(c.pages, c.cpu, buf, &mut c.ids);
                c.spool.push_pages(buf).map_err(spool_err)?;
                total += n;
            }
        }
        Ok(total)
    }

    fn with_raw<R>(&self, f: impl FnOnce(&mut Vec<File>) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).raw_readers)
    }

    /// Everything the file needs besides the pages, read while the instance still exists.
    fn metadata(
        &self,
        fs: &Tracefs,
        dir: &str,
        header_page: String,
        cpus: &[Cpu],
        seen_tgids: &BTreeMap<u32, u32>,
    ) -> Metadata {
        let read = |rel: &str| fs.read(&format!("{dir}{rel}")).or_else(|_| fs.read(rel));
        let mut m = Metadata {
            header_page: header_page.into_bytes(),
            header_event: read("events/header_event").unwrap_or_default().into_bytes(),
            ..Metadata::default()
        };
        if m.header_event.is_empty() {
            m.header_event = exitscope_tracedat::write::HEADER_EVENT.into();
        }
        m.ftrace_formats = formats(fs, dir, "ftrace", None);
        for (system, events) in self.recorded_events() {
            let f = formats(fs, dir, &system, events.as_deref());
            if !f.is_empty() {
                m.systems.push((system, f));
            }
        }
        m.kallsyms = kallsyms(fs);
        // Global files: instances share the top level's printk formats and comm cache.
        m.printk = fs.read("printk_formats").unwrap_or_default().into_bytes();
        m.cmdlines = fs.read("saved_cmdlines").unwrap_or_default().into_bytes();
        let clocks = read("trace_clock").unwrap_or_default();
        m.clock = selected_clock(&clocks).unwrap_or("local").to_owned();
        if !clocks.trim().is_empty() {
            m.options.push((option::TRACECLOCK, nul_terminated(clocks.trim_end())));
        }
        if let Some(u) = uname() {
            m.options.push((option::UNAME, nul_terminated(&u)));
        }
        let version = format!("exitscope {}", env!("CARGO_PKG_VERSION"));
        m.options.push((option::VERSION, nul_terminated(&version)));
        if let Some(tag) = self.host_tag() {
            m.options.push((option::EXITSCOPE_HOST, nul_terminated(tag)));
        }
        let mut tgids = self.tgids(&fs_saved_tgids(fs));
        for (&t, &g) in seen_tgids {
            tgids.entry(t).or_insert(g);
        }
        m.options.push((option::EXITSCOPE_TGIDS, tgids_option(&tgids)));
        for c in cpus {
            let stats = fs.read(&format!("{dir}per_cpu/cpu{}/stats", c.cpu)).unwrap_or_default();
            let text = format!("CPU: {}\n{stats}", c.cpu);
            m.options.push((option::CPUSTAT, nul_terminated(&text)));
        }
        m
    }

    /// `(system, Some(events))` for the events enabled one by one, `(system, None)` for a
    /// whole system (`kvm:*`), from what the session enabled; nothing in graph mode.
    fn recorded_events(&self) -> BTreeMap<String, Option<Vec<String>>> {
        let mut m: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        if self.tracer() != "nop" {
            return m;
        }
        for spec in self.enabled() {
            let Some((sys, ev)) = spec.split_once(':') else { continue };
            let entry = m.entry(sys.to_owned()).or_insert_with(|| Some(Vec::new()));
            match (ev, entry.as_mut()) {
                ("*", _) => *entry = None,
                (ev, Some(list)) => list.push(ev.to_owned()),
                (_, None) => {}
            }
        }
        m
    }
}

/// The instance's sub-buffer layout, from its `events/header_page` (never assumed).
fn page_format(fs: &Tracefs, dir: &str) -> Result<(String, PageFormat), Error> {
    let rel = format!("{dir}events/header_page");
    let text = fs.read(&rel)?;
    let endian = if cfg!(target_endian = "big") { Endian::Big } else { Endian::Little };
    let pf = PageFormat::from_header_page(&text, endian).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no sub-buffer layout (expected `field: local_t commit; ... size:N;` and \
             `field: char data; offset:N; size:N;`)",
            fs.path(&rel).display()
        ))
    })?;
    Ok((text, pf))
}

/// `(cpu, "<dir>per_cpu/cpuN")`, by CPU number.
fn cpu_dirs(fs: &Tracefs, dir: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = cpu_numbers(fs, dir)
        .into_iter()
        .map(|cpu| (cpu, format!("{dir}per_cpu/cpu{cpu}")))
        .collect();
    v.sort_unstable();
    v
}

/// Format texts of `events/<system>/<event>/format`: the events named, or all of them.
fn formats(fs: &Tracefs, dir: &str, system: &str, events: Option<&[String]>) -> Vec<Vec<u8>> {
    let sys_rel = |base: &str| format!("{base}events/{system}");
    // Instances list every system; fall back to the top level for the ftrace one on kernels
    // whose instances do not.
    let base = if fs.exists(&sys_rel(dir)) { dir } else { "" };
    let names: Vec<String> = match events {
        Some(list) => list.to_vec(),
        None => {
            let mut n: Vec<String> = std::fs::read_dir(fs.path(&sys_rel(base)))
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().join("format").is_file())
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            n.sort();
            n
        }
    };
    names
        .iter()
        .filter_map(|ev| fs.read(&format!("{}/{ev}/format", sys_rel(base))).ok())
        .map(String::into_bytes)
        .collect()
}

/// `/proc/kallsyms` when it shows addresses (kptr_restrict hides them as zeros). A fake
/// tracefs may hold its own `.kallsyms`.
fn kallsyms(fs: &Tracefs) -> Vec<u8> {
    let path = if fs.is_fake() { fs.path(".kallsyms") } else { PathBuf::from("/proc/kallsyms") };
    let Ok(text) = std::fs::read(path) else { return Vec::new() };
    let hidden = text
        .split(|&b| b == b'\n')
        .take(16)
        .filter(|l| !l.is_empty())
        .all(|l| l.iter().take_while(|b| b.is_ascii_hexdigit()).all(|&b| b == b'0'));
    if hidden { Vec::new() } else { text }
}

/// `local` from `[local] global counter`.
fn selected_clock(clocks: &str) -> Option<&str> {
    let a = clocks.find('[')?;
    let b = a + clocks[a..].find(']')?;
    Some(&clocks[a + 1..b])
}

/// The kernel's `saved_tgids` (`pid tgid` lines; filled while `record-tgid` is on).
fn fs_saved_tgids(fs: &Tracefs) -> String {
    fs.read("saved_tgids").unwrap_or_default()
}

/// The data of the tgids option: [`exitscope_tracedat::TGIDS_PREFIX`], `pid tgid` lines, NUL.
fn tgids_option(m: &BTreeMap<u32, u32>) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut s = String::from(exitscope_tracedat::TGIDS_PREFIX);
    for (p, g) in m {
        let _ = writeln!(s, "{p} {g}");
    }
    nul_terminated(&s)
}

impl Session {
    /// Thread → process for the file's tgids option: the kernel's `saved_tgids` (filled while
    /// someone has `record-tgid` on; it keeps threads that have ended), every thread alive now,
    /// and the pid filter's threads as they were when added (later sources win: a pid reused
    /// since is named by its last owner); the caller adds the threads seen while recording.
    fn tgids(&self, saved: &str) -> BTreeMap<u32, u32> {
        let mut m: BTreeMap<u32, u32> = saved
            .lines()
            .filter_map(|l| {
                let (p, g) = l.trim().split_once(' ')?;
                Some((p.parse().ok()?, g.trim().parse().ok()?))
            })
            .filter(|&(_, g): &(u32, u32)| g != 0)
            .collect();
        m.extend(crate::session::all_tgids());
        m.extend(self.filter_tgids());
        m
    }
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// `Linux host 6.18.0 x86_64`, as trace-cmd's UNAME option (system, node, release, machine).
fn uname() -> Option<String> {
    let k = |f: &str| std::fs::read_to_string(format!("/proc/sys/kernel/{f}")).ok();
    Some(format!(
        "{} {} {} {}",
        k("ostype")?.trim(),
        k("hostname")?.trim(),
        k("osrelease")?.trim(),
        std::env::consts::ARCH
    ))
}

/// Where the per-CPU spools go: next to the output file (same file system, as trace-cmd's
/// `trace.dat.cpuN`), or the temp directory for stdout and devices.
fn spool_dir(out_name: &Path) -> PathBuf {
    let regular =
        out_name.as_os_str() != "-" && std::fs::metadata(out_name).map_or(true, |m| m.is_file());
    match out_name.parent() {
        Some(p) if regular && p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) if regular => p.to_owned(),
        _ => std::env::temp_dir(),
    }
}

/// A new temp file, unlinked at once: it lives while the descriptor is open and can never be
/// left behind, whatever happens to this process.
fn spool_file(dir: &Path, out_name: &Path, cpu: u32) -> std::io::Result<File> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let stem = out_name.file_name().and_then(|n| n.to_str()).unwrap_or("exitscope");
    let path = dir.join(format!(
        ".{stem}.cpu{cpu}.{}.{}.spool",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_spool_places() {
        assert_eq!(selected_clock("local [x86-tsc] mono\n"), Some("x86-tsc"));
        assert_eq!(selected_clock("local"), None);
        assert_eq!(spool_dir(Path::new("t.dat")), PathBuf::from("."));
        assert_eq!(spool_dir(Path::new("/x/y/t.dat")), PathBuf::from("/x/y"));
        assert_eq!(spool_dir(Path::new("-")), std::env::temp_dir());
        assert_eq!(spool_dir(Path::new("/dev/null")), std::env::temp_dir());
    }

    #[test]
    fn spool_files_leave_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("exitscope-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = spool_file(&dir, Path::new("t.dat"), 3).unwrap();
        f.write_all(b"pages").unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
