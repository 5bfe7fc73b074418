//! Ctrl-C and SIGTERM for a command that runs an embedded cluster: the first signal stops the
//! cluster with its pods' grace periods, a second kills every container at once.
//!
//! Without a handler a signal ends the process on the spot. Process containers die with it
//! (their parent-death signal), but Docker containers are not children of the harness and
//! would keep running until the next harness removes them as leftovers.

use anyhow::Context as _;
use harness::cluster::Cluster;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, watched from creation on.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    /// The next signal's name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Shuts the cluster down; a signal meanwhile skips what is left of the grace periods.
pub async fn shutdown(cluster: Cluster, signals: &mut Signals) -> harness::error::Result<()> {
    let kubelet = cluster.kubelet().clone();
    let shutdown = cluster.shutdown();
    tokio::pin!(shutdown);
    tokio::select! {
        done = &mut shutdown => done,
        signal = signals.next() => {
            eprintln!("{signal}: killing every container");
            kubelet.force();
            shutdown.await
        }
    }
}
