//! Reading manifest files into typed objects: YAML streams split into documents the way
//! kubectl splits them (a line starting with `---`), JSON objects and streams, `List`
//! wrappers, then per object the kind, strict decoding and create-time validation.
//!
//! Problems are collected over every document of every file, so one run shows them all.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use super::Manifest;
use super::strict::{self, TypeError, UnknownField};
use crate::defaults;
use crate::object::Kind;

/// Where a problem is: file, document (1-based), item of a `List`, and the object when known.
#[derive(Clone, Debug)]
pub(super) struct Context<'a> {
    pub file: &'a Path,
    pub document: usize,
    pub item: Option<usize>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} \"{name}\")"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, Some(name)) => write!(f, " (\"{name}\")"),
            (None, None) => Ok(()),
        }
    }
}

/// Parses the text of one file. Returns the manifests, or every problem found, one a line.
pub(super) fn parse(text: &str, file: &Path) -> Result<Vec<Manifest>, Vec<String>> {
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let documents = if is_json {
        json_documents(text, file)?
    } else {
        yaml_documents(text, file)?
    };
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let ctx = Context {
            file,
            document: index + 1,
            item: None,
            kind: None,
            name: None,
        };
        match list_items(&document) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ctx = Context {
                        item: Some(i + 1),
                        ..ctx.clone()
                    };
                    collect(object(item, ctx), &mut manifests, &mut problems);
                }
            }
            None => collect(object(&document, ctx), &mut manifests, &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(manifests)
    } else {
        Err(problems)
    }
}

fn collect(
    result: Result<Manifest, String>,
    manifests: &mut Vec<Manifest>,
    problems: &mut Vec<String>,
) {
    match result {
        Ok(m) => manifests.push(m),
        Err(p) => problems.push(p),
    }
}

/// The items of a `List` (`v1 List`, or any `<Kind>List`), if the value is one.
fn list_items(value: &Value) -> Option<&Vec<Value>> {
    let kind = value.get("kind")?.as_str()?;
    if kind.ends_with("List") && Kind::ALL.iter().all(|k| k.name() != kind) {
        value.get("items")?.as_array()
    } else {
        None
    }
}

/// Splits a YAML stream at lines starting with `---` and parses each non-empty document.
fn yaml_documents(text: &str, file: &Path) -> Result<Vec<Value>, Vec<String>> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let rest = line.strip_prefix("---");
        if rest.is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t'])) {
            chunks.push((i + 1, String::new()));
        }
        let chunk = &mut chunks.last_mut().expect("one chunk at least").1;
        chunk.push_str(line);
        chunk.push('\n');
    }
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for (start, chunk) in chunks {
        let blank = chunk.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---" || t.starts_with("--- #")
        });
        if blank {
            continue;
        }
        let number = documents.len() + problems.len() + 1;
        match serde_saphyr::from_str_with_options::<Value>(&chunk, options.clone()) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(value),
            Err(err) => problems.push(yaml_problem(&err, start, file, number)),
        }
    }
    if problems.is_empty() {
        Ok(documents)
    } else {
        Err(problems)
    }
}

fn yaml_problem(err: &serde_saphyr::Error, start: usize, file: &Path, document: usize) -> String {
    let message = err.without_snippet().to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .trim()
        .to_owned();
    let at = match err.location() {
        Some(loc) if loc.line() > 0 => {
            format!(
                " at line {}, column {}",
                loc.line() as usize + start - 1,
                loc.column()
            )
        }
        _ => String::new(),
    };
    let advice = match message.strip_prefix("duplicate mapping key: ") {
        Some(rest) => {
            let key = rest
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(rest);
            format!("duplicate key \"{key}\": a key may appear only once in a mapping")
        }
        None => format!("{message}: check the indentation (spaces, not tabs) and quoting"),
    };
    format!(
        "{}: document {document}: invalid YAML{at}: {advice}",
        file.display()
    )
}

/// Parses a JSON file: one object, or several one after the other.
fn json_documents(text: &str, file: &Path) -> Result<Vec<Value>, Vec<String>> {
    let mut documents = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match value {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(value),
            Err(err) => {
                return Err(vec![format!(
                    "{}: document {}: invalid JSON at line {}, column {}: {}",
                    file.display(),
                    documents.len() + 1,
                    err.line(),
                    err.column(),
                    err.to_string()
                        .split(" at line ")
                        .next()
                        .unwrap_or_default()
                )]);
            }
        }
    }
    Ok(documents)
}

/// Reads one object: kind, strict fields, name, and create-time validation.
fn object(value: &Value, mut ctx: Context<'_>) -> Result<Manifest, String> {
    let Some(map) = value.as_object() else {
        return Err(format!(
            "{ctx}: expected an object with apiVersion, kind and metadata, found {}",
            describe(value)
        ));
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    ctx.kind = text("kind");
    ctx.name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (Some(api_version), Some(kind_name)) = (text("apiVersion"), text("kind")) else {
        let missing: Vec<&str> = ["apiVersion", "kind"]
            .into_iter()
            .filter(|k| text(k).is_none())
            .collect();
        return Err(format!(
            "{ctx}: {} not set: every object needs both, e.g. \"apiVersion: apps/v1\" and \"kind: Deployment\"",
            missing.join(" and ")
        ));
    };
    let Some(kind) = Kind::from_type_meta(&api_version, &kind_name) else {
        return Err(unsupported(&ctx, &api_version, &kind_name));
    };
    let mut object = match strict::decode_object(kind, value) {
        Ok((object, unknown)) if unknown.is_empty() => object,
        Ok((_, unknown)) => return Err(unknown_fields(&ctx, kind, &unknown)),
        Err(err) => return Err(type_problem(&ctx, &err)),
    };
    if object.name().is_empty() {
        return Err(format!(
            "{ctx}: metadata.name is required: apply needs a name to find the object again (generateName only works with create)"
        ));
    }
    if !kind.namespaced() {
        object.meta_mut().namespace = None;
    }
    let mut check = object.clone();
    if kind.namespaced() && check.namespace().is_empty() {
        check.meta_mut().namespace = Some("default".into());
    }
    defaults::apply(&mut check);
    let causes = crate::validate::validate(&check, None);
    if !causes.is_empty() {
        return Err(super::describe_causes(&ctx.to_string(), &causes));
    }
    Ok(Manifest {
        file: ctx.file.to_path_buf(),
        document: ctx.document,
        object,
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string (is the document indented as a whole, or missing a colon?)",
        Value::Array(_) => {
            "a list (a document holds one object; separate objects with a line \"---\")"
        }
        Value::Object(_) => "an object",
    }
}

fn unsupported(ctx: &Context<'_>, api_version: &str, kind: &str) -> String {
    if let Some(known) = Kind::ALL.iter().find(|k| k.name() == kind) {
        return format!(
            "{ctx}: {kind} is served as apiVersion \"{}\", not \"{api_version}\": change apiVersion to {}",
            known.api_version(),
            known.api_version()
        );
    }
    if let Some(known) = Kind::ALL
        .iter()
        .find(|k| k.name().eq_ignore_ascii_case(kind))
    {
        return format!(
            "{ctx}: unknown kind \"{kind}\": kinds are case-sensitive, did you mean \"{}\"?",
            known.name()
        );
    }
    format!(
        "{ctx}: unsupported kind \"{kind}\" (apiVersion \"{api_version}\"): the harness supports {}",
        Kind::supported_list()
    )
}

fn unknown_fields(ctx: &Context<'_>, kind: Kind, unknown: &[UnknownField]) -> String {
    let lines: Vec<String> = unknown
        .iter()
        .map(|u| {
            let (parent, field) = split_last(&u.path);
            let suggestion = closest(field, u.known)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            let explain = if parent.is_empty() {
                kind.singular().to_owned()
            } else {
                format!("{}.{}", kind.singular(), strip_indices(parent))
            };
            format!(
                "{ctx}: unknown field \"{}\": {suggestion}check the spelling against \"kubectl explain {explain}\"",
                u.path
            )
        })
        .collect();
    lines.join("\n")
}

/// `a.b[0].c` -> (`a.b[0]`, `c`); map keys in brackets stay with their parent.
fn split_last(path: &str) -> (&str, &str) {
    match path.rfind('.') {
        Some(i) if !path[i..].contains(']') => (&path[..i], &path[i + 1..]),
        _ => ("", path),
    }
}

fn strip_indices(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The known field nearest to `field` in edit distance, if near enough to be a typo.
fn closest(field: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = field.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn type_problem(ctx: &Context<'_>, err: &TypeError) -> String {
    let field = if err.path.is_empty() {
        String::new()
    } else {
        format!("field \"{}\": ", err.path)
    };
    let message = &err.message;
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
    {
        let expected = friendly(expected);
        let hint = if expected == "a string" && !got.starts_with("string") {
            let literal = got.split('`').nth(1).unwrap_or("the value");
            format!(": quote it (\"{literal}\") to make it a string")
        } else if expected == "an integer"
            && got
                .strip_prefix("string \"")
                .and_then(|g| g.strip_suffix('"'))
                .is_some_and(|g| g.parse::<i64>().is_ok())
        {
            ": write the number without quotes".to_owned()
        } else {
            String::new()
        };
        return format!("{ctx}: {field}expected {expected}, got {got}{hint}");
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let path = if err.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", err.path)
        };
        return format!("{ctx}: field \"{path}\" is required");
    }
    let hint = if err.path.starts_with("data[") || err.path.starts_with("binaryData[") {
        ": the value must be base64-encoded (put plain text under stringData instead)"
    } else if err.path.ends_with("Timestamp") || err.path.ends_with("Time") {
        ": expected a time such as \"2024-07-14T04:19:36Z\""
    } else {
        ""
    };
    format!("{ctx}: {field}{message}{hint}")
}

/// Serde's name for a type, in words.
fn friendly(expected: &str) -> String {
    match expected {
        "i32" | "i64" | "u32" | "u64" | "u16" | "i16" | "u8" | "i8" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping of keys to values".into(),
        "IntOrString" => "an integer or a string".into(),
        "Quantity" => "a quantity (a number or a string such as \"100m\" or \"64Mi\")".into(),
        "a boolean" | "a string" => expected.into(),
        other if other.chars().next().is_some_and(char::is_uppercase) => {
            format!("an object ({other})")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_and_paths() {
        assert_eq!(
            closest("replica", &["replicas", "selector", "template"]),
            Some("replicas")
        );
        assert_eq!(
            closest("imagePullPolcy", &["image", "imagePullPolicy"]),
            Some("imagePullPolicy")
        );
        assert_eq!(closest("frobnicate", &["replicas", "selector"]), None);
        assert_eq!(
            split_last("spec.template.spec.containers[0].imagePullPolcy"),
            ("spec.template.spec.containers[0]", "imagePullPolcy")
        );
        assert_eq!(split_last("spec"), ("", "spec"));
        assert_eq!(
            strip_indices("spec.template.spec.containers[0]"),
            "spec.template.spec.containers"
        );
    }
}
