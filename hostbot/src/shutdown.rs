//! Turning process signals into the two cancellation tokens that [`run_with_force`] obeys.
//!
//! The first SIGTERM or SIGINT asks for a graceful drain (`graceful`), the second one forces the
//! exit (`force`), so an operator pressing Ctrl+C twice is never stuck behind a drain delay.
//! Signal handling is process-wide by nature, so it lives here, used by the command line only;
//! [`run_with_force`] itself only sees tokens.
//!
//! [`run_with_force`]: crate::run_with_force

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Installed SIGTERM and SIGINT handlers. Install them before announcing the listener, so that a
/// signal sent right after startup is never handled by the default action (death).
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Replaces the default SIGTERM and SIGINT actions for this process. Needs a Tokio runtime.
    pub fn install() -> io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Cancels `graceful` on the first signal and `force` on the second, then returns.
    pub async fn forward(mut self, graceful: CancellationToken, force: CancellationToken) {
        let first = self.next().await;
        info!(
            signal = first,
            "received {first}: shutting down gracefully (a second signal forces the exit)"
        );
        graceful.cancel();
        let second = self.next().await;
        warn!(
            signal = second,
            "received {second} during shutdown: exiting now"
        );
        force.cancel();
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Installs the handlers and forwards signals to the tokens (see [`Signals::forward`]).
pub async fn forward_signals(
    graceful: CancellationToken,
    force: CancellationToken,
) -> io::Result<()> {
    Signals::install()?.forward(graceful, force).await;
    Ok(())
}
