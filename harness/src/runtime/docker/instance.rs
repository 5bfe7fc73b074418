//! One running Docker container, as the kubelet sees an instance: it waits on it, signals it
//! ([`DockerKiller`]), runs commands in it ([`DockerExec`]) and reads its output.
//!
//! The testcontainers handle is owned here and lent to a killer for a graceful stop. An
//! orderly end removes the container explicitly once it has exited and its output is read; an
//! instance dropped early (a task aborted, a runtime torn down by a panic) leaves it to the
//! handle's destructor, run on a thread of its own (see [`Owned`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use testcontainers::{ContainerAsync, GenericImage};
use tokio::sync::RwLock;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::kubelet::logs::{ContainerLog, pump};
use crate::runtime::{ExecOutput, Exit};

/// How much of an exec's output is kept (as the process runtime: upstream keeps 10 KiB).
const MAX_EXEC_OUTPUT: usize = 10 * 1024;
/// How long the output may keep coming after the container exited.
const DRAIN_LOGS: Duration = Duration::from_secs(2);

type Handle = Arc<RwLock<Owned>>;

/// The testcontainers handle. Its destructor removes the container by blocking on the runtime
/// it is dropped in; inside a runtime that is shutting down (a panic unwinding through
/// `block_on`) that never finishes, and the shutdown hangs. So wherever the last reference
/// goes, the handle is dropped on a thread with a runtime of its own.
#[derive(Debug)]
struct Owned(Option<ContainerAsync<GenericImage>>);

impl Drop for Owned {
    fn drop(&mut self) {
        let Some(container) = self.0.take() else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("harness-docker-drop".into())
            .spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(async move { drop(container) });
                }
            });
    }
}

/// A running container.
#[derive(Debug)]
pub struct DockerInstance {
    id: String,
    docker: Docker,
    container: Handle,
    log: Arc<ContainerLog>,
    readers: Vec<JoinHandle<()>>,
    tracker: TaskTracker,
    exit: Option<Exit>,
    finished: bool,
}

/// Signals a container from anywhere: a graceful `docker stop`, or `docker kill`.
#[derive(Clone, Debug)]
pub struct DockerKiller {
    id: String,
    docker: Docker,
    container: Weak<RwLock<Owned>>,
    tracker: TaskTracker,
}

/// Runs commands inside a container (`docker exec`).
#[derive(Clone, Debug)]
pub struct DockerExec {
    id: String,
    docker: Docker,
}

impl DockerInstance {
    /// Takes over a started container and follows its output into `log`.
    pub(super) fn new(
        container: ContainerAsync<GenericImage>,
        docker: Docker,
        log: Arc<ContainerLog>,
        tracker: TaskTracker,
    ) -> DockerInstance {
        let readers = vec![
            tracker.spawn(pump(container.stdout(true), log.clone())),
            tracker.spawn(pump(container.stderr(true), log.clone())),
        ];
        DockerInstance {
            id: container.id().to_owned(),
            docker,
            container: Arc::new(RwLock::new(Owned(Some(container)))),
            log,
            readers,
            tracker,
            exit: None,
            finished: false,
        }
    }

    /// `docker://<id>`, for `status.containerStatuses[].containerID`.
    pub fn container_id(&self) -> String {
        format!("docker://{}", self.id)
    }

    pub fn killer(&self) -> DockerKiller {
        DockerKiller {
            id: self.id.clone(),
            docker: self.docker.clone(),
            container: Arc::downgrade(&self.container),
            tracker: self.tracker.clone(),
        }
    }

    pub fn exec(&self) -> DockerExec {
        DockerExec {
            id: self.id.clone(),
            docker: self.docker.clone(),
        }
    }

    /// Waits for the container to exit, reads the rest of its output and removes it. Safe to
    /// call again after being cancelled (the kubelet waits inside `select!` loops).
    pub async fn wait(&mut self) -> Exit {
        let exit = match self.exit {
            Some(exit) => exit,
            None => {
                let exit = self.exited().await;
                self.exit = Some(exit);
                exit
            }
        };
        if !self.finished {
            for reader in self.readers.drain(..) {
                let _ = tokio::time::timeout(DRAIN_LOGS, reader).await;
            }
            let container = self.container.write().await.0.take();
            if let Some(container) = container
                && let Err(e) = container.rm().await
            {
                tracing::warn!(container = %self.id, "cannot remove container: {e}");
            }
            self.log.end();
            self.finished = true;
        }
        exit
    }

    /// The exit code, from the engine's wait; when the engine cannot say (it went away, the
    /// container vanished), 255 with a line in the log saying why.
    async fn exited(&self) -> Exit {
        loop {
            let options = WaitContainerOptionsBuilder::new()
                .condition("not-running")
                .build();
            let mut waiting = self.docker.wait_container(&self.id, Some(options));
            let problem = match waiting.next().await {
                Some(Ok(answer)) => return exit_of(answer.status_code),
                Some(Err(DockerError::DockerContainerWaitError { code, .. })) => {
                    return exit_of(code);
                }
                Some(Err(e)) => e.to_string(),
                None => "the engine ended the wait without a status".to_owned(),
            };
            match self.docker.inspect_container(&self.id, None).await {
                Ok(info) => {
                    let state = info.state.unwrap_or_default();
                    if state.running != Some(true) {
                        return exit_of(state.exit_code.unwrap_or(255));
                    }
                    // Still running: the wait broke for another reason; wait again.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    self.log.push(
                        format!("harness: lost container {}: {problem}; {e}\n", self.id)
                            .into_bytes(),
                    );
                    return Exit {
                        code: 255,
                        signal: None,
                    };
                }
            }
        }
    }
}

/// The engine reports 128 + signal for a container killed by a signal and, like the CRI,
/// nothing more: the signal is not reported separately.
fn exit_of(code: i64) -> Exit {
    Exit {
        code: i32::try_from(code).unwrap_or(255),
        signal: None,
    }
}

impl DockerKiller {
    /// SIGTERM (the image's STOPSIGNAL) through `docker stop` without a timeout of its own: the
    /// kubelet kills at the end of the grace period.
    pub fn terminate(&self) {
        let Some(container) = self.container.upgrade() else {
            return;
        };
        let id = self.id.clone();
        self.tracker.spawn(async move {
            let guard = container.read().await;
            if let Some(container) = guard.0.as_ref()
                && let Err(e) = container.stop_with_timeout(Some(-1)).await
            {
                tracing::debug!(container = %id, "docker stop: {e}");
            }
        });
    }

    /// SIGKILL through `docker kill`.
    pub fn kill(&self) {
        let (docker, id) = (self.docker.clone(), self.id.clone());
        self.tracker.spawn(async move {
            let options = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
            if let Err(e) = docker.kill_container(&id, Some(options)).await {
                tracing::debug!(container = %id, "docker kill: {e}");
            }
        });
    }
}

impl DockerExec {
    /// Runs `argv` in the container with its environment; the combined output is kept up to
    /// 10 KiB. A command still running at the timeout is left to finish on its own (the engine
    /// offers no way to stop an exec).
    pub async fn run(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, String> {
        if argv.is_empty() {
            return Err("exec: no command given".to_owned());
        }
        let run = async {
            let created = self
                .docker
                .create_exec(
                    &self.id,
                    CreateExecOptions {
                        cmd: Some(argv.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| exec_error(argv, &e))?;
            let mut output = Vec::new();
            if let StartExecResults::Attached {
                output: mut out, ..
            } = self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(|e| exec_error(argv, &e))?
            {
                while let Some(chunk) = out.next().await {
                    let Ok(chunk) = chunk else { break };
                    if output.len() < MAX_EXEC_OUTPUT {
                        output.extend_from_slice(&chunk.into_bytes());
                    }
                }
            }
            output.truncate(MAX_EXEC_OUTPUT);
            let inspected = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| exec_error(argv, &e))?;
            Ok(ExecOutput {
                exit_code: inspected
                    .exit_code
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(-1),
                output: String::from_utf8_lossy(&output).into_owned(),
            })
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "command {:?} timed out after {timeout:?}",
                    argv.join(" ")
                ))
            })
    }
}

fn exec_error(argv: &[String], err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => {
            format!("exec {:?}: {message}", argv.join(" "))
        }
        other => format!("exec {:?}: {other}", argv.join(" ")),
    }
}
