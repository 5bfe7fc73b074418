//! Writing manifests to the store as client-side `kubectl apply` does: create what is absent;
//! otherwise merge the manifest into the stored object and write only if that changes it.
//!
//! The merge is three-way, like kubectl's: the manifest (what the user wants now), the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (what they wanted last time)
//! and the stored object. Fields the manifest sets win; fields it dropped since the last
//! apply are removed; fields it never set stay as they are, so what controllers and other
//! commands added survives a re-apply: the Deployment's revision annotation, a
//! `rollout restart` stamp in the template, a replica count set by `kubectl scale` when the
//! manifest has none. Maps merge key by key; lists are replaced whole (kubectl merges some by
//! key, e.g. containers by name: a container added by hand to a manifest-managed Deployment is
//! dropped here and kept there). `spec.strategy` is replaced whole, as its `retainKeys`
//! strategy does upstream, so switching to `Recreate` drops `rollingUpdate`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use super::{Manifest, Outcome, describe_causes};
use crate::defaults;
use crate::error::{Error, Result};
use crate::object::{Kind, Object, ObjectKey};
use crate::store::{DeleteOptions, Store};

/// The annotation holding the manifest as last applied (kubectl's name and format).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Maps that are replaced whole instead of merged key by key.
const REPLACED_WHOLE: &[&str] = &["spec.strategy"];
/// How often a write is retried when a controller wrote the object in between.
const ATTEMPTS: usize = 5;

/// One manifest ready to write.
struct Planned {
    /// `file: document n (Kind "name")`, for messages.
    context: String,
    key: ObjectKey,
    /// The manifest's object in its namespace, with the last-applied annotation.
    desired: Object,
}

pub(super) fn apply(store: &Store, manifests: Vec<Manifest>) -> Result<Vec<(ObjectKey, Outcome)>> {
    let planned: Vec<Planned> = manifests.into_iter().map(plan).collect();
    preflight(store, &planned)?;
    planned
        .iter()
        .map(|p| Ok((p.key.clone(), write(store, p)?)))
        .collect()
}

pub(super) fn delete(store: &Store, manifests: Vec<Manifest>) -> Result<Vec<ObjectKey>> {
    let mut deleted = Vec::new();
    for m in manifests {
        let key = m.key();
        match store.delete(&key, DeleteOptions::default()) {
            Ok(_) => deleted.push(key),
            Err(Error::NotFound(_)) => {}
            Err(err) => return Err(Error::Manifest(format!("{}: {err}", context(&m)))),
        }
    }
    Ok(deleted)
}

fn context(m: &Manifest) -> String {
    format!(
        "{}: document {} ({} \"{}\")",
        m.file.display(),
        m.document,
        m.object.kind(),
        m.object.name()
    )
}

fn plan(m: Manifest) -> Planned {
    let context = context(&m);
    let key = m.key();
    let mut desired = m.object;
    if key.kind.namespaced() {
        desired.meta_mut().namespace = Some(key.namespace.clone());
    }
    let mut record = desired.to_json();
    if let Some(meta) = record.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.remove(LAST_APPLIED);
        }
    }
    let text = format!("{record}\n");
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(LAST_APPLIED.into(), text);
    Planned {
        context,
        key,
        desired,
    }
}

/// Checks every manifest against the store before anything is written, so that a bad file
/// writes nothing.
fn preflight(store: &Store, planned: &[Planned]) -> Result<()> {
    let mut problems = Vec::new();
    let mut new_namespaces = BTreeSet::new();
    for p in planned {
        if p.key.kind == Kind::Namespace {
            new_namespaces.insert(p.key.name.clone());
        } else if p.key.kind.namespaced()
            && !new_namespaces.contains(&p.key.namespace)
            && store
                .get(&ObjectKey::new(Kind::Namespace, "", &p.key.namespace))
                .is_none()
        {
            problems.push(format!(
                "{}: namespace \"{}\" not found: create it first, or put its Namespace manifest before this document",
                p.context, p.key.namespace
            ));
            continue;
        }
        let current = store.get(&p.key);
        let candidate = match &current {
            None => {
                let mut object = p.desired.clone();
                defaults::apply(&mut object);
                object
            }
            Some(current) => match merge(current, p) {
                Ok(merged) => merged,
                Err(err) => {
                    problems.push(err);
                    continue;
                }
            },
        };
        let causes = crate::validate::validate(&candidate, current.as_ref());
        if !causes.is_empty() {
            problems.push(describe_causes(&p.context, &causes));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Manifest(problems.join("\n")))
    }
}

fn write(store: &Store, p: &Planned) -> Result<Outcome> {
    let wrap = |err: Error| Error::Manifest(format!("{}: {err}", p.context));
    for _ in 0..ATTEMPTS {
        match store.get(&p.key) {
            None => match store.create(p.desired.clone()) {
                Ok(_) => return Ok(Outcome::Created),
                Err(Error::AlreadyExists(_)) => continue,
                Err(err) => return Err(wrap(err)),
            },
            Some(current) => {
                let merged = merge(&current, p).map_err(Error::Manifest)?;
                if merged == current {
                    return Ok(Outcome::Unchanged);
                }
                match store.update(merged) {
                    Ok(_) => return Ok(Outcome::Configured),
                    Err(Error::Conflict(_) | Error::NotFound(_)) => continue,
                    Err(err) => return Err(wrap(err)),
                }
            }
        }
    }
    Err(Error::Manifest(format!(
        "{}: the object kept changing while being applied ({ATTEMPTS} attempts): try again",
        p.context
    )))
}

/// The stored object with the manifest merged in, defaulted: what an update would store.
fn merge(current: &Object, p: &Planned) -> Result<Object, String> {
    let mut merged = current.to_json();
    let desired = p.desired.to_json();
    let last: Option<Value> = current
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(|text| serde_json::from_str(text).ok());
    let pick = |value: Option<&Value>, keys: &[&str]| -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(map) = value.and_then(Value::as_object) {
            for key in keys {
                if let Some(v) = map.get(*key) {
                    out.insert((*key).to_owned(), v.clone());
                }
            }
        }
        out
    };
    let meta_keys = ["labels", "annotations"];
    let desired_meta = pick(desired.get("metadata"), &meta_keys);
    let last_meta = last.as_ref().map(|l| pick(l.get("metadata"), &meta_keys));
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        merge_map(meta, last_meta.as_ref(), &desired_meta, "metadata");
    }
    let skip = ["apiVersion", "kind", "metadata", "status"];
    let without = |value: Option<&Value>| -> Option<Map<String, Value>> {
        let mut map = value?.as_object()?.clone();
        for key in skip {
            map.remove(key);
        }
        Some(map)
    };
    let desired_body = without(Some(&desired)).unwrap_or_default();
    let last_body = without(last.as_ref());
    if let Some(body) = merged.as_object_mut() {
        merge_map(body, last_body.as_ref(), &desired_body, "");
    }
    let kind = current.kind();
    let mut object = Object::from_json(kind, merged)
        .map_err(|err| format!("{}: cannot merge with the stored object: {err}", p.context))?;
    // Only labels, annotations and the body come from the merge: the rest of the metadata and
    // the status are the stored ones, untouched by a JSON round trip (which would cut
    // timestamps to whole seconds).
    let (labels, annotations) = {
        let meta = object.meta_mut();
        (meta.labels.take(), meta.annotations.take())
    };
    *object.meta_mut() = ObjectMeta {
        labels,
        annotations,
        ..current.meta().clone()
    };
    keep_status(&mut object, current);
    if let (Object::Service(merged), Object::Service(old), Object::Service(wanted)) =
        (&mut object, current, &p.desired)
    {
        keep_allocations(merged, old, wanted);
    }
    defaults::apply(&mut object);
    Ok(object)
}

fn keep_status(object: &mut Object, current: &Object) {
    match (object, current) {
        (Object::Pod(new), Object::Pod(old)) => new.status.clone_from(&old.status),
        (Object::ReplicaSet(new), Object::ReplicaSet(old)) => new.status.clone_from(&old.status),
        (Object::Deployment(new), Object::Deployment(old)) => new.status.clone_from(&old.status),
        (Object::Service(new), Object::Service(old)) => new.status.clone_from(&old.status),
        (Object::Namespace(new), Object::Namespace(old)) => new.status.clone_from(&old.status),
        (Object::Event(new), Object::Event(old)) => *new = old.clone(),
        _ => {}
    }
}

fn merge_map(
    current: &mut Map<String, Value>,
    last: Option<&Map<String, Value>>,
    desired: &Map<String, Value>,
    path: &str,
) {
    for (key, want) in desired {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if want.is_null() {
            current.remove(key);
            continue;
        }
        match (current.get_mut(key), want) {
            (Some(Value::Object(have)), Value::Object(want))
                if !REPLACED_WHOLE.contains(&at.as_str()) =>
            {
                let last = last.and_then(|l| l.get(key)).and_then(Value::as_object);
                merge_map(have, last, want, &at);
            }
            _ => {
                current.insert(key.clone(), want.clone());
            }
        }
    }
    for key in last.into_iter().flat_map(|l| l.keys()) {
        if !desired.contains_key(key) {
            current.remove(key);
        }
    }
}

/// What the API server allocated stays when the manifest leaves it out: the cluster IP and,
/// for NodePort and LoadBalancer Services, the node ports. Fields that only make sense for
/// the old type go when the type changes (upstream `dropTypeDependentFields`).
fn keep_allocations(merged: &mut Service, old: &Service, wanted: &Service) {
    let (Some(spec), Some(old_spec)) = (merged.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    let wanted_spec = wanted.spec.clone().unwrap_or_default();
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let old_kind = old_spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        if wanted_spec.cluster_ip.is_none() {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
    } else if spec.cluster_ip.as_deref().unwrap_or_default().is_empty() {
        spec.cluster_ip.clone_from(&old_spec.cluster_ip);
        spec.cluster_ips.clone_from(&old_spec.cluster_ips);
    }
    let external = |k: &str| matches!(k, "NodePort" | "LoadBalancer");
    if external(&kind) {
        let old_ports = old_spec.ports.as_deref().unwrap_or_default();
        for port in spec.ports.iter_mut().flatten() {
            if port.node_port.is_none_or(|p| p == 0) {
                port.node_port = old_ports
                    .iter()
                    .find(|o| same_port(o, port))
                    .and_then(|o| o.node_port);
            }
        }
    } else if external(old_kind) && wanted_spec.external_traffic_policy.is_none() {
        spec.external_traffic_policy = None;
    }
}

fn same_port(a: &ServicePort, b: &ServicePort) -> bool {
    let protocol = |p: &ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
    match (&a.name, &b.name) {
        (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
            x == y && protocol(a) == protocol(b)
        }
        _ => a.port == b.port && protocol(a) == protocol(b),
    }
}
