//! A container's environment, resolved the way the kubelet does it at container start
//! (`makeEnvironmentVariables` upstream): `envFrom` first, then `env` in order with `$(VAR)`
//! expansion against what is declared so far and the Service variables, values from
//! ConfigMaps, Secrets and the downward API.
//!
//! The environment is read once per container start, so a ConfigMap change reaches the process
//! only after a restart, as upstream. A missing ConfigMap, Secret or key that is not `optional`
//! is an error whose message is upstream's word for word (`couldn't find key HOST in ConfigMap
//! default/hello-server-configmap`); the container then waits in `CreateContainerConfigError`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

use crate::object::Kind;
use crate::selector::Selector;
use crate::store::Store;

/// Where ConfigMaps, Secrets and Services are looked up; the [`Store`] in production.
pub trait Sources {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
    fn services(&self, namespace: &str) -> Vec<Service>;
}

impl Sources for Store {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.get_as(namespace, name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.get_as(namespace, name)
    }
    fn services(&self, namespace: &str) -> Vec<Service> {
        self.list_as(Some(namespace), &Selector::default())
    }
}

/// The pod facts the downward API exposes that live outside the pod object's spec.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
}

/// The ConfigMaps and Secrets a pod's containers and volumes refer to, as (kind, name).
pub fn references(pod: &Pod) -> Vec<(Kind, String)> {
    let mut refs = Vec::new();
    let Some(spec) = &pod.spec else {
        return refs;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for from in c.env_from.iter().flatten() {
            if let Some(cm) = &from.config_map_ref {
                refs.push((Kind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &from.secret_ref {
                refs.push((Kind::Secret, s.name.clone()));
            }
        }
        for var in c.env.iter().flatten() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if let Some(cm) = &from.config_map_key_ref {
                refs.push((Kind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &from.secret_key_ref {
                refs.push((Kind::Secret, s.name.clone()));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            refs.push((Kind::ConfigMap, cm.name.clone()));
        }
        if let Some(s) = &v.secret {
            refs.push((Kind::Secret, s.secret_name.clone().unwrap_or_default()));
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                refs.push((Kind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &source.secret {
                refs.push((Kind::Secret, s.name.clone()));
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// The environment the pod spec declares for `container`, resolved; no runtime additions
/// (HOSTNAME, HOST, PORT) are made here.
pub fn resolve(
    sources: &impl Sources,
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let service_env = if pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true)
    {
        service_variables(&sources.services(namespace))
    } else {
        BTreeMap::new()
    };
    let mut config_maps: BTreeMap<String, Option<ConfigMap>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut config_map = |name: &str| {
        config_maps
            .entry(name.to_owned())
            .or_insert_with(|| sources.config_map(namespace, name))
            .clone()
    };
    let mut secret = |name: &str| {
        secrets
            .entry(name.to_owned())
            .or_insert_with(|| sources.secret(namespace, name))
            .clone()
    };

    let mut env = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match config_map(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        env.insert(format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secret(&r.name) {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        env.insert(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = if let Some(value) = var.value.as_deref().filter(|v| !v.is_empty()) {
            expand(value, |name| {
                env.get(name).or_else(|| service_env.get(name)).cloned()
            })
        } else if let Some(from) = &var.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                let Some(cm) = config_map(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("configmap \"{}\" not found", r.name));
                };
                match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(format!(
                            "couldn't find key {} in ConfigMap {namespace}/{}",
                            r.key, r.name
                        ));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                let Some(s) = secret(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("secret \"{}\" not found", r.name));
                };
                match secret_data(&s).remove(&r.key) {
                    Some(v) => v,
                    None if optional => continue,
                    None => {
                        return Err(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            r.key, r.name
                        ));
                    }
                }
            } else if let Some(r) = &from.field_ref {
                field_value(pod, &r.field_path, facts)?
            } else if from.resource_field_ref.is_some() {
                return Err(format!(
                    "env var {}: resourceFieldRef is not supported by the harness",
                    var.name
                ));
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.insert(var.name.clone(), value);
    }

    for (k, v) in service_env {
        env.entry(k).or_insert(v);
    }
    Ok(env)
}

/// A downward API field (`fieldRef.fieldPath`).
pub fn field_value(pod: &Pod, path: &str, facts: &PodFacts) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_entry = |map: Option<&BTreeMap<String, String>>, rest: &str| {
        let key = rest
            .strip_prefix("['")
            .and_then(|r| r.strip_suffix("']"))
            .or_else(|| rest.strip_prefix("[\"").and_then(|r| r.strip_suffix("\"]")));
        key.map(|k| map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| facts.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => {
            if let Some(rest) = other.strip_prefix("metadata.labels")
                && let Some(v) = map_entry(meta.labels.as_ref(), rest)
            {
                return Ok(v);
            }
            if let Some(rest) = other.strip_prefix("metadata.annotations")
                && let Some(v) = map_entry(meta.annotations.as_ref(), rest)
            {
                return Ok(v);
            }
            return Err(format!("unsupported fieldPath: {other}"));
        }
    };
    Ok(value)
}

/// `key="value"` lines, as the downward API renders a whole map.
pub fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

/// A Secret's data as strings (`stringData` on top, as the API server merges it).
fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The Docker-links style variables of the Services in a namespace (`HOSTBOT_SERVICE_HOST`...).
pub fn service_variables(services: &[Service]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let name = svc
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_ascii_uppercase()
            .replace('-', "_");
        env.insert(format!("{name}_SERVICE_HOST"), ip.to_owned());
        env.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
        for p in ports {
            if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                let port_name = port_name.to_ascii_uppercase().replace('-', "_");
                env.insert(
                    format!("{name}_SERVICE_PORT_{port_name}"),
                    p.port.to_string(),
                );
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())
        };
        env.insert(
            format!("{name}_PORT"),
            format!(
                "{}://{ip}:{}",
                proto(first).to_ascii_lowercase(),
                first.port
            ),
        );
        for p in ports {
            let proto = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            let lower = proto.to_ascii_lowercase();
            env.insert(prefix.clone(), format!("{lower}://{ip}:{}", p.port));
            env.insert(format!("{prefix}_PROTO"), lower);
            env.insert(format!("{prefix}_PORT"), p.port.to_string());
            env.insert(format!("{prefix}_ADDR"), ip.to_owned());
        }
    }
    env
}

/// Expands `$(VAR)` references as upstream's `expansion.Expand`: `$$` is an escaped `$`, an
/// unknown or incomplete reference stays as written.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$` followed by anything else: both are kept as written.
                    let ch = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..ch]);
                    ch
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
    }
    out.push_str(&input[checkpoint..]);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, SecretKeySelector, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[derive(Default)]
    struct Fake {
        config_maps: BTreeMap<String, BTreeMap<String, String>>,
        secrets: BTreeMap<String, BTreeMap<String, String>>,
        services: Vec<Service>,
    }

    impl Sources for Fake {
        fn config_map(&self, _: &str, name: &str) -> Option<ConfigMap> {
            self.config_maps.get(name).map(|d| ConfigMap {
                data: Some(d.clone()),
                ..Default::default()
            })
        }
        fn secret(&self, _: &str, name: &str) -> Option<Secret> {
            self.secrets.get(name).map(|d| Secret {
                data: Some(
                    d.iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                        .collect(),
                ),
                ..Default::default()
            })
        }
        fn services(&self, _: &str) -> Vec<Service> {
            self.services.clone()
        }
    }

    fn pod(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> (Pod, Container) {
        let container = Container {
            name: "hostbot".into(),
            env: Some(env),
            env_from: Some(env_from),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container.clone()],
                enable_service_links: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        (pod, container)
    }

    fn value(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn from_cm(name: &str, cm: &str, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.into(),
                    key: key.into(),
                    optional: optional.then_some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ip: "127.1.0.7".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "harness".into(),
        }
    }

    #[test]
    fn missing_keys_and_maps_give_upstream_messages() {
        let mut sources = Fake::default();
        sources.config_maps.insert(
            "hello-server-configmap".into(),
            [("PORT".into(), "8081".into())].into(),
        );
        let (p, c) = pod(
            vec![
                from_cm("PORT", "hello-server-configmap", "PORT", false),
                from_cm("HOST", "hello-server-configmap", "HOST", false),
            ],
            vec![],
        );
        assert_eq!(
            resolve(&sources, &p, &c, &facts()).unwrap_err(),
            "couldn't find key HOST in ConfigMap default/hello-server-configmap"
        );
        let (p, c) = pod(vec![from_cm("X", "nope", "X", false)], vec![]);
        assert_eq!(
            resolve(&sources, &p, &c, &facts()).unwrap_err(),
            "configmap \"nope\" not found"
        );
        let (p, c) = pod(
            vec![
                from_cm("X", "nope", "X", true),
                from_cm("Y", "hello-server-configmap", "Y", true),
            ],
            vec![],
        );
        assert!(resolve(&sources, &p, &c, &facts()).unwrap().is_empty());
        let secret_ref = EnvVar {
            name: "PW".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "db".into(),
                    key: "pw".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (p, c) = pod(vec![secret_ref.clone()], vec![]);
        assert_eq!(
            resolve(&sources, &p, &c, &facts()).unwrap_err(),
            "secret \"db\" not found"
        );
        sources
            .secrets
            .insert("db".into(), [("user".into(), "u".into())].into());
        assert_eq!(
            resolve(&sources, &p, &c, &facts()).unwrap_err(),
            "couldn't find key pw in Secret default/db"
        );
        sources
            .secrets
            .insert("db".into(), [("pw".into(), "s3cret".into())].into());
        assert_eq!(resolve(&sources, &p, &c, &facts()).unwrap()["PW"], "s3cret");
    }

    #[test]
    fn env_overrides_env_from_and_expands_references() {
        let mut sources = Fake::default();
        sources.config_maps.insert(
            "cfg".into(),
            [
                ("PORT".into(), "8081".into()),
                ("MODE".into(), "fast".into()),
            ]
            .into(),
        );
        let field = |name: &str, path: &str| EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (p, c) = pod(
            vec![
                value("MODE", "slow"),
                value("URL", "http://$(POD_IP):$(CFG_PORT)/$(MISSING)/$$(ESC)/$x"),
                field("POD_IP", "status.podIP"),
                field("NAME", "metadata.name"),
                field("APP", "metadata.labels['app']"),
                field("NODE", "spec.nodeName"),
            ],
            vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    ..Default::default()
                },
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ],
        );
        let env = resolve(&sources, &p, &c, &facts()).unwrap();
        assert_eq!(env["MODE"], "slow");
        assert_eq!(env["CFG_PORT"], "8081");
        // POD_IP is declared after URL, so it is not expanded (upstream's rule).
        assert_eq!(env["URL"], "http://$(POD_IP):8081/$(MISSING)/$(ESC)/$x");
        assert_eq!(env["POD_IP"], "127.1.0.7");
        assert_eq!(env["NAME"], "web-1");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["NODE"], "harness");
    }

    #[test]
    fn expansion_edge_cases() {
        let lookup = |n: &str| (n == "A").then(|| "1".to_owned());
        let cases = [
            ("$(A)", "1"),
            ("$(A)$(A)", "11"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$(A", "$(A"),
            ("$", "$"),
            ("a$", "a$"),
            ("$(B)", "$(B)"),
            ("$()", "$()"),
            ("x$yz", "x$yz"),
            ("é$(A)é", "é1é"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, lookup), want, "{input}");
        }
    }

    #[test]
    fn services_give_docker_link_variables() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("hello-server".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("127.96.0.3".into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 8080,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env = service_variables(&[svc]);
        assert_eq!(env["HELLO_SERVER_SERVICE_HOST"], "127.96.0.3");
        assert_eq!(env["HELLO_SERVER_SERVICE_PORT"], "8080");
        assert_eq!(env["HELLO_SERVER_SERVICE_PORT_HTTP"], "8080");
        assert_eq!(env["HELLO_SERVER_PORT"], "tcp://127.96.0.3:8080");
        assert_eq!(env["HELLO_SERVER_PORT_8080_TCP_ADDR"], "127.96.0.3");
    }
}
