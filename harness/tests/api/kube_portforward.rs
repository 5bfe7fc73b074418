//! `pods/portforward` driven by the kube crate (`Api::<Pod>::portforward`), which speaks the
//! WebSocket channel protocol (`v4.channel.k8s.io`) instead of kubectl's SPDY tunnel. No kubectl
//! is needed.

use std::time::{Duration, Instant};

use harness::check::kube_ops::KubeOps;
use harness::object::{Kind, ObjectKey};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::pong_server;
use super::support::{Cluster, TIMEOUT};

async fn pods(cluster: &Cluster) -> Api<Pod> {
    let ops = KubeOps::connect(&cluster.path("kubeconfig"), None, None)
        .await
        .expect("the kube client connects with the written kubeconfig");
    Api::namespaced(ops.client().clone(), "default")
}

/// Sends one line on a forwarded stream and reads the answer line.
async fn ask<S>(stream: &mut S, message: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(format!("{message}\n").as_bytes())
        .await
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
        .await
        .expect("an answer through the kube port-forward in time")
        .unwrap();
    line.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_port_forwards_over_the_channel_protocol() {
    let cluster = Cluster::start().await;
    let (one, two) = (pong_server().await, pong_server().await);
    cluster.running_pod("web-abc12", &[("app", "web")], &one.ip().to_string());
    let pods = pods(&cluster).await;

    // Two ports in one session, each its own stream; several exchanges on each.
    let mut forwarder = pods
        .portforward("web-abc12", &[one.port(), two.port()])
        .await
        .expect("the upgrade succeeds");
    let mut first = forwarder.take_stream(one.port()).unwrap();
    let mut second = forwarder.take_stream(two.port()).unwrap();
    for i in 0..3 {
        assert_eq!(
            ask(&mut first, &format!("a{i}")).await,
            format!("pong: a{i}")
        );
        assert_eq!(
            ask(&mut second, &format!("b{i}")).await,
            format!("pong: b{i}")
        );
    }
    // A large message comes back whole (many WebSocket messages each way).
    let big = "x".repeat(200_000);
    assert_eq!(ask(&mut first, &big).await, format!("pong: {big}"));
    drop((first, second));
    tokio::time::timeout(TIMEOUT, forwarder.join())
        .await
        .expect("the session ends once the client closes its streams")
        .expect("the session ends cleanly");

    // A port nobody listens on: the error channel says so, as the kubelet words it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let mut forwarder = pods.portforward("web-abc12", &[dead]).await.unwrap();
    let error = forwarder.take_error(dead).unwrap();
    let message = tokio::time::timeout(TIMEOUT, error)
        .await
        .expect("the error arrives in time")
        .expect("an error message, not just a closed channel");
    assert!(
        message.starts_with(&format!(
            "error forwarding port {dead} to pod web-abc12, uid "
        )),
        "{message}"
    );

    // The pod closing its side ends the stream (and the session).
    let closer = TcpListener::bind(one.ip().to_string() + ":0")
        .await
        .unwrap();
    let closer_port = closer.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = closer.accept().await.unwrap();
        socket.write_all(b"bye\n").await.unwrap();
    });
    let mut forwarder = pods.portforward("web-abc12", &[closer_port]).await.unwrap();
    let mut stream = forwarder.take_stream(closer_port).unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut all))
        .await
        .expect("EOF once the pod closed")
        .unwrap();
    assert_eq!(all, b"bye\n");

    // Unknown pods and missing ports are API errors, not hung upgrades.
    let err = pods.portforward("nope", &[80]).await.err().expect("404");
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_port_forward_ends_with_its_pod_and_sessions_are_quick() {
    let cluster = Cluster::start().await;
    let backend = pong_server().await;
    cluster.running_pod("doomed", &[("app", "web")], &backend.ip().to_string());
    let pods = pods(&cluster).await;

    // Sessions one after another, as `check --kubeconfig` opens one per connection.
    let rounds = 30;
    let started = Instant::now();
    for i in 0..rounds {
        let mut forwarder = pods.portforward("doomed", &[backend.port()]).await.unwrap();
        let mut stream = forwarder.take_stream(backend.port()).unwrap();
        assert_eq!(
            ask(&mut stream, &format!("{i}")).await,
            format!("pong: {i}")
        );
        drop(stream);
        forwarder.join().await.unwrap();
    }
    let each = started.elapsed() / rounds;
    eprintln!("kube port-forward session (upgrade, one exchange, close): {each:?} each");
    assert!(each < Duration::from_secs(1), "{each:?} per session");

    let mut forwarder = pods.portforward("doomed", &[backend.port()]).await.unwrap();
    let mut stream = forwarder.take_stream(backend.port()).unwrap();
    assert_eq!(ask(&mut stream, "before").await, "pong: before");
    let gone = harness::store::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    cluster
        .store
        .delete(&ObjectKey::new(Kind::Pod, "default", "doomed"), gone)
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the stream ends once its pod is gone")
        .unwrap();
}
