//! Resizing without rolling (upstream `sync.go`'s `sync` and `scale`): for paused Deployments and
//! scaling events, a single active ReplicaSet takes the new size; otherwise the change is shared
//! among the active ReplicaSets in proportion to their sizes.

use super::{Step, Sync};
use crate::controller::deployment::revision::{
    available, by_creation, desired_annotation, max_annotation, replicas,
};
use crate::controller::rollout::{self, ProportionInput, Strategy};

impl Sync<'_> {
    /// `isScalingEvent`: an active ReplicaSet was sized for a different `replicas`.
    pub(super) fn is_scaling_event(&mut self) -> bool {
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
    pub(super) fn sync(&mut self) -> Step {
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
    pub(super) fn scale_all(&mut self, new: Option<usize>, old: &[usize]) {
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
    pub(super) fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
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
    pub(super) fn is_saturated(&self, new: Option<usize>) -> bool {
        let Some(rs) = new.map(|i| &self.rss[i]) else {
            return false;
        };
        desired_annotation(rs) == Some(self.replicas)
            && replicas(rs) == self.replicas
            && available(rs) == self.replicas
    }
}
