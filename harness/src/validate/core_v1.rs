//! Validation of the core kinds other than Pods: Services, ConfigMaps, Secrets and Endpoints.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::{PROTOCOLS, port_num_or_name};
use super::field::{Errors, Path, Value};
use super::{meta, syntax};

/// The NodePort range of a default API server (`--service-node-port-range`).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;
/// The most bytes a ConfigMap or Secret may hold.
const MAX_DATA_BYTES: usize = 1024 * 1024;
const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// Validates a Service's spec.
pub(super) fn service(svc: &Service, errs: &mut Errors) {
    let path = Path::new("spec");
    let Some(spec) = &svc.spec else {
        errs.required(&path, "");
        return;
    };
    let kind = spec.type_.as_deref().unwrap_or_default();
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.required(&path.child("ports"), "");
    }
    if kind == "ExternalName" {
        let name = spec.external_name.as_deref().unwrap_or_default();
        errs.required_with(&path.child("externalName"), name, syntax::dns1123_subdomain);
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            port,
            ports.len() > 1,
            &mut names,
            &path.child("ports").index(i),
            errs,
        );
    }
    if let Some(selector) = &spec.selector {
        meta::labels(selector, &path.child("selector"), errs);
    }
    errs.one_of(
        &path.child("sessionAffinity"),
        spec.session_affinity.as_deref(),
        &["ClientIP", "None"],
    );
    errs.one_of(&path.child("type"), Some(kind), SERVICE_TYPES);
    if !cluster_ip.is_empty() && !headless {
        errs.invalid_each(&path.child("clusterIP"), cluster_ip, syntax::ip(cluster_ip));
    }
    if headless && matches!(kind, "NodePort" | "LoadBalancer") {
        errs.invalid(
            &path.child("clusterIP"),
            cluster_ip,
            &format!("may not be set to 'None' for {kind} services"),
        );
    }
    for (value, field) in [
        (&spec.internal_traffic_policy, "internalTrafficPolicy"),
        (&spec.external_traffic_policy, "externalTrafficPolicy"),
    ] {
        if let Some(v) = value.as_deref()
            && !["Cluster", "Local"].contains(&v)
        {
            errs.not_supported(&path.child(field), v, &["Cluster", "Local"]);
        }
    }
    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = path.child("ports").index(i);
        let protocol = port.protocol.as_deref().unwrap_or_default();
        if let Some(node_port) = port.node_port.filter(|&p| p != 0) {
            if kind == "ClusterIP" {
                errs.forbidden(
                    &at.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errs.invalid(
                    &at.child("nodePort"),
                    node_port,
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
            if !node_ports.insert((protocol, node_port)) {
                errs.duplicate(&at.child("nodePort"), node_port);
            }
        }
        if !port_keys.insert((protocol, port.port)) {
            errs.duplicate(
                &at,
                Value::Go(format!(
                    "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    port.port
                )),
            );
        }
    }
}

fn service_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut BTreeSet<String>,
    path: &Path,
    errs: &mut Errors,
) {
    let name = port.name.as_deref().unwrap_or_default();
    if require_name && name.is_empty() {
        errs.required(&path.child("name"), "");
    } else if !name.is_empty() {
        errs.invalid_each(&path.child("name"), name, syntax::dns1123_label(name));
        if !names.insert(name.to_owned()) {
            errs.duplicate(&path.child("name"), name);
        }
    }
    for msg in syntax::port_number(port.port.into()) {
        errs.invalid(&path.child("port"), port.port, &msg);
    }
    errs.one_of(&path.child("protocol"), port.protocol.as_deref(), PROTOCOLS);
    match &port.target_port {
        Some(target) => port_num_or_name(target, &path.child("targetPort"), errs),
        None => port_num_or_name(
            &IntOrString::Int(port.port),
            &path.child("targetPort"),
            errs,
        ),
    }
}

/// Validates a ConfigMap's keys and size.
pub(super) fn config_map(cm: &ConfigMap, errs: &mut Errors) {
    let data = cm.data.as_ref();
    let binary = cm.binary_data.as_ref();
    let mut size = 0;
    for (key, value) in data.into_iter().flatten() {
        let at = Path::new("data").key(key);
        errs.invalid_each(&at, key, syntax::config_map_key(key));
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.invalid(&at, key, "duplicate of key present in binaryData");
        }
        size += value.len();
    }
    for (key, value) in binary.into_iter().flatten() {
        let at = Path::new("binaryData").key(key);
        errs.invalid_each(&at, key, syntax::config_map_key(key));
        if data.is_some_and(|d| d.contains_key(key)) {
            errs.invalid(&at, key, "duplicate of key present in data");
        }
        size += value.0.len();
    }
    if size > MAX_DATA_BYTES {
        errs.too_long(&Path::new("data"), MAX_DATA_BYTES);
    }
}

/// Validates a Secret's keys, size and the keys its type requires.
pub(super) fn secret(secret: &Secret, errs: &mut Errors) {
    let mut size = 0;
    for (key, value) in secret.data.iter().flatten() {
        errs.invalid_each(
            &Path::new("data").key(key),
            key,
            syntax::config_map_key(key),
        );
        size += value.0.len();
    }
    if size > MAX_DATA_BYTES {
        errs.too_long(&Path::new("data"), MAX_DATA_BYTES);
    }
    let required: &[&str] = match secret.type_.as_deref().unwrap_or_default() {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required {
        if !secret.data.as_ref().is_some_and(|d| d.contains_key(*key)) {
            errs.required(&Path::new("data").key(key), "");
        }
    }
}

/// Validates the addresses and ports of Endpoints.
pub(super) fn endpoints(ep: &Endpoints, errs: &mut Errors) {
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let sp = Path::new("subsets").index(i);
        for (list, field) in [
            (&subset.addresses, "addresses"),
            (&subset.not_ready_addresses, "notReadyAddresses"),
        ] {
            for (j, address) in list.iter().flatten().enumerate() {
                let at = sp.child(field).index(j).child("ip");
                errs.invalid_each(&at, &address.ip, syntax::ip(&address.ip));
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            let at = sp.child("ports").index(j);
            let name = port.name.as_deref().unwrap_or_default();
            if ports.len() > 1 && name.is_empty() {
                errs.required(&at.child("name"), "");
            } else if !name.is_empty() {
                errs.invalid_each(&at.child("name"), name, syntax::dns1123_label(name));
            }
            for msg in syntax::port_number(port.port.into()) {
                errs.invalid(&at.child("port"), port.port, &msg);
            }
            errs.one_of(&at.child("protocol"), port.protocol.as_deref(), PROTOCOLS);
        }
    }
}
