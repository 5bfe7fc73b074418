//! The [`Kubelet`]: the node agent of the embedded cluster. It admits every pod meant for this
//! node, runs its containers through a [`Runtime`], probes them, restarts them per
//! `restartPolicy`, keeps their volumes up to date and writes `pod.status` — the only code that
//! starts or stops container processes.
//!
//! Entry point: [`spawn`] with [`KubeletOptions`]. The kubelet watches the store: each admitted
//! pod gets one worker task (`worker`) that owns the pod's IP, volumes and container tasks
//! (`container`); the watch only wakes workers, and each worker reads the pod's current state
//! and acts on it (level-triggered). Pods are admitted without a scheduler: a pod with no
//! `spec.nodeName` gets this node's name, with the `Scheduled` event a scheduler would write.
//!
//! # Layout
//! - `worker`: one pod's lifecycle: admission, IP, volumes, termination, removal.
//! - `container`: one container's lifecycle: image, start, probes, restarts; what it starts
//!   with (env, argv, mounts) in `container::config`, how it stops (preStop, SIGTERM, SIGKILL)
//!   in `container::termination`.
//! - `probe`: probe and hook actions, timings and thresholds; `prober`: the probing loop.
//! - `env`, `volume`: the environment and the volumes of a container, as upstream builds them.
//! - `status`: records and the `pod.status` they render to.
//! - `backoff`: crash-loop and image-pull back-off.
//! - `logs`: captured output for `kubectl logs`.
//!
//! Shutdown: cancelling the token given to [`spawn`] terminates every pod with its grace
//! period (preStop, SIGTERM, SIGKILL at the end), without removing pods from the store;
//! [`Kubelet::shutdown`] waits for that, [`Kubelet::force`] kills everything at once.

pub mod backoff;
mod container;
pub mod env;
pub mod logs;
pub mod probe;
mod prober;
pub mod status;
pub mod volume;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ipam::Ipam;
use crate::object::{Kind, Object};
use crate::runtime::catalog::Catalog;
use crate::runtime::{Exec, ExecOutput, Killer, Runtime, RuntimeKind};
use crate::store::{EventType, Store};
use logs::ContainerLog;

/// How often the kubelet re-lists pods even without a change (a safety net for a lagged watch).
const RESYNC: Duration = Duration::from_secs(10);

/// Settings of a [`Kubelet`].
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// Which runtime runs hostbot containers.
    pub runtime: RuntimeKind,
    /// Program and leading arguments that run hostbot, e.g. `["/path/hostbot"]` or
    /// `["/path/harness", "hostbot"]`.
    pub hostbot_command: Vec<OsString>,
    /// Which images exist and what they run.
    pub catalog: Catalog,
    /// Per-cluster directory for volumes, overlay layers and subPath copies.
    pub state_dir: PathBuf,
    /// How long after a ConfigMap or Secret change its volumes are updated (upstream: up to
    /// about a minute; default 1 s).
    pub config_sync_delay: Duration,
    /// First crash-loop and image-pull back-off (upstream 10 s); also the retry period of
    /// container config errors.
    pub backoff_initial: Duration,
    /// Back-off cap (upstream 5 min).
    pub backoff_max: Duration,
    /// This node's name, as `spec.nodeName`.
    pub node_name: String,
}

impl KubeletOptions {
    /// Upstream's timings, the process runtime and the built-in catalog.
    pub fn new(hostbot_command: Vec<OsString>, state_dir: PathBuf) -> KubeletOptions {
        KubeletOptions {
            runtime: RuntimeKind::Process,
            hostbot_command,
            catalog: Catalog::builtin(),
            state_dir,
            config_sync_delay: Duration::from_secs(1),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            node_name: "harness".to_owned(),
        }
    }
}

/// The node agent. Cheap to share; see the module docs.
#[derive(Debug)]
pub struct Kubelet {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// What every worker and container task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub ipam: Arc<Ipam>,
    pub options: KubeletOptions,
    pub runtime: Runtime,
    pub registry: Registry,
    pub tasks: TaskTracker,
    /// Cancelled to kill every container at once.
    pub force: CancellationToken,
}

impl Shared {
    /// Records an event from the kubelet about `pod`.
    pub fn event(&self, pod: &Pod, type_: &str, reason: &str, message: impl Into<String>) {
        self.store
            .record_event(&Object::Pod(pod.clone()), type_, reason, message, "kubelet");
    }
}

/// Starts the kubelet: it admits and runs pods until `cancel`, then terminates them.
pub fn spawn(
    store: Arc<Store>,
    ipam: Arc<Ipam>,
    options: KubeletOptions,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Arc<Kubelet> {
    let cancel = cancel.child_token();
    let tasks = TaskTracker::new();
    let runtime = Runtime::new(
        options.runtime,
        options.hostbot_command.clone(),
        tasks.clone(),
    );
    let shared = Arc::new(Shared {
        store,
        ipam,
        options,
        runtime,
        registry: Registry::default(),
        tasks: tasks.clone(),
        force: CancellationToken::new(),
    });
    tasks.spawn(watch(shared.clone(), cancel.clone()));
    let (waiting, waiting_cancel) = (tasks.clone(), cancel.clone());
    tracker.spawn(async move {
        waiting_cancel.cancelled().await;
        waiting.close();
        waiting.wait().await;
    });
    Arc::new(Kubelet {
        shared,
        tasks,
        cancel,
    })
}

impl Kubelet {
    /// Terminates every pod gracefully (if not already asked to) and waits until all
    /// containers have stopped.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // Docker containers are not children of the harness: sweep what outlived its pod.
        self.shared.runtime.shutdown().await;
    }

    /// The container runtime (e.g. for the label of its Docker containers).
    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// Kills every container at once (the second Ctrl+C); pods being terminated skip what is
    /// left of their grace period.
    pub fn force(&self) {
        self.cancel.cancel();
        self.shared.force.cancel();
    }

    /// The output of a container's current instance (`previous`: the one before it), for
    /// `kubectl logs`. `None` when the pod, the container or that instance does not exist.
    pub fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Option<Arc<ContainerLog>> {
        self.shared.registry.read(namespace, pod, container, |c| {
            if previous {
                c.previous.clone()
            } else {
                c.current.clone()
            }
        })
    }

    /// Kills a container's running instance with SIGKILL, as if it crashed (S17). Returns
    /// whether one was running.
    pub fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.signal_container(namespace, pod, container, true)
    }

    /// Signals a container's running instance from outside, as `kill PID` on the node would:
    /// SIGKILL when `hard`, else SIGTERM (the process may drain and exit; the kubelet restarts it
    /// per restartPolicy either way). Returns whether one was running.
    pub fn signal_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        hard: bool,
    ) -> bool {
        let killer = self
            .shared
            .registry
            .read(namespace, pod, container, |c| c.killer.clone());
        match killer {
            Some(k) => {
                if hard {
                    k.kill();
                } else {
                    k.terminate();
                }
                true
            }
            None => false,
        }
    }

    /// Runs a command inside a container's running instance (non-interactive `kubectl exec`):
    /// its mount namespace and environment, its combined output. `None` when no instance is
    /// running.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Option<Result<ExecOutput, String>> {
        let exec = self
            .shared
            .registry
            .read(namespace, pod, container, |c| c.exec.clone())?;
        Some(exec.run(argv, timeout).await)
    }

    /// The process id of a container's running instance (process runtime only).
    pub fn container_pid(&self, namespace: &str, pod: &str, container: &str) -> Option<u32> {
        self.shared
            .registry
            .read(namespace, pod, container, |c| c.pid)
    }

    /// The process ids of every running container, for checks that nothing is left behind.
    pub fn container_pids(&self) -> Vec<u32> {
        let registry = self.shared.registry.lock();
        registry
            .values()
            .flat_map(|e| e.containers.values())
            .filter_map(|c| c.pid)
            .collect()
    }
}

/// The running containers by pod, for logs, kills and pids.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

#[derive(Debug, Default)]
pub(crate) struct PodEntry {
    pub uid: String,
    pub containers: BTreeMap<String, ContainerEntry>,
}

#[derive(Debug, Default)]
pub(crate) struct ContainerEntry {
    pub current: Option<Arc<ContainerLog>>,
    pub previous: Option<Arc<ContainerLog>>,
    pub killer: Option<Killer>,
    pub exec: Option<Exec>,
    pub pid: Option<u32>,
}

impl Registry {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), PodEntry>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the entry of one container; `None` when there is none (or `read` finds nothing).
    pub fn read<R>(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        read: impl FnOnce(&ContainerEntry) -> Option<R>,
    ) -> Option<R> {
        let pods = self.lock();
        let entry = pods.get(&(namespace.to_owned(), pod.to_owned()))?;
        read(entry.containers.get(container)?)
    }

    /// Edits the entry of one container of pod `uid` (replacing an entry of an older pod of
    /// the same name).
    pub fn with<R>(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        edit: impl FnOnce(&mut ContainerEntry) -> R,
    ) -> R {
        let mut pods = self.lock();
        let entry = pods
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_default();
        if entry.uid != uid {
            *entry = PodEntry {
                uid: uid.to_owned(),
                containers: BTreeMap::new(),
            };
        }
        edit(entry.containers.entry(container.to_owned()).or_default())
    }

    /// Forgets pod `uid`.
    pub fn remove(&self, namespace: &str, pod: &str, uid: &str) {
        let mut pods = self.lock();
        let key = (namespace.to_owned(), pod.to_owned());
        if pods.get(&key).is_some_and(|e| e.uid == uid) {
            pods.remove(&key);
        }
    }
}

/// What the watch loop keeps per worker.
struct WorkerHandle {
    namespace: String,
    /// The ConfigMaps and Secrets the pod uses.
    refs: Vec<(Kind, String)>,
    pokes: Arc<worker::Pokes>,
}

/// Admits pods and wakes workers on changes until `cancel`.
async fn watch(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut changes = shared.store.subscribe();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
            }
            _ = resync.tick() => {
                for pod in shared.store.list_as::<Pod>(None, &Default::default()) {
                    consider(&shared, &mut workers, &done_tx, &cancel, pod);
                }
                for handle in workers.values() {
                    handle.pokes.pod.notify_one();
                }
            }
            change = changes.recv() => match change {
                Ok(event) => match event.object.as_ref() {
                    Object::Pod(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(handle) = workers.get(&uid) {
                            handle.pokes.pod.notify_one();
                        } else if event.event_type != EventType::Deleted {
                            consider(&shared, &mut workers, &done_tx, &cancel, pod.clone());
                        }
                    }
                    Object::ConfigMap(_) | Object::Secret(_) => {
                        let object = event.object.as_ref();
                        let key = (object.kind(), object.name().to_owned());
                        for handle in workers.values() {
                            if handle.namespace == object.namespace() && handle.refs.contains(&key) {
                                handle.pokes.config.notify_one();
                            }
                        }
                    }
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => resync.reset_immediately(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

/// Starts a worker for `pod` if it is meant for this node and has none.
fn consider(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, WorkerHandle>,
    done: &mpsc::UnboundedSender<String>,
    cancel: &CancellationToken,
    pod: Pod,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if uid.is_empty()
        || workers.contains_key(&uid)
        || node.is_some_and(|n| n != shared.options.node_name)
    {
        return;
    }
    let pokes = Arc::new(worker::Pokes::default());
    workers.insert(
        uid.clone(),
        WorkerHandle {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            refs: env::references(&pod),
            pokes: pokes.clone(),
        },
    );
    let (shared, done, cancel) = (shared.clone(), done.clone(), cancel.clone());
    shared.tasks.clone().spawn(async move {
        worker::run(shared, pod, pokes, cancel).await;
        let _ = done.send(uid);
    });
}

/// A pod's key, for messages: `namespace/name`.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
