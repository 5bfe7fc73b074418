//! The docker runtime against a real Docker engine: the hostbot image (built from the repo's
//! Dockerfile), pods as containers with their ports on the pod IP, and the scenarios that
//! matter for availability (S3, S5, S7, S10, S14); after every test no container with the
//! cluster's instance label remains.
//!
//! Needs a Docker engine: without one the tests print SKIPPED and pass, except in CI
//! (`CI=true`), where they fail.
#![cfg(feature = "docker")]

#[path = "docker/support.rs"]
mod support;

use std::time::Duration;

use harness::object::{Kind, ObjectKey};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use support::{
    IMAGE, IMAGE_V2, Traffic, addr, apply_hostbot, docker, events, get, name, pods, ready, settled,
    wait,
};

/// Engine reachable, image built, this test's turn: else return (skipped).
macro_rules! prepare {
    () => {{
        if !support::require_docker() {
            return;
        }
        support::build_image();
        support::serial().await
    }};
}

#[tokio::test]
async fn s03_three_pods_run_as_containers_on_their_pod_ips() {
    let _turn = prepare!();
    let started = std::time::Instant::now();
    let cluster = support::start().await;
    apply_hostbot(&cluster);
    wait(&cluster, "3 ready hostbot containers", |s| {
        settled(s, 3, IMAGE)
    })
    .await;
    eprintln!(
        "apply -> 3 ready containers: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let instance = cluster
        .kubelet()
        .runtime()
        .docker_instance()
        .unwrap()
        .to_owned();
    for pod in pods(cluster.store()) {
        let pod_name = name(&pod);
        // Reached at the pod IP, answering with the pod's name as its hostname.
        let (status, body) = get(addr(&pod, 80), "/").await.expect("GET / at the pod IP");
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["host"], pod_name.as_str(), "{body}");

        let status = pod.status.clone().unwrap_or_default();
        let container = &status.container_statuses.unwrap_or_default()[0];
        let id = container.container_id.clone().unwrap_or_default();
        assert!(id.starts_with("docker://"), "{id}");
        assert!(
            container.image_id.starts_with("docker://sha256:")
                || container.image_id.starts_with("docker-pullable://"),
            "{}",
            container.image_id
        );
        // The engine agrees: running, labelled, its port published on the pod IP only.
        let inspect = docker(&[
            "inspect",
            "--format",
            concat!(
                "{{.State.Running}} {{.Config.Hostname}} ",
                "{{index .Config.Labels \"harness.instance\"}} ",
                "{{(index (index .HostConfig.PortBindings \"80/tcp\") 0).HostIp}}"
            ),
            id.trim_start_matches("docker://"),
        ])
        .expect("docker inspect");
        let pod_ip = addr(&pod, 80).ip().to_string();
        assert_eq!(inspect, format!("true {pod_name} {instance} {pod_ip}"));
        // stdout reaches `kubectl logs`.
        let log = cluster
            .kubelet()
            .logs("default", &pod_name, "hostbot", false)
            .expect("a log for the running container");
        let text = String::from_utf8_lossy(&log.bytes()).into_owned();
        assert!(text.contains("listening"), "{text:?}");
    }
    support::shutdown(cluster).await;
}

#[tokio::test]
async fn s05_deleted_pod_is_replaced_without_a_failed_request() {
    let _turn = prepare!();
    let cluster = support::start().await;
    apply_hostbot(&cluster);
    wait(&cluster, "3 ready pods", |s| settled(s, 3, IMAGE)).await;
    let (forward, traffic) = traffic_through_the_service(&cluster).await;

    let victim = name(&ready(cluster.store())[0]);
    cluster
        .delete(&ObjectKey::new(Kind::Pod, "default", &victim))
        .expect("delete the pod");
    wait(
        &cluster,
        "a replacement ready and the deleted pod gone",
        |s| settled(s, 3, IMAGE) && pods(s).iter().all(|p| name(p) != victim),
    )
    .await;
    traffic.assert_no_failures("deleting a pod").await;
    drop(forward);
    support::shutdown(cluster).await;
}

#[tokio::test]
async fn s07_image_change_rolls_without_a_failed_request() {
    let _turn = prepare!();
    let cluster = support::start().await;
    apply_hostbot(&cluster);
    wait(&cluster, "3 ready pods", |s| settled(s, 3, IMAGE)).await;
    let before: Vec<String> = pods(cluster.store()).iter().map(name).collect();
    let (forward, traffic) = traffic_through_the_service(&cluster).await;

    set_image(&cluster, IMAGE_V2);
    wait(&cluster, "3 ready pods of yourname/hostbot:v2", |s| {
        settled(s, 3, IMAGE_V2)
    })
    .await;
    traffic.assert_no_failures("rolling to v2").await;
    let after = pods(cluster.store());
    assert!(
        after.iter().all(|p| !before.contains(&name(p))),
        "every pod was replaced"
    );
    for pod in &after {
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(
            status.container_statuses.unwrap_or_default()[0].image,
            IMAGE_V2
        );
    }
    drop(forward);
    support::shutdown(cluster).await;
}

#[tokio::test]
async fn s10_missing_image_fails_to_pull_and_old_pods_keep_serving() {
    let _turn = prepare!();
    let cluster = support::start().await;
    apply_hostbot(&cluster);
    wait(&cluster, "3 ready pods", |s| settled(s, 3, IMAGE)).await;
    let (forward, traffic) = traffic_through_the_service(&cluster).await;

    let missing = "yourname/hostbot:does-not-exist";
    set_image(&cluster, missing);
    let waiting_reason = |pod: &k8s_openapi::api::core::v1::Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    wait(&cluster, "a new pod in ImagePullBackOff", |s| {
        pods(s)
            .iter()
            .any(|p| waiting_reason(p).as_deref() == Some("ImagePullBackOff"))
    })
    .await;
    let stuck = pods(cluster.store())
        .into_iter()
        .find(|p| waiting_reason(p).is_some())
        .expect("the new pod");
    let seen = events(cluster.store(), &name(&stuck));
    let messages: Vec<&str> = seen.iter().map(|(_, m, _)| m.as_str()).collect();
    assert!(messages.contains(&"Error: ErrImagePull"), "{seen:?}");
    assert!(messages.contains(&"Error: ImagePullBackOff"), "{seen:?}");
    assert!(
        messages.iter().any(
            |m| m.starts_with(&format!("Failed to pull image \"{missing}\""))
                && m.contains("127.0.0.1:5000")
        ),
        "the pull failure names the image and where images come from: {seen:?}"
    );
    // The rollout is stuck, the old pods serve on.
    let old_ready = ready(cluster.store())
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(IMAGE))
        .count();
    assert_eq!(old_ready, 3);
    // The kubelet retries after the back-off, and fails again; traffic goes on meanwhile.
    let stuck_name = name(&stuck);
    wait(&cluster, "a second failed pull", |s| {
        let failures: i32 = events(s, &stuck_name)
            .iter()
            .filter(|(_, m, _)| m == "Error: ErrImagePull")
            .map(|(_, _, count)| count)
            .sum();
        failures >= 2
    })
    .await;
    traffic
        .assert_no_failures("a rollout to a missing image")
        .await;
    drop(forward);
    support::shutdown(cluster).await;
}

#[tokio::test]
async fn s14_configmap_update_reaches_the_running_containers() {
    let _turn = prepare!();
    let cluster = support::start().await;
    apply_hostbot(&cluster);
    wait(&cluster, "3 ready pods", |s| settled(s, 3, IMAGE)).await;
    let pods_before = pods(cluster.store());
    for pod in &pods_before {
        let (_, body) = get(addr(pod, 80), "/config").await.expect("GET /config");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["greeting"], "hello", "{body}");
    }

    cluster
        .store()
        .modify::<ConfigMap, _>("default", "hostbot-config", |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert("greeting".into(), "updated".into());
        })
        .expect("update the ConfigMap");
    let deadline = tokio::time::Instant::now() + support::STEP;
    for pod in &pods_before {
        loop {
            let (_, body) = get(addr(pod, 80), "/config").await.expect("GET /config");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if json["greeting"] == "updated" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {} still serves {body}",
                name(pod)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Same containers: the update arrived in place, not by a restart.
    for pod in pods(cluster.store()) {
        let status = pod.status.unwrap_or_default();
        assert_eq!(
            status.container_statuses.unwrap_or_default()[0].restart_count,
            0
        );
    }
    support::shutdown(cluster).await;
}

#[tokio::test]
async fn images_missing_locally_are_pulled_from_the_local_registry() {
    let _turn = prepare!();
    if !support::require_registry() {
        return;
    }
    // In the registry only: pushed, then removed from the engine.
    let image = format!("127.0.0.1:5000/hostbot:pull-{}", std::process::id());
    docker(&["tag", IMAGE, &image]).expect("docker tag");
    docker(&["push", &image]).expect("docker push");
    docker(&["rmi", &image]).expect("docker rmi");

    let cluster = support::start().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yml");
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: pulled
  labels: {app: hostbot}
spec:
  containers:
    - name: hostbot
      image: IMAGE
      ports: [{containerPort: 80}]
      readinessProbe: {httpGet: {path: /readyz, port: 80}, periodSeconds: 1}
"#;
    std::fs::write(&manifest, pod.replace("IMAGE", &image)).unwrap();
    cluster.apply_path(&manifest).expect("apply the pod");
    wait(&cluster, "the pod of a pulled image ready", |s| {
        ready(s).len() == 1
    })
    .await;
    let pod = ready(cluster.store()).remove(0);
    let (status, body) = get(addr(&pod, 80), "/").await.expect("GET /");
    assert_eq!(status, 200, "{body}");
    let image_id = pod.status.unwrap().container_statuses.unwrap()[0]
        .image_id
        .clone();
    assert!(
        image_id.starts_with("docker-pullable://127.0.0.1:5000/hostbot@sha256:"),
        "{image_id}"
    );
    support::shutdown(cluster).await;
    let _ = docker(&["rmi", &image]);
}

/// A panic tears the cluster down without a shutdown: the runtime's tasks are dropped with
/// their containers running. The containers must still go (testcontainers' destructors and the
/// runtime's own sweep by its instance label).
#[test]
fn a_panic_with_running_containers_leaves_none_behind() {
    if !support::require_docker() {
        return;
    }
    support::build_image();
    let (instance_tx, instance_rx) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let _turn = support::serial().await;
            let cluster = support::start().await;
            apply_hostbot(&cluster);
            wait(&cluster, "3 ready pods", |s| settled(s, 3, IMAGE)).await;
            let instance = cluster.kubelet().runtime().docker_instance().unwrap();
            instance_tx.send(instance.to_owned()).unwrap();
            panic!("a test fails with three containers running");
        })
    })
    .join();
    assert!(panicked.is_err(), "the thread panicked");
    let instance = instance_rx.recv().expect("the cluster ran");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = support::containers_of(&instance);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "containers outlived a panic: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port-forward to svc/hostbot and steady traffic through it.
async fn traffic_through_the_service(
    cluster: &harness::cluster::Cluster,
) -> (harness::portforward::PortForward, Traffic) {
    let forward = cluster
        .port_forward("default", "svc/hostbot", &["0:80"])
        .await
        .expect("port-forward svc/hostbot");
    let traffic = Traffic::start(forward.local_addrs()[0]);
    (forward, traffic)
}

/// `kubectl set image deploy/hostbot hostbot=IMAGE`.
fn set_image(cluster: &harness::cluster::Cluster, image: &str) {
    cluster
        .store()
        .modify::<Deployment, _>("default", "hostbot", |d| {
            let spec = d.spec.as_mut().expect("a deployment has a spec");
            let pod = spec.template.spec.as_mut().expect("a template has a spec");
            pod.containers[0].image = Some(image.to_owned());
        })
        .expect("set the image");
}
