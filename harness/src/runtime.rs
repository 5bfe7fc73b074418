//! Container runtimes: how the kubelet turns a resolved container into something running.
//!
//! [`Runtime::start`] takes a [`ContainerConfig`] (everything already resolved: argv, env,
//! mounts, hostname, pod IP) and returns an [`Instance`] the kubelet waits on, signals through
//! a [`Killer`] and runs commands in ([`Exec`]). Two runtimes exist:
//!
//! - [`RuntimeKind::Process`] (the default, faithful): each container is a real OS process,
//!   see `process`; volumes appear at their mountPaths through a private mount namespace, see
//!   `mounts` and `namespace`; every fork happens on the `spawner` thread.
//! - [`RuntimeKind::InProcess`] (for scale): hostbot containers are tasks inside the harness
//!   serving the hostbot library on the pod IP, see `inprocess`. Containers of other images
//!   still run as processes.
//! - [`RuntimeKind::Docker`] (feature `docker`): every container is a Docker container with
//!   its ports published on the pod IP, see `docker`; images resolve through the engine.
//!
//! Which program plays an image is the [`catalog`]'s business (the engine's, for Docker).

pub mod catalog;
#[cfg(feature = "docker")]
pub mod docker;
pub mod inprocess;
pub mod mounts;
pub mod namespace;
pub mod ports;
pub mod process;
mod spawner;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::kubelet::logs::ContainerLog;
use catalog::{Catalog, HOSTBOT, Image};
use inprocess::{InProcessRuntime, TaskInstance};
use mounts::MountSpec;
use process::{ProcessExec, ProcessInstance, ProcessRuntime};

/// Which runtime runs hostbot containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Real processes (faithful: signals, exit codes, mount namespaces).
    #[default]
    Process,
    /// Tasks inside the harness (cheap: for a thousand pods).
    InProcess,
    /// Docker containers (needs the `docker` feature and a running engine).
    Docker,
}

/// Everything needed to start one container instance.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// `namespace/pod`, for messages.
    pub pod: String,
    /// The container's name.
    pub name: String,
    /// Program and arguments; a first element of [`HOSTBOT`] means the hostbot program.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub hostname: String,
    pub pod_ip: Ipv4Addr,
    pub mounts: Vec<MountSpec>,
    /// This instance's own directory (overlay layers, subPath copies).
    pub scratch: PathBuf,
    pub working_dir: Option<PathBuf>,
    pub log: Arc<ContainerLog>,
    /// The image reference (the docker runtime runs it; the others ran the catalog's answer).
    pub image: String,
    /// The TCP ports that must answer at the pod IP (see [`ports::reachable`]).
    pub ports: Vec<u16>,
}

/// How a container's main process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code; 128 + signal number when killed by a signal.
    pub code: i32,
    pub signal: Option<i32>,
}

/// The result of a command run inside a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub output: String,
}

/// The runtimes, ready to start containers.
#[derive(Debug, Clone)]
pub struct Runtime {
    kind: RuntimeKind,
    process: ProcessRuntime,
    inprocess: InProcessRuntime,
    #[cfg(feature = "docker")]
    docker: Option<docker::DockerRuntime>,
}

impl Runtime {
    /// A runtime of `kind`; `hostbot_command` is the program (and leading arguments) that runs
    /// hostbot as a process.
    pub fn new(kind: RuntimeKind, hostbot_command: Vec<OsString>, tracker: TaskTracker) -> Runtime {
        Runtime {
            kind,
            process: ProcessRuntime::new(hostbot_command, tracker.clone()),
            #[cfg(feature = "docker")]
            docker: (kind == RuntimeKind::Docker)
                .then(|| docker::DockerRuntime::new(tracker.clone())),
            inprocess: InProcessRuntime::new(tracker),
        }
    }

    /// Which runtime runs hostbot containers.
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// Starts a container; the error is the message for `RunContainerError`.
    pub async fn start(&self, config: &ContainerConfig) -> Result<Instance, String> {
        if self.kind == RuntimeKind::Docker {
            #[cfg(feature = "docker")]
            if let Some(docker) = &self.docker {
                return docker
                    .start(config)
                    .await
                    .map(|d| Instance::Docker(Box::new(d)));
            }
            return Err(NO_DOCKER.to_owned());
        }
        let hostbot_only = config.argv.len() == 1 && config.argv[0] == HOSTBOT;
        if self.kind == RuntimeKind::InProcess && hostbot_only {
            return self.inprocess.start(config).await.map(Instance::Task);
        }
        self.process
            .start(config)
            .await
            .map(|p| Instance::Process(Box::new(p)))
    }
}

/// Why `--runtime docker` cannot work in this build.
const NO_DOCKER: &str =
    "this harness was built without the `docker` feature: rebuild it with default features";

impl Runtime {
    /// Resolves an image as a pull would: through the catalog, or the engine for Docker. The
    /// error is the `ErrImagePull` message.
    pub async fn resolve(&self, catalog: &Catalog, image: &str) -> Result<Image, String> {
        if self.kind == RuntimeKind::Docker {
            #[cfg(feature = "docker")]
            if let Some(docker) = &self.docker {
                return docker.resolve(image).await;
            }
            return Err(NO_DOCKER.to_owned());
        }
        catalog.resolve(image).map_err(|e| e.to_string())
    }

    /// Removes what the runtime still holds once every pod has stopped (Docker containers
    /// that outlived their pods); returns how many.
    pub async fn shutdown(&self) -> usize {
        #[cfg(feature = "docker")]
        if let Some(docker) = &self.docker {
            return docker.shutdown().await;
        }
        0
    }

    /// The `harness.instance` label of this cluster's Docker containers.
    pub fn docker_instance(&self) -> Option<&str> {
        #[cfg(feature = "docker")]
        if let Some(docker) = &self.docker {
            return Some(docker.instance());
        }
        None
    }
}

/// Checks that the runtime of `kind` can run (for Docker: the engine answers, and leftovers of
/// killed harnesses are removed); the error says what to do.
pub async fn preflight(kind: RuntimeKind) -> Result<(), String> {
    match kind {
        #[cfg(feature = "docker")]
        RuntimeKind::Docker => docker::preflight().await,
        #[cfg(not(feature = "docker"))]
        RuntimeKind::Docker => Err(NO_DOCKER.to_owned()),
        RuntimeKind::Process | RuntimeKind::InProcess => Ok(()),
    }
}

/// A running container instance.
#[derive(Debug)]
pub enum Instance {
    Process(Box<ProcessInstance>),
    Task(TaskInstance),
    #[cfg(feature = "docker")]
    Docker(Box<docker::DockerInstance>),
}

impl Instance {
    /// The main process's id, for a process container.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Instance::Process(p) => Some(p.pid()),
            Instance::Task(_) => None,
            #[cfg(feature = "docker")]
            Instance::Docker(_) => None,
        }
    }

    /// The runtime's own id for `status.containerStatuses[].containerID` (`docker://...`);
    /// `None` when the runtime has none.
    pub fn container_id(&self) -> Option<String> {
        match self {
            #[cfg(feature = "docker")]
            Instance::Docker(d) => Some(d.container_id()),
            _ => None,
        }
    }

    /// A handle that signals this instance from anywhere.
    pub fn killer(&self) -> Killer {
        match self {
            Instance::Process(p) => Killer::Group(p.pid()),
            Instance::Task(t) => Killer::Task {
                graceful: t.graceful(),
                force: t.force(),
            },
            #[cfg(feature = "docker")]
            Instance::Docker(d) => Killer::Docker(d.killer()),
        }
    }

    /// A handle that runs commands inside this instance.
    pub fn exec(&self) -> Exec {
        match self {
            Instance::Process(p) => Exec::Process(p.exec()),
            Instance::Task(_) => Exec::Unsupported,
            #[cfg(feature = "docker")]
            Instance::Docker(d) => Exec::Docker(d.exec()),
        }
    }

    /// Waits for the instance to end.
    pub async fn wait(&mut self) -> Exit {
        match self {
            Instance::Process(p) => p.wait().await,
            Instance::Task(t) => t.wait().await,
            #[cfg(feature = "docker")]
            Instance::Docker(d) => d.wait().await,
        }
    }
}

/// Signals a container instance: SIGTERM/SIGKILL to a process group, or the graceful and
/// forced shutdown tokens of an in-process hostbot.
#[derive(Clone, Debug)]
pub enum Killer {
    Group(u32),
    Task {
        graceful: CancellationToken,
        force: CancellationToken,
    },
    #[cfg(feature = "docker")]
    Docker(docker::DockerKiller),
}

impl Killer {
    /// Asks for a graceful stop (SIGTERM).
    pub fn terminate(&self) {
        match self {
            Killer::Group(pid) => {
                namespace::signal_group(*pid, libc::SIGTERM);
            }
            Killer::Task { graceful, .. } => graceful.cancel(),
            #[cfg(feature = "docker")]
            Killer::Docker(d) => d.terminate(),
        }
    }

    /// Stops at once (SIGKILL).
    pub fn kill(&self) {
        match self {
            Killer::Group(pid) => {
                namespace::signal_group(*pid, libc::SIGKILL);
            }
            Killer::Task { force, .. } => force.cancel(),
            #[cfg(feature = "docker")]
            Killer::Docker(d) => d.kill(),
        }
    }
}

/// Runs commands inside a container (exec probes, preStop exec hooks).
#[derive(Clone, Debug)]
pub enum Exec {
    Process(ProcessExec),
    /// In-process containers have no file system or processes of their own.
    Unsupported,
    #[cfg(feature = "docker")]
    Docker(docker::DockerExec),
}

impl Exec {
    /// Runs `argv` with a timeout.
    pub async fn run(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, String> {
        match self {
            Exec::Process(p) => p.run(argv, timeout).await,
            #[cfg(feature = "docker")]
            Exec::Docker(d) => d.run(argv, timeout).await,
            Exec::Unsupported => Err(
                "exec is not supported for in-process containers (use the process runtime)"
                    .to_owned(),
            ),
        }
    }
}
