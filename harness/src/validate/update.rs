//! The rules that only apply to updates: fields that may not change once written.

use k8s_openapi::api::core::v1::{PodSpec, Service};
use serde_json::Value as Json;

use super::apps;
use super::field::{Errors, Path};
use crate::object::Object;

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

/// Checks `new` against the stored `old` of the same kind.
pub(super) fn check(new: &Object, old: &Object, errs: &mut Errors) {
    match (new, old) {
        (Object::Deployment(new), Object::Deployment(old)) => {
            if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
                apps::selector_update(&n.selector, &o.selector, errs);
            }
        }
        (Object::ReplicaSet(new), Object::ReplicaSet(old)) => {
            if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
                apps::selector_update(&n.selector, &o.selector, errs);
            }
        }
        (Object::Service(new), Object::Service(old)) => cluster_ip(new, old, errs),
        (Object::Pod(new), Object::Pod(old)) => {
            if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
                pod_spec(n, o, errs);
            }
        }
        (Object::ConfigMap(new), Object::ConfigMap(old)) if old.immutable == Some(true) => {
            immutable_data(
                new.immutable,
                [
                    ("data", new.data != old.data),
                    ("binaryData", new.binary_data != old.binary_data),
                ],
                errs,
            );
        }
        (Object::EndpointSlice(new), Object::EndpointSlice(old))
            if new.address_type != old.address_type =>
        {
            errs.invalid(
                &Path::new("addressType"),
                &new.address_type,
                "field is immutable",
            );
        }
        (Object::Secret(new), Object::Secret(old)) => {
            if old.immutable == Some(true) {
                immutable_data(
                    new.immutable,
                    [
                        ("data", new.data != old.data),
                        (
                            "stringData",
                            new.string_data.as_ref().is_some_and(|d| !d.is_empty()),
                        ),
                    ],
                    errs,
                );
            }
            if new.type_ != old.type_ {
                errs.invalid(
                    &Path::new("type"),
                    new.type_.as_deref().unwrap_or_default(),
                    "field is immutable",
                );
            }
        }
        _ => {}
    }
}

fn immutable_data<const N: usize>(
    immutable: Option<bool>,
    changed: [(&str, bool); N],
    errs: &mut Errors,
) {
    if immutable != Some(true) {
        errs.forbidden(&Path::new("immutable"), IMMUTABLE_SET);
    }
    for (field, changed) in changed {
        if changed {
            errs.forbidden(&Path::new(field), IMMUTABLE_SET);
        }
    }
}

/// A Service's cluster IP may not change once allocated (an empty one in the update is filled
/// from the stored object by whoever writes it, e.g. the manifest applier).
fn cluster_ip(new: &Service, old: &Service, errs: &mut Errors) {
    let external =
        |svc: &Service| svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let ips = |svc: &Service| -> Vec<String> {
        let Some(spec) = svc.spec.as_ref() else {
            return Vec::new();
        };
        let first = spec.cluster_ips.as_ref().and_then(|ips| ips.first());
        [spec.cluster_ip.as_ref(), first]
            .into_iter()
            .flatten()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect()
    };
    let Some(allocated) = ips(old).into_iter().next() else {
        return;
    };
    if external(new) || external(old) {
        return;
    }
    if let Some(changed) = ips(new).into_iter().find(|ip| *ip != allocated) {
        errs.invalid(
            &Path::new("spec").child("clusterIPs").index(0),
            changed.as_str(),
            "may not change once set",
        );
    }
}

/// A pod's spec may only change in images, activeDeadlineSeconds and added tolerations. The
/// harness also lets `nodeName` be set once, which upstream does through the binding
/// subresource.
fn pod_spec(new: &PodSpec, old: &PodSpec, errs: &mut Errors) {
    let spec = Path::new("spec");
    let mut munged = new.clone();
    // Images may change (an empty one is reported by the spec's own validation).
    for (i, container) in munged.containers.iter_mut().enumerate() {
        if let Some(o) = old.containers.get(i) {
            container.image.clone_from(&o.image);
        }
    }
    if let (Some(news), Some(olds)) = (&mut munged.init_containers, &old.init_containers) {
        for (container, o) in news.iter_mut().zip(olds) {
            container.image.clone_from(&o.image);
        }
    }
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (None, Some(o)) if o > 0 => errs.invalid(
            &spec.child("activeDeadlineSeconds"),
            crate::validate::field::Value::Go("nil".into()),
            "must not update from a positive integer to nil value",
        ),
        (Some(n), Some(o)) if n > o => errs.invalid(
            &spec.child("activeDeadlineSeconds"),
            n,
            "must be less than or equal to previous value",
        ),
        _ => {}
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    let old_tolerations = old.tolerations.as_deref().unwrap_or_default();
    let new_tolerations = new.tolerations.as_deref().unwrap_or_default();
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        munged.tolerations.clone_from(&old.tolerations);
    }
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && new.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    if old.node_name.as_deref().unwrap_or_default().is_empty() {
        munged.node_name.clone_from(&old.node_name);
    }
    if munged != *old {
        let mut changed = Vec::new();
        diff(
            &serde_json::to_value(old).unwrap_or_default(),
            &serde_json::to_value(&munged).unwrap_or_default(),
            "spec",
            &mut changed,
        );
        let detail = format!("{POD_UPDATE_MSG}\n  changed: {}", changed.join(", "));
        errs.forbidden(&spec, &detail);
    }
}

/// The paths where two JSON values differ, at most a handful.
fn diff(old: &Json, new: &Json, path: &str, out: &mut Vec<String>) {
    if out.len() >= 5 || old == new {
        return;
    }
    match (old, new) {
        (Json::Object(o), Json::Object(n)) => {
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for key in keys {
                let (a, b) = (
                    o.get(key).unwrap_or(&Json::Null),
                    n.get(key).unwrap_or(&Json::Null),
                );
                diff(a, b, &format!("{path}.{key}"), out);
            }
        }
        (Json::Array(o), Json::Array(n)) if o.len() == n.len() => {
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                diff(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}
