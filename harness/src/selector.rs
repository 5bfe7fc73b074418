//! Label selectors: the structured kind in Deployment, ReplicaSet and Service specs, and the
//! string kind (`app=web,tier in (a,b),!canary`) that `kubectl -l` sends. Both compile to one
//! [`Selector`], a conjunction of [`Requirement`]s.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One condition on one label key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A selector that could not be understood, with the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl Selector {
    /// A selector requiring exactly these labels (a Service's `spec.selector`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        }
    }

    /// Compiles a structured `LabelSelector` (matchLabels and matchExpressions).
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut out = selector
            .match_labels
            .as_ref()
            .map(Selector::from_map)
            .unwrap_or_default();
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let fail = |reason: &str| SelectorError {
                selector: format!("{} {} {:?}", expr.key, expr.operator, values),
                reason: reason.to_owned(),
            };
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(fail("values must be non-empty for In and NotIn"));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(fail("values must be empty for Exists and DoesNotExist"));
                }
                "In" => Requirement::In(expr.key.clone(), values),
                "NotIn" => Requirement::NotIn(expr.key.clone(), values),
                "Exists" => Requirement::Exists(expr.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(expr.key.clone()),
                other => {
                    return Err(fail(&format!(
                        "unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"
                    )));
                }
            };
            out.requirements.push(requirement);
        }
        Ok(out)
    }

    /// Parses kubectl's string form: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
    /// joined by commas.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let fail = |reason: String| SelectorError {
            selector: text.to_owned(),
            reason,
        };
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(valid_key(key.trim()).map_err(fail)?)
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotIn(valid_key(k.trim()).map_err(fail)?, vec![v.trim().into()])
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::In(valid_key(k.trim()).map_err(fail)?, vec![v.trim().into()])
            } else if let Some((k, set)) = split_set(term, " notin ") {
                Requirement::NotIn(valid_key(k).map_err(fail)?, parse_set(set).map_err(fail)?)
            } else if let Some((k, set)) = split_set(term, " in ") {
                Requirement::In(valid_key(k).map_err(fail)?, parse_set(set).map_err(fail)?)
            } else {
                Requirement::Exists(valid_key(term).map_err(fail)?)
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Whether these labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirement (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn split_set<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (k, rest) = term.split_once(op)?;
    Some((k.trim(), rest.trim()))
}

fn parse_set(set: &str) -> Result<Vec<String>, String> {
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, found {set:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!("{key:?} is not a valid label key"))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_selectors() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=hello-serve", false),
            ("app!=web", false),
            ("app!=db", true),
            ("tier in (front,back)", true),
            ("tier in (back)", false),
            ("tier notin (back)", true),
            ("tier notin (front, back)", false),
            ("app", true),
            ("!app", false),
            ("!canary", true),
            ("app=web,tier in (front),!canary", true),
            ("app=web,canary", false),
            ("missing notin (x)", true),
        ];
        for (text, want) in cases {
            let selector = Selector::parse(text).unwrap();
            assert_eq!(selector.matches(&web), *want, "selector {text:?}");
        }
    }

    #[test]
    fn bad_string_selectors_are_errors() {
        for text in ["a in x", "=b", "a b=c", "tier in (x"] {
            assert!(
                Selector::parse(text).is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn structured_selectors() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "NotIn".into(),
                values: Some(vec!["prod".into()]),
            }]),
        };
        let selector = Selector::from_label_selector(&selector).unwrap();
        assert!(selector.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn structured_selector_errors() {
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Within".into(),
                values: None,
            }]),
        };
        let err = Selector::from_label_selector(&bad).unwrap_err();
        assert!(err.reason.contains("unknown operator"), "{err}");
    }
}
