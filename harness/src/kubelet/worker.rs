//! One pod's lifecycle: admission (setting `spec.nodeName`), its IP, its volumes, one task per
//! container, and the end — graceful termination on deletion, at once when the pod is
//! force-deleted, with the grace period of the pod spec at cluster shutdown.
//!
//! The worker is level-triggered: a poke only says "look again"; it then reads the pod from
//! the store and compares with what it is doing (running, terminating until a deadline, gone).
//! [`PodContext`] is what it shares with its container tasks: the records behind `pod.status`
//! and the one function that writes them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::container::{self, Directive};
use super::env::PodFacts;
use super::status::{self, ContainerRecord, HOST_IP, PodRecord};
use super::volume::PodVolumes;
use super::{Shared, pod_key};

/// Mount retries start here and double (upstream's volume manager back-off).
const MOUNT_RETRY: Duration = Duration::from_millis(500);
const MOUNT_RETRY_MAX: Duration = Duration::from_secs(122);

/// The wake-ups a worker gets from the kubelet's watch.
#[derive(Debug, Default)]
pub(crate) struct Pokes {
    /// The pod changed (or a resync).
    pub pod: Notify,
    /// A ConfigMap or Secret the pod uses changed.
    pub config: Notify,
}

/// What a pod's worker shares with its container tasks.
#[derive(Debug)]
pub(crate) struct PodContext {
    pub kubelet: Arc<Shared>,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    /// The pod's own directory under the state dir.
    pub dir: PathBuf,
    record: Mutex<PodRecord>,
    /// The newest pod seen in the store.
    pub pod: watch::Sender<Arc<Pod>>,
    pub volumes: Mutex<PodVolumes>,
    /// Bumped when a ConfigMap or Secret the pod uses changes: containers waiting on a config
    /// error retry at once.
    pub config_changed: watch::Sender<u64>,
    /// Set once the pod is being deleted: nothing may become ready again.
    pub terminating: AtomicBool,
}

impl PodContext {
    /// The newest pod.
    pub fn pod(&self) -> Arc<Pod> {
        self.pod.borrow().clone()
    }

    fn record(&self) -> MutexGuard<'_, PodRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Edits the records and writes `pod.status`.
    pub fn update<R>(&self, edit: impl FnOnce(&mut PodRecord) -> R) -> R {
        let mut record = self.record();
        let result = edit(&mut record);
        if self.terminating.load(Ordering::SeqCst) {
            for c in &mut record.containers {
                c.ready = false;
            }
        }
        self.write(&record);
        result
    }

    /// Edits one container's record and writes `pod.status`.
    pub fn update_container<R>(
        &self,
        index: usize,
        edit: impl FnOnce(&mut ContainerRecord) -> R,
    ) -> R {
        self.update(|r| edit(&mut r.containers[index]))
    }

    /// A copy of one container's record.
    pub fn container(&self, index: usize) -> ContainerRecord {
        self.record().containers[index].clone()
    }

    fn write(&self, record: &PodRecord) {
        let now = Timestamp::now();
        let result = self
            .kubelet
            .store
            .modify::<Pod, ()>(&self.namespace, &self.name, |pod| {
                if pod.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                    pod.status = Some(status::render(pod, record, now));
                }
            });
        if let Err(err) = result {
            tracing::debug!(pod = %self.name, %err, "pod status not written");
        }
    }

    /// Records a kubelet event about the pod.
    pub fn event(&self, type_: &str, reason: &str, message: impl Into<String>) {
        self.kubelet.event(&self.pod(), type_, reason, message);
    }

    /// The downward API's facts.
    pub fn facts(&self) -> PodFacts {
        PodFacts {
            pod_ip: self.ip.to_string(),
            host_ip: HOST_IP.to_owned(),
            node_name: self.kubelet.options.node_name.clone(),
        }
    }

    /// `name_namespace(uid)`, upstream's `format.Pod`.
    pub fn format_pod(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }
}

/// Why the worker is ending its containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Deleted with a grace period: remove it from the store once stopped.
    Deleted,
    /// Gone from the store (force-deleted, or replaced by a new pod of the same name).
    Gone,
    /// The kubelet is shutting down: stop, but leave the pod in the store.
    Shutdown,
}

/// The pod in the store, if it is still the same pod.
fn current(shared: &Shared, namespace: &str, name: &str, uid: &str) -> Option<Pod> {
    shared
        .store
        .get_as::<Pod>(namespace, name)
        .filter(|p| p.metadata.uid.as_deref() == Some(uid))
}

/// How long is left of a deleted pod's grace period, from its deletionTimestamp.
fn grace_left(pod: &Pod) -> Option<Duration> {
    let deletion = pod.metadata.deletion_timestamp.as_ref()?;
    let left = deletion.0.duration_since(Timestamp::now());
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// The pod's `terminationGracePeriodSeconds` (default 30).
pub(crate) fn spec_grace(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// Admits the pod: sets `spec.nodeName` when unset and says so with a `Scheduled` event.
/// `None` when the pod is gone.
fn admit(shared: &Shared, pod: &Pod) -> Option<Pod> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let node = shared.options.node_name.clone();
    let result = shared.store.modify::<Pod, bool>(&namespace, &name, |p| {
        if p.metadata.uid.as_deref() != Some(uid.as_str()) {
            return false;
        }
        let spec = p.spec.get_or_insert_with(Default::default);
        if spec.node_name.is_some() {
            return false;
        }
        spec.node_name = Some(node.clone());
        true
    });
    match result {
        Ok((stored, assigned)) => {
            if stored.metadata.uid.as_deref() != Some(uid.as_str()) {
                return None;
            }
            if assigned {
                shared.store.record_event(
                    &stored.clone().into(),
                    "Normal",
                    "Scheduled",
                    format!("Successfully assigned {namespace}/{name} to {node}"),
                    "default-scheduler",
                );
            }
            Some(stored)
        }
        Err(crate::Error::NotFound(_)) => None,
        Err(err) => {
            // The pod is still run; only the binding could not be recorded.
            tracing::warn!(pod = %pod_key(pod), %err, "cannot set spec.nodeName");
            current(shared, &namespace, &name, &uid)
        }
    }
}

/// Runs one pod from admission until it is removed (or the kubelet stops).
pub(crate) async fn run(
    shared: Arc<Shared>,
    pod: Pod,
    pokes: Arc<Pokes>,
    cancel: CancellationToken,
) {
    let Some(pod) = admit(&shared, &pod) else {
        return;
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        shared.store.remove_terminated_pod(&namespace, &name, &uid);
        return;
    }
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| matches!(p, "Succeeded" | "Failed"));

    // The pod's IP (its "sandbox").
    let ip = loop {
        match shared.ipam.allocate_pod_ip() {
            Ok(ip) => break ip,
            Err(err) => {
                shared.event(
                    &pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {err}"),
                );
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(shared.options.backoff_initial) => {}
                    () = pokes.pod.notified() => {}
                }
                match current(&shared, &namespace, &name, &uid) {
                    None => return,
                    Some(p) if p.metadata.deletion_timestamp.is_some() => {
                        shared.store.remove_terminated_pod(&namespace, &name, &uid);
                        return;
                    }
                    Some(_) => {}
                }
            }
        }
    };

    let dir = shared.options.state_dir.join("pods").join(&uid);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let record = PodRecord {
        containers: containers
            .iter()
            .map(|c| ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default()))
            .collect(),
        pod_ip: Some(ip),
        start_time: Timestamp::now(),
        terminal: false,
    };
    let ctx = Arc::new(PodContext {
        kubelet: shared.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        uid: uid.clone(),
        ip,
        dir: dir.clone(),
        record: Mutex::new(record),
        pod: watch::channel(Arc::new(pod.clone())).0,
        volumes: Mutex::new(PodVolumes::new(dir.join("volumes"))),
        config_changed: watch::channel(0).0,
        terminating: AtomicBool::new(false),
    });
    let mut ip_held = true;
    let release = |held: &mut bool| {
        if std::mem::take(held) {
            shared.ipam.release_pod_ip(IpAddr::V4(ip));
        }
    };

    if finished {
        // A pod that already ran to completion keeps its status; it only waits for deletion.
        release(&mut ip_held);
        let ending = wait_for_end(&shared, &ctx, &pokes, &cancel).await;
        finish(&ctx, ending, ending == Ending::Deleted);
        return;
    }
    ctx.update(|_| {});

    // Volumes, retried until they can all be set up.
    let mut retry = MOUNT_RETRY;
    loop {
        let result = {
            let pod = ctx.pod();
            ctx.volumes.lock().unwrap_or_else(|p| p.into_inner()).setup(
                &pod,
                shared.store.as_ref(),
                &ctx.facts(),
            )
        };
        match result {
            Ok(()) => break,
            Err(err) => ctx.event("Warning", "FailedMount", err.to_string()),
        }
        tokio::select! {
            () = cancel.cancelled() => {
                release(&mut ip_held);
                finish(&ctx, Ending::Shutdown, false);
                return;
            }
            () = pokes.pod.notified() => {
                match current(&shared, &namespace, &name, &uid) {
                    None => {
                        release(&mut ip_held);
                        finish(&ctx, Ending::Gone, false);
                        return;
                    }
                    Some(p) if p.metadata.deletion_timestamp.is_some() => {
                        release(&mut ip_held);
                        finish(&ctx, Ending::Deleted, true);
                        return;
                    }
                    Some(p) => { ctx.pod.send_replace(Arc::new(p)); }
                }
            }
            () = pokes.config.notified() => {}
            () = tokio::time::sleep(retry) => retry = (retry * 2).min(MOUNT_RETRY_MAX),
        }
    }

    // One task per container.
    let (directive, _) = watch::channel(Directive::Run);
    let (alive, mut all_stopped) = mpsc::channel::<()>(1);
    for index in 0..containers.len() {
        let (ctx, directive, alive) = (ctx.clone(), directive.subscribe(), alive.clone());
        shared.tasks.spawn(async move {
            container::run(ctx, index, directive).await;
            drop(alive);
        });
    }
    drop(alive);

    let mut ending: Option<Ending> = None;
    let mut deadline: Option<Instant> = None;
    let mut stopped = containers.is_empty();
    let mut sync_at: Option<Instant> = None;
    let stop = |deadline: Instant, hooks: bool| {
        // Once forced, every stop is immediate.
        let forced = shared.force.is_cancelled();
        let deadline = if forced { Instant::now() } else { deadline };
        directive.send_replace(Directive::Stop {
            deadline,
            hooks: hooks && !forced,
        });
    };
    loop {
        if stopped {
            if ending.is_some() {
                break;
            }
            // Every container ended for good (restartPolicy): the pod is finished.
            ctx.update(|r| r.terminal = true);
            release(&mut ip_held);
        }
        tokio::select! {
            () = cancel.cancelled(), if ending.is_none() => {
                ending = Some(Ending::Shutdown);
                let at = Instant::now() + spec_grace(&ctx.pod());
                deadline = Some(at);
                stop(at, true);
            }
            () = shared.force.cancelled(), if ending.is_some() && deadline.is_some() => {
                deadline = None;
                stop(Instant::now(), false);
            }
            () = pokes.pod.notified() => {
                match current(&shared, &namespace, &name, &uid) {
                    None => {
                        if ending != Some(Ending::Shutdown) {
                            ending = Some(Ending::Gone);
                        }
                        stop(Instant::now(), false);
                    }
                    Some(p) => {
                        let left = grace_left(&p);
                        ctx.pod.send_replace(Arc::new(p));
                        if let Some(left) = left
                            && ending != Some(Ending::Gone)
                        {
                            let at = Instant::now() + left;
                            if ending != Some(Ending::Deleted) {
                                // Not ready from this moment: endpoints drop it at once.
                                ctx.terminating.store(true, Ordering::SeqCst);
                                ctx.update(|_| {});
                            }
                            ending = Some(Ending::Deleted);
                            if deadline.is_none_or(|d| at < d) {
                                deadline = Some(at);
                                stop(at, true);
                            }
                        }
                    }
                }
            }
            () = pokes.config.notified() => {
                sync_at.get_or_insert(Instant::now() + shared.options.config_sync_delay);
                ctx.config_changed.send_modify(|n| *n += 1);
            }
            () = sleep_until(sync_at), if sync_at.is_some() => {
                sync_at = None;
                sync_volumes(&ctx);
            }
            _ = all_stopped.recv(), if !stopped => stopped = true,
        }
    }

    let ending = ending.unwrap_or(Ending::Shutdown);
    if ending != Ending::Shutdown {
        ctx.update(|r| r.terminal = true);
    }
    release(&mut ip_held);
    finish(&ctx, ending, ending == Ending::Deleted);
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Re-projects the atomic volumes after a ConfigMap or Secret change.
fn sync_volumes(ctx: &PodContext) {
    let pod = ctx.pod();
    let (changed, failed) = ctx.volumes.lock().unwrap_or_else(|p| p.into_inner()).sync(
        &pod,
        ctx.kubelet.store.as_ref(),
        &ctx.facts(),
    );
    if !changed.is_empty() {
        tracing::debug!(pod = %ctx.name, volumes = ?changed, "volumes updated");
    }
    for err in failed {
        ctx.event("Warning", "FailedMount", err.to_string());
    }
}

/// For a pod with no running containers: waits until it is deleted or the kubelet stops.
async fn wait_for_end(
    shared: &Shared,
    ctx: &PodContext,
    pokes: &Pokes,
    cancel: &CancellationToken,
) -> Ending {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ending::Shutdown,
            () = pokes.pod.notified() => {}
        }
        match current(shared, &ctx.namespace, &ctx.name, &ctx.uid) {
            None => return Ending::Gone,
            Some(p) if p.metadata.deletion_timestamp.is_some() => return Ending::Deleted,
            Some(p) => {
                ctx.pod.send_replace(Arc::new(p));
            }
        }
    }
}

/// Cleans up after the pod's containers have stopped and, for a deleted pod, removes it from
/// the store.
fn finish(ctx: &PodContext, ending: Ending, remove: bool) {
    ctx.volumes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .teardown();
    crate::runtime::mounts::remove_tree(&ctx.dir);
    let registry = &ctx.kubelet.registry;
    registry.remove(&ctx.namespace, &ctx.name, &ctx.uid);
    if remove {
        ctx.kubelet
            .store
            .remove_terminated_pod(&ctx.namespace, &ctx.name, &ctx.uid);
    }
    tracing::debug!(pod = %ctx.name, ?ending, "pod worker done");
}
