//! The Reloader convention (stakater/Reloader): a Deployment annotated
//! `reloader.stakater.com/auto: "true"` (or `configmap.reloader.stakater.com/auto`,
//! `secret.reloader.stakater.com/auto`) restarts when a ConfigMap or Secret it uses changes;
//! `configmap.reloader.stakater.com/reload: "a,b"` (or `secret.reloader.stakater.com/reload`)
//! names them explicitly. The annotations are read from the Deployment, or from its pod template
//! when the Deployment has none of them.
//!
//! Like Reloader's default `env-vars` strategy, a change sets `STAKATER_<NAME>_CONFIGMAP` (or
//! `_SECRET`) to the SHA-1 of the data in the container that uses it (the first container for
//! explicit names): a new template, hence a rolling update. Only changes count, as in Reloader's
//! defaults: creating or deleting a ConfigMap restarts nothing. The controller remembers each
//! object's hash, so a resync after a missed event still notices a change. Explicit names are
//! matched exactly (Reloader also accepts regular expressions).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};

use crate::controller::Reconciler;
use crate::error::Result;
use crate::object::{Kind, Object, ObjectKey};
use crate::selector::Selector;
use crate::store::{Store, WatchEvent};

const AUTO: &str = "reloader.stakater.com/auto";
const COMPONENT: &str = "reloader";

/// What kind of object changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// Reloader's type word: the env var suffix and the event's type.
    fn word(self) -> &'static str {
        match self {
            Source::ConfigMap => "CONFIGMAP",
            Source::Secret => "SECRET",
        }
    }

    fn typed_auto(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap.reloader.stakater.com/auto",
            Source::Secret => "secret.reloader.stakater.com/auto",
        }
    }

    fn reload(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap.reloader.stakater.com/reload",
            Source::Secret => "secret.reloader.stakater.com/reload",
        }
    }
}

/// One changed ConfigMap or Secret.
#[derive(Clone, Debug)]
pub struct Change<'a> {
    pub source: Source,
    pub name: &'a str,
    /// SHA-1 of its data, as Reloader computes it.
    pub hash: &'a str,
}

/// `STAKATER_` + the name upper-cased with runs of other characters as `_` + `_CONFIGMAP`.
pub fn env_var_name(source: Source, name: &str) -> String {
    let mut out = String::from("STAKATER_");
    let mut last_valid = false;
    for c in name.chars().map(|c| c.to_ascii_uppercase()) {
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            out.push(c);
            last_valid = true;
        } else {
            if last_valid {
                out.push('_');
            }
            last_valid = false;
        }
    }
    out.push('_');
    out.push_str(source.word());
    out
}

/// Reloader's hash of an object's data: `key=value` pairs (binary values in base64) sorted,
/// joined with `;`, SHA-1 in hex. `None` for other kinds.
pub fn data_hash(object: &Object) -> Option<String> {
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let mut values: Vec<String> = match object {
        Object::ConfigMap(cm) => {
            let text = cm.data.iter().flatten().map(|(k, v)| format!("{k}={v}"));
            let binary = cm
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", b64(&v.0)));
            text.chain(binary).collect()
        }
        Object::Secret(secret) => {
            let mut data: std::collections::BTreeMap<String, Vec<u8>> = secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            for (k, v) in secret.string_data.iter().flatten() {
                data.insert(k.clone(), v.clone().into_bytes());
            }
            data.into_iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
                .collect()
        }
        _ => return None,
    };
    values.sort();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        values.join(";").as_bytes(),
    );
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// `strconv.ParseBool`'s true values.
fn parse_bool(text: Option<&String>) -> bool {
    matches!(
        text.map(String::as_str),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// The template this Deployment should have after `change`, if it reloads on it.
pub fn reloaded_template(d: &Deployment, change: &Change<'_>) -> Option<PodTemplateSpec> {
    let spec = d.spec.as_ref()?;
    let source = change.source;
    let keys = [AUTO, source.typed_auto(), source.reload()];
    let own = d.metadata.annotations.clone().unwrap_or_default();
    let annotations = if keys.iter().any(|k| own.contains_key(*k)) {
        own
    } else {
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default()
    };
    let mut template = spec.template.clone();
    let pod = template.spec.as_mut()?;
    if (parse_bool(annotations.get(AUTO)) || parse_bool(annotations.get(source.typed_auto())))
        && set_env(pod, change, true)
    {
        return Some(template);
    }
    let named = annotations
        .get(source.reload())
        .is_some_and(|list| list.split(',').any(|n| n.trim() == change.name));
    if named && set_env(pod, change, false) {
        return Some(template);
    }
    None
}

/// Sets the Reloader env var; returns whether the template changed (`updateContainerEnvVars`).
fn set_env(pod: &mut PodSpec, change: &Change<'_>, auto: bool) -> bool {
    let Some(index) = container_using(pod, change, auto) else {
        return false;
    };
    let name = env_var_name(change.source, change.name);
    for container in pod.containers.iter_mut() {
        if let Some(var) = container.env.iter_mut().flatten().find(|e| e.name == name) {
            if var.value.as_deref() == Some(change.hash) {
                return false;
            }
            var.value = Some(change.hash.to_owned());
            return true;
        }
    }
    pod.containers[index]
        .env
        .get_or_insert_with(Vec::new)
        .push(EnvVar {
            name,
            value: Some(change.hash.to_owned()),
            value_from: None,
        });
    true
}

/// The container that uses the object: through a mounted volume, then through env; an init
/// container's use points at the first container; explicit names fall back to the first
/// container (`getContainerUsingResource`).
fn container_using(pod: &PodSpec, change: &Change<'_>, auto: bool) -> Option<usize> {
    if pod.containers.is_empty() {
        return None;
    }
    let init = pod.init_containers.as_deref().unwrap_or_default();
    if let Some(volume) = volume_name(pod, change) {
        let mounts = |c: &Container| c.volume_mounts.iter().flatten().any(|m| m.name == volume);
        if let Some(i) = pod.containers.iter().position(mounts) {
            return Some(i);
        }
        if init.iter().any(mounts) {
            return Some(0);
        }
    }
    let refers = |c: &Container| env_refers(c, change);
    if let Some(i) = pod.containers.iter().position(refers) {
        return Some(i);
    }
    if init.iter().any(refers) {
        return Some(0);
    }
    (!auto).then_some(0)
}

/// The volume that projects the object, if any.
fn volume_name(pod: &PodSpec, change: &Change<'_>) -> Option<String> {
    pod.volumes.iter().flatten().find_map(|v| {
        let direct = match change.source {
            Source::ConfigMap => {
                v.config_map.as_ref().map(|c| c.name.as_str()) == Some(change.name)
            }
            Source::Secret => {
                v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(change.name)
            }
        };
        let projected = v.projected.as_ref().is_some_and(|p| {
            p.sources.iter().flatten().any(|s| match change.source {
                Source::ConfigMap => {
                    s.config_map.as_ref().map(|c| c.name.as_str()) == Some(change.name)
                }
                Source::Secret => s.secret.as_ref().map(|c| c.name.as_str()) == Some(change.name),
            })
        });
        (direct || projected).then(|| v.name.clone())
    })
}

/// Whether a container reads the object through `env[].valueFrom` or `envFrom`.
fn env_refers(c: &Container, change: &Change<'_>) -> bool {
    let name = Some(change.name);
    let from_env = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref())
        .any(|f| match change.source {
            Source::ConfigMap => f.config_map_key_ref.as_ref().map(|r| r.name.as_str()) == name,
            Source::Secret => f.secret_key_ref.as_ref().map(|r| r.name.as_str()) == name,
        });
    let from_env_from = c.env_from.iter().flatten().any(|f| match change.source {
        Source::ConfigMap => f.config_map_ref.as_ref().map(|r| r.name.as_str()) == name,
        Source::Secret => f.secret_ref.as_ref().map(|r| r.name.as_str()) == name,
    });
    from_env || from_env_from
}

/// Watches ConfigMaps and Secrets and restarts the Deployments that reload on them.
#[derive(Debug)]
pub struct Reloader {
    store: Arc<Store>,
    /// The last data hash seen for each ConfigMap and Secret.
    hashes: HashMap<ObjectKey, String>,
}

impl Reloader {
    /// A reloader that knows the current data of every ConfigMap and Secret.
    pub fn new(store: Arc<Store>) -> Reloader {
        let mut hashes = HashMap::new();
        for kind in [Kind::ConfigMap, Kind::Secret] {
            for object in store.list(kind, None) {
                if let Some(hash) = data_hash(&object) {
                    hashes.insert(object.key(), hash);
                }
            }
        }
        Reloader { store, hashes }
    }
}

impl Reconciler for Reloader {
    type Key = ObjectKey;
    const NAME: &'static str = "reloader";

    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key> {
        match event.object.kind() {
            Kind::ConfigMap | Kind::Secret => vec![event.object.key()],
            _ => Vec::new(),
        }
    }

    fn all_keys(&mut self) -> Vec<Self::Key> {
        let mut keys: Vec<ObjectKey> = self.hashes.keys().cloned().collect();
        for kind in [Kind::ConfigMap, Kind::Secret] {
            keys.extend(self.store.list(kind, None).iter().map(Object::key));
        }
        keys
    }

    fn reconcile(&mut self, key: &ObjectKey) -> Result<Option<Duration>> {
        let Some(object) = self.store.get(key) else {
            self.hashes.remove(key);
            return Ok(None);
        };
        let Some(hash) = data_hash(&object) else {
            return Ok(None);
        };
        let previous = self.hashes.insert(key.clone(), hash.clone());
        if previous.is_none_or(|p| p == hash) {
            return Ok(None);
        }
        let source = if key.kind == Kind::Secret {
            Source::Secret
        } else {
            Source::ConfigMap
        };
        let change = Change {
            source,
            name: &key.name,
            hash: &hash,
        };
        let deployments = self
            .store
            .list_as::<Deployment>(Some(&key.namespace), &Selector::default());
        for d in deployments {
            let name = d.metadata.name.clone().unwrap_or_default();
            let edited = self
                .store
                .modify::<Deployment, _>(&key.namespace, &name, |d| {
                    match reloaded_template(d, &change) {
                        Some(template) => {
                            if let Some(spec) = d.spec.as_mut() {
                                spec.template = template;
                            }
                            true
                        }
                        None => false,
                    }
                });
            if let Ok((d, true)) = edited {
                let message = format!(
                    "Changes detected in '{}' of type '{}' in namespace '{}', Updated '{name}' of type 'Deployment' in namespace '{}'",
                    key.name,
                    source.word(),
                    key.namespace,
                    key.namespace
                );
                tracing::info!(deployment = %name, configmap = %key.name, "reloading");
                self.store.record_event(
                    &Object::Deployment(d),
                    "Normal",
                    "Reloaded",
                    message,
                    COMPONENT,
                );
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
