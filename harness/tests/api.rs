//! The API server driven by the real kubectl: each test starts `api::serve` on a fresh store
//! (no controllers, no kubelet), writes a kubeconfig and a discovery cache into a temp dir, runs
//! kubectl commands and asserts on what kubectl prints and on what the store holds.
//!
//! kubectl must be on PATH; without it the tests are skipped loudly, except under `CI=true`
//! where that is a failure.

#[path = "api/support.rs"]
mod support;

#[path = "api/endpoint_slices.rs"]
mod endpoint_slices;
#[path = "api/kube_forward.rs"]
mod kube_forward;
#[path = "api/kube_portforward.rs"]
mod kube_portforward;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use harness::api::{self, ApiOptions};
use harness::kubeconfig;
use harness::object::{Kind, Object, ObjectKey};
use harness::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use support::{Cluster, TIMEOUT, TestNode, kubectl_available, row, texts};

const MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        env:
        - name: A
          value: \"1\"
        - name: B
          value: \"2\"
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 8080
    targetPort: 80
    nodePort: 30599
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  PORT: \"8080\"
  HOST: example
";

/// Applies [`MANIFEST`] with kubectl; the manifest's path, for later commands.
async fn apply_app(cluster: &Cluster) -> String {
    let file = cluster.write("app.yaml", MANIFEST);
    let file = file.to_str().unwrap().to_owned();
    cluster.ok(&["apply", "-f", &file]).await;
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_leaves_unchanged_then_configures() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let file = cluster.write("app.yaml", MANIFEST);
    let file = file.to_str().unwrap();

    let out = cluster.ok(&["apply", "-f", file]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    assert!(out.contains("configmap/web-config created"), "{out}");
    let deployment = cluster.deployment("web");
    let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));

    let output = cluster.run(&["apply", "-f", file]).await;
    let (out, err) = texts(&output);
    assert!(output.status.success(), "{err}");
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    assert!(out.contains("configmap/web-config unchanged"), "{out}");
    assert!(!err.contains("warning"), "apply warned: {err}");

    // Change the image, drop env B, add env C: a strategic merge patch.
    let edited = MANIFEST.replace("nginx:1.25", "nginx:1.27").replace(
        "        - name: B\n          value: \"2\"\n",
        "        - name: C\n          value: \"3\"\n",
    );
    cluster.write("app.yaml", &edited);
    let out = cluster.ok(&["apply", "-f", file]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let deployment = cluster.deployment("web");
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx:1.27"));
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["A", "C"]);
    assert_eq!(deployment.metadata.generation, Some(2));

    // diff: a server-side dry run shows the change and stores nothing.
    let output = cluster.run(&["diff", "-f", file]).await;
    assert!(output.status.success(), "{:?}", texts(&output));
    cluster.write("app.yaml", &edited.replace("nginx:1.27", "nginx:1.28"));
    let output = cluster.run(&["diff", "-f", file]).await;
    let (out, err) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("-        image: nginx:1.27") && out.contains("+        image: nginx:1.28"),
        "{out}"
    );
    let live = cluster
        .deployment("web")
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(live.containers[0].image.as_deref(), Some("nginx:1.27"));

    // Unknown fields are rejected (server-side strict validation) and nothing is written.
    let bad = cluster.write(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nspecial: 1\n",
    );
    let err = cluster.fails(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(
        err.contains("strict decoding error: unknown field \"special\""),
        "{err}"
    );
    assert!(
        cluster
            .store
            .get(&ObjectKey::new(Kind::ConfigMap, "default", "bad"))
            .is_none()
    );

    // Invalid objects come back as 422 with the field.
    let invalid = cluster.write(
        "invalid.yaml",
        &MANIFEST
            .split("---")
            .next()
            .unwrap()
            .replace("name: web\n  labels", "name: typo\n  labels")
            .replace(
                "      labels:\n        app: web",
                "      labels:\n        app: webx",
            ),
    );
    let err = cluster
        .fails(&["apply", "-f", invalid.to_str().unwrap()])
        .await;
    assert!(err.contains("The Deployment \"typo\" is invalid"), "{err}");
    assert!(err.contains("spec.template.metadata.labels"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_tables_and_every_output_format() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    apply_app(&cluster).await;
    cluster.running_pod("web-abc12", &[("app", "web")], "127.1.0.2");
    cluster.running_pod("other", &[("app", "other")], "127.1.0.3");

    let out = cluster.ok(&["get", "deploy"]).await;
    assert!(out.starts_with("NAME"), "{out}");
    for column in ["READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(out.lines().next().unwrap().contains(column), "{out}");
    }
    assert_eq!(row(&out, "web")[1..4], ["0/3", "0", "0"]);

    let out = cluster.ok(&["get", "pods"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(row(&out, "web-abc12")[1..4], ["1/1", "Running", "0"]);

    let out = cluster.ok(&["get", "pods", "-o", "wide"]).await;
    assert!(out.contains("NOMINATED NODE"), "{out}");
    assert_eq!(row(&out, "web-abc12")[5..7], ["127.1.0.2", "harness"]);

    let out = cluster.ok(&["get", "pods", "-l", "app=web"]).await;
    assert!(out.contains("web-abc12") && !out.contains("other"), "{out}");
    let out = cluster
        .ok(&["get", "pods", "--field-selector", "metadata.name=other"])
        .await;
    assert!(!out.contains("web-abc12") && out.contains("other"), "{out}");

    let out = cluster.ok(&["get", "svc"]).await;
    let web = row(&out, "web");
    assert_eq!(web[1], "NodePort");
    assert_eq!(web[4], "8080:30599/TCP");
    let out = cluster.ok(&["get", "svc", "-o", "wide"]).await;
    assert!(row(&out, "web").contains(&"app=web".to_owned()), "{out}");

    let out = cluster.ok(&["get", "cm"]).await;
    assert_eq!(row(&out, "web-config")[1], "2");

    let out = cluster.ok(&["get", "deploy", "-o", "wide"]).await;
    assert_eq!(row(&out, "web")[5..8], ["web", "nginx:1.25", "app=web"]);

    let out = cluster.ok(&["get", "all"]).await;
    for name in ["pod/web-abc12", "service/web", "deployment.apps/web"] {
        assert!(out.contains(name), "{name} missing from get all:\n{out}");
    }

    let out = cluster.ok(&["get", "deploy,cm"]).await;
    assert!(
        out.contains("deployment.apps/web") && out.contains("configmap/web-config"),
        "{out}"
    );

    let out = cluster.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    assert!(
        out.contains("image: nginx:1.25") && out.contains("kind: Deployment"),
        "{out}"
    );
    let out = cluster.ok(&["get", "pods", "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let out = cluster
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(out, "3");
    let out = cluster
        .ok(&[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,IP:.status.podIP",
        ])
        .await;
    assert_eq!(row(&out, "web-abc12"), ["web-abc12", "127.1.0.2"]);
    let out = cluster.ok(&["get", "pods", "-A"]).await;
    assert_eq!(row(&out, "default")[1], "other");
    let out = cluster.ok(&["get", "pods", "--show-labels"]).await;
    assert!(
        row(&out, "web-abc12").contains(&"app=web".to_owned()),
        "{out}"
    );
    let out = cluster
        .ok(&["get", "pods", "--sort-by", ".metadata.name"])
        .await;
    assert!(
        out.find("other").unwrap() < out.find("web-abc12").unwrap(),
        "{out}"
    );
    let out = cluster.ok(&["get", "pods", "-n", "kube-system"]).await;
    assert!(out.is_empty(), "{out}");
    let out = cluster.ok(&["get", "ns"]).await;
    assert_eq!(row(&out, "kube-system")[1], "Active");
    let out = cluster.ok(&["get", "nodes"]).await;
    assert_eq!(row(&out, "harness")[1..3], ["Ready", "control-plane"]);
    let jsonpath = "jsonpath={.items[*].status.addresses[?(@.type==\"InternalIP\")].address}";
    assert_eq!(
        cluster.ok(&["get", "nodes", "-o", jsonpath]).await,
        "127.0.0.1"
    );

    let err = cluster.fails(&["get", "deploy", "missing"]).await;
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"missing\" not found"),
        "{err}"
    );
    let err = cluster.fails(&["get", "pods", "missing"]).await;
    assert!(err.contains("pods \"missing\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_commands_patch_the_store() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    apply_app(&cluster).await;
    cluster.running_pod("web-abc12", &[("app", "web")], "127.1.0.2");

    let out = cluster
        .ok(&["label", "pod", "web-abc12", "app=moved", "--overwrite"])
        .await;
    assert!(out.contains("pod/web-abc12 labeled"), "{out}");
    let labels = cluster.pod("web-abc12").unwrap().metadata.labels.unwrap();
    assert_eq!(labels["app"], "moved");
    cluster.ok(&["label", "pod", "web-abc12", "app-"]).await;
    assert!(
        cluster
            .pod("web-abc12")
            .unwrap()
            .metadata
            .labels
            .unwrap_or_default()
            .is_empty()
    );

    let out = cluster.ok(&["scale", "deploy/web", "--replicas=5"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(cluster.deployment("web").spec.unwrap().replicas, Some(5));

    let out = cluster
        .ok(&["set", "image", "deploy/web", "web=nginx:1.28"])
        .await;
    assert!(out.contains("deployment.apps/web image updated"), "{out}");
    let spec = cluster.deployment("web").spec.unwrap();
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );

    let out = cluster.ok(&["rollout", "restart", "deploy/web"]).await;
    assert!(out.contains("deployment.apps/web restarted"), "{out}");
    let template = cluster.deployment("web").spec.unwrap().template;
    let annotations = template.metadata.unwrap().annotations.unwrap_or_default();
    assert!(
        annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "{annotations:?}"
    );

    let mut edit = cluster.command(&["edit", "deploy", "web"]);
    edit.env("EDITOR", "sed -i -e s/replicas:.5/replicas:\\ 2/");
    let output = cluster.run_command(edit, &["edit"]).await;
    let (out, err) = texts(&output);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("deployment.apps/web edited"), "{out}\n{err}");
    assert_eq!(cluster.deployment("web").spec.unwrap().replicas, Some(2));

    let object = Object::Deployment(cluster.deployment("web"));
    cluster.store.record_event(
        &object,
        "Normal",
        "ScalingReplicaSet",
        "Scaled up replica set web-1 to 2",
        "deployment-controller",
    );
    let out = cluster.ok(&["describe", "deploy", "web"]).await;
    assert!(out.contains("Name:") && out.contains("web"), "{out}");
    assert!(out.contains("Events:"), "{out}");
    assert!(out.contains("ScalingReplicaSet"), "{out}");
    assert!(out.contains("Scaled up replica set web-1 to 2"), "{out}");
    let out = cluster.ok(&["get", "events"]).await;
    assert!(out.contains("deployment/web"), "{out}");

    let out = cluster.ok(&["logs", "web-abc12"]).await;
    assert_eq!(
        out,
        "web-abc12/web line 1\nweb-abc12/web line 2\nweb-abc12/web line 3\n"
    );
    let out = cluster.ok(&["logs", "web-abc12", "--tail=1"]).await;
    assert_eq!(out, "web-abc12/web line 3\n");
    let err = cluster.fails(&["logs", "web-abc12", "-c", "nope"]).await;
    assert!(
        err.contains("container nope is not valid for pod web-abc12"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_marks_pods_and_waits_for_the_kubelet() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    cluster.running_pod("slow", &[("app", "web")], "127.1.0.2");
    let out = cluster.ok(&["delete", "pod", "slow", "--wait=false"]).await;
    assert!(out.contains("pod \"slow\" deleted"), "{out}");
    let pod = cluster
        .pod("slow")
        .expect("a graceful delete only marks the pod");
    assert!(pod.metadata.deletion_timestamp.is_some());
    let out = cluster.ok(&["get", "pods"]).await;
    assert_eq!(row(&out, "slow")[2], "Terminating");

    cluster.simulate_kubelet();
    cluster.running_pod("quick", &[("app", "web")], "127.1.0.3");
    let out = cluster.ok(&["delete", "pod", "quick"]).await;
    assert!(out.contains("pod \"quick\" deleted"), "{out}");
    assert!(cluster.pod("quick").is_none());

    let file = apply_app(&cluster).await;
    let out = cluster.ok(&["delete", "-f", &file]).await;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let err = cluster.fails(&["delete", "cm", "web-config"]).await;
    assert!(err.contains("configmaps \"web-config\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes_as_table_rows() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    cluster.running_pod("first", &[("app", "web")], "127.1.0.2");
    let mut child = cluster
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(TIMEOUT, lines.next_line())
            .await
            .expect("kubectl get -w printed nothing in time")
            .unwrap()
            .expect("kubectl get -w ended")
    };
    assert!(next_line().await.starts_with("NAME"));
    assert!(next_line().await.starts_with("first"));
    cluster.running_pod("second", &[("app", "web")], "127.1.0.3");
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("second") && l.contains("Running"))
    {
        seen.push(next_line().await);
    }
    cluster
        .store
        .delete(
            &ObjectKey::new(Kind::Pod, "default", "first"),
            harness::store::DeleteOptions::default(),
        )
        .unwrap();
    loop {
        let line = next_line().await;
        if line.starts_with("first") && line.contains("Terminating") {
            break;
        }
    }
    child.kill().await.unwrap();
}

/// A TCP server answering each line with `pong: <line>`.
async fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("pong: {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Starts `kubectl port-forward <target> :<port>` and returns it with the local port.
async fn port_forward(
    cluster: &Cluster,
    target: &str,
    remote: u16,
    websockets: bool,
) -> (tokio::process::Child, u16) {
    let spec = format!(":{remote}");
    let mut command = cluster.command(&["port-forward", target, &spec]);
    command
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("port-forward printed nothing in time")
        .unwrap();
    let Some(line) = line else {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        panic!("port-forward {target} exited: {err}");
    };
    // "Forwarding from 127.0.0.1:43210 -> 8080"
    let local = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward line {line:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, local)
}

async fn exchange(local: u16, message: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{message}\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("no answer through the port-forward")
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_the_pod_over_websocket_and_spdy() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let backend = pong_server().await;
    cluster.running_pod("web-abc12", &[("app", "web")], &backend.ip().to_string());
    let file = cluster.write(
        "app.yaml",
        &MANIFEST.replace("targetPort: 80", &format!("targetPort: {}", backend.port())),
    );
    cluster.ok(&["apply", "-f", file.to_str().unwrap()]).await;

    for (target, remote) in [
        ("pod/web-abc12", backend.port()),
        ("deploy/web", backend.port()),
        ("svc/web", 8080),
    ] {
        for websockets in [true, false] {
            let (mut child, local) = port_forward(&cluster, target, remote, websockets).await;
            for i in 0..3 {
                let answer = exchange(local, &format!("hello {i}")).await;
                assert_eq!(
                    answer,
                    format!("pong: hello {i}"),
                    "{target} websockets={websockets}"
                );
            }
            child.kill().await.unwrap();
        }
    }

    // A port nobody listens on: kubectl reports the error from the error stream.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (mut child, local) = port_forward(&cluster, "pod/web-abc12", dead_port, true).await;
    let stream = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, stream.into_split().0.read_to_end(&mut buf)).await;
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut chunk = [0u8; 4096];
    while !err.contains("error forwarding port") && Instant::now() < deadline {
        match tokio::time::timeout(TIMEOUT, stderr.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => err.push_str(&String::from_utf8_lossy(&chunk[..n])),
            _ => break,
        }
    }
    assert!(err.contains("an error occurred forwarding"), "{err}");
    assert!(
        err.contains(&format!(
            "error forwarding port {dead_port} to pod web-abc12"
        )),
        "{err}"
    );
    let _ = child.kill().await;

    // The session ends with its pod, as a real port-forward does.
    for websockets in [true, false] {
        let name = format!("doomed-{websockets}");
        cluster.running_pod(&name, &[("app", "doomed")], &backend.ip().to_string());
        let (mut child, local) =
            port_forward(&cluster, &format!("pod/{name}"), backend.port(), websockets).await;
        assert_eq!(exchange(local, "before").await, "pong: before");
        let gone = harness::store::DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        let key = ObjectKey::new(Kind::Pod, "default", &name);
        cluster.store.delete(&key, gone).unwrap();
        let status = tokio::time::timeout(TIMEOUT, child.wait())
            .await
            .expect("port-forward should exit once its pod is gone")
            .unwrap();
        assert!(!status.success());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert!(err.contains("lost connection to pod"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_are_unauthorized() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let wrong = cluster.path("wrong-kubeconfig");
    kubeconfig::write(
        &wrong,
        &cluster.server.url(),
        cluster.server.ca_pem(),
        "not-the-token",
        "harness",
    )
    .unwrap();
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(&wrong)
        .arg("--cache-dir")
        .arg(cluster.path("cache-wrong"))
        .args(["get", "pods"])
        .env_remove("KUBECONFIG");
    let output = cluster.run_command(command, &["get", "pods"]).await;
    let (_, err) = texts(&output);
    assert!(!output.status.success());
    assert!(err.contains("You must be logged in to the server"), "{err}");
    assert!(!cluster.token.is_empty());
    assert!(Path::new(&cluster.path("state").join("ca.crt")).exists());
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let store = Store::new();
    let dir = tempfile::tempdir().unwrap();
    let options = ApiOptions {
        port,
        token: "t".into(),
        state_dir: dir.path().to_owned(),
    };
    let node = Arc::new(TestNode {
        store: store.clone(),
    });
    let err = api::serve(
        store,
        node,
        options,
        &TaskTracker::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("taken"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_from_a_forgotten_version_is_gone() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let config = k8s_openapi::api::core::v1::ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("churn".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cluster.store.create_as(config).unwrap();
    // The store keeps the last 50,000 changes; make the first ones fall out of its history.
    for i in 0..50_010 {
        cluster
            .store
            .modify::<k8s_openapi::api::core::v1::ConfigMap, _>("default", "churn", |cm| {
                cm.data = Some([("i".to_owned(), i.to_string())].into());
            })
            .unwrap();
    }
    let out = cluster
        .ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1",
        ])
        .await;
    let event: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    // From a recent version the watch streams changes (here: until timeoutSeconds).
    let recent = cluster.store.resource_version() - 2;
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={recent}&timeoutSeconds=1"
    );
    let out = cluster.ok(&["get", "--raw", &path]).await;
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_created_through_the_api_are_pending_until_the_kubelet_acts() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let file = cluster.write(
        "pod.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: lonely
spec:
  containers:
  - name: web
    image: nginx:1.27
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 64Mi}
",
    );
    cluster.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    // No kubelet runs here: the status is what the API server set at creation.
    let out = cluster.ok(&["get", "pods"]).await;
    assert_eq!(row(&out, "lonely")[1..4], ["0/1", "Pending", "0"]);
    let qos = cluster
        .ok(&["get", "pod", "lonely", "-o", "jsonpath={.status.qosClass}"])
        .await;
    assert_eq!(qos, "Burstable");
}
