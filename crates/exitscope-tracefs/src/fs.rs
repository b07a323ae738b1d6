//! The tracefs root and every access to it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;

/// Content a kernel shows in an empty function filter (`set_ftrace_filter`,
/// `set_graph_function`).
pub(crate) const ALL_FUNCTIONS_ENABLED: &str = "#### all functions enabled ####";

/// One change made to tracefs, as logged by [`Tracefs::ops`]. Paths are relative to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A write of `value` to `path` (opened with `O_TRUNC`), and the errno if it failed.
    Write {
        /// File relative to the tracefs root.
        path: String,
        /// What was written.
        value: String,
        /// `Some(errno)` when the kernel refused it.
        errno: Option<i32>,
    },
    /// An append of `value` to the list in `path` (opened without `O_TRUNC`: the kernel adds
    /// to a pid list), and the errno if it failed.
    Append {
        /// File relative to the tracefs root.
        path: String,
        /// What was written.
        value: String,
        /// `Some(errno)` when the kernel refused it.
        errno: Option<i32>,
    },
    /// `mkdir path` (a new instance).
    Mkdir(String),
    /// `rmdir path` (an instance removed).
    Rmdir(String),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Write { path, value, errno: None } => write!(f, "write {path} {value:?}"),
            Op::Write { path, value, errno: Some(e) } => {
                write!(
                    f,
                    "write {path} {value:?} -> {}",
                    crate::errno_name(&io::Error::from_raw_os_error(*e))
                )
            }
            Op::Append { path, value, errno: None } => write!(f, "append {path} {value:?}"),
            Op::Append { path, value, errno: Some(e) } => {
                write!(
                    f,
                    "append {path} {value:?} -> {}",
                    crate::errno_name(&io::Error::from_raw_os_error(*e))
                )
            }
            Op::Mkdir(p) => write!(f, "mkdir {p}"),
            Op::Rmdir(p) => write!(f, "rmdir {p}"),
        }
    }
}

/// A tracefs root. Cheap to clone; clones share the log of changes.
///
/// With [`Tracefs::fake`] the root is a directory of plain files and a few kernel behaviours
/// are emulated so that tests can check exact write sequences and full restores:
/// - a write is checked against `<root>/.fail-writes` (lines `path value errno`, `value` may
///   be `*`), to inject e.g. EPERM for `current_tracer function_graph`;
/// - function filters (`set_graph_function`, `set_ftrace_filter`, ...) reject names missing
///   from `available_filter_functions` (if that file exists) with EINVAL and are left empty,
///   exactly like the kernel, and an empty filter reads `#### all functions enabled ####`;
/// - `mkdir instances/X` copies `<root>/.instance-template/` into it (if present), `rmdir`
///   removes the whole directory;
/// - every change is also appended to `<root>/.ops.log`, so a test can read the log of a
///   subprocess.
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
    fake: bool,
    log: Arc<Mutex<Vec<Op>>>,
    mounted_by_us: bool,
}

impl Tracefs {
    /// Find tracefs: `/sys/kernel/tracing`, then `/sys/kernel/debug/tracing`. If neither is
    /// mounted and `allow_mount`, mount tracefs on `/sys/kernel/tracing` (needs root); see
    /// [`Tracefs::unmount_if_mounted`].
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Mount`].
    pub fn discover(allow_mount: bool) -> Result<Tracefs, Error> {
        const PLACES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
        for p in PLACES {
            if Path::new(p).join("tracing_on").exists() {
                return Ok(Tracefs::real(p));
            }
        }
        let mount_point = Path::new(PLACES[0]);
        if allow_mount && mount_point.is_dir() {
            mount_tracefs(mount_point)?;
            if mount_point.join("tracing_on").exists() {
                let mut fs = Tracefs::real(mount_point);
                fs.mounted_by_us = true;
                return Ok(fs);
            }
        }
        Err(Error::NotFound { looked: PLACES.join(", ") })
    }

    /// A real tracefs mounted at `root` (no checks).
    pub fn real(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into(), fake: false, log: Arc::default(), mounted_by_us: false }
    }

    /// A fake tracefs: a directory of plain files (see the type's documentation).
    pub fn fake(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into(), fake: true, log: Arc::default(), mounted_by_us: false }
    }

    /// Whether this is a [`Tracefs::fake`].
    pub fn is_fake(&self) -> bool {
        self.fake
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Every change made through this root so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// If [`Tracefs::discover`] mounted tracefs, unmount it again (best effort: a busy mount
    /// stays, and that is reported).
    ///
    /// # Errors
    /// [`Error::Mount`] when umount fails.
    pub fn unmount_if_mounted(&mut self) -> Result<(), Error> {
        if !self.mounted_by_us {
            return Ok(());
        }
        let c = path_cstring(&self.root)?;
        // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
        let rc = unsafe { libc::umount(c.as_ptr()) };
        if rc != 0 {
            return Err(Error::Mount {
                path: self.root.clone(),
                source: io::Error::last_os_error(),
            });
        }
        self.mounted_by_us = false;
        Ok(())
    }

    /// Read a whole file.
    ///
    /// # Errors
    /// [`Error::Read`].
    pub fn read(&self, rel: &str) -> Result<String, Error> {
        let path = self.path(rel);
        // Some files answer only the first read(2) (`events/header_page` returns 0 at any
        // offset but 0), so the first read must be large enough for the whole file.
        let mut s = String::with_capacity(1 << 16);
        File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut s))
            .map_err(|source| Error::Read { path, source })?;
        Ok(s)
    }

    /// Whether `available_filter_functions` (streamed, it can be megabytes) lists `func`.
    /// `Ok(None)` when the file is missing or unreadable (lockdown gives EPERM).
    pub fn lists_function(&self, func: &str) -> Option<bool> {
        let f = File::open(self.path("available_filter_functions")).ok()?;
        let mut r = BufReader::new(f);
        let mut line = String::new();
        let mut any = false;
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(_) => return if any { Some(false) } else { None },
            }
            if line.split_whitespace().next() == Some(func) {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Write `value` to `rel` (one `write(2)`, file opened with `O_TRUNC` so lists are
    /// replaced) and log it.
    ///
    /// # Errors
    /// [`Error::Write`] naming the file and the errno.
    pub fn write(&self, rel: &str, value: &str) -> Result<(), Error> {
        let result =
            if self.fake { self.fake_write(rel, value) } else { self.real_write(rel, value, true) };
        self.logged(rel, value, result, |path, value, errno| Op::Write { path, value, errno })
    }

    /// Add `value` to the list in `rel` (one `write(2)`, file opened without `O_TRUNC`: the
    /// kernel merges it into a pid list, with no moment of an empty list) and log it.
    ///
    /// # Errors
    /// [`Error::Write`] naming the file and the errno.
    pub fn append(&self, rel: &str, value: &str) -> Result<(), Error> {
        let result = if self.fake {
            self.fake_append(rel, value)
        } else {
            self.real_write(rel, value, false)
        };
        self.logged(rel, value, result, |path, value, errno| Op::Append { path, value, errno })
    }

    /// Log a write or append (`op` builds the entry) and name the file and value in its error.
    fn logged(
        &self,
        rel: &str,
        value: &str,
        result: io::Result<()>,
        op: impl FnOnce(String, String, Option<i32>) -> Op,
    ) -> Result<(), Error> {
        let errno = result.as_ref().err().map(|e| e.raw_os_error().unwrap_or(libc::EIO));
        self.log_op(op(rel.to_owned(), value.to_owned(), errno));
        result.map_err(|source| Error::Write {
            path: self.path(rel),
            value: value.to_owned(),
            source,
        })
    }

    /// The fake kernel's pid list: the old entries (none for `no pid`) and the new ones.
    fn fake_append(&self, rel: &str, value: &str) -> io::Result<()> {
        if let Some(errno) = self.fake_injected_failure(rel, value) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let path = self.path(rel);
        let old = fs::read_to_string(&path)?;
        let mut items: Vec<&str> =
            old.split_whitespace().filter(|w| !matches!(*w, "no" | "pid")).collect();
        items.extend(value.split_whitespace());
        fs::write(&path, format!("{}\n", items.join("\n")))
    }

    /// One `write(2)` of `value`; `truncate` empties the file first (a setting), without it
    /// the kernel merges the value into a list.
    fn real_write(&self, rel: &str, value: &str, truncate: bool) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).truncate(truncate).open(self.path(rel))?;
        if value.is_empty() {
            return Ok(());
        }
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        Ok(())
    }

    fn fake_write(&self, rel: &str, value: &str) -> io::Result<()> {
        if let Some(errno) = self.fake_injected_failure(rel, value) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let path = self.path(rel);
        if !path.is_file() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let is_filter = matches!(
            base,
            "set_graph_function" | "set_graph_notrace" | "set_ftrace_filter" | "set_ftrace_notrace"
        );
        if is_filter {
            let listed = |f: &str| self.lists_function(f).unwrap_or(true);
            if value.split_whitespace().any(|f| !listed(f.split(':').next().unwrap_or(f))) {
                // The kernel truncates on open, then rejects the name: the filter stays empty.
                fs::write(&path, empty_filter_text(base))?;
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let funcs: Vec<&str> = value.split_whitespace().collect();
            let text = if funcs.is_empty() {
                empty_filter_text(base)
            } else {
                format!("{}\n", funcs.join("\n"))
            };
            return fs::write(&path, text);
        }
        let text = match base {
            // Older kernels and the function pid files show this for an empty list.
            "set_ftrace_pid" | "set_ftrace_notrace_pid" if value.trim().is_empty() => {
                "no pid\n".to_owned()
            }
            _ if value.is_empty() => String::new(),
            _ => format!("{}\n", value.trim_end()),
        };
        fs::write(&path, text)
    }

    fn fake_injected_failure(&self, rel: &str, value: &str) -> Option<i32> {
        let rules = fs::read_to_string(self.root.join(".fail-writes")).ok()?;
        rules.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            let (p, v, e) = (it.next()?, it.next()?, it.next()?);
            (p == rel && (v == "*" || v == value)).then(|| e.parse().ok()).flatten()
        })
    }

    /// Create the directory `rel` (an instance) and log it.
    ///
    /// # Errors
    /// [`Error::Mkdir`].
    pub fn mkdir(&self, rel: &str) -> Result<(), Error> {
        let path = self.path(rel);
        let r = fs::create_dir(&path).and_then(|()| {
            let template = self.root.join(".instance-template");
            if self.fake && template.is_dir() { copy_dir(&template, &path) } else { Ok(()) }
        });
        match r {
            Ok(()) => {
                self.log_op(Op::Mkdir(rel.to_owned()));
                Ok(())
            }
            Err(source) => Err(Error::Mkdir { path, source }),
        }
    }

    /// Remove the instance directory `rel` and log it. The kernel refuses with EBUSY while a
    /// reader still has its `trace_pipe` open, so this retries for up to a second.
    ///
    /// # Errors
    /// [`Error::Rmdir`].
    pub fn rmdir(&self, rel: &str) -> Result<(), Error> {
        let path = self.path(rel);
        let mut tries = 0;
        loop {
            let r = if self.fake { fs::remove_dir_all(&path) } else { fs::remove_dir(&path) };
            match r {
                Ok(()) => {
                    self.log_op(Op::Rmdir(rel.to_owned()));
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(source) => return Err(Error::Rmdir { path, source }),
            }
        }
    }

    /// Remove `instances/exitscope-<pid>` directories left behind by exitscope processes
    /// that no longer run (killed with SIGKILL, so they could not clean up). An instance whose
    /// pid is alive and named `exitscope` is left alone. Returns the instances removed.
    ///
    /// # Errors
    /// [`Error::Rmdir`] for an instance that could not be removed.
    pub fn remove_stale_instances(&self) -> Result<Vec<String>, Error> {
        let mut removed = Vec::new();
        let Ok(rd) = fs::read_dir(self.path("instances")) else { return Ok(removed) };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("exitscope-").and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "exitscope" || pid == std::process::id() {
                continue;
            }
            let rel = format!("instances/{name}");
            self.rmdir(&rel)?;
            removed.push(rel);
        }
        Ok(removed)
    }

    /// Open `rel` for non-blocking reads (`trace_pipe`).
    pub(crate) fn open_nonblocking(&self, rel: &str) -> Result<File, Error> {
        let path = self.path(rel);
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|source| Error::Read { path, source })
    }

    fn log_op(&self, op: Op) {
        if self.fake
            && let Ok(mut f) =
                OpenOptions::new().create(true).append(true).open(self.root.join(".ops.log"))
        {
            let _ = writeln!(f, "{op}");
        }
        self.log.lock().unwrap_or_else(PoisonError::into_inner).push(op);
    }
}

fn empty_filter_text(base: &str) -> String {
    if base.ends_with("notrace") { String::new() } else { format!("{ALL_FUNCTIONS_ENABLED}\n") }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            fs::create_dir_all(&dest)?;
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn path_cstring(p: &Path) -> Result<std::ffi::CString, Error> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("path {} contains NUL", p.display())))
}

fn mount_tracefs(at: &Path) -> Result<(), Error> {
    let target = path_cstring(at)?;
    let fstype = c"tracefs";
    let source = c"nodev";
    // SAFETY: all three pointers are valid NUL-terminated strings that outlive the call; a
    // null `data` is allowed for tracefs.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(Error::Mount { path: at.to_owned(), source: io::Error::last_os_error() });
    }
    Ok(())
}
