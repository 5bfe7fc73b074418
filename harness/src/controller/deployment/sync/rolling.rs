//! The RollingUpdate strategy (upstream `rolling.go`): grow the new ReplicaSet within
//! `replicas + maxSurge`, then shrink old ones, unhealthy pods first, while at least
//! `replicas - maxUnavailable` stay available.

use super::{Step, Sync, rs_name};
use crate::controller::deployment::revision::{available, replicas};
use crate::controller::deployment::status;
use crate::controller::rollout;

impl Sync<'_> {
    /// `rolloutRolling`.
    pub(super) fn rollout_rolling(&mut self) -> Step {
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
    pub(super) fn reconcile_new(&mut self, all: &[usize], new: usize) -> bool {
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
    pub(super) fn reconcile_old(
        &mut self,
        all: &[usize],
        old: Vec<usize>,
        new: usize,
    ) -> Step<bool> {
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
    pub(super) fn cleanup_unhealthy(&mut self, old: &[usize], max: i32) -> Step<i32> {
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
    pub(super) fn scale_down_old_for_rolling(&mut self, all: &[usize], old: &[usize]) -> i32 {
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
}
