//! The real controllers, running as tasks against a real [`Store`], with the test playing the
//! kubelet: it admits pods (node, IP, `Running`), marks them Ready when it chooses, and removes
//! pods once they are being deleted. Waits are on store conditions with deadlines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, Container, ContainerStatus, Endpoints, EnvFromSource, Event,
    Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::deployment::revision::{self, REVISION};
use super::deployment::status::{self as dstatus, PROGRESSING, get_condition};
use super::deployment::sync::{Input, plan};
use super::replicaset::calculate_status;
use super::rollout;
use crate::object::{Kind, ObjectKey};
use crate::podutil::{is_pod_active, is_pod_ready, owner_of};
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store};

const WAIT: Duration = Duration::from_secs(15);

/// A store with the controllers running, and a test kubelet.
struct Cluster {
    store: Arc<Store>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// Whether the kubelet marks admitted pods Ready by itself.
    auto_ready: Arc<AtomicBool>,
}

impl Cluster {
    fn start(auto_ready: bool) -> Cluster {
        let store = Store::new();
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        super::spawn(store.clone(), &tracker, cancel.clone());
        let cluster = Cluster {
            store,
            tracker,
            cancel,
            auto_ready: Arc::new(AtomicBool::new(auto_ready)),
        };
        cluster.spawn_kubelet();
        cluster
    }

    /// The test kubelet: admits pods, readies them when `auto_ready`, removes deleted ones.
    fn spawn_kubelet(&self) {
        let (store, cancel, auto) = (
            self.store.clone(),
            self.cancel.clone(),
            self.auto_ready.clone(),
        );
        let mut changes = store.subscribe();
        let ip = Arc::new(AtomicU32::new(1));
        self.tracker.spawn(async move {
            loop {
                kubelet_pass(&store, &ip, &auto);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changes.recv() => {}
                }
            }
        });
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn deployment(&self, name: &str) -> Deployment {
        self.store
            .get_as("default", name)
            .expect("deployment exists")
    }

    fn replica_sets(&self) -> Vec<ReplicaSet> {
        self.store.list_as(Some("default"), &Selector::default())
    }

    fn pods(&self) -> Vec<Pod> {
        self.store.list_as(Some("default"), &Selector::default())
    }

    /// Messages of the Events with `reason`, oldest first.
    fn events(&self, reason: &str) -> Vec<String> {
        let mut events: Vec<Event> = self
            .store
            .list_as::<Event>(Some("default"), &Selector::default())
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect();
        events.sort_by_key(|e| {
            e.metadata
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse::<u64>().ok())
        });
        events.into_iter().filter_map(|e| e.message).collect()
    }

    /// Waits until `check` returns a value, re-checking on every store change.
    async fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&Cluster) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut changes = self.store.subscribe();
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}\nreplica sets: {:#?}\npods: {:?}",
                    self.replica_sets()
                        .iter()
                        .map(|rs| (
                            &rs.metadata.name,
                            rs.spec.as_ref().map(|s| s.replicas),
                            &rs.status
                        ))
                        .collect::<Vec<_>>(),
                    self.pods()
                        .iter()
                        .map(|p| (&p.metadata.name, is_pod_ready(p), is_pod_active(p)))
                        .collect::<Vec<_>>()
                );
            }
            // Time-based conditions (minReadySeconds, deadlines) also need a periodic look.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
                changes.recv(),
            )
            .await;
        }
    }

    /// Waits until the Deployment's rollout is complete and nothing is left to do.
    async fn wait_complete(&self, name: &str) -> Deployment {
        self.wait_for(&format!("deployment {name} to complete"), |c| {
            let d = c.deployment(name);
            (settled(c, &d) && is_complete(&d)).then_some(d)
        })
        .await
    }
}

/// One pass of the test kubelet over every pod. Each decision is made inside the store's
/// read-modify-write, on the pod as it is then, so that it never undoes what a test just did.
fn kubelet_pass(store: &Store, ip: &AtomicU32, auto_ready: &AtomicBool) {
    for pod in store.list_as::<Pod>(None, &Selector::default()) {
        let (namespace, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if pod.metadata.deletion_timestamp.is_some() {
            store.remove_terminated_pod(
                &namespace,
                &name,
                pod.metadata.uid.as_deref().unwrap_or_default(),
            );
            continue;
        }
        let _ = store.modify::<Pod, _>(&namespace, &name, |p| {
            if p.metadata.deletion_timestamp.is_some() {
                return;
            }
            if !admitted(p) {
                let n = ip.fetch_add(1, Ordering::SeqCst);
                p.spec.get_or_insert_with(Default::default).node_name = Some("harness".into());
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    pod_ip: Some(format!("10.0.{}.{}", n / 250, n % 250 + 1)),
                    conditions: Some(vec![ready_condition(false)]),
                    container_statuses: Some(vec![ContainerStatus {
                        name: "app".into(),
                        ready: false,
                        restart_count: 0,
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
            }
            if auto_ready.load(Ordering::SeqCst) && !is_pod_ready(p) {
                p.status.as_mut().expect("admitted").conditions = Some(vec![ready_condition(true)]);
            }
        });
    }
}

/// Whether the test kubelet has taken the pod (node, IP, phase).
fn admitted(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
}

fn ready_condition(ready: bool) -> PodCondition {
    PodCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        last_transition_time: Some(Time(Timestamp::now())),
        ..Default::default()
    }
}

/// Sets an admitted pod's readiness, as its probes would.
fn set_ready(store: &Store, namespace: &str, name: &str, ready: bool) {
    let (_, applied) = store
        .modify::<Pod, _>(namespace, name, |p| {
            let admitted = admitted(p);
            match p.status.as_mut() {
                Some(status) if admitted => {
                    status.conditions = Some(vec![ready_condition(ready)]);
                    true
                }
                _ => false,
            }
        })
        .expect("the pod exists");
    assert!(applied, "pod {name} is not admitted yet");
}

/// Whether the controllers have nothing left to do for `d`: the kubelet has admitted every pod,
/// every ReplicaSet has observed its spec and runs and reports exactly its pods, and a fresh plan
/// would write nothing.
fn settled(c: &Cluster, d: &Deployment) -> bool {
    let uid = d.metadata.uid.as_deref();
    let rss: Vec<ReplicaSet> = c
        .replica_sets()
        .into_iter()
        .filter(|rs| owner_of(&rs.metadata).map(|o| o.uid.as_str()) == uid)
        .collect();
    let pods = c.pods();
    // Each ReplicaSet has observed its spec, runs exactly its pods, and its status counts what
    // those pods are now.
    let rs_settled = rss.iter().all(|rs| {
        let status = rs.status.clone().unwrap_or_default();
        let owned = owned_by(&pods, rs);
        let now = calculate_status(rs, &owned, None, Timestamp::now());
        status.observed_generation == rs.metadata.generation
            && owned.len() as i32 == revision::replicas(rs)
            && (
                status.replicas,
                status.ready_replicas,
                status.available_replicas,
            ) == (now.replicas, now.ready_replicas, now.available_replicas)
    });
    let planned = plan(Input {
        deployment: d,
        replica_sets: rss,
        pods: &pods,
        now: Timestamp::now(),
    });
    let quiet = planned.actions.is_empty();
    let kubelet_done = pods.iter().all(|p| !is_pod_active(p) || admitted(p));
    rs_settled
        && quiet
        && kubelet_done
        && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
}

fn is_complete(d: &Deployment) -> bool {
    let status = d.status.clone().unwrap_or_default();
    dstatus::complete(d, &status)
        && get_condition(Some(&status), PROGRESSING).and_then(|c| c.reason.as_deref())
            == Some(dstatus::NEW_RS_AVAILABLE)
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), app.to_owned())])
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn set_image(c: &Cluster, name: &str, image: &str) {
    c.store
        .modify::<Deployment, _>("default", name, |d| {
            d.spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0]
                .image = Some(image.into());
        })
        .unwrap();
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

fn owned_by<'a>(pods: &'a [Pod], rs: &ReplicaSet) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| {
            is_pod_active(p) && owner_of(&p.metadata).map(|o| &o.uid) == rs.metadata.uid.as_ref()
        })
        .collect()
}

mod ownership;
mod rollouts;
mod services;
mod timing;
