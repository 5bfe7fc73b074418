//! ConfigMaps: S13 (as an environment variable: read once at start, so a change needs a
//! `rollout restart`) and S14 (as a volume: an update reaches the running pods in place, without
//! a restart and without a failed request).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::support::*;

fn set_config(cluster: &harness::cluster::Cluster, name: &str, key: &str, value: &str) {
    cluster
        .store()
        .modify::<ConfigMap, _>("default", name, |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert(key.into(), value.into());
        })
        .unwrap_or_else(|e| panic!("edit configmap {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_configmap_env_changes_nothing_until_a_rollout_restart() {
    let cluster = start().await;
    apply(&cluster, &[fixture("configmap-env.yml")]);
    wait_rolled_out(&cluster, "hello-server", 2).await;
    let store = cluster.store();
    let before = live_pods(store, "app=hello-server");
    for pod in &before {
        get_eventually(pod_addr(pod, 8081), "/", STEP).await;
    }

    // Edit the ConfigMap's PORT and apply it.
    set_config(&cluster, "hello-server-configmap", "PORT", "5555");
    // An observation window, not a wait: several volume-sync periods in which nothing may
    // happen to the pods.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unchanged = live_pods(store, "app=hello-server");
    assert_eq!(
        unchanged.iter().map(uid).collect::<Vec<_>>(),
        before.iter().map(uid).collect::<Vec<_>>(),
        "the same pods"
    );
    for pod in &unchanged {
        assert_eq!(restarts(pod), 0, "{} restarted", name(pod));
        get(pod_addr(pod, 8081), "/")
            .await
            .expect("still listening on the old port");
        get(pod_addr(pod, 5555), "/")
            .await
            .expect_err("not yet listening on the new port");
    }

    // kubectl rollout restart deployment/hello-server
    rollout_restart(&cluster, "hello-server");
    let old: BTreeSet<String> = before.iter().map(uid).collect();
    wait(&cluster, "two new pods, the old ones gone", STEP, |store| {
        let pods = all_pods(store, "app=hello-server");
        rolled_out(store, "hello-server", 2)
            && pods.len() == 2
            && pods.iter().all(|p| !old.contains(&uid(p)))
    })
    .await;
    for pod in live_pods(store, "app=hello-server") {
        get_eventually(pod_addr(&pod, 5555), "/", STEP).await;
        get(pod_addr(&pod, 8081), "/")
            .await
            .expect_err("the new pods no longer listen on the old port");
    }

    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_configmap_volume_update_reaches_running_pods_without_a_failed_request() {
    let cluster = start().await;
    apply(&cluster, &[fixture("configmap-volume.yml")]);
    wait_rolled_out(&cluster, "hello-server", 3).await;
    wait(&cluster, "three ready endpoints", STEP, |store| {
        endpoint_ips(store, "hello-server").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;
    let store = cluster.store();
    let before = live_pods(store, "app=hello-server");
    let forward = cluster
        .port_forward("default", "svc/hello-server", &["0:80"])
        .await
        .expect("port-forward svc/hello-server");
    let traffic = Traffic::start(forward.local_addrs()[0], "/config");
    traffic.run_for(20).await;

    // Edit myconfig.txt and apply: every running pod serves the new content, in place.
    set_config(
        &cluster,
        "hello-server-configmap",
        "myconfig.txt",
        "I am full.",
    );
    for pod in &before {
        let addr = pod_addr(pod, 8080);
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let answer = get(addr, "/config").await.expect("the pod answers");
            if answer.json()["myconfig.txt"] == "I am full." {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {} still serves {}",
                name(pod),
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    traffic.run_for(30).await;
    let report = traffic.stop().await;

    report.assert_no_failures("a ConfigMap volume update");
    let first = serde_json::from_str::<serde_json::Value>(&report.answers[0]).unwrap();
    assert_eq!(first["myconfig.txt"], "I am hungry.");
    for body in &report.answers[report.answers.len() - 10..] {
        let value = serde_json::from_str::<serde_json::Value>(body).unwrap();
        assert_eq!(value["myconfig.txt"], "I am full.", "{body}");
    }
    let after = live_pods(store, "app=hello-server");
    assert_eq!(
        after.iter().map(uid).collect::<Vec<_>>(),
        before.iter().map(uid).collect::<Vec<_>>(),
        "the same pods"
    );
    assert!(after.iter().all(|p| restarts(p) == 0), "no restart");

    forward.stop();
    shutdown(cluster).await;
}
