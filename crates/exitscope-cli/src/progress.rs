//! The progress bar of reading large inputs: on stderr, only when stderr is a terminal (a
//! pipe or a file never sees it) and the inputs are large enough to wait for (64 MB;
//! `EXITSCOPE_PROGRESS_MIN_BYTES` changes it), with bytes/s and the time left (indicatif).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const MIN_BYTES: u64 = 64 << 20;

/// A progress bar over the bytes of several inputs read one after the other.
pub struct Bar {
    bar: ProgressBar,
    /// Bytes of the inputs finished before the current one, and the current one's last count.
    state: Arc<Mutex<(u64, u64)>>,
}

impl Bar {
    /// A bar for reading `files`, or `None` when stderr is not a terminal or the inputs are
    /// small (stdin does not count: its size is unknown).
    pub fn for_inputs(files: &[String]) -> Option<Bar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let total: u64 = files
            .iter()
            .filter(|f| f.as_str() != exitscope_ingest::STDIN)
            .filter_map(|f| std::fs::metadata(f).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        let min = std::env::var("EXITSCOPE_PROGRESS_MIN_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MIN_BYTES);
        if total < min.max(1) {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "exitscope: reading {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style);
        }
        Some(Bar { bar, state: Arc::new(Mutex::new((0, 0))) })
    }

    /// The callback for the reader.
    pub fn callback(&self) -> exitscope_ingest::Progress {
        let (bar, state) = (self.bar.clone(), Arc::clone(&self.state));
        exitscope_ingest::Progress::new(move |done, total| {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            // A count going backwards is the next input.
            if done < s.1 {
                s.0 += total.max(s.1);
            }
            s.1 = done;
            bar.set_position(s.0 + done);
        })
    }

    /// Remove the bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
