//! API defaults applied to every object the store accepts (upstream `pkg/apis/*/v1/defaults.go`).

use crate::object::Object;

/// Fills in the fields the API server defaults.
pub fn apply(_object: &mut Object) {}
