//! Object metadata, labels, annotations and label selectors (upstream `ValidateObjectMeta`,
//! `ValidateLabels`, `ValidateLabelSelector`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::field::{Errors, Path};
use super::syntax;

/// The most bytes all annotations of one object may hold together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Validates metadata: the name (with the kind's name rule), namespace, labels, annotations
/// and owner references.
pub(super) fn object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: fn(&str) -> Vec<String>,
    errs: &mut Errors,
) {
    let path = Path::new("metadata");
    let name = meta.name.as_deref().unwrap_or_default();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.required(&path.child("name"), "name or generateName is required");
        }
    } else {
        errs.invalid_each(&path.child("name"), name, name_rule(name));
    }
    if !generate_name.is_empty() {
        let masked = match generate_name.strip_suffix('-') {
            Some(stem) => format!("{stem}a"),
            None => generate_name.to_owned(),
        };
        errs.invalid_each(
            &path.child("generateName"),
            generate_name,
            name_rule(&masked),
        );
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        errs.required_with(&path.child("namespace"), namespace, syntax::dns1123_label);
    } else if !namespace.is_empty() {
        errs.forbidden(&path.child("namespace"), "not allowed on this type");
    }
    if let Some(labels) = &meta.labels {
        self::labels(labels, &path.child("labels"), errs);
    }
    if let Some(annotations) = &meta.annotations {
        let at = path.child("annotations");
        for key in annotations.keys() {
            errs.invalid_each(&at, key, syntax::qualified_name(&key.to_ascii_lowercase()));
        }
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > ANNOTATIONS_MAX_BYTES {
            errs.too_long(&at, ANNOTATIONS_MAX_BYTES);
        }
    }
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    for (i, owner) in owners.iter().enumerate() {
        let at = path.child("ownerReferences").index(i);
        for (value, field, what) in [
            (
                &owner.api_version,
                "apiVersion",
                "version must not be empty",
            ),
            (&owner.kind, "kind", "kind must not be empty"),
            (&owner.name, "name", "name must not be empty"),
            (&owner.uid, "uid", "uid must not be empty"),
        ] {
            if value.is_empty() {
                errs.invalid(&at.child(field), value, what);
            }
        }
    }
    let controllers: Vec<String> = owners
        .iter()
        .filter(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    if controllers.len() > 1 {
        errs.invalid(
            &path.child("ownerReferences"),
            crate::validate::field::Value::Go(format!("{} owner references", owners.len())),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        );
    }
}

/// Validates a label map: qualified-name keys and label values.
pub(crate) fn labels(labels: &BTreeMap<String, String>, path: &Path, errs: &mut Errors) {
    for (key, value) in labels {
        errs.invalid_each(path, key, syntax::qualified_name(key));
        errs.invalid_each(path, value, syntax::label_value(value));
    }
}

/// Validates a structured label selector.
pub(super) fn label_selector(selector: &LabelSelector, path: &Path, errs: &mut Errors) {
    if let Some(match_labels) = &selector.match_labels {
        labels(match_labels, &path.child("matchLabels"), errs);
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let at = path.child("matchExpressions").index(i);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.required(
                &at.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.forbidden(
                &at.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.invalid(
                &at.child("operator"),
                other,
                "not a valid selector operator",
            ),
        }
        errs.invalid_each(
            &at.child("key"),
            &expr.key,
            syntax::qualified_name(&expr.key),
        );
        for (j, value) in values.iter().enumerate() {
            errs.invalid_each(
                &at.child("values").index(j),
                value,
                syntax::label_value(value),
            );
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`, as upstream prints the value of a bad selector.
pub(super) fn go_selector(selector: &LabelSelector) -> String {
    let expressions =
        match &selector.match_expressions {
            None => "[]v1.LabelSelectorRequirement(nil)".to_owned(),
            Some(list) => {
                let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match &e.values {
                        None => "[]string(nil)".to_owned(),
                        Some(v) => format!(
                            "[]string{{{}}}",
                            v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        e.key, e.operator
                    )
                })
                .collect();
                format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
            }
        };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        super::field::go_map(selector.match_labels.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn run(meta: ObjectMeta, namespaced: bool) -> Vec<(String, String)> {
        let mut errs = Errors::default();
        object_meta(&meta, namespaced, syntax::dns1123_subdomain, &mut errs);
        errs.0
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    #[test]
    fn names_namespaces_labels_annotations() {
        assert!(run(meta("hostbot"), true).is_empty());
        let missing = run(
            ObjectMeta {
                namespace: Some("default".into()),
                ..Default::default()
            },
            true,
        );
        assert_eq!(
            missing,
            vec![(
                "metadata.name".into(),
                "Required value: name or generateName is required".into()
            )]
        );
        let generated = ObjectMeta {
            generate_name: Some("web-".into()),
            ..meta("")
        };
        assert!(run(generated, true).is_empty());
        let bad = run(meta("Hostbot"), true);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .1
                .starts_with("Invalid value: \"Hostbot\": a lowercase RFC 1123 subdomain")
        );
        assert_eq!(
            run(meta("x"), false)[0].1,
            "Forbidden: not allowed on this type"
        );
        let labelled = ObjectMeta {
            labels: Some(
                [
                    ("app".into(), "bad value".into()),
                    ("-x".into(), "ok".into()),
                ]
                .into(),
            ),
            annotations: Some([("example.com/Note".into(), "anything at all".into())].into()),
            ..meta("hostbot")
        };
        let errs = run(labelled, true);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().all(|(f, _)| f == "metadata.labels"));
        assert!(
            errs[0]
                .1
                .starts_with("Invalid value: \"-x\": name part must consist")
        );
        assert!(
            errs[1]
                .1
                .starts_with("Invalid value: \"bad value\": a valid label must be")
        );
        let huge = ObjectMeta {
            annotations: Some([("a".into(), "x".repeat(300_000))].into()),
            ..meta("hostbot")
        };
        assert_eq!(
            run(huge, true)[0].1,
            "Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn selectors() {
        let selector = LabelSelector {
            match_labels: Some([("app".into(), "web".into())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["a".into()]),
                },
                LabelSelectorRequirement {
                    key: "y".into(),
                    operator: "Near".into(),
                    values: None,
                },
            ]),
        };
        let mut errs = Errors::default();
        label_selector(&selector, &Path::new("spec").child("selector"), &mut errs);
        assert_eq!(
            errs.0,
            vec![
                (
                    "spec.selector.matchExpressions[0].values".into(),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'".into()
                ),
                (
                    "spec.selector.matchExpressions[1].values".into(),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        .into()
                ),
                (
                    "spec.selector.matchExpressions[2].operator".into(),
                    "Invalid value: \"Near\": not a valid selector operator".into()
                ),
            ]
        );
        assert_eq!(
            go_selector(&LabelSelector {
                match_labels: Some([("app".into(), "web".into())].into()),
                match_expressions: None
            }),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
