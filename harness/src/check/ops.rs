//! [`ClusterOps`]: the handful of cluster operations a scenario needs. The checker drives every
//! cluster through this trait only, so the same scenarios run on the embedded cluster and on a
//! real one.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

/// What the checker needs to know about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub ready: bool,
    pub terminating: bool,
    pub labels: BTreeMap<String, String>,
}

/// Where a Deployment's rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutState {
    pub complete: bool,
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
    /// Kills the first container of a pod as a crash would.
    fn kill_container(&self, pod: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The rollout state of a Deployment, as `kubectl rollout status` judges it.
    fn rollout(&self, deployment: &str)
    -> impl Future<Output = anyhow::Result<RolloutState>> + Send;
    /// Sets a container's image (the first container when `container` is `None`), as
    /// `kubectl set image` does.
    fn set_image(
        &self,
        deployment: &str,
        container: Option<&str>,
        image: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
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
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": [1]}), json!({"a": [2, 3]}), json!({"a": [2, 3]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!([1]), json!({"a": 1}), json!({"a": 1})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }
}
