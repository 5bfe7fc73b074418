//! Field paths and field errors worded as the API server words them
//! (`k8s.io/apimachinery/pkg/util/validation/field`), so that kubectl prints the same
//! `spec.replicas: Invalid value: -1: must be greater than or equal to 0` lines.

use std::collections::BTreeMap;
use std::fmt;

/// A path to a field: `spec.template.spec.containers[0].name`, `data[my.key]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The path of a top-level field.
    pub fn new(name: &str) -> Path {
        Path(name.to_owned())
    }

    /// A named child field.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// An element of a list.
    pub fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    /// An entry of a map.
    pub fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bad value as upstream prints it: strings quoted, numbers bare, and anything else in Go's
/// `%#v` form (already rendered by the caller).
#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    Int(i64),
    Go(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Int(n.into())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Go(s) => f.write_str(s),
        }
    }
}

/// Go's `%#v` of a `map[string]string`: `map[string]string{"app":"web", "tier":"front"}`.
pub fn go_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".to_owned(),
        Some(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// The accumulated `(field, message)` causes of one validation.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<(String, String)>);

impl Errors {
    fn push(&mut self, path: &Path, message: String) {
        self.0.push((path.to_string(), message));
    }

    /// `Required value` (with an optional detail).
    pub fn required(&mut self, path: &Path, detail: &str) {
        self.push(path, with_detail("Required value".into(), detail));
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(&mut self, path: &Path, value: impl Into<Value>, detail: &str) {
        self.push(
            path,
            with_detail(format!("Invalid value: {}", value.into()), detail),
        );
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(&mut self, path: &Path, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            path,
            format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        );
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(&mut self, path: &Path, value: impl Into<Value>) {
        self.push(path, format!("Duplicate value: {}", value.into()));
    }

    /// `Not found: <value>`.
    pub fn not_found(&mut self, path: &Path, value: impl Into<Value>) {
        self.push(path, format!("Not found: {}", value.into()));
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(&mut self, path: &Path, detail: &str) {
        self.push(path, with_detail("Forbidden".into(), detail));
    }

    /// `Too long: may not be more than <n> bytes`.
    pub fn too_long(&mut self, path: &Path, max: usize) {
        self.push(path, format!("Too long: may not be more than {max} bytes"));
    }

    /// `Too many: <n>: must have at most <max> items`.
    pub fn too_many(&mut self, path: &Path, n: usize, max: usize) {
        self.push(
            path,
            format!("Too many: {n}: must have at most {max} items"),
        );
    }

    /// One `Invalid value` per message of a syntax check (`names::*`).
    pub fn invalid_each(&mut self, path: &Path, value: &str, messages: Vec<String>) {
        for message in messages {
            self.invalid(path, value, &message);
        }
    }

    /// A required string: `Required value` when empty, else the syntax check's messages.
    pub fn required_with(&mut self, path: &Path, value: &str, check: fn(&str) -> Vec<String>) {
        if value.is_empty() {
            self.required(path, "");
        } else {
            self.invalid_each(path, value, check(value));
        }
    }

    /// A value that may not be negative.
    pub fn non_negative(&mut self, path: &Path, value: Option<impl Into<i64>>) {
        if let Some(value) = value.map(Into::into)
            && value < 0
        {
            self.invalid(path, value, "must be greater than or equal to 0");
        }
    }

    /// One of a closed set of values; `Required value` when empty.
    pub fn one_of(&mut self, path: &Path, value: Option<&str>, supported: &[&str]) {
        match value.unwrap_or_default() {
            "" => self.required(path, ""),
            v if !supported.contains(&v) => self.not_supported(path, v, supported),
            _ => {}
        }
    }
}

fn with_detail(mut head: String, detail: &str) -> String {
    if !detail.is_empty() {
        head.push_str(": ");
        head.push_str(detail);
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_the_api_server() {
        let spec = Path::new("spec");
        let mut errors = Errors::default();
        errors.invalid(
            &spec.child("replicas"),
            -1,
            "must be greater than or equal to 0",
        );
        errors.required(&spec.child("containers").index(0).child("image"), "");
        errors.not_supported(&spec.child("restartPolicy"), "Never", &["Always"]);
        errors.duplicate(&Path::new("data").key("a.b"), "x");
        errors.forbidden(&spec.child("x"), "may not be set");
        let labels: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        errors.invalid(
            &spec.child("template"),
            Value::Go(go_map(Some(&labels))),
            "`selector` does not match template `labels`",
        );
        assert_eq!(
            errors.0,
            vec![
                ("spec.replicas".into(), "Invalid value: -1: must be greater than or equal to 0".into()),
                ("spec.containers[0].image".into(), "Required value".into()),
                ("spec.restartPolicy".into(), "Unsupported value: \"Never\": supported values: \"Always\"".into()),
                ("data[a.b]".into(), "Duplicate value: \"x\"".into()),
                ("spec.x".into(), "Forbidden: may not be set".into()),
                (
                    "spec.template".into(),
                    "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`".into()
                ),
            ]
        );
    }
}
