//! Deployment and ReplicaSet validation (upstream `pkg/apis/apps/validation`): selectors that
//! must match the template, replica counts, the rolling-update parameters, and the selector's
//! immutability.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{Errors, Path, Value, go_map};
use super::{meta, pod, syntax};
use crate::selector::Selector;

/// Validates a Deployment's spec.
pub(super) fn deployment(d: &Deployment, errs: &mut Errors) {
    let path = Path::new("spec");
    let Some(spec) = &d.spec else {
        errs.required(&path, "");
        return;
    };
    errs.non_negative(&path.child("replicas"), spec.replicas);
    selector_and_template(&spec.selector, Some(&spec.template), &path, errs);
    strategy(spec.strategy.as_ref(), &path.child("strategy"), errs);
    errs.non_negative(&path.child("minReadySeconds"), spec.min_ready_seconds);
    errs.non_negative(
        &path.child("revisionHistoryLimit"),
        spec.revision_history_limit,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        errs.non_negative(&path.child("progressDeadlineSeconds"), Some(deadline));
        if deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errs.invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
}

/// Validates a ReplicaSet's spec.
pub(super) fn replica_set(rs: &ReplicaSet, errs: &mut Errors) {
    let path = Path::new("spec");
    let Some(spec) = &rs.spec else {
        errs.required(&path, "");
        return;
    };
    errs.non_negative(&path.child("replicas"), spec.replicas);
    errs.non_negative(&path.child("minReadySeconds"), spec.min_ready_seconds);
    selector_and_template(&spec.selector, spec.template.as_ref(), &path, errs);
}

/// The selector must be set and non-empty, and must select the template's labels; the
/// template must be a valid pod template whose pods restart `Always`.
fn selector_and_template(
    selector: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    path: &Path,
    errs: &mut Errors,
) {
    let sp = path.child("selector");
    let unset = selector.match_labels.is_none() && selector.match_expressions.is_none();
    if unset {
        // k8s-openapi reads a missing selector as the empty one; upstream calls it required
        // and then finds that nothing matches the template.
        errs.required(&sp, "");
    } else {
        meta::label_selector(selector, &sp, errs);
        let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if empty {
            errs.invalid(
                &sp,
                Value::Go(meta::go_selector(selector)),
                "empty selector is invalid for deployment",
            );
        }
    }
    let compiled = if unset {
        None
    } else {
        match Selector::from_label_selector(selector) {
            Ok(s) => Some(s),
            Err(_) => {
                errs.invalid(
                    &sp,
                    Value::Go(meta::go_selector(selector)),
                    "invalid label selector",
                );
                return;
            }
        }
    };
    let tp = path.child("template");
    let Some(template) = template else {
        errs.required(&tp, "");
        return;
    };
    let template_meta = template.metadata.as_ref();
    let labels = template_meta.and_then(|m| m.labels.as_ref());
    let matches = match &compiled {
        None => false,
        Some(s) => s.is_empty() || s.matches(labels.unwrap_or(&Default::default())),
    };
    let mp = tp.child("metadata");
    if !matches {
        errs.invalid(
            &mp.child("labels"),
            Value::Go(go_map(labels)),
            "`selector` does not match template `labels`",
        );
    }
    if let Some(labels) = labels {
        meta::labels(labels, &mp.child("labels"), errs);
    }
    if let Some(annotations) = template_meta.and_then(|m| m.annotations.as_ref()) {
        for key in annotations.keys() {
            errs.invalid_each(
                &mp.child("annotations"),
                key,
                syntax::qualified_name(&key.to_ascii_lowercase()),
            );
        }
    }
    let spec_path = tp.child("spec");
    let Some(spec) = &template.spec else {
        errs.required(&spec_path.child("containers"), "");
        return;
    };
    pod::spec(spec, &spec_path, errs);
    if let Some(policy) = spec.restart_policy.as_deref()
        && policy != "Always"
    {
        errs.not_supported(&spec_path.child("restartPolicy"), policy, &["Always"]);
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        errs.invalid(
            &spec_path.child("activeDeadlineSeconds"),
            deadline,
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

fn strategy(strategy: Option<&DeploymentStrategy>, path: &Path, errs: &mut Errors) {
    let kind = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or_default();
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    match kind {
        "Recreate" => {
            if rolling.is_some() {
                errs.forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        "RollingUpdate" => {
            let Some(rolling) = rolling else {
                errs.required(
                    &path.child("rollingUpdate"),
                    "this should be defaulted and never be nil",
                );
                return;
            };
            let rp = path.child("rollingUpdate");
            let zero = IntOrString::Int(0);
            let unavailable = rolling.max_unavailable.as_ref().unwrap_or(&zero);
            let surge = rolling.max_surge.as_ref().unwrap_or(&zero);
            positive_int_or_percent(unavailable, &rp.child("maxUnavailable"), errs);
            positive_int_or_percent(surge, &rp.child("maxSurge"), errs);
            if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                errs.invalid(
                    &rp.child("maxUnavailable"),
                    Value::Go(go_int_or_string(unavailable)),
                    "may not be 0 when `maxSurge` is 0",
                );
            }
            if let Some(percent) = percent_value(unavailable)
                && percent > 100
            {
                errs.invalid(
                    &rp.child("maxUnavailable"),
                    Value::Go(go_int_or_string(unavailable)),
                    "must not be greater than 100%",
                );
            }
        }
        "" => errs.required(&path.child("type"), ""),
        other => errs.not_supported(&path.child("type"), other, &["Recreate", "RollingUpdate"]),
    }
}

fn positive_int_or_percent(value: &IntOrString, path: &Path, errs: &mut Errors) {
    match value {
        IntOrString::String(s) => {
            for msg in syntax::percent(s) {
                errs.invalid(path, Value::Go(go_int_or_string(value)), &msg);
            }
        }
        IntOrString::Int(n) => errs.non_negative(path, Some(*n)),
    }
}

/// The number of a valid percentage (`25%` -> 25).
fn percent_value(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::String(s) if syntax::percent(s).is_empty() => {
            s.trim_end_matches('%').parse().ok()
        }
        _ => None,
    }
}

/// Upstream's `getIntOrPercentValue`: the percentage's number, the int, or 0 for anything else.
fn int_or_percent_value(value: &IntOrString) -> i64 {
    match value {
        IntOrString::Int(n) => (*n).into(),
        IntOrString::String(s) => percent_value(value).or_else(|| s.parse().ok()).unwrap_or(0),
    }
}

/// Go's `%#v` of an `intstr.IntOrString`, which upstream prints for bad rolling parameters.
fn go_int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => format!("intstr.IntOrString{{Type:0, IntVal:{n}, StrVal:\"\"}}"),
        IntOrString::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
    }
}

/// `spec.selector` may not change (apps/v1).
pub(super) fn selector_update(new: &LabelSelector, old: &LabelSelector, errs: &mut Errors) {
    if normalized(new) != normalized(old) {
        errs.invalid(
            &Path::new("spec").child("selector"),
            Value::Go(meta::go_selector(new)),
            "field is immutable",
        );
    }
}

/// A selector with empty lists and maps read as unset, as upstream's semantic equality does.
fn normalized(s: &LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: s.match_labels.clone().filter(|m| !m.is_empty()),
        match_expressions: s.match_expressions.clone().filter(|e| !e.is_empty()),
    }
}
