//! The Recreate strategy (upstream `recreate.go`): scale every old ReplicaSet to 0, wait until
//! none of their pods exists any more, then create or scale up the new one at full size.

use super::{Step, Sync};
use crate::controller::deployment::revision::status_replicas;
use crate::controller::deployment::status;
use crate::podutil::{is_pod_terminal, owner_of};

impl Sync<'_> {
    /// `rolloutRecreate`.
    pub(super) fn rollout_recreate(&mut self) -> Step {
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
    pub(super) fn old_pods_running(&self, new: Option<usize>, old: &[usize]) -> bool {
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
                && !is_pod_terminal(pod)
        })
    }
}
