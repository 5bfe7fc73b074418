//! Errors as Kubernetes `Status` objects ([`ApiError`]), with the HTTP codes, reasons and message
//! shapes of a real API server, so that kubectl prints its usual lines
//! (`Error from server (NotFound): deployments.apps "web" not found`,
//! `The Deployment "web" is invalid: spec.replicas: Invalid value: -1: ...`).

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::body::{self, Body};
use crate::error::Error;
use crate::object::{Kind, ObjectKey};

/// An error answered as a `Status`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `deployments.apps` or `pods`: how upstream names a resource in messages.
pub fn qualified_resource(kind: Kind) -> String {
    if kind.group().is_empty() {
        kind.plural().to_owned()
    } else {
        format!("{}.{}", kind.plural(), kind.group())
    }
}

/// `Deployment.apps` or `Pod`: how upstream names a kind in `Invalid` messages.
pub fn qualified_kind(kind: Kind) -> String {
    if kind.group().is_empty() {
        kind.name().to_owned()
    } else {
        format!("{}.{}", kind.name(), kind.group())
    }
}

fn key_details(key: &ObjectKey) -> Value {
    let mut details = json!({"name": key.name, "kind": key.kind.plural()});
    if !key.kind.group().is_empty() {
        details["group"] = json!(key.kind.group());
    }
    details
}

/// The reason upstream gives a field error, read from the start of its message.
fn cause_reason(message: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Forbidden", "FieldValueForbidden"),
        ("Too long", "FieldValueTooLong"),
        ("Too many", "FieldValueTooMany"),
        ("Not found", "FieldValueNotFound"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason)
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(key: &ObjectKey) -> ApiError {
        ApiError::from(Error::NotFound(key.clone()))
    }

    /// 404 for a URL the server does not serve.
    pub fn no_route(path: &str) -> ApiError {
        let mut err = ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
        err.details = Some(
            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]}),
        );
        err
    }

    pub fn method_not_allowed(method: &str, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource: {method} {what}"
            ),
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// The `Status` object.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    pub fn response(&self) -> Response<Body> {
        body::json(self.code, &self.to_json())
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        match err {
            Error::NotFound(key) => ApiError {
                code: StatusCode::NOT_FOUND,
                reason: "NotFound",
                message: format!(
                    "{} \"{}\" not found",
                    qualified_resource(key.kind),
                    key.name
                ),
                details: Some(key_details(&key)),
            },
            Error::AlreadyExists(key) => ApiError {
                code: StatusCode::CONFLICT,
                reason: "AlreadyExists",
                message: format!(
                    "{} \"{}\" already exists",
                    qualified_resource(key.kind),
                    key.name
                ),
                details: Some(key_details(&key)),
            },
            Error::Conflict(key) => ApiError {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message: format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified_resource(key.kind),
                    key.name
                ),
                details: Some(key_details(&key)),
            },
            Error::Invalid { key, causes } => {
                let lines: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                let summary = match lines.as_slice() {
                    [one] => one.clone(),
                    many => format!("[{}]", many.join(", ")),
                };
                let mut details = json!({
                    "name": key.name,
                    "kind": key.kind.name(),
                    "causes": causes.iter().map(|(field, message)| json!({
                        "reason": cause_reason(message),
                        "message": message,
                        "field": field,
                    })).collect::<Vec<_>>(),
                });
                if !key.kind.group().is_empty() {
                    details["group"] = json!(key.kind.group());
                }
                ApiError {
                    code: StatusCode::UNPROCESSABLE_ENTITY,
                    reason: "Invalid",
                    message: format!(
                        "{} \"{}\" is invalid: {summary}",
                        qualified_kind(key.kind),
                        key.name
                    ),
                    details: Some(details),
                }
            }
            Error::BadRequest(message) | Error::Manifest(message) => ApiError::bad_request(message),
            Error::Gone { requested, oldest } => ApiError::new(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {requested} ({oldest})"),
            ),
            Error::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the cluster is shutting down",
            ),
            Error::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", err.to_string())
            }
            Error::Io { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("Internal error occurred: {err}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream() {
        let key = ObjectKey::new(Kind::Deployment, "default", "web");
        let err = ApiError::from(Error::NotFound(key.clone()));
        assert_eq!(err.code, StatusCode::NOT_FOUND);
        assert_eq!(err.message, "deployments.apps \"web\" not found");
        let err = ApiError::from(Error::AlreadyExists(ObjectKey::new(
            Kind::Pod,
            "default",
            "p",
        )));
        assert_eq!(err.message, "pods \"p\" already exists");
        let err = ApiError::from(Error::invalid(
            key,
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ));
        assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let status = err.to_json();
        assert_eq!(status["details"]["kind"], "Deployment");
        assert_eq!(status["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );
    }
}
