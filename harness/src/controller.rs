//! The controllers: level-triggered reconcilers that turn Deployments into ReplicaSets, ReplicaSets
//! into pods, Services into Endpoints and EndpointSlices, and ConfigMap changes into rolling
//! restarts.
//!
//! Each controller is a [`Reconciler`]: it maps a store change to the keys it affects
//! ([`Reconciler::keys_for`]) and brings one key's world to its desired state
//! ([`Reconciler::reconcile`]), deciding with pure functions (tested by tables) and writing
//! through the [`Store`]. [`run`] is the thin loop around it: it subscribes to the store, keeps a
//! deduplicating [`queue::WorkQueue`], requeues when time matters (minReadySeconds, progress
//! deadlines) and backs off on errors; when its subscription lags it resyncs every key, since the
//! state, not the event, decides. [`spawn`] starts them all.
//!
//! - [`deployment`]: rollouts (RollingUpdate, Recreate), revisions, history, conditions.
//! - [`replicaset`]: keeps `spec.replicas` pods, adopting and releasing by labels.
//! - [`endpoints`]: the ready and not-ready addresses behind each Service.
//! - [`endpointslice`]: the same pods as `discovery.k8s.io` EndpointSlices, which kubectl's
//!   `describe service` reads.
//! - [`reloader`]: stakater/Reloader's annotations, rolling a Deployment when its ConfigMap or
//!   Secret changes.
//! - [`rollout`] and [`ranking`]: the arithmetic of rollouts and the order of scale-down.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Result;
use crate::store::{Store, WatchEvent};

pub mod claim;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod queue;
pub mod ranking;
pub mod reloader;
pub mod replicaset;
pub mod rollout;

#[cfg(test)]
mod tests;

/// One controller's logic, driven by [`run`].
pub trait Reconciler: Send + 'static {
    /// What one reconcile is about (usually an object's namespace and name).
    type Key: Clone + Eq + Hash + Debug + Send;

    /// The controller's name, for logs.
    const NAME: &'static str;

    /// The keys a store change may affect.
    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key>;

    /// Every key, for the first sync and after missed changes.
    fn all_keys(&mut self) -> Vec<Self::Key>;

    /// Moves one key toward its desired state. `Ok(Some(d))` asks to be called again after `d`
    /// even if nothing changes; an error retries with backoff.
    fn reconcile(&mut self, key: &Self::Key) -> Result<Option<Duration>>;
}

/// Starts every controller on `tracker`; they stop when `cancel` is cancelled.
pub fn spawn(store: Arc<Store>, tracker: &TaskTracker, cancel: CancellationToken) {
    // Subscribe before the first listing so that no change falls between the two.
    let deployments = deployment::DeploymentController::new(store.clone());
    tracker.spawn(run(deployments, store.subscribe(), cancel.child_token()));
    let replica_sets = replicaset::ReplicaSetController::new(store.clone());
    tracker.spawn(run(replica_sets, store.subscribe(), cancel.child_token()));
    let endpoints = endpoints::EndpointsController::new(store.clone());
    tracker.spawn(run(endpoints, store.subscribe(), cancel.child_token()));
    let slices = endpointslice::EndpointSliceController::new(store.clone());
    tracker.spawn(run(slices, store.subscribe(), cancel.child_token()));
    // The reloader remembers what each ConfigMap held; it learns that now, synchronously, so that
    // a change right after startup is not mistaken for the first sighting.
    let changes = store.subscribe();
    let reloader = reloader::Reloader::new(store);
    tracker.spawn(run(reloader, changes, cancel.child_token()));
}

/// The loop around one [`Reconciler`]: queue keys from store changes, reconcile them one at a
/// time, requeue on request or error, resync on lag, stop on `cancel`.
pub async fn run<R: Reconciler>(
    mut reconciler: R,
    mut changes: broadcast::Receiver<WatchEvent>,
    cancel: CancellationToken,
) {
    let mut queue = queue::WorkQueue::default();
    for key in reconciler.all_keys() {
        queue.add(key);
    }
    loop {
        if cancel.is_cancelled() {
            return;
        }
        // Take every change already delivered before working, so keys deduplicate.
        loop {
            match changes.try_recv() {
                Ok(event) => {
                    for key in reconciler.keys_for(&event) {
                        queue.add(key);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::debug!(controller = R::NAME, missed, "watch lagged; resyncing");
                    for key in reconciler.all_keys() {
                        queue.add(key);
                    }
                }
                Err(TryRecvError::Closed) => return,
            }
        }
        if let Some(key) = queue.pop(tokio::time::Instant::now()) {
            match reconciler.reconcile(&key) {
                Ok(requeue) => {
                    queue.forget(&key);
                    if let Some(after) = requeue {
                        queue.add_after(key, after);
                    }
                }
                Err(err) => {
                    tracing::warn!(controller = R::NAME, ?key, %err, "reconcile failed; retrying");
                    queue.add_rate_limited(key);
                }
            }
            // Let the rest of the runtime (kubelet, API) in between reconciles.
            tokio::task::yield_now().await;
            continue;
        }
        let deadline = queue.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            received = changes.recv() => match received {
                Ok(event) => {
                    for key in reconciler.keys_for(&event) {
                        queue.add(key);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(controller = R::NAME, missed, "watch lagged; resyncing");
                    for key in reconciler.all_keys() {
                        queue.add(key);
                    }
                }
                Err(RecvError::Closed) => return,
            },
            () = sleep => {}
        }
    }
}
