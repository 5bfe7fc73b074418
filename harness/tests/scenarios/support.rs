//! What every scenario test needs: a cluster running real hostbot processes, paths to the
//! shipped manifests and the fixtures, waits with deadlines that explain themselves when they
//! run out, small HTTP clients, a request loop that counts failures, and a shutdown that proves
//! no process was left behind.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use harness::cluster::{Cluster, ClusterOptions};
use harness::object::{Kind, ObjectKey};
use harness::podutil;
use harness::runtime::RuntimeKind;
use harness::selector::Selector;
use harness::store::Store;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a scenario step may take. Generous: the tests run in parallel on two cores.
pub const STEP: Duration = Duration::from_secs(60);

/// The hostbot binary beside the test executable's directory (`target/debug/hostbot`).
pub fn hostbot() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable has a path");
        // target/debug/deps/scenarios-xxxx -> target/debug/hostbot
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps");
        let path = dir.join("hostbot");
        assert!(
            path.is_file(),
            "hostbot binary not found at {}: build it first with `cargo build -p hostbot`",
            path.display()
        );
        path
    })
    .clone()
}

/// A cluster running hostbot as real processes, with short back-offs and volume syncs.
pub async fn start() -> Cluster {
    start_with(RuntimeKind::Process).await
}

/// [`start`] with a chosen runtime.
pub async fn start_with(runtime: RuntimeKind) -> Cluster {
    Cluster::start(ClusterOptions {
        runtime,
        hostbot_command: Some(vec![OsString::from(hostbot())]),
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        config_sync_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("the cluster starts")
}

/// Shuts the cluster down and checks that every container process it had is gone.
pub async fn shutdown(cluster: Cluster) {
    let pids = cluster.kubelet().container_pids();
    cluster.shutdown().await.expect("the cluster shuts down");
    let left: Vec<u32> = pids
        .into_iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "container processes outlived the cluster: {left:?}"
    );
}

/// A manifest shipped in `manifests/`.
pub fn manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .join(name)
}

/// A fixture in `harness/tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A file of the repository, relative to its root (e.g. `examples/scenarios/svc-typo.yml`).
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `kubectl apply -f` of each path, in order.
pub fn apply(cluster: &Cluster, paths: &[PathBuf]) {
    for path in paths {
        cluster
            .apply_path(path)
            .unwrap_or_else(|e| panic!("apply {}: {e}", path.display()));
    }
}

/// Waits until `condition` holds; on timeout fails with a picture of the cluster.
pub async fn wait(
    cluster: &Cluster,
    what: &str,
    timeout: Duration,
    condition: impl FnMut(&Store) -> bool,
) {
    if let Err(e) = cluster.wait_until(what, timeout, condition).await {
        panic!("{e}\n{}", describe(cluster.store()));
    }
}

/// Waits until deployment `name` is complete: `replicas` updated, ready and available pods, no
/// old ones, and nothing terminating among its pods.
pub async fn wait_rolled_out(cluster: &Cluster, name: &str, replicas: i32) {
    let what = format!("deployment {name} rolled out with {replicas} ready replicas");
    wait(cluster, &what, STEP, |store| {
        rolled_out(store, name, replicas)
    })
    .await;
}

/// Whether deployment `name` is complete with `replicas` pods (see [`wait_rolled_out`]).
pub fn rolled_out(store: &Store, name: &str, replicas: i32) -> bool {
    let Some(deploy) = store.get_as::<Deployment>("default", name) else {
        return false;
    };
    let status = deploy.status.unwrap_or_default();
    let generation = deploy.metadata.generation.unwrap_or_default();
    let selector = deploy
        .spec
        .as_ref()
        .map(|s| Selector::from_label_selector(&s.selector))
        .expect("a deployment has a spec")
        .expect("a deployment has a valid selector");
    let pods: Vec<Pod> = store.list_as(Some("default"), &selector);
    status.observed_generation == Some(generation)
        && status.replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && pods.len() == replicas as usize
        && pods.iter().all(podutil::is_pod_ready)
}

/// The pods matching a kubectl-style selector that are not being deleted.
pub fn live_pods(store: &Store, selector: &str) -> Vec<Pod> {
    let selector = Selector::parse(selector).expect("a valid selector");
    let mut pods: Vec<Pod> = store.list_as(Some("default"), &selector);
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// Every pod matching a selector, terminating ones included (what `kubectl get pods` lists).
pub fn all_pods(store: &Store, selector: &str) -> Vec<Pod> {
    let selector = Selector::parse(selector).expect("a valid selector");
    store.list_as(Some("default"), &selector)
}

/// The ready pods matching a selector, not being deleted.
pub fn ready_pods(store: &Store, selector: &str) -> Vec<Pod> {
    let mut pods = live_pods(store, selector);
    pods.retain(podutil::is_pod_ready);
    pods
}

pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

pub fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The pod's IP with `port`.
pub fn pod_addr(pod: &Pod, port: u16) -> SocketAddr {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .unwrap_or_else(|| panic!("pod {} has no IP", name(pod)));
    SocketAddr::new(ip.parse().expect("a pod IP parses"), port)
}

/// The restart count of the pod's first container.
pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

/// The ReplicaSets owned by deployment `name`.
pub fn replica_sets(store: &Store, deployment: &str) -> Vec<ReplicaSet> {
    let mut sets: Vec<ReplicaSet> = store.list_as(Some("default"), &Selector::default());
    sets.retain(|rs| {
        podutil::owner_of(&rs.metadata)
            .is_some_and(|o| o.kind == "Deployment" && o.name == deployment)
    });
    sets.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    sets
}

/// The addresses of the Endpoints `name`: (ready IPs, not-ready IPs); `None` when the object
/// does not exist.
pub fn endpoint_ips(store: &Store, name: &str) -> Option<(Vec<String>, Vec<String>)> {
    let endpoints = store.get_as::<Endpoints>("default", name)?;
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for subset in endpoints.subsets.iter().flatten() {
        ready.extend(subset.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| a.ip.clone()),
        );
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready))
}

/// The (reason, message) of the events about the object `name`, oldest first.
pub fn events(store: &Store, involved: &str) -> Vec<(String, String)> {
    let mut events: Vec<Event> = store.list_as(Some("default"), &Selector::default());
    events.retain(|e| e.involved_object.name.as_deref() == Some(involved));
    events.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    });
    events
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Changes the image of the deployment's first container, as `kubectl set image` or applying
/// an edited manifest does.
pub fn set_image(cluster: &Cluster, deployment: &str, image: &str) {
    cluster
        .store()
        .modify::<Deployment, _>("default", deployment, |d| {
            let spec = d.spec.as_mut().expect("a deployment has a spec");
            let pod = spec.template.spec.as_mut().expect("a template has a spec");
            pod.containers[0].image = Some(image.to_owned());
        })
        .unwrap_or_else(|e| panic!("set image of deployment {deployment}: {e}"));
}

/// `kubectl rollout restart deployment/NAME`: stamps the template's restartedAt annotation.
pub fn rollout_restart(cluster: &Cluster, deployment: &str) {
    let now = jiff::Timestamp::now().to_string();
    cluster
        .store()
        .modify::<Deployment, _>("default", deployment, |d| {
            let spec = d.spec.as_mut().expect("a deployment has a spec");
            let meta = spec.template.metadata.get_or_insert_with(Default::default);
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert("kubectl.kubernetes.io/restartedAt".into(), now);
        })
        .unwrap_or_else(|e| panic!("rollout restart of deployment {deployment}: {e}"));
}

/// A key for [`Cluster::delete`].
pub fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, "default", name)
}

/// A one-line-per-object picture of the cluster, for failure messages.
pub fn describe(store: &Store) -> String {
    let mut out = String::from("--- cluster state ---\n");
    let all = Selector::default();
    for d in store.list_as::<Deployment>(Some("default"), &all) {
        let s = d.status.unwrap_or_default();
        out += &format!(
            "deploy/{} gen {:?} observed {:?} replicas {:?} updated {:?} ready {:?} available {:?}\n",
            d.metadata.name.unwrap_or_default(),
            d.metadata.generation,
            s.observed_generation,
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        );
    }
    for rs in store.list_as::<ReplicaSet>(Some("default"), &all) {
        let desired = rs.spec.as_ref().and_then(|s| s.replicas);
        let s = rs.status.unwrap_or_default();
        out += &format!(
            "rs/{} desired {desired:?} current {} ready {:?} available {:?}\n",
            rs.metadata.name.unwrap_or_default(),
            s.replicas,
            s.ready_replicas,
            s.available_replicas
        );
    }
    for pod in store.list_as::<Pod>(Some("default"), &all) {
        out += &format!(
            "pod/{} phase {} ready {} restarts {} ip {:?} terminating {} labels {:?}\n",
            name(&pod),
            podutil::phase(&pod),
            podutil::is_pod_ready(&pod),
            restarts(&pod),
            pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            pod.metadata.deletion_timestamp.is_some(),
            pod.metadata.labels.clone().unwrap_or_default()
        );
    }
    for ep in store.list_as::<Endpoints>(Some("default"), &all) {
        let name = ep.metadata.name.clone().unwrap_or_default();
        out += &format!("endpoints/{name} {:?}\n", endpoint_ips(store, &name));
    }
    let mut events: Vec<Event> = store.list_as(Some("default"), &all);
    events.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    });
    for e in events.iter().rev().take(40).rev() {
        out += &format!(
            "event {} {}/{}: {} {}\n",
            e.type_.as_deref().unwrap_or_default(),
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default()
        );
    }
    out
}

/// An HTTP answer: status code and body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), within `timeout`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_answer(&raw)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// A `GET` with a 5 s deadline.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    http(addr, "GET", path, Duration::from_secs(5)).await
}

/// A `POST` (empty body) with a 5 s deadline.
pub async fn post(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    http(addr, "POST", path, Duration::from_secs(5)).await
}

/// Repeats a `GET` until it answers 200 (a listener that is being set up, a process that is
/// starting), failing after `timeout` with the last error.
pub async fn get_eventually(addr: SocketAddr, path: &str, timeout: Duration) -> Answer {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match get(addr, path).await {
            Ok(answer) if answer.status == 200 => return answer,
            Ok(answer) => format!("status {}: {}", answer.status, answer.body.trim()),
            Err(why) => why,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET http://{addr}{path} did not answer 200 within {timeout:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    if raw.is_empty() {
        return Err("connection closed without an answer".into());
    }
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("truncated answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out += &rest[..size];
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A request loop against one address: a `GET path` on a new connection every few
/// milliseconds, until stopped. Anything but a 200 answer counts as a failure.
pub struct Traffic {
    stop: CancellationToken,
    done: Arc<AtomicUsize>,
    task: JoinHandle<TrafficReport>,
}

/// What a [`Traffic`] loop saw.
#[derive(Debug, Default)]
pub struct TrafficReport {
    pub sent: usize,
    /// `(request number, why)` of every failed request.
    pub failures: Vec<(usize, String)>,
    /// The bodies of the successful answers, in order.
    pub answers: Vec<String>,
}

impl TrafficReport {
    /// How many answers came from each host (the `host` field of hostbot's `GET /`).
    pub fn by_host(&self) -> BTreeMap<String, usize> {
        self.count_field("host")
    }

    /// How many answers came from each version (the `version` field of hostbot's `GET /`).
    pub fn by_version(&self) -> BTreeMap<String, usize> {
        self.count_field("version")
    }

    fn count_field(&self, field: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for body in &self.answers {
            let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let key = value[field].as_str().unwrap_or("?").to_owned();
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    /// Fails with the first failures when there were any.
    pub fn assert_no_failures(&self, what: &str) {
        assert!(self.sent > 0, "{what}: no request was sent");
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} requests failed, first ones: {:?}",
            self.failures.len(),
            self.sent,
            &self.failures[..self.failures.len().min(5)]
        );
    }
}

impl Traffic {
    /// Starts the loop.
    pub fn start(addr: SocketAddr, path: &'static str) -> Traffic {
        let stop = CancellationToken::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (token, counter) = (stop.clone(), done.clone());
        let task = tokio::spawn(async move {
            let mut report = TrafficReport::default();
            while !token.is_cancelled() {
                let n = report.sent;
                report.sent += 1;
                match get(addr, path).await {
                    Ok(answer) if answer.status == 200 => report.answers.push(answer.body),
                    Ok(answer) => report.failures.push((
                        n,
                        format!("status {}: {}", answer.status, answer.body.trim()),
                    )),
                    Err(why) => report.failures.push((n, why)),
                }
                counter.fetch_add(1, Ordering::Relaxed);
                // Pacing, not waiting: about a hundred requests a second at most.
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
            report
        });
        Traffic { stop, done, task }
    }

    /// Requests completed so far.
    pub fn completed(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until `more` requests have completed beyond those done now, so that the loop has
    /// surely run across what just happened.
    pub async fn run_for(&self, more: usize) {
        let target = self.completed() + more;
        let deadline = tokio::time::Instant::now() + STEP;
        while self.completed() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the request loop is stuck at {} requests",
                self.completed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the loop and returns what it saw.
    pub async fn stop(self) -> TrafficReport {
        self.stop.cancel();
        self.task.await.expect("the request loop does not panic")
    }
}
