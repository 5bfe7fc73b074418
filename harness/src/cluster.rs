//! [`Cluster`]: the embedded cluster as one value. `Cluster::start` wires the store, the
//! controllers, the kubelet and the Service proxy under one root cancellation token and task
//! tracker; `shutdown` stops pods with their grace periods and waits for every task, so nothing
//! (process, port, temp directory) outlives it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::kubelet::{Kubelet, KubeletOptions};
use crate::manifest::{self, Outcome};
use crate::object::{Object, ObjectKey, Resource};
use crate::portforward::{self, PortForward, PortPair, Request, Target};
use crate::proxy::ServiceProxy;
use crate::runtime::RuntimeKind;
use crate::runtime::catalog::Catalog;
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store};

/// How to run the cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub runtime: RuntimeKind,
    /// The command that runs hostbot; found next to the running executable when `None`.
    pub hostbot_command: Option<Vec<OsString>>,
    /// An image catalog file added in front of the built-in one.
    pub catalog: Option<PathBuf>,
    /// Delay before a changed ConfigMap reaches mounted volumes (upstream: about a minute).
    pub config_sync_delay: Duration,
    /// First CrashLoopBackOff / ImagePullBackOff delay (upstream 10 s, doubling to the max).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            runtime: RuntimeKind::Process,
            hostbot_command: None,
            catalog: None,
            config_sync_delay: Duration::from_secs(1),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// A running embedded cluster.
pub struct Cluster {
    store: Arc<Store>,
    kubelet: Arc<Kubelet>,
    proxy: Arc<ServiceProxy>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    state_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts an empty cluster (namespaces `default` and `kube-system`).
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        let state_dir = tempfile::Builder::new()
            .prefix("harness-")
            .tempdir()
            .map_err(|e| Error::io("cannot create the cluster's state directory", e))?;
        let catalog = match &options.catalog {
            Some(path) => Catalog::from_file(path)?,
            None => Catalog::builtin(),
        };
        let hostbot_command = match options.hostbot_command.clone() {
            Some(command) => absolute_program(command)?,
            // Docker containers run their images' programs; no hostbot binary is needed.
            None if options.runtime == RuntimeKind::Docker => hostbot_command().unwrap_or_default(),
            None => hostbot_command()?,
        };
        crate::runtime::preflight(options.runtime)
            .await
            .map_err(|e| Error::io("the docker runtime cannot start", std::io::Error::other(e)))?;
        let store = Store::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ipam = Arc::new(Ipam::new(rand::random()));
        crate::controller::spawn(store.clone(), &tracker, cancel.child_token());
        let proxy =
            ServiceProxy::spawn(store.clone(), ipam.clone(), &tracker, cancel.child_token());
        let kubelet = crate::kubelet::spawn(
            store.clone(),
            ipam,
            KubeletOptions {
                runtime: options.runtime,
                hostbot_command,
                catalog,
                state_dir: state_dir.path().to_path_buf(),
                config_sync_delay: options.config_sync_delay,
                backoff_initial: options.backoff_initial,
                backoff_max: options.backoff_max,
                node_name: "harness".into(),
            },
            &tracker,
            cancel.child_token(),
        );
        Ok(Cluster {
            store,
            kubelet,
            proxy,
            cancel,
            tracker,
            state_dir: Some(state_dir),
        })
    }

    /// The cluster's private directory (volumes, logs, API files); removed at shutdown.
    pub fn state_dir(&self) -> &Path {
        self.state_dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// The object store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The node agent (logs, container processes).
    pub fn kubelet(&self) -> &Arc<Kubelet> {
        &self.kubelet
    }

    /// The Service proxy.
    pub fn proxy(&self) -> &Arc<ServiceProxy> {
        &self.proxy
    }

    /// The root cancellation token; cancelled by [`Cluster::shutdown`].
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The task tracker every cluster task runs on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Applies manifests from a file or directory, like `kubectl apply -f`.
    pub fn apply_path(&self, path: impl AsRef<Path>) -> Result<Vec<(ObjectKey, Outcome)>> {
        let manifests = manifest::load_path(path.as_ref())?;
        manifest::apply(&self.store, manifests)
    }

    /// One object.
    pub fn get<K: Resource>(&self, namespace: &str, name: &str) -> Option<K> {
        self.store.get_as(namespace, name)
    }

    /// Objects of one type in a namespace, filtered by a kubectl-style label selector.
    pub fn list<K: Resource>(&self, namespace: &str, selector: &str) -> Result<Vec<K>> {
        let selector = Selector::parse(selector).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.store.list_as(Some(namespace), &selector))
    }

    /// Deletes an object as `kubectl delete` does (graceful for pods, cascading).
    pub fn delete(&self, key: &ObjectKey) -> Result<Object> {
        self.store.delete(key, DeleteOptions::default())
    }

    /// Waits until `condition` holds, re-checking on every change in the store (and every
    /// 100 ms, for conditions on time).
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Store) -> bool,
    ) -> Result<()> {
        let mut changes = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if condition(&self.store) {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::Timeout { what: what.to_owned(), seconds: timeout.as_secs_f64() });
                }
                _ = self.cancel.cancelled() => return Err(Error::ShuttingDown),
                received = changes.recv() => {
                    if let Err(RecvError::Closed) = received {
                        return Err(Error::ShuttingDown);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Forwards local ports to a target (`pod/x`, `deploy/x`, `rs/x`, `svc/x`), as
    /// `kubectl port-forward TARGET 8080:80` does; `svc/` forwards each new connection through
    /// the Service.
    pub async fn port_forward(
        &self,
        namespace: &str,
        target: &str,
        ports: &[&str],
    ) -> Result<PortForward> {
        let target = Target::parse(target)?;
        let ports = ports
            .iter()
            .map(|p| PortPair::parse(p))
            .collect::<Result<Vec<_>>>()?;
        let mut request = Request::new(namespace, target, ports);
        request.addresses = vec![std::net::Ipv4Addr::LOCALHOST.into()];
        portforward::start(
            self.store.clone(),
            self.proxy.clone(),
            request,
            self.cancel.child_token(),
            &self.tracker,
        )
        .await
    }

    /// Stops everything: pods get their grace periods, then every task is awaited and the
    /// state directory removed.
    pub async fn shutdown(mut self) -> Result<()> {
        self.kubelet.shutdown().await;
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        if let Some(dir) = self.state_dir.take() {
            dir.close()
                .map_err(|e| Error::io("cannot remove the cluster's state directory", e))?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A cluster dropped without shutdown still stops its tasks; the kubelet's process guards
        // kill what is left.
        self.cancel.cancel();
    }
}

/// The command with its program made absolute when it is a relative path (`target/debug/hostbot`,
/// `./hostbot`): pods run in their own working directories, where it would not resolve. A path
/// that names no file is an error now rather than a failed container later; a bare name
/// (`hostbot`) is left to the search of `PATH`.
fn absolute_program(mut command: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(program) = command.first().map(std::path::PathBuf::from) else {
        return Err(Error::io(
            "the hostbot command is empty: give a program (HARNESS_HOSTBOT or ClusterOptions::hostbot_command)",
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    if program.components().count() == 1 && program.is_relative() {
        return Ok(command);
    }
    let absolute = std::path::absolute(&program)
        .map_err(|e| Error::io(format!("cannot resolve {}", program.display()), e))?;
    if !absolute.is_file() {
        return Err(Error::io(
            format!(
                "the hostbot program {} does not exist: build it with `cargo build -p hostbot` or point HARNESS_HOSTBOT at the binary",
                absolute.display()
            ),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    command[0] = absolute.into();
    Ok(command)
}

/// How to run hostbot: `$HARNESS_HOSTBOT`, else a `hostbot` binary beside this executable, else
/// this executable's hidden `hostbot` subcommand (the harness binary embeds hostbot).
pub fn hostbot_command() -> Result<Vec<OsString>> {
    if let Some(path) = std::env::var_os("HARNESS_HOSTBOT") {
        return absolute_program(vec![path]);
    }
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the running executable", e))?;
    let mut dirs = vec![];
    if let Some(dir) = exe.parent() {
        dirs.push(dir.to_path_buf());
        // Test binaries live in target/<profile>/deps.
        if let Some(up) = dir.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    for dir in dirs {
        let candidate = dir.join("hostbot");
        if candidate.is_file() {
            return Ok(vec![candidate.into()]);
        }
    }
    if exe.file_name().is_some_and(|n| n == "harness") {
        return Ok(vec![exe.into(), "hostbot".into()]);
    }
    Err(Error::io(
        "cannot find the hostbot binary: build it with `cargo build -p hostbot` or set HARNESS_HOSTBOT",
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_programs_become_absolute_and_missing_ones_are_named() {
        let here = std::env::current_dir().unwrap();
        // Cargo runs unit tests in the crate's directory, which has a Cargo.toml.
        let command = absolute_program(vec!["./Cargo.toml".into(), "serve".into()]).unwrap();
        assert_eq!(command[0], OsString::from(here.join("Cargo.toml")));
        assert_eq!(command[1], OsString::from("serve"));

        let bare = absolute_program(vec!["hostbot".into()]).unwrap();
        assert_eq!(bare, vec![OsString::from("hostbot")]);

        let err = absolute_program(vec!["target/nowhere/hostbot".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&here.join("target/nowhere/hostbot").display().to_string())
                && err.contains("does not exist"),
            "{err}"
        );
        assert!(absolute_program(vec![]).is_err());
    }
}
