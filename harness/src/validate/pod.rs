//! Pod spec validation (upstream `ValidatePodSpec`): volumes, containers, policies and
//! scheduling fields. Shared by Pods and by the templates of Deployments and ReplicaSets.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{KeyToPath, PodSpec, Toleration, Volume};

use super::container::{self, Role};
use super::field::{Errors, Path};
use super::meta;
use super::syntax;

const RESTART_POLICIES: &[&str] = &["Always", "Never", "OnFailure"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Validates a pod spec at `path` (`spec` or `spec.template.spec`).
pub(super) fn spec(spec: &PodSpec, path: &Path, errs: &mut Errors) {
    let volumes = volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &path.child("volumes"),
        errs,
    );
    let mut names = BTreeSet::new();
    container::containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &path.child("initContainers"),
        Role::Init,
        &mut names,
        &volumes,
        errs,
    );
    if spec.containers.is_empty() {
        errs.required(&path.child("containers"), "");
    }
    container::containers(
        &spec.containers,
        &path.child("containers"),
        Role::Regular,
        &mut names,
        &volumes,
        errs,
    );
    errs.one_of(
        &path.child("restartPolicy"),
        spec.restart_policy.as_deref(),
        RESTART_POLICIES,
    );
    errs.one_of(
        &path.child("dnsPolicy"),
        spec.dns_policy.as_deref(),
        DNS_POLICIES,
    );
    if let Some(selector) = &spec.node_selector {
        meta::labels(selector, &path.child("nodeSelector"), errs);
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        errs.invalid_each(
            &path.child("serviceAccountName"),
            sa,
            syntax::dns1123_subdomain(sa),
        );
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.invalid(
            &path.child("activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        );
    }
    errs.non_negative(
        &path.child("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    for (value, field) in [(&spec.hostname, "hostname"), (&spec.subdomain, "subdomain")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            errs.invalid_each(&path.child(field), v, syntax::dns1123_label(v));
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        toleration(t, &path.child("tolerations").index(i), errs);
    }
}

/// Validates the volumes and returns their names, for the mounts to refer to.
fn volumes(list: &[Volume], path: &Path, errs: &mut Errors) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in list.iter().enumerate() {
        let at = path.index(i);
        source(v, &at, errs);
        errs.required_with(&at.child("name"), &v.name, syntax::dns1123_label);
        if !names.insert(v.name.clone()) {
            errs.duplicate(&at.child("name"), &v.name);
        }
    }
    names
}

fn source(v: &Volume, path: &Path, errs: &mut Errors) {
    let json = serde_json::to_value(v).unwrap_or_default();
    let sources: Vec<&String> = json
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "name").collect())
        .unwrap_or_default();
    match sources.as_slice() {
        [] => errs.required(path, "must specify a volume type"),
        [_] => {}
        [_, rest @ ..] => {
            for field in rest {
                errs.forbidden(
                    &path.child(field),
                    "may not specify more than 1 volume type",
                );
            }
        }
    }
    if let Some(cm) = &v.config_map {
        let p = path.child("configMap");
        if cm.name.is_empty() {
            errs.required(&p.child("name"), "");
        }
        file_mode(cm.default_mode, &p.child("defaultMode"), errs);
        items(
            cm.items.as_deref().unwrap_or_default(),
            &p.child("items"),
            errs,
        );
    }
    if let Some(secret) = &v.secret {
        let p = path.child("secret");
        if secret.secret_name.as_deref().unwrap_or_default().is_empty() {
            errs.required(&p.child("secretName"), "");
        }
        file_mode(secret.default_mode, &p.child("defaultMode"), errs);
        items(
            secret.items.as_deref().unwrap_or_default(),
            &p.child("items"),
            errs,
        );
    }
    if let Some(host) = &v.host_path
        && host.path.is_empty()
    {
        errs.required(&path.child("hostPath").child("path"), "");
    }
    if let Some(projected) = &v.projected {
        file_mode(
            projected.default_mode,
            &path.child("projected").child("defaultMode"),
            errs,
        );
    }
    if let Some(downward) = &v.downward_api {
        file_mode(
            downward.default_mode,
            &path.child("downwardAPI").child("defaultMode"),
            errs,
        );
    }
}

fn file_mode(mode: Option<i32>, path: &Path, errs: &mut Errors) {
    if let Some(mode) = mode
        && !(0..=0o777).contains(&mode)
    {
        errs.invalid(path, mode, FILE_MODE_MSG);
    }
}

fn items(list: &[KeyToPath], path: &Path, errs: &mut Errors) {
    for (i, item) in list.iter().enumerate() {
        let at = path.index(i);
        if item.key.is_empty() {
            errs.required(&at.child("key"), "");
        }
        let p = at.child("path");
        if item.path.is_empty() {
            errs.required(&p, "");
        } else if item.path.starts_with('/') {
            errs.invalid(&p, &item.path, "must be a relative path");
        } else if item.path.split('/').any(|part| part == "..") {
            errs.invalid(&p, &item.path, "must not contain '..'");
        } else if item.path.starts_with("..") {
            errs.invalid(&p, &item.path, "must not start with '..'");
        }
        file_mode(item.mode, &at.child("mode"), errs);
    }
}

fn toleration(t: &Toleration, path: &Path, errs: &mut Errors) {
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() {
        errs.invalid_each(&path.child("key"), key, syntax::qualified_name(key));
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Equal" | "" => {
            let value = t.value.as_deref().unwrap_or_default();
            if key.is_empty() {
                errs.invalid(&path.child("operator"), "Equal", "operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
            }
            errs.invalid_each(&path.child("value"), value, syntax::label_value(value));
        }
        "Exists" => {
            if !t.value.as_deref().unwrap_or_default().is_empty() {
                errs.invalid(
                    &path.child("operator"),
                    t.value.as_deref().unwrap_or_default(),
                    "value must be empty when `operator` is 'Exists'",
                );
            }
        }
        other => errs.not_supported(&path.child("operator"), other, &["Equal", "Exists"]),
    }
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if !["NoExecute", "NoSchedule", "PreferNoSchedule"].contains(&effect) {
            errs.not_supported(
                &path.child("effect"),
                effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            );
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.invalid(
                &path.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
    }
}
