//! One container's lifecycle, as the kubelet's sync loop drives it: resolve the image (or
//! `ErrImagePull` / `ImagePullBackOff`), build what it starts with (or
//! `CreateContainerConfigError`), start an instance, probe it, and when it ends restart it per
//! `restartPolicy` with the crash-loop back-off — until the worker says stop.
//!
//! Entry point: [`run`], one task per container, steered by the worker's [`Directive`]. The
//! `Runner` it drives is split by concern, one `impl Runner` block each:
//! - this module: the loop itself — pull, start, supervise (probes), restart and back-off;
//! - `config`: what an instance is started with — environment, argv, mounts and subPath copies;
//! - `termination`: how an instance ends — preStop, SIGTERM, SIGKILL at the grace deadline, and
//!   the `Terminated` record it leaves.
//!
//! Every state change goes through [`PodContext::update_container`], which writes `pod.status`
//! at once, and comes with the event a real kubelet records (`Pulled`, `Created`, `Started`,
//! `Killing`, `Unhealthy`, `BackOff`, `Failed`).

mod config;
mod termination;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, go_duration};
use super::logs::{ContainerLog, DEFAULT_LOG_BYTES};
use super::probe::{self, ProbeKind, Timing};
use super::prober::Prober;
use super::status::{State, Termination, reason};
use super::worker::{PodContext, spec_grace};
use crate::runtime::catalog::Image;
use crate::runtime::{ContainerConfig, Instance};

/// What the worker wants from a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Directive {
    Run,
    /// Stop by `deadline` (SIGKILL then); `hooks`: run preStop and send SIGTERM first.
    Stop {
        deadline: tokio::time::Instant,
        hooks: bool,
    },
}

/// Runs container `index` of the pod until it stops for good.
pub(crate) async fn run(ctx: Arc<PodContext>, index: usize, directive: watch::Receiver<Directive>) {
    let pod = ctx.pod();
    let Some(spec) = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.get(index))
        .cloned()
    else {
        return;
    };
    let options = &ctx.kubelet.options;
    let mut runner = Runner {
        restart_backoff: Backoff::new(options.backoff_initial, options.backoff_max),
        pull_backoff: Backoff::new(options.backoff_initial, options.backoff_max),
        config_changed: ctx.config_changed.subscribe(),
        pod_changes: ctx.pod.subscribe(),
        ctx: ctx.clone(),
        index,
        spec,
        directive,
        instances: 0,
        last: None,
        redefined: false,
    };
    runner.run().await;
}

struct Runner {
    ctx: Arc<PodContext>,
    index: usize,
    spec: Container,
    directive: watch::Receiver<Directive>,
    config_changed: watch::Receiver<u64>,
    /// The newest pod, to notice a changed image.
    pod_changes: watch::Receiver<Arc<Pod>>,
    restart_backoff: Backoff,
    pull_backoff: Backoff,
    /// How many instances were started (restartCount is this minus one).
    instances: i32,
    /// The latest termination, shown as `lastState` once the next instance starts.
    last: Option<Termination>,
    /// The running instance was killed because the pod's image changed: restart regardless
    /// of the restart policy.
    redefined: bool,
}

/// A started instance and what its status needs.
struct Started {
    instance: Instance,
    container_id: String,
    started_at: Timestamp,
    since: Instant,
    scratch: PathBuf,
}

impl Runner {
    fn image(&self) -> String {
        self.spec.image.clone().unwrap_or_default()
    }

    /// The container's image in the newest pod (the one mutable field of a container that
    /// matters here: `kubectl set image pod/...`).
    fn latest_image(&self) -> Option<String> {
        let pod = self.pod_changes.borrow();
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.get(self.index))
            .and_then(|c| c.image.clone())
    }

    /// Whether the pod now asks for another image than the one in use.
    fn image_changed(&self) -> bool {
        self.latest_image()
            .is_some_and(|image| Some(&image) != self.spec.image.as_ref())
    }

    fn stopping(&self) -> bool {
        matches!(*self.directive.borrow(), Directive::Stop { .. })
    }

    /// The retry period after an error: upstream's pod worker back-off with its jitter.
    fn sync_interval(&self) -> Duration {
        let base = self.ctx.kubelet.options.backoff_initial;
        base.mul_f64(1.0 + rand::random::<f64>() * 0.5)
    }

    fn set_waiting(&self, reason: &str, message: Option<String>) {
        let image = self.image();
        self.ctx.update_container(self.index, |c| {
            c.image = image;
            c.state = State::Waiting {
                reason: reason.to_owned(),
                message,
            };
            c.ready = false;
            c.started = false;
        });
    }

    /// Sleeps for `d`; wakes early on a stop (returns false) and, with `on_config`, on a
    /// ConfigMap or Secret change.
    async fn pause(&mut self, d: Duration, on_config: bool) -> bool {
        if self.stopping() {
            return false;
        }
        let sleep = tokio::time::sleep(d);
        let mut sleep = std::pin::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                changed = self.directive.changed() => return changed.is_ok() && !self.stopping(),
                _ = self.config_changed.changed(), if on_config => return true,
                changed = self.pod_changes.changed() => {
                    // Status writes change the pod all the time; only a new image matters.
                    if changed.is_err() || self.image_changed() {
                        return true;
                    }
                }
            }
        }
    }

    async fn run(&mut self) {
        loop {
            if self.stopping() {
                return;
            }
            if let Some(image) = self.latest_image() {
                self.spec.image = Some(image);
            }
            let Some(image) = self.pull().await else {
                continue;
            };
            self.ctx.event(
                "Normal",
                "Pulled",
                format!(
                    "Container image \"{}\" already present on machine",
                    self.image()
                ),
            );
            let config = match self.prepare(&image) {
                Ok(config) => config,
                Err(message) => {
                    self.ctx
                        .event("Warning", "Failed", format!("Error: {message}"));
                    self.set_waiting(reason::CREATE_CONTAINER_CONFIG_ERROR, Some(message));
                    let interval = self.sync_interval();
                    self.pause(interval, true).await;
                    continue;
                }
            };
            let termination = match self.start(config, &image).await {
                Ok(started) => self.supervise(started).await,
                Err(termination) => termination,
            };
            self.last = Some(termination.clone());
            let redefined = std::mem::take(&mut self.redefined);
            if self.stopping() || !(redefined || self.should_restart(termination.exit_code)) {
                return;
            }
            if !self.crash_loop(&termination).await {
                return;
            }
        }
    }

    fn should_restart(&self, exit_code: i32) -> bool {
        let pod = self.ctx.pod();
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => false,
            Some("OnFailure") => exit_code != 0,
            _ => true,
        }
    }

    /// Resolves the image through the runtime (the catalog, or the Docker engine); on failure
    /// shows `ErrImagePull`, then `ImagePullBackOff` until the pull back-off expires, and
    /// returns `None`.
    async fn pull(&mut self) -> Option<Image> {
        let image = self.image();
        let kubelet = &self.ctx.kubelet;
        let err = match kubelet
            .runtime
            .resolve(&kubelet.options.catalog, &image)
            .await
        {
            Ok(resolved) => return Some(resolved),
            Err(err) => err,
        };
        let now = Instant::now();
        if let Some(left) = self.pull_backoff.remaining(now) {
            let message = format!("Back-off pulling image \"{image}\"");
            self.ctx.event("Normal", "BackOff", message.clone());
            self.ctx
                .event("Warning", "Failed", "Error: ImagePullBackOff");
            self.set_waiting(reason::IMAGE_PULL_BACK_OFF, Some(message));
            self.pause(left, false).await;
        } else {
            self.ctx
                .event("Normal", "Pulling", format!("Pulling image \"{image}\""));
            self.ctx.event(
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {err}"),
            );
            self.ctx.event("Warning", "Failed", "Error: ErrImagePull");
            self.set_waiting(reason::ERR_IMAGE_PULL, Some(err.to_string()));
            self.pull_backoff.next(now, now);
            // The next sync comes soon and finds the pull in back-off.
            let soon = self.ctx.kubelet.options.backoff_initial / 10;
            self.pause(soon, false).await;
        }
        None
    }

    /// Starts an instance; a failure is a termination (`StartError`, shown as
    /// `RunContainerError`).
    async fn start(
        &mut self,
        mut config: ContainerConfig,
        image: &Image,
    ) -> Result<Started, Termination> {
        self.instances += 1;
        let restart_count = self.instances - 1;
        let log = ContainerLog::new(DEFAULT_LOG_BYTES);
        config.log = log.clone();
        let ctx = self.ctx.clone();
        let name = self.spec.name.clone();
        match ctx.kubelet.runtime.start(&config).await {
            Ok(instance) => {
                let container_id = instance.container_id().unwrap_or_else(|| {
                    format!(
                        "harness://{:032x}{:032x}",
                        rand::random::<u128>(),
                        rand::random::<u128>()
                    )
                });
                let (killer, pid, exec) = (instance.killer(), instance.pid(), instance.exec());
                ctx.kubelet
                    .registry
                    .with(&ctx.namespace, &ctx.name, &ctx.uid, &name, |e| {
                        if let Some(current) = e.current.take() {
                            e.previous = Some(current);
                        }
                        e.current = Some(log);
                        e.killer = Some(killer);
                        e.exec = Some(exec);
                        e.pid = pid;
                    });
                ctx.event("Normal", "Created", format!("Created container: {name}"));
                ctx.event("Normal", "Started", format!("Started container {name}"));
                let gated = self.spec.startup_probe.is_some();
                let readiness = self.spec.readiness_probe.is_some();
                if !gated && !readiness {
                    // Without a readiness probe upstream calls the container ready once it runs,
                    // and endpoint propagation (hundreds of ms) hides the moment before it
                    // listens. Here endpoints change in microseconds, so wait (briefly) for the
                    // first port to accept, or new connections would be refused.
                    wait_listening(ctx.ip.into(), self.spec.ports.iter().flatten().next()).await;
                }
                let started_at = Timestamp::now();
                let last = self.last.clone();
                let image_name = self.image();
                ctx.update_container(self.index, |c| {
                    c.image = image_name;
                    c.state = State::Running { started_at };
                    c.container_id = Some(container_id.clone());
                    c.image_id = Some(image.image_id.clone());
                    c.restart_count = restart_count;
                    c.last = last;
                    c.started = !gated;
                    c.ready = !gated && !readiness;
                });
                Ok(Started {
                    instance,
                    container_id,
                    started_at,
                    since: Instant::now(),
                    scratch: config.scratch,
                })
            }
            Err(message) => {
                ctx.event("Warning", "Failed", format!("Error: {message}"));
                let now = Timestamp::now();
                let termination = Termination {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".to_owned(),
                    message: Some(message.clone()),
                    started_at: Some(now),
                    finished_at: now,
                    container_id: None,
                };
                let last = termination.clone();
                ctx.update_container(self.index, |c| {
                    c.state = State::Waiting {
                        reason: reason::RUN_CONTAINER_ERROR.to_owned(),
                        message: Some(message),
                    };
                    c.restart_count = restart_count;
                    c.last = Some(last);
                    c.ready = false;
                    c.started = false;
                });
                crate::runtime::mounts::remove_tree(&config.scratch);
                Err(termination)
            }
        }
    }

    /// Runs probes while the instance lives; kills it on a liveness (or startup) failure and
    /// stops it on the worker's word. Returns how it ended.
    async fn supervise(&mut self, mut started: Started) -> Termination {
        let probes = CancellationToken::new();
        let (failed_tx, mut failed) = mpsc::channel::<ProbeKind>(1);
        let exec = started.instance.exec();
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Readiness,
            ProbeKind::Liveness,
        ] {
            let Some(probe) = kind.of(&self.spec).cloned() else {
                continue;
            };
            let action = probe::probe_action(&probe, &self.spec, self.ctx.ip.into());
            let prober = Prober {
                ctx: self.ctx.clone(),
                index: self.index,
                kind,
                timing: Timing::of(&probe),
                action,
                exec: exec.clone(),
                since: started.since,
                has_readiness: self.spec.readiness_probe.is_some(),
                cancel: probes.clone(),
                failed: failed_tx.clone(),
            };
            self.ctx.kubelet.tasks.spawn(prober.run());
        }
        drop(failed_tx);

        let exit = loop {
            if self.stopping() {
                probes.cancel();
                self.ctx.event(
                    "Normal",
                    "Killing",
                    format!("Stopping container {}", self.spec.name),
                );
                break self.stop(&mut started.instance, &exec).await;
            }
            tokio::select! {
                exit = started.instance.wait() => break exit,
                Some(kind) = failed.recv() => {
                    probes.cancel();
                    let what = if kind == ProbeKind::Liveness { "liveness" } else { "startup" };
                    self.ctx.event(
                        "Normal",
                        "Killing",
                        format!("Container {} failed {what} probe, will be restarted", self.spec.name),
                    );
                    self.ctx.update_container(self.index, |c| c.ready = false);
                    let deadline = self.probe_failure_deadline(kind);
                    break self.kill(&mut started.instance, &exec, deadline, true).await;
                }
                changed = self.directive.changed() => {
                    if changed.is_err() {
                        started.instance.killer().kill();
                        break started.instance.wait().await;
                    }
                }
                changed = self.pod_changes.changed() => {
                    if changed.is_ok() && self.image_changed() {
                        probes.cancel();
                        self.ctx.event(
                            "Normal",
                            "Killing",
                            format!("Container {} definition changed, will be restarted", self.spec.name),
                        );
                        self.ctx.update_container(self.index, |c| c.ready = false);
                        self.redefined = true;
                        let deadline = tokio::time::Instant::now() + spec_grace(&self.ctx.pod());
                        break self.kill(&mut started.instance, &exec, deadline, true).await;
                    }
                }
            }
        };
        probes.cancel();
        self.finished(started, exit)
    }

    /// The crash-loop back-off before a restart (upstream's `doBackOff`). False when told to
    /// stop while waiting.
    async fn crash_loop(&mut self, termination: &Termination) -> bool {
        let finished = Instant::now();
        while let Some(left) = self
            .restart_backoff
            .remaining_since(finished, Instant::now())
        {
            let backoff = self.restart_backoff.current().unwrap_or_default();
            let name = self.spec.name.clone();
            let pod = self.ctx.format_pod();
            self.ctx.event(
                "Warning",
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}"),
            );
            let last = termination.clone();
            self.ctx.update_container(self.index, |c| {
                c.state = State::Waiting {
                    reason: reason::CRASH_LOOP_BACK_OFF.to_owned(),
                    message: Some(format!(
                        "back-off {} restarting failed container={name} pod={pod}",
                        go_duration(backoff)
                    )),
                };
                c.last = Some(last);
            });
            if !self.pause(left, false).await {
                return false;
            }
        }
        self.restart_backoff.next(finished, Instant::now());
        true
    }
}

/// Waits up to 2 s for `port` on `ip` to accept a connection.
async fn wait_listening(
    ip: std::net::IpAddr,
    port: Option<&k8s_openapi::api::core::v1::ContainerPort>,
) {
    let Some(port) = port.and_then(|p| u16::try_from(p.container_port).ok()) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect((ip, port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
