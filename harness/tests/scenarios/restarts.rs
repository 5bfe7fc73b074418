//! Containers that die or fail their probes: S17 (a killed process is restarted in the same
//! pod) and S18 (a pod that is not ready leaves the Service; one that fails its liveness probe
//! is restarted).

use std::collections::BTreeMap;
use std::path::Path;

use harness::podutil;
use k8s_openapi::api::core::v1::Pod;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s17_killed_container_restarts_in_the_same_pod() {
    let cluster = start().await;
    apply(
        &cluster,
        &[manifest("cm-hostbot.yml"), fixture("hostbot-fast.yml")],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    let store = cluster.store();
    let names: Vec<String> = live_pods(store, "app=hostbot").iter().map(name).collect();
    let pod: Pod = cluster.get("default", &names[0]).unwrap();
    let pid = cluster
        .kubelet()
        .container_pid("default", &names[0], "hostbot")
        .expect("a process runs the container");

    // kill -9 <pid>
    assert!(
        cluster
            .kubelet()
            .kill_container("default", &names[0], "hostbot")
    );

    // RESTARTS 1, the same pod, ready again, a new process.
    wait(
        &cluster,
        "the container restarted and ready",
        STEP,
        |store| {
            store
                .get_as::<Pod>("default", &names[0])
                .is_some_and(|p| restarts(&p) == 1 && podutil::is_pod_ready(&p))
        },
    )
    .await;
    let restarted: Pod = cluster.get("default", &names[0]).unwrap();
    assert_eq!(uid(&restarted), uid(&pod), "the same pod object");
    let status = restarted
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .clone();
    let last = status
        .last_state
        .and_then(|s| s.terminated)
        .expect("the last state is the killed instance");
    assert_eq!(last.exit_code, 137, "killed by SIGKILL: {last:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the old process is gone"
    );
    let new_pid = cluster
        .kubelet()
        .container_pid("default", &names[0], "hostbot")
        .expect("a new process runs the container");
    assert_ne!(new_pid, pid);
    let answer = get_eventually(pod_addr(&restarted, 80), "/", STEP).await;
    assert_eq!(answer.json()["host"], names[0].as_str());
    // No replacement pod: the ReplicaSet had nothing to do.
    let now: Vec<String> = all_pods(store, "app=hostbot").iter().map(name).collect();
    assert_eq!(now, names);

    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s18_unready_pod_gets_no_traffic_and_failing_liveness_restarts_the_container() {
    let cluster = start().await;
    apply(
        &cluster,
        &[fixture("probes.yml"), manifest("svc-hostbot.yml")],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    wait(&cluster, "three ready endpoints", STEP, |store| {
        endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;
    let store = cluster.store();
    let pods = live_pods(store, "app=hostbot");
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let local = forward.local_addrs()[0];

    // Readiness: /readyz starts failing on one pod; it leaves the endpoints and the balancer.
    let unready = &pods[0];
    let unready_ip = pod_addr(unready, 80).ip().to_string();
    let answer = post(pod_addr(unready, 80), "/readyz/disable")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let proxy = cluster.proxy().clone();
    wait(
        &cluster,
        "the unready pod out of the endpoints and the balancer",
        STEP,
        |store| {
            let out_of_endpoints =
                endpoint_ips(store, "hostbot").is_some_and(|(ready, not_ready)| {
                    ready.len() == 2 && not_ready == [unready_ip.clone()]
                });
            let backends = proxy.backends("default", "hostbot", 80);
            out_of_endpoints
                && backends.len() == 2
                && backends.iter().all(|b| b.ip().to_string() != unready_ip)
        },
    )
    .await;
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let answer = get(local, "/").await.expect("the ready pods serve");
        assert_eq!(answer.status, 200);
        *hosts
            .entry(answer.json()["host"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert!(
        !hosts.contains_key(&name(unready)),
        "the unready pod got traffic: {hosts:?}"
    );
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let still: Pod = cluster.get("default", &name(unready)).unwrap();
    assert_eq!(restarts(&still), 0, "readiness never restarts");
    assert_eq!(podutil::phase(&still), "Running");

    // Liveness: /healthz starts failing on another pod; the kubelet restarts its container,
    // whose fresh process is healthy again.
    let unhealthy = &pods[1];
    let answer = post(pod_addr(unhealthy, 80), "/healthz/disable")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait(
        &cluster,
        "the unhealthy container restarted and ready",
        STEP,
        |store| {
            store
                .get_as::<Pod>("default", &name(unhealthy))
                .is_some_and(|p| restarts(&p) >= 1 && podutil::is_pod_ready(&p))
        },
    )
    .await;
    let restarted: Pod = cluster.get("default", &name(unhealthy)).unwrap();
    assert_eq!(uid(&restarted), uid(unhealthy), "the same pod");
    let pod_events = events(store, &name(unhealthy));
    assert!(
        pod_events
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed")),
        "{pod_events:#?}"
    );
    assert!(
        pod_events
            .iter()
            .any(|(r, m)| r == "Killing" && m.contains("failed liveness probe, will be restarted")),
        "{pod_events:#?}"
    );
    let answer = get_eventually(pod_addr(&restarted, 80), "/healthz", STEP).await;
    assert_eq!(answer.status, 200);

    // Readiness back on: the pod returns to the Service.
    post(pod_addr(unready, 80), "/readyz/enable").await.unwrap();
    wait(&cluster, "all three endpoints ready again", STEP, |store| {
        endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;

    forward.stop();
    shutdown(cluster).await;
}
