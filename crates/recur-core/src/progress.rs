//! How long work reports on itself: training epochs, corpus embedding,
//! downloads, leaderboard measurements. Libraries never draw or print; they
//! tell a [`Progress`], and whoever runs them decides what to show: the CLI
//! draws bars and lines on stderr, the Python package can forward to a
//! callback, and [`Silent`] shows nothing (tests, tuning trials, `-q`).
//!
//! Every method has a do-nothing default, so an implementation picks what
//! it shows.

/// What a stage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Batches, chunks, models.
    Items,
    /// Bytes downloaded or read.
    Bytes,
}

/// A receiver of progress reports. Stages do not nest: a stage started
/// before the last one finished replaces it.
pub trait Progress: Sync {
    /// A stage of `total` steps begins (`0`: unknown).
    fn start(&self, _stage: &str, _total: u64, _units: Units) {}
    /// `n` more steps of the stage are done; `status` is a short figure to
    /// show beside it (the running loss), or empty.
    fn advance(&self, _n: u64, _status: &str) {}
    /// The stage is over.
    fn finish(&self) {}
    /// A line the user should read: an epoch's figures, a decision taken.
    fn note(&self, _line: &str) {}
    /// Whether whoever runs the work asks it to stop (Ctrl-C in Python,
    /// where the work runs without the interpreter lock and Python's own
    /// signal handling waits for it). Training asks between batches and
    /// stops with [`interrupted`].
    fn stop_requested(&self) -> bool {
        false
    }
}

/// The error a run stops with when its [`Progress`] asks it to.
pub fn interrupted() -> crate::Error {
    crate::Error::Interrupted
}

/// Whether `e` is [`interrupted`]'s error.
pub fn is_interrupted(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Interrupted)
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// The silent reporter, for defaults.
pub static SILENT: Silent = Silent;

/// Silent, but stops when `0` asks: the reporter of work run inside a
/// larger job (a search's trials), which shows nothing of its own and must
/// still hear the caller's stop.
#[derive(Clone, Copy)]
pub struct StopOnly<'a>(pub &'a dyn Progress);

impl Progress for StopOnly<'_> {
    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }
}

impl std::fmt::Debug for StopOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopOnly").finish_non_exhaustive()
    }
}
