//! Small questions every component asks about pods and owners, answered once the way upstream
//! answers them (`k8s.io/kubectl/pkg/util/podutils`, `pkg/api/v1/pod`, `metav1.GetControllerOf`).
//!
//! A pod is *ready* when its `Ready` condition is `True`; it is *available* once it has been ready
//! for at least `minReadySeconds`, counted from that condition's `lastTransitionTime`. A pod is
//! *active* (counted by its ReplicaSet) unless it has finished (`Succeeded`/`Failed`) or is being
//! deleted.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::object::Resource;

/// The pod's `Ready` condition, if it has one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready: the `lastTransitionTime` of a `True` Ready condition.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now` (upstream
/// `IsPodAvailable`: with 0 every ready pod is available; otherwise the Ready transition must lie
/// strictly more than `min_ready_seconds` in the past).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod)
        .is_some_and(|since| since + SignedDuration::from_secs(min_ready_seconds.into()) < now)
}

/// How long until a ready pod becomes available (`None` when it is not ready or already is).
pub fn time_until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    if min_ready_seconds <= 0 || is_pod_available(pod, min_ready_seconds, now) {
        return None;
    }
    let since = ready_since(pod)?;
    let at = since + SignedDuration::from_secs(min_ready_seconds.into());
    let left = at.duration_since(now);
    Some(left.unsigned_abs())
}

/// The pod's phase (`Pending` when unset, as the API reports a fresh pod).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod has finished for good (`Succeeded` or `Failed`).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the pod is being deleted (it has a `deletionTimestamp`).
pub fn is_pod_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether a controller counts the pod: not terminal and not being deleted (upstream
/// `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && !is_pod_terminating(pod)
}

/// The owner reference with `controller: true`, if any (upstream `GetControllerOf`).
pub fn owner_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner`, as controllers put on what they create or adopt
/// (`controller: true`, `blockOwnerDeletion: true`).
pub fn controller_ref<K: Resource>(owner: &K) -> OwnerReference {
    let meta = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_owned(),
        kind: K::KIND.to_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn pod(ready: Option<(&str, Timestamp)>, phase: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready.map(|(status, at)| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        last_transition_time: Some(Time(at)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn readiness_and_availability() {
        let now = Timestamp::now();
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        let cases = [
            (pod(None, "Running"), 0, false, false),
            (pod(Some(("False", ago(100))), "Running"), 0, false, false),
            (pod(Some(("True", ago(0))), "Running"), 0, true, true),
            (pod(Some(("True", ago(5))), "Running"), 10, true, false),
            (pod(Some(("True", ago(10))), "Running"), 10, true, false),
            (pod(Some(("True", ago(11))), "Running"), 10, true, true),
        ];
        for (i, (pod, min_ready, ready, available)) in cases.iter().enumerate() {
            assert_eq!(is_pod_ready(pod), *ready, "case {i}");
            assert_eq!(
                is_pod_available(pod, *min_ready, now),
                *available,
                "case {i}"
            );
        }
        let waiting = pod(Some(("True", ago(4))), "Running");
        let left = time_until_available(&waiting, 10, now).unwrap();
        assert_eq!(left.as_secs(), 6);
    }

    #[test]
    fn activity() {
        let mut p = pod(None, "Running");
        assert!(is_pod_active(&p));
        p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!is_pod_active(&p));
        assert!(!is_pod_active(&pod(None, "Succeeded")));
        assert!(!is_pod_active(&pod(None, "Failed")));
        assert_eq!(phase(&Pod::default()), "Pending");
    }

    #[test]
    fn controller_refs() {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some("web-abc".into());
        rs.metadata.uid = Some("u1".into());
        let reference = controller_ref(&rs);
        assert_eq!(reference.kind, "ReplicaSet");
        assert_eq!(reference.api_version, "apps/v1");
        let meta = ObjectMeta {
            owner_references: Some(vec![
                OwnerReference {
                    uid: "other".into(),
                    ..Default::default()
                },
                reference.clone(),
            ]),
            ..Default::default()
        };
        assert_eq!(owner_of(&meta), Some(&reference));
        assert_eq!(owner_of(&ObjectMeta::default()), None);
    }
}
