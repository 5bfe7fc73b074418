//! Which pod `port-forward deploy/x` (or `rs/x`, pinned `svc/x`) attaches to, and which pod port
//! a service port means: kubectl's `AttachablePodForObject` and
//! `LookupContainerPortNumberByServicePort`, as pure functions.
//!
//! kubectl lists the pods matching the selector and sorts them with
//! `sort.Reverse(podutils.ActivePods)`, taking the first: the most "active" pod, that is one
//! assigned to a node, then Running before Unknown before Pending, Ready before not, ready the
//! longest, with the fewest restarts, and the oldest.

use std::cmp::Ordering;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Error, Result};

/// The pod kubectl would attach to, among `pods`.
pub fn attachable_pod(mut pods: Vec<Pod>) -> Option<Pod> {
    pods.sort_by(|a, b| more_active(a, b).then_with(|| name(a).cmp(name(b))));
    pods.into_iter().next()
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// `Less` when `a` is more active than `b` (kubectl's `ActivePods.Less(b, a)`).
fn more_active(a: &Pod, b: &Pod) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let by_phase = phase_rank(b).cmp(&phase_rank(a));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    let (ra, rb) = (ready_since(a), ready_since(b));
    match (ra, rb) {
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        (Some(ta), Some(tb)) if ta != tb => return older_first(ta, tb),
        _ => {}
    }
    let by_restarts = restarts(a).cmp(&restarts(b));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    older_first(created(a), created(b))
}

/// Earlier times first, an unknown time last (kubectl's `afterOrZero`).
fn older_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Running" => 2,
        "Unknown" => 1,
        _ => 0,
    }
}

/// `Some(since)` when the pod is Ready (`since` is the condition's transition time, if known).
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

/// The pod's phase, for "not running" errors.
pub fn pod_phase(pod: &Pod) -> &str {
    phase(pod)
}

/// The pod port behind service port `port`: a numeric `targetPort` (0 or unset means `port`), or
/// a named one looked up in the pod's container ports.
pub fn target_port(service: &Service, pod: &Pod, port: u16) -> Result<u16> {
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let spec_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == i32::from(port)))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "service \"{service_name}\" does not have a service port {port}"
            ))
        })?;
    match &spec_port.target_port {
        None => Ok(port),
        Some(IntOrString::Int(0)) => Ok(port),
        Some(IntOrString::Int(n)) => u16::try_from(*n).map_err(|_| {
            Error::BadRequest(format!(
                "service \"{service_name}\" port {port} has an invalid targetPort {n}"
            ))
        }),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "pod \"{}\" does not have a named port \"{name}\"",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<&str>,
        restarts: i32,
        created: &str,
    ) -> Pod {
        let mut conditions = vec![];
        if let Some(at) = ready_at {
            conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": at}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {
                "phase": phase,
                "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready_at.is_some(), "restartCount": restarts}]
            }
        }))
        .unwrap()
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-01T00:01:00Z";

    #[test]
    fn picks_the_most_active_pod() {
        // Each case: candidates, expected pick. The winner differs from the loser in one rule.
        let cases = [
            (
                "assigned beats unassigned",
                vec![
                    pod("a", "", "Running", Some(T1), 0, T1),
                    pod("b", "node", "Running", Some(T1), 0, T1),
                ],
                "b",
            ),
            (
                "running beats pending",
                vec![
                    pod("a", "n", "Pending", None, 0, T1),
                    pod("b", "n", "Running", None, 0, T2),
                ],
                "b",
            ),
            (
                "running beats unknown",
                vec![
                    pod("a", "n", "Unknown", None, 0, T1),
                    pod("b", "n", "Running", None, 0, T2),
                ],
                "b",
            ),
            (
                "ready beats not ready",
                vec![
                    pod("a", "n", "Running", None, 0, T1),
                    pod("b", "n", "Running", Some(T2), 0, T2),
                ],
                "b",
            ),
            (
                "ready longer wins",
                vec![
                    pod("a", "n", "Running", Some(T2), 0, T1),
                    pod("b", "n", "Running", Some(T1), 0, T2),
                ],
                "b",
            ),
            (
                "fewer restarts win",
                vec![
                    pod("a", "n", "Running", Some(T1), 3, T1),
                    pod("b", "n", "Running", Some(T1), 0, T2),
                ],
                "b",
            ),
            (
                "older wins",
                vec![
                    pod("a", "n", "Running", Some(T1), 0, T2),
                    pod("b", "n", "Running", Some(T1), 0, T1),
                ],
                "b",
            ),
        ];
        for (what, pods, want) in cases {
            let mut reversed = pods.clone();
            reversed.reverse();
            assert_eq!(name(&attachable_pod(pods).unwrap()), want, "{what}");
            assert_eq!(
                name(&attachable_pod(reversed).unwrap()),
                want,
                "{what} (reversed input)"
            );
        }
        assert!(attachable_pod(vec![]).is_none());
    }

    #[test]
    fn service_ports_map_to_pod_ports() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [
                {"port": 80, "targetPort": 8080},
                {"port": 81, "targetPort": "http"},
                {"port": 82},
                {"port": 83, "targetPort": "nope"}
            ]}
        }))
        .unwrap();
        let p = pod("web-1", "n", "Running", Some(T1), 0, T1);
        assert_eq!(target_port(&service, &p, 80).unwrap(), 8080);
        assert_eq!(target_port(&service, &p, 81).unwrap(), 8080);
        assert_eq!(target_port(&service, &p, 82).unwrap(), 82);
        assert_eq!(
            target_port(&service, &p, 83).unwrap_err().to_string(),
            "pod \"web-1\" does not have a named port \"nope\""
        );
        assert_eq!(
            target_port(&service, &p, 8080).unwrap_err().to_string(),
            "service \"web\" does not have a service port 8080"
        );
    }
}
