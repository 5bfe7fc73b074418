//! Validation as the API server does it on every write (upstream `pkg/apis/*/validation`).
//!
//! [`validate`] returns field causes, `(field path, message)`, worded like upstream's
//! `field.Error` bodies (`Invalid value: -1: must be greater than or equal to 0`) so that the
//! API server's 422 answers make kubectl print what a real cluster prints. It runs after
//! [`crate::defaults::apply`], so defaulted fields are present.
//!
//! Submodules: [`field`] (paths and messages), `syntax` (name and value rules), `meta`
//! (metadata, labels, selectors), `pod` and `container` (pod specs), `apps` (Deployments and
//! ReplicaSets), `core_v1` (Services, ConfigMaps, Secrets, Endpoints), `discovery`
//! (EndpointSlices), `update` (immutable fields).

mod apps;
mod container;
mod core_v1;
mod discovery;
pub mod field;
mod meta;
mod pod;
mod syntax;
mod update;

pub use self::core_v1::NODE_PORT_RANGE;
pub(crate) use self::syntax::parse_quantity;

use crate::object::{Kind, Object};
use field::{Errors, Path};

/// The problems with `object` as `(field path, message)` pairs; empty when valid. `old` is the
/// stored version for updates (immutable fields).
pub fn validate(object: &Object, old: Option<&Object>) -> Vec<(String, String)> {
    let mut errs = Errors::default();
    let name_rule: fn(&str) -> Vec<String> = match object.kind() {
        Kind::Namespace => syntax::dns1123_label,
        Kind::Service => syntax::dns1035_label,
        _ => syntax::dns1123_subdomain,
    };
    meta::object_meta(
        object.meta(),
        object.kind().namespaced(),
        name_rule,
        &mut errs,
    );
    match object {
        Object::Pod(p) => match &p.spec {
            Some(spec) => pod::spec(spec, &Path::new("spec"), &mut errs),
            None => errs.required(&Path::new("spec").child("containers"), ""),
        },
        Object::Deployment(d) => apps::deployment(d, &mut errs),
        Object::ReplicaSet(rs) => apps::replica_set(rs, &mut errs),
        Object::Service(s) => core_v1::service(s, &mut errs),
        Object::ConfigMap(cm) => core_v1::config_map(cm, &mut errs),
        Object::Secret(s) => core_v1::secret(s, &mut errs),
        Object::Endpoints(ep) => core_v1::endpoints(ep, &mut errs),
        Object::EndpointSlice(slice) => discovery::endpoint_slice(slice, &mut errs),
        Object::Namespace(_) | Object::Event(_) => {}
    }
    if let Some(old) = old {
        update::check(object, old, &mut errs);
    }
    errs.0
}

/// Whether `labels` are valid label keys and values; the causes if not, at `path`.
pub fn labels(
    labels: &std::collections::BTreeMap<String, String>,
    path: &str,
) -> Vec<(String, String)> {
    let mut errs = Errors::default();
    meta::labels(labels, &Path::new(path), &mut errs);
    errs.0
}

#[cfg(test)]
mod tests;
