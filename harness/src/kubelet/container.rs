//! One container's lifecycle, as the kubelet's sync loop drives it: resolve the image (or
//! `ErrImagePull` / `ImagePullBackOff`), build the environment (or
//! `CreateContainerConfigError`), start an instance, probe it, and when it ends restart it per
//! `restartPolicy` with the crash-loop back-off — until the worker says stop, which runs the
//! preStop hook, sends SIGTERM and SIGKILLs at the deadline.
//!
//! Every state change goes through [`PodContext::update_container`], which writes `pod.status`
//! at once, and comes with the event a real kubelet records (`Pulled`, `Created`, `Started`,
//! `Killing`, `Unhealthy`, `BackOff`, `Failed`).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, go_duration};
use super::env;
use super::logs::{ContainerLog, DEFAULT_LOG_BYTES};
use super::probe::{self, Action, ProbeKind, Timing};
use super::prober::Prober;
use super::status::{State, Termination, reason};
use super::worker::{PodContext, spec_grace};
use crate::runtime::catalog::{HOSTBOT, Image};
use crate::runtime::mounts::MountSpec;
use crate::runtime::{ContainerConfig, Exec, Exit, Instance};

/// After preStop, a container always gets this long between SIGTERM and SIGKILL (upstream's
/// `minimumGracePeriodInSeconds`).
const MINIMUM_GRACE: Duration = Duration::from_secs(2);

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
    pod_changes: watch::Receiver<Arc<k8s_openapi::api::core::v1::Pod>>,
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

    /// Everything the runtime needs; an error is a `CreateContainerConfigError` message.
    fn prepare(&mut self, image: &Image) -> Result<ContainerConfig, String> {
        let pod = self.ctx.pod();
        self.config_changed.borrow_and_update();
        let user = env::resolve(
            self.ctx.kubelet.store.as_ref(),
            &pod,
            &self.spec,
            &self.ctx.facts(),
        )?;
        let spec = &self.spec;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // What the node adds, lowest first: derived settings, the image's environment, the
        // hostname, then the pod's own variables.
        env.insert("HOST".into(), self.ctx.ip.to_string());
        if let Some(port) = spec.ports.iter().flatten().next() {
            env.insert("PORT".into(), port.container_port.to_string());
        }
        if let Some(dir) = self.config_dir(&pod) {
            env.insert("CONFIG_DIR".into(), dir);
        }
        env.extend(image.env.iter().cloned());
        let hostname = pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.ctx.name.clone());
        env.insert("HOSTNAME".into(), hostname.clone());
        env.extend(user);
        // In a pod, loopback and "any address" are the pod's own network namespace; here they
        // would be the host's, shared by every pod. Bind the pod's own IP instead.
        if env.get("HOST").is_some_and(|h| {
            matches!(
                h.as_str(),
                "localhost" | "127.0.0.1" | "::1" | "0.0.0.0" | "::" | ""
            )
        }) {
            env.insert("HOST".into(), self.ctx.ip.to_string());
        }

        let argv = command_line(spec, &image.entrypoint, &env)?;
        let ports = crate::runtime::ports::reachable(spec, &env);
        let scratch = self
            .ctx
            .dir
            .join("containers")
            .join(format!("{}-{}", spec.name, self.instances));
        let mounts = self.mounts(&env, &scratch)?;
        Ok(ContainerConfig {
            pod: format!("{}/{}", self.ctx.namespace, self.ctx.name),
            name: spec.name.clone(),
            argv,
            env: env.into_iter().collect(),
            hostname,
            pod_ip: self.ctx.ip,
            mounts,
            scratch,
            working_dir: spec.working_dir.as_ref().map(PathBuf::from),
            log: ContainerLog::new(DEFAULT_LOG_BYTES),
            image: self.image(),
            ports,
        })
    }

    /// The mountPath of the first whole ConfigMap-like volume, for `CONFIG_DIR`.
    fn config_dir(&self, pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
        let volumes = pod.spec.as_ref()?.volumes.as_ref()?;
        self.spec.volume_mounts.iter().flatten().find_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name)?;
            let configish = v.config_map.is_some() || v.secret.is_some() || v.projected.is_some();
            let whole = m.sub_path.as_deref().unwrap_or_default().is_empty()
                && m.sub_path_expr.as_deref().unwrap_or_default().is_empty();
            (configish && whole).then(|| m.mount_path.clone())
        })
    }

    /// The container's mounts; `subPath`s of ConfigMap-like volumes are copied, so they never
    /// change (as upstream, where they pin the file of the moment).
    fn mounts(
        &self,
        env: &BTreeMap<String, String>,
        scratch: &Path,
    ) -> Result<Vec<MountSpec>, String> {
        let volumes = self.ctx.volumes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (i, m) in self.spec.volume_mounts.iter().flatten().enumerate() {
            let Some(root) = volumes.path(&m.name) else {
                return Err(format!(
                    "cannot find volume \"{}\" to mount into container \"{}\"",
                    m.name, self.spec.name
                ));
            };
            let sub = match (&m.sub_path, &m.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(e)) if !e.is_empty() => env::expand(e, |n| env.get(n).cloned()),
                _ => String::new(),
            };
            let atomic = volumes.is_atomic(&m.name);
            let read_only = m.read_only.unwrap_or(false) || atomic;
            if sub.is_empty() {
                out.push(MountSpec {
                    source: root.to_path_buf(),
                    target: PathBuf::from(&m.mount_path),
                    read_only,
                    file: false,
                });
                continue;
            }
            let relative = Path::new(&sub);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(format!(
                    "failed to prepare subPath for volumeMount \"{}\" of container \"{}\": invalid subPath {sub:?}",
                    m.name, self.spec.name
                ));
            }
            let path = root.join(relative);
            let failed = |e: std::io::Error| {
                format!(
                    "failed to prepare subPath for volumeMount \"{}\" of container \"{}\": {e}",
                    m.name, self.spec.name
                )
            };
            let (source, file) = if atomic {
                let resolved = std::fs::canonicalize(&path).map_err(failed)?;
                let copy = scratch
                    .join(format!("subpath-{i}"))
                    .join(relative.file_name().unwrap_or_default());
                copy_tree(&resolved, &copy).map_err(failed)?;
                let file = copy.is_file();
                (copy, file)
            } else {
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(failed)?;
                }
                let file = path.is_file();
                (path, file)
            };
            out.push(MountSpec {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only,
                file,
            });
        }
        Ok(out)
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
                    let grace = kind
                        .of(&self.spec)
                        .and_then(|p: &Probe| p.termination_grace_period_seconds)
                        .or_else(|| self.ctx.pod().spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
                        .unwrap_or(30);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(0) as u64);
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

    /// Records the end of an instance.
    fn finished(&mut self, started: Started, exit: Exit) -> Termination {
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
    async fn stop(&mut self, instance: &mut Instance, exec: &Exec) -> Exit {
        let (deadline, hooks) = match *self.directive.borrow_and_update() {
            Directive::Stop { deadline, hooks } => (deadline, hooks),
            Directive::Run => (tokio::time::Instant::now(), false),
        };
        self.kill(instance, exec, deadline, hooks).await
    }

    /// preStop (if `hooks`), SIGTERM, SIGKILL at `deadline` (at least [`MINIMUM_GRACE`] after
    /// the hook). A newer stop directive with an earlier deadline or no hooks shortens it.
    async fn kill(
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
                            Ok(Err(e)) => Some(e),
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

fn hook_kind(action: &Action) -> &'static str {
    match action {
        Action::Http { .. } => "HTTP",
        Action::Tcp(_) => "TCP",
        Action::Exec(_) => "Exec",
        Action::Sleep(_) => "Sleep",
        Action::Unsupported(_) => "Unsupported",
    }
}

/// The argv of a container, as a runtime combines image and pod: the pod's `command` replaces
/// the entrypoint, `args` follow; `$(VAR)` references are expanded; a program named `hostbot`
/// is hostbot itself.
fn command_line(
    spec: &Container,
    entrypoint: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let command = spec.command.clone().filter(|c| !c.is_empty());
    let args = spec.args.clone().filter(|a| !a.is_empty());
    let mut argv = match (command, args) {
        (Some(command), args) => command
            .into_iter()
            .chain(args.into_iter().flatten())
            .collect(),
        (None, Some(args)) => entrypoint.iter().cloned().chain(args).collect(),
        (None, None) => entrypoint.to_vec(),
    };
    if argv.is_empty() {
        return Err(format!(
            "no command specified for container \"{}\": the image has no entrypoint",
            spec.name
        ));
    }
    for arg in &mut argv {
        *arg = env::expand(arg, |n| env.get(n).cloned());
    }
    if Path::new(&argv[0])
        .file_name()
        .is_some_and(|n| n == HOSTBOT)
    {
        argv[0] = HOSTBOT.to_owned();
    }
    Ok(argv)
}

/// Copies a file or a directory tree (following symlinks).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_combine_image_and_pod() {
        let env: BTreeMap<String, String> = [("PORT".to_owned(), "8080".to_owned())].into();
        let container = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
            name: "c".into(),
            command: command.map(|c| c.into_iter().map(String::from).collect()),
            args: args.map(|a| a.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let hostbot = vec![HOSTBOT.to_owned()];
        type Case<'a> = (Container, Vec<String>, Result<Vec<&'a str>, ()>);
        let cases: Vec<Case> = vec![
            (container(None, None), hostbot.clone(), Ok(vec!["hostbot"])),
            (
                container(None, Some(vec!["--port=$(PORT)"])),
                hostbot.clone(),
                Ok(vec!["hostbot", "--port=8080"]),
            ),
            (
                container(Some(vec!["/app/hostbot", "--drain-delay=1s"]), None),
                hostbot.clone(),
                Ok(vec!["hostbot", "--drain-delay=1s"]),
            ),
            (
                container(Some(vec!["sh", "-c"]), Some(vec!["echo $(PORT) $(NOPE)"])),
                hostbot,
                Ok(vec!["sh", "-c", "echo 8080 $(NOPE)"]),
            ),
            (container(None, None), vec![], Err(())),
        ];
        for (spec, entrypoint, want) in cases {
            let got = command_line(&spec, &entrypoint, &env).map_err(|_| ());
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, want, "{:?} {:?}", spec.command, spec.args);
        }
    }
}
