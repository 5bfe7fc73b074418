//! [`ClusterOps`]: the handful of cluster operations a scenario needs. The checker drives every
//! cluster through this trait only, so the same scenarios run on the embedded cluster and on a
//! real one.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

/// What the checker needs to know about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub ready: bool,
    pub terminating: bool,
    /// Container restarts, summed over the pod's containers.
    pub restarts: i32,
    pub labels: BTreeMap<String, String>,
}

/// Where a Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutState {
    pub complete: bool,
    /// The Deployment's `deployment.kubernetes.io/revision` (empty before the first sync).
    pub revision: String,
    /// kubectl's `rollout status` sentence, for messages.
    pub message: String,
}

/// Operations on one namespace of a cluster.
pub trait ClusterOps: Send + Sync {
    /// Applies a manifest file or directory.
    fn apply(&self, path: &Path) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// A JSON merge patch on one object (`kind` as kubectl spells it).
    fn merge_patch(
        &self,
        kind: &str,
        name: &str,
        patch: serde_json::Value,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Deletes one object.
    fn delete(&self, kind: &str, name: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The pods whose labels match `selector` (kubectl's `-l` syntax).
    fn pods(&self, selector: &str) -> impl Future<Output = anyhow::Result<Vec<PodInfo>>> + Send;
    /// Whether [`ClusterOps::kill_container`] can work here: only the embedded cluster can reach
    /// a container's process (no Kubernetes API offers it), so scenarios skip their kill steps
    /// elsewhere.
    fn can_kill(&self) -> bool {
        true
    }
    /// Signals the first container's process of a pod from the node: SIGKILL when `hard` (a
    /// crash), else SIGTERM; the kubelet restarts it either way.
    fn kill_container(
        &self,
        pod: &str,
        hard: bool,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The rollout state of a Deployment, as `kubectl rollout status` judges it.
    fn rollout(
        &self,
        deployment: &str,
    ) -> impl Future<Output = anyhow::Result<RolloutState>> + Send;
    /// Sets a container's image (the first container when `container` is `None`), as
    /// `kubectl set image` does.
    fn set_image(
        &self,
        deployment: &str,
        container: Option<&str>,
        image: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The checker's view of a pod.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodInfo {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restarts: pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |c| c.iter().map(|c| c.restart_count).sum()),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    }
}

/// `kubectl rollout status`'s judgement of a Deployment.
pub fn rollout_state(d: &Deployment) -> RolloutState {
    let name = d.metadata.name.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let deadline = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let (complete, message) = if status.observed_generation.unwrap_or(0) < generation {
        (
            false,
            "Waiting for deployment spec update to be observed...".to_owned(),
        )
    } else if deadline {
        (
            false,
            format!("deployment {name:?} exceeded its progress deadline"),
        )
    } else if updated < want {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
            ),
        )
    } else if total > updated {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                total - updated
            ),
        )
    } else if available < updated {
        (
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        )
    } else {
        (true, format!("deployment {name:?} successfully rolled out"))
    };
    let revision = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .cloned()
        .unwrap_or_default();
    RolloutState {
        complete,
        revision,
        message,
    }
}

/// The merge patch of `kubectl rollout restart`.
pub fn restart_patch(now: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": now
    }}}}})
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(entries) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let map = target.as_object_mut().expect("made an object above");
            for (key, value) in entries {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": [1]}),
                json!({"a": [2, 3]}),
                json!({"a": [2, 3]}),
            ),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!([1]), json!({"a": 1}), json!({"a": 1})),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }
}
