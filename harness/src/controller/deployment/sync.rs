//! The deployment controller's decisions as a pure function: [`plan`] takes a Deployment, the
//! ReplicaSets it owns and their pods, and returns the writes to make ([`Action`]s) in order.
//!
//! It follows upstream `pkg/controller/deployment` step by step: `syncDeployment` picks the path
//! (paused or a scaling event: [`Sync::sync`]; otherwise Recreate or RollingUpdate),
//! `getNewReplicaSet` finds or creates the ReplicaSet of the current template and keeps revisions,
//! `reconcileNewReplicaSet`/`reconcileOldReplicaSets` do the surge/unavailable arithmetic of
//! [`super::super::rollout`], `cleanupDeployment` trims history, and `syncRolloutStatus` writes
//! status and conditions. Upstream writes as it goes; here the planner updates its own copies
//! as if each write had succeeded, so later steps see what earlier ones did, and the caller
//! applies the actions in the same order, stopping at the first failure.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::revision::{
    self, available, by_creation, by_revision, desired_annotation, equal_ignore_hash,
    max_annotation, max_revision, new_replica_set, replicas, replicas_annotations_need_update,
    set_deployment_revision, set_new_rs_annotations, set_replicas_annotations, status_replicas,
};
use super::status::{self, PROGRESSING, get_condition, progress_deadline, set_condition};
use crate::controller::rollout::{self, Fenceposts, ProportionInput, Strategy};
use crate::podutil::owner_of;

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
                spec.min_ready_seconds = Some(min_ready);
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

    /// `rolloutRolling`.
    fn rollout_rolling(&mut self) -> Step {
        let (new, old) = self.get_all(true);
        let new = new.ok_or("the new replica set was not planned")?;
        let mut all = old.clone();
        all.push(new);
        if self.reconcile_new(&all, new) {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        let active_old = self.active(old.iter().copied());
        if self.reconcile_old(&all, active_old, new)? {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        let current = self.d.status.clone().unwrap_or_default();
        if status::complete(&self.d, &current) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(new));
        Ok(())
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self, all: &[usize], new: usize) -> bool {
        let current = replicas(&self.rss[new]);
        if current == self.replicas {
            return false;
        }
        if current > self.replicas {
            return self.scale_and_record(new, self.replicas);
        }
        let total = self.sum(all, replicas);
        let count =
            rollout::new_rs_new_replicas(self.replicas, self.fence.max_surge, total, current);
        self.scale_and_record(new, count)
    }

    /// `reconcileOldReplicaSets`: clean up unhealthy old pods, then scale old ReplicaSets down
    /// as far as availability allows.
    fn reconcile_old(&mut self, all: &[usize], old: Vec<usize>, new: usize) -> Step<bool> {
        if self.sum(&old, replicas) == 0 {
            return Ok(false);
        }
        let max_scaled_down = rollout::max_scaled_down(
            self.sum(all, replicas),
            self.replicas,
            self.fence.max_unavailable,
            replicas(&self.rss[new]),
            available(&self.rss[new]),
        );
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down)?;
        let mut all = old.clone();
        all.push(new);
        let scaled = self.scale_down_old_for_rolling(&all, &old);
        Ok(cleaned + scaled > 0)
    }

    /// `cleanupUnhealthyReplicas`: scale old ReplicaSets down by their unavailable pods, oldest
    /// first, up to `max`.
    fn cleanup_unhealthy(&mut self, old: &[usize], max: i32) -> Step<i32> {
        let mut total = 0;
        for &i in old {
            if total >= max {
                break;
            }
            let (spec, ready) = (replicas(&self.rss[i]), available(&self.rss[i]));
            if spec == 0 || spec == ready {
                continue;
            }
            let count = (max - total).min(spec - ready);
            let new_count = spec - count;
            if new_count > spec {
                return Err(format!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {} {spec} -> {new_count}",
                    rs_name(&self.rss[i])
                ));
            }
            self.scale_and_record(i, new_count);
            total += count;
        }
        Ok(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`.
    fn scale_down_old_for_rolling(&mut self, all: &[usize], old: &[usize]) -> i32 {
        let budget = rollout::available_scale_down(
            self.sum(all, available),
            self.replicas,
            self.fence.max_unavailable,
        );
        let mut total = 0;
        for &i in old {
            if total >= budget {
                break;
            }
            let spec = replicas(&self.rss[i]);
            if spec == 0 {
                continue;
            }
            let count = spec.min(budget - total);
            self.scale_and_record(i, spec - count);
            total += count;
        }
        total
    }

    /// `rolloutRecreate`.
    fn rollout_recreate(&mut self) -> Step {
        let (mut new, old) = self.get_all(false);
        let mut all = old.clone();
        all.extend(new);
        let mut scaled_down = false;
        for i in self.active(old.iter().copied()) {
            scaled_down |= self.scale_and_record(i, 0);
        }
        if scaled_down || self.old_pods_running(new, &old) {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if new.is_none() {
            let (created, old) = self.get_all(true);
            new = created;
            all = old;
            all.extend(new);
        }
        let new = new.ok_or("the new replica set was not planned")?;
        self.scale_and_record(new, self.replicas);
        let current = self.d.status.clone().unwrap_or_default();
        if status::complete(&self.d, &current) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(new));
        Ok(())
    }

    /// `oldPodsRunning`: an old ReplicaSet still reports pods, or a pod of one is not finished.
    fn old_pods_running(&self, new: Option<usize>, old: &[usize]) -> bool {
        if self.sum(old, status_replicas) > 0 {
            return true;
        }
        let new_uid = new.and_then(|i| self.rss[i].metadata.uid.as_deref());
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|&i| self.rss[i].metadata.uid.as_deref())
            .collect();
        self.pods.iter().any(|pod| {
            let Some(owner) = owner_of(&pod.metadata) else {
                return false;
            };
            Some(owner.uid.as_str()) != new_uid
                && old_uids.contains(&owner.uid.as_str())
                && !crate::podutil::is_pod_terminal(pod)
        })
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for a different `replicas`.
    fn is_scaling_event(&mut self) -> bool {
        let (new, old) = self.get_all(false);
        let mut all = old;
        all.extend(new);
        let replicas = self.replicas;
        self.active(all)
            .into_iter()
            .filter_map(|i| desired_annotation(&self.rss[i]))
            .any(|desired| desired != replicas)
    }

    /// `sync`: scaling and status only, for paused Deployments and scaling events.
    fn sync(&mut self) -> Step {
        let (new, old) = self.get_all(false);
        self.scale_all(new, &old);
        if self.paused() {
            self.cleanup(&old);
        }
        let mut all = old;
        all.extend(new);
        self.sync_status(&all, new);
        Ok(())
    }

    /// `scale`: a single active ReplicaSet takes the whole size; otherwise the change is shared
    /// in proportion among active ReplicaSets (largest first), leftovers to the first.
    fn scale_all(&mut self, new: Option<usize>, old: &[usize]) {
        if let Some(i) = self.active_or_latest(new, old) {
            if replicas(&self.rss[i]) != self.replicas {
                self.scale_and_record(i, self.replicas);
            }
            return;
        }
        if self.is_saturated(new) {
            for i in self.active(old.iter().copied()) {
                self.scale_and_record(i, 0);
            }
            return;
        }
        if !matches!(self.strategy, Strategy::RollingUpdate { .. }) {
            return;
        }
        let mut all = self.active(old.iter().copied().chain(new));
        let allowed = if self.replicas > 0 {
            self.replicas + self.fence.max_surge
        } else {
            0
        };
        let to_add = allowed - self.sum(&all, replicas);
        let rss = &self.rss;
        let op = match to_add.signum() {
            1 => {
                // Larger first; among equals, newer first.
                all.sort_by(|&a, &b| {
                    replicas(&rss[b])
                        .cmp(&replicas(&rss[a]))
                        .then_with(|| by_creation(&rss[b], &rss[a]))
                });
                "up"
            }
            -1 => {
                // Larger first; among equals, older first.
                all.sort_by(|&a, &b| {
                    replicas(&rss[b])
                        .cmp(&replicas(&rss[a]))
                        .then_with(|| by_creation(&rss[a], &rss[b]))
                });
                "down"
            }
            _ => "",
        };
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rss[i];
            let share = rollout::proportion(&ProportionInput {
                rs_replicas: replicas(rs),
                annotated_max: max_annotation(rs),
                status_replicas,
                replicas: self.replicas,
                max_surge: self.fence.max_surge,
                to_add,
                added,
            });
            sizes.push(replicas(rs) + share);
            added += share;
        }
        for (k, &i) in all.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale(i, size, op);
        }
    }

    /// `FindActiveOrLatest`: the one active ReplicaSet; with none, the new or newest one.
    fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut newest_first = old.to_vec();
        newest_first.sort_by(|&a, &b| by_creation(&self.rss[b], &self.rss[a]));
        let active = self.active(newest_first.iter().copied().chain(new));
        match active.len() {
            0 => new.or(newest_first.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `IsSaturated`: the new ReplicaSet is at full size, sized for it, and fully available.
    fn is_saturated(&self, new: Option<usize>) -> bool {
        let Some(rs) = new.map(|i| &self.rss[i]) else {
            return false;
        };
        desired_annotation(rs) == Some(self.replicas)
            && replicas(rs) == self.replicas
            && available(rs) == self.replicas
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

#[cfg(test)]
mod tests;
