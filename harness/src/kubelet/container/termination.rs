//! How a container instance ends: on the worker's stop directive or a failed liveness/startup
//! probe the runner runs the preStop hook, sends SIGTERM and SIGKILLs at the grace deadline
//! (never sooner than [`MINIMUM_GRACE`] after the hook), and every ending — a kill or an exit of
//! its own — leaves a `Terminated` record in `pod.status`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Probe;

use super::{Directive, Runner, Started};
use crate::kubelet::backoff::go_duration;
use crate::kubelet::probe::{self, Action, ProbeKind};
use crate::kubelet::status::{State, Termination};
use crate::kubelet::worker::spec_grace;
use crate::runtime::{Exec, Exit, Instance};

/// After preStop, a container always gets this long between SIGTERM and SIGKILL (upstream's
/// `minimumGracePeriodInSeconds`).
const MINIMUM_GRACE: Duration = Duration::from_secs(2);

impl Runner {
    /// Records the end of an instance.
    pub(super) fn finished(&mut self, started: Started, exit: Exit) -> Termination {
        let ctx = &self.ctx;
        ctx.kubelet
            .registry
            .with(&ctx.namespace, &ctx.name, &ctx.uid, &self.spec.name, |e| {
                e.killer = None;
                e.exec = None;
                e.pid = None;
            });
        let termination = Termination {
            exit_code: exit.code,
            signal: exit.signal,
            reason: Termination::reason_for(exit.code).to_owned(),
            message: None,
            started_at: Some(started.started_at),
            finished_at: Timestamp::now(),
            container_id: Some(started.container_id.clone()),
        };
        let state = termination.clone();
        ctx.update_container(self.index, |c| {
            c.state = State::Terminated(state);
            c.ready = false;
            c.started = false;
        });
        crate::runtime::mounts::remove_tree(&started.scratch);
        termination
    }

    /// Stops an instance on the worker's directive (deadline and hooks from it).
    pub(super) async fn stop(&mut self, instance: &mut Instance, exec: &Exec) -> Exit {
        let (deadline, hooks) = match *self.directive.borrow_and_update() {
            Directive::Stop { deadline, hooks } => (deadline, hooks),
            Directive::Run => (tokio::time::Instant::now(), false),
        };
        self.kill(instance, exec, deadline, hooks).await
    }

    /// When to SIGKILL after a failed liveness or startup probe: the probe's own
    /// `terminationGracePeriodSeconds` from now, else the pod's (default 30 s).
    pub(super) fn probe_failure_deadline(&self, kind: ProbeKind) -> tokio::time::Instant {
        let grace = kind
            .of(&self.spec)
            .and_then(|p: &Probe| p.termination_grace_period_seconds)
            .map_or_else(
                || spec_grace(&self.ctx.pod()),
                |secs| Duration::from_secs(secs.max(0) as u64),
            );
        tokio::time::Instant::now() + grace
    }

    /// preStop (if `hooks`), SIGTERM, SIGKILL at `deadline` (at least [`MINIMUM_GRACE`] after
    /// the hook). A newer stop directive with an earlier deadline or no hooks shortens it.
    pub(super) async fn kill(
        &mut self,
        instance: &mut Instance,
        exec: &Exec,
        mut deadline: tokio::time::Instant,
        mut hooks: bool,
    ) -> Exit {
        let killer = instance.killer();
        if hooks
            && let Some(handler) = self
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
        {
            let action = probe::handler_action(handler, &self.spec, self.ctx.ip.into());
            let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
            let hook = probe::run(&action, exec, budget);
            let mut hook = std::pin::pin!(tokio::time::timeout_at(deadline, hook));
            loop {
                tokio::select! {
                    result = &mut hook => {
                        let error = match result {
                            Ok(Ok(())) => None,
                            Ok(Err(failure)) => Some(failure.message),
                            Err(_) => Some(format!("timed out after {}", go_duration(budget))),
                        };
                        if let Some(error) = error {
                            self.ctx.event(
                                "Warning",
                                "FailedPreStopHook",
                                format!(
                                    "{} lifecycle hook for Container \"{}\" in Pod \"{}\" failed - error: {error}",
                                    hook_kind(&action),
                                    self.spec.name,
                                    self.ctx.format_pod()
                                ),
                            );
                        }
                        break;
                    }
                    exit = instance.wait() => return exit,
                    changed = self.directive.changed() => {
                        let forced = changed.is_err()
                            || matches!(*self.directive.borrow(), Directive::Stop { hooks: false, .. });
                        if forced {
                            hooks = false;
                            deadline = tokio::time::Instant::now();
                            break;
                        }
                    }
                }
            }
        }
        let now = tokio::time::Instant::now();
        let mut kill_at = if hooks {
            deadline.max(now + MINIMUM_GRACE)
        } else {
            deadline
        };
        if kill_at > now {
            killer.terminate();
        }
        loop {
            tokio::select! {
                exit = instance.wait() => return exit,
                () = tokio::time::sleep_until(kill_at) => {
                    killer.kill();
                    return instance.wait().await;
                }
                changed = self.directive.changed() => {
                    match (changed, *self.directive.borrow()) {
                        (Err(_), _) | (_, Directive::Stop { hooks: false, .. }) => {
                            kill_at = tokio::time::Instant::now();
                        }
                        (_, Directive::Stop { deadline, .. }) if deadline < kill_at => {
                            kill_at = deadline.max(tokio::time::Instant::now() + MINIMUM_GRACE).min(kill_at);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn hook_kind(action: &Action) -> &'static str {
    match action {
        Action::Http { .. } => "HTTP",
        Action::Tcp(_) => "TCP",
        Action::Exec(_) => "Exec",
        Action::Sleep(_) => "Sleep",
        Action::Unsupported(_) => "Unsupported",
    }
}
