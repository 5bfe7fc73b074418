//! Query strings: decoding ([`Query`]) and the selectors a list or watch filters by: labels
//! (`labelSelector`, compiled by [`crate::selector::Selector::parse`]) and fields
//! ([`FieldSelector`]: `metadata.name=web,status.phase!=Running`).
//!
//! Upstream allows only a few field labels per kind; the harness accepts any dotted path into
//! the object's JSON (a missing field reads as the empty string, as upstream's do), which covers
//! the ones kubectl uses (`metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`,
//! `involvedObject.*` for events).

use serde_json::Value;

use super::status::ApiError;
use crate::object::{Kind, Object};
use crate::selector::Selector;

/// A decoded query string.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(pair), String::new()),
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`?ports=80&ports=81`).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true` or `1` (and a bare `?watch`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | ""))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value {text:?} for query parameter {key}: not an integer"
                ))
            }),
        }
    }

    /// Whether `dryRun=All` was asked for.
    pub fn dry_run(&self) -> bool {
        self.pairs.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }
}

/// Percent-decoding with `+` as space (form encoding, which Go's url.Values uses).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    path: String,
    equal: bool,
    value: String,
}

/// A field selector: a conjunction of `path=value` / `path!=value` terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {text:?}: {term:?} is not of the form field=value or field!=value"
                )));
            };
            let path = path.trim();
            if path.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {text:?}: empty field name"
                )));
            }
            requirements.push(FieldRequirement {
                path: path.to_owned(),
                equal,
                value: value.trim().to_owned(),
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object (as JSON) satisfies every term.
    pub fn matches(&self, kind: Kind, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let path = match (kind, r.path.as_str()) {
                (Kind::Event, "source") => "source.component",
                (_, path) => path,
            };
            (field_text(object, path) == r.value) == r.equal
        })
    }
}

/// The value at a dotted path as a selector compares it; missing or null is "".
fn field_text(object: &Value, path: &str) -> String {
    let mut current = object;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The selectors of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub labels: Selector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_query(query: &Query) -> Result<Filter, ApiError> {
        let labels = match query.get("labelSelector") {
            Some(text) => {
                Selector::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            None => Selector::default(),
        };
        let fields = match query.get("fieldSelector") {
            Some(text) => FieldSelector::parse(text)?,
            None => FieldSelector::default(),
        };
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, object: &Object) -> bool {
        self.labels.matches(object.labels())
            && (self.fields.is_empty() || self.fields.matches(object.kind(), &object.to_json()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_query_strings() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=1&limit=500&bad=%zz&end=%4",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert!(q.flag("watch"));
        assert_eq!(q.int("limit").unwrap(), Some(500));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
        assert!(q.int("bad").is_err());
        assert!(!q.flag("missing"));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"nodeName": "harness"}, "status": {"phase": "Running"}});
        let cases = [
            ("metadata.name=web", true),
            ("metadata.name==web,metadata.namespace=default", true),
            ("metadata.name=db", false),
            ("status.phase!=Running", false),
            ("status.phase!=Pending", true),
            ("spec.nodeName=harness", true),
            ("status.podIP=", true),
            ("", true),
        ];
        for (text, want) in cases {
            let selector = FieldSelector::parse(text).unwrap();
            assert_eq!(selector.matches(Kind::Pod, &pod), want, "{text}");
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("=x").is_err());
    }
}
