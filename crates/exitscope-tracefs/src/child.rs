//! Start the traced command paused, so that pid filters are in place before it runs a single
//! instruction of its own (the trace-cmd/perf approach: fork, wait on a pipe, exec).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

use crate::error::Error;

/// The shim: wait for the go line on fd `$1`, then become the command (same pid).
const SHIM: &str = r#"fd=$1; shift; read -r _ < /proc/self/fd/$fd || exit 127; exec "$@""#;

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
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(SHIM).arg("exitscope-shim").arg(rfd.to_string()).arg(program).args(args);
        // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2),
        // which is async-signal-safe; it allocates nothing, touches no locks, never blocks.
        unsafe {
            cmd.pre_exec(move || {
                // Let the shim inherit the read end (it is O_CLOEXEC in the parent).
                if libc::fcntl(rfd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
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

    /// The underlying [`Child`].
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}
