//! [`Prober`]: the probing loop of one container instance, as the kubelet's probe workers run
//! it: every period (the first at once), skipping until the initial delay has passed and, for
//! readiness and liveness, until the startup probe has succeeded; a result counts once its
//! threshold is reached. Readiness sets the container's `ready`; a startup success sets
//! `started`; a liveness or startup failure is reported to the container, which kills it.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::probe::{self, Action, Counter, ProbeKind, Timing};
use super::status::State;
use super::worker::PodContext;
use crate::runtime::Exec;

/// One probe of one container instance.
pub(crate) struct Prober {
    pub ctx: Arc<PodContext>,
    pub index: usize,
    pub kind: ProbeKind,
    pub timing: Timing,
    pub action: Action,
    pub exec: Exec,
    /// When the instance started.
    pub since: Instant,
    pub has_readiness: bool,
    pub cancel: CancellationToken,
    /// Where a liveness or startup failure is reported.
    pub failed: mpsc::Sender<ProbeKind>,
}

impl Prober {
    /// Probes every period (the first at once), skipping until the initial delay has passed
    /// and, for readiness and liveness, until the startup probe has succeeded.
    pub async fn run(self) {
        let mut counter = Counter::default();
        let mut ticker = tokio::time::interval(self.timing.period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let started = self.ctx.container(self.index).started;
            match self.kind {
                ProbeKind::Startup if started => return,
                ProbeKind::Readiness | ProbeKind::Liveness if !started => continue,
                _ => {}
            }
            if self.since.elapsed() < self.timing.initial_delay {
                continue;
            }
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = probe::run(&self.action, &self.exec, self.timing.timeout) => result,
            };
            if let Err(message) = &result {
                self.ctx.event(
                    "Warning",
                    "Unhealthy",
                    format!("{} probe failed: {message}", self.kind.name()),
                );
            }
            let Some(ok) = counter.observe(result.is_ok(), &self.timing) else {
                continue;
            };
            match (self.kind, ok) {
                (ProbeKind::Readiness, ready) => {
                    self.ctx.update_container(self.index, |c| {
                        if matches!(c.state, State::Running { .. }) {
                            c.ready = ready;
                        }
                    });
                }
                (ProbeKind::Liveness, true) => {}
                (ProbeKind::Startup, true) => {
                    let has_readiness = self.has_readiness;
                    self.ctx.update_container(self.index, |c| {
                        c.started = true;
                        c.ready = !has_readiness;
                    });
                    return;
                }
                (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                    let _ = self.failed.send(self.kind).await;
                    return;
                }
            }
        }
    }
}
