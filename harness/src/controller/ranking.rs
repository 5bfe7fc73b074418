//! Which pods a ReplicaSet deletes first when it has too many (upstream `getPodsToDelete` and
//! `ActivePodsWithRanks.Less`, Kubernetes 1.32 with `LogarithmicScaleDown`, GA since 1.31).
//!
//! Earlier in this list goes first: unscheduled before scheduled; `Pending` before `Unknown`
//! before `Running`; not ready before ready; lower `controller.kubernetes.io/pod-deletion-cost`
//! first; pods on a node crowded with related pods first; of two ready pods, the one ready for a
//! shorter time; more container restarts first; newer first. Times are compared on a log2 scale of
//! their age (so pods that became ready 10 s and 12 s ago tie), ties broken by uid, exactly as
//! upstream does to spread deletions randomly among pods of similar age.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::podutil::{is_pod_active, is_pod_ready, ready_since};

/// The annotation that lets users order deletions (higher cost, deleted later).
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `diff` pods of `pods` to delete first. `related` are the pods of every ReplicaSet with the
/// same controller (used to rank crowded nodes), `now` the moment of the decision.
pub fn pods_to_delete<'a>(
    pods: &[&'a Pod],
    related: &[&Pod],
    diff: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&'a Pod, usize)> = pods
        .iter()
        .map(|p| (*p, on_node.get(node_name(p)).copied().unwrap_or(0)))
        .collect();
    // A stable insertion sort driven by `less`, like Go's sort.Sort it tolerates a relation that
    // is not a perfect total order (the log-scale buckets); Rust's sorts may panic on one.
    for i in 1..ranked.len() {
        let mut j = i;
        while j > 0 && less(ranked[j], ranked[j - 1], now) {
            ranked.swap(j, j - 1);
            j -= 1;
        }
    }
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

/// Orders two pods for deletion: `Less` means `a` goes before `b`.
pub fn compare(a: (&Pod, usize), b: (&Pod, usize), now: Timestamp) -> Ordering {
    if less(a, b, now) {
        Ordering::Less
    } else if less(b, a, now) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// Upstream `ActivePodsWithRanks.Less`, with each pod's rank (related pods on its node).
fn less((a, rank_a): (&Pod, usize), (b, rank_b): (&Pod, usize), now: Timestamp) -> bool {
    // 1. Unassigned < assigned.
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (phase_a, phase_b) = (phase_ordinal(a), phase_ordinal(b));
    if phase_a != phase_b {
        return phase_a < phase_b;
    }
    // 3. Not ready < ready.
    let (ready_a, ready_b) = (is_pod_ready(a), is_pod_ready(b));
    if ready_a != ready_b {
        return !ready_a;
    }
    // 4. Lower deletion cost < higher.
    let (cost_a, cost_b) = (deletion_cost(a), deletion_cost(b));
    if cost_a != cost_b {
        return cost_a < cost_b;
    }
    // 5. More related pods on the same node < fewer.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    // 6. Of two ready pods, the more recently ready one is smaller.
    if ready_a && ready_b {
        let (time_a, time_b) = (ready_since(a), ready_since(b));
        if time_a != time_b {
            return newer_on_log_scale(time_a, time_b, uid(a), uid(b), now);
        }
    }
    // 7. More restarts < fewer.
    let (restarts_a, restarts_b) = (max_restarts(a), max_restarts(b));
    if restarts_a != restarts_b {
        return restarts_a > restarts_b;
    }
    // 8. Newer < older.
    let (created_a, created_b) = (created(a), created(b));
    if created_a != created_b {
        return newer_on_log_scale(created_a, created_b, uid(a), uid(b), now);
    }
    false
}

/// Whether `a` counts as newer than `b`: a missing time is newest; otherwise the ages are
/// compared by `floor(log2(nanoseconds))`, equal buckets falling back to the uid.
fn newer_on_log_scale(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    uid_a: &str,
    uid_b: &str,
    now: Timestamp,
) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        // afterOrZero: a zero time sorts first.
        return a.is_none();
    };
    let diff = log_bucket(now, a) - log_bucket(now, b);
    if diff == 0 { uid_a < uid_b } else { diff < 0 }
}

/// `logarithmicRankDiff`'s rank of one time: `floor(log2(age in ns))`, -1 for no age.
fn log_bucket(now: Timestamp, at: Timestamp) -> i64 {
    let age = now.duration_since(at).as_nanos();
    if age <= 0 {
        -1
    } else {
        i64::from(127 - age.leading_zeros()) // floor(log2) of a positive i128
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Pending (and unset) 0, Unknown 1, Running 2; other phases count as 0 (a Go map's zero value).
fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

/// The pod's deletion cost; a missing or invalid annotation counts as 0.
fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests;
