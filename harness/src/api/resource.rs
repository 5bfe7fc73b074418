//! The resource handlers: list, get, create (POST), replace (PUT), patch, delete on
//! collections and objects, each turned into a [`Store`](crate::store::Store) call, with the
//! response format kubectl asked for (plain JSON, a server-side `Table`, or
//! `PartialObjectMetadata`). Subresources live in `subresource`, watches in `watch`.
//!
//! Like upstream, writes to the main resource never change `status` (that goes through
//! `/status`), and `dryRun=All` computes the answer without storing it.

mod subresource;

use std::sync::Arc;

use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::body::{self, Body};
use super::patch::{self, PatchType};
use super::query::{Filter, Query};
use super::routes::ResourcePath;
use super::status::ApiError;
use super::strict::{self, Validation};
use super::table::{self, IncludeObject};
use super::{Context, watch};
use crate::error::Error;
use crate::object::{Kind, Object, ObjectKey};
use crate::store::{DeleteOptions, Propagation};
use crate::{defaults, validate};

/// The largest request body accepted.
const MAX_BODY: usize = 16 << 20;
/// How often a patch is retried when the object changed between read and write.
const PATCH_ATTEMPTS: usize = 5;

/// The representation a client asked for in `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Table,
    Metadata,
}

impl Format {
    /// The first representation in `Accept` that the server can produce.
    pub fn from_headers(headers: &HeaderMap) -> Format {
        let accept = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        for entry in accept.split(',') {
            let entry = entry.trim();
            if entry.contains("as=Table") {
                return Format::Table;
            }
            if entry.contains("as=PartialObjectMetadata") {
                return Format::Metadata;
            }
            let essence = entry.split(';').next().unwrap_or_default().trim();
            if matches!(essence, "application/json" | "*/*" | "application/*" | "") {
                return Format::Json;
            }
        }
        Format::Json
    }
}

/// Answers a request on a resource URL.
pub async fn handle(
    context: Arc<Context>,
    target: ResourcePath,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    let format = Format::from_headers(request.headers());
    let what = format!("{} {}", target.kind.plural(), request.uri().path());
    match (&target.name, target.subresource.as_deref(), &method) {
        (None, None, &Method::GET) if query.flag("watch") => {
            watch::serve(&context, &target, &query, format)
        }
        (None, None, &Method::GET) => list(&context, &target, &query, format),
        (None, None, &Method::POST) => {
            let value = read_json(request).await?;
            create(&context, &target, &query, value)
        }
        (Some(name), None, &Method::GET) => {
            let object = get(&context, &target, name)?;
            Ok(object_response(&object, format, &query, StatusCode::OK))
        }
        (Some(name), None, &Method::PUT) => {
            let value = read_json(request).await?;
            replace(&context, &target, name, &query, value)
        }
        (Some(name), None, &Method::PATCH) => {
            let patch_type = patch_type_of(request.headers())?;
            let value = read_json(request).await?;
            let (object, warnings) =
                patch_object(&context, &target, name, &query, patch_type, &value, false)?;
            Ok(with_warnings(
                object_response(&object, Format::Json, &query, StatusCode::OK),
                &warnings,
            ))
        }
        (Some(name), None, &Method::DELETE) => {
            let bytes = read_body(request).await?;
            delete(&context, &target, name, &query, &bytes)
        }
        (Some(name), Some(sub), _) => {
            subresource::handle(context.clone(), &target, name, sub, &query, request).await
        }
        _ => Err(ApiError::method_not_allowed(method.as_str(), &what)),
    }
}

/// The key of the object a URL names.
pub fn key_of(target: &ResourcePath, name: &str) -> ObjectKey {
    ObjectKey::new(
        target.kind,
        target.namespace.as_deref().unwrap_or_default(),
        name,
    )
}

fn get(context: &Context, target: &ResourcePath, name: &str) -> Result<Object, ApiError> {
    let key = key_of(target, name);
    context
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))
}

pub async fn read_body(request: Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(err) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body could not be read: {err}"),
        )),
    }
}

pub async fn read_json(request: Request<Incoming>) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    // Typed kubectl clients send protobuf first; a 415 makes them fall back to JSON.
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml (got {content_type})"
        )));
    }
    let bytes = read_body(request).await?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request(format!("the request body is not valid JSON: {err}")))
}

pub fn patch_type_of(headers: &HeaderMap) -> Result<PatchType, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    PatchType::from_content_type(content_type)
}

/// An object in the representation asked for.
pub fn object_response(
    object: &Object,
    format: Format,
    query: &Query,
    status: StatusCode,
) -> Response<Body> {
    let value = match format {
        Format::Json => object.to_json(),
        Format::Metadata => table::partial_metadata(object),
        Format::Table => table::table(
            object.kind(),
            std::slice::from_ref(object),
            object
                .meta()
                .resource_version
                .as_deref()
                .unwrap_or_default(),
            None,
            IncludeObject::parse(query.get("includeObject")),
        ),
    };
    body::json(status, &value)
}

/// Adds `Warning` headers, as upstream reports unknown fields under `fieldValidation=Warn`.
pub fn with_warnings(mut response: Response<Body>, warnings: &[String]) -> Response<Body> {
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

fn list(
    context: &Context,
    target: &ResourcePath,
    query: &Query,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(query)?;
    let resource_version = context.store.resource_version().to_string();
    let mut objects: Vec<Object> = context
        .store
        .list(target.kind, target.namespace.as_deref())
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let after = decode_continue(token)?;
        objects.retain(|o| (o.namespace(), o.name()) > (after.0.as_str(), after.1.as_str()));
    }
    let mut continue_token = None;
    if let Some(limit) = query.int("limit")?.filter(|l| *l > 0) {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if objects.len() > limit {
            objects.truncate(limit);
            let last = objects.last().expect("limit is positive");
            continue_token = Some(encode_continue(last.namespace(), last.name()));
        }
    }
    let value = match format {
        Format::Table => table::table(
            target.kind,
            &objects,
            &resource_version,
            continue_token.as_deref(),
            IncludeObject::parse(query.get("includeObject")),
        ),
        Format::Metadata => {
            let mut metadata = json!({"resourceVersion": resource_version});
            if let Some(token) = &continue_token {
                metadata["continue"] = json!(token);
            }
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": objects.iter().map(table::partial_metadata).collect::<Vec<_>>(),
            })
        }
        Format::Json => {
            let mut metadata = json!({"resourceVersion": resource_version});
            if let Some(token) = &continue_token {
                metadata["continue"] = json!(token);
            }
            json!({
                "kind": format!("{}List", target.kind.name()),
                "apiVersion": target.kind.api_version(),
                "metadata": metadata,
                "items": objects.iter().map(Object::to_json).collect::<Vec<_>>(),
            })
        }
    };
    Ok(body::json(StatusCode::OK, &value))
}

fn encode_continue(namespace: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{namespace}/{name}"))
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (namespace, name) = text.split_once('/').ok_or_else(invalid)?;
    Ok((namespace.to_owned(), name.to_owned()))
}

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

fn create(
    context: &Context,
    target: &ResourcePath,
    query: &Query,
    mut value: Value,
) -> Result<Response<Body>, ApiError> {
    strict::check_type_meta(target.kind, &value)?;
    place(target, &mut value)?;
    let validation = Validation::parse(query.get("fieldValidation"))?;
    let (object, warnings) = strict::decode(target.kind, value, validation)?;
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
    defaults::apply(&mut object);
    check(&object, None)?;
    Ok(object)
}

fn check(object: &Object, old: Option<&Object>) -> Result<(), ApiError> {
    let causes = validate::validate(object, old);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            key: object.key(),
            causes,
        }
        .into())
    }
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

fn replace(
    context: &Context,
    target: &ResourcePath,
    name: &str,
    query: &Query,
    mut value: Value,
) -> Result<Response<Body>, ApiError> {
    strict::check_type_meta(target.kind, &value)?;
    place(target, &mut value)?;
    let validation = Validation::parse(query.get("fieldValidation"))?;
    let (mut object, warnings) = strict::decode(target.kind, value, validation)?;
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
    defaults::apply(&mut object);
    check(&object, Some(current))?;
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

fn delete(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::from_headers(&headers), Format::Json);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ),
        );
        assert_eq!(Format::from_headers(&headers), Format::Table);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf,application/json"),
        );
        assert_eq!(Format::from_headers(&headers), Format::Json);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            ),
        );
        assert_eq!(Format::from_headers(&headers), Format::Metadata);
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue("default", "web-1");
        assert_eq!(
            decode_continue(&token).unwrap(),
            ("default".to_owned(), "web-1".to_owned())
        );
        assert!(decode_continue("!!").is_err());
    }
}
