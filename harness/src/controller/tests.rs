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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_creates_a_replica_set_and_three_pods() {
    let c = Cluster::start(true);
    c.store
        .create_as(deployment("hostbot", 3, "hostbot:v1"))
        .unwrap();
    let d = c.wait_complete("hostbot").await;

    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let rs_name = rs.metadata.name.clone().unwrap();
    let hash = &rs.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(rs_name, format!("hostbot-{hash}"));
    let owner = owner_of(&rs.metadata).unwrap();
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.block_owner_deletion
        ),
        ("Deployment", "hostbot", Some(true))
    );
    let pods = c.pods();
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap();
        let suffix = name.strip_prefix(&format!("{rs_name}-")).expect(name);
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            *hash
        );
    }
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(d.metadata.annotations.unwrap()[REVISION], "1");
    assert_eq!(
        c.events("ScalingReplicaSet"),
        [format!("Scaled up replica set {rs_name} from 0 to 3")]
    );
    assert_eq!(c.events("SuccessfulCreate").len(), 3);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_rolls_within_the_budgets() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let old = c.replica_sets().remove(0);
    c.auto_ready.store(false, Ordering::SeqCst);

    // Every store change is checked: availability never below replicas - maxUnavailable.
    let violations = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (store, cancel, violations) = (c.store.clone(), c.cancel.clone(), violations.clone());
        let mut changes = store.subscribe();
        c.tracker.spawn(async move {
            loop {
                let ready = store
                    .list_as::<Pod>(Some("default"), &Selector::default())
                    .iter()
                    .filter(|p| is_pod_active(p) && is_pod_ready(p))
                    .count();
                if ready < 3 {
                    violations.lock().unwrap().push(ready);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changes.recv() => {}
                }
            }
        });
    }

    set_image(&c, "web", "web:v2");
    let mut steps = 0;
    loop {
        let d = c
            .wait_for("the rollout to settle", |c| {
                let d = c.deployment("web");
                settled(c, &d).then_some(d)
            })
            .await;
        // At rest between steps: within the surge, and fully available.
        let pods = c.pods();
        let active = pods.iter().filter(|p| is_pod_active(p)).count();
        let ready = pods
            .iter()
            .filter(|p| is_pod_active(p) && is_pod_ready(p))
            .count();
        let spec_sum: i32 = c.replica_sets().iter().map(revision::replicas).sum();
        assert!(
            active <= 4 && spec_sum <= 4,
            "step {steps}: {active} pods, {spec_sum} in specs"
        );
        assert!(ready >= 3, "step {steps}: only {ready} ready");
        if is_complete(&d) {
            break;
        }
        // The kubelet step: one new pod becomes ready.
        let next = pods
            .iter()
            .find(|p| is_pod_active(p) && admitted(p) && !is_pod_ready(p))
            .unwrap_or_else(|| panic!("step {steps}: nothing to make ready, yet not complete"));
        set_ready(
            &c.store,
            "default",
            next.metadata.name.as_deref().unwrap(),
            true,
        );
        steps += 1;
        assert!(steps <= 10, "too many steps");
    }
    assert_eq!(steps, 3, "one new pod at a time");
    assert!(
        violations.lock().unwrap().is_empty(),
        "availability dropped: {:?}",
        violations.lock().unwrap()
    );

    let rss = c.replica_sets();
    assert_eq!(rss.len(), 2);
    let new = rss
        .iter()
        .find(|rs| rs.metadata.uid != old.metadata.uid)
        .unwrap();
    let old = rss
        .iter()
        .find(|rs| rs.metadata.uid == old.metadata.uid)
        .unwrap();
    assert_eq!((revision::replicas(old), revision::replicas(new)), (0, 3));
    assert_eq!(image_of(new), "web:v2");
    let (old_name, new_name) = (
        old.metadata.name.clone().unwrap(),
        new.metadata.name.clone().unwrap(),
    );
    assert_eq!(
        c.events("ScalingReplicaSet"),
        [
            format!("Scaled up replica set {old_name} from 0 to 3"),
            format!("Scaled up replica set {new_name} from 0 to 1"),
            format!("Scaled down replica set {old_name} from 3 to 2"),
            format!("Scaled up replica set {new_name} from 1 to 2"),
            format!("Scaled down replica set {old_name} from 2 to 1"),
            format!("Scaled up replica set {new_name} from 2 to 3"),
            format!("Scaled down replica set {old_name} from 1 to 0"),
        ]
    );
    assert_eq!(
        c.deployment("web").metadata.annotations.unwrap()[REVISION],
        "2"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_replica_set_is_recreated() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    let key = ObjectKey::new(
        Kind::ReplicaSet,
        "default",
        first.metadata.name.as_deref().unwrap(),
    );
    c.store.delete(&key, DeleteOptions::default()).unwrap();
    c.wait_for("a new replica set with three ready pods", |c| {
        let rss = c.replica_sets();
        let rs = rss.first()?;
        let pods = c.pods();
        (rss.len() == 1
            && rs.metadata.uid != first.metadata.uid
            && rs.metadata.name == first.metadata.name
            && owned_by(&pods, rs)
                .iter()
                .filter(|p| is_pod_ready(p))
                .count()
                == 3
            && pods.len() == 3)
            .then_some(())
    })
    .await;
    c.wait_complete("web").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_replica_set_with_the_template_is_adopted() {
    let c = Cluster::start(true);
    let d = deployment("web", 3, "web:v1");
    let spec = d.spec.clone().unwrap();
    let orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-manual".into()),
            namespace: Some("default".into()),
            labels: Some(labels("web")),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(2),
            selector: spec.selector.clone(),
            template: Some(spec.template.clone()),
            min_ready_seconds: None,
        }),
        status: None,
    };
    c.store.create_as(orphan).unwrap();
    c.store.create_as(d).unwrap();
    let d = c.wait_complete("web").await;
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1, "no second ReplicaSet");
    let rs = &rss[0];
    assert_eq!(rs.metadata.name.as_deref(), Some("web-manual"));
    assert_eq!(
        owner_of(&rs.metadata).map(|o| &o.uid),
        d.metadata.uid.as_ref()
    );
    assert_eq!(revision::replicas(rs), 3);
    assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabelled_pod_is_released_replaced_and_readopted() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let rs = c.replica_sets().remove(0);
    let victim = c.pods().remove(0).metadata.name.unwrap();

    let mut original = BTreeMap::new();
    c.store
        .modify::<Pod, _>("default", &victim, |p| {
            let l = p.metadata.labels.as_mut().unwrap();
            original = l.clone();
            l.insert("app".into(), "x".into());
        })
        .unwrap();
    c.wait_for("the pod released and replaced", |c| {
        let pods = c.pods();
        let released = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(victim.as_str()))
            .is_some_and(|p| owner_of(&p.metadata).is_none() && is_pod_active(p));
        (released
            && owned_by(&pods, &rs)
                .iter()
                .filter(|p| is_pod_ready(p))
                .count()
                == 3)
            .then_some(())
    })
    .await;
    assert_eq!(c.pods().len(), 4);

    c.store
        .modify::<Pod, _>("default", &victim, |p| {
            p.metadata.labels = Some(original.clone())
        })
        .unwrap();
    c.wait_for("one pod deleted after readoption", |c| {
        let pods = c.pods();
        let deleted = c.events("SuccessfulDelete").len();
        (pods.len() == 3 && owned_by(&pods, &rs).len() == 3 && deleted == 1).then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let c = Cluster::start(true);
    let mut d = deployment("batch", 3, "batch:v1");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    c.store.create_as(d).unwrap();
    c.wait_complete("batch").await;
    let old = c.replica_sets().remove(0);

    // Versions never overlap: checked on every change.
    let overlap = Arc::new(AtomicBool::new(false));
    {
        let (store, cancel, overlap) = (c.store.clone(), c.cancel.clone(), overlap.clone());
        let old_uid = old.metadata.uid.clone();
        let mut changes = store.subscribe();
        c.tracker.spawn(async move {
            loop {
                let pods = store.list_as::<Pod>(Some("default"), &Selector::default());
                let owners = |old: bool| {
                    pods.iter().any(|p| {
                        owner_of(&p.metadata)
                            .is_some_and(|o| (Some(&o.uid) == old_uid.as_ref()) == old)
                    })
                };
                if owners(true) && owners(false) {
                    overlap.store(true, Ordering::SeqCst);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changes.recv() => {}
                }
            }
        });
    }
    set_image(&c, "batch", "batch:v2");
    c.wait_complete("batch").await;
    assert!(
        !overlap.load(Ordering::SeqCst),
        "old and new pods existed together"
    );
    let events = c.events("ScalingReplicaSet");
    let old_name = old.metadata.name.unwrap();
    assert_eq!(
        events[1],
        format!("Scaled down replica set {old_name} from 3 to 0")
    );
    assert!(events[2].ends_with("from 0 to 3"), "{events:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_scales_but_does_not_roll() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    c.wait_complete("web").await;
    c.store
        .modify::<Deployment, _>("default", "web", |d| {
            let spec = d.spec.as_mut().unwrap();
            spec.paused = Some(true);
            spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:v2".into());
            spec.replicas = Some(4);
        })
        .unwrap();
    let d = c
        .wait_for("the paused deployment scaled", |c| {
            let d = c.deployment("web");
            let status = d.status.clone()?;
            (status.observed_generation == d.metadata.generation
                && status.available_replicas == Some(4))
            .then_some(d)
        })
        .await;
    let progressing = get_condition(d.status.as_ref(), PROGRESSING).unwrap();
    assert_eq!(progressing.reason.as_deref(), Some(dstatus::PAUSED));
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(
        (image_of(&rss[0]), revision::replicas(&rss[0])),
        ("web:v1".into(), 4)
    );

    c.store
        .modify::<Deployment, _>("default", "web", |d| d.spec.as_mut().unwrap().paused = None)
        .unwrap();
    c.wait_complete("web").await;
    let active: Vec<String> = c
        .replica_sets()
        .iter()
        .filter(|rs| revision::replicas(rs) > 0)
        .map(image_of)
        .collect();
    assert_eq!(active, ["web:v2"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_reuses_the_old_replica_set() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    set_image(&c, "web", "web:v2");
    c.wait_complete("web").await;
    set_image(&c, "web", "web:v1");
    let d = c.wait_complete("web").await;
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 2);
    let active = rss.iter().find(|rs| revision::replicas(rs) > 0).unwrap();
    assert_eq!(active.metadata.uid, first.metadata.uid);
    assert_eq!(active.metadata.name, first.metadata.name);
    let annotations = active.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[REVISION], "3");
    assert_eq!(annotations[revision::REVISION_HISTORY], "1");
    assert_eq!(d.metadata.annotations.unwrap()[REVISION], "3");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_history_limit_deletes_the_oldest() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 1, "web:v1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    c.store.create_as(d).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    for image in ["web:v2", "web:v3"] {
        set_image(&c, "web", image);
        c.wait_complete("web").await;
    }
    let images = c
        .wait_for("the oldest replica set deleted", |c| {
            let rss = c.replica_sets();
            (rss.len() == 2).then_some(rss)
        })
        .await;
    assert!(
        images
            .iter()
            .all(|rs| rs.metadata.uid != first.metadata.uid)
    );
    let mut images: Vec<String> = images.iter().map(image_of).collect();
    images.sort();
    assert_eq!(images, ["web:v2", "web:v3"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_seconds_delays_availability() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 2, "web:v1");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(1);
    c.store.create_as(d).unwrap();
    let ready_at = c
        .wait_for("two ready pods", |c| {
            let rs = c.replica_sets().pop()?;
            let s = rs.status?;
            (s.ready_replicas == Some(2)).then(|| (std::time::Instant::now(), s.available_replicas))
        })
        .await;
    assert_eq!(ready_at.1, None, "not available as soon as ready");
    c.wait_complete("web").await;
    assert!(ready_at.0.elapsed() >= Duration::from_millis(900));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 1, "web:v1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(1);
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    c.store.create_as(d).unwrap();
    c.wait_complete("web").await;
    c.auto_ready.store(false, Ordering::SeqCst);
    set_image(&c, "web", "web:broken");
    let d = c
        .wait_for("ProgressDeadlineExceeded", |c| {
            let d = c.deployment("web");
            let p = get_condition(d.status.as_ref(), PROGRESSING)?;
            (p.reason.as_deref() == Some(dstatus::TIMED_OUT)).then(|| d.clone())
        })
        .await;
    let p = get_condition(d.status.as_ref(), PROGRESSING).unwrap();
    assert_eq!(p.status, "False");
    // Nothing else happens: the old pod keeps serving, the new one waits.
    let rss = c.replica_sets();
    let mut sizes: Vec<(String, i32)> = rss
        .iter()
        .map(|rs| (image_of(rs), revision::replicas(rs)))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("web:broken".into(), 1), ("web:v1".into(), 1)]);
    let available = get_condition(d.status.as_ref(), dstatus::AVAILABLE).unwrap();
    assert_eq!(available.status, "True");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_ready_pods_and_selectors() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels("web")),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    c.store.create_as(service).unwrap();
    let addresses = |c: &Cluster| {
        let ep = c.store.get_as::<Endpoints>("default", "web")?;
        let subsets = ep.subsets.unwrap_or_default();
        let count = |f: fn(&k8s_openapi::api::core::v1::EndpointSubset) -> usize| {
            subsets.iter().map(f).sum::<usize>()
        };
        Some((
            count(|s| s.addresses.as_ref().map_or(0, Vec::len)),
            count(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)),
        ))
    };
    c.wait_for("two ready addresses", |c| {
        (addresses(c)? == (2, 0)).then_some(())
    })
    .await;

    c.auto_ready.store(false, Ordering::SeqCst);
    let pod = c.pods().remove(0).metadata.name.unwrap();
    set_ready(&c.store, "default", &pod, false);
    c.wait_for("one address not ready", |c| {
        (addresses(c)? == (1, 1)).then_some(())
    })
    .await;

    // A selector typo: no endpoints at all.
    c.store
        .modify::<Service, _>("default", "web", |s| {
            s.spec.as_mut().unwrap().selector = Some(labels("wbe"));
        })
        .unwrap();
    c.wait_for("no subsets", |c| {
        let ep = c.store.get_as::<Endpoints>("default", "web")?;
        ep.subsets.is_none().then_some(())
    })
    .await;

    c.store
        .delete(
            &ObjectKey::new(Kind::Service, "default", "web"),
            DeleteOptions::default(),
        )
        .unwrap();
    c.wait_for("the endpoints deleted with the service", |c| {
        c.store
            .get_as::<Endpoints>("default", "web")
            .is_none()
            .then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_change_restarts_annotated_deployments() {
    let c = Cluster::start(true);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("hello-config".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("PORT".to_owned(), "8080".to_owned())])),
        ..Default::default()
    };
    c.store.create_as(cm).unwrap();
    let with_config = |name: &str, annotated: bool| {
        let mut d = deployment(name, 1, "web:v1");
        if annotated {
            d.metadata.annotations = Some(BTreeMap::from([(
                "reloader.stakater.com/auto".to_owned(),
                "true".to_owned(),
            )]));
        }
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .env_from = Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "hello-config".into(),
                optional: None,
            }),
            ..Default::default()
        }]);
        d
    };
    c.store.create_as(with_config("reloaded", true)).unwrap();
    c.store.create_as(with_config("plain", false)).unwrap();
    c.wait_complete("reloaded").await;
    c.wait_complete("plain").await;

    c.store
        .modify::<ConfigMap, _>("default", "hello-config", |cm| {
            cm.data
                .as_mut()
                .unwrap()
                .insert("PORT".into(), "9090".into());
        })
        .unwrap();
    let d = c
        .wait_for("a rollout of the annotated deployment", |c| {
            let d = c.deployment("reloaded");
            (d.metadata.annotations.as_ref()?.get(REVISION)? == "2").then_some(d)
        })
        .await;
    let env = d.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert_eq!(env[0].name, "STAKATER_HELLO_CONFIG_CONFIGMAP");
    c.wait_complete("reloaded").await;
    assert_eq!(
        c.events("Reloaded"),
        [
            "Changes detected in 'hello-config' of type 'CONFIGMAP' in namespace 'default', Updated 'reloaded' of type 'Deployment' in namespace 'default'"
        ]
    );
    let plain = c.deployment("plain");
    assert_eq!(
        plain.metadata.annotations.unwrap()[REVISION],
        "1",
        "not annotated, not restarted"
    );
    assert_eq!(plain.metadata.generation, Some(1));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_stop_when_cancelled() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 1, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let tracker = c.tracker.clone();
    c.stop().await;
    assert!(tracker.is_closed() && tracker.is_empty());
}

/// The fence of the test Deployment is what the rollout test assumes (3 at 25%: +1, -0).
#[test]
fn the_rollout_test_budget() {
    let d = deployment("web", 3, "web:v1");
    let fence = rollout::fenceposts(d.spec.as_ref().unwrap()).unwrap();
    assert_eq!((fence.max_surge, fence.max_unavailable), (1, 0));
}
