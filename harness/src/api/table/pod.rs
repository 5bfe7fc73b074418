//! A pod's Table row as upstream's `printPod` computes it: READY counts ready containers
//! (restartable init containers included), STATUS is the phase unless a container state says
//! more (`ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, `Init:0/1`,
//! `Init:ErrImagePull`, `Completed`, `ExitCode:2`, and `Terminating` once a deletion is
//! pending), RESTARTS adds `(5s ago)` after the last restart.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::printer::or_none;
use super::{human_duration, since};

pub fn cells(pod: &Pod, now: Timestamp) -> Vec<Value> {
    let summary = pod_summary(pod, now);
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .or(status.pod_ip.clone())
        .unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let gates = spec.readiness_gates.unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let ready = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| c.type_ == g.condition_type)
                    .is_some_and(|c| c.status == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(summary.ready),
        json!(summary.status),
        json!(summary.restarts),
        json!(since(pod.metadata.creation_timestamp.as_ref(), now)),
        json!(or_none(&ip)),
        json!(or_none(spec.node_name.as_deref().unwrap_or_default())),
        json!(or_none(
            status.nominated_node_name.as_deref().unwrap_or_default()
        )),
        json!(readiness_gates),
    ]
}

/// READY, STATUS and RESTARTS of a pod.
#[derive(Debug, PartialEq, Eq)]
pub struct PodSummary {
    pub ready: String,
    pub status: String,
    pub restarts: String,
}

fn condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .is_some_and(|c| c.status == "True")
}

fn later(a: Option<Timestamp>, b: Option<&Time>) -> Option<Timestamp> {
    match (a, b.map(|t| t.0)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The pod's row summary, following upstream's `printPod` step by step.
pub fn pod_summary(pod: &Pod, now: Timestamp) -> PodSummary {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or(phase.clone());
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.reason.as_deref() == Some("SchedulingGated")
        {
            reason = "SchedulingGated".to_owned();
        }
    }
    let init_specs = spec.init_containers.unwrap_or_default();
    let restartable = |name: &str| {
        init_specs
            .iter()
            .find(|c| c.name == name)
            .is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
    };
    let total = spec.containers.len()
        + init_specs
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut initializing = false;
    for (i, container) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += i64::from(container.restart_count);
        let last_terminated = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        if let Some(t) = last_terminated {
            last_restart = later(last_restart, t.finished_at.as_ref());
        }
        let is_sidecar = restartable(&container.name);
        if is_sidecar {
            sidecar_restarts += i64::from(container.restart_count);
            if let Some(t) = last_terminated {
                last_sidecar_restart = later(last_sidecar_restart, t.finished_at.as_ref());
            }
        }
        let state = container.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar && container.started == Some(true) {
            if container.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for container in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(container.restart_count);
            if let Some(t) = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
            {
                last_restart = later(last_restart, t.finished_at.as_ref());
            }
            let state = container.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_owned(),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(signal) => format!("Signal:{signal}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if container.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".to_owned();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_owned();
        }
    }
    let restarts = match last_restart {
        Some(at) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration(now.duration_since(at).as_secs())
            )
        }
        _ => restarts.to_string(),
    };
    PodSummary {
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn status_of(value: Value) -> String {
        pod_summary(&pod(value), Timestamp::now()).status
    }

    #[test]
    fn pod_status_words() {
        let one = json!([{"name": "web"}]);
        let cases = [
            (
                json!({"spec": {"containers": one}, "status": {"phase": "Pending"}}),
                "Pending",
            ),
            (
                json!({"spec": {"containers": one}, "status": {"phase": "Pending",
                "containerStatuses": [{"name": "web", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
                "ContainerCreating",
            ),
            (
                json!({"spec": {"containers": one}, "status": {"phase": "Running",
                "containerStatuses": [{"name": "web", "image": "", "imageID": "", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                "CrashLoopBackOff",
            ),
            (
                json!({"spec": {"containers": one}, "status": {"phase": "Succeeded",
                "containerStatuses": [{"name": "web", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                "Completed",
            ),
            (
                json!({"spec": {"containers": one}, "status": {"phase": "Failed",
                "containerStatuses": [{"name": "web", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 2}}}]}}),
                "ExitCode:2",
            ),
            (
                json!({"spec": {"containers": one, "initContainers": [{"name": "init"}]}, "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"running": {}}}]}}),
                "Init:0/1",
            ),
            (
                json!({"spec": {"containers": one, "initContainers": [{"name": "init"}]}, "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ErrImagePull"}}}]}}),
                "Init:ErrImagePull",
            ),
            (
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}, "spec": {"containers": one},
                "status": {"phase": "Running"}}),
                "Terminating",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(status_of(value.clone()), want, "{value}");
        }
    }

    #[test]
    fn ready_and_restarts_with_age() {
        let finished = Timestamp::now() - SignedDuration::from_secs(5);
        let p = pod(json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "image": "", "imageID": "", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": finished.to_string()}}},
                {"name": "b", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}
            ]}
        }));
        let summary = pod_summary(&p, Timestamp::now());
        assert_eq!(summary.ready, "1/2");
        assert_eq!(summary.status, "Running");
        assert_eq!(summary.restarts, "2 (5s ago)");
    }
}
