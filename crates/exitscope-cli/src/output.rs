//! Where results go: stdout, or a file that is replaced only when the command succeeds.
//!
//! A file output is written to a temporary file in the same directory (so the final rename is
//! atomic) and renamed over the destination by [`Output::commit`]; dropped without commit (an
//! error, a panic), the temporary file is removed and the old file is untouched. Outputs that
//! are not regular files (`/dev/null`, a FIFO, a terminal) are written directly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit::Failure;

/// An open output. Write to it, then [`Output::commit`].
pub struct Output {
    sink: Sink,
    tty: bool,
    committed: bool,
}

enum Sink {
    /// `None` once taken apart (an uncommitted stdout output drops what it buffered).
    Stdout(Option<BufWriter<Stdout>>),
    /// `tmp` is renamed to `dest` on commit.
    Replace {
        w: BufWriter<File>,
        tmp: PathBuf,
        dest: PathBuf,
    },
    Direct {
        w: BufWriter<File>,
    },
}

/// Whether `path` means stdout.
pub fn is_stdout(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

impl Output {
    /// `None` or `-`: stdout. Anything else: a file, created now (so a bad path fails before
    /// the work) as a temporary file next to it.
    pub fn create(path: Option<&Path>) -> Result<Output, Failure> {
        let path = match path {
            Some(p) if !is_stdout(Some(p)) => p,
            _ => {
                let tty = io::stdout().is_terminal();
                let w = BufWriter::with_capacity(1 << 16, io::stdout());
                return Ok(Output { sink: Sink::Stdout(Some(w)), tty, committed: false });
            }
        };
        let cannot = || format!("cannot create output file {}", path.display());
        let existing = fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(Failure::input(anyhow::anyhow!(
                "{} is a directory, expected an output file",
                path.display()
            )));
        }
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            let f = OpenOptions::new().write(true).open(path).with_context(cannot)?;
            let tty = f.is_terminal();
            return Ok(Output {
                sink: Sink::Direct { w: BufWriter::new(f) },
                tty,
                committed: false,
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let base = path.file_name().map_or_else(|| "output".into(), |n| n.to_string_lossy());
        let tmp = dir.join(format!(".{base}.exitscope-{}.tmp", std::process::id()));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(cannot)?;
        if let Some(m) = existing {
            // The replacement keeps the old file's mode.
            let _ = f.set_permissions(m.permissions());
        }
        let w = BufWriter::with_capacity(1 << 16, f);
        Ok(Output {
            sink: Sink::Replace { w, tmp, dest: path.to_owned() },
            tty: false,
            committed: false,
        })
    }

    /// Whether the output is a terminal (for `--color auto`).
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// Flush, and put a file output in place of the old one.
    pub fn commit(mut self) -> Result<(), Failure> {
        self.flush()?;
        if let Sink::Replace { tmp, dest, .. } = &self.sink {
            fs::rename(tmp, dest)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Stdout(w) => stdout(w)?.write(buf),
            Sink::Replace { w, .. } | Sink::Direct { w } => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => stdout(w)?.write_all(buf),
            Sink::Replace { w, .. } | Sink::Direct { w } => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => stdout(w)?.flush(),
            Sink::Replace { w, .. } | Sink::Direct { w } => w.flush(),
        }
    }
}

fn stdout(w: &mut Option<BufWriter<Stdout>>) -> io::Result<&mut BufWriter<Stdout>> {
    w.as_mut().ok_or_else(|| io::Error::other("stdout output used after it was dropped"))
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        match &mut self.sink {
            Sink::Replace { tmp, .. } => {
                let _ = fs::remove_file(tmp);
            }
            // A failed command prints no half result (what the buffer already passed on
            // cannot be taken back).
            Sink::Stdout(w) => {
                if let Some(w) = w.take() {
                    let _ = w.into_parts();
                }
            }
            Sink::Direct { .. } => {}
        }
    }
}

/// Write a whole file at `path` atomically with `f` (the `run -o DIR` files).
pub fn write_file(
    path: &Path,
    f: impl FnOnce(&mut Output) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut out = Output::create(Some(path))?;
    f(&mut out)?;
    out.commit()
}
