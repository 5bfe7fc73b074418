//! Client-side apply through any Kubernetes API, for [`KubeOps::apply`](super::kube_ops::KubeOps):
//! the JSON merge patch that kubectl's three-way apply amounts to, so that scenarios can change
//! a workload and the next one can restore the shipped manifests.
//!
//! As with kubectl, the manifest is recorded in the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation. The patch sets every field of the manifest, and removes (`null`) the fields the
//! last applied manifest had and this one dropped, such as an env var a scenario added; fields
//! neither set (what controllers and other commands wrote) stay. As in the harness's own applier,
//! lists are replaced whole (kubectl merges some by key), and a Deployment's `spec.strategy`
//! keeps only the manifest's keys (upstream's `retainKeys`), so switching to Recreate drops
//! `rollingUpdate`.

use serde_json::{Map, Value};

use crate::manifest::LAST_APPLIED;

/// `manifest` with the last-applied annotation recording it, for a create.
pub fn with_last_applied(manifest: &Value) -> Value {
    let mut desired = manifest.clone();
    let mut recorded = manifest.clone();
    if let Some(annotations) = recorded
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            recorded["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    let text = format!("{recorded}\n");
    if !desired["metadata"].is_object() {
        desired["metadata"] = Value::Object(Map::new());
    }
    let metadata = desired["metadata"].as_object_mut().expect("made an object");
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    annotations[LAST_APPLIED] = Value::String(text);
    desired
}

/// The merge patch that applies `manifest` over `current` (the stored object).
pub fn patch(manifest: &Value, current: &Value) -> Value {
    let last: Value = current
        .pointer(&format!(
            "/metadata/annotations/{}",
            LAST_APPLIED.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let mut patch = with_last_applied(manifest);
    drop_removed(&mut patch, &last);
    if manifest["kind"] == "Deployment"
        && let (Some(stored), Some(wanted)) = (
            current.pointer("/spec/strategy").and_then(Value::as_object),
            patch
                .pointer_mut("/spec/strategy")
                .and_then(Value::as_object_mut),
        )
    {
        for key in stored.keys() {
            wanted.entry(key.clone()).or_insert(Value::Null);
        }
    }
    patch
}

/// Sets to `null` every map key `last` has and `patch` lacks, recursively through maps both have.
fn drop_removed(patch: &mut Value, last: &Value) {
    let (Some(patch), Some(last)) = (patch.as_object_mut(), last.as_object()) else {
        return;
    };
    for (key, old) in last {
        match patch.get_mut(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(new) => drop_removed(new, old),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn last_applied(value: &Value) -> Value {
        serde_json::from_str(
            value["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_manifest_is_recorded_without_its_own_record() {
        let manifest = json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let created = with_last_applied(&manifest);
        assert_eq!(last_applied(&created), manifest);
        assert_eq!(last_applied(&with_last_applied(&created)), manifest);
    }

    #[test]
    fn dropped_fields_go_and_others_stay() {
        let before = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "env": [{"name": "X"}]}]}}
        }});
        let current = with_last_applied(&before);
        let shipped = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
            "template": {"spec": {"containers": [{"name": "c"}]}}
        }});
        let patch = patch(&shipped, &current);
        // `replicas` was in the last manifest and is not now: removed (defaults to 1 again).
        assert_eq!(patch["spec"]["replicas"], Value::Null);
        assert!(patch["spec"].as_object().unwrap().contains_key("replicas"));
        // Lists are replaced whole: the env var is gone.
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c"}])
        );
        assert_eq!(last_applied(&patch), shipped);
    }

    #[test]
    fn fields_never_applied_are_kept_and_strategy_keys_are_retained() {
        // Stored: written by hand (no record), with a controller's annotation and defaults.
        let current = json!({"kind": "Deployment", "metadata": {"name": "d", "annotations": {
            "deployment.kubernetes.io/revision": "3"
        }}, "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let manifest = json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
            "strategy": {"type": "Recreate"}
        }});
        let patch = patch(&manifest, &current);
        assert!(
            patch["metadata"]["annotations"]
                .get("deployment.kubernetes.io/revision")
                .is_none()
        );
        assert_eq!(
            patch["spec"]["strategy"],
            json!({"type": "Recreate", "rollingUpdate": null})
        );
    }
}
