//! Validation as the API server does it on every write.

use crate::object::Object;

/// The problems with `object` as `(field path, message)` pairs; empty when valid. `old` is the
/// stored version for updates (immutable fields).
pub fn validate(_object: &Object, _old: Option<&Object>) -> Vec<(String, String)> {
    Vec::new()
}
