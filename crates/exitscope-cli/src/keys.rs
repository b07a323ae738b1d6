//! The keys of `exitscope top`: a terminal on stdin is put in non-canonical mode without echo
//! (each key arrives at once and is not printed; ISIG stays on, so Ctrl-C is still SIGINT),
//! read without blocking, and put back as it was when [`Keys`] is dropped: on `q`, on the
//! signals the recorder turns into an ordinary return, and on errors. The termios calls are
//! the only unsafe code here.

use std::io::IsTerminal;

/// Stdin as a source of key presses. Only exists while stdin is a terminal.
pub struct Keys {
    saved: libc::termios,
}

const STDIN: libc::c_int = libc::STDIN_FILENO;

impl Keys {
    /// Switch the terminal on stdin to key-at-a-time reads; `None` when stdin is not a
    /// terminal (or its mode cannot be read or set): then there are no keys.
    pub fn open() -> Option<Keys> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: STDIN is an open descriptor (a terminal, checked above) and `saved` is a
        // valid, writable termios.
        if unsafe { libc::tcgetattr(STDIN, &raw mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        // read(2) returns at once, with whatever is there (possibly nothing).
        raw.c_cc[libc::VMIN] = 0;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: as above; `raw` is a valid termios derived from the terminal's own.
        if unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &raw const raw) } != 0 {
            return None;
        }
        Some(Keys { saved })
    }

    /// The keys pressed since the last call (empty when none).
    pub fn pressed(&mut self) -> Vec<u8> {
        let mut buf = [0u8; 64];
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes; with VMIN = VTIME = 0 the
        // read does not block.
        let n = unsafe { libc::read(STDIN, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // SAFETY: restores the termios read from this same terminal in `open`.
        unsafe {
            libc::tcsetattr(STDIN, libc::TCSANOW, &raw const self.saved);
        }
    }
}
