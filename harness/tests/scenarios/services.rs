//! Services: S11 (round-robin over every ready pod, through `port-forward svc/`, the cluster IP
//! and a NodePort) and S12 (a selector typo: no endpoints, connections fail at once, fixing the
//! selector heals).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Service};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_service_round_robins_over_ready_pods_and_its_node_port_answers() {
    let cluster = start().await;
    apply(
        &cluster,
        &[
            manifest("cm-hostbot.yml"),
            fixture("hostbot-fast.yml"),
            manifest("svc-hostbot.yml"),
            fixture("svc-nodeport.yml"),
        ],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    wait(&cluster, "three ready endpoints", STEP, |store| {
        endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3)
            && endpoint_ips(store, "hostbot-nodeport").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;
    let store = cluster.store();
    let pods: BTreeSet<String> = live_pods(store, "app=hostbot").iter().map(name).collect();

    // port-forward svc/hostbot: every new connection is balanced, round-robin.
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let local = forward.local_addrs()[0];
    get_eventually(local, "/", STEP).await;
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let answer = get(local, "/")
            .await
            .expect("a request through the Service");
        assert_eq!(answer.status, 200);
        let host = answer.json()["host"].as_str().unwrap_or("?").to_owned();
        *hosts.entry(host).or_default() += 1;
    }
    assert_eq!(
        hosts.keys().cloned().collect::<BTreeSet<_>>(),
        pods,
        "{hosts:?}"
    );
    let (min, max) = (hosts.values().min().unwrap(), hosts.values().max().unwrap());
    assert!(max - min <= 1, "round-robin spreads evenly: {hosts:?}");

    // The cluster IP, as a client inside the cluster would use it.
    let service: Service = cluster.get("default", "hostbot").unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.expect("a cluster IP");
    assert_eq!(
        cluster
            .proxy()
            .cluster_ip("default", "hostbot")
            .map(|ip| ip.to_string()),
        Some(cluster_ip.clone())
    );
    let addr = SocketAddr::new(cluster_ip.parse().unwrap(), 80);
    let answer = get_eventually(addr, "/", STEP).await;
    assert!(pods.contains(answer.json()["host"].as_str().unwrap_or("?")));

    // NodePort: allocated by the cluster and reachable on 127.0.0.1:nodePort.
    wait(&cluster, "a node port", STEP, |store| {
        store
            .get_as::<Service>("default", "hostbot-nodeport")
            .and_then(|s| s.spec?.ports?.first()?.node_port)
            .is_some()
    })
    .await;
    let service: Service = cluster.get("default", "hostbot-nodeport").unwrap();
    let node_port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let addr = SocketAddr::from(([127, 0, 0, 1], node_port as u16));
    let mut seen = BTreeSet::new();
    get_eventually(addr, "/", STEP).await;
    for _ in 0..6 {
        let answer = get(addr, "/").await.expect("a request to the NodePort");
        seen.insert(answer.json()["host"].as_str().unwrap_or("?").to_owned());
    }
    assert_eq!(seen, pods, "the NodePort balances too");

    forward.stop();
    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_selector_typo_leaves_no_endpoints_until_the_selector_is_fixed() {
    let cluster = start().await;
    apply(
        &cluster,
        &[
            manifest("cm-hostbot.yml"),
            fixture("hostbot-fast.yml"),
            repo_file("examples/scenarios/svc-typo.yml"),
        ],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;

    // kubectl get endpoints hostbot: ENDPOINTS <none>.
    wait(&cluster, "endpoints without subsets", STEP, |store| {
        store
            .get_as::<Endpoints>("default", "hostbot")
            .is_some_and(|ep| ep.subsets.is_none())
    })
    .await;
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let local = forward.local_addrs()[0];
    let cluster_ip: SocketAddr = SocketAddr::new(
        cluster
            .get::<Service>("default", "hostbot")
            .and_then(|s| s.spec?.cluster_ip)
            .expect("a cluster IP")
            .parse()
            .unwrap(),
        80,
    );

    let proxy = cluster.proxy().clone();
    wait(
        &cluster,
        "the proxy listening on the cluster IP",
        STEP,
        |_| {
            proxy
                .listen_addrs("default", "hostbot")
                .contains(&cluster_ip)
        },
    )
    .await;

    // Every connection through the Service fails, promptly: reset, not left hanging.
    for addr in [local, cluster_ip] {
        for _ in 0..5 {
            let started = Instant::now();
            let outcome = http(addr, "GET", "/", Duration::from_secs(10)).await;
            let why = outcome.expect_err("no request through a Service without endpoints succeeds");
            assert!(
                !why.starts_with("no answer"),
                "{addr}: hung until the deadline: {why}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{addr}: took {:?} to fail: {why}",
                started.elapsed()
            );
        }
    }

    // Re-apply the right selector: the endpoints fill and the same forward works again.
    apply(&cluster, &[manifest("svc-hostbot.yml")]);
    wait(&cluster, "three ready endpoints", STEP, |store| {
        endpoint_ips(store, "hostbot").is_some_and(|(ready, _)| ready.len() == 3)
    })
    .await;
    get_eventually(local, "/", STEP).await;
    let traffic = Traffic::start(local, "/");
    traffic.run_for(30).await;
    let report = traffic.stop().await;
    report.assert_no_failures("after fixing the selector");
    assert_eq!(report.by_host().len(), 3, "{:?}", report.by_host());

    forward.stop();
    shutdown(cluster).await;
}
