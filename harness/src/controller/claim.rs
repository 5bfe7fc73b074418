//! Ownership by controller reference: which objects a controller may consider its own
//! (upstream `BaseControllerRefManager.ClaimObject`).
//!
//! An object owned by the controller and still matching its selector stays owned; one owned but
//! no longer matching is released (its ownerReference removed); an orphan that matches is
//! adopted (a controller ownerReference added) unless it is being deleted; anything owned by
//! another controller is left alone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::podutil::owner_of;
use crate::selector::Selector;

/// What a controller should do about one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and matching.
    Owned,
    /// An orphan that matches: add our controller reference.
    Adopt,
    /// Ours but no longer matching: remove our reference.
    Release,
    /// Someone else's, or not ours and not matching.
    Ignore,
}

/// Decides the claim of `controller` (uid, namespace) with `selector` over `candidate`.
/// `controller_deleting` stops adoption and release while the controller itself goes away.
pub fn claim(
    controller_uid: &str,
    controller_namespace: &str,
    controller_deleting: bool,
    selector: &Selector,
    candidate: &ObjectMeta,
) -> Claim {
    let labels = candidate.labels.clone().unwrap_or_default();
    let matches = selector.matches(&labels);
    if let Some(owner) = owner_of(candidate) {
        return if owner.uid != controller_uid {
            Claim::Ignore
        } else if matches {
            Claim::Owned
        } else if controller_deleting {
            Claim::Ignore
        } else {
            Claim::Release
        };
    }
    let same_namespace =
        candidate.namespace.as_deref().unwrap_or("default") == controller_namespace;
    if controller_deleting || !matches || candidate.deletion_timestamp.is_some() || !same_namespace
    {
        Claim::Ignore
    } else {
        Claim::Adopt
    }
}

/// Adds `reference` as the controller of `meta` if it still has none. Returns whether it did.
pub fn adopt(meta: &mut ObjectMeta, reference: &OwnerReference) -> bool {
    if owner_of(meta).is_some() {
        return false;
    }
    let refs = meta.owner_references.get_or_insert_with(Vec::new);
    refs.retain(|r| r.uid != reference.uid);
    refs.push(reference.clone());
    true
}

/// Removes every reference to `owner_uid` from `meta`. Returns whether there was one.
pub fn release(meta: &mut ObjectMeta, owner_uid: &str) -> bool {
    let Some(refs) = meta.owner_references.as_mut() else {
        return false;
    };
    let before = refs.len();
    refs.retain(|r| r.uid != owner_uid);
    let changed = refs.len() != before;
    if refs.is_empty() {
        meta.owner_references = None;
    }
    changed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn meta(app: &str, owner: Option<(&str, bool)>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
            owner_references: owner.map(|(uid, controller)| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(controller),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_table() {
        let selector = Selector::parse("app=web").unwrap();
        let mut deleting = meta("web", None);
        deleting.deletion_timestamp = Some(Time(Timestamp::now()));
        let mut elsewhere = meta("web", None);
        elsewhere.namespace = Some("shop".into());
        let cases = [
            (meta("web", Some(("me", true))), false, Claim::Owned),
            (meta("web", Some(("me", true))), true, Claim::Owned),
            (meta("x", Some(("me", true))), false, Claim::Release),
            (meta("x", Some(("me", true))), true, Claim::Ignore),
            (meta("web", Some(("other", true))), false, Claim::Ignore),
            (meta("web", None), false, Claim::Adopt),
            (meta("web", Some(("gc-only", false))), false, Claim::Adopt),
            (meta("web", None), true, Claim::Ignore),
            (meta("x", None), false, Claim::Ignore),
            (deleting, false, Claim::Ignore),
            (elsewhere, false, Claim::Ignore),
        ];
        for (i, (candidate, controller_deleting, want)) in cases.iter().enumerate() {
            let got = claim("me", "default", *controller_deleting, &selector, candidate);
            assert_eq!(got, *want, "case {i}");
        }
    }

    #[test]
    fn adopt_and_release() {
        let reference = OwnerReference {
            uid: "me".into(),
            controller: Some(true),
            ..Default::default()
        };
        let mut m = meta("web", None);
        assert!(adopt(&mut m, &reference));
        assert!(!adopt(&mut m, &reference), "already has a controller");
        assert!(release(&mut m, "me"));
        assert_eq!(m.owner_references, None);
        assert!(!release(&mut m, "me"));
    }
}
