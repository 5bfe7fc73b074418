//! API defaults applied to every object the store accepts (upstream
//! `pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go`,
//! `pkg/apis/discovery/v1/defaults.go` and the generated
//! `zz_generated.defaults.go` that calls them).
//!
//! Every rule only fills a field that is unset, so [`apply`] is idempotent: the store runs it
//! on every write, and re-applying an unchanged manifest compares equal to what is stored.
//! Two conversions that upstream performs while decoding live here too because they must
//! also happen on every write: a Secret's `stringData` is merged into `data`, and a
//! container's absent `resources` reads as `{}` (a Go struct that is never nil, so
//! `kubectl get -o yaml` always shows it). A pod without a phase gets `Pending` and its QoS class
//! (`qos`), as upstream's create strategy sets them.

mod qos;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, Container, EmptyDirVolumeSource, HTTPGetAction, Namespace, NamespaceStatus,
    Pod, PodSecurityContext, PodSpec, PodStatus, Probe, ResourceRequirements, Secret, ServiceSpec,
    SessionAffinityConfig, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::Object;

/// Fills in the fields the API server defaults.
pub fn apply(object: &mut Object) {
    match object {
        Object::Pod(pod) => {
            if let Some(spec) = &mut pod.spec {
                pod_spec(spec);
                pod_only(spec);
            }
            pod_status(pod);
        }
        Object::Deployment(d) => {
            if let Some(spec) = &mut d.spec {
                deployment(spec);
            }
        }
        Object::ReplicaSet(rs) => {
            if let Some(spec) = &mut rs.spec {
                replica_set(spec);
            }
        }
        Object::Service(svc) => {
            if let Some(spec) = &mut svc.spec {
                service(spec);
            }
        }
        Object::Namespace(ns) => namespace(ns),
        Object::Secret(secret) => self::secret(secret),
        Object::Endpoints(ep) => {
            for port in ep
                .subsets
                .iter_mut()
                .flatten()
                .flat_map(|s| s.ports.iter_mut().flatten())
            {
                port.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
        Object::EndpointSlice(slice) => {
            // `SetDefaults_EndpointPort`: kubectl's describe dereferences every port's name.
            for port in slice.ports.iter_mut().flatten() {
                port.name.get_or_insert_with(String::new);
                port.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
        Object::ConfigMap(_) | Object::Event(_) => {}
    }
}

fn deployment(spec: &mut DeploymentSpec) {
    spec.replicas.get_or_insert(1);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
    if kind == "RollingUpdate" {
        let rolling = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        rolling
            .max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        rolling
            .max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    if let Some(pod) = &mut spec.template.spec {
        pod_spec(pod);
    }
}

fn replica_set(spec: &mut ReplicaSetSpec) {
    spec.replicas.get_or_insert(1);
    if let Some(pod) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
        pod_spec(pod);
    }
}

/// Defaults of every pod spec, in Pods and in templates.
fn pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    service_account(spec);
    for volume in spec.volumes.iter_mut().flatten() {
        self::volume(volume);
    }
    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.iter_mut().flatten();
    for c in init.chain(spec.containers.iter_mut()) {
        container(c, host_network);
    }
}

/// The deprecated `serviceAccount` mirrors `serviceAccountName`, which wins (upstream's v1
/// conversion does this for every pod spec, templates included).
fn service_account(spec: &mut PodSpec) {
    match spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(name) => spec.service_account = Some(name.to_owned()),
        None => {
            if let Some(old) = spec.service_account.clone().filter(|s| !s.is_empty()) {
                spec.service_account_name = Some(old);
            }
        }
    }
}

/// Defaults only a Pod gets, not a template: upstream `SetDefaults_Pod`, and what the
/// ServiceAccount and Priority admission plugins add (the `default` account, priority 0 with
/// `PreemptLowerPriority`; `kubectl describe pod` shows both).
fn pod_only(spec: &mut PodSpec) {
    spec.enable_service_links.get_or_insert(true);
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        spec.service_account_name = Some("default".into());
        spec.service_account = Some("default".into());
    }
    spec.priority.get_or_insert(0);
    spec.preemption_policy
        .get_or_insert_with(|| "PreemptLowerPriority".into());
    let init = spec.init_containers.iter_mut().flatten();
    for c in init.chain(spec.containers.iter_mut()) {
        let Some(resources) = &mut c.resources else {
            continue;
        };
        if let Some(limits) = &resources.limits {
            let requests = resources.requests.get_or_insert_with(BTreeMap::new);
            for (name, quantity) in limits {
                requests
                    .entry(name.clone())
                    .or_insert_with(|| quantity.clone());
            }
        }
    }
}

/// What the API server records in a new pod's status (upstream `podStrategy.PrepareForCreate`):
/// phase Pending, so `kubectl get pods` shows `Pending` before the kubelet acts, and the QoS
/// class. Only unset fields are filled, so a status the kubelet wrote is kept.
fn pod_status(pod: &mut Pod) {
    let qos = pod.spec.as_ref().map_or("BestEffort", qos::class);
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.phase.get_or_insert_with(|| "Pending".into());
    status.qos_class.get_or_insert_with(|| qos.into());
}

fn container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.is_none() {
        let latest =
            image_tag(c.image.as_deref().unwrap_or_default()).is_none_or(|t| t == "latest");
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    c.resources
        .get_or_insert_with(ResourceRequirements::default);
    for port in c.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
        if host_network && port.host_port.is_none_or(|p| p == 0) {
            port.host_port = Some(port.container_port);
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        self::probe(probe);
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            if let Some(http) = &mut handler.http_get {
                http_get(http);
            }
        }
    }
    for var in c.env.iter_mut().flatten() {
        if let Some(field) = var.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            field.api_version.get_or_insert_with(|| "v1".into());
        }
    }
}

/// The tag of an image reference, `None` when it has none (a digest is not a tag).
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .or_else(|| image.contains('@').then_some(""))
}

fn probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = &mut probe.http_get {
        http_get(http);
    }
    if let Some(grpc) = &mut probe.grpc {
        grpc.service.get_or_insert_with(String::new);
    }
}

fn http_get(http: &mut HTTPGetAction) {
    if http.path.as_deref().unwrap_or_default().is_empty() {
        http.path = Some("/".into());
    }
    http.scheme.get_or_insert_with(|| "HTTP".into());
}

/// Octal 0644, the mode of files projected from ConfigMaps and Secrets.
const DEFAULT_MODE: i32 = 0o644;

fn volume(v: &mut Volume) {
    let has_source = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|o| o.keys().any(|k| k != "name")))
        .unwrap_or(true);
    if !has_source {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(cm) = &mut v.config_map {
        cm.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(secret) = &mut v.secret {
        secret.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(projected) = &mut v.projected {
        projected.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(downward) = &mut v.downward_api {
        downward.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(host) = &mut v.host_path {
        host.type_.get_or_insert_with(String::new);
    }
}

fn service(spec: &mut ServiceSpec) {
    let affinity = spec
        .session_affinity
        .get_or_insert_with(|| "None".into())
        .clone();
    match affinity.as_str() {
        "None" => spec.session_affinity_config = None,
        "ClientIP" => {
            let config = spec
                .session_affinity_config
                .get_or_insert_with(SessionAffinityConfig::default);
            let client = config.client_ip.get_or_insert_with(ClientIPConfig::default);
            client.timeout_seconds.get_or_insert(10800);
        }
        _ => {}
    }
    let kind = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    for port in spec.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.is_empty(),
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let external_ips = spec
        .external_ips
        .as_ref()
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = matches!(kind.as_str(), "NodePort" | "LoadBalancer")
        || (kind == "ClusterIP" && external_ips);
    if externally_accessible {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if kind == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    // The harness is a single-stack IPv4 cluster; upstream's REST storage fills these for every
    // Service but ExternalName (`describe service` shows them).
    if kind != "ExternalName" {
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".into());
        if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
            spec.ip_families = Some(vec!["IPv4".into()]);
        }
    }
}

fn namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    status.phase.get_or_insert_with(|| "Active".into());
}

fn secret(secret: &mut Secret) {
    secret.type_.get_or_insert_with(|| "Opaque".into());
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
}

#[cfg(test)]
mod tests;
