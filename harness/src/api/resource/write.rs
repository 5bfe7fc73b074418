//! The writes: create (POST), replace (PUT), patch and delete, each turned into one store call
//! after the checks upstream makes (the body's kind and namespace against the URL, field
//! validation, preconditions). Main-resource writes keep the stored `status`; `dryRun=All`
//! computes the answer without storing it.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::super::Context;
use super::super::body::Body;
use super::super::patch::{self, PatchType};
use super::super::query::Query;
use super::super::routes::ResourcePath;
use super::super::status::ApiError;
use super::super::strict::{self, Validation};
use super::{Format, PATCH_ATTEMPTS, get, object_response, with_warnings};
use crate::error::Error;
use crate::object::{Kind, Object};
use crate::store::{self, DeleteOptions, Propagation};

/// Checks the body's namespace against the URL's and fills it in.
fn place(target: &ResourcePath, value: &mut Value) -> Result<(), ApiError> {
    if !target.kind.namespaced() {
        return Ok(());
    }
    let url_namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let metadata = value
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body is not a JSON object"))?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !metadata.is_object() {
        return Err(ApiError::bad_request("metadata must be a JSON object"));
    }
    match metadata.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != url_namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            metadata["namespace"] = json!(url_namespace);
            Ok(())
        }
    }
}

/// The body of a create or replace as an object, with the warnings of field validation: its
/// kind and namespace checked against the URL, decoded as the request's `fieldValidation` says.
fn decode(
    target: &ResourcePath,
    query: &Query,
    mut value: Value,
) -> Result<(Object, Vec<String>), ApiError> {
    strict::check_type_meta(target.kind, &value)?;
    place(target, &mut value)?;
    let validation = Validation::parse(query.get("fieldValidation"))?;
    strict::decode(target.kind, value, validation)
}

pub fn create(
    context: &Context,
    target: &ResourcePath,
    query: &Query,
    value: Value,
) -> Result<Response<Body>, ApiError> {
    let (object, warnings) = decode(target, query, value)?;
    let stored = if query.dry_run() {
        dry_run_create(context, object)?
    } else {
        context.store.create(object)?
    };
    Ok(with_warnings(
        object_response(&stored, Format::Json, query, StatusCode::CREATED),
        &warnings,
    ))
}

/// What a create would store, without storing it.
fn dry_run_create(context: &Context, mut object: Object) -> Result<Object, ApiError> {
    let key = object.key();
    if !object.name().is_empty() && context.store.get(&key).is_some() {
        return Err(Error::AlreadyExists(key).into());
    }
    store::admit(&mut object, None)?;
    Ok(object)
}

/// Whether the kind has a `/status` subresource, so that main-resource writes keep its status.
pub fn has_status(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Pod | Kind::Deployment | Kind::ReplicaSet | Kind::Service | Kind::Namespace
    )
}

/// `object` with the status of `current`.
pub fn keep_status(object: Object, current: &Object) -> Result<Object, ApiError> {
    let mut value = object.to_json();
    match current.to_json().get("status") {
        Some(status) => value["status"] = status.clone(),
        None => {
            value.as_object_mut().map(|m| m.remove("status"));
        }
    }
    Object::from_json(object.kind(), value)
        .map_err(|e| ApiError::bad_request(format!("cannot keep the status: {e}")))
}

fn check_name(name: &str, object: &Object) -> Result<(), ApiError> {
    if object.name() != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object.name()
        )));
    }
    Ok(())
}

pub fn replace(
    context: &Context,
    target: &ResourcePath,
    name: &str,
    query: &Query,
    value: Value,
) -> Result<Response<Body>, ApiError> {
    let (mut object, warnings) = decode(target, query, value)?;
    check_name(name, &object)?;
    let current = get(context, target, name)?;
    if has_status(target.kind) {
        object = keep_status(object, &current)?;
    }
    let stored = write(context, query, object, &current)?;
    Ok(with_warnings(
        object_response(&stored, Format::Json, query, StatusCode::OK),
        &warnings,
    ))
}

/// Stores an update (or, under `dryRun=All`, checks it and returns it).
pub fn write(
    context: &Context,
    query: &Query,
    mut object: Object,
    current: &Object,
) -> Result<Object, ApiError> {
    if !query.dry_run() {
        return Ok(context.store.update(object)?);
    }
    if let Some(rv) = &object.meta().resource_version
        && Some(rv) != current.meta().resource_version.as_ref()
    {
        return Err(Error::Conflict(current.key()).into());
    }
    {
        let (old, new) = (current.meta().clone(), object.meta_mut());
        new.uid = old.uid;
        new.creation_timestamp = old.creation_timestamp;
        new.deletion_timestamp = old.deletion_timestamp;
        new.generation = old.generation;
        new.resource_version = old.resource_version;
    }
    store::admit(&mut object, Some(current))?;
    Ok(object)
}

/// Applies a patch to the object and stores the result, retrying when the object changed in
/// between (unless the patch itself names a resourceVersion). With `status_only`, only the
/// patched status is kept (the `/status` subresource).
pub fn patch_object(
    context: &Context,
    target: &ResourcePath,
    name: &str,
    query: &Query,
    patch_type: PatchType,
    patch: &Value,
    status_only: bool,
) -> Result<(Object, Vec<String>), ApiError> {
    let validation = Validation::parse(query.get("fieldValidation"))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = get(context, target, name)?;
        let original = current.to_json();
        let mut patched = patch::apply(target.kind, patch_type, &original, patch)?;
        if !patched.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::bad_request(
                "the patched object is not an object with metadata",
            ));
        }
        let pinned = patched["metadata"]["resourceVersion"]
            != original["metadata"]["resourceVersion"]
            && !patched["metadata"]["resourceVersion"].is_null();
        if !pinned {
            patched["metadata"]["resourceVersion"] =
                original["metadata"]["resourceVersion"].clone();
        }
        if patched["metadata"]["name"] != original["metadata"]["name"]
            || patched["metadata"]["namespace"] != original["metadata"]["namespace"]
        {
            return Err(ApiError::bad_request(
                "a patch cannot change the object's name or namespace",
            ));
        }
        let (mut object, warnings) = strict::decode(target.kind, patched, validation)?;
        if status_only {
            let status_source = object;
            object = keep_status(current.clone(), &status_source)?;
            object.meta_mut().resource_version = status_source.meta().resource_version.clone();
        } else if has_status(target.kind) {
            object = keep_status(object, &current)?;
        }
        match write(context, query, object, &current) {
            Err(err) if err.reason == "Conflict" && !pinned && attempt < PATCH_ATTEMPTS => {
                continue;
            }
            Err(err) => return Err(err),
            Ok(stored) => return Ok((stored, warnings)),
        }
    }
}

pub fn delete(
    context: &Context,
    target: &ResourcePath,
    name: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ApiError::bad_request(format!(
                "the DeleteOptions in the body are not valid JSON: {err}"
            ))
        })?
    };
    let grace = match options.get("gracePeriodSeconds").and_then(Value::as_i64) {
        Some(g) => Some(g),
        None => query.int("gracePeriodSeconds")?,
    };
    let propagation = options
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(query.get("propagationPolicy"))
        .or_else(|| {
            (options.get("orphanDependents").and_then(Value::as_bool) == Some(true))
                .then_some("Orphan")
        });
    let propagation = match propagation {
        None | Some("Background" | "Foreground" | "") => Propagation::Background,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}: use Background, Foreground or Orphan"
            )));
        }
    };
    let current = get(context, target, name)?;
    if let Some(uid) = options["preconditions"]["uid"].as_str()
        && uid != current.uid()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current.uid()
            ),
        ));
    }
    if let Some(rv) = options["preconditions"]["resourceVersion"].as_str()
        && Some(rv) != current.meta().resource_version.as_deref()
    {
        return Err(Error::Conflict(current.key()).into());
    }
    let deleted = if query.dry_run() || options["dryRun"].as_array().is_some_and(|d| !d.is_empty())
    {
        current
    } else {
        context.store.delete(
            &current.key(),
            DeleteOptions {
                grace_period_seconds: grace,
                propagation,
            },
        )?
    };
    Ok(object_response(
        &deleted,
        Format::Json,
        query,
        StatusCode::OK,
    ))
}
