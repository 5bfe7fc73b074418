//! The resource handlers: list, get, create (POST), replace (PUT), patch, delete on
//! collections and objects, each turned into a [`Store`](crate::store::Store) call, with the
//! response format kubectl asked for (plain JSON, a server-side `Table`, or
//! `PartialObjectMetadata`). Writes live in `write`, subresources in `subresource`, watches in
//! `watch`.
//!
//! Like upstream, writes to the main resource never change `status` (that goes through
//! `/status`), and `dryRun=All` computes the answer without storing it.

mod subresource;
mod write;

use std::sync::Arc;

use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::body::{self, Body};
use super::patch::PatchType;
use super::protobuf;
use super::query::{Filter, Query};
use super::routes::ResourcePath;
use super::status::ApiError;
use super::table::{self, IncludeObject};
use super::{Context, watch};
use crate::object::{Object, ObjectKey};
use write::{create, delete, patch_object, replace};

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

    /// One object in this representation: as it is, as `PartialObjectMetadata`, or as a
    /// one-row Table (with the object in its row as `include` says).
    pub fn encode(self, object: &Object, include: IncludeObject) -> Value {
        match self {
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
                include,
            ),
        }
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
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    // kubectl's typed commands (`create deployment`, `create configmap`, ...) send protobuf.
    if essence == protobuf::MEDIA_TYPE {
        let bytes = read_body(request).await?;
        return protobuf::decode(&bytes);
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json, application/yaml, {} (got {content_type})",
            protobuf::MEDIA_TYPE
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
    let value = format.encode(object, IncludeObject::parse(query.get("includeObject")));
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
