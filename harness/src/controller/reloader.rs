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
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, EnvFromSource,
        EnvVarSource, Volume, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("hostbot".into()),
            ..Default::default()
        }
    }

    fn deployment(annotations: &[(&str, &str)], pod: PodSpec) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("hostbot".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(pod),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn env_of(t: &PodTemplateSpec, container: usize) -> Vec<(String, String)> {
        t.spec.as_ref().unwrap().containers[container]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    const CHANGE: Change<'static> = Change {
        source: Source::ConfigMap,
        name: "hello-config",
        hash: "abc",
    };

    #[test]
    fn env_names() {
        assert_eq!(
            env_var_name(Source::ConfigMap, "hello-server-configmap"),
            "STAKATER_HELLO_SERVER_CONFIGMAP_CONFIGMAP"
        );
        assert_eq!(
            env_var_name(Source::Secret, "db.creds--x"),
            "STAKATER_DB_CREDS_X_SECRET"
        );
    }

    #[test]
    fn hashes_like_reloader() {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ])),
            ..Default::default()
        };
        // sha1("a=1;b=2"): sorted pairs joined by ';'.
        assert_eq!(
            data_hash(&Object::ConfigMap(cm)).unwrap(),
            "f83e99e324ba68ccc373a58ef1eb42f8ab88646a"
        );
        let empty = data_hash(&Object::ConfigMap(ConfigMap::default())).unwrap();
        assert_eq!(
            empty, "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "sha1 of nothing"
        );
    }

    #[test]
    fn auto_reloads_a_container_using_the_configmap() {
        let mut user = container("app");
        user.env_from = Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "hello-config".into(),
                optional: None,
            }),
            ..Default::default()
        }]);
        let pod = PodSpec {
            containers: vec![container("sidecar"), user],
            ..Default::default()
        };
        let d = deployment(&[(AUTO, "true")], pod);
        let t = reloaded_template(&d, &CHANGE).unwrap();
        assert_eq!(
            env_of(&t, 1),
            [(
                "STAKATER_HELLO_CONFIG_CONFIGMAP".to_owned(),
                "abc".to_owned()
            )]
        );
        assert!(env_of(&t, 0).is_empty());
        // Same hash again: nothing to do.
        let mut again = d.clone();
        again.spec.as_mut().unwrap().template = t;
        assert!(reloaded_template(&again, &CHANGE).is_none());
        // An unrelated ConfigMap does not reload an auto Deployment.
        let other = Change {
            name: "other",
            ..CHANGE
        };
        assert!(reloaded_template(&d, &other).is_none());
    }

    #[test]
    fn auto_through_volumes_and_key_refs() {
        let mut app = container("app");
        app.volume_mounts = Some(vec![VolumeMount {
            name: "config".into(),
            mount_path: "/etc/hostbot".into(),
            ..Default::default()
        }]);
        let pod = PodSpec {
            containers: vec![container("first"), app],
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "hello-config".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let t = reloaded_template(&deployment(&[(AUTO, "true")], pod), &CHANGE).unwrap();
        assert_eq!(env_of(&t, 1).len(), 1);

        let mut keyed = container("app");
        keyed.env = Some(vec![EnvVar {
            name: "PORT".into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "hello-config".into(),
                    key: "PORT".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        }]);
        let pod = PodSpec {
            containers: vec![keyed],
            ..Default::default()
        };
        // The typed auto annotation on the pod template works too.
        let mut d = deployment(&[], pod);
        d.spec.as_mut().unwrap().template.metadata = Some(ObjectMeta {
            annotations: Some(BTreeMap::from([(
                "configmap.reloader.stakater.com/auto".to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        });
        let t = reloaded_template(&d, &CHANGE).unwrap();
        assert_eq!(env_of(&t, 0)[1].0, "STAKATER_HELLO_CONFIG_CONFIGMAP");
    }

    #[test]
    fn explicit_names_use_the_first_container() {
        let pod = PodSpec {
            containers: vec![container("a"), container("b")],
            ..Default::default()
        };
        let d = deployment(
            &[("configmap.reloader.stakater.com/reload", "x, hello-config")],
            pod.clone(),
        );
        let t = reloaded_template(&d, &CHANGE).unwrap();
        assert_eq!(env_of(&t, 0)[0].1, "abc");
        let not_listed = deployment(
            &[("configmap.reloader.stakater.com/reload", "x")],
            pod.clone(),
        );
        assert!(reloaded_template(&not_listed, &CHANGE).is_none());
        let off = deployment(&[(AUTO, "false")], pod);
        assert!(reloaded_template(&off, &CHANGE).is_none());
        let secret = Change {
            source: Source::Secret,
            ..CHANGE
        };
        assert!(
            reloaded_template(&d, &secret).is_none(),
            "secret annotations differ"
        );
    }
}
