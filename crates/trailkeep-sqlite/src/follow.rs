//! The loop shared by the threads that follow the events table (the full-text indexer and the sealer):
//! work in batches while there is a backlog, then wait for a commit notice or a timeout, and finish what
//! is left once the writer hangs up.

use std::fmt::Display;
use std::sync::mpsc;
use std::time::Duration;

/// How a follower paces itself.
pub struct Pace {
    /// The most rows one step handles: a full step means a backlog, so the next starts at once.
    pub batch: usize,
    /// How long to wait for a commit notice before stepping anyway.
    pub idle_wait: Duration,
    /// How long to wait after a failed step.
    pub backoff: Duration,
    /// After a commit notice, how long to let further commits gather before stepping, so that a busy
    /// log is followed in fewer, larger transactions; zero steps at once.
    pub settle: Duration,
}

/// Runs `step` (which handles up to `pace.batch` rows and says how many it handled) until `commits` is
/// disconnected. A failing step is logged as `what` and retried after the back-off, once `recover` has
/// reset whatever state the failure may have left; `finish` runs once at the end, unless the store
/// stops while steps are still failing.
pub fn follow<E: Display>(
    commits: mpsc::Receiver<()>,
    pace: Pace,
    what: &str,
    mut step: impl FnMut() -> Result<usize, E>,
    mut recover: impl FnMut(),
    finish: impl FnOnce(&mut dyn FnMut() -> Result<usize, E>),
) {
    loop {
        match step() {
            Ok(n) if n >= pace.batch => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "{what} failed; retrying");
                recover();
                // Back off, but stop with the store: a step that keeps failing must not hold up shutdown.
                if let Err(mpsc::RecvTimeoutError::Disconnected) = commits.recv_timeout(pace.backoff) {
                    tracing::error!("{what} stops with the store while still failing");
                    return;
                }
                continue;
            }
        }
        match commits.recv_timeout(pace.idle_wait) {
            Ok(()) if !pace.settle.is_zero() => {
                if let Err(mpsc::RecvTimeoutError::Disconnected) = gather(&commits, pace.settle) {
                    while matches!(step(), Ok(n) if n > 0) {}
                    finish(&mut step);
                    return;
                }
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                while matches!(step(), Ok(n) if n > 0) {}
                finish(&mut step);
                return;
            }
        }
    }
}

/// Takes the commit notices of the next `window`, or returns early when the writer hangs up.
fn gather(commits: &mpsc::Receiver<()>, window: Duration) -> Result<(), mpsc::RecvTimeoutError> {
    let until = std::time::Instant::now() + window;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        match commits.recv_timeout(left) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(e @ mpsc::RecvTimeoutError::Disconnected) => return Err(e),
        }
    }
}
