//! The ReplicaSet controller: keeps `spec.replicas` active pods that match a ReplicaSet's
//! selector and are owned by it (upstream `pkg/controller/replicaset`).
//!
//! Each sync claims pods (adopting matching orphans, releasing owned pods whose labels no longer
//! match), then creates missing pods in slow-start batches of 1, 2, 4, ... (stopping at the first
//! batch with a failure) or deletes surplus ones in [`super::ranking`] order, then writes status.
//! Pods being deleted or finished do not count. Unlike upstream, which reports the pods it saw
//! before acting, the status counts the pods after this sync's creations and deletions: the
//! deployment controller then never reads availability that a deletion already took away.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::controller::Reconciler;
use crate::controller::claim::{self, Claim};
use crate::controller::ranking;
use crate::error::{Error, Result};
use crate::names;
use crate::object::{Kind, Object, ObjectKey};
use crate::podutil::{
    controller_ref, is_pod_active, is_pod_available, is_pod_ready, owner_of, time_until_available,
};
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store, WatchEvent};

/// The component name on Events, as upstream.
const COMPONENT: &str = "replicaset-controller";
/// Upstream's cap on creations or deletions per sync (`BurstReplicas`).
const BURST_REPLICAS: usize = 500;
/// How many names to try when a generated pod name is taken.
const NAME_ATTEMPTS: usize = 8;
/// Longest generated-name prefix (`maxGeneratedNameLength`: 63 minus the 5-character suffix).
const MAX_PREFIX: usize = 58;
/// The condition a ReplicaSet gets when it cannot create or delete pods.
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What a sync must do about the pod count.
#[derive(Debug, PartialEq)]
pub enum Manage<'a> {
    Nothing,
    /// Create this many pods.
    Create(usize),
    /// Delete these pods, in this order.
    Delete(Vec<&'a Pod>),
}

/// Compares the active owned `pods` with `replicas` (`manageReplicas`' decision).
pub fn manage<'a>(replicas: i32, pods: &[&'a Pod], related: &[&Pod], now: Timestamp) -> Manage<'a> {
    let want = usize::try_from(replicas).unwrap_or(0);
    match pods.len().cmp(&want) {
        std::cmp::Ordering::Less => Manage::Create((want - pods.len()).min(BURST_REPLICAS)),
        std::cmp::Ordering::Greater => {
            let diff = (pods.len() - want).min(BURST_REPLICAS);
            Manage::Delete(ranking::pods_to_delete(pods, related, diff, now))
        }
        std::cmp::Ordering::Equal => Manage::Nothing,
    }
}

/// Runs `create` `count` times in batches of 1, 2, 4, ...; stops after the first batch with a
/// failure. Returns the successes and the first error (`slowStartBatch`).
pub fn slow_start<E>(
    count: usize,
    mut create: impl FnMut() -> Result<(), E>,
) -> (usize, Option<E>) {
    let (mut remaining, mut successes, mut batch) = (count, 0, 1.min(count));
    while batch > 0 {
        let mut first_error = None;
        for _ in 0..batch {
            match create() {
                Ok(()) => successes += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

/// A pod for the ReplicaSet's template, without a name: labels, annotations and finalizers of
/// the template, the ReplicaSet as controller, `generateName` `<rs>-` (`GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(name_prefix(rs.metadata.name.as_deref().unwrap_or_default())),
            namespace: rs.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `<rs>-`, cut to leave room for the random suffix.
fn name_prefix(rs_name: &str) -> String {
    let mut prefix = format!("{rs_name}-");
    if prefix.len() > MAX_PREFIX {
        let mut end = MAX_PREFIX;
        while !prefix.is_char_boundary(end) {
            end -= 1;
        }
        prefix.truncate(end);
    }
    prefix
}

/// The status for the ReplicaSet's active owned `pods` (`calculateStatus`); `failure` is the
/// reason and message of a failed create or delete in this sync.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[&Pod],
    failure: Option<(&str, String)>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .map(Selector::from_map)
        .unwrap_or_default();
    let labels_of = |p: &Pod| p.metadata.labels.clone().unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled = count(&|p| template_labels.matches(&labels_of(p)));
    let ready = count(&is_pod_ready);
    let available = count(&|p| is_pod_available(p, min_ready, now));
    let mut conditions = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some((reason, message)) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    let nz = |n: i32| (n != 0).then_some(n);
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: nz(fully_labeled),
        ready_replicas: nz(ready),
        available_replicas: nz(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

/// Reconciles ReplicaSets, keyed by (namespace, name).
#[derive(Debug)]
pub struct ReplicaSetController {
    store: Arc<Store>,
}

impl ReplicaSetController {
    pub fn new(store: Arc<Store>) -> ReplicaSetController {
        ReplicaSetController { store }
    }

    /// Pods matching any ReplicaSet with the same controller as `rs`
    /// (`getIndirectlyRelatedPods`), to rank crowded nodes.
    fn related<'p>(&self, rs: &ReplicaSet, pods: &'p [Pod]) -> Vec<&'p Pod> {
        let Some(owner) = owner_of(&rs.metadata) else {
            return Vec::new();
        };
        let namespace = rs.metadata.namespace.as_deref();
        let selectors: Vec<Selector> = self
            .store
            .list_as::<ReplicaSet>(namespace, &Selector::default())
            .iter()
            .filter(|other| owner_of(&other.metadata).is_some_and(|o| o.uid == owner.uid))
            .filter_map(|other| Selector::from_label_selector(&other.spec.as_ref()?.selector).ok())
            .collect();
        pods.iter()
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                selectors.iter().any(|s| s.matches(&labels))
            })
            .collect()
    }

    /// Creates one pod for `rs`, retrying with a new name when the generated one is taken.
    fn create_pod(&self, rs: &ReplicaSet, template: &Pod) -> Result<Pod> {
        let prefix = template.metadata.generate_name.clone().unwrap_or_default();
        let mut last = None;
        for _ in 0..NAME_ATTEMPTS {
            let mut pod = template.clone();
            pod.metadata.name = Some(format!("{prefix}{}", names::random_suffix()));
            match self.store.create_as(pod) {
                Ok(pod) => return Ok(pod),
                Err(Error::AlreadyExists(key)) => last = Some(Error::AlreadyExists(key)),
                Err(err) => return Err(err),
            }
        }
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        Err(last.unwrap_or_else(|| Error::BadRequest(format!("replica set {name:?}: no pod name"))))
    }

    /// The ReplicaSets in `namespace` whose selector matches `labels`.
    fn matching(&self, namespace: &str, object: &Object) -> Vec<(String, String)> {
        self.store
            .list_as::<ReplicaSet>(Some(namespace), &Selector::default())
            .into_iter()
            .filter(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| Selector::from_label_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.is_empty() && sel.matches(object.labels()))
            })
            .map(|rs| {
                (
                    namespace.to_owned(),
                    rs.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl Reconciler for ReplicaSetController {
    type Key = (String, String);
    const NAME: &'static str = "replicaset";

    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key> {
        let object = &event.object;
        let namespace = object.namespace().to_owned();
        match object.kind() {
            Kind::ReplicaSet => vec![(namespace, object.name().to_owned())],
            Kind::Pod => match owner_of(object.meta()) {
                Some(owner) if owner.kind == "ReplicaSet" => vec![(namespace, owner.name.clone())],
                Some(_) => Vec::new(),
                None => self.matching(&namespace, object),
            },
            _ => Vec::new(),
        }
    }

    fn all_keys(&mut self) -> Vec<Self::Key> {
        self.store
            .list(Kind::ReplicaSet, None)
            .iter()
            .map(|rs| (rs.namespace().to_owned(), rs.name().to_owned()))
            .collect()
    }

    fn reconcile(&mut self, (namespace, name): &Self::Key) -> Result<Option<Duration>> {
        let Some(rs) = self.store.get_as::<ReplicaSet>(namespace, name) else {
            return Ok(None);
        };
        let spec = rs.spec.clone().unwrap_or_default();
        let selector = match Selector::from_label_selector(&spec.selector) {
            Ok(selector) => selector,
            Err(err) => {
                tracing::warn!(replicaset = %name, %err, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let now = Timestamp::now();
        let all_pods = self
            .store
            .list_as::<Pod>(Some(namespace), &Selector::default());

        // Claim.
        let mut owned: Vec<Pod> = Vec::new();
        for pod in all_pods.iter().filter(|p| is_pod_active(p)) {
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            match claim::claim(&uid, namespace, deleting, &selector, &pod.metadata) {
                Claim::Owned => owned.push(pod.clone()),
                Claim::Adopt => {
                    let reference = controller_ref(&rs);
                    let adopted = self.store.modify::<Pod, _>(namespace, pod_name, |p| {
                        claim::adopt(&mut p.metadata, &reference)
                    });
                    if let Ok((pod, true)) = adopted {
                        owned.push(pod);
                    }
                }
                Claim::Release => {
                    let _ = self.store.modify::<Pod, _>(namespace, pod_name, |p| {
                        claim::release(&mut p.metadata, &uid)
                    });
                }
                Claim::Ignore => {}
            }
        }

        // Manage.
        let involved = Object::ReplicaSet(rs.clone());
        let mut failure: Option<(&str, String)> = None;
        let mut error = None;
        if !deleting {
            let replicas = spec.replicas.unwrap_or(1);
            let refs: Vec<&Pod> = owned.iter().collect();
            let related = if refs.len() > usize::try_from(replicas).unwrap_or(0) {
                self.related(&rs, &all_pods)
            } else {
                Vec::new()
            };
            match manage(replicas, &refs, &related, now) {
                Manage::Nothing => {}
                Manage::Create(count) => {
                    let template = pod_from_template(&rs);
                    let mut created = Vec::new();
                    let (_, err) = slow_start(count, || match self.create_pod(&rs, &template) {
                        Ok(pod) => {
                            let msg = format!(
                                "Created pod: {}",
                                pod.metadata.name.as_deref().unwrap_or_default()
                            );
                            self.store.record_event(
                                &involved,
                                "Normal",
                                "SuccessfulCreate",
                                msg,
                                COMPONENT,
                            );
                            created.push(pod);
                            Ok(())
                        }
                        Err(err) => {
                            let msg = format!("Error creating: {err}");
                            self.store.record_event(
                                &involved,
                                "Warning",
                                "FailedCreate",
                                msg,
                                COMPONENT,
                            );
                            Err(err)
                        }
                    });
                    owned.extend(created);
                    if let Some(err) = err {
                        failure = Some(("FailedCreate", err.to_string()));
                        error = Some(err);
                    }
                }
                Manage::Delete(victims) => {
                    let mut gone: HashSet<String> = HashSet::new();
                    for pod in victims {
                        let pod_name = pod.metadata.name.clone().unwrap_or_default();
                        let key = ObjectKey::new(Kind::Pod, namespace, &pod_name);
                        match self.store.delete(&key, DeleteOptions::default()) {
                            Ok(_) => {
                                let msg = format!("Deleted pod: {pod_name}");
                                self.store.record_event(
                                    &involved,
                                    "Normal",
                                    "SuccessfulDelete",
                                    msg,
                                    COMPONENT,
                                );
                                gone.insert(pod_name);
                            }
                            Err(Error::NotFound(_)) => {
                                gone.insert(pod_name);
                            }
                            Err(err) => {
                                let msg = format!("Error deleting: {err}");
                                self.store.record_event(
                                    &involved,
                                    "Warning",
                                    "FailedDelete",
                                    msg,
                                    COMPONENT,
                                );
                                failure.get_or_insert(("FailedDelete", err.to_string()));
                                error.get_or_insert(err);
                            }
                        }
                    }
                    owned
                        .retain(|p| !gone.contains(p.metadata.name.as_deref().unwrap_or_default()));
                }
            }
        }

        // Status.
        let refs: Vec<&Pod> = owned.iter().collect();
        let status = calculate_status(&rs, &refs, failure, now);
        let result = self
            .store
            .modify::<ReplicaSet, _>(namespace, name, |current| {
                if current.metadata.uid.as_deref() == Some(uid.as_str()) {
                    current.status = Some(status);
                }
            });
        match result {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
        if let Some(err) = error {
            return Err(err);
        }
        // Look again when the next ready pod becomes available.
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let next = refs
            .iter()
            .filter_map(|p| time_until_available(p, min_ready, now))
            .min();
        Ok(next.map(|d| d + Duration::from_millis(10)))
    }
}

#[cfg(test)]
mod tests;
