//! A Deployment's status and conditions, computed from its ReplicaSets (upstream
//! `calculateStatus`, `syncRolloutStatus` and the condition helpers of `deploymentutil`).
//!
//! `Available` says whether at least `replicas - maxUnavailable` pods are available
//! (`MinimumReplicasAvailable` / `MinimumReplicasUnavailable`). `Progressing` tells the story of
//! the rollout: `NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated` while pods
//! move, `NewReplicaSetAvailable` once complete, and `False`/`ProgressDeadlineExceeded` when
//! nothing moved for `progressDeadlineSeconds` (which changes nothing else).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::revision::{available, ready, replicas, status_replicas};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Upstream writes 0 counts as absent (`omitempty`); so does the harness.
pub fn nz(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// A condition stamped with `now` for both times (`NewDeploymentCondition`).
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub fn get_condition<'a>(
    status: Option<&'a DeploymentStatus>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition unless one with the same status and reason is there; keeps the transition
/// time when only the reason changes (`SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = get_condition(Some(status), &new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &new.type_);
    status.conditions.get_or_insert_with(Vec::new).push(new);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `spec.replicas` of the Deployment (default 1).
fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status` fields read with zero for absent.
fn count(status: Option<&DeploymentStatus>, f: fn(&DeploymentStatus) -> Option<i32>) -> i32 {
    status.and_then(f).unwrap_or(0)
}

/// The status the ReplicaSets imply: counts summed over them, `updatedReplicas` from the new
/// one, the Available condition from `maxUnavailable` (`calculateStatus`).
pub fn calculate(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    max_unavailable: i32,
    now: Timestamp,
) -> DeploymentStatus {
    let available_replicas: i32 = all.iter().map(|rs| available(rs)).sum();
    let total_replicas: i32 = all.iter().map(|rs| replicas(rs)).sum();
    let unavailable = (total_replicas - available_replicas).max(0);
    let current = d.status.as_ref();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nz(all.iter().map(|rs| status_replicas(rs)).sum()),
        updated_replicas: nz(new.map_or(0, status_replicas)),
        ready_replicas: nz(all.iter().map(|rs| ready(rs)).sum()),
        available_replicas: nz(available_replicas),
        unavailable_replicas: nz(unavailable),
        collision_count: current.and_then(|s| s.collision_count),
        conditions: current.and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    if available_replicas >= desired(d) - max_unavailable {
        let c = condition(
            AVAILABLE,
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        );
        set_condition(&mut status, c);
    } else {
        let c = condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        );
        set_condition(&mut status, c);
    }
    status
}

/// `progressDeadlineSeconds`, unless unset or "infinite" (MaxInt32); the API default is 600.
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    let seconds = d
        .spec
        .as_ref()
        .map_or(Some(600), |s| s.progress_deadline_seconds.or(Some(600)))?;
    (seconds != i32::MAX).then_some(seconds)
}

/// Whether the rollout is complete: every replica updated and available, and the spec observed
/// (`DeploymentComplete`).
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let r = desired(d);
    status.updated_replicas.unwrap_or(0) == r
        && status.replicas.unwrap_or(0) == r
        && status.available_replicas.unwrap_or(0) == r
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether anything moved since `d.status`: more updated, ready or available pods, or fewer old
/// ones (`DeploymentProgressing`).
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.as_ref();
    let old_updated = count(old, |s| s.updated_replicas);
    let old_old = count(old, |s| s.replicas) - old_updated;
    let new_updated = new.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new_updated;
    new_updated > old_updated
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > count(old, |s| s.ready_replicas)
        || new.available_replicas.unwrap_or(0) > count(old, |s| s.available_replicas)
}

/// Whether the Progressing condition in `status` is older than the deadline
/// (`DeploymentTimedOut`).
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(Some(status), PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|from| from.0 + SignedDuration::from_secs(deadline.into()) < now),
    }
}

/// Updates the Progressing and ReplicaFailure conditions of a freshly calculated status during a
/// rollout (the body of `syncRolloutStatus`).
pub fn update_progress(
    d: &Deployment,
    status: &mut DeploymentStatus,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) {
    let has_deadline = progress_deadline(d).is_some();
    if !has_deadline {
        remove_condition(status, PROGRESSING);
    }
    let current = get_condition(d.status.as_ref(), PROGRESSING).cloned();
    let is_complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let subject = |what: &str| match new {
        Some(rs) => format!(
            "ReplicaSet \"{}\" {what}.",
            rs.metadata.name.as_deref().unwrap_or_default()
        ),
        None => format!("Deployment \"{name}\" {what}."),
    };
    if has_deadline && !is_complete {
        if complete(d, status) {
            let msg = subject("has successfully progressed");
            set_condition(
                status,
                condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
            );
        } else if progressing(d, status) {
            let mut c = condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                subject("is progressing"),
                now,
            );
            if let Some(current) = &current {
                if current.status == "True" {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(status, PROGRESSING);
            }
            set_condition(status, c);
        } else if timed_out(d, status, now) {
            let msg = subject("has timed out progressing");
            set_condition(status, condition(PROGRESSING, "False", TIMED_OUT, msg, now));
        }
    }
    match replica_failure(all, new) {
        Some(c) => set_condition(status, c),
        None => remove_condition(status, REPLICA_FAILURE),
    }
}

/// The first ReplicaFailure condition of the new ReplicaSet, else of any (`getReplicaFailures`).
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new.and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// When to look again at a rollout that shows no progress, to notice its deadline
/// (`requeueStuckDeployment`): one second after the deadline would pass.
pub fn requeue_stuck(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let c = get_condition(Some(status), PROGRESSING)?;
    if complete(d, status) || c.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    let after = (from + SignedDuration::from_secs(deadline.into())).duration_since(now);
    let after = Duration::try_from(after).unwrap_or_default();
    Some(after + Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn rs(name: &str, spec: i32, status: i32, ready: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: status,
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn deployment(replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn status_counts() {
        let d = deployment(3);
        let (old, new) = (rs("old", 2, 3, 3, 3), rs("new", 2, 1, 0, 0));
        let now = Timestamp::now();
        let s = calculate(&d, &[&old, &new], Some(&new), 0, now);
        assert_eq!(s.replicas, Some(4));
        assert_eq!(s.updated_replicas, Some(1));
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(2));
        let available = get_condition(Some(&s), AVAILABLE).unwrap();
        assert_eq!(available.status, "True");
        assert_eq!(available.reason.as_deref(), Some(MIN_AVAILABLE));
        let short = calculate(&d, &[&rs("x", 3, 3, 1, 1)], None, 0, now);
        let c = get_condition(Some(&short), AVAILABLE).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(MIN_UNAVAILABLE))
        );
        assert_eq!(short.updated_replicas, None);
    }

    #[test]
    fn progress_conditions() {
        let now = Timestamp::now();
        let mut d = deployment(3);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(3),
            updated_replicas: Some(1),
            available_replicas: Some(3),
            conditions: Some(vec![condition(
                PROGRESSING,
                "True",
                NEW_RS_CREATED,
                "x".into(),
                now,
            )]),
            ..Default::default()
        });
        let (old, new) = (rs("old", 2, 2, 2, 2), rs("new", 2, 2, 2, 2));
        let mut s = calculate(&d, &[&old, &new], Some(&new), 0, now);
        update_progress(&d, &mut s, &[&old, &new], Some(&new), now);
        let c = get_condition(Some(&s), PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"new\" is progressing.")
        );

        // Complete: updated = replicas = available.
        let done = rs("new", 3, 3, 3, 3);
        let mut s = calculate(&d, &[&done], Some(&done), 0, now);
        update_progress(&d, &mut s, &[&done], Some(&done), now);
        let c = get_condition(Some(&s), PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert!(complete(&d, &s));
    }

    #[test]
    fn deadline() {
        let now = Timestamp::now();
        let mut d = deployment(3);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        let stale = now - SignedDuration::from_secs(11);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(4),
            updated_replicas: Some(1),
            ready_replicas: Some(3),
            available_replicas: Some(3),
            conditions: Some(vec![condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                "x".into(),
                stale,
            )]),
            ..Default::default()
        });
        let (old, new) = (rs("old", 3, 3, 3, 3), rs("new", 1, 1, 0, 0));
        let mut s = calculate(&d, &[&old, &new], Some(&new), 0, now);
        update_progress(&d, &mut s, &[&old, &new], Some(&new), now);
        let c = get_condition(Some(&s), PROGRESSING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"new\" has timed out progressing.")
        );
        assert_eq!(
            requeue_stuck(&d, &s, now),
            None,
            "a timed-out rollout is not requeued"
        );

        let recent = now - SignedDuration::from_secs(4);
        d.status.as_mut().unwrap().conditions = Some(vec![condition(
            PROGRESSING,
            "True",
            RS_UPDATED,
            "x".into(),
            recent,
        )]);
        let mut s = calculate(&d, &[&old, &new], Some(&new), 0, now);
        update_progress(&d, &mut s, &[&old, &new], Some(&new), now);
        assert_eq!(get_condition(Some(&s), PROGRESSING).unwrap().status, "True");
        let after = requeue_stuck(&d, &s, now).unwrap();
        assert_eq!(after.as_secs(), 7, "deadline in 6 s, plus one");
    }

    #[test]
    fn set_condition_keeps_transition_time() {
        let t0 = Timestamp::now() - SignedDuration::from_secs(60);
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            condition(PROGRESSING, "True", NEW_RS_CREATED, "a".into(), t0),
        );
        let later = Timestamp::now();
        set_condition(
            &mut s,
            condition(PROGRESSING, "True", RS_UPDATED, "b".into(), later),
        );
        let c = get_condition(Some(&s), PROGRESSING).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        assert_eq!(c.last_update_time, Some(Time(later)));
        set_condition(
            &mut s,
            condition(PROGRESSING, "True", RS_UPDATED, "c".into(), later),
        );
        assert_eq!(
            get_condition(Some(&s), PROGRESSING)
                .unwrap()
                .message
                .as_deref(),
            Some("b"),
            "same status and reason: unchanged"
        );
    }
}
