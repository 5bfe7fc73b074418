use std::collections::BTreeMap;

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};

use super::*;

fn pod(name: &str, ready_ago: Option<i64>, now: Timestamp) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([
                ("app".to_owned(), "web".to_owned()),
                ("pod-template-hash".to_owned(), "h".to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("harness".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: ready_ago.map(|s| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(s))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

fn replica_set(replicas: i32, min_ready: i32) -> ReplicaSet {
    let labels = BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("pod-template-hash".to_owned(), "h".to_owned()),
    ]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-h".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            generation: Some(3),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(min_ready),
            selector: Default::default(),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
        }),
        status: None,
    }
}

#[test]
fn manage_table() {
    let now = Timestamp::now();
    let pods: Vec<Pod> = vec![
        pod("ready-old", Some(5000), now),
        pod("not-ready", None, now),
        pod("ready-new", Some(2), now),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(manage(3, &refs, &refs, now), Manage::Nothing);
    assert_eq!(manage(5, &refs, &refs, now), Manage::Create(2));
    assert_eq!(manage(1000, &[], &[], now), Manage::Create(BURST_REPLICAS));
    let names = |m: Manage| match m {
        Manage::Delete(pods) => pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        other => panic!("expected deletions, got {other:?}"),
    };
    assert_eq!(names(manage(2, &refs, &refs, now)), ["not-ready"]);
    assert_eq!(
        names(manage(1, &refs, &refs, now)),
        ["not-ready", "ready-new"]
    );
    assert_eq!(names(manage(0, &refs, &refs, now)).len(), 3);
}

#[test]
fn slow_start_batches() {
    // All succeed: 1 + 2 + 4 + 3.
    let mut calls = 0;
    assert_eq!(
        slow_start::<()>(10, || {
            calls += 1;
            Ok(())
        }),
        (10, None)
    );
    assert_eq!(calls, 10);
    // The 5th call fails: batches 1, 2 succeed, the batch of 4 runs fully, then stop.
    let mut calls = 0;
    let (ok, err) = slow_start(10, || {
        calls += 1;
        if calls == 5 { Err("boom") } else { Ok(()) }
    });
    assert_eq!((ok, err, calls), (6, Some("boom"), 7));
    assert_eq!(slow_start::<()>(0, || unreachable!()), (0, None));
}

#[test]
fn pods_from_the_template() {
    let rs = replica_set(3, 0);
    let pod = pod_from_template(&rs);
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-h-"));
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
        "h"
    );
    assert_eq!(pod.metadata.annotations.as_ref().unwrap()["a"], "b");
    let owner = owner_of(&pod.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("ReplicaSet", "rs-uid")
    );
    assert_eq!(pod.spec.unwrap().node_name, None);
    assert_eq!(name_prefix(&"x".repeat(70)).len(), MAX_PREFIX);
}

#[test]
fn status_counts_and_failures() {
    let now = Timestamp::now();
    let rs = replica_set(4, 10);
    let mut stray = pod("stray", Some(100), now);
    stray.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "web".to_owned())]));
    let pods = [
        pod("a", Some(100), now),
        pod("b", Some(3), now),
        pod("c", None, now),
        stray,
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let s = calculate_status(&rs, &refs, None, now);
    assert_eq!(s.replicas, 4);
    assert_eq!(s.fully_labeled_replicas, Some(3));
    assert_eq!(s.ready_replicas, Some(3));
    assert_eq!(
        s.available_replicas,
        Some(2),
        "b is ready for only 3 of 10 s"
    );
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.conditions, None);

    let failed = calculate_status(&rs, &refs, Some(("FailedCreate", "quota".into())), now);
    let c = &failed.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.reason.as_deref()),
        (REPLICA_FAILURE, Some("FailedCreate"))
    );
    let mut rs = rs;
    rs.status = Some(failed);
    assert_eq!(
        calculate_status(&rs, &refs, None, now).conditions,
        None,
        "cleared"
    );
}
