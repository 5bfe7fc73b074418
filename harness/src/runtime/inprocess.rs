//! The in-process runtime: a hostbot container is a task inside the harness running the
//! hostbot library ([`hostbot::run_with_force`]) on a listener bound to the pod's IP, so a
//! thousand pods cost a thousand tasks instead of a thousand processes.
//!
//! The container's environment is turned into hostbot's settings by hostbot's own command line
//! definition ([`hostbot::Args`]): each variable the CLI reads (`PORT`, `VERSION`,
//! `DRAIN_DELAY`, the fault knobs...) is passed as the matching flag, so both runtimes read the
//! environment the same way. A variable the container does not set falls back, as with clap's
//! `env`, to the harness's own environment.
//!
//! What an in-process container cannot have: a mount namespace (its `CONFIG_DIR` is rewritten
//! from the mountPath to the volume's directory on the host), a process id, signals (SIGTERM is
//! the graceful token, SIGKILL the force token, reported as exit code 137), exec probes and
//! exec hooks, and its own log lines (hostbot logs through the harness's tracing).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{CommandFactory as _, Parser as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mounts::MountSpec;
use super::{ContainerConfig, Exit};
use crate::kubelet::logs::ContainerLog;

/// Starts in-process hostbot containers.
#[derive(Debug, Clone)]
pub struct InProcessRuntime {
    tracker: TaskTracker,
}

/// One in-process hostbot.
#[derive(Debug)]
pub struct TaskInstance {
    graceful: CancellationToken,
    force: CancellationToken,
    task: Option<JoinHandle<Result<(), hostbot::Error>>>,
    log: Arc<ContainerLog>,
}

impl InProcessRuntime {
    pub fn new(tracker: TaskTracker) -> InProcessRuntime {
        InProcessRuntime { tracker }
    }

    /// Binds the listener and starts serving.
    pub async fn start(&self, config: &ContainerConfig) -> Result<TaskInstance, String> {
        let args = hostbot_args(&config.env)?;
        let mut settings = args.config();
        if let Some(dir) = settings.config_dir.take() {
            settings.config_dir = Some(host_path(&dir, &config.mounts));
        }
        let addr: SocketAddr = format!("{}:{}", args.host, args.port)
            .parse()
            .or_else(|_| format!("{}:{}", config.pod_ip, args.port).parse())
            .map_err(|e| format!("invalid listen address {}:{}: {e}", args.host, args.port))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("hostbot: cannot listen on {addr}: {e}"))?;
        config.log.push(
            format!(
                "hostbot {} serving in-process on {addr} as {}\n",
                settings.version, settings.hostname
            )
            .into_bytes(),
        );
        let graceful = CancellationToken::new();
        let force = CancellationToken::new();
        let task = self.tracker.spawn(hostbot::run_with_force(
            listener,
            settings,
            graceful.clone(),
            force.clone(),
        ));
        Ok(TaskInstance {
            graceful,
            force,
            task: Some(task),
            log: config.log.clone(),
        })
    }
}

/// hostbot's [`hostbot::Args`] from a container environment, through its own flag definitions.
pub fn hostbot_args(env: &[(String, String)]) -> Result<hostbot::Args, String> {
    let command = hostbot::Args::command();
    let mut argv: Vec<OsString> = vec!["hostbot".into()];
    for arg in command.get_arguments() {
        let (Some(name), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let Some((_, value)) = env.iter().rev().find(|(k, _)| name == k.as_str()) else {
            continue;
        };
        if arg.get_action().takes_values() {
            argv.push(format!("--{long}={value}").into());
        } else if truthy(value) {
            argv.push(format!("--{long}").into());
        }
    }
    hostbot::Args::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        format!("hostbot: {}", first.trim_start_matches("error: "))
    })
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "y" | "on"
    )
}

/// The host path behind a path inside the container: the mount source when the path is at or
/// below a mountPath.
fn host_path(path: &Path, mounts: &[MountSpec]) -> PathBuf {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.target))
        .max_by_key(|m| m.target.components().count())
        .map_or_else(
            || path.to_path_buf(),
            |m| {
                m.source
                    .join(path.strip_prefix(&m.target).unwrap_or(Path::new("")))
            },
        )
}

impl TaskInstance {
    /// The graceful shutdown token (SIGTERM).
    pub fn graceful(&self) -> CancellationToken {
        self.graceful.clone()
    }

    /// The forced shutdown token (SIGKILL).
    pub fn force(&self) -> CancellationToken {
        self.force.clone()
    }

    /// Waits for hostbot to return: 0 after a drain, the crash code of a crash fault, 137 when
    /// killed.
    pub async fn wait(&mut self) -> Exit {
        let result = match self.task.as_mut() {
            Some(task) => task.await,
            None => {
                return Exit {
                    code: 0,
                    signal: None,
                };
            }
        };
        self.task = None;
        let exit = if self.force.is_cancelled() {
            Exit {
                code: 137,
                signal: Some(libc::SIGKILL),
            }
        } else {
            match result {
                Ok(Ok(())) => Exit {
                    code: 0,
                    signal: None,
                },
                Ok(Err(err)) => {
                    self.log.push(format!("hostbot: {err}\n").into_bytes());
                    Exit {
                        code: i32::from(err.exit_code()),
                        signal: None,
                    }
                }
                Err(join) => {
                    self.log
                        .push(format!("hostbot task failed: {join}\n").into_bytes());
                    Exit {
                        code: 2,
                        signal: None,
                    }
                }
            }
        };
        self.log.end();
        exit
    }
}

impl Drop for TaskInstance {
    fn drop(&mut self) {
        // Like kill_on_drop for processes: nothing outlives its handle.
        self.force.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_becomes_hostbot_settings() {
        let args = hostbot_args(&env(&[
            ("HOST", "127.1.0.3"),
            ("PORT", "8080"),
            ("HOSTNAME", "web-1"),
            ("VERSION", "1.4"),
            ("DRAIN_DELAY", "250ms"),
            ("NEVER_READY", "true"),
            ("CRASH_AT_START", "false"),
            ("UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!((args.host.as_str(), args.port), ("127.1.0.3", 8080));
        let config = args.config();
        assert_eq!(config.hostname, "web-1");
        assert_eq!(config.version, "1.4");
        assert_eq!(config.drain_delay, std::time::Duration::from_millis(250));
        assert!(config.faults.never_ready);
        assert!(!config.faults.crash_at_start);
        let err = hostbot_args(&env(&[("PORT", "eighty")])).unwrap_err();
        assert!(err.contains("eighty"), "{err}");
    }

    #[test]
    fn config_dir_moves_to_the_volume_on_the_host() {
        let mounts = [MountSpec {
            source: "/state/pods/u/volumes/config".into(),
            target: "/etc/hostbot".into(),
            read_only: true,
            file: false,
        }];
        assert_eq!(
            host_path(Path::new("/etc/hostbot"), &mounts),
            Path::new("/state/pods/u/volumes/config")
        );
        assert_eq!(
            host_path(Path::new("/etc/hostbot/sub"), &mounts),
            Path::new("/state/pods/u/volumes/config/sub")
        );
        assert_eq!(
            host_path(Path::new("/etc/other"), &mounts),
            Path::new("/etc/other")
        );
    }
}
