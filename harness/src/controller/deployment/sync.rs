//! The deployment controller's decisions as a pure function: [`plan`] takes a Deployment, the
//! ReplicaSets it owns and their pods, and returns the writes to make ([`Action`]s) in order.
//!
//! It follows upstream `pkg/controller/deployment` step by step: `syncDeployment` picks the path
//! (paused or a scaling event: `scale`; otherwise `recreate` or `rolling`), `getNewReplicaSet`
//! finds or creates the ReplicaSet of the current template and keeps revisions,
//! `cleanupDeployment` trims history, and `syncRolloutStatus` writes status and conditions.
//! Upstream writes as it goes; here the planner updates its own copies as if each write had
//! succeeded, so later steps see what earlier ones did, and the caller applies the actions in the
//! same order, stopping at the first failure.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::revision::{
    self, by_creation, by_revision, equal_ignore_hash, max_revision, new_replica_set, replicas,
    replicas_annotations_need_update, set_deployment_revision, set_new_rs_annotations,
    set_replicas_annotations, status_replicas,
};
use super::status::{self, PROGRESSING, get_condition, progress_deadline, set_condition};
use crate::controller::rollout::{self, Fenceposts, Strategy};

/// The default of `revisionHistoryLimit`.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// What the controller sees of one Deployment.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub deployment: &'a Deployment,
    /// The ReplicaSets it owns (after adoption and release).
    pub replica_sets: Vec<ReplicaSet>,
    /// The pods matching its selector (Recreate waits for the old ones to be gone).
    pub pods: &'a [Pod],
    pub now: Timestamp,
}

/// One write, applied in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet.
    CreateReplicaSet(ReplicaSet),
    /// Set this ReplicaSet's `spec.replicas`, `spec.minReadySeconds` and annotations.
    UpdateReplicaSet(ReplicaSet),
    /// Delete an old ReplicaSet (history beyond `revisionHistoryLimit`).
    DeleteReplicaSet { name: String, uid: String },
    /// Write the Deployment's status, and its revision annotation when set.
    UpdateDeployment {
        revision: Option<String>,
        status: DeploymentStatus,
    },
    /// Record an Event on the Deployment.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// The outcome of one sync.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Look again after this long (to notice a progress deadline).
    pub requeue_after: Option<Duration>,
    /// The sync stopped early on this (the actions before it still apply); retry with backoff.
    pub error: Option<String>,
}

/// Decides one sync of a Deployment.
pub fn plan(input: Input<'_>) -> Plan {
    let original = input.deployment;
    let Some(spec) = original.spec.as_ref() else {
        return Plan::default();
    };
    let fence = match rollout::fenceposts(spec) {
        Ok(fence) => fence,
        Err(e) => {
            return Plan {
                error: Some(format!("deployment {:?}: {e}", name(original))),
                ..Plan::default()
            };
        }
    };
    let mut rss = input.replica_sets;
    rss.sort_by(by_creation);
    let mut sync = Sync {
        d: original.clone(),
        rss,
        pods: input.pods,
        now: input.now,
        fence,
        replicas: rollout::desired_replicas(spec),
        strategy: rollout::strategy(spec),
        actions: Vec::new(),
    };
    let error = sync.run().err();
    let mut actions = sync.actions;
    let revision_of = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(revision::REVISION).cloned())
    };
    let new_revision = revision_of(&sync.d);
    let revision_changed = new_revision != revision_of(original);
    if sync.d.status != original.status || revision_changed {
        actions.push(Action::UpdateDeployment {
            revision: new_revision.filter(|_| revision_changed),
            status: sync.d.status.clone().unwrap_or_default(),
        });
    }
    let requeue_after = sync
        .d
        .status
        .as_ref()
        .and_then(|s| status::requeue_stuck(&sync.d, s, input.now));
    Plan {
        actions,
        requeue_after,
        error,
    }
}

fn name(d: &Deployment) -> &str {
    d.metadata.name.as_deref().unwrap_or_default()
}

fn rs_name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

/// The planner's working state: copies of the Deployment and its ReplicaSets that take every
/// planned write, so that later steps see earlier ones.
struct Sync<'a> {
    d: Deployment,
    /// Owned ReplicaSets, oldest first; a newly created one is pushed at the end.
    rss: Vec<ReplicaSet>,
    pods: &'a [Pod],
    now: Timestamp,
    fence: Fenceposts,
    replicas: i32,
    strategy: Strategy,
    actions: Vec<Action>,
}

type Step<T = ()> = Result<T, String>;

impl Sync<'_> {
    /// `syncDeployment` after the lookups.
    fn run(&mut self) -> Step {
        let spec = self.d.spec.clone().unwrap_or_default();
        let selector = &spec.selector;
        if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
        {
            self.event(
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let status = self.d.status.get_or_insert_with(Default::default);
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
            }
            return Ok(());
        }
        self.check_paused_conditions();
        if spec.paused == Some(true) {
            return self.sync();
        }
        if self.is_scaling_event() {
            return self.sync();
        }
        match self.strategy {
            Strategy::Recreate => self.rollout_recreate(),
            Strategy::RollingUpdate { .. } => self.rollout_rolling(),
        }
    }

    fn event(&mut self, type_: &'static str, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message,
        });
    }

    fn paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused) == Some(true)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.d
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn sum(&self, set: &[usize], f: fn(&ReplicaSet) -> i32) -> i32 {
        set.iter().map(|&i| f(&self.rss[i])).sum()
    }

    fn active(&self, set: impl IntoIterator<Item = usize>) -> Vec<usize> {
        set.into_iter()
            .filter(|&i| replicas(&self.rss[i]) > 0)
            .collect()
    }

    /// `checkPausedConditions`: Progressing Unknown/DeploymentPaused while paused, and
    /// DeploymentResumed after, unless the deadline was already exceeded.
    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let reason =
            get_condition(self.d.status.as_ref(), PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(status::TIMED_OUT) {
            return;
        }
        let paused_exists = reason.as_deref() == Some(status::PAUSED);
        let now = self.now;
        if self.paused() && !paused_exists {
            let c = status::condition(
                PROGRESSING,
                "Unknown",
                status::PAUSED,
                "Deployment is paused".into(),
                now,
            );
            set_condition(self.status_mut(), c);
        } else if !self.paused() && paused_exists {
            let c = status::condition(
                PROGRESSING,
                "Unknown",
                status::RESUMED,
                "Deployment is resumed".into(),
                now,
            );
            set_condition(self.status_mut(), c);
        }
    }

    /// The oldest ReplicaSet whose template is the Deployment's (`FindNewReplicaSet`).
    fn find_new(&self) -> Option<usize> {
        let template = &self.d.spec.as_ref()?.template;
        self.rss.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
    }

    /// `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when `create` and
    /// missing) and all the others.
    fn get_all(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let existing = self.find_new();
        let old: Vec<usize> = (0..self.rss.len())
            .filter(|&i| Some(i) != existing)
            .collect();
        let new = self.get_new(existing, &old, create);
        (new, old)
    }

    /// `getNewReplicaSet`.
    fn get_new(&mut self, existing: Option<usize>, old: &[usize], create: bool) -> Option<usize> {
        let new_revision = max_revision(old.iter().map(|&i| &self.rss[i])) + 1;
        let min_ready = self.min_ready_seconds();
        if let Some(i) = existing {
            let mut rs = self.rss[i].clone();
            let annotations_updated =
                set_new_rs_annotations(&self.d, &mut rs, new_revision, true, (0, 0));
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotations_updated || spec.min_ready_seconds.unwrap_or(0) != min_ready {
                spec.min_ready_seconds = (min_ready != 0).then_some(min_ready);
                self.rss[i] = rs.clone();
                self.actions.push(Action::UpdateReplicaSet(rs));
                return Some(i);
            }
            let rs_revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(revision::REVISION).cloned())
                .unwrap_or_default();
            set_deployment_revision(&mut self.d, &rs_revision);
            if progress_deadline(&self.d).is_some()
                && get_condition(self.d.status.as_ref(), PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set \"{}\"", rs_name(&rs));
                let c = status::condition(PROGRESSING, "True", status::FOUND_NEW_RS, msg, self.now);
                set_condition(self.status_mut(), c);
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let mut rs = new_replica_set(&self.d);
        let total = self.sum(old, replicas);
        let count = match self.strategy {
            Strategy::Recreate => self.replicas,
            Strategy::RollingUpdate { .. } => {
                rollout::new_rs_new_replicas(self.replicas, self.fence.max_surge, total, 0)
            }
        };
        rs.spec.get_or_insert_with(Default::default).replicas = Some(count);
        let desired_and_max = (self.replicas, self.replicas + self.fence.max_surge);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false, desired_and_max);
        self.actions.push(Action::CreateReplicaSet(rs.clone()));
        let name = rs_name(&rs);
        if count > 0 {
            let msg = format!("Scaled up replica set {name} from 0 to {count}");
            self.event("Normal", "ScalingReplicaSet", msg);
        }
        set_deployment_revision(&mut self.d, &new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set \"{name}\"");
            let c = status::condition(PROGRESSING, "True", status::NEW_RS_CREATED, msg, self.now);
            set_condition(self.status_mut(), c);
        }
        rs.metadata.creation_timestamp = Some(Time(self.now));
        self.rss.push(rs);
        Some(self.rss.len() - 1)
    }

    /// `scaleReplicaSetAndRecordEvent`.
    fn scale_and_record(&mut self, i: usize, new_scale: i32) -> bool {
        let current = replicas(&self.rss[i]);
        if current == new_scale {
            return false;
        }
        let op = if current < new_scale { "up" } else { "down" };
        self.scale(i, new_scale, op)
    }

    /// `scaleReplicaSet`: sets the size and the replica annotations; an Event when the size
    /// changed.
    fn scale(&mut self, i: usize, new_scale: i32, op: &str) -> bool {
        let (desired, max) = (self.replicas, self.replicas + self.fence.max_surge);
        let rs = &mut self.rss[i];
        let old = replicas(rs);
        let size_changes = old != new_scale;
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return false;
        }
        rs.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
        set_replicas_annotations(rs, desired, max);
        let rs = rs.clone();
        self.actions.push(Action::UpdateReplicaSet(rs.clone()));
        if size_changes {
            let msg = format!(
                "Scaled {op} replica set {} from {old} to {new_scale}",
                rs_name(&rs)
            );
            self.event("Normal", "ScalingReplicaSet", msg);
        }
        size_changes
    }

    /// `cleanupDeployment`: delete the oldest ReplicaSets beyond `revisionHistoryLimit` that
    /// have no pods and whose controller has seen their last change.
    fn cleanup(&mut self, old: &[usize]) {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(DEFAULT_HISTORY_LIMIT);
        if limit == i32::MAX {
            return;
        }
        let excess = old.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return;
        }
        let mut cleanable: Vec<&ReplicaSet> = old.iter().map(|&i| &self.rss[i]).collect();
        cleanable.sort_by(|a, b| by_revision(a, b));
        let mut deletions = Vec::new();
        for rs in cleanable.into_iter().take(excess as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if status_replicas(rs) != 0
                || replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            deletions.push(Action::DeleteReplicaSet {
                name: rs_name(rs),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
            });
        }
        self.actions.extend(deletions);
    }

    fn refs(&self, set: &[usize]) -> Vec<&ReplicaSet> {
        set.iter().map(|&i| &self.rss[i]).collect()
    }

    /// `syncRolloutStatus`.
    fn sync_rollout_status(&mut self, all: &[usize], new: Option<usize>) {
        let all_rss = self.refs(all);
        let new_rs = new.map(|i| &self.rss[i]);
        let mut status = status::calculate(
            &self.d,
            &all_rss,
            new_rs,
            self.fence.max_unavailable,
            self.now,
        );
        status::update_progress(&self.d, &mut status, &all_rss, new_rs, self.now);
        self.d.status = Some(status);
    }

    /// `syncDeploymentStatus`.
    fn sync_status(&mut self, all: &[usize], new: Option<usize>) {
        let all_rss = self.refs(all);
        let new_rs = new.map(|i| &self.rss[i]);
        let status = status::calculate(
            &self.d,
            &all_rss,
            new_rs,
            self.fence.max_unavailable,
            self.now,
        );
        self.d.status = Some(status);
    }
}

mod recreate;
mod rolling;
mod scale;
#[cfg(test)]
mod tests;
