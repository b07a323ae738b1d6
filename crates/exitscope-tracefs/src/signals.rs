//! SIGINT, SIGTERM and SIGHUP become a flag that the recording loop polls, so that stopping
//! and restoring happen on the ordinary code path (no work in signal context).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::Error;

/// While alive, SIGINT/SIGTERM/SIGHUP do not kill the process; they are recorded and can be
/// polled with [`SignalWatcher::pending`]. Dropping it restores the previous dispositions.
#[derive(Debug)]
pub struct SignalWatcher {
    flag: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl SignalWatcher {
    /// The signals watched.
    pub const SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

    /// Start watching.
    ///
    /// # Errors
    /// [`Error::Process`] if a handler cannot be installed.
    pub fn install() -> Result<SignalWatcher, Error> {
        let flag = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for sig in Self::SIGNALS {
            let value = usize::try_from(sig).unwrap_or(usize::MAX);
            let id = signal_hook::flag::register_usize(sig, Arc::clone(&flag), value).map_err(
                |source: io::Error| Error::Process {
                    what: format!("installing a handler for signal {sig}"),
                    source,
                },
            )?;
            ids.push(id);
        }
        Ok(SignalWatcher { flag, ids })
    }

    /// The last watched signal received, if any.
    pub fn pending(&self) -> Option<i32> {
        match self.flag.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
