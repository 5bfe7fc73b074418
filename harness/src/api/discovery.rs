//! Discovery (`/api`, `/apis`, `/api/v1`, `/apis/apps/v1`) and `/version`.
//!
//! kubectl asks first for aggregated discovery (`APIGroupDiscoveryList`); the harness answers the
//! legacy formats with a plain `application/json` content type, which client-go accepts and
//! follows with one request per group-version. Short names (`deploy`, `rs`, ...) and the `all`
//! category come only from here, from [`Kind`].

use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Context;
use super::body::{self, Body};
use super::status::ApiError;
use crate::object::Kind;

/// The Kubernetes version the harness reports; kubectl's dispatcher picks its binary by `minor`.
pub const MINOR: &str = "32";

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub fn version() -> Response<Body> {
    body::json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": MINOR,
            "gitVersion": format!("v1.{MINOR}.0+harness"),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
        }),
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The groups besides the core group, each served at version v1.
fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = Kind::ALL
        .iter()
        .map(|k| k.group())
        .filter(|g| !g.is_empty())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

fn group_entry(group: &str) -> Value {
    let version = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [version.clone()], "preferredVersion": version})
}

/// Answers a discovery path.
pub fn answer(
    context: &Context,
    path: &str,
    _headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let value = match path {
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": context.addr.to_string()}],
        }),
        "/apis" => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>(),
        }),
        "/api/v1" => resource_list(""),
        other => {
            let mut parts = other.trim_start_matches("/apis/").split('/');
            let group = parts.next().unwrap_or_default();
            match parts.next() {
                None => {
                    let mut entry = group_entry(group);
                    entry["kind"] = json!("APIGroup");
                    entry["apiVersion"] = json!("v1");
                    entry
                }
                Some(_) => resource_list(group),
            }
        }
    };
    Ok(body::json(StatusCode::OK, &value))
}

/// The `APIResourceList` of one group at v1.
fn resource_list(group: &str) -> Value {
    let group_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    let mut resources = Vec::new();
    for kind in Kind::ALL.iter().copied().filter(|k| k.group() == group) {
        let mut entry = json!({
            "name": kind.plural(),
            "singularName": kind.singular(),
            "namespaced": kind.namespaced(),
            "kind": kind.name(),
            "verbs": VERBS,
        });
        if !kind.short_names().is_empty() {
            entry["shortNames"] = json!(kind.short_names());
        }
        if kind.in_category_all() {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        for sub in subresources(kind) {
            let mut entry = json!({
                "name": format!("{}/{}", kind.plural(), sub.name),
                "singularName": "",
                "namespaced": kind.namespaced(),
                "kind": sub.kind.unwrap_or(kind.name()),
                "verbs": sub.verbs,
            });
            if let Some((group, version)) = sub.group_version {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            resources.push(entry);
        }
    }
    if group.is_empty() {
        resources.push(super::node::discovery_entry());
    }
    // Upstream lists resources alphabetically by plural (subresources right after their parent),
    // and `kubectl get all` prints its tables in that order: deployments before replicasets.
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// A subresource as discovery lists it.
pub struct Subresource {
    pub name: &'static str,
    /// The kind it speaks, when not the parent's.
    pub kind: Option<&'static str>,
    pub group_version: Option<(&'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

/// The subresources the API serves for `kind`.
pub fn subresources(kind: Kind) -> Vec<Subresource> {
    let status = Subresource {
        name: "status",
        kind: None,
        group_version: None,
        verbs: &["get", "patch", "update"],
    };
    match kind {
        Kind::Pod => vec![
            status,
            Subresource {
                name: "log",
                kind: None,
                group_version: None,
                verbs: &["get"],
            },
            Subresource {
                name: "portforward",
                kind: Some("PodPortForwardOptions"),
                group_version: None,
                verbs: &["create", "get"],
            },
        ],
        Kind::Deployment | Kind::ReplicaSet => vec![
            status,
            Subresource {
                name: "scale",
                kind: Some("Scale"),
                group_version: Some(("autoscaling", "v1")),
                verbs: &["get", "patch", "update"],
            },
        ],
        Kind::Service | Kind::Namespace => vec![status],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_short_names_categories_and_scale() {
        let apps = resource_list("apps");
        let resources = apps["resources"].as_array().unwrap();
        let deploy = resources
            .iter()
            .find(|r| r["name"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        let scale = resources
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        let core = resource_list("");
        assert!(
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "pods/log")
        );
        assert_eq!(groups(), vec!["apps", "discovery.k8s.io"]);
    }

    #[test]
    fn serves_endpoint_slices_in_their_group() {
        let discovery = resource_list("discovery.k8s.io");
        assert_eq!(discovery["groupVersion"], "discovery.k8s.io/v1");
        let resources = discovery["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 1);
        let slices = &resources[0];
        assert_eq!(slices["name"], "endpointslices");
        assert_eq!(slices["singularName"], "endpointslice");
        assert_eq!(slices["kind"], "EndpointSlice");
        assert_eq!(slices["namespaced"], true);
        assert!(slices.get("shortNames").is_none() && slices.get("categories").is_none());
        assert_eq!(slices["verbs"], json!(VERBS));
    }

    #[test]
    fn lists_resources_alphabetically_by_plural() {
        for group in ["", "apps", "discovery.k8s.io"] {
            let list = resource_list(group);
            let names: Vec<&str> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
        let apps = resource_list("apps");
        let plurals: Vec<&str> = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str().filter(|n| !n.contains('/')))
            .collect();
        assert_eq!(plurals, ["deployments", "replicasets"]);
    }
}
