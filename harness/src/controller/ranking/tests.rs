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
