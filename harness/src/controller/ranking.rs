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
mod tests {
    use std::collections::BTreeMap;

    use jiff::SignedDuration;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    /// A pod description: name (also uid), node, phase, ready-since (seconds ago), restarts,
    /// created (seconds ago), deletion cost.
    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_ago: Option<i64>,
        restarts: i32,
        created_ago: i64,
        cost: Option<&'static str>,
    }

    const BASE: P = P {
        name: "",
        node: "harness",
        phase: "Running",
        ready_ago: Some(1000),
        restarts: 0,
        created_ago: 2000,
        cost: None,
    };

    fn build(p: &P, now: Timestamp) -> Pod {
        let ago = |s: i64| Time(now - SignedDuration::from_secs(s));
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(p.name.into()),
                creation_timestamp: Some(ago(p.created_ago)),
                annotations: p
                    .cost
                    .map(|c| BTreeMap::from([(DELETION_COST_ANNOTATION.to_owned(), c.to_owned())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!p.node.is_empty()).then(|| p.node.to_owned()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(p.phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if p.ready_ago.is_some() {
                        "True"
                    } else {
                        "False"
                    }
                    .into(),
                    last_transition_time: Some(ago(p.ready_ago.unwrap_or(p.created_ago))),
                    ..Default::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: p.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    /// Each case: two pods; the first must be deleted before the second.
    #[test]
    fn pairwise_order_table() {
        let cases: Vec<(&str, P, P)> = vec![
            (
                "unscheduled before scheduled",
                P {
                    name: "a",
                    node: "",
                    phase: "Pending",
                    ready_ago: None,
                    ..BASE
                },
                P { name: "b", ..BASE },
            ),
            (
                "unscheduled before scheduled even if running",
                P {
                    name: "z",
                    node: "",
                    ..BASE
                },
                P {
                    name: "a",
                    phase: "Pending",
                    ready_ago: None,
                    ..BASE
                },
            ),
            (
                "pending before running",
                P {
                    name: "z",
                    phase: "Pending",
                    ready_ago: None,
                    ..BASE
                },
                P { name: "a", ..BASE },
            ),
            (
                "pending before unknown",
                P {
                    name: "z",
                    phase: "Pending",
                    ready_ago: None,
                    ..BASE
                },
                P {
                    name: "a",
                    phase: "Unknown",
                    ready_ago: None,
                    ..BASE
                },
            ),
            (
                "unknown before running",
                P {
                    name: "z",
                    phase: "Unknown",
                    ..BASE
                },
                P { name: "a", ..BASE },
            ),
            (
                "not ready before ready",
                P {
                    name: "z",
                    ready_ago: None,
                    created_ago: 5000,
                    ..BASE
                },
                P { name: "a", ..BASE },
            ),
            (
                "lower deletion cost first",
                P {
                    name: "z",
                    cost: Some("-5"),
                    ready_ago: Some(5000),
                    ..BASE
                },
                P { name: "a", ..BASE },
            ),
            (
                "cost beats readiness age",
                P {
                    name: "z",
                    cost: Some("1"),
                    ready_ago: Some(1),
                    ..BASE
                },
                P {
                    name: "a",
                    cost: Some("10"),
                    ready_ago: Some(5000),
                    ..BASE
                },
            ),
            (
                "invalid cost counts as 0",
                P {
                    name: "z",
                    cost: Some("lots"),
                    ..BASE
                },
                P {
                    name: "a",
                    cost: Some("3"),
                    ..BASE
                },
            ),
            (
                "ready more recently first (different log2 buckets)",
                P {
                    name: "z",
                    ready_ago: Some(10),
                    ..BASE
                },
                P {
                    name: "a",
                    ready_ago: Some(1000),
                    ..BASE
                },
            ),
            (
                "same log2 bucket of ready time: smaller uid first",
                P {
                    name: "a",
                    ready_ago: Some(1000),
                    ..BASE
                },
                P {
                    name: "b",
                    ready_ago: Some(1010),
                    ..BASE
                },
            ),
            (
                "more restarts first",
                P {
                    name: "z",
                    restarts: 3,
                    ..BASE
                },
                P {
                    name: "a",
                    restarts: 1,
                    ..BASE
                },
            ),
            (
                "newer first",
                P {
                    name: "z",
                    ready_ago: None,
                    created_ago: 10,
                    ..BASE
                },
                P {
                    name: "a",
                    ready_ago: None,
                    created_ago: 5000,
                    ..BASE
                },
            ),
            (
                "same log2 bucket of age: smaller uid first",
                P {
                    name: "a",
                    ready_ago: None,
                    created_ago: 5000,
                    ..BASE
                },
                P {
                    name: "b",
                    ready_ago: None,
                    created_ago: 5100,
                    ..BASE
                },
            ),
        ];
        let now = Timestamp::now();
        for (what, first, second) in &cases {
            let (a, b) = (build(first, now), build(second, now));
            assert_eq!(compare((&a, 1), (&b, 1), now), Ordering::Less, "{what}");
            assert_eq!(
                compare((&b, 1), (&a, 1), now),
                Ordering::Greater,
                "{what} (reversed)"
            );
        }
    }

    #[test]
    fn crowded_nodes_first() {
        let now = Timestamp::now();
        let a = build(
            &P {
                name: "z",
                node: "n1",
                ..BASE
            },
            now,
        );
        let b = build(
            &P {
                name: "a",
                node: "n2",
                ..BASE
            },
            now,
        );
        assert_eq!(compare((&a, 3), (&b, 1), now), Ordering::Less);
        let c = build(
            &P {
                name: "a",
                node: "n1",
                ..BASE
            },
            now,
        );
        let related = [&a, &c, &b];
        let picked = pods_to_delete(&[&b, &a], &related, 1, now);
        assert_eq!(picked[0].metadata.name.as_deref(), Some("z"));
    }

    #[test]
    fn picks_the_first_diff() {
        let now = Timestamp::now();
        let pods: Vec<Pod> = [
            P {
                name: "old-ready",
                ready_ago: Some(5000),
                created_ago: 6000,
                ..BASE
            },
            P {
                name: "pending",
                phase: "Pending",
                ready_ago: None,
                created_ago: 1,
                ..BASE
            },
            P {
                name: "unscheduled",
                node: "",
                phase: "Pending",
                ready_ago: None,
                ..BASE
            },
            P {
                name: "new-ready",
                ready_ago: Some(2),
                created_ago: 3,
                ..BASE
            },
        ]
        .iter()
        .map(|p| build(p, now))
        .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let names = |n: usize| {
            pods_to_delete(&refs, &refs, n, now)
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(1), ["unscheduled"]);
        assert_eq!(names(3), ["unscheduled", "pending", "new-ready"]);
        assert_eq!(names(4).len(), 4);
        assert_eq!(
            names(9).len(),
            4,
            "asking for more than there are returns all"
        );
        assert!(names(0).is_empty());
    }

    #[test]
    fn log_buckets() {
        let now = Timestamp::now();
        assert_eq!(log_bucket(now, now), -1);
        assert_eq!(log_bucket(now, now - SignedDuration::from_nanos(1)), 0);
        assert_eq!(log_bucket(now, now - SignedDuration::from_nanos(1024)), 10);
        assert_eq!(log_bucket(now, now - SignedDuration::from_nanos(1023)), 9);
    }
}
