//! Ctrl-C during a sign-in: the device flow (and the wait for another process's sign-in) stops
//! at its next step, the caller returns normally so that locks are released by their `Drop`
//! and nothing half-written is left, and the plugin exits with 130 (128 + SIGINT, what shells
//! report for a command ended by Ctrl-C).
//!
//! The handler only sets a flag (no work in the signal handler); a second Ctrl-C ends the
//! process at once with 130 (still safe: the OS releases the locks, and every cache write is
//! atomic or reads as a miss when cut short). It is installed only on the interactive paths,
//! never on the cached-hit path, which must stay cheap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code after Ctrl-C.
pub(crate) const EXIT_CANCELLED: u8 = 130;

/// Whether the person pressed Ctrl-C.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel {
    flag: Arc<AtomicBool>,
}

impl Cancel {
    /// Installs the SIGINT handler for the rest of the process. If it cannot be installed,
    /// Ctrl-C keeps its default effect (the process ends; the OS releases the locks).
    pub(crate) fn on_ctrl_c() -> Self {
        let cancel = Self::default();
        let sigint = signal_hook::consts::SIGINT;
        // Order matters: the first Ctrl-C sets the flag (the shutdown hook sees it unset and
        // does nothing); a second one finds it set and exits.
        let _ = signal_hook::flag::register_conditional_shutdown(
            sigint,
            i32::from(EXIT_CANCELLED),
            Arc::clone(&cancel.flag),
        );
        let _ = signal_hook::flag::register(sigint, Arc::clone(&cancel.flag));
        cancel
    }

    /// Whether Ctrl-C was pressed.
    pub(crate) fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// As if Ctrl-C had been pressed (tests).
    #[cfg(test)]
    pub(crate) fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}
