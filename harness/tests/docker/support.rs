//! What the docker runtime tests need: a reachable engine (or a loud skip), the hostbot image
//! built once per run, clusters on the docker runtime run one at a time (two cores), waits with
//! deadlines that describe the cluster when they run out, a tiny HTTP client and a request
//! loop, and a shutdown that proves no container was left behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use harness::cluster::{Cluster, ClusterOptions};
use harness::podutil;
use harness::runtime::RuntimeKind;
use harness::selector::Selector;
use harness::store::Store;
use k8s_openapi::api::core::v1::{Event, Pod};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long one step may take (image checks, rollouts, propagation).
pub const STEP: Duration = Duration::from_secs(90);
pub const IMAGE: &str = "yourname/hostbot:v1";
pub const IMAGE_V2: &str = "yourname/hostbot:v2";

/// The workspace root (Dockerfile, manifests/).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate is inside the workspace")
        .to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Runs `command`; an error carries its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `docker args...` in the workspace root.
pub fn docker(args: &[&str]) -> Result<String, String> {
    run(Command::new("docker").current_dir(root()).args(args))
}

/// Whether the tests can run: the engine answers. Missing in CI (`CI=true`) is a failure;
/// elsewhere a loud SKIPPED line and `false`.
pub fn require_docker() -> bool {
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(_) => true,
        Err(why) if in_ci() => panic!("the Docker engine is not reachable and CI=true: {why}"),
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the Docker engine is not reachable — start it with \
                 `tini -s -- dockerd >/tmp/dockerd.log 2>&1 &` ({why}) ***\n"
            );
            false
        }
    }
}

/// Whether the registry on 127.0.0.1:5000 answers (same rules as [`require_docker`]).
pub fn require_registry() -> bool {
    let answered = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 5000)),
        Duration::from_secs(2),
    );
    match answered {
        Ok(_) => true,
        Err(why) if in_ci() => {
            panic!("no registry on 127.0.0.1:5000 and CI=true: {why}")
        }
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: no registry on 127.0.0.1:5000 — run `docker-registry serve CONFIG` \
                 with http.addr 127.0.0.1:5000 ({why}) ***\n"
            );
            false
        }
    }
}

/// Builds the static hostbot and the `prebuilt` image as `yourname/hostbot:v1` and `v2` (the
/// same binary reporting versions v1 and v2); once per test run.
pub fn build_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        run(Command::new(cargo)
            .current_dir(root())
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args(["build", "--release", "-p", "hostbot"])
            .args(["--target", "x86_64-unknown-linux-gnu"]))?;
        for (image, version) in [(IMAGE, "VERSION=v1"), (IMAGE_V2, "VERSION=v2")] {
            docker(&[
                "build",
                "--target",
                "prebuilt",
                "--build-arg",
                version,
                "-t",
                image,
                ".",
            ])?;
        }
        Ok(())
    });
    if let Err(e) = built {
        panic!("cannot build the hostbot image: {e}");
    }
}

/// One docker cluster at a time: they share two cores with the engine.
pub async fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// A cluster on the docker runtime with short back-offs and volume syncs.
pub async fn start() -> Cluster {
    Cluster::start(ClusterOptions {
        runtime: RuntimeKind::Docker,
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        config_sync_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("a cluster starts on the docker runtime")
}

/// The containers labelled with this cluster's instance, running or not.
pub fn containers_of(instance: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=harness.instance={instance}"),
    ])
    .expect("docker ps")
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Shuts the cluster down and checks that no container of it remains.
pub async fn shutdown(cluster: Cluster) {
    let instance = cluster
        .kubelet()
        .runtime()
        .docker_instance()
        .expect("a docker cluster has an instance label")
        .to_owned();
    cluster.shutdown().await.expect("the cluster shuts down");
    let left = containers_of(&instance);
    if !left.is_empty() {
        let shown = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=harness.instance={instance}"),
            "--format",
            "{{.Names}} {{.Status}}",
        ]);
        panic!("containers outlived the cluster (harness.instance={instance}): {shown:?}");
    }
}

/// The test Deployment (hostbot-fast.yml: drains 1 s), its ConfigMap and its Service.
pub fn apply_hostbot(cluster: &Cluster) {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in [
        manifests.join("../manifests/cm-hostbot.yml"),
        manifests.join("tests/fixtures/hostbot-fast.yml"),
        manifests.join("../manifests/svc-hostbot.yml"),
    ] {
        cluster
            .apply_path(&path)
            .unwrap_or_else(|e| panic!("apply {}: {e}", path.display()));
    }
}

/// Waits until `condition` holds; on timeout fails with a picture of the pods and events.
pub async fn wait(cluster: &Cluster, what: &str, condition: impl FnMut(&Store) -> bool) {
    if let Err(e) = cluster.wait_until(what, STEP, condition).await {
        panic!("{e}\n{}", describe(cluster.store()));
    }
}

/// The pods with `app=hostbot`, terminating ones included.
pub fn pods(store: &Store) -> Vec<Pod> {
    let selector = Selector::parse("app=hostbot").expect("a valid selector");
    let mut pods: Vec<Pod> = store.list_as(Some("default"), &selector);
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// The ready `app=hostbot` pods that are not being deleted.
pub fn ready(store: &Store) -> Vec<Pod> {
    let mut pods = pods(store);
    pods.retain(|p| p.metadata.deletion_timestamp.is_none() && podutil::is_pod_ready(p));
    pods
}

/// Exactly `n` pods, all ready and none terminating, all with `image`.
pub fn settled(store: &Store, n: usize, image: &str) -> bool {
    let pods = pods(store);
    pods.len() == n
        && ready(store).len() == n
        && pods.iter().all(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
        })
}

pub fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The pod's IP with `port`.
pub fn addr(pod: &Pod, port: u16) -> SocketAddr {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .unwrap_or_else(|| panic!("pod {} has no IP", name(pod)));
    SocketAddr::new(ip.parse().expect("a pod IP parses"), port)
}

/// The (reason, message, count) of the events about `involved`, oldest first (a repeated
/// event is counted, not recorded again).
pub fn events(store: &Store, involved: &str) -> Vec<(String, String, i32)> {
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
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.unwrap_or(1),
            )
        })
        .collect()
}

/// One line per pod and the last events, for failure messages.
pub fn describe(store: &Store) -> String {
    let mut out = String::from("--- pods ---\n");
    for pod in pods(store) {
        let status = pod.status.clone().unwrap_or_default();
        let state = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| format!("{:?}", c.state))
            .collect::<Vec<_>>()
            .join("; ");
        out += &format!(
            "pod/{} ready {} terminating {} ip {:?} {state}\n",
            name(&pod),
            podutil::is_pod_ready(&pod),
            pod.metadata.deletion_timestamp.is_some(),
            status.pod_ip
        );
    }
    let mut events: Vec<Event> = store.list_as(Some("default"), &Selector::default());
    events.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    });
    for e in events.iter().rev().take(30).rev() {
        out += &format!(
            "event {}: {} {}\n",
            e.involved_object.name.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default()
        );
    }
    out
}

/// `GET path` on a new connection within 5 s: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("truncated answer: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer within 5s".into()))
}

/// A `GET /` on a new connection every 10 ms until stopped; anything but 200 is a failure.
pub struct Traffic {
    stop: CancellationToken,
    task: JoinHandle<(usize, Vec<String>)>,
}

impl Traffic {
    pub fn start(addr: SocketAddr) -> Traffic {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let (mut sent, mut failures) = (0, Vec::new());
            while !token.is_cancelled() {
                sent += 1;
                match get(addr, "/").await {
                    Ok((200, _)) => {}
                    Ok((status, body)) => failures.push(format!("#{sent}: {status} {body}")),
                    Err(why) => failures.push(format!("#{sent}: {why}")),
                }
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
            (sent, failures)
        });
        Traffic { stop, task }
    }

    /// Stops the loop and fails on any failed request.
    pub async fn assert_no_failures(self, what: &str) {
        self.stop.cancel();
        let (sent, failures) = self.task.await.expect("the request loop does not panic");
        assert!(sent > 10, "{what}: only {sent} requests were sent");
        assert!(
            failures.is_empty(),
            "{what}: {} of {sent} requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
}
