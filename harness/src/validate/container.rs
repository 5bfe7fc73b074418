//! Container validation (upstream `validateContainers` and friends): names, images, ports,
//! environment, volume mounts, probes, lifecycle handlers and resources.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, LifecycleHandler, Probe, ResourceRequirements,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{Errors, Path};
use super::syntax;

pub(super) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["FallbackToLogsOnError", "File"];
const SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Which probes a container may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Regular,
    /// An init container; one with `restartPolicy: Always` is a sidecar and may have probes.
    Init,
}

/// Validates a list of containers. `names` collects container names across the pod (init and
/// regular containers share one namespace); `volumes` are the pod's volume names.
pub(super) fn containers(
    list: &[Container],
    path: &Path,
    role: Role,
    names: &mut BTreeSet<String>,
    volumes: &BTreeSet<String>,
    errs: &mut Errors,
) {
    for (i, c) in list.iter().enumerate() {
        let at = path.index(i);
        let name_path = at.child("name");
        errs.required_with(&name_path, &c.name, syntax::dns1123_label);
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.duplicate(&name_path, &c.name);
        }
        let image = c.image.as_deref().unwrap_or_default();
        if image.is_empty() {
            errs.required(&at.child("image"), "");
        } else if image.trim() != image {
            errs.invalid(
                &at.child("image"),
                image,
                "must not have leading or trailing whitespace",
            );
        }
        ports(
            c.ports.as_deref().unwrap_or_default(),
            &at.child("ports"),
            errs,
        );
        env(c.env.as_deref().unwrap_or_default(), &at.child("env"), errs);
        env_from(
            c.env_from.as_deref().unwrap_or_default(),
            &at.child("envFrom"),
            errs,
        );
        mounts(
            c.volume_mounts.as_deref().unwrap_or_default(),
            volumes,
            &at.child("volumeMounts"),
            errs,
        );
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if role == Role::Init && !sidecar {
            for (probe, field) in [
                (&c.liveness_probe, "livenessProbe"),
                (&c.readiness_probe, "readinessProbe"),
                (&c.startup_probe, "startupProbe"),
            ] {
                if probe.is_some() {
                    errs.forbidden(
                        &at.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    );
                }
            }
        } else {
            probes(c, &at, errs);
        }
        if role == Role::Regular && c.restart_policy.is_some() {
            errs.forbidden(
                &at.child("restartPolicy"),
                "may not be set for non-init containers",
            );
        }
        if let Some(lifecycle) = &c.lifecycle {
            let lp = at.child("lifecycle");
            if let Some(h) = &lifecycle.post_start {
                lifecycle_handler(h, &lp.child("postStart"), errs);
            }
            if let Some(h) = &lifecycle.pre_stop {
                lifecycle_handler(h, &lp.child("preStop"), errs);
            }
        }
        if let Some(resources) = &c.resources {
            self::resources(resources, &at.child("resources"), errs);
        }
        errs.one_of(
            &at.child("imagePullPolicy"),
            c.image_pull_policy.as_deref(),
            PULL_POLICIES,
        );
        errs.one_of(
            &at.child("terminationMessagePolicy"),
            c.termination_message_policy.as_deref(),
            MESSAGE_POLICIES,
        );
    }
}

fn ports(list: &[ContainerPort], path: &Path, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, p) in list.iter().enumerate() {
        let at = path.index(i);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = syntax::port_name(name);
            if !msgs.is_empty() {
                errs.invalid_each(&at.child("name"), name, msgs);
            } else if !names.insert(name) {
                errs.duplicate(&at.child("name"), name);
            }
        }
        if p.container_port == 0 {
            errs.required(&at.child("containerPort"), "");
        } else {
            for msg in syntax::port_number(p.container_port.into()) {
                errs.invalid(&at.child("containerPort"), p.container_port, &msg);
            }
        }
        if let Some(host_port) = p.host_port.filter(|&p| p != 0) {
            for msg in syntax::port_number(host_port.into()) {
                errs.invalid(&at.child("hostPort"), host_port, &msg);
            }
        }
        errs.one_of(&at.child("protocol"), p.protocol.as_deref(), PROTOCOLS);
    }
}

fn env(list: &[EnvVar], path: &Path, errs: &mut Errors) {
    for (i, var) in list.iter().enumerate() {
        let at = path.index(i);
        if var.name.is_empty() {
            errs.required(&at.child("name"), "");
        }
        errs.invalid_each(
            &at.child("name"),
            &var.name,
            syntax::env_var_name(&var.name),
        );
        let Some(from) = &var.value_from else {
            continue;
        };
        let fp = at.child("valueFrom");
        let mut sources = 0;
        if let Some(field) = &from.field_ref {
            sources += 1;
            let p = fp.child("fieldRef");
            if field.api_version.as_deref().unwrap_or_default().is_empty() {
                errs.required(&p.child("apiVersion"), "");
            }
            let fpath = field.field_path.as_str();
            let base = fpath.split_once('[').map_or(fpath, |(base, _)| base);
            if fpath.is_empty() {
                errs.required(&p.child("fieldPath"), "");
            } else if !FIELD_PATHS.contains(&base)
                || (fpath.contains('[')
                    && !matches!(base, "metadata.labels" | "metadata.annotations"))
            {
                errs.not_supported(&p.child("fieldPath"), fpath, FIELD_PATHS);
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            if r.resource.is_empty() {
                errs.required(&fp.child("resourceFieldRef").child("resource"), "");
            }
        }
        if let Some(r) = &from.config_map_key_ref {
            sources += 1;
            key_selector(&r.name, &r.key, &fp.child("configMapKeyRef"), errs);
        }
        if let Some(r) = &from.secret_key_ref {
            sources += 1;
            key_selector(&r.name, &r.key, &fp.child("secretKeyRef"), errs);
        }
        if sources == 0 {
            errs.invalid(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            );
        } else if !var.value.as_deref().unwrap_or_default().is_empty() {
            errs.invalid(&fp, "", "may not be specified when `value` is not empty");
        } else if sources > 1 {
            errs.invalid(
                &fp,
                "",
                "may not have more than one field specified at a time",
            );
        }
    }
}

fn key_selector(name: &str, key: &str, path: &Path, errs: &mut Errors) {
    errs.invalid_each(&path.child("name"), name, syntax::dns1123_subdomain(name));
    errs.required_with(&path.child("key"), key, syntax::config_map_key);
}

fn env_from(list: &[EnvFromSource], path: &Path, errs: &mut Errors) {
    for (i, source) in list.iter().enumerate() {
        let at = path.index(i);
        if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty()) {
            errs.invalid_each(&at.child("prefix"), prefix, syntax::env_var_name(prefix));
        }
        let refs = [
            source
                .config_map_ref
                .as_ref()
                .map(|r| (&r.name, "configMapRef")),
            source.secret_ref.as_ref().map(|r| (&r.name, "secretRef")),
        ];
        let set: Vec<_> = refs.into_iter().flatten().collect();
        match set.as_slice() {
            [] => errs.invalid(
                &at,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ),
            [(name, field)] => {
                let p = at.child(field).child("name");
                errs.invalid_each(&p, name, syntax::dns1123_subdomain(name));
            }
            _ => errs.invalid(
                &at,
                "",
                "may not have more than one field specified at a time",
            ),
        }
    }
}

fn mounts(list: &[VolumeMount], volumes: &BTreeSet<String>, path: &Path, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, m) in list.iter().enumerate() {
        let at = path.index(i);
        if m.name.is_empty() {
            errs.required(&at.child("name"), "");
        }
        if !volumes.contains(&m.name) {
            errs.not_found(&at.child("name"), &m.name);
        }
        if m.mount_path.is_empty() {
            errs.required(&at.child("mountPath"), "");
        } else if !seen.insert(m.mount_path.as_str()) {
            errs.invalid(&at.child("mountPath"), &m.mount_path, "must be unique");
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') {
                errs.invalid(&at.child("subPath"), sub, "must be a relative path");
            } else if sub.split('/').any(|part| part == "..") {
                errs.invalid(&at.child("subPath"), sub, "must not contain '..'");
            }
        }
    }
}

fn probes(c: &Container, at: &Path, errs: &mut Errors) {
    for (probe, field, must_succeed_once) in [
        (&c.liveness_probe, "livenessProbe", true),
        (&c.readiness_probe, "readinessProbe", false),
        (&c.startup_probe, "startupProbe", true),
    ] {
        let Some(probe) = probe else { continue };
        let p = at.child(field);
        if must_succeed_once && probe.success_threshold.is_some_and(|t| t != 1) {
            errs.invalid(
                &p.child("successThreshold"),
                probe.success_threshold.unwrap_or(1),
                "must be 1",
            );
        }
        if field == "readinessProbe"
            && let Some(grace) = probe.termination_grace_period_seconds
        {
            errs.invalid(
                &p.child("terminationGracePeriodSeconds"),
                grace,
                "must not be set for readinessProbes",
            );
        }
        self::probe(probe, &p, errs);
    }
}

fn probe(probe: &Probe, path: &Path, errs: &mut Errors) {
    let mut handlers = 0;
    let mut one = |present: bool, field: &str, errs: &mut Errors| -> bool {
        if !present {
            return false;
        }
        if handlers > 0 {
            errs.forbidden(
                &path.child(field),
                "may not specify more than 1 handler type",
            );
            return false;
        }
        handlers += 1;
        true
    };
    if one(probe.exec.is_some(), "exec", errs)
        && let Some(exec) = &probe.exec
        && exec.command.as_deref().unwrap_or_default().is_empty()
    {
        errs.required(&path.child("exec").child("command"), "");
    }
    if one(probe.http_get.is_some(), "httpGet", errs)
        && let Some(http) = &probe.http_get
    {
        http_get(http, &path.child("httpGet"), errs);
    }
    if one(probe.tcp_socket.is_some(), "tcpSocket", errs)
        && let Some(tcp) = &probe.tcp_socket
    {
        port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port"), errs);
    }
    if one(probe.grpc.is_some(), "grpc", errs)
        && let Some(grpc) = &probe.grpc
    {
        for msg in syntax::port_number(grpc.port.into()) {
            errs.invalid(&path.child("grpc").child("port"), grpc.port, &msg);
        }
    }
    if handlers == 0 {
        errs.required(path, "must specify a handler type");
    }
    errs.non_negative(
        &path.child("initialDelaySeconds"),
        probe.initial_delay_seconds,
    );
    errs.non_negative(&path.child("timeoutSeconds"), probe.timeout_seconds);
    errs.non_negative(&path.child("periodSeconds"), probe.period_seconds);
    errs.non_negative(&path.child("successThreshold"), probe.success_threshold);
    errs.non_negative(&path.child("failureThreshold"), probe.failure_threshold);
    if let Some(grace) = probe.termination_grace_period_seconds.filter(|&g| g <= 0) {
        errs.invalid(
            &path.child("terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        );
    }
}

fn lifecycle_handler(h: &LifecycleHandler, path: &Path, errs: &mut Errors) {
    let set: Vec<&str> = [
        h.exec.as_ref().map(|_| "exec"),
        h.http_get.as_ref().map(|_| "httpGet"),
        h.tcp_socket.as_ref().map(|_| "tcpSocket"),
        h.sleep.as_ref().map(|_| "sleep"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match set.as_slice() {
        [] => errs.required(path, "must specify a handler type"),
        [_] => {}
        [_, rest @ ..] => {
            for field in rest {
                errs.forbidden(
                    &path.child(field),
                    "may not specify more than 1 handler type",
                );
            }
        }
    }
    if let Some(exec) = &h.exec
        && exec.command.as_deref().unwrap_or_default().is_empty()
    {
        errs.required(&path.child("exec").child("command"), "");
    }
    if let Some(http) = &h.http_get {
        http_get(http, &path.child("httpGet"), errs);
    }
    if let Some(tcp) = &h.tcp_socket {
        port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port"), errs);
    }
    if let Some(sleep) = &h.sleep
        && sleep.seconds < 0
    {
        errs.invalid(
            &path.child("sleep").child("seconds"),
            sleep.seconds,
            "must be non-negative",
        );
    }
}

fn http_get(http: &k8s_openapi::api::core::v1::HTTPGetAction, path: &Path, errs: &mut Errors) {
    if http.path.as_deref().unwrap_or_default().is_empty() {
        errs.required(&path.child("path"), "");
    }
    port_num_or_name(&http.port, &path.child("port"), errs);
    if let Some(scheme) = http.scheme.as_deref()
        && !SCHEMES.contains(&scheme)
    {
        errs.not_supported(&path.child("scheme"), scheme, SCHEMES);
    }
}

/// A port given as a number (1-65535) or a container port name (IANA_SVC_NAME).
pub(super) fn port_num_or_name(port: &IntOrString, path: &Path, errs: &mut Errors) {
    match port {
        IntOrString::Int(n) => {
            for msg in syntax::port_number((*n).into()) {
                errs.invalid(path, *n, &msg);
            }
        }
        IntOrString::String(s) => errs.invalid_each(path, s, syntax::port_name(s)),
    }
}

const STANDARD_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

fn resources(r: &ResourceRequirements, path: &Path, errs: &mut Errors) {
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    for (list, field) in [(limits, "limits"), (requests, "requests")] {
        for (name, quantity) in list {
            let at = path.child(field).key(name);
            if !(STANDARD_RESOURCES.contains(&name.as_str())
                || name.starts_with("hugepages-")
                || name.contains('/'))
            {
                errs.invalid(&at, name, "must be a standard resource for containers");
            }
            match syntax::parse_quantity(&quantity.0) {
                None => errs.invalid_each(&at, &quantity.0, syntax::quantity(&quantity.0)),
                Some(v) if v < 0.0 => {
                    errs.invalid(&at, &quantity.0, "must be greater than or equal to 0")
                }
                Some(_) => {}
            }
        }
    }
    for (name, request) in requests {
        if let Some(limit) = limits.get(name)
            && exceeds(request, limit)
        {
            errs.invalid(
                &path.child("requests"),
                &request.0,
                &format!("must be less than or equal to {name} limit of {}", limit.0),
            );
        }
    }
}

fn exceeds(request: &Quantity, limit: &Quantity) -> bool {
    match (
        syntax::parse_quantity(&request.0),
        syntax::parse_quantity(&limit.0),
    ) {
        (Some(r), Some(l)) => r > l * (1.0 + 1e-12),
        _ => false,
    }
}
