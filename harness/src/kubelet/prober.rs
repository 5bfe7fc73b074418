//! [`Prober`]: the probing loop of one container instance, as the kubelet's probe workers run
//! it: every period (the first at once), skipping until the initial delay has passed and, for
//! readiness and liveness, until the startup probe has succeeded; a result counts once its
//! threshold is reached. Readiness sets the container's `ready`; a startup success sets
//! `started`; a liveness or startup failure is reported to the container, which kills it.
//!
//! The first probe goes out as soon as the runtime reports the start, usually a few
//! milliseconds before the program listens. Upstream's first probe comes later (after PLEG's
//! relist sees the running container), so it rarely meets a closed port. To keep that
//! behaviour without the delay, a first network probe that gets no answer (a closed port, a
//! reset, a timeout while the program sets up) is retried after a short pause (5 ms, doubling to
//! 100 ms) for up to one period, neither counted nor reported; a bad answer (an HTTP status, an
//! exec probe's exit code), and every later probe, counts as upstream's would.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        let mut first = true;
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
            let Some(result) = self.probe(std::mem::take(&mut first)).await else {
                return;
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

    /// One probe, or `None` once cancelled. A `first` probe that got no answer is retried
    /// (see the module documentation) until it gets another answer or one period has passed.
    async fn probe(&self, first: bool) -> Option<Result<(), probe::Failure>> {
        let mut pause = Duration::from_millis(5);
        loop {
            let result = tokio::select! {
                () = self.cancel.cancelled() => return None,
                result = probe::run(&self.action, &self.exec, self.timing.timeout) => result,
            };
            let settling = first
                && result.as_ref().is_err_and(|failure| failure.unanswered)
                && self.since.elapsed() + pause < self.timing.period;
            if !settling {
                return Some(result);
            }
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}
