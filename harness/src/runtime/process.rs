//! The process runtime: each container is a real OS process (hostbot, or the command an image
//! entry names), in its own process group, with its own mount and UTS namespaces when it has
//! volumes, stdout and stderr captured into its [`ContainerLog`].
//!
//! Signals go to the whole process group, as a container runtime signals the whole container.
//! After the main process exits the group gets a SIGKILL, so nothing it started outlives it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::mounts::{self, MountPlan};
use super::namespace::{self, ChildSetup, Ns, Support};
use super::{ContainerConfig, ExecOutput, Exit};
use crate::kubelet::logs::{ContainerLog, pump};
use crate::runtime::catalog::HOSTBOT;

/// The PATH a container gets when its environment has none (an image's usual one).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of an exec's output is kept (upstream keeps 10 KiB of probe output).
const MAX_EXEC_OUTPUT: usize = 10 * 1024;

/// Starts container processes.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    hostbot_command: Vec<OsString>,
    tracker: TaskTracker,
}

/// One running container process.
#[derive(Debug)]
pub struct ProcessInstance {
    child: Child,
    pid: u32,
    log: Arc<ContainerLog>,
    readers: Vec<JoinHandle<()>>,
    exec: ProcessExec,
}

/// What running a command inside a container needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct ProcessExec {
    pid: u32,
    env: Vec<(String, String)>,
    namespaced: Option<Support>,
}

impl ProcessRuntime {
    /// A runtime that runs hostbot as `hostbot_command` (program and leading arguments).
    pub fn new(hostbot_command: Vec<OsString>, tracker: TaskTracker) -> ProcessRuntime {
        ProcessRuntime {
            hostbot_command,
            tracker,
        }
    }

    /// The program and arguments to run, with [`HOSTBOT`] replaced by the hostbot command.
    fn argv(&self, argv: &[String]) -> Result<Vec<OsString>, String> {
        let Some(first) = argv.first() else {
            return Err("no command specified".to_owned());
        };
        let mut out: Vec<OsString> = if first == HOSTBOT {
            if self.hostbot_command.is_empty() {
                return Err("no hostbot command configured".to_owned());
            }
            self.hostbot_command.clone()
        } else {
            vec![first.into()]
        };
        out.extend(argv[1..].iter().map(OsString::from));
        Ok(out)
    }

    /// Starts a container process.
    pub async fn start(&self, config: &ContainerConfig) -> Result<ProcessInstance, String> {
        let argv = self.argv(&config.argv)?;
        let plan = mounts::plan(&config.mounts, &config.scratch, |p| p.exists());
        for (path, why) in &plan.skipped {
            tracing::warn!(
                pod = %config.pod, container = %config.name, mount_path = %path.display(),
                "volume not mounted: {why}; the process finds it through CONFIG_DIR"
            );
        }
        let support = namespace::support();
        let ns = match support.ns() {
            Some(ns) => Some(ns),
            None if plan.is_empty() => None,
            None => return Err(namespace::UNAVAILABLE.to_owned()),
        };
        let namespaced = ns.as_ref().map(|_| support);
        let setup = prepare(&plan, config, ns)
            .map_err(|e| format!("failed to prepare the container's mounts: {e}"))?;

        let mut command = command(&argv, &config.env);
        setup.install(&mut command);
        let mut child = super::spawner::spawn(command)
            .await
            .map_err(|e| start_error(&argv[0], &e))?;
        let pid = child.id().ok_or("the container process exited at once")?;
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(self.tracker.spawn(pump(out, config.log.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(self.tracker.spawn(pump(err, config.log.clone())));
        }
        Ok(ProcessInstance {
            child,
            pid,
            log: config.log.clone(),
            readers,
            exec: ProcessExec {
                pid,
                env: config.env.clone(),
                namespaced,
            },
        })
    }
}

fn prepare(plan: &MountPlan, config: &ContainerConfig, ns: Option<Ns>) -> io::Result<ChildSetup> {
    for dir in plan.scratch_dirs() {
        std::fs::create_dir_all(dir)?;
    }
    ChildSetup::container(ns, plan, &config.hostname, config.working_dir.as_deref())
}

/// The command for a container's process or an exec in it: `argv` (not empty) with exactly the
/// container's environment (and [`DEFAULT_PATH`] unless it sets `PATH`), in `/`, in a process
/// group of its own, with stdin closed and stdout and stderr piped.
fn command<S: AsRef<OsStr>>(argv: &[S], env: &[(String, String)]) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if !env.iter().any(|(k, _)| k == "PATH") {
        command.env("PATH", DEFAULT_PATH);
    }
    command
}

/// Upstream-like wording for a process that cannot start.
fn start_error(program: &OsString, err: &io::Error) -> String {
    let program = program.to_string_lossy();
    match err.kind() {
        io::ErrorKind::NotFound => format!(
            "failed to start container process: exec: \"{program}\": executable file not found in $PATH"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("failed to start container process: exec: \"{program}\": permission denied")
        }
        _ => format!("failed to start container process {program}: {err}"),
    }
}

fn exit_of(status: io::Result<ExitStatus>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Exit { code, signal: None },
            (None, Some(signal)) => Exit {
                code: 128 + signal,
                signal: Some(signal),
            },
            (None, None) => Exit {
                code: 255,
                signal: None,
            },
        },
        Err(_) => Exit {
            code: 255,
            signal: None,
        },
    }
}

impl ProcessInstance {
    /// The main process's id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What running a command in this container needs.
    pub fn exec(&self) -> ProcessExec {
        self.exec.clone()
    }

    /// Waits for the main process to exit, then kills what is left of its group and ends the
    /// log once the pipes are drained.
    pub async fn wait(&mut self) -> Exit {
        let exit = exit_of(self.child.wait().await);
        namespace::signal_group(self.pid, libc::SIGKILL);
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        self.log.end();
        exit
    }
}

impl ProcessExec {
    /// Runs `argv` inside the container (its namespaces, its environment) with a timeout;
    /// the combined output is kept up to 10 KiB.
    pub async fn run(&self, argv: &[String], timeout: Duration) -> Result<ExecOutput, String> {
        let Some(program) = argv.first() else {
            return Err("exec: no command given".to_owned());
        };
        // Keep the namespace files open until the child has joined them.
        let mut files = Vec::new();
        if let Some(support) = self.namespaced {
            let mut kinds = vec![("mnt", libc::CLONE_NEWNS), ("uts", libc::CLONE_NEWUTS)];
            if support == Support::User {
                kinds.insert(0, ("user", libc::CLONE_NEWUSER));
            }
            for (name, kind) in kinds {
                let path = format!("/proc/{}/ns/{name}", self.pid);
                let file =
                    File::open(&path).map_err(|e| format!("exec: cannot open {path}: {e}"))?;
                files.push((file, kind));
            }
        }
        let join = files.iter().map(|(f, k)| (f.as_raw_fd(), *k)).collect();
        let mut command = command(argv, &self.env);
        ChildSetup::joining(join).install(&mut command);
        let mut child = super::spawner::spawn(command)
            .await
            .map_err(|e| start_error(&OsString::from(program), &e))?;
        drop(files);
        let pid = child.id().unwrap_or(0);
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let collect = async {
            let mut output = Vec::new();
            let mut a = Vec::new();
            let mut b = Vec::new();
            let read_out = async {
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut a).await;
                }
            };
            let read_err = async {
                if let Some(e) = err.as_mut() {
                    let _ = e.read_to_end(&mut b).await;
                }
            };
            tokio::join!(read_out, read_err);
            let status = child.wait().await;
            output.extend_from_slice(&a);
            output.extend_from_slice(&b);
            output.truncate(MAX_EXEC_OUTPUT);
            (exit_of(status), output)
        };
        match tokio::time::timeout(timeout, collect).await {
            Ok((exit, output)) => Ok(ExecOutput {
                exit_code: exit.code,
                output: String::from_utf8_lossy(&output).into_owned(),
            }),
            Err(_) => {
                namespace::signal_group(pid, libc::SIGKILL);
                Err(format!(
                    "command {:?} timed out after {timeout:?}",
                    argv.join(" ")
                ))
            }
        }
    }
}
