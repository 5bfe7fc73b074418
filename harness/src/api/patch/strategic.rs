//! Strategic merge patch, as kubectl sends it. Like a merge patch, except that some lists merge
//! element by element by a key field instead of being replaced (containers by `name`, container
//! ports by `containerPort`, env by `name`, volumeMounts by `mountPath`, service ports by `port`,
//! conditions by `type`, ...; see [`list_strategy`], which plays the role of upstream's struct
//! tags `patchStrategy`/`patchMergeKey`), and the patch may carry directives:
//! - `$patch: replace` (a map or list replaced whole) and `$patch: delete` (a map, or a list
//!   element by key, removed);
//! - `$setElementOrder/<list>`: the order of the list after the patch;
//! - `$retainKeys`: the only keys a map keeps (a Deployment's `strategy` switching type);
//! - `$deleteFromPrimitiveList/<list>`: values removed from a merged primitive list.
//!
//! Lists without a strategy are replaced, as upstream does.

use serde_json::{Map, Value};

use super::super::status::ApiError;
use crate::object::Kind;

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the original.
    Replace,
    /// Elements merge by the value of this key.
    MergeByKey(&'static str),
    /// A list of scalars merged as a set (`finalizers`).
    MergePrimitive,
}

/// The strategy of the list at `path` (field names from the object root; list indices
/// skipped) in an object of `kind`.
pub fn list_strategy(kind: Kind, path: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergePrimitive, Replace};
    // A Deployment's or ReplicaSet's template is a pod, for patching purposes.
    let (pod_like, path) = match (kind, path) {
        (Kind::Deployment | Kind::ReplicaSet, ["spec", "template", rest @ ..]) => (true, rest),
        (Kind::Pod, rest) => (true, rest),
        (_, rest) => (false, rest),
    };
    match path {
        ["metadata", "ownerReferences"] => return MergeByKey("uid"),
        ["metadata", "finalizers"] => return MergePrimitive,
        ["status", "conditions"] => return MergeByKey("type"),
        _ => {}
    }
    if pod_like {
        const CONTAINERS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];
        return match path {
            ["spec", list] if CONTAINERS.contains(list) => MergeByKey("name"),
            ["spec", list, "ports"] if CONTAINERS.contains(list) => MergeByKey("containerPort"),
            ["spec", list, "env"] if CONTAINERS.contains(list) => MergeByKey("name"),
            ["spec", list, "volumeMounts"] if CONTAINERS.contains(list) => MergeByKey("mountPath"),
            ["spec", list, "volumeDevices"] if CONTAINERS.contains(list) => {
                MergeByKey("devicePath")
            }
            [
                "spec",
                "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates",
            ] => MergeByKey("name"),
            ["spec", "hostAliases"] => MergeByKey("ip"),
            ["spec", "topologySpreadConstraints"] => MergeByKey("topologyKey"),
            ["status", "podIPs" | "hostIPs"] => MergeByKey("ip"),
            _ => Replace,
        };
    }
    match (kind, path) {
        (Kind::Service, ["spec", "ports"]) => MergeByKey("port"),
        _ => Replace,
    }
}

/// Applies a strategic merge patch to an object of `kind`.
pub fn apply(kind: Kind, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        ));
    };
    let mut result = original.clone();
    let mut path = Vec::new();
    match merge_map(kind, &mut result, patch, &mut path)? {
        Outcome::Keep => Ok(Value::Object(result)),
        Outcome::Delete => Err(ApiError::bad_request(
            "a strategic merge patch cannot delete the whole object",
        )),
    }
}

/// Whether a merged map stays or is deleted by `$patch: delete`.
enum Outcome {
    Keep,
    Delete,
}

fn directive(patch: &Map<String, Value>) -> Option<&str> {
    patch.get("$patch").and_then(Value::as_str)
}

fn strategy_at(kind: Kind, path: &[String]) -> ListStrategy {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    list_strategy(kind, &path)
}

fn merge_map(
    kind: Kind,
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Outcome, ApiError> {
    match directive(patch) {
        Some("delete") => return Ok(Outcome::Delete),
        Some("replace") => {
            let mut fresh = Map::new();
            let mut without = patch.clone();
            without.remove("$patch");
            merge_map(kind, &mut fresh, &without, path)?;
            *original = fresh;
            return Ok(Outcome::Keep);
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type {other:?} in strategic merge patch"
            )));
        }
    }
    let mut orders = Vec::new();
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((field, value));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) =
                (original.get_mut(field), value)
            {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(child_patch) => {
                let mut child = match original.remove(key) {
                    Some(Value::Object(child)) => child,
                    _ => Map::new(),
                };
                if let Outcome::Keep = merge_map(kind, &mut child, child_patch, path)? {
                    original.insert(key.clone(), Value::Object(child));
                }
            }
            Value::Array(items) => {
                let current = match original.remove(key) {
                    Some(Value::Array(current)) => current,
                    _ => Vec::new(),
                };
                let merged = merge_list(kind, current, items, path)?;
                original.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    for (field, order) in orders {
        let Value::Array(order) = order else {
            return Err(ApiError::bad_request(format!(
                "$setElementOrder/{field} must be a list"
            )));
        };
        path.push(field.to_owned());
        let strategy = strategy_at(kind, path);
        path.pop();
        if let Some(Value::Array(items)) = original.get_mut(field) {
            reorder(items, order, strategy);
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let Value::Array(keep) = retain else {
            return Err(ApiError::bad_request("$retainKeys must be a list"));
        };
        original.retain(|k, _| keep.iter().any(|kept| kept.as_str() == Some(k.as_str())));
    }
    Ok(Outcome::Keep)
}

fn merge_list(
    kind: Kind,
    mut current: Vec<Value>,
    patch: &[Value],
    path: &mut Vec<String>,
) -> Result<Vec<Value>, ApiError> {
    let replace_all = patch.iter().any(|item| {
        item.as_object()
            .and_then(directive)
            .is_some_and(|d| d == "replace")
    });
    let strategy = strategy_at(kind, path);
    if replace_all || strategy == ListStrategy::Replace {
        let mut out = Vec::new();
        for item in patch {
            match item {
                Value::Object(map) if map.len() == 1 && directive(map).is_some() => {}
                Value::Object(map) => {
                    let mut fresh = Map::new();
                    if let Outcome::Keep = merge_map(kind, &mut fresh, map, path)? {
                        out.push(Value::Object(fresh));
                    }
                }
                other => out.push(other.clone()),
            }
        }
        return Ok(out);
    }
    if let ListStrategy::MergeByKey(merge_key) = strategy {
        for item in patch {
            let Value::Object(element) = item else {
                return Err(ApiError::bad_request(format!(
                    "{}: expected a list of objects merged by {merge_key:?}",
                    path.join(".")
                )));
            };
            let Some(key_value) = element.get(merge_key) else {
                return Err(ApiError::bad_request(format!(
                    "{}: an element does not contain the merge key {merge_key:?}",
                    path.join(".")
                )));
            };
            let position = current
                .iter()
                .position(|c| c.get(merge_key) == Some(key_value));
            if directive(element) == Some("delete") {
                if let Some(i) = position {
                    current.remove(i);
                }
                continue;
            }
            match position {
                Some(i) => {
                    let mut merged = match current[i].take() {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    match merge_map(kind, &mut merged, element, path)? {
                        Outcome::Keep => current[i] = Value::Object(merged),
                        Outcome::Delete => {
                            current.remove(i);
                        }
                    }
                }
                None => {
                    let mut fresh = Map::new();
                    if let Outcome::Keep = merge_map(kind, &mut fresh, element, path)? {
                        current.push(Value::Object(fresh));
                    }
                }
            }
        }
        return Ok(current);
    }
    for item in patch {
        if !current.contains(item) {
            current.push(item.clone());
        }
    }
    Ok(current)
}

/// Puts the elements named in `order` first, in that order; the others follow in their
/// current order.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let identity = |item: &Value| -> Value {
        match strategy {
            ListStrategy::MergeByKey(key) => item.get(key).cloned().unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(identity).collect();
    let mut rest = std::mem::take(items);
    for id in &wanted {
        if let Some(i) = rest.iter().position(|item| identity(item) == *id) {
            items.push(rest.remove(i));
        }
    }
    items.append(&mut rest);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "annotations": {"a": "1"}, "finalizers": ["x"]},
            "spec": {
                "replicas": 3,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1.25", "env": [
                        {"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80}]},
                    {"name": "side", "image": "busybox"}
                ]}}
            }
        })
    }

    #[test]
    fn kubectl_apply_patch_merges_containers_and_env_by_name() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                "image": "nginx:1.27", "name": "web"
            }]
        }}}});
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.27");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1], json!({"name": "side", "image": "busybox"}));
    }

    #[test]
    fn set_element_order_reorders() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]
        }}}});
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["name"],
            "side"
        );
    }

    #[test]
    fn retain_keys_drops_the_old_strategy() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn directives_replace_delete_and_primitive_lists() {
        let patch = json!({
            "metadata": {"annotations": {"$patch": "replace", "b": "2"},
                         "finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"strategy": {"$patch": "delete"}, "replicas": null}
        });
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert!(out["spec"].get("strategy").is_none());
        assert!(out["spec"].get("replicas").is_none());
    }

    #[test]
    fn list_replace_directive_and_unknown_lists_replace() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x"}
        ]}}}});
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
        let svc =
            json!({"spec": {"ports": [{"port": 80, "name": "http"}], "externalIPs": ["1.2.3.4"]}});
        let patch = json!({"spec": {"ports": [{"port": 443}], "externalIPs": ["5.6.7.8"]}});
        let out = apply(Kind::Service, &svc, &patch).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http"}, {"port": 443}])
        );
        assert_eq!(out["spec"]["externalIPs"], json!(["5.6.7.8"]));
    }

    #[test]
    fn rollout_restart_and_set_image() {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}});
        let out = apply(Kind::Deployment, &deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["name"],
            "side"
        );
    }

    #[test]
    fn missing_merge_key_is_a_bad_request() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = apply(Kind::Deployment, &deployment(), &patch).unwrap_err();
        assert_eq!(err.code.as_u16(), 400);
    }

    #[test]
    fn strategies() {
        use ListStrategy::*;
        let cases: &[(Kind, &[&str], ListStrategy)] = &[
            (Kind::Pod, &["spec", "containers"], MergeByKey("name")),
            (
                Kind::Pod,
                &["spec", "initContainers", "env"],
                MergeByKey("name"),
            ),
            (
                Kind::Pod,
                &["spec", "containers", "ports"],
                MergeByKey("containerPort"),
            ),
            (
                Kind::Pod,
                &["spec", "containers", "volumeMounts"],
                MergeByKey("mountPath"),
            ),
            (Kind::Pod, &["spec", "volumes"], MergeByKey("name")),
            (Kind::Pod, &["spec", "imagePullSecrets"], MergeByKey("name")),
            (Kind::Pod, &["spec", "tolerations"], Replace),
            (Kind::Pod, &["spec", "containers", "args"], Replace),
            (
                Kind::Deployment,
                &["spec", "template", "spec", "containers"],
                MergeByKey("name"),
            ),
            (
                Kind::Deployment,
                &["status", "conditions"],
                MergeByKey("type"),
            ),
            (
                Kind::ReplicaSet,
                &["spec", "template", "metadata", "finalizers"],
                MergePrimitive,
            ),
            (Kind::Service, &["spec", "ports"], MergeByKey("port")),
            (Kind::Endpoints, &["subsets"], Replace),
            (
                Kind::ConfigMap,
                &["metadata", "ownerReferences"],
                MergeByKey("uid"),
            ),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_strategy(*kind, path), *want, "{kind} {path:?}");
        }
    }
}
