//! A read-only `nodes` resource: the harness is one machine, so it shows one Node per
//! `spec.nodeName` its pods use (`harness` when none does), Ready, at 127.0.0.1. It exists so
//! that `kubectl get nodes` (with `-o wide` or a jsonpath on the InternalIP address) and
//! `kubectl describe node` work as the tutorials use them; nodes are not in the store and
//! cannot be written or watched.

use std::collections::BTreeSet;

use hyper::{Method, Response, StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Context;
use super::body::{self, Body};
use super::discovery::MINOR;
use super::query::{FieldSelector, Query};
use super::resource::Format;
use super::status::ApiError;
use super::table::since;
use crate::object::Kind;
use crate::selector::Selector;

/// The name nodes get when no pod names one.
const DEFAULT_NODE: &str = "harness";

/// The discovery entry of `nodes`.
pub fn discovery_entry() -> Value {
    json!({
        "name": "nodes",
        "singularName": "node",
        "namespaced": false,
        "kind": "Node",
        "verbs": ["get", "list"],
        "shortNames": ["no"],
    })
}

fn names(context: &Context) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = context
        .store
        .list(Kind::Pod, None)
        .iter()
        .filter_map(|o| match o {
            crate::object::Object::Pod(p) => p.spec.as_ref().and_then(|s| s.node_name.clone()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        names.insert(DEFAULT_NODE.to_owned());
    }
    names
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

fn node(name: &str, started: Timestamp) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let created = started.to_string();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": format!("00000000-0000-4000-a000-{:012x}", name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) & 0xffff_ffff_ffff),
            "resourceVersion": "1",
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": std::env::consts::OS,
                "kubernetes.io/arch": arch,
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": cpus.to_string(), "pods": "110"},
            "allocatable": {"cpu": cpus.to_string(), "pods": "110"},
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": Timestamp::now().to_string(),
                "lastTransitionTime": created,
            }],
            "nodeInfo": {
                "architecture": arch,
                "bootID": "",
                "containerRuntimeVersion": "harness://0.1.0",
                "kernelVersion": kernel_version(),
                "kubeProxyVersion": format!("v1.{MINOR}.0+harness"),
                "kubeletVersion": format!("v1.{MINOR}.0+harness"),
                "machineID": "",
                "operatingSystem": std::env::consts::OS,
                "osImage": os_image(),
                "systemUUID": "",
            },
        },
    })
}

fn cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let created = node["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
    let info = &node["status"]["nodeInfo"];
    vec![
        node["metadata"]["name"].clone(),
        json!("Ready"),
        json!("control-plane"),
        json!(since(created.as_ref(), now)),
        info["kubeletVersion"].clone(),
        json!("127.0.0.1"),
        json!("<none>"),
        info["osImage"].clone(),
        info["kernelVersion"].clone(),
        info["containerRuntimeVersion"].clone(),
    ]
}

fn table(nodes: &[Value]) -> Value {
    let now = Timestamp::now();
    let column = |name: &str, wide: bool| {
        let mut c = json!({"name": name, "type": "string", "description": "", "priority": if wide { 1 } else { 0 }});
        if name == "Name" {
            c["format"] = json!("name");
        }
        c
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            column("Name", false), column("Status", false), column("Roles", false),
            column("Age", false), column("Version", false), column("Internal-IP", true),
            column("External-IP", true), column("OS-Image", true), column("Kernel-Version", true),
            column("Container-Runtime", true),
        ],
        "rows": nodes.iter().map(|n| json!({
            "cells": cells(n, now),
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": n["metadata"]},
        })).collect::<Vec<_>>(),
    })
}

/// Answers `/api/v1/nodes` and `/api/v1/nodes/NAME`.
pub fn answer(
    context: &Context,
    method: &Method,
    name: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    if method != Method::GET || query.flag("watch") {
        return Err(ApiError::method_not_allowed(
            method.as_str(),
            "nodes (the harness serves them read-only, without watches)",
        ));
    }
    let mut nodes: Vec<Value> = names(context)
        .iter()
        .map(|n| node(n, context.started))
        .collect();
    if let Some(name) = name {
        let Some(found) = nodes.into_iter().find(|n| n["metadata"]["name"] == name) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("nodes \"{name}\" not found"),
            ));
        };
        let value = match format {
            Format::Table => table(std::slice::from_ref(&found)),
            _ => found,
        };
        return Ok(body::json(StatusCode::OK, &value));
    }
    if let Some(text) = query.get("labelSelector") {
        let selector = Selector::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        nodes.retain(|n| {
            let labels =
                serde_json::from_value(n["metadata"]["labels"].clone()).unwrap_or_default();
            selector.matches(&labels)
        });
    }
    if let Some(text) = query.get("fieldSelector") {
        let fields = FieldSelector::parse(text)?;
        nodes.retain(|n| fields.matches(Kind::Namespace, n));
    }
    let value = match format {
        Format::Table => table(&nodes),
        _ => json!({
            "kind": "NodeList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": nodes,
        }),
    };
    Ok(body::json(StatusCode::OK, &value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_rows_fill_every_column() {
        let n = node("harness", Timestamp::now());
        let t = table(&[n]);
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap().len(),
            t["columnDefinitions"].as_array().unwrap().len()
        );
        assert_eq!(t["rows"][0]["cells"][1], "Ready");
    }
}
