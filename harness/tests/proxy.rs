//! The Service proxy and port-forward, in process: tiny TCP backends on their own 127.x
//! addresses stand in for pods, and Services, Endpoints and Pods are written straight into a
//! `Store`. Each test uses its own address block (127.210.N.x for backends, 127.211.N.x for
//! cluster IPs) so tests can run in parallel.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::Error;
use harness::ipam::{Ipam, IpamConfig};
use harness::object::{Kind, ObjectKey};
use harness::portforward::{self, PortForward, PortPair, Request, Target};
use harness::proxy::{FAILED_TO_LISTEN, ProxyOptions, ServiceProxy};
use harness::selector::Selector;
use harness::store::{DeleteOptions, Store};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Service};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const DEADLINE: Duration = Duration::from_secs(5);

/// A running store and proxy for one test.
struct Cluster {
    store: Arc<Store>,
    proxy: Arc<ServiceProxy>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    block: u8,
}

impl Cluster {
    fn new(block: u8) -> Cluster {
        Cluster::with_options(block, ProxyOptions::default())
    }

    fn with_options(block: u8, options: ProxyOptions) -> Cluster {
        let store = Store::new();
        let ipam = Arc::new(Ipam::with_config(IpamConfig {
            service_ips: Ipv4Addr::new(127, 211, block, 1)..=Ipv4Addr::new(127, 211, block, 254),
            node_ports: (30000 + u16::from(block) * 40)..=(30039 + u16::from(block) * 40),
            seed: rand::random(),
            ..IpamConfig::default()
        }));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let proxy =
            ServiceProxy::spawn_with(store.clone(), ipam, options, &tracker, cancel.clone());
        Cluster {
            store,
            proxy,
            cancel,
            tracker,
            block,
        }
    }

    /// Starts a port-forward with this cluster's store and proxy.
    async fn forward(&self, request: Request) -> harness::Result<PortForward> {
        let (store, proxy) = (self.store.clone(), self.proxy.clone());
        portforward::start(store, proxy, request, self.cancel.clone(), &self.tracker).await
    }

    /// A backend answering each line with `name`, on 127.210.BLOCK.i:8080.
    async fn backend(&self, i: u8) -> SocketAddr {
        let addr = SocketAddr::from(([127, 210, self.block, i], 8080));
        let listener = TcpListener::bind(addr).await.expect("backend binds");
        let name = name_of(addr);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let name = name.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(_)) = lines.next_line().await {
                        if write
                            .write_all(format!("{name}\n").as_bytes())
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

    fn create(&self, value: serde_json::Value) {
        let kind = Kind::from_type_meta(
            value["apiVersion"].as_str().unwrap(),
            value["kind"].as_str().unwrap(),
        )
        .unwrap();
        let object = harness::object::Object::from_json(kind, value).unwrap();
        self.store.create(object).expect("object accepted");
    }

    fn service(&self, name: &str, spec: serde_json::Value) {
        self.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}));
    }

    /// Creates or replaces the Endpoints `name` with one subset: `ready`, `not_ready`, port 8080.
    fn endpoints(&self, name: &str, ready: &[SocketAddr], not_ready: &[SocketAddr]) {
        let ips = |addrs: &[SocketAddr]| -> Vec<serde_json::Value> {
            addrs
                .iter()
                .map(|a| json!({"ip": a.ip().to_string()}))
                .collect()
        };
        let subsets = if ready.is_empty() && not_ready.is_empty() {
            json!([])
        } else {
            json!([{"addresses": ips(ready), "notReadyAddresses": ips(not_ready), "ports": [{"name": "http", "port": 8080}]}])
        };
        let endpoints: Endpoints =
            serde_json::from_value(json!({"metadata": {"name": name}, "subsets": subsets}))
                .unwrap();
        if self.store.get_as::<Endpoints>("default", name).is_some() {
            self.store
                .modify::<Endpoints, _>("default", name, |e| e.subsets = endpoints.subsets.clone())
                .unwrap();
        } else {
            self.store.create_as(endpoints).unwrap();
        }
    }

    /// The cluster IP written into the Service, once allocated and served.
    async fn cluster_ip(&self, name: &str) -> IpAddr {
        wait_for(&format!("a cluster IP for {name}"), || async {
            let spec_ip = self
                .store
                .get_as::<Service>("default", name)?
                .spec?
                .cluster_ip?
                .parse::<IpAddr>()
                .ok()?;
            (self.proxy.cluster_ip("default", name) == Some(spec_ip)).then_some(spec_ip)
        })
        .await
    }

    async fn wait_backends(&self, service: &str, port: u16, want: &[SocketAddr]) {
        let mut want = want.to_vec();
        want.sort();
        wait_for(&format!("backends {want:?}"), || async {
            let mut got = self.proxy.backends("default", service, port);
            got.sort();
            (got == want).then_some(())
        })
        .await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}

/// Polls `probe` until it yields a value, or panics after the deadline naming `what`.
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection speaking the backends' line protocol.
struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        let (read, write) = stream.into_split();
        Client {
            lines: BufReader::new(read).lines(),
            write,
        }
    }

    async fn connect(addr: SocketAddr) -> io::Result<Client> {
        Ok(Client::new(TcpStream::connect(addr).await?))
    }

    /// Connects from a chosen source address (for session affinity).
    async fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<Client> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        Ok(Client::new(socket.connect(addr).await?))
    }

    /// Which backend answers; an error when the connection was reset or closed. Never hangs
    /// past the deadline.
    async fn ask(&mut self) -> io::Result<String> {
        let exchange = async {
            self.write.write_all(b"?\n").await?;
            self.lines
                .next_line()
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))
        };
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .expect("an answer or an error, not a hang")
    }
}

/// One request on a new connection.
async fn ask_once(addr: SocketAddr) -> io::Result<String> {
    Client::connect(addr).await?.ask().await
}

/// The name the backend at `addr` answers with.
fn name_of(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("backend-{}", ip.octets()[3]),
        IpAddr::V6(_) => unreachable!("backends are IPv4"),
    }
}

fn count(names: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for n in names {
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

fn http_service() -> serde_json::Value {
    json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]})
}

#[tokio::test]
async fn round_robin_spreads_over_ready_endpoints() {
    let c = Cluster::new(1);
    let ready = [c.backend(1).await, c.backend(2).await, c.backend(3).await];
    let not_ready = c.backend(4).await;
    c.service("web", http_service());
    c.endpoints("web", &ready, &[not_ready]);
    let ip = c.cluster_ip("web").await;
    c.wait_backends("web", 80, &ready).await;

    let mut names = Vec::new();
    for _ in 0..9 {
        names.push(ask_once(SocketAddr::new(ip, 80)).await.unwrap());
    }
    let counts = count(names.clone());
    assert_eq!(
        counts,
        BTreeMap::from([
            ("backend-1".into(), 3),
            ("backend-2".into(), 3),
            ("backend-3".into(), 3)
        ]),
        "per-connection round-robin over ready endpoints only: {names:?}"
    );
    // Strict rotation: no backend twice in a row.
    assert!(names.windows(2).all(|w| w[0] != w[1]), "{names:?}");

    // The accessor picks exactly as a new connection does.
    let mut via_connect = Vec::new();
    for _ in 0..6 {
        let stream = c.proxy.connect("default", "web", 80).await.unwrap();
        via_connect.push(Client::new(stream).ask().await.unwrap());
    }
    assert!(count(via_connect).values().all(|&n| n == 2));
}

#[tokio::test]
async fn endpoint_removal_only_affects_new_connections() {
    let c = Cluster::new(2);
    let (b1, b2) = (c.backend(1).await, c.backend(2).await);
    c.service("web", http_service());
    c.endpoints("web", &[b1, b2], &[]);
    let ip = c.cluster_ip("web").await;
    c.wait_backends("web", 80, &[b1, b2]).await;
    let addr = SocketAddr::new(ip, 80);

    let mut established = Client::connect(addr).await.unwrap();
    let pinned = established.ask().await.unwrap();
    let (kept, removed) = if pinned == "backend-1" {
        (b2, b1)
    } else {
        (b1, b2)
    };
    c.endpoints("web", &[kept], &[removed]);
    c.wait_backends("web", 80, &[kept]).await;

    for _ in 0..5 {
        assert_eq!(
            established.ask().await.unwrap(),
            pinned,
            "established connection stays"
        );
    }
    let kept_name = name_of(kept);
    for _ in 0..4 {
        assert_eq!(
            ask_once(addr).await.unwrap(),
            kept_name,
            "new connections avoid the removed endpoint"
        );
    }
}

#[tokio::test]
async fn no_endpoints_fails_promptly_and_heals() {
    let c = Cluster::new(3);
    let b1 = c.backend(1).await;
    c.service("web", http_service());
    let ip = c.cluster_ip("web").await;
    let addr = SocketAddr::new(ip, 80);

    // No Endpoints object at all, then an empty one (a selector typo): reset at once.
    for round in 0..2 {
        let started = Instant::now();
        let result = ask_once(addr).await;
        assert!(
            result.is_err(),
            "round {round}: expected a failure, got {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: took {:?}",
            started.elapsed()
        );
        let err = c.proxy.connect("default", "web", 80).await.unwrap_err();
        assert!(err.to_string().contains("no ready endpoints"), "{err}");
        c.endpoints("web", &[], &[b1]);
        c.wait_backends("web", 80, &[]).await;
    }
    c.endpoints("web", &[b1], &[]);
    c.wait_backends("web", 80, &[b1]).await;
    assert_eq!(ask_once(addr).await.unwrap(), "backend-1");
}

#[tokio::test]
async fn refused_backend_resets_or_retries_when_asked() {
    let dead = SocketAddr::from(([127, 210, 4, 9], 8080));
    for retry in [false, true] {
        let c = Cluster::with_options(
            4 + u8::from(retry) * 10,
            ProxyOptions {
                retry_refused: retry,
                ..ProxyOptions::default()
            },
        );
        let alive = c.backend(1).await;
        c.service("web", http_service());
        c.endpoints("web", &[dead, alive], &[]);
        let ip = c.cluster_ip("web").await;
        c.wait_backends("web", 80, &[dead, alive]).await;
        let results: Vec<bool> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(ask_once(SocketAddr::new(ip, 80)).await.is_ok());
            }
            v
        };
        let ok = results.iter().filter(|&&ok| ok).count();
        if retry {
            assert_eq!(ok, 4, "retry hides the refused backend: {results:?}");
        } else {
            assert_eq!(
                ok, 2,
                "IPVS-like: every other connection fails: {results:?}"
            );
        }
    }
}

#[tokio::test]
async fn session_affinity_keeps_a_client_on_its_backend() {
    let c = Cluster::new(5);
    let backends = [c.backend(1).await, c.backend(2).await, c.backend(3).await];
    c.service(
        "web",
        json!({"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    );
    c.endpoints("web", &backends, &[]);
    let ip = c.cluster_ip("web").await;
    c.wait_backends("web", 80, &backends).await;
    let addr = SocketAddr::new(ip, 80);
    let client_a: IpAddr = [127, 212, 5, 1].into();

    let first = Client::connect_from(client_a, addr)
        .await
        .unwrap()
        .ask()
        .await
        .unwrap();
    for _ in 0..5 {
        let again = Client::connect_from(client_a, addr)
            .await
            .unwrap()
            .ask()
            .await
            .unwrap();
        assert_eq!(again, first, "same client IP, same backend");
    }
    let mut others = Vec::new();
    for i in 2..8 {
        let client: IpAddr = [127, 212, 5, i].into();
        others.push(
            Client::connect_from(client, addr)
                .await
                .unwrap()
                .ask()
                .await
                .unwrap(),
        );
    }
    assert!(count(others).len() > 1, "different clients still spread");

    // Its backend leaves: the client moves to a ready one and stays there.
    let remaining: Vec<SocketAddr> = backends
        .iter()
        .copied()
        .filter(|b| name_of(*b) != first)
        .collect();
    c.endpoints("web", &remaining, &[]);
    c.wait_backends("web", 80, &remaining).await;
    let moved = Client::connect_from(client_a, addr)
        .await
        .unwrap()
        .ask()
        .await
        .unwrap();
    assert_ne!(moved, first);
    let again = Client::connect_from(client_a, addr)
        .await
        .unwrap()
        .ask()
        .await
        .unwrap();
    assert_eq!(again, moved);
}

#[tokio::test]
async fn node_port_listens_and_port_changes_move_listeners() {
    let c = Cluster::new(6);
    let b1 = c.backend(1).await;
    c.service(
        "web",
        json!({"type": "NodePort", "selector": {"app": "web"},
               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    );
    c.endpoints("web", &[b1], &[]);
    let ip = c.cluster_ip("web").await;
    let service = c.store.get_as::<Service>("default", "web").unwrap();
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
    let node_port = spec.ports.unwrap()[0]
        .node_port
        .expect("nodePort allocated");
    assert!(
        (30240..=30279).contains(&node_port),
        "from the configured range: {node_port}"
    );
    let node_addr = SocketAddr::from(([127, 0, 0, 1], node_port as u16));
    c.wait_backends("web", 80, &[b1]).await;
    let answer = wait_for("the NodePort listener", || async {
        ask_once(node_addr).await.ok()
    })
    .await;
    assert_eq!(answer, "backend-1");
    assert_eq!(
        ask_once(SocketAddr::new(ip, 80)).await.unwrap(),
        "backend-1"
    );

    // Port 80 -> 81: the old listener closes, the new one serves.
    c.store
        .modify::<Service, _>("default", "web", |s| {
            s.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 81;
        })
        .unwrap();
    let answer = wait_for("port 81", || async {
        ask_once(SocketAddr::new(ip, 81)).await.ok()
    })
    .await;
    assert_eq!(answer, "backend-1");
    wait_for("port 80 to close", || async {
        TcpStream::connect(SocketAddr::new(ip, 80))
            .await
            .is_err()
            .then_some(())
    })
    .await;

    // Deleting the Service closes every listener.
    c.store
        .delete(
            &ObjectKey::new(Kind::Service, "default", "web"),
            DeleteOptions::default(),
        )
        .unwrap();
    wait_for("listeners to close", || async {
        let closed = TcpStream::connect(SocketAddr::new(ip, 81)).await.is_err()
            && TcpStream::connect(node_addr).await.is_err();
        closed.then_some(())
    })
    .await;
    assert_eq!(c.proxy.cluster_ip("default", "web"), None);
}

#[tokio::test]
async fn taken_node_port_is_reported_as_an_event_and_retried() {
    let c = Cluster::new(7);
    let b1 = c.backend(1).await;
    // Some other process holds a port in the NodePort range.
    let mut blocker = None;
    for port in 32_600..32_767u16 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            blocker = Some(l);
            break;
        }
    }
    let blocker = blocker.expect("a free port to block");
    let taken = blocker.local_addr().unwrap().port();
    c.service(
        "web",
        json!({"type": "NodePort", "selector": {"app": "web"},
               "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": taken}]}),
    );
    c.endpoints("web", &[b1], &[]);
    let ip = c.cluster_ip("web").await;
    let message = wait_for("a FailedToListen event", || async {
        c.store
            .list_as::<Event>(Some("default"), &Selector::default())
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(FAILED_TO_LISTEN))
            .and_then(|e| e.message)
    })
    .await;
    assert!(message.contains("address already in use"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{taken}")), "{message}");
    assert!(message.contains("service \"default/web\""), "{message}");
    // The cluster IP port is unaffected.
    assert_eq!(
        ask_once(SocketAddr::new(ip, 80)).await.unwrap(),
        "backend-1"
    );
    // Once the port is free the proxy binds it.
    drop(blocker);
    let answer = wait_for("the retried NodePort", || async {
        ask_once(SocketAddr::from(([127, 0, 0, 1], taken)))
            .await
            .ok()
    })
    .await;
    assert_eq!(answer, "backend-1");
}

/// A running pod object for `backend`, labelled `app: web`.
fn create_pod(c: &Cluster, name: &str, backend: SocketAddr, phase: &str) {
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "hostbot", "ports": [{"name": "http", "containerPort": 8080}]}]}
    }));
    let status = json!({
        "phase": phase, "podIP": backend.ip().to_string(),
        "conditions": [{"type": "Ready", "status": if phase == "Running" { "True" } else { "False" }}]
    });
    c.store
        .modify::<Pod, _>("default", name, |p| {
            p.status = Some(serde_json::from_value(status).unwrap())
        })
        .unwrap();
}

/// A port-forward request to `target` (`pod/web-1`, `svc/web`, ...) in `default`.
fn request(target: &str, ports: Vec<PortPair>) -> Request {
    Request::new("default", Target::parse(target).unwrap(), ports)
}

fn any_port(remote: u16) -> Vec<PortPair> {
    vec![PortPair { local: 0, remote }]
}

#[tokio::test]
async fn port_forward_to_a_pod_ends_when_the_pod_is_deleted() {
    let c = Cluster::new(8);
    let b1 = c.backend(1).await;
    create_pod(&c, "web-1", b1, "Running");
    let forward = c
        .forward(request("pod/web-1", any_port(8080)))
        .await
        .unwrap();
    assert_eq!(forward.pod(), Some("web-1"));
    let local = forward.local_addrs()[0];
    assert_eq!(local.ip(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(forward.forwards()[0].pod_port, 8080);
    let mut open = Client::connect(local).await.unwrap();
    assert_eq!(open.ask().await.unwrap(), "backend-1");
    assert_eq!(ask_once(local).await.unwrap(), "backend-1");

    let options = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    c.store
        .delete(&ObjectKey::new(Kind::Pod, "default", "web-1"), options)
        .unwrap();
    let reason = tokio::time::timeout(DEADLINE, forward.wait())
        .await
        .expect("the forward ends");
    let reason = reason.expect("ended because of the pod");
    assert!(
        reason.contains("lost connection to pod \"web-1\""),
        "{reason}"
    );
    assert!(TcpStream::connect(local).await.is_err(), "listener closed");
    assert!(open.ask().await.is_err(), "forwarded connections closed");
}

#[tokio::test]
async fn port_forward_svc_survives_backend_changes_unlike_pinned() {
    let c = Cluster::new(9);
    let (b1, b2) = (c.backend(1).await, c.backend(2).await);
    create_pod(&c, "web-1", b1, "Running");
    c.service("web", http_service());
    c.endpoints("web", &[b1], &[]);
    c.wait_backends("web", 80, &[b1]).await;

    let svc = request("svc/web", any_port(80));
    let forward = c.forward(svc.clone()).await.unwrap();
    assert_eq!(forward.pod(), None);
    assert_eq!(forward.forwards()[0].pod_port, 8080, "targetPort shown");
    let pinned = Request {
        pinned: true,
        ..svc
    };
    let pinned = c.forward(pinned).await.unwrap();
    assert_eq!(pinned.pod(), Some("web-1"));
    let (local, pinned_local) = (forward.local_addrs()[0], pinned.local_addrs()[0]);
    assert_eq!(ask_once(local).await.unwrap(), "backend-1");
    assert_eq!(ask_once(pinned_local).await.unwrap(), "backend-1");

    // A rolling update: web-1 replaced by web-2.
    create_pod(&c, "web-2", b2, "Running");
    c.endpoints("web", &[b2], &[]);
    let options = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    c.store
        .delete(&ObjectKey::new(Kind::Pod, "default", "web-1"), options)
        .unwrap();
    c.wait_backends("web", 80, &[b2]).await;
    for _ in 0..3 {
        assert_eq!(
            ask_once(local).await.unwrap(),
            "backend-2",
            "svc/ follows the Service"
        );
    }
    let reason = tokio::time::timeout(DEADLINE, pinned.wait()).await.unwrap();
    assert!(
        reason.unwrap().contains("lost connection to pod"),
        "pinned ends like kubectl"
    );
    assert!(!forward.is_ended());
    forward.stop();
    assert_eq!(
        tokio::time::timeout(DEADLINE, forward.wait())
            .await
            .unwrap(),
        None
    );
    assert!(TcpStream::connect(local).await.is_err());
}

#[tokio::test]
async fn port_forward_deploy_picks_a_running_ready_pod() {
    let c = Cluster::new(10);
    let (b1, b2) = (c.backend(1).await, c.backend(2).await);
    create_pod(&c, "web-a", b1, "Pending");
    create_pod(&c, "web-b", b2, "Running");
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "hostbot"}]}}}
    }));
    assert!(c.store.get_as::<Deployment>("default", "web").is_some());
    let forward = c
        .forward(request("deploy/web", any_port(8080)))
        .await
        .unwrap();
    assert_eq!(forward.pod(), Some("web-b"));
    assert_eq!(
        ask_once(forward.local_addrs()[0]).await.unwrap(),
        "backend-2"
    );
}

#[tokio::test]
async fn port_forward_errors_are_clear() {
    let c = Cluster::new(11);
    let b1 = c.backend(1).await;
    create_pod(&c, "web-pending", b1, "Pending");
    create_pod(&c, "web-1", b1, "Running");
    let start = |target: &str, ports: Vec<PortPair>| c.forward(request(target, ports));

    let err = start("pod/missing", any_port(80)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert_eq!(err.to_string(), "pod \"missing\" not found");
    let err = start("deploy/missing", any_port(80)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");

    let err = start("pod/web-pending", any_port(80)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to forward port because pod \"web-pending\" is not running (phase Pending)"
    );

    let blocker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let err = start(
        "pod/web-1",
        vec![PortPair {
            local: taken,
            remote: 8080,
        }],
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("unable to listen on port {taken}:")),
        "{message}"
    );
    assert!(message.ends_with("address already in use"), "{message}");

    c.service("web", http_service());
    let err = start("svc/web", any_port(8080)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "service \"web\" does not have a service port 8080"
    );
}

#[tokio::test]
async fn concurrent_connections_balance_and_echo_bulk_data() {
    // A larger payload through the proxy: bytes arrive intact in both directions.
    let c = Cluster::new(12);
    let addr = SocketAddr::from(([127, 210, 12, 1], 8080));
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    c.service("echo", http_service());
    c.endpoints("echo", &[addr], &[]);
    let ip = c.cluster_ip("echo").await;
    c.wait_backends("echo", 80, &[addr]).await;
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let payload = payload.clone();
        handles.push(tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let stream = TcpStream::connect(SocketAddr::new(ip, 80)).await.unwrap();
            let (mut r, mut w) = stream.into_split();
            let expected = payload.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            assert!(got == expected, "echoed bytes differ");
        }));
    }
    for h in handles {
        tokio::time::timeout(DEADLINE, h).await.unwrap().unwrap();
    }
}
