//! The bookkeeping a Deployment keeps on its ReplicaSets: revision numbers, the annotations
//! copied from the Deployment, the `desired-replicas`/`max-replicas` annotations used for
//! proportional scaling, and how the ReplicaSet for the current template is found and built
//! (upstream `deploymentutil`: `SetNewReplicaSetAnnotations`, `FindNewReplicaSet`,
//! `EqualIgnoreHash`, and `getNewReplicaSet`'s construction).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names;
use crate::podutil::controller_ref;

/// The revision of a Deployment's rollout, on the Deployment and each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's `replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells the pods of one template from another's.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// kubectl's record of the last applied configuration, never copied to ReplicaSets.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The deprecated rollback request, never copied either.
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream's cap on the length of the revision-history annotation.
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// A ReplicaSet's `spec.replicas` (default 1).
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `status.replicas`.
pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// A ReplicaSet's `status.availableReplicas`.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// A ReplicaSet's `status.readyReplicas`.
pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision number of a ReplicaSet (0 when missing, `None` when unparsable).
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(&rs.metadata, REVISION) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

/// The highest revision among `rss` (`MaxRevision`).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(revision)
        .max()
        .unwrap_or(0)
        .max(0)
}

/// A ReplicaSet's `desired-replicas` annotation.
pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS)?.parse().ok()
}

/// A ReplicaSet's `max-replicas` annotation.
pub fn max_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS)?.parse().ok()
}

/// Oldest first, by creationTimestamp then name (`ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first, then oldest (`ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let rev = |rs: &ReplicaSet| revision(rs).unwrap_or(0);
    rev(a).cmp(&rev(b)).then_with(|| by_creation(a, b))
}

/// Whether two templates are equal once the `pod-template-hash` label is ignored
/// (`EqualIgnoreHash`); an empty label or annotation map equals a missing one.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(POD_TEMPLATE_HASH);
    }
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
    template
}

/// Sets the Deployment's revision annotation; returns whether it changed (`SetDeploymentRevision`).
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.to_owned(), revision.to_owned());
    true
}

/// Copies the Deployment's own annotations onto the ReplicaSet, skipping the ones the controller
/// manages; returns whether any changed.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let skip = [
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        ROLLBACK_TO,
    ];
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip.contains(&k.as_str()) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Whether the replica annotations differ from `desired` / `max` (`ReplicasAnnotationsNeedUpdate`).
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Sets the replica annotations; returns whether they changed (`SetReplicasAnnotations`).
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let changed = replicas_annotations_need_update(rs, desired, max);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.to_owned(), desired.to_string());
    annotations.insert(MAX_REPLICAS.to_owned(), max.to_string());
    changed
}

/// Brings the new ReplicaSet's annotations up to date: the Deployment's annotations, a revision
/// no lower than `new_revision` (keeping rolled-back revisions in `revision-history`), and for a
/// ReplicaSet about to be created the replica annotations. Returns whether anything changed
/// (`SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    desired_and_max: (i32, i32),
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_text = annotations.get(REVISION).cloned();
    let old_revision = match old_text.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.to_owned(), new_revision.to_string());
        changed = true;
        if let Some(old_text) = old_text {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY.to_owned(), old_text);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old_text.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_CHARS {
                    revisions.drain(..start);
                    revisions.push(&old_text);
                    let joined = revisions.join(",");
                    annotations.insert(REVISION_HISTORY.to_owned(), joined);
                }
            }
        }
    }
    if !exists && set_replicas_annotations(rs, desired_and_max.0, desired_and_max.1) {
        changed = true;
    }
    changed
}

/// The ReplicaSet a Deployment would create for its current template, with 0 replicas and no
/// annotations yet: named `<deployment>-<hash>`, the hash added to its labels, selector and
/// template, owned by the Deployment.
pub fn new_replica_set(d: &Deployment) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = names::template_hash(&spec.template, collision_count);
    let mut template = spec.template.clone();
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    labels.insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
    let labels = labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
    let name = d.metadata.name.as_deref().unwrap_or_default();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![controller_ref(d)]),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds.filter(|&s| s != 0),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;

    fn deployment(image: &str) -> Deployment {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("d-uid".into()),
                annotations: Some(BTreeMap::from([
                    ("team".to_owned(), "blue".to_owned()),
                    (LAST_APPLIED.to_owned(), "{}".to_owned()),
                    (REVISION.to_owned(), "7".to_owned()),
                ])),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "web".into(),
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

    #[test]
    fn new_replica_set_shape() {
        let d = deployment("nginx:1.25.3");
        let rs = new_replica_set(&d);
        let hash = names::template_hash(&d.spec.as_ref().unwrap().template, None);
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
            hash
        );
        let template_labels = spec.template.as_ref().unwrap().metadata.as_ref().unwrap();
        assert_eq!(
            template_labels.labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
            hash
        );
        assert_eq!(rs.metadata.labels.as_ref().unwrap()["app"], "web");
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Deployment", "d-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert!(equal_ignore_hash(
            spec.template.as_ref().unwrap(),
            &d.spec.as_ref().unwrap().template
        ));
        assert!(!equal_ignore_hash(
            spec.template.as_ref().unwrap(),
            &deployment("nginx:1.24.0").spec.unwrap().template
        ));
    }

    #[test]
    fn annotations_of_a_new_replica_set() {
        let d = deployment("nginx");
        let mut rs = new_replica_set(&d);
        assert!(set_new_rs_annotations(&d, &mut rs, 3, false, (3, 4)));
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["team"], "blue");
        assert_eq!(a[REVISION], "3");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert!(!a.contains_key(LAST_APPLIED));
        assert!(!a.contains_key(REVISION_HISTORY));
        assert!(
            !set_new_rs_annotations(&d, &mut rs, 3, true, (3, 4)),
            "idempotent"
        );
    }

    #[test]
    fn rollback_keeps_history() {
        let d = deployment("nginx");
        let mut rs = new_replica_set(&d);
        set_new_rs_annotations(&d, &mut rs, 1, false, (1, 2));
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true, (1, 2)));
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true, (1, 2)));
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[REVISION_HISTORY], "1,3");
        // A lower revision never replaces a higher one.
        assert!(!set_new_rs_annotations(&d, &mut rs, 4, true, (1, 2)));
    }

    #[test]
    fn revisions_and_order() {
        let mut a = new_replica_set(&deployment("a"));
        let mut b = new_replica_set(&deployment("b"));
        a.metadata.annotations = Some(BTreeMap::from([(REVISION.to_owned(), "4".to_owned())]));
        b.metadata.annotations = Some(BTreeMap::from([(REVISION.to_owned(), "x".to_owned())]));
        assert_eq!(revision(&a), Some(4));
        assert_eq!(revision(&b), None);
        assert_eq!(max_revision([&a, &b]), 4);
        assert_eq!(
            by_revision(&b, &a),
            Ordering::Less,
            "unparsable counts as 0"
        );
        let mut d = deployment("a");
        assert!(set_deployment_revision(&mut d, "8"));
        assert!(!set_deployment_revision(&mut d, "8"));
    }
}
