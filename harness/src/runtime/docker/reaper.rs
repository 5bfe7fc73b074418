//! Nothing left behind: every container the docker runtime creates carries labels naming the
//! harness that owns it, and this module removes containers by those labels.
//!
//! Containers are not children of the harness: when the harness dies, no `PR_SET_PDEATHSIG`
//! stops them. So:
//! - a normal shutdown removes each container when its pod stops, then sweeps what is left of
//!   the instance ([`remove_instance`]);
//! - a dropped runtime (a panic unwinding, a test that failed half-way) sweeps from its `Drop`
//!   on a thread of its own ([`remove_instance_blocking`]); with `panic = "abort"` (release
//!   builds) a panic hook does it for the whole process ([`install_panic_hook`]);
//! - a harness that was killed (SIGKILL, OOM) cannot clean up, so every start removes the
//!   containers whose owner process is gone ([`remove_leftovers`]). An owner is a process id
//!   together with its start time (pids are reused) and its pid namespace (a harness in
//!   another container sharing the engine is not ours to judge).

use std::collections::HashMap;
use std::sync::Once;
use std::time::Duration;

use testcontainers::bollard::Docker;
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::models::ContainerSummary;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};

/// The harness instance (one per cluster).
pub const INSTANCE: &str = "harness.instance";
/// The owner process id, its start time (clock ticks since boot) and its pid namespace.
pub const PID: &str = "harness.pid";
pub const PID_START: &str = "harness.pid-start";
pub const PID_NS: &str = "harness.pidns";

/// How long a sweep from `Drop` or a panic hook may take.
const BLOCKING_SWEEP: Duration = Duration::from_secs(15);

/// The process that owns containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`; empty when unknown.
    pub start: String,
    /// `pid:[4026531836]`; empty when unknown.
    pub pidns: String,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid).unwrap_or_default(),
            pidns: pid_namespace(),
        }
    }

    /// The labels that name this owner.
    pub fn labels(&self) -> [(&'static str, String); 3] {
        [
            (PID, self.pid.to_string()),
            (PID_START, self.start.clone()),
            (PID_NS, self.pidns.clone()),
        ]
    }

    /// Whether a container with these labels belongs to a harness that is gone: same pid
    /// namespace as ours, and its process no longer exists (or is another process now).
    pub fn is_gone(labels: &HashMap<String, String>) -> bool {
        let (Some(pid), Some(ns)) = (labels.get(PID), labels.get(PID_NS)) else {
            return false;
        };
        if ns.is_empty() || *ns != pid_namespace() {
            return false;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            return false;
        };
        match (start_time(pid), labels.get(PID_START)) {
            (None, _) => true,
            (Some(now), Some(then)) if !then.is_empty() => now != *then,
            (Some(_), _) => false,
        }
    }
}

/// The start time of process `pid` in clock ticks since boot, if it exists.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command start at field 3 (state); starttime is field 22.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_owned)
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every container, running or not, that matches `label` (`key` or `key=value`).
async fn list_labelled(
    docker: &Docker,
    label: String,
) -> Result<Vec<ContainerSummary>, DockerError> {
    let filter = HashMap::from([("label".to_owned(), vec![label])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filter)
        .build();
    docker.list_containers(Some(options)).await
}

/// Force-removes every container (running or not) with label `key=value`; returns how many.
pub async fn remove_labelled(docker: &Docker, key: &str, value: &str) -> Result<usize, String> {
    let found = list_labelled(docker, format!("{key}={value}"))
        .await
        .map_err(|e| format!("cannot list containers labelled {key}={value}: {e}"))?;
    let mut removed = 0;
    for container in found {
        if let Some(id) = container.id
            && remove(docker, &id).await
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Force-removes one container (and its anonymous volumes); false when it failed.
pub async fn remove(docker: &Docker, id: &str) -> bool {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => true,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(e) => {
            tracing::warn!(container = %id, "cannot remove container: {e}");
            false
        }
    }
}

/// Removes what is left of one harness instance.
pub async fn remove_instance(docker: &Docker, instance: &str) -> Result<usize, String> {
    remove_labelled(docker, INSTANCE, instance).await
}

/// Removes the containers of harnesses that were killed (see the module docs).
pub async fn remove_leftovers(docker: &Docker) -> Result<usize, String> {
    let found = list_labelled(docker, INSTANCE.to_owned())
        .await
        .map_err(|e| format!("cannot list harness containers: {e}"))?;
    let mut removed = 0;
    for container in found {
        let labels = container.labels.unwrap_or_default();
        if Owner::is_gone(&labels)
            && let Some(id) = container.id
            && remove(docker, &id).await
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// [`remove_labelled`] from synchronous code (a `Drop`, a panic hook): on a thread with a
/// runtime of its own, so it works inside or outside any async runtime, within a deadline.
pub fn remove_labelled_blocking(docker: Docker, key: &'static str, value: String) {
    let sweep = std::thread::Builder::new()
        .name("harness-docker-sweep".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime
                .block_on(async {
                    tokio::time::timeout(BLOCKING_SWEEP, remove_labelled(&docker, key, &value))
                        .await
                })
                .ok()
        });
    if let Ok(handle) = sweep {
        match handle.join() {
            Ok(Some(Ok(n))) if n > 0 => {
                tracing::warn!("removed {n} docker containers left behind");
            }
            Ok(Some(Err(e))) => tracing::warn!("{e}"),
            _ => {}
        }
    }
}

/// [`remove_instance`] from synchronous code.
pub fn remove_instance_blocking(docker: Docker, instance: String) {
    remove_labelled_blocking(docker, INSTANCE, instance);
}

/// With `panic = "abort"` a panic runs no destructor: remove this process's containers from
/// the panic hook before the abort. With unwinding, destructors do it (and a hook would also
/// fire for panics that are caught), so nothing is installed.
pub fn install_panic_hook(docker: &Docker) {
    if !cfg!(panic = "abort") {
        return;
    }
    static INSTALLED: Once = Once::new();
    let docker = docker.clone();
    INSTALLED.call_once(move || {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            remove_labelled_blocking(docker.clone(), PID, std::process::id().to_string());
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(owner: &Owner) -> HashMap<String, String> {
        owner
            .labels()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn living_owners_keep_their_containers() {
        let me = Owner::current();
        assert!(!me.start.is_empty() && !me.pidns.is_empty(), "{me:?}");
        assert!(!Owner::is_gone(&labels(&me)));
        // Another living process (pid 1) in our namespace, without a start time: kept.
        let mut init = labels(&me);
        init.insert(PID.into(), "1".into());
        init.remove(PID_START);
        assert!(!Owner::is_gone(&init));
    }

    #[test]
    fn dead_or_reused_pids_are_gone_other_namespaces_are_not_ours() {
        let me = Owner::current();
        let mut reused = labels(&me);
        reused.insert(PID_START.into(), "1".into());
        assert!(Owner::is_gone(&reused), "same pid, other start time");
        let mut dead = labels(&me);
        dead.insert(PID.into(), u32::MAX.to_string());
        assert!(Owner::is_gone(&dead));
        let mut elsewhere = dead.clone();
        elsewhere.insert(PID_NS.into(), "pid:[1]".into());
        assert!(!Owner::is_gone(&elsewhere));
        assert!(!Owner::is_gone(&HashMap::new()), "unlabelled: not ours");
    }
}
