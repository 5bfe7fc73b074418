//! The test cluster: `api::serve` on a fresh store with a [`TestNode`], a kubeconfig and a
//! discovery cache in a temp dir, and helpers to run kubectl against it.

use std::io;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use harness::api::{self, ApiOptions, ApiServer, BoxFuture, LogOptions, LogStream, NodeServices};
use harness::kubeconfig;
use harness::object::Object;
use harness::store::{EventType, Store};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether kubectl can run here; `false` means skip (outside CI).
pub fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubectl is not on PATH: the API tests need the real kubectl (v1.32)");
        }
        eprintln!("SKIPPED: kubectl is not on PATH; the API tests need the real kubectl (v1.32)");
    }
    found
}

/// The node side for tests: fixed logs, connections to the pod's `status.podIP`.
pub struct TestNode {
    pub store: Arc<Store>,
}

impl NodeServices for TestNode {
    fn logs(
        &self,
        _namespace: &str,
        pod: &str,
        options: &LogOptions,
    ) -> harness::Result<LogStream> {
        let lines: Vec<String> = (1..=3)
            .map(|i| format!("{pod}/{} line {i}\n", options.container))
            .collect();
        let keep = options.tail_lines.map_or(lines.len(), |n| {
            usize::try_from(n).unwrap_or(0).min(lines.len())
        });
        Ok(api::log_stream_from(lines[lines.len() - keep..].concat()))
    }

    fn connect<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<TcpStream>> {
        Box::pin(async move {
            let pod = self
                .store
                .get_as::<Pod>(namespace, pod)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "pod not found"))?;
            let ip = pod
                .status
                .and_then(|s| s.pod_ip)
                .ok_or_else(|| io::Error::other("the pod has no IP"))?;
            TcpStream::connect((ip.as_str(), port)).await
        })
    }
}

/// A running API server with a kubeconfig pointing at it.
pub struct Cluster {
    pub store: Arc<Store>,
    pub server: ApiServer,
    dir: tempfile::TempDir,
    pub token: String,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let store = Store::new();
        let dir = tempfile::tempdir().unwrap();
        let token = format!("token-{}", rand::random::<u64>());
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let node = Arc::new(TestNode {
            store: store.clone(),
        });
        let options = ApiOptions {
            port: 0,
            token: token.clone(),
            state_dir: dir.path().join("state"),
        };
        let server = api::serve(store.clone(), node, options, &tracker, cancel.clone())
            .await
            .unwrap();
        kubeconfig::write(
            &dir.path().join("kubeconfig"),
            &server.url(),
            server.ca_pem(),
            &token,
            "harness",
        )
        .unwrap();
        Cluster {
            store,
            server,
            dir,
            token,
            cancel,
            tracker,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.path("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_command(self.command(args), args).await
    }

    pub async fn run_command(&self, mut command: Command, args: &[&str]) -> Output {
        tokio::time::timeout(TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {TIMEOUT:?}"))
            .unwrap()
    }

    /// Runs kubectl and returns stdout, failing the test on a non-zero exit.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        let (stdout, stderr) = texts(&output);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        let (stdout, stderr) = texts(&output);
        assert!(
            !output.status.success(),
            "kubectl {args:?} should fail\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stderr
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn deployment(&self, name: &str) -> Deployment {
        self.store.get_as::<Deployment>("default", name).unwrap()
    }

    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.store.get_as::<Pod>("default", name)
    }

    /// Creates a running, ready pod in `default` with the given labels and IP.
    pub fn running_pod(&self, name: &str, labels: &[(&str, &str)], ip: &str) -> Pod {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some("nginx:1.27".into()),
                    ..Default::default()
                }],
                node_name: Some("harness".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.store.create_as(pod).unwrap();
        let (pod, ()) = self
            .store
            .modify::<Pod, _>("default", name, |pod| {
                pod.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    pod_ip: Some(ip.into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    container_statuses: Some(vec![ContainerStatus {
                        name: "web".into(),
                        image: "nginx:1.27".into(),
                        ready: true,
                        started: Some(true),
                        state: Some(ContainerState {
                            running: Some(ContainerStateRunning::default()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
            })
            .unwrap();
        pod
    }

    /// Plays the kubelet's part in deletions: a pod marked for deletion is removed at once.
    pub fn simulate_kubelet(&self) {
        let store = self.store.clone();
        let mut changes = store.subscribe();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    event = changes.recv() => event,
                };
                let Ok(event) = event else { continue };
                if let Object::Pod(pod) = event.object.as_ref()
                    && event.event_type == EventType::Modified
                    && pod.metadata.deletion_timestamp.is_some()
                {
                    let meta = &pod.metadata;
                    store.remove_terminated_pod(
                        meta.namespace.as_deref().unwrap_or_default(),
                        meta.name.as_deref().unwrap_or_default(),
                        meta.uid.as_deref().unwrap_or_default(),
                    );
                }
            }
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The whitespace-separated fields of the line starting with `first`.
pub fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
