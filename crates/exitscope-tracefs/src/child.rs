//! Start the traced command paused, so that pid filters are in place before it runs a single
//! instruction of its own (the trace-cmd/perf approach: fork, wait on a pipe, exec).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use crate::error::Error;

/// The shim: wait for the go line on fd `$1`, then become the command (same pid).
const SHIM: &str = r#"fd=$1; shift; read -r _ < /proc/self/fd/$fd || exit 127; exec "$@""#;

/// Check that `program` can be run: a path that exists and is executable, or a name found
/// on `PATH`. Called before anything is set up, so a typo fails with a clear message instead
/// of a trace of a shell saying "not found".
///
/// # Errors
/// [`Error::CommandNotFound`].
pub fn resolve_command(program: &OsStr) -> Result<PathBuf, Error> {
    let not_found = |why: &str| Error::CommandNotFound {
        command: program.to_string_lossy().into_owned(),
        why: why.to_owned(),
    };
    let executable =
        |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let as_path = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        if !as_path.exists() {
            return Err(not_found("no such file"));
        }
        if !executable(as_path) {
            return Err(not_found("not an executable file"));
        }
        return Ok(as_path.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| not_found("not found on PATH"))
}

/// A child process started paused: its pid exists (so pid filters can name it) but the
/// command has not run yet, until [`PausedChild::resume`].
#[derive(Debug)]
pub struct PausedChild {
    child: Child,
    go: Option<OwnedFd>,
}

impl PausedChild {
    /// Spawn `argv[0]` with arguments `argv[1..]`, inheriting stdio. It first runs as a
    /// `/bin/sh` shim with the same pid, blocked in `read` on a pipe, and execs the command in
    /// place once [`PausedChild::resume`] sends a newline. (A `pre_exec` hook cannot block:
    /// `Command::spawn` itself waits until the child has exec'ed.) If this value is dropped
    /// without resuming, the pipe closes and the shim exits with 127 instead of running the
    /// command.
    ///
    /// # Errors
    /// [`Error::Process`] when the pipe or the fork fails, or `argv` is empty.
    pub fn spawn(argv: &[OsString]) -> Result<PausedChild, Error> {
        let Some((program, args)) = argv.split_first() else {
            return Err(Error::Invalid("no command given".into()));
        };
        resolve_command(program)?;
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let source = io::Error::last_os_error();
            return Err(Error::Process { what: "creating a pipe".into(), source });
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let rfd = read_end.as_raw_fd();
        // SAFETY: getpid(2) has no preconditions and cannot fail.
        let parent = unsafe { libc::getpid() };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(SHIM).arg("exitscope-shim").arg(rfd.to_string()).arg(program).args(args);
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2),
        // prctl(2) and getppid(2), which are async-signal-safe; it allocates nothing, touches
        // no locks, never blocks.
        unsafe {
            cmd.pre_exec(move || {
                // Let the shim inherit the read end (it is O_CLOEXEC in the parent).
                if libc::fcntl(rfd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // Die with exitscope, even when it is killed with SIGKILL: nothing would stop
                // the command or read its trace any more. (The setting survives the exec.)
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // exitscope died between fork and prctl: the signal will never come.
                if libc::getppid() != parent {
                    libc::_exit(127);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| Error::Process {
            what: format!("starting {}", program.to_string_lossy()),
            source,
        })?;
        drop(read_end);
        Ok(PausedChild { child, go: Some(write_end) })
    }

    /// The child's pid (its tid is the same; threads it creates later get new tids).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let the child exec.
    ///
    /// # Errors
    /// [`Error::Process`] if the go byte cannot be sent.
    pub fn resume(&mut self) -> Result<(), Error> {
        if let Some(fd) = self.go.take() {
            let b = [b'\n'];
            // SAFETY: `fd` is an open pipe write end we own; `b` is a valid 1-byte buffer.
            let n = unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), 1) };
            if n != 1 {
                let source = io::Error::last_os_error();
                return Err(Error::Process { what: "resuming the command".into(), source });
            }
        }
        Ok(())
    }

    /// `Some(status)` once the child has exited.
    ///
    /// # Errors
    /// [`Error::Process`] if waiting fails.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.child
            .try_wait()
            .map_err(|source| Error::Process { what: "waiting for the command".into(), source })
    }

    /// Send `sig` to the child, if it is still running.
    pub fn signal(&mut self, sig: i32) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let Ok(pid) = libc::pid_t::try_from(self.child.id()) else { return };
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped
            // child, so it cannot have been recycled.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Give up the pause: the child gets the closed pipe and exits with 127 if it was never
    /// resumed. Returns the [`Child`] to wait on.
    pub fn into_child(mut self) -> Child {
        self.go = None;
        self.child
    }

    /// Whether [`PausedChild::resume`] has been called.
    pub fn is_resumed(&self) -> bool {
        self.go.is_none()
    }

    /// Close the go pipe without resuming: a child still paused exits with 127.
    pub fn release(&mut self) {
        self.go = None;
    }

    /// The underlying [`Child`].
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}
