//! A pod's QoS class, as the API server records it in `status.qosClass` at creation (upstream
//! `pkg/apis/core/helper/qos.GetPodQOS`): BestEffort when no container requests or limits CPU or
//! memory; Guaranteed when every container limits both and every request equals its limit (after
//! defaulting, a missing request is its limit); Burstable otherwise. Init containers count;
//! zero quantities count as absent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::validate::parse_quantity;

/// The resources QoS looks at.
const RESOURCES: [&str; 2] = ["cpu", "memory"];

/// `BestEffort`, `Burstable` or `Guaranteed`.
pub fn class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
    let mut guaranteed = true;
    let init = spec.init_containers.iter().flatten();
    for container in init.chain(&spec.containers) {
        let resources = container.resources.as_ref();
        let sum = |into: &mut BTreeMap<&str, f64>, from: Option<&BTreeMap<String, Quantity>>| {
            let mut found = Vec::new();
            for name in RESOURCES {
                let value = from.and_then(|m| m.get(name)).map_or(0.0, |q| value(&q.0));
                if value != 0.0 {
                    *into.entry(name).or_default() += value;
                    found.push(name);
                }
            }
            found
        };
        sum(&mut requests, resources.and_then(|r| r.requests.as_ref()));
        let limited = sum(&mut limits, resources.and_then(|r| r.limits.as_ref()));
        if limited.len() < RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let equal = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    guaranteed &= requests.iter().all(|(name, request)| {
        limits
            .get(name)
            .is_some_and(|limit| equal(*limit, *request))
    });
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A quantity's value (`100m`, `64Mi`, `1.5`, `2e3`); an unparsable one counts as 0 (validation
/// rejects it anyway).
fn value(text: &str) -> f64 {
    parse_quantity(text).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(containers: serde_json::Value, init: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": containers, "initContainers": init})).unwrap()
    }

    fn with(resources: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": resources})
    }

    #[test]
    fn classes_follow_upstream() {
        let cases = [
            ("nothing", json!([with(json!({}))]), json!([]), "BestEffort"),
            (
                "zero requests are none",
                json!([with(json!({"requests": {"cpu": "0", "memory": "0Mi"}}))]),
                json!([]),
                "BestEffort",
            ),
            (
                "other resources do not count",
                json!([with(json!({"limits": {"nvidia.com/gpu": "1"}}))]),
                json!([]),
                "BestEffort",
            ),
            (
                "a request only",
                json!([with(json!({"requests": {"cpu": "10m"}}))]),
                json!([]),
                "Burstable",
            ),
            (
                "the shipped manifest: requests and a memory limit",
                json!([with(
                    json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})
                )]),
                json!([]),
                "Burstable",
            ),
            (
                "equal requests and limits, spelled differently",
                json!([with(
                    json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "0.1", "memory": "67108864"}})
                )]),
                json!([]),
                "Guaranteed",
            ),
            (
                "a request below its limit",
                json!([with(
                    json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
                )]),
                json!([]),
                "Burstable",
            ),
            (
                "an init container without limits",
                json!([with(
                    json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
                )]),
                json!([with(json!({}))]),
                "Burstable",
            ),
        ];
        for (name, containers, init, want) in cases {
            assert_eq!(class(&spec(containers, init)), want, "{name}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(value("100m"), 0.1);
        assert_eq!(value("64Mi"), 64.0 * 1024.0 * 1024.0);
        assert_eq!(value("2e3"), 2000.0);
        assert_eq!(value("1.5"), 1.5);
        assert_eq!(value("lots"), 0.0);
    }
}
