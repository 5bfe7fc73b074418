//! Disruptions under traffic: S5 (one pod of three deleted) and S7 (a rolling update to a new
//! image). A request loop runs through `port-forward svc/hostbot` (a new connection per request,
//! each balanced over the ready endpoints) before, during and after; not one request may fail.

use std::collections::BTreeSet;

use harness::object::Kind;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use crate::support::*;

/// Applies the ConfigMap, the fast Deployment and the Service, and waits for three ready
/// endpoints.
async fn hostbot_behind_its_service(cluster: &harness::cluster::Cluster) {
    apply(
        cluster,
        &[
            manifest("cm-hostbot.yml"),
            fixture("hostbot-fast.yml"),
            manifest("svc-hostbot.yml"),
        ],
    );
    wait_rolled_out(cluster, "hostbot", 3).await;
    wait(cluster, "three ready endpoints", STEP, |store| {
        endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_deleted_pod_is_replaced_without_a_failed_request() {
    let cluster = start().await;
    hostbot_behind_its_service(&cluster).await;
    let store = cluster.store();
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let traffic = Traffic::start(forward.local_addrs()[0], "/");
    traffic.run_for(20).await;

    // kubectl delete pod <one of three>
    let before: BTreeSet<String> = live_pods(store, "app=hostbot").iter().map(name).collect();
    let victim = before.iter().nth(1).unwrap().clone();
    cluster
        .delete(&key(Kind::Pod, &victim))
        .expect("the pod is deleted");

    // A replacement appears, the count is back to three ready pods, and the deleted pod has
    // finished terminating (its drain is over), all while the loop keeps running.
    wait(
        &cluster,
        "a ready replacement and the victim gone",
        STEP,
        |store| {
            ready_pods(store, "app=hostbot").len() == 3
                && all_pods(store, "app=hostbot").len() == 3
                && store.get_as::<Pod>("default", &victim).is_none()
        },
    )
    .await;
    let after = live_pods(store, "app=hostbot");
    let new: Vec<String> = after
        .iter()
        .map(name)
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(new.len(), 1, "exactly one replacement: {new:?}");
    let youngest = after
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
        .map(name);
    assert_eq!(
        youngest.as_ref(),
        Some(&new[0]),
        "the replacement has the youngest AGE"
    );
    wait(
        &cluster,
        "the replacement among the endpoints",
        STEP,
        |store| endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3),
    )
    .await;

    traffic.run_for(30).await;
    let report = traffic.stop().await;
    report.assert_no_failures("deleting one pod of three");
    let hosts = report.by_host();
    assert!(
        hosts.contains_key(&victim),
        "the victim served before: {hosts:?}"
    );
    assert!(
        hosts.contains_key(&new[0]),
        "the replacement gets traffic: {hosts:?}"
    );

    forward.stop();
    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_rolling_update_replaces_every_pod_without_a_failed_request() {
    let cluster = start().await;
    hostbot_behind_its_service(&cluster).await;
    let store = cluster.store();
    let old_rs = replica_sets(store, "hostbot")[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let traffic = Traffic::start(forward.local_addrs()[0], "/");
    traffic.run_for(20).await;

    // Change the image tag and apply.
    set_image(&cluster, "hostbot", "yourname/hostbot:v2");
    wait(
        &cluster,
        "the rollout to v2, old pods gone",
        STEP,
        |store| {
            rolled_out(store, "hostbot", 3)
                && all_pods(store, "app=hostbot").len() == 3
                && replica_sets(store, "hostbot").len() == 2
        },
    )
    .await;
    wait(
        &cluster,
        "the new pods among the endpoints",
        STEP,
        |store| endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3),
    )
    .await;
    traffic.run_for(30).await;
    let report = traffic.stop().await;

    // The new ReplicaSet has the three pods, the old one is scaled to zero.
    let sets = replica_sets(store, "hostbot");
    let new_rs = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() != Some(old_rs.as_str()))
        .and_then(|rs| rs.metadata.name.clone())
        .expect("a new ReplicaSet");
    let old: ReplicaSet = cluster.get("default", &old_rs).unwrap();
    assert_eq!(old.spec.unwrap().replicas, Some(0));
    assert_eq!(old.status.unwrap().replicas, 0);
    for pod in live_pods(store, "app=hostbot") {
        assert!(
            name(&pod).starts_with(&format!("{new_rs}-")),
            "{}",
            name(&pod)
        );
    }

    // The events show the steps: the new set scaled up, the old one down to zero.
    let steps: Vec<String> = events(store, "hostbot")
        .into_iter()
        .filter(|(reason, _)| reason == "ScalingReplicaSet")
        .map(|(_, message)| message)
        .collect();
    let up = format!("Scaled up replica set {new_rs}");
    let down = format!("Scaled down replica set {old_rs}");
    assert!(steps.iter().any(|m| m.starts_with(&up)), "{steps:#?}");
    assert!(
        steps
            .iter()
            .any(|m| m.starts_with(&down) && m.ends_with(" to 0")),
        "{steps:#?}"
    );
    let first_up = steps.iter().position(|m| m.starts_with(&up)).unwrap();
    let first_down = steps.iter().position(|m| m.starts_with(&down)).unwrap();
    assert!(
        first_up < first_down,
        "surge first (maxUnavailable 0): {steps:#?}"
    );

    // Not one failed request; both versions answered, the last answers all come from v2.
    report.assert_no_failures("a rolling update");
    let versions = report.by_version();
    assert!(
        versions.contains_key("v1") && versions.contains_key("v2"),
        "{versions:?}"
    );
    let tail = &report.answers[report.answers.len() - 10..];
    assert!(
        tail.iter().all(|body| body.contains("\"version\":\"v2\"")),
        "{tail:#?}"
    );

    forward.stop();
    shutdown(cluster).await;
}
