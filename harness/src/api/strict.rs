//! Decoding a request body into a typed object, with upstream's field validation: with
//! `fieldValidation=Strict` (kubectl's default) unknown fields are a 400
//! (`strict decoding error: unknown field "spec.x"`); with `Warn` (the default without the
//! parameter) they become `Warning` headers; with `Ignore` they are dropped silently.
//!
//! Unknown fields are found by a round trip: decode into the k8s-openapi type, encode again, and
//! report every non-null input field that did not survive.

use serde_json::Value;

use super::status::{ApiError, qualified_kind};
use crate::object::{Kind, Object};

/// What to do with unknown fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    Strict,
    Warn,
    Ignore,
}

impl Validation {
    pub fn parse(value: Option<&str>) -> Result<Validation, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(Validation::Warn),
            Some("Strict") => Ok(Validation::Strict),
            Some("Ignore") => Ok(Validation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

/// Decodes `value` as an object of `kind`. Returns the object and the warnings to send.
pub fn decode(
    kind: Kind,
    value: Value,
    validation: Validation,
) -> Result<(Object, Vec<String>), ApiError> {
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {}: {detail}",
            kind.name(),
            kind.name()
        ))
    };
    if !value.is_object() {
        return Err(cannot("the body is not a JSON object".to_owned()));
    }
    let object = Object::from_json(kind, value.clone()).map_err(|e| cannot(e.to_string()))?;
    if validation == Validation::Ignore {
        return Ok((object, Vec::new()));
    }
    let mut unknown = Vec::new();
    compare(&value, &object.to_json(), "", &mut unknown);
    if unknown.is_empty() {
        return Ok((object, Vec::new()));
    }
    let described: Vec<String> = unknown
        .iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    match validation {
        Validation::Strict => Err(cannot(format!(
            "strict decoding error: {}",
            described.join(", ")
        ))),
        _ => Ok((object, described)),
    }
}

/// Adds to `unknown` the paths of non-null fields of `input` missing from `output`.
fn compare(input: &Value, output: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(fields), Value::Object(kept)) => {
            for (key, value) in fields {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(out) => compare(value, out, &child, unknown),
                    None => unknown.push(child),
                }
            }
        }
        (Value::Array(items), Value::Array(kept)) => {
            for (i, (item, out)) in items.iter().zip(kept).enumerate() {
                compare(item, out, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// The kind named by a body's `apiVersion`/`kind`, checked against the URL's kind.
pub fn check_type_meta(expected: Kind, value: &Value) -> Result<(), ApiError> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    match (api_version, kind) {
        (None, None) => Ok(()),
        (Some(v), Some(k)) if v == expected.api_version() && k == expected.name() => Ok(()),
        (v, k) => Err(ApiError::bad_request(format!(
            "the API version in the data ({}) and kind ({}) do not match the expected {} ({})",
            v.unwrap_or_default(),
            k.unwrap_or_default(),
            qualified_kind(expected),
            expected.api_version()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    #[test]
    fn accepts_known_fields() {
        let (object, warnings) =
            decode(Kind::Deployment, deployment(), Validation::Strict).unwrap();
        assert_eq!(object.name(), "web");
        assert!(warnings.is_empty());
    }

    #[test]
    fn reports_unknown_fields_by_path() {
        let mut value = deployment();
        value["spec"]["x"] = json!(1);
        value["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = json!("always");
        let err = decode(Kind::Deployment, value.clone(), Validation::Strict).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: \
             unknown field \"spec.template.spec.containers[0].imagePolicy\", unknown field \"spec.x\""
        );
        let (_, warnings) = decode(Kind::Deployment, value.clone(), Validation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        let (_, warnings) = decode(Kind::Deployment, value, Validation::Ignore).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let mut value = deployment();
        value["spec"]["replicas"] = json!("three");
        let err = decode(Kind::Deployment, value, Validation::Strict).unwrap_err();
        assert_eq!(err.code, hyper::StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("cannot be handled as a Deployment"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_meta_must_match() {
        assert!(check_type_meta(Kind::Deployment, &deployment()).is_ok());
        let err = check_type_meta(Kind::Pod, &deployment()).unwrap_err();
        assert!(err.message.contains("do not match"), "{}", err.message);
    }
}
