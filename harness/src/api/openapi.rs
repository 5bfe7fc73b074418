//! A minimal OpenAPI v3 document: enough for `kubectl apply` to choose server-side field
//! validation. kubectl fetches `/openapi/v3`, follows each group-version's `serverRelativeURL`,
//! and looks for a PATCH operation tagged with the kind's `x-kubernetes-group-version-kind`
//! that declares the `fieldValidation` query parameter; then it sends `fieldValidation=Strict`
//! and the server rejects unknown fields (see `strict`). Without it kubectl would want
//! `/openapi/v2` schemas or `--validate=false`.
//!
//! The document carries no schemas: kubectl then computes strategic merge patches from its
//! compiled-in types, as it does for any built-in kind.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::{self, Body};
use super::discovery::MINOR;
use super::status::ApiError;
use crate::object::Kind;

/// The group-version paths, as `/openapi/v3` names them (`api/v1`, `apis/apps/v1`).
fn group_versions() -> Vec<String> {
    let mut paths: Vec<String> = Kind::ALL.iter().map(|k| group_version_path(*k)).collect();
    paths.sort();
    paths.dedup();
    paths
}

fn group_version_path(kind: Kind) -> String {
    if kind.group().is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{}/v1", kind.group())
    }
}

/// Answers `/openapi/...`.
pub fn answer(path: &str) -> Result<Response<Body>, ApiError> {
    if path == "/openapi/v3" {
        let paths: serde_json::Map<String, Value> = group_versions()
            .into_iter()
            .map(|gv| {
                let url = format!("/openapi/v3/{gv}?hash={}", hash(&document(&gv)));
                (gv, json!({"serverRelativeURL": url}))
            })
            .collect();
        return Ok(body::json(StatusCode::OK, &json!({"paths": paths})));
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/")
        && group_versions().iter().any(|known| known == gv)
    {
        return Ok(body::json(StatusCode::OK, &document(gv)));
    }
    Err(ApiError::no_route(path))
}

/// A content hash, so that kubectl's on-disk cache notices a changed document.
fn hash(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).expect("JSON values always serialize");
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn query_parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The document of one group-version: a PATCH operation per kind on its item path.
fn document(group_version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for kind in Kind::ALL
        .iter()
        .copied()
        .filter(|k| group_version_path(*k) == group_version)
    {
        let item = if kind.namespaced() {
            format!(
                "/{group_version}/namespaces/{{namespace}}/{}/{{name}}",
                kind.plural()
            )
        } else {
            format!("/{group_version}/{}/{{name}}", kind.plural())
        };
        let operation = json!({
            "operationId": format!("patch{}", kind.name()),
            "parameters": [
                query_parameter("dryRun"),
                query_parameter("fieldManager"),
                query_parameter("fieldValidation"),
                query_parameter("force"),
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {
                "group": kind.group(),
                "version": "v1",
                "kind": kind.name(),
            },
        });
        paths.insert(item, json!({"patch": operation}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0+harness")},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_field_validation_for_each_kind() {
        let apps = document("apis/apps/v1");
        let op = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let core = document("api/v1");
        assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
        assert_eq!(
            group_versions(),
            vec!["api/v1", "apis/apps/v1", "apis/discovery.k8s.io/v1"]
        );
        let discovery = document("apis/discovery.k8s.io/v1");
        let op = &discovery["paths"]["/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}"]
            ["patch"];
        assert_eq!(
            op["x-kubernetes-group-version-kind"],
            json!({"group": "discovery.k8s.io", "version": "v1", "kind": "EndpointSlice"})
        );
    }
}
