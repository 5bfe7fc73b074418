//! Subresources: `status` (GET/PUT/PATCH of the status alone), `scale` (an autoscaling/v1
//! `Scale` view of a Deployment's or ReplicaSet's replicas, what `kubectl scale` patches),
//! `log` (through [`NodeServices::logs`](super::super::NodeServices::logs)) and `portforward`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::super::body::{self, Body};
use super::super::patch::{self, PatchType};
use super::super::query::Query;
use super::super::routes::ResourcePath;
use super::super::status::ApiError;
use super::super::strict::{self, Validation};
use super::super::table::format_selector;
use super::super::{Context, LogOptions, portforward};
use super::write::{has_status, keep_status, patch_object, write};
use super::{
    Format, PATCH_ATTEMPTS, get, object_response, patch_type_of, read_json, with_warnings,
};
use crate::error::Error;
use crate::object::{Kind, Object, ObjectKey};

pub async fn handle(
    context: Arc<Context>,
    target: &ResourcePath,
    name: &str,
    subresource: &str,
    query: &Query,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    let namespace = target.namespace.clone().unwrap_or_default();
    match (target.kind, subresource, &method) {
        (kind, "status", &Method::GET) if has_status(kind) => {
            let object = get(&context, target, name)?;
            Ok(object_response(
                &object,
                Format::Json,
                query,
                StatusCode::OK,
            ))
        }
        (kind, "status", &Method::PUT) if has_status(kind) => {
            let value = read_json(request).await?;
            strict::check_type_meta(kind, &value)?;
            let validation = Validation::parse(query.get("fieldValidation"))?;
            let (object, warnings) = strict::decode(kind, value, validation)?;
            let current = get(&context, target, name)?;
            let mut updated = keep_status(current.clone(), &object)?;
            updated.meta_mut().resource_version = object.meta().resource_version.clone();
            let stored = write(&context, query, updated, &current)?;
            Ok(with_warnings(
                object_response(&stored, Format::Json, query, StatusCode::OK),
                &warnings,
            ))
        }
        (kind, "status", &Method::PATCH) if has_status(kind) => {
            let patch_type = patch_type_of(request.headers())?;
            let value = read_json(request).await?;
            let (stored, warnings) =
                patch_object(&context, target, name, query, patch_type, &value, true)?;
            Ok(with_warnings(
                object_response(&stored, Format::Json, query, StatusCode::OK),
                &warnings,
            ))
        }
        (Kind::Deployment | Kind::ReplicaSet, "scale", &Method::GET) => {
            let object = get(&context, target, name)?;
            Ok(body::json(StatusCode::OK, &scale_of(&object)))
        }
        (Kind::Deployment | Kind::ReplicaSet, "scale", &Method::PUT) => {
            let value = read_json(request).await?;
            let replicas = replicas_in(&value, name)?;
            let current = get(&context, target, name)?;
            let mut updated = with_replicas(&current, replicas)?;
            if let Some(rv) = value["metadata"]["resourceVersion"].as_str() {
                updated.meta_mut().resource_version = Some(rv.to_owned());
            }
            let stored = write(&context, query, updated, &current)?;
            Ok(body::json(StatusCode::OK, &scale_of(&stored)))
        }
        (Kind::Deployment | Kind::ReplicaSet, "scale", &Method::PATCH) => {
            let patch_type = match patch_type_of(request.headers())? {
                // A Scale has no lists: a strategic merge patch is a merge patch here.
                PatchType::Strategic => PatchType::Merge,
                other => other,
            };
            let value = read_json(request).await?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let current = get(&context, target, name)?;
                let scale = patch::apply(target.kind, patch_type, &scale_of(&current), &value)?;
                let replicas = replicas_in(&scale, name)?;
                let updated = with_replicas(&current, replicas)?;
                match write(&context, query, updated, &current) {
                    Err(err) if err.reason == "Conflict" && attempt < PATCH_ATTEMPTS => continue,
                    Err(err) => return Err(err),
                    Ok(stored) => return Ok(body::json(StatusCode::OK, &scale_of(&stored))),
                }
            }
        }
        (Kind::Pod, "log", &Method::GET) => logs(&context, &namespace, name, query),
        (Kind::Pod, "portforward", &Method::GET | &Method::POST) => {
            let key = ObjectKey::new(Kind::Pod, &namespace, name);
            if context.store.get(&key).is_none() {
                return Err(ApiError::not_found(&key));
            }
            portforward::handle(context, &namespace, name, request)
        }
        (Kind::Pod, "exec" | "attach", _) => Err(ApiError::bad_request(format!(
            "pods/{subresource} is not supported by the harness: its containers are processes on \
             this machine, so run the command there directly"
        ))),
        (_, "status" | "scale" | "log" | "portforward", _) => Err(ApiError::method_not_allowed(
            method.as_str(),
            &format!("{}/{subresource}", target.kind.plural()),
        )),
        _ => Err(ApiError::no_route(&format!(
            "{}/{name}/{subresource}",
            target.kind.plural()
        ))),
    }
}

/// The autoscaling/v1 `Scale` of a Deployment or ReplicaSet.
fn scale_of(object: &Object) -> Value {
    let (spec_replicas, status_replicas, selector) = match object {
        Object::Deployment(d) => {
            let spec = d.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                format_selector(Some(&spec.selector)),
            )
        }
        Object::ReplicaSet(rs) => {
            let spec = rs.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                format_selector(Some(&spec.selector)),
            )
        }
        _ => (0, 0, String::new()),
    };
    let meta = object.meta();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resourceVersion": meta.resource_version,
            "creationTimestamp": meta.creation_timestamp,
        },
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

fn replicas_in(scale: &Value, name: &str) -> Result<i32, ApiError> {
    let invalid = |message: String| {
        ApiError::from(Error::Invalid {
            key: ObjectKey::new(Kind::Deployment, "", name),
            causes: vec![("spec.replicas".to_owned(), message)],
        })
    };
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        let mut err = invalid(format!(
            "Invalid value: {replicas}: must be greater than or equal to 0"
        ));
        err.message = format!(
            "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        );
        if let Some(details) = err.details.as_mut() {
            details["kind"] = json!("Scale");
            details["group"] = json!("autoscaling");
        }
        return Err(err);
    }
    i32::try_from(replicas)
        .map_err(|_| invalid(format!("Invalid value: {replicas}: must fit in 32 bits")))
}

fn with_replicas(current: &Object, replicas: i32) -> Result<Object, ApiError> {
    let mut value = current.to_json();
    value["spec"]["replicas"] = json!(replicas);
    Object::from_json(current.kind(), value)
        .map_err(|e| ApiError::bad_request(format!("cannot set the replicas: {e}")))
}

fn logs(
    context: &Context,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let key = ObjectKey::new(Kind::Pod, namespace, name);
    let Some(Object::Pod(pod)) = context.store.get(&key) else {
        return Err(ApiError::not_found(&key));
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let names: Vec<String> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if spec.containers.len() == 1 => spec.containers[0].name.clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                spec.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
    };
    let options = LogOptions {
        container,
        previous: query.flag("previous"),
        follow: query.flag("follow"),
        tail_lines: query.int("tailLines")?,
    };
    let stream = context.node.logs(namespace, name, &options)?;
    Ok(body::with_type(
        StatusCode::OK,
        "text/plain",
        Body::Channel(stream),
    ))
}
