//! `kube_forward` (what `check --kubeconfig` and `harness port-forward` use) against the API:
//! every new connection to a Service goes to the next ready endpoint over per-pod SPDY
//! sessions, follows Endpoints changes, and is refused while there is none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::check::kube_ops::{self, KubeOps};
use harness::object::{Kind, Object, ObjectKey};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::support::{Cluster, TIMEOUT};

/// A line server on `ip` answering `NAME: <line>`; returns its port.
async fn named_server(ip: &str, port: u16, name: &'static str) -> u16 {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer = format!("{name}: {line}\n");
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// One connection, one line; `None` when the connection was refused or closed unanswered.
async fn ask(addr: SocketAddr, message: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("{message}\n").as_bytes())
        .await
        .ok()?;
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    let read = tokio::time::timeout(TIMEOUT, reader.read_line(&mut line))
        .await
        .expect("an answer or an end in time");
    match read {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

fn endpoints(cluster: &Cluster, port: u16, pods: &[(&str, &str)]) {
    let addresses: Vec<_> = pods
        .iter()
        .map(|(name, ip)| json!({"ip": ip, "targetRef": {"kind": "Pod", "name": name, "namespace": "default"}}))
        .collect();
    let subsets = if pods.is_empty() {
        json!([])
    } else {
        json!([{"addresses": addresses, "ports": [{"name": "http", "port": port}]}])
    };
    let object = Object::from_json(
        Kind::Endpoints,
        json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": subsets}),
    )
    .unwrap();
    let key = ObjectKey::new(Kind::Endpoints, "default", "web");
    match cluster.store.get(&key) {
        None => {
            cluster.store.create(object).unwrap();
        }
        Some(current) => {
            let mut object = object;
            object.meta_mut().resource_version = current.meta().resource_version.clone();
            cluster.store.update(object).unwrap();
        }
    }
}

/// Asks until `want(answer)` holds for an answer, with a deadline.
async fn until(addr: SocketAddr, what: &str, want: impl Fn(&Option<String>) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answer = ask(addr, "probe").await;
        if want(&answer) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: last answer {answer:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_forward_balances_and_follows_the_endpoints() {
    let cluster = Cluster::start().await;
    let port = named_server("127.0.0.2", 0, "a").await;
    named_server("127.0.0.3", port, "b").await;
    named_server("127.0.0.4", port, "c").await;
    cluster.running_pod("a", &[("app", "web")], "127.0.0.2");
    cluster.running_pod("b", &[("app", "web")], "127.0.0.3");
    let service = Object::from_json(
        Kind::Service,
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]
        }}),
    )
    .unwrap();
    cluster.store.create(service).unwrap();
    endpoints(&cluster, port, &[("a", "127.0.0.2"), ("b", "127.0.0.3")]);

    let ops = KubeOps::connect(&cluster.path("kubeconfig"), None, None)
        .await
        .unwrap();
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let addr = kube_ops::forward_service(ops, "web", 80, 0, &tracker, cancel.clone())
        .await
        .unwrap();

    // Round-robin: each new connection goes to the next pod.
    let mut seen = BTreeMap::new();
    for i in 0..10 {
        let answer = ask(addr, &i.to_string()).await.expect("an answer");
        let (pod, echo) = answer.split_once(": ").unwrap();
        assert_eq!(echo, i.to_string());
        *seen.entry(pod.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(seen, BTreeMap::from([("a".into(), 5), ("b".into(), 5)]));

    // Many connections at once share the two sessions.
    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..200).map(|i| async move { ask(addr, &format!("c{i}")).await }),
    )
    .await;
    assert!(answers.iter().all(Option::is_some), "{answers:?}");
    eprintln!(
        "200 concurrent forwarded connections in {:?}",
        started.elapsed()
    );

    // A pod leaving the endpoints gets no new connections once the watch has seen it.
    endpoints(&cluster, port, &[("b", "127.0.0.3")]);
    until(addr, "only b answers", |a| {
        a.as_deref().is_some_and(|a| a.starts_with("b:"))
    })
    .await;
    for _ in 0..4 {
        assert!(ask(addr, "x").await.unwrap().starts_with("b:"));
    }

    // No endpoints: connections are refused.
    endpoints(&cluster, port, &[]);
    until(addr, "connections refused", Option::is_none).await;

    // A new pod behind the Service, and the deleted one's session is not reused.
    cluster.running_pod("c", &[("app", "web")], "127.0.0.4");
    let gone = harness::store::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    cluster
        .store
        .delete(&ObjectKey::new(Kind::Pod, "default", "b"), gone)
        .unwrap();
    endpoints(&cluster, port, &[("c", "127.0.0.4")]);
    until(addr, "c answers", |a| {
        a.as_deref().is_some_and(|a| a.starts_with("c:"))
    })
    .await;

    // A pod port nobody listens on: the connection ends unanswered.
    endpoints(&cluster, 1, &[("c", "127.0.0.4")]);
    until(addr, "connections fail", Option::is_none).await;

    cancel.cancel();
    tracker.close();
    tokio::time::timeout(TIMEOUT, tracker.wait())
        .await
        .expect("every forward task ends after cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_session_carries_many_connections_and_big_replies() {
    let cluster = Cluster::start().await;
    // A server that sends 1 MiB and closes.
    let listener = TcpListener::bind("127.0.0.5:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 1];
                if stream.read_exact(&mut request).await.is_ok() {
                    let _ = stream.write_all(&vec![request[0]; 1 << 20]).await;
                }
            });
        }
    });
    cluster.running_pod("big", &[("app", "big")], "127.0.0.5");
    let ops = KubeOps::connect(&cluster.path("kubeconfig"), None, None)
        .await
        .unwrap();
    let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
    let session =
        harness::kube_forward::Session::open(ops.client(), "default", "big", &tracker, &cancel)
            .await
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let destination = harness::kube_forward::Destination::Pod {
        session: session.clone(),
        port,
    };
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = errors.clone();
    harness::kube_forward::serve(
        listener,
        destination,
        &tracker,
        cancel.clone(),
        std::sync::Arc::new(move |m| record.lock().unwrap().push(m)),
    );
    let fetch = |byte: u8| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&[byte]).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut all))
            .await
            .expect("the whole reply in time")
            .unwrap();
        all
    };
    let replies = futures::future::join_all((0..8u8).map(fetch)).await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.len(), 1 << 20);
        assert!(reply.iter().all(|b| usize::from(*b) == i));
    }
    assert!(errors.lock().unwrap().is_empty(), "{errors:?}");

    // The session ends with its pod.
    let gone = harness::store::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    cluster
        .store
        .delete(&ObjectKey::new(Kind::Pod, "default", "big"), gone)
        .unwrap();
    tokio::time::timeout(TIMEOUT, session.closed())
        .await
        .expect("the session ends once its pod is gone");
    assert!(session.is_closed());
    cancel.cancel();
}
