//! The deployment controller: watches Deployments, their ReplicaSets and pods, and applies the
//! [`sync::plan`] for each Deployment that may need work.
//!
//! Before planning it claims ReplicaSets (adopting orphans that match the selector, releasing
//! owned ones that no longer do); after, it applies the plan's writes in order through the store
//! and stops at the first failure. A taken ReplicaSet name with a different template is a hash
//! collision: `status.collisionCount` goes up and the next sync picks a new name, as upstream.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use crate::controller::Reconciler;
use crate::controller::claim::{self, Claim};
use crate::error::{Error, Result};
use crate::object::{Kind, Object, ObjectKey};
use crate::podutil::{controller_ref, owner_of};
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store, WatchEvent};

pub mod revision;
pub mod status;
pub mod sync;

#[cfg(test)]
mod simulation;

use self::sync::{Action, Input};

/// The component name on Events, as upstream.
const COMPONENT: &str = "deployment-controller";

/// Reconciles Deployments, keyed by (namespace, name).
#[derive(Debug)]
pub struct DeploymentController {
    store: Arc<Store>,
}

impl DeploymentController {
    pub fn new(store: Arc<Store>) -> DeploymentController {
        DeploymentController { store }
    }

    /// Deployments in `namespace` whose selector matches the labels of `object` (an orphan).
    fn matching(&self, namespace: &str, object: &Object) -> Vec<(String, String)> {
        self.store
            .list_as::<Deployment>(Some(namespace), &Selector::default())
            .into_iter()
            .filter(|d| {
                d.spec
                    .as_ref()
                    .and_then(|s| Selector::from_label_selector(&s.selector).ok())
                    .is_some_and(|sel| !sel.is_empty() && sel.matches(object.labels()))
            })
            .map(|d| key_of(&d.metadata))
            .collect()
    }

    /// The Deployment controlling a ReplicaSet, by its controller reference.
    fn owner_deployment(&self, rs: &Object) -> Option<(String, String)> {
        let owner = owner_of(rs.meta())?;
        (owner.kind == "Deployment").then(|| (rs.namespace().to_owned(), owner.name.clone()))
    }

    /// Claims the ReplicaSets of `d`: adopts matching orphans, releases non-matching owned ones.
    fn claim_replica_sets(&self, d: &Deployment, selector: &Selector) -> Vec<ReplicaSet> {
        let namespace = d.metadata.namespace.as_deref().unwrap_or("default");
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let mut owned = Vec::new();
        for rs in self
            .store
            .list_as::<ReplicaSet>(Some(namespace), &Selector::default())
        {
            let name = rs.metadata.name.clone().unwrap_or_default();
            match claim::claim(uid, namespace, false, selector, &rs.metadata) {
                Claim::Owned => owned.push(rs),
                Claim::Adopt => {
                    let reference = controller_ref(d);
                    let adopted = self.store.modify::<ReplicaSet, _>(namespace, &name, |rs| {
                        claim::adopt(&mut rs.metadata, &reference)
                    });
                    if let Ok((rs, true)) = adopted {
                        owned.push(rs);
                    }
                }
                Claim::Release => {
                    let _ = self.store.modify::<ReplicaSet, _>(namespace, &name, |rs| {
                        claim::release(&mut rs.metadata, uid)
                    });
                }
                Claim::Ignore => {}
            }
        }
        owned
    }

    fn apply(&self, d: &Deployment, action: Action) -> Result<()> {
        let namespace = d.metadata.namespace.as_deref().unwrap_or("default");
        let involved = Object::Deployment(d.clone());
        match action {
            Action::CreateReplicaSet(rs) => self.create_replica_set(d, rs),
            Action::UpdateReplicaSet(planned) => {
                let name = planned.metadata.name.clone().unwrap_or_default();
                let spec = planned.spec.unwrap_or_default();
                let annotations = planned.metadata.annotations.unwrap_or_default();
                self.store.modify::<ReplicaSet, _>(namespace, &name, |rs| {
                    let current = rs.spec.get_or_insert_with(Default::default);
                    current.replicas = spec.replicas;
                    current.min_ready_seconds = spec.min_ready_seconds;
                    rs.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .extend(annotations);
                })?;
                Ok(())
            }
            Action::DeleteReplicaSet { name, uid } => {
                let key = ObjectKey::new(Kind::ReplicaSet, namespace, &name);
                if self.store.get(&key).is_some_and(|rs| rs.uid() == uid) {
                    match self.store.delete(&key, DeleteOptions::default()) {
                        Ok(_) | Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Action::UpdateDeployment { revision, status } => {
                let name = d.metadata.name.as_deref().unwrap_or_default();
                let uid = d.metadata.uid.clone();
                self.store
                    .modify::<Deployment, _>(namespace, name, |current| {
                        if current.metadata.uid != uid {
                            return;
                        }
                        if let Some(revision) = revision {
                            current
                                .metadata
                                .annotations
                                .get_or_insert_with(Default::default)
                                .insert(revision::REVISION.to_owned(), revision);
                        }
                        current.status = Some(status);
                    })?;
                Ok(())
            }
            Action::Event {
                type_,
                reason,
                message,
            } => {
                self.store
                    .record_event(&involved, type_, reason, message, COMPONENT);
                Ok(())
            }
        }
    }

    /// Creates the new ReplicaSet; on a name taken by another template, bumps collisionCount.
    fn create_replica_set(&self, d: &Deployment, rs: ReplicaSet) -> Result<()> {
        let namespace = d.metadata.namespace.as_deref().unwrap_or("default");
        let d_name = d.metadata.name.as_deref().unwrap_or_default();
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        match self.store.create_as(rs) {
            Ok(_) => Ok(()),
            Err(Error::AlreadyExists(key)) => {
                let existing = self.store.get_as::<ReplicaSet>(namespace, &rs_name);
                let ours = existing.as_ref().is_some_and(|rs| {
                    owner_of(&rs.metadata).is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref())
                        && rs
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| {
                                d.spec
                                    .as_ref()
                                    .is_some_and(|s| revision::equal_ignore_hash(t, &s.template))
                            })
                });
                if !ours {
                    self.store.modify::<Deployment, _>(namespace, d_name, |d| {
                        let status = d.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    })?;
                }
                Err(Error::AlreadyExists(key))
            }
            Err(err) => {
                let msg = format!("Failed to create new replica set \"{rs_name}\": {err}");
                if status::progress_deadline(d).is_some() {
                    let now = Timestamp::now();
                    let c = status::condition(
                        status::PROGRESSING,
                        "False",
                        status::RS_CREATE_ERROR,
                        msg.clone(),
                        now,
                    );
                    let _ = self.store.modify::<Deployment, _>(namespace, d_name, |d| {
                        status::set_condition(d.status.get_or_insert_with(Default::default), c);
                    });
                }
                let involved = Object::Deployment(d.clone());
                self.store.record_event(
                    &involved,
                    "Warning",
                    status::RS_CREATE_ERROR,
                    msg,
                    COMPONENT,
                );
                Err(err)
            }
        }
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Reconciler for DeploymentController {
    type Key = (String, String);
    const NAME: &'static str = "deployment";

    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key> {
        let object = &event.object;
        match object.kind() {
            Kind::Deployment => vec![key_of(object.meta())],
            Kind::ReplicaSet => match self.owner_deployment(object) {
                Some(key) => vec![key],
                None => self.matching(object.namespace(), object),
            },
            Kind::Pod => {
                // A pod matters through its ReplicaSet (Recreate waits for old pods to go).
                let Some(owner) = owner_of(object.meta()).filter(|o| o.kind == "ReplicaSet") else {
                    return Vec::new();
                };
                let key = ObjectKey::new(Kind::ReplicaSet, object.namespace(), &owner.name);
                self.store
                    .get(&key)
                    .and_then(|rs| self.owner_deployment(&rs))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn all_keys(&mut self) -> Vec<Self::Key> {
        self.store
            .list(Kind::Deployment, None)
            .iter()
            .map(|d| key_of(d.meta()))
            .collect()
    }

    fn reconcile(&mut self, (namespace, name): &Self::Key) -> Result<Option<Duration>> {
        let Some(d) = self.store.get_as::<Deployment>(namespace, name) else {
            return Ok(None);
        };
        let Some(spec) = d.spec.as_ref() else {
            return Ok(None);
        };
        let selector = match Selector::from_label_selector(&spec.selector) {
            Ok(selector) => selector,
            Err(err) => {
                tracing::warn!(deployment = %name, %err, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let replica_sets = if selector.is_empty() {
            Vec::new()
        } else {
            self.claim_replica_sets(&d, &selector)
        };
        let pods: Vec<Pod> = if selector.is_empty() {
            Vec::new()
        } else {
            self.store.list_as::<Pod>(Some(namespace), &selector)
        };
        let plan = sync::plan(Input {
            deployment: &d,
            replica_sets,
            pods: &pods,
            now: Timestamp::now(),
        });
        for action in plan.actions {
            self.apply(&d, action)?;
        }
        if let Some(error) = plan.error {
            return Err(Error::BadRequest(error));
        }
        Ok(plan.requeue_after)
    }
}
