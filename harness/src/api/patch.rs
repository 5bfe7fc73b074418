//! The three patch formats a PATCH can carry, applied to an object's JSON: JSON patch
//! (RFC 6902, `application/json-patch+json`), JSON merge patch (RFC 7386,
//! `application/merge-patch+json`, what `kubectl label`/`scale` send) and strategic merge patch
//! (`application/strategic-merge-patch+json`, what `kubectl apply`/`edit`/`set image`/`rollout
//! restart` send; see [`strategic`]).
//!
//! Server-side apply (`application/apply-patch+yaml`) is not supported: it answers 415 with a
//! message saying so.

mod strategic;

use serde_json::Value;

use super::status::ApiError;
use crate::object::Kind;

/// Which patch format a request body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
}

impl PatchType {
    /// The format named by a `Content-Type` header.
    pub fn from_content_type(content_type: &str) -> Result<PatchType, ApiError> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Err(ApiError::unsupported_media_type(
                    "server-side apply is not supported by the harness API: use client-side apply \
                     (kubectl apply without --server-side)",
                ))
            }
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies `patch` (already parsed JSON) to `original`, an object of `kind`.
pub fn apply(
    kind: Kind,
    patch_type: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Json => json_patch(original, patch),
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut target = original.clone();
            merge_patch(&mut target, patch);
            Ok(target)
        }
        PatchType::Strategic => strategic::apply(kind, original, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` removes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn invalid_patch(message: String) -> ApiError {
    ApiError::new(hyper::StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
}

/// RFC 6902.
fn json_patch(original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Array(operations) = patch else {
        return Err(ApiError::bad_request(
            "a JSON patch must be a JSON array of operations",
        ));
    };
    let mut doc = original.clone();
    for (i, operation) in operations.iter().enumerate() {
        let field = |name: &str| {
            operation.get(name).and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request(format!("JSON patch operation {i} has no string \"{name}\""))
            })
        };
        let op = field("op")?;
        let path = pointer(field("path")?)?;
        let value = || {
            operation.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("JSON patch operation {i} ({op}) has no \"value\""))
            })
        };
        match op {
            "add" => add(&mut doc, &path, value()?)?,
            "remove" => {
                remove(&mut doc, &path)?;
            }
            "replace" => {
                let target = get_mut(&mut doc, &path)?;
                *target = value()?;
            }
            "move" => {
                let from = pointer(field("from")?)?;
                let moved = remove(&mut doc, &from)?;
                add(&mut doc, &path, moved)?;
            }
            "copy" => {
                let from = pointer(field("from")?)?;
                let copied = get_mut(&mut doc, &from)?.clone();
                add(&mut doc, &path, copied)?;
            }
            "test" => {
                let expected = value()?;
                if *get_mut(&mut doc, &path)? != expected {
                    return Err(invalid_patch(format!(
                        "JSON patch test operation {i} failed at /{}",
                        path.join("/")
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

/// The reference tokens of a JSON pointer.
fn pointer(text: &str) -> Result<Vec<String>, ApiError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text.strip_prefix('/').ok_or_else(|| {
        ApiError::bad_request(format!("JSON pointer {text:?} must start with '/'"))
    })?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &[String]) -> ApiError {
    invalid_patch(format!("JSON patch: no value at path /{}", path.join("/")))
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut current = doc;
    for token in path {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(current)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), ApiError> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| missing(path))?
            };
            items.insert(index, value);
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, ApiError> {
    let (last, parent) = path
        .split_last()
        .ok_or_else(|| ApiError::bad_request("JSON patch cannot remove the whole object"))?;
    match get_mut(doc, parent)? {
        Value::Object(map) => map.remove(last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(|| missing(path))?;
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a/b": "1"}}, "list": [1, 2, 3]});
        let patch = json!([
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "add", "path": "/list/0", "value": 0},
            {"op": "remove", "path": "/list/1"},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "copy", "from": "/metadata/labels", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/moved"},
            {"op": "test", "path": "/moved/a~1b", "value": "2"},
        ]);
        let out = json_patch(&doc, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a/b": "2"}}, "list": [0, 2, 3, 4], "moved": {"a/b": "2"}})
        );
        let failing = json!([{"op": "test", "path": "/list/0", "value": 9}]);
        assert_eq!(json_patch(&doc, &failing).unwrap_err().code.as_u16(), 422);
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert!(json_patch(&doc, &bad).is_err());
        assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        let err = PatchType::from_content_type("application/apply-patch+yaml").unwrap_err();
        assert_eq!(err.code.as_u16(), 415);
        assert!(err.message.contains("server-side apply"));
    }
}
