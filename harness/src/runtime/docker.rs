//! The docker runtime: each container of a pod is a Docker container, created through
//! testcontainers from an image the local engine has (or pulls from a registry on this
//! machine, such as `127.0.0.1:5000`).
//!
//! What makes a container look like a pod's container to the rest of the harness:
//! - **Address.** Every container has its own network namespace (so a non-root hostbot may bind
//!   port 80, as in a pod). Its ports (see [`super::ports`]) are published on the pod's loopback
//!   IP, `-p <podIP>:<port>:<port>`, so endpoints, probes, the Service proxy and port-forwards
//!   reach `podIP:port` exactly as with the process runtime. `HOST` (the bind address the
//!   kubelet suggests) becomes `0.0.0.0` inside the container.
//! - **Identity.** `--hostname` is the pod's hostname; the environment is the kubelet's resolved
//!   one (the image's own `ENV` stays underneath, as the engine merges it).
//! - **Volumes.** Bind mounts of the kubelet's volume directories: a ConfigMap volume is the
//!   whole directory, read-only, so the kubelet's atomic `..data` swap is seen in place.
//! - **Images.** Resolved by the engine, not the catalog: present locally, or pulled from a
//!   loopback registry; anything else is `ErrImagePull` (the harness never pulls from the
//!   internet). The image's entrypoint and command count as the catalog's would.
//! - **Stop.** SIGTERM is `docker stop` (the image's STOPSIGNAL, no timeout of its own: the
//!   kubelet sends SIGKILL, `docker kill`, at the end of the grace period). Exit codes come from
//!   the engine; the kubelet restarts with back-off as for any runtime.
//! - **Logs.** stdout and stderr are followed from the engine into the kubelet's log.
//! - **Cleanup.** See [`reaper`]: labels, a sweep at shutdown and on drop, leftovers of killed
//!   harnesses removed at start.
//!
//! Not supported: image pull policies (a present image is used, a missing one pulled if it can
//! be), `securityContext` (the image's user runs), resource limits, and ports the container
//! opens without declaring them.

mod instance;
pub mod reaper;
pub mod reference;
mod request;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::query_parameters::CreateImageOptionsBuilder;
use testcontainers::core::{AccessMode, IntoContainerPort, Mount};
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{GenericImage, Healthcheck, ImageExt as _};
use tokio_util::task::TaskTracker;

use super::ContainerConfig;
use super::catalog::Image;
pub use instance::{DockerExec, DockerInstance, DockerKiller};
use reaper::Owner;
use reference::Reference;
use request::{
    container_name, docker_argv, entrypoint_and_cmd, image_id, namespace_of, pod_name_of,
    port_bindings,
};

/// How long connecting to the engine may take before `--runtime docker` gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long creating and starting one container may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a pull from a local registry may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(120);

/// What to do when the engine cannot be reached.
pub const START_DOCKERD: &str = "start it with `tini -s -- dockerd >/tmp/dockerd.log 2>&1 &` \
(Debian: `apt-get install docker.io tini`) or point DOCKER_HOST at a running engine; \
`--runtime process` needs no Docker";

/// Starts Docker containers for one cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DockerRuntime {
    session: Arc<Session>,
}

#[derive(Debug)]
struct Session {
    /// This cluster's instance id, the `harness.instance` label of its containers.
    instance: String,
    owner: Owner,
    tracker: TaskTracker,
    client: Mutex<Option<Docker>>,
    /// Numbers containers, for unique names.
    created: AtomicU64,
    /// Whether containers were created since the last sweep (the drop sweep is skipped
    /// otherwise).
    used: AtomicBool,
}

/// Checks that the engine answers (within [`CONNECT_TIMEOUT`]) and removes the containers of
/// harnesses that were killed. The error says how to start the engine.
pub async fn preflight() -> Result<(), String> {
    let docker = connect().await?;
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(&e.to_string())),
        Err(_) => {
            return Err(unreachable(&format!(
                "no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    match reaper::remove_leftovers(&docker).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} docker containers of harnesses that were killed"),
        Err(e) => tracing::warn!("{e}"),
    }
    Ok(())
}

/// The engine's client, as testcontainers finds it (`DOCKER_HOST`, its properties, the default
/// socket).
async fn connect() -> Result<Docker, String> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        testcontainers::core::client::docker_client_instance(),
    )
    .await
    {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(&e.to_string())),
        Err(_) => Err(unreachable("no answer")),
    }
}

fn unreachable(detail: &str) -> String {
    format!("cannot reach the Docker engine ({detail}): {START_DOCKERD}")
}

/// A Docker error as a message: the engine's own words, or how to start the engine when it
/// could not be reached.
fn describe(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => {
            format!("Error response from daemon: {message}")
        }
        other => unreachable(&other.to_string()),
    }
}

impl DockerRuntime {
    /// A runtime whose containers get a fresh instance label; it connects on first use.
    pub fn new(tracker: TaskTracker) -> DockerRuntime {
        DockerRuntime {
            session: Arc::new(Session {
                instance: format!("{:032x}", rand::random::<u128>()),
                owner: Owner::current(),
                tracker,
                client: Mutex::new(None),
                created: AtomicU64::new(0),
                used: AtomicBool::new(false),
            }),
        }
    }

    /// The value of the `harness.instance` label of this cluster's containers.
    pub fn instance(&self) -> &str {
        &self.session.instance
    }

    async fn client(&self) -> Result<Docker, String> {
        if let Some(docker) = self.session.lock().clone() {
            return Ok(docker);
        }
        let docker = connect().await?;
        reaper::install_panic_hook(&docker);
        *self.session.lock() = Some(docker.clone());
        Ok(docker)
    }

    /// Resolves an image as a pull would: present in the engine, else pulled from a registry
    /// on this machine; the error is the `ErrImagePull` message.
    pub async fn resolve(&self, image: &str) -> Result<Image, String> {
        let docker = self.client().await?;
        let reference = Reference::parse(image);
        let info = match docker.inspect_image(image).await {
            Ok(info) => info,
            Err(DockerError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => {
                if !reference.is_local_registry() {
                    return Err(format!(
                        "Error response from daemon: {message} (the docker runtime pulls only from \
                         registries on this machine, such as 127.0.0.1:5000: build or `docker tag` \
                         the image locally, or push it there)"
                    ));
                }
                pull(&docker, image).await?;
                docker
                    .inspect_image(image)
                    .await
                    .map_err(|e| describe(&e))?
            }
            Err(e) => return Err(describe(&e)),
        };
        let (entrypoint, cmd) = entrypoint_and_cmd(&info);
        Ok(Image {
            entrypoint: entrypoint.into_iter().chain(cmd).collect(),
            // The engine puts the image's ENV underneath the container's own.
            env: Vec::new(),
            tag: reference.tag_or_latest(),
            image_id: image_id(&info),
        })
    }

    /// Creates and starts a container; the error is the `RunContainerError` message.
    pub async fn start(&self, config: &ContainerConfig) -> Result<DockerInstance, String> {
        let docker = self.client().await?;
        let info = docker
            .inspect_image(&config.image)
            .await
            .map_err(|e| describe(&e))?;
        let reference = Reference::parse(&config.image);
        let (name, tag) = reference.name_and_tag().unwrap_or_else(|| {
            let id = info.id.clone().unwrap_or_default();
            let (algorithm, hex) = id.split_once(':').unwrap_or(("sha256", &id));
            (algorithm.to_owned(), hex.to_owned())
        });
        let (entrypoint, cmd) = entrypoint_and_cmd(&info);
        let argv = docker_argv(&config.argv, &entrypoint, &cmd);

        let session = &self.session;
        let seq = session.created.fetch_add(1, Ordering::Relaxed);
        let container_name = container_name(config, &session.instance, seq);
        let mut image = GenericImage::new(name, tag);
        if let Some(argv) = &argv {
            image = image.with_entrypoint(&argv[0]);
        }
        for port in &config.ports {
            image = image.with_exposed_port(port.tcp());
        }
        let bindings = port_bindings(config);
        let mut request = image
            .with_container_name(&container_name)
            .with_hostname(&config.hostname)
            .with_label(reaper::INSTANCE, &session.instance)
            .with_label("io.kubernetes.pod.namespace", namespace_of(config))
            .with_label("io.kubernetes.pod.name", pod_name_of(config))
            .with_label("io.kubernetes.container.name", &config.name)
            // Readiness is the probes' business, as in a pod: started means started.
            .with_ready_conditions(Vec::new())
            .with_startup_timeout(START_TIMEOUT)
            // The image's HEALTHCHECK is Docker's idea; a pod has probes instead.
            .with_health_check(Healthcheck::none())
            .with_host_config_modifier(move |host| {
                host.publish_all_ports = Some(false);
                host.port_bindings = Some(bindings.clone());
            });
        for (key, value) in session.owner.labels() {
            request = request.with_label(key, value);
        }
        if let Some(argv) = &argv {
            request = request.with_cmd(argv[1..].iter().cloned());
        }
        for (key, value) in &config.env {
            // The suggested bind address is the pod IP, which exists only outside.
            let value = if key == "HOST" && *value == config.pod_ip.to_string() {
                "0.0.0.0"
            } else {
                value.as_str()
            };
            request = request.with_env_var(key, value);
        }
        for mount in &config.mounts {
            let access = if mount.read_only {
                AccessMode::ReadOnly
            } else {
                AccessMode::ReadWrite
            };
            request = request.with_mount(
                Mount::bind_mount(
                    mount.source.to_string_lossy(),
                    mount.target.to_string_lossy(),
                )
                .with_access_mode(access),
            );
        }
        if let Some(dir) = &config.working_dir {
            request = request.with_working_dir(dir.to_string_lossy());
        }
        session.used.store(true, Ordering::Relaxed);
        let container = match request.start().await {
            Ok(container) => container,
            Err(e) => {
                // A container created but not started is not ours to keep.
                reaper::remove(&docker, &container_name).await;
                return Err(format!("failed to start container {container_name}: {e}"));
            }
        };
        Ok(DockerInstance::new(
            container,
            docker,
            config.log.clone(),
            session.tracker.clone(),
        ))
    }

    /// Removes whatever containers of this instance are left (none, after an orderly stop of
    /// every pod); returns how many.
    pub async fn shutdown(&self) -> usize {
        // Until another container is created, the drop sweep has nothing to do.
        if !self.session.used.swap(false, Ordering::Relaxed) {
            return 0;
        }
        let Some(docker) = self.session.lock().clone() else {
            return 0;
        };
        match reaper::remove_instance(&docker, &self.session.instance).await {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!("removed {n} docker containers that outlived their pods");
                }
                n
            }
            Err(e) => {
                tracing::warn!("{e}");
                0
            }
        }
    }
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Docker>> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The last handle is gone: whatever is still labelled with this instance is orphaned
        // (a panic, a cluster dropped without shutdown).
        let docker = self.lock().take();
        if self.used.load(Ordering::Relaxed)
            && let Some(docker) = docker
        {
            reaper::remove_instance_blocking(docker, std::mem::take(&mut self.instance));
        }
    }
}

/// Pulls `image`; the error is the `ErrImagePull` message.
async fn pull(docker: &Docker, image: &str) -> Result<(), String> {
    let options = CreateImageOptionsBuilder::new().from_image(image).build();
    let pulling = async {
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| describe(&e))?;
        }
        Ok(())
    };
    tokio::time::timeout(PULL_TIMEOUT, pulling)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "pulling {image} took longer than {}s",
                PULL_TIMEOUT.as_secs()
            ))
        })
}
