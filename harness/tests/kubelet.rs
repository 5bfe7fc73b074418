//! The kubelet against real hostbot processes: pods run and answer on their own IP, volumes are
//! projected with kubelet's layout and updated in place, env comes from ConfigMaps, images that
//! do not exist back off, crashed and unhealthy containers restart, deletion runs preStop then
//! SIGTERM then SIGKILL, and nothing outlives the kubelet (not even a SIGKILLed harness).
//!
//! Time scales are shortened (back-off 200 ms, volume sync 100 ms); every wait is a condition
//! polled against a deadline.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use harness::ipam::Ipam;
use harness::kubelet::{self, Kubelet, KubeletOptions};
use harness::object::{Kind, ObjectKey};
use harness::runtime::RuntimeKind;
use harness::runtime::catalog::Catalog;
use harness::selector::Selector;
use harness::store::{DeleteOptions, Store};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
    EnvVarSource, Event, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, Pod, PodSpec,
    Probe, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The hostbot binary, built once if it is missing.
fn hostbot() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/debug/deps/kubelet-xxxx -> target/debug/hostbot
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        let path = dir.join("hostbot");
        if !path.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "hostbot"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo build -p hostbot failed");
        }
        assert!(
            path.exists(),
            "hostbot binary not found at {}",
            path.display()
        );
        path
    })
    .clone()
}

struct Fixture {
    store: Arc<Store>,
    kubelet: Arc<Kubelet>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    state: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_runtime(RuntimeKind::Process)
    }

    fn with_runtime(runtime: RuntimeKind) -> Fixture {
        let state = tempfile::tempdir().unwrap();
        let store = Store::new();
        let ipam = Arc::new(Ipam::new(rand::random()));
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let options = KubeletOptions {
            runtime,
            hostbot_command: vec![OsString::from(hostbot())],
            catalog: Catalog::builtin(),
            state_dir: state.path().to_path_buf(),
            config_sync_delay: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            node_name: "harness".into(),
        };
        let kubelet = kubelet::spawn(store.clone(), ipam, options, &tracker, cancel.clone());
        Fixture {
            store,
            kubelet,
            cancel,
            tracker,
            state,
        }
    }

    fn pod(&self, name: &str) -> Option<Pod> {
        self.store.get_as::<Pod>("default", name)
    }

    /// The process id of pod `name`'s running hostbot container.
    fn pid(&self, name: &str) -> u32 {
        self.kubelet
            .container_pid("default", name, "hostbot")
            .unwrap_or_else(|| panic!("pod {name} has no running container"))
    }

    /// Polls `check` on the pod until it returns `Some`, or fails after `secs` seconds with the
    /// pod's last status.
    async fn wait_pod<T>(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        check: impl Fn(&Pod) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let pod = self.pod(name);
            if let Some(found) = pod.as_ref().and_then(&check) {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what} on pod {name}; status: {}\nevents: {:#?}",
                    pod.and_then(|p| p.status)
                        .map(|s| serde_json::to_string_pretty(&s).unwrap())
                        .unwrap_or_default(),
                    self.events(name)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_gone(&self, name: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.pod(name).is_some() {
            assert!(Instant::now() < deadline, "pod {name} was not removed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&self, name: &str) -> Pod {
        self.wait_pod(name, 20, "Ready", |p| ready(p).then(|| p.clone()))
            .await
    }

    fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let mut events: Vec<Event> = self.store.list_as(Some("default"), &Selector::default());
        events.retain(|e| e.involved_object.name.as_deref() == Some(name));
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
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect()
    }

    fn has_event(&self, name: &str, reason: &str, message: &str) -> bool {
        self.events(name)
            .iter()
            .any(|(_, r, m)| r == reason && m == message)
    }

    async fn wait_event(&self, name: &str, reason: &str, message: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.has_event(name, reason, message) {
            assert!(
                Instant::now() < deadline,
                "no event {reason} {message:?} for {name}; events: {:#?}",
                self.events(name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn delete(&self, name: &str, grace: Option<i64>) {
        self.store
            .delete(
                &ObjectKey::new(Kind::Pod, "default", name),
                DeleteOptions {
                    grace_period_seconds: grace,
                    ..Default::default()
                },
            )
            .unwrap();
    }

    async fn shutdown(self) -> tempfile::TempDir {
        self.cancel.cancel();
        self.kubelet.shutdown().await;
        self.tracker.close();
        self.tracker.wait().await;
        self.state
    }
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn container_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.first()
}

fn waiting_reason(pod: &Pod) -> Option<(String, String)> {
    let waiting = container_status(pod)?.state.as_ref()?.waiting.as_ref()?;
    Some((
        waiting.reason.clone().unwrap_or_default(),
        waiting.message.clone().unwrap_or_default(),
    ))
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().unwrap().pod_ip.clone().unwrap()
}

fn hostbot_container(image: &str, port: i32) -> Container {
    Container {
        name: "hostbot".into(),
        image: Some(image.into()),
        ports: Some(vec![ContainerPort {
            container_port: port,
            ..Default::default()
        }]),
        env: Some(vec![
            env("DRAIN_DELAY", "100ms"),
            env("CONFIG_POLL_INTERVAL", "200ms"),
        ]),
        ..Default::default()
    }
}

/// A hostbot that ignores SIGTERM: only SIGKILL ends it.
fn stubborn_container() -> Container {
    let mut container = hostbot_container("hostbot:1", 8080);
    container
        .env
        .as_mut()
        .unwrap()
        .push(env("IGNORE_SIGTERM", "true"));
    container
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn pod(name: &str, container: Container) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Volume `name`, projecting ConfigMap `config_map`.
fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Volume `volume`, mounted whole at `path`.
fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn http_probe(path: &str, port: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Default::default()
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::get(url).await {
            Ok(r) => return r.json().await.unwrap(),
            Err(e) => {
                assert!(Instant::now() < deadline, "GET {url}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// POSTs, retrying while the server is not listening yet (a container without a readiness
/// probe is ready as soon as it runs, as upstream).
async fn post(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::Client::new().post(url).send().await {
            Ok(r) => {
                assert!(r.status().is_success(), "POST {url}: {}", r.status());
                return;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "POST {url}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    // A zombie has no cmdline; a reaped process has no /proc entry at all.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

async fn wait_dead(pid: u32, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pod_runs_and_answers_on_its_ip_with_its_name() {
    let f = Fixture::new();
    f.store
        .create_as(pod(
            "hostbot",
            hostbot_container("yourname/hostbot:v1", 8080),
        ))
        .unwrap();
    let running = f.wait_ready("hostbot").await;
    let spec = running.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("harness"));
    let status = running.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let cs = container_status(&running).unwrap();
    assert!(
        cs.container_id
            .as_deref()
            .unwrap()
            .starts_with("harness://")
    );
    assert_eq!(
        (cs.ready, cs.started, cs.restart_count),
        (true, Some(true), 0)
    );
    assert!(cs.state.as_ref().unwrap().running.is_some());

    let ip = pod_ip(&running);
    assert!(ip.starts_with("127."), "{ip}");
    let body = get_json(&format!("http://{ip}:8080/")).await;
    assert_eq!(body["host"], "hostbot");
    assert_eq!(body["version"], "v1");

    for (reason, message) in [
        (
            "Scheduled",
            "Successfully assigned default/hostbot to harness",
        ),
        (
            "Pulled",
            "Container image \"yourname/hostbot:v1\" already present on machine",
        ),
        ("Created", "Created container: hostbot"),
        ("Started", "Started container hostbot"),
    ] {
        assert!(
            f.has_event("hostbot", reason, message),
            "{:#?}",
            f.events("hostbot")
        );
    }
    let pid = f.pid("hostbot");
    // The process has the pod's hostname in its own UTS namespace.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("HOSTNAME=hostbot\0"), "{environ}");
    assert!(environ.contains(&format!("HOST={ip}\0")), "{environ}");
    assert!(environ.contains("PORT=8080\0"), "{environ}");
    f.shutdown().await;
    wait_dead(pid, 5).await;
}

#[tokio::test]
async fn two_pods_listen_on_the_same_port() {
    let f = Fixture::new();
    for name in ["web-a", "web-b"] {
        f.store
            .create_as(pod(name, hostbot_container("nginx:1.25.3", 80)))
            .unwrap();
    }
    for name in ["web-a", "web-b"] {
        let running = f.wait_ready(name).await;
        let body = get_json(&format!("http://{}:80/", pod_ip(&running))).await;
        assert_eq!(body["host"], name);
        assert_eq!(body["version"], "1.25.3");
    }
    f.shutdown().await;
}

#[tokio::test]
async fn configmap_volume_is_projected_and_updated_in_place() {
    let f = Fixture::new();
    f.store
        .create_as(config_map(
            "hostbot-config",
            &[("myconfig.txt", "I am hungry.")],
        ))
        .unwrap();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.volume_mounts = Some(vec![mount("config", "/etc/hostbot")]);
    let mut p = pod("configured", container);
    p.spec.as_mut().unwrap().volumes = Some(vec![config_map_volume("config", "hostbot-config")]);
    let created = f.store.create_as(p).unwrap();
    let running = f.wait_ready("configured").await;
    let uid = created.metadata.uid.unwrap();

    // The kubelet's layout on the host.
    let dir = f
        .state
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes")
        .join("config");
    let data = std::fs::read_link(dir.join("..data")).unwrap();
    let ts = data.to_str().unwrap().to_owned();
    assert!(ts.starts_with("..20"), "{ts}");
    assert_eq!(
        std::fs::read_link(dir.join("myconfig.txt")).unwrap(),
        Path::new("..data/myconfig.txt")
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join(&ts).join("myconfig.txt"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o644);

    // The process sees it at its mountPath; the host's /etc does not change.
    let pid = f.pid("configured");
    let inside = format!("/proc/{pid}/root/etc/hostbot/myconfig.txt");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "I am hungry.");
    let cat = ["cat".to_owned(), "/etc/hostbot/myconfig.txt".to_owned()];
    let out = f
        .kubelet
        .exec(
            "default",
            "configured",
            "hostbot",
            &cat,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((out.exit_code, out.output.as_str()), (0, "I am hungry."));
    assert!(!Path::new("/etc/hostbot/myconfig.txt").exists());
    let url = format!("http://{}:8080/config", pod_ip(&running));
    assert_eq!(get_json(&url).await["myconfig.txt"], "I am hungry.");

    // An update reaches the running process through the `..data` swap.
    f.store
        .modify::<ConfigMap, ()>("default", "hostbot-config", |cm| {
            cm.data = Some(BTreeMap::from([(
                "myconfig.txt".to_owned(),
                "I am full.".to_owned(),
            )]));
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get_json(&url).await["myconfig.txt"] == "I am full." {
            break;
        }
        assert!(Instant::now() < deadline, "hostbot never saw the update");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_ts = std::fs::read_link(dir.join("..data")).unwrap();
    assert_ne!(new_ts, data);
    assert!(
        !dir.join(&ts).exists(),
        "the old timestamped directory is removed"
    );
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "I am full.");
    assert_eq!(
        container_status(&f.pod("configured").unwrap())
            .unwrap()
            .restart_count,
        0,
        "no restart"
    );
    let state = f.shutdown().await;
    assert!(
        !state.path().join("pods").join(&uid).exists(),
        "volumes are cleaned up"
    );
}

#[tokio::test]
async fn missing_configmap_volume_waits_in_container_creating() {
    let f = Fixture::new();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.volume_mounts = Some(vec![mount("config", "/etc/hostbot")]);
    let mut p = pod("unmounted", container);
    p.spec.as_mut().unwrap().volumes = Some(vec![config_map_volume("config", "later")]);
    f.store.create_as(p).unwrap();
    f.wait_event(
        "unmounted",
        "FailedMount",
        "MountVolume.SetUp failed for volume \"config\" : configmap \"later\" not found",
        10,
    )
    .await;
    let pending = f.pod("unmounted").unwrap();
    assert_eq!(waiting_reason(&pending).unwrap().0, "ContainerCreating");
    assert_eq!(pending.status.unwrap().phase.as_deref(), Some("Pending"));
    f.store
        .create_as(config_map("later", &[("a", "b")]))
        .unwrap();
    f.wait_ready("unmounted").await;
    f.shutdown().await;
}

#[tokio::test]
async fn missing_configmap_key_is_a_config_error_until_added() {
    let f = Fixture::new();
    f.store
        .create_as(config_map("hello-server-configmap", &[("PORT", "8081")]))
        .unwrap();
    let from = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "hello-server-configmap".into(),
                key: key.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut container = hostbot_container("blux2/hello-server:1.4", 8080);
    container.ports = None;
    container.env = Some(vec![from("PORT", "PORT"), from("GREETING", "GREETING")]);
    f.store.create_as(pod("hello", container)).unwrap();
    let message = "couldn't find key GREETING in ConfigMap default/hello-server-configmap";
    let (reason, got) = f
        .wait_pod("hello", 10, "CreateContainerConfigError", |p| {
            waiting_reason(p).filter(|(r, _)| r == "CreateContainerConfigError")
        })
        .await;
    assert_eq!(
        (reason.as_str(), got.as_str()),
        ("CreateContainerConfigError", message)
    );
    f.wait_event("hello", "Failed", &format!("Error: {message}"), 5)
        .await;

    f.store
        .modify::<ConfigMap, ()>("default", "hello-server-configmap", |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert("GREETING".into(), "hi".into());
        })
        .unwrap();
    let running = f.wait_ready("hello").await;
    // PORT came from the ConfigMap and beats the image's 8080.
    let body = get_json(&format!("http://{}:8081/", pod_ip(&running))).await;
    assert_eq!(body["host"], "hello");
    let pid = f.pid("hello");
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .into_owned();
    assert!(environ.contains("GREETING=hi\0"), "{environ}");
    f.shutdown().await;
}

#[tokio::test]
async fn unknown_image_backs_off() {
    let f = Fixture::new();
    f.store
        .create_as(pod(
            "broken",
            hostbot_container("blux2/hello-server:1.3", 8080),
        ))
        .unwrap();
    let full = "docker.io/blux2/hello-server:1.3";
    let pull_error = format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve reference \"{full}\": {full}: not found"
    );
    let (_, message) = f
        .wait_pod("broken", 10, "ErrImagePull", |p| {
            waiting_reason(p).filter(|(r, _)| r == "ErrImagePull")
        })
        .await;
    assert_eq!(message, pull_error);
    let (_, message) = f
        .wait_pod("broken", 10, "ImagePullBackOff", |p| {
            waiting_reason(p).filter(|(r, _)| r == "ImagePullBackOff")
        })
        .await;
    assert_eq!(message, "Back-off pulling image \"blux2/hello-server:1.3\"");
    for (reason, message) in [
        (
            "Pulling",
            "Pulling image \"blux2/hello-server:1.3\"".to_owned(),
        ),
        (
            "Failed",
            format!("Failed to pull image \"blux2/hello-server:1.3\": {pull_error}"),
        ),
        ("Failed", "Error: ErrImagePull".to_owned()),
        (
            "BackOff",
            "Back-off pulling image \"blux2/hello-server:1.3\"".to_owned(),
        ),
        ("Failed", "Error: ImagePullBackOff".to_owned()),
    ] {
        assert!(
            f.has_event("broken", reason, &message),
            "{reason} {message}: {:#?}",
            f.events("broken")
        );
    }
    let status = f.pod("broken").unwrap().status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    f.shutdown().await;
}

#[tokio::test]
async fn killed_container_restarts_in_the_same_pod() {
    let f = Fixture::new();
    f.store
        .create_as(pod("victim", hostbot_container("hostbot:1", 8080)))
        .unwrap();
    f.wait_ready("victim").await;
    let pid = f.pid("victim");
    assert!(f.kubelet.kill_container("default", "victim", "hostbot"));
    let restarted = f
        .wait_pod("victim", 10, "a restart", |p| {
            let cs = container_status(p)?;
            (cs.restart_count == 1 && cs.ready).then(|| p.clone())
        })
        .await;
    let cs = container_status(&restarted).unwrap();
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (137, Some("Error"))
    );
    assert_eq!(last.signal, Some(9));
    let new_pid = f.pid("victim");
    assert_ne!(pid, new_pid);
    wait_dead(pid, 5).await;
    // The first instance's output is the previous log.
    assert!(
        f.kubelet
            .logs("default", "victim", "hostbot", true)
            .is_some()
    );
    f.shutdown().await;
}

#[tokio::test]
async fn crash_loop_backs_off_and_keeps_previous_logs() {
    let f = Fixture::new();
    let container = Container {
        name: "crasher".into(),
        image: Some("busybox:1.36".into()),
        command: Some(vec!["sh".into(), "-c".into(), "echo boom; exit 3".into()]),
        ..Default::default()
    };
    let created = f.store.create_as(pod("crasher", container)).unwrap();
    let uid = created.metadata.uid.unwrap();
    let (_, message) = f
        .wait_pod("crasher", 10, "CrashLoopBackOff", |p| {
            waiting_reason(p).filter(|(r, _)| r == "CrashLoopBackOff")
        })
        .await;
    assert!(
        message.starts_with("back-off ")
            && message.ends_with(&format!(
                "restarting failed container=crasher pod=crasher_default({uid})"
            )),
        "{message}"
    );
    f.wait_event(
        "crasher",
        "BackOff",
        &format!("Back-off restarting failed container crasher in pod crasher_default({uid})"),
        5,
    )
    .await;
    let p = f
        .wait_pod("crasher", 10, "2 restarts", |p| {
            (container_status(p)?.restart_count >= 2).then(|| p.clone())
        })
        .await;
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    let last = container_status(&p)
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    let previous = f
        .kubelet
        .logs("default", "crasher", "crasher", true)
        .unwrap();
    assert_eq!(previous.bytes(), b"boom\n");
    f.shutdown().await;
}

#[tokio::test]
async fn restart_policy_never_ends_the_pod() {
    let f = Fixture::new();
    for (name, code) in [("done", 0), ("failed", 4)] {
        let container = Container {
            name: "job".into(),
            image: Some("busybox".into()),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("echo out; exit {code}"),
            ]),
            ..Default::default()
        };
        let mut p = pod(name, container);
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        f.store.create_as(p).unwrap();
    }
    for (name, phase, reason) in [
        ("done", "Succeeded", "Completed"),
        ("failed", "Failed", "Error"),
    ] {
        let p = f
            .wait_pod(name, 10, phase, |p| {
                (p.status.as_ref()?.phase.as_deref() == Some(phase)).then(|| p.clone())
            })
            .await;
        let terminated = container_status(&p)
            .unwrap()
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(terminated.reason.as_deref(), Some(reason));
        assert_eq!(container_status(&p).unwrap().restart_count, 0);
        let log = f.kubelet.logs("default", name, "job", false).unwrap();
        assert_eq!(log.bytes(), b"out\n");
    }
    // Deleting a finished pod removes it at once.
    f.delete("done", None);
    f.wait_gone("done", 5).await;
    f.shutdown().await;
}

#[tokio::test]
async fn liveness_failure_restarts_the_container() {
    let f = Fixture::new();
    let mut container = hostbot_container("hostbot:1", 8080);
    // A probe at t=0 would find hostbot not listening yet and kill it, over and over, exactly
    // as upstream would: give it a second.
    container.liveness_probe = Some(Probe {
        initial_delay_seconds: Some(1),
        ..http_probe("/healthz", 8080)
    });
    f.store.create_as(pod("sick", container)).unwrap();
    let running = f.wait_ready("sick").await;
    post(&format!("http://{}:8080/healthz/disable", pod_ip(&running))).await;
    f.wait_event(
        "sick",
        "Unhealthy",
        "Liveness probe failed: HTTP probe failed with statuscode: 503",
        10,
    )
    .await;
    f.wait_event(
        "sick",
        "Killing",
        "Container hostbot failed liveness probe, will be restarted",
        10,
    )
    .await;
    f.wait_pod("sick", 15, "a restart", |p| {
        let cs = container_status(p)?;
        (cs.restart_count == 1 && cs.ready).then_some(())
    })
    .await;
    f.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_the_probe() {
    let f = Fixture::new();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.readiness_probe = Some(http_probe("/readyz", 8080));
    f.store.create_as(pod("flaky", container)).unwrap();
    let running = f.wait_ready("flaky").await;
    let base = format!("http://{}:8080", pod_ip(&running));
    post(&format!("{base}/readyz/disable")).await;
    f.wait_pod("flaky", 10, "not Ready", |p| (!ready(p)).then_some(()))
        .await;
    let p = f.pod("flaky").unwrap();
    let condition = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ContainersReady")
        .unwrap();
    assert_eq!(condition.reason.as_deref(), Some("ContainersNotReady"));
    assert!(f.events("flaky").iter().any(|(t, r, m)| t == "Warning"
        && r == "Unhealthy"
        && m.starts_with("Readiness probe failed: HTTP probe failed with statuscode: 503")));
    post(&format!("{base}/readyz/enable")).await;
    f.wait_ready("flaky").await;
    assert_eq!(
        container_status(&f.pod("flaky").unwrap())
            .unwrap()
            .restart_count,
        0
    );
    f.shutdown().await;
}

/// The first probe usually goes out before the program listens; it must not cost a whole
/// period. The container here opens its port 300 ms after it starts; with a 30 s period, only
/// a retry of the unanswered first probe makes it Ready within the 20 s the wait allows.
#[tokio::test]
async fn a_port_opened_late_is_ready_without_waiting_a_period() {
    let f = Fixture::new();
    let mut container = hostbot_container("busybox:1", 8080);
    container.command = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("sleep 0.3; exec '{}'", hostbot().display()),
    ]);
    let mut probe = http_probe("/readyz", 8080);
    probe.period_seconds = Some(30);
    container.readiness_probe = Some(probe);
    f.store.create_as(pod("late", container)).unwrap();
    f.wait_pod("late", 20, "Ready well before the second probe", |p| {
        ready(p).then_some(())
    })
    .await;
    assert!(
        !f.events("late")
            .iter()
            .any(|(_, reason, _)| reason == "Unhealthy"),
        "a refused first probe is retried, not reported: {:#?}",
        f.events("late")
    );
    f.shutdown().await;
}

#[tokio::test]
async fn deletion_runs_pre_stop_then_sigterm_then_removes_the_pod() {
    let f = Fixture::new();
    let marker = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let marker_path = marker.to_str().unwrap().to_owned();
    std::fs::remove_file(&marker).unwrap();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo $HOSTNAME > {marker_path}; sleep 0.5"),
                ]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    f.store.create_as(pod("leaving", container)).unwrap();
    f.wait_ready("leaving").await;
    let pid = f.pid("leaving");
    let log = f
        .kubelet
        .logs("default", "leaving", "hostbot", false)
        .unwrap();
    let started = Instant::now();
    f.delete("leaving", None);
    // Not ready at once, long before the process ends.
    f.wait_pod("leaving", 2, "not Ready", |p| (!ready(p)).then_some(()))
        .await;
    assert!(process_alive(pid));
    f.wait_gone("leaving", 10).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "preStop time counts: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "a draining hostbot exits before the grace period: {took:?}"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "leaving");
    wait_dead(pid, 2).await;
    let output = String::from_utf8_lossy(&log.bytes()).into_owned();
    assert!(output.contains("SIGTERM"), "hostbot saw SIGTERM: {output}");
    assert!(log.has_ended());
    assert!(f.has_event("leaving", "Killing", "Stopping container hostbot"));
    f.shutdown().await;
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_at_the_end_of_the_grace_period() {
    let f = Fixture::new();
    let mut p = pod("stubborn", stubborn_container());
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(1);
    f.store.create_as(p).unwrap();
    f.wait_ready("stubborn").await;
    let pid = f.pid("stubborn");
    let started = Instant::now();
    f.delete("stubborn", None);
    f.wait_gone("stubborn", 10).await;
    let took = started.elapsed();
    // At least the 2 s minimum after SIGTERM (upstream's minimumGracePeriodInSeconds).
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    wait_dead(pid, 2).await;
    f.shutdown().await;
}

#[tokio::test]
async fn force_deleted_pod_is_killed_at_once() {
    let f = Fixture::new();
    f.store
        .create_as(pod("forced", stubborn_container()))
        .unwrap();
    f.wait_ready("forced").await;
    let pid = f.pid("forced");
    f.delete("forced", Some(0));
    assert!(f.pod("forced").is_none());
    wait_dead(pid, 1).await;
    f.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_process() {
    let f = Fixture::new();
    for i in 0..3 {
        f.store
            .create_as(pod(&format!("p{i}"), hostbot_container("hostbot:1", 8080)))
            .unwrap();
    }
    for i in 0..3 {
        f.wait_ready(&format!("p{i}")).await;
    }
    let pids = f.kubelet.container_pids();
    assert_eq!(pids.len(), 3);
    let kubelet = f.kubelet.clone();
    let store = f.store.clone();
    f.shutdown().await;
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} survived the shutdown");
    }
    assert!(kubelet.container_pids().is_empty());
    // Pods stay in the store: a shutdown is not a deletion.
    assert!(store.get_as::<Pod>("default", "p0").is_some());
}

/// Not a test on its own: the child process of `a_killed_harness_leaves_no_container`.
#[tokio::test]
async fn helper_runs_a_pod_until_killed() {
    if std::env::var_os("KUBELET_TEST_HELPER").is_none() {
        return;
    }
    let f = Fixture::new();
    f.store
        .create_as(pod("orphan", hostbot_container("hostbot:1", 8080)))
        .unwrap();
    f.wait_ready("orphan").await;
    let pid = f.pid("orphan");
    println!("CONTAINER_PID {pid}");
    std::future::pending::<()>().await;
}

#[test]
fn a_killed_harness_leaves_no_container() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_runs_a_pod_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KUBELET_TEST_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid: u32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test <name> ... " on the same line first.
        .find_map(|line| {
            let at = line.find("CONTAINER_PID ")? + "CONTAINER_PID ".len();
            Some(line[at..].trim().parse().unwrap())
        })
        .expect("the helper reports its container's pid");
    assert!(process_alive(pid));
    child.kill().unwrap(); // SIGKILL: no cleanup code runs in the helper
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "container {pid} outlived its harness"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn in_process_pods_serve_on_their_ip() {
    let f = Fixture::with_runtime(RuntimeKind::InProcess);
    f.store
        .create_as(config_map("cfg", &[("greeting", "hello")]))
        .unwrap();
    let mut container = hostbot_container("hostbot:7", 8080);
    container.readiness_probe = Some(http_probe("/readyz", 8080));
    container.volume_mounts = Some(vec![mount("config", "/etc/hostbot")]);
    let mut p = pod("tiny", container);
    p.spec.as_mut().unwrap().volumes = Some(vec![config_map_volume("config", "cfg")]);
    f.store.create_as(p).unwrap();
    let running = f.wait_ready("tiny").await;
    let ip = pod_ip(&running);
    let body = get_json(&format!("http://{ip}:8080/")).await;
    assert_eq!(
        (body["host"].as_str(), body["version"].as_str()),
        (Some("tiny"), Some("7"))
    );
    let config = get_json(&format!("http://{ip}:8080/config")).await;
    assert_eq!(config["greeting"], "hello");
    assert_eq!(f.kubelet.container_pid("default", "tiny", "hostbot"), None);

    // A kill is a crash: restart with exit code 137.
    assert!(f.kubelet.kill_container("default", "tiny", "hostbot"));
    let restarted = f
        .wait_pod("tiny", 10, "a restart", |p| {
            let cs = container_status(p)?;
            (cs.restart_count == 1 && cs.ready).then(|| p.clone())
        })
        .await;
    let last = container_status(&restarted)
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 137);

    f.delete("tiny", None);
    f.wait_gone("tiny", 5).await;
    f.shutdown().await;
}

#[tokio::test]
async fn a_new_image_restarts_the_container_and_heals_a_failed_pull() {
    let f = Fixture::new();
    f.store
        .create_as(pod("upgraded", hostbot_container("hostbot:1", 8080)))
        .unwrap();
    f.store
        .create_as(pod(
            "fixed",
            hostbot_container("blux2/hello-server:1.3", 8080),
        ))
        .unwrap();
    let running = f.wait_ready("upgraded").await;
    let set_image = |name: &str, image: &str| {
        f.store
            .modify::<Pod, ()>("default", name, |p| {
                p.spec.as_mut().unwrap().containers[0].image = Some(image.into());
            })
            .unwrap();
    };
    set_image("upgraded", "hostbot:2");
    f.wait_event(
        "upgraded",
        "Killing",
        "Container hostbot definition changed, will be restarted",
        5,
    )
    .await;
    f.wait_pod("upgraded", 10, "the new image", |p| {
        let cs = container_status(p)?;
        (cs.restart_count == 1 && cs.ready && cs.image == "hostbot:2").then_some(())
    })
    .await;
    let body = get_json(&format!("http://{}:8080/", pod_ip(&running))).await;
    assert_eq!(body["version"], "2");

    f.wait_pod("fixed", 10, "ImagePullBackOff", |p| {
        waiting_reason(p).filter(|(r, _)| r == "ImagePullBackOff")
    })
    .await;
    set_image("fixed", "blux2/hello-server:1.4");
    let healed = f.wait_ready("fixed").await;
    assert_eq!(container_status(&healed).unwrap().restart_count, 0);
    f.shutdown().await;
}

#[tokio::test]
async fn exec_probes_run_inside_the_container() {
    let f = Fixture::new();
    f.store
        .create_as(config_map("flags", &[("mode", "starting")]))
        .unwrap();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.volume_mounts = Some(vec![mount("flags", "/etc/flags")]);
    // Only true where the volume is mounted: in the container's own mount namespace.
    container.readiness_probe = Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec!["test".into(), "-f".into(), "/etc/flags/ready".into()]),
        }),
        period_seconds: Some(1),
        ..Default::default()
    });
    let mut p = pod("gated", container);
    p.spec.as_mut().unwrap().volumes = Some(vec![config_map_volume("flags", "flags")]);
    f.store.create_as(p).unwrap();
    f.wait_pod("gated", 10, "running", |p| {
        container_status(p)?
            .state
            .as_ref()?
            .running
            .as_ref()
            .map(|_| ())
    })
    .await;
    f.wait_event("gated", "Unhealthy", "Readiness probe failed: ", 5)
        .await;
    assert!(!ready(&f.pod("gated").unwrap()));
    f.store
        .modify::<ConfigMap, ()>("default", "flags", |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert("ready".into(), "yes".into());
        })
        .unwrap();
    f.wait_ready("gated").await;
    assert!(
        !Path::new("/etc/flags").exists(),
        "the host's /etc is untouched"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn sub_path_mounts_never_update() {
    let f = Fixture::new();
    f.store
        .create_as(config_map("app", &[("app.ini", "v=1"), ("other", "x")]))
        .unwrap();
    let mut container = hostbot_container("hostbot:1", 8080);
    container.volume_mounts = Some(vec![
        VolumeMount {
            sub_path: Some("app.ini".into()),
            ..mount("app", "/etc/app/conf/app.ini")
        },
        mount("app", "/etc/app/live"),
    ]);
    let mut p = pod("pinned", container);
    p.spec.as_mut().unwrap().volumes = Some(vec![config_map_volume("app", "app")]);
    f.store.create_as(p).unwrap();
    f.wait_ready("pinned").await;
    let pid = f.pid("pinned");
    let pinned = format!("/proc/{pid}/root/etc/app/conf/app.ini");
    let live = format!("/proc/{pid}/root/etc/app/live/app.ini");
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), "v=1");
    f.store
        .modify::<ConfigMap, ()>("default", "app", |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert("app.ini".into(), "v=2".into());
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&live).unwrap() != "v=2" {
        assert!(
            Instant::now() < deadline,
            "the whole-volume mount never updated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), "v=1");
    f.shutdown().await;
}

#[tokio::test]
async fn forced_shutdown_skips_the_grace_period() {
    let f = Fixture::new();
    let mut p = pod("slow", stubborn_container());
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(30);
    f.store.create_as(p).unwrap();
    f.wait_ready("slow").await;
    let pid = f.pid("slow");
    let started = Instant::now();
    f.cancel.cancel();
    // The kubelet has sent SIGTERM once hostbot says it ignores it; the process must live on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = f.kubelet.logs("default", "slow", "hostbot", false).unwrap();
    while !String::from_utf8_lossy(&log.bytes()).contains("ignoring the shutdown request") {
        assert!(
            Instant::now() < deadline,
            "no SIGTERM reached the container"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        process_alive(pid),
        "a graceful shutdown waits for the grace period"
    );
    f.kubelet.force();
    f.kubelet.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!process_alive(pid));
    f.shutdown().await;
}
