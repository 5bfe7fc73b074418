//! A model cluster small enough to run hundreds of rollouts per test: the real planner
//! ([`super::sync::plan`]) as the deployment controller, the real ReplicaSet decisions
//! ([`crate::controller::replicaset::manage`], [`crate::controller::replicaset::calculate_status`])
//! as the ReplicaSet controller, and pods that become ready a chosen number of steps after they
//! are created and linger a chosen number of steps while terminating.
//!
//! Properties: active pods never exceed `replicas + maxSurge`; during a rolling update from a
//! healthy Deployment, ready pods never drop below `replicas - maxUnavailable`; a Recreate never
//! runs old and new pods together; and every rollout completes.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

use super::revision::{self, replicas};
use super::status;
use super::sync::{Action, Input, plan};
use crate::controller::replicaset::{Manage, calculate_status, manage, pod_from_template};
use crate::controller::rollout;
use crate::podutil::{is_pod_active, is_pod_ready, owner_of};

struct SimPod {
    pod: Pod,
    /// Steps until it becomes ready.
    ready_in: u32,
    /// Steps it still exists after deletion (`None` while not deleted).
    gone_in: Option<u32>,
}

struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: Vec<SimPod>,
    now: Timestamp,
    uid: u64,
    /// Ready delays handed to new pods in turn.
    delays: Vec<u32>,
    next_delay: usize,
    termination: u32,
}

fn deployment(replicas: i32, strategy: DeploymentStrategy) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), "sim".to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("sim".into()),
            namespace: Some("default".into()),
            uid: Some("sim-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            strategy: Some(strategy),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("v1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

impl World {
    fn new(d: Deployment, delays: Vec<u32>, termination: u32) -> World {
        World {
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            uid: 0,
            delays,
            next_delay: 0,
            termination,
        }
    }

    fn uid(&mut self) -> String {
        self.uid += 1;
        format!("uid-{:06}", self.uid)
    }

    fn fenceposts(&self) -> rollout::Fenceposts {
        rollout::fenceposts(self.d.spec.as_ref().unwrap()).unwrap()
    }

    /// One round: the deployment controller, then every ReplicaSet, then time passes.
    fn step(&mut self) -> Result<(), TestCaseError> {
        let pods: Vec<Pod> = self.pods.iter().map(|p| p.pod.clone()).collect();
        let planned = plan(Input {
            deployment: &self.d,
            replica_sets: self.rss.clone(),
            pods: &pods,
            now: self.now,
        });
        prop_assert!(
            planned.error.is_none(),
            "planner error: {:?}",
            planned.error
        );
        for action in planned.actions {
            self.apply(action);
        }
        for i in 0..self.rss.len() {
            self.sync_replica_set(i);
        }
        self.tick();
        Ok(())
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::CreateReplicaSet(mut rs) => {
                rs.metadata.uid = Some(self.uid());
                rs.metadata.generation = Some(1);
                rs.metadata.creation_timestamp = Some(Time(self.now));
                self.rss.push(rs);
            }
            Action::UpdateReplicaSet(planned) => {
                let rs = self
                    .rss
                    .iter_mut()
                    .find(|rs| rs.metadata.name == planned.metadata.name)
                    .expect("updates target an existing ReplicaSet");
                if rs.spec != planned.spec {
                    *rs.metadata.generation.get_or_insert(0) += 1;
                }
                rs.spec = planned.spec;
                rs.metadata.annotations = planned.metadata.annotations;
            }
            Action::DeleteReplicaSet { uid, .. } => {
                self.rss
                    .retain(|rs| rs.metadata.uid.as_deref() != Some(uid.as_str()));
                self.pods
                    .retain(|p| owner_of(&p.pod.metadata).is_none_or(|o| o.uid != uid));
            }
            Action::UpdateDeployment { revision, status } => {
                if let Some(revision) = revision {
                    self.d
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(revision::REVISION.into(), revision);
                }
                self.d.status = Some(status);
            }
            Action::Event { .. } => {}
        }
    }

    fn owned(&self, uid: &str) -> Vec<usize> {
        (0..self.pods.len())
            .filter(|&i| {
                let p = &self.pods[i].pod;
                is_pod_active(p) && owner_of(&p.metadata).is_some_and(|o| o.uid == uid)
            })
            .collect()
    }

    fn sync_replica_set(&mut self, i: usize) {
        let rs = self.rss[i].clone();
        let uid = rs.metadata.uid.clone().unwrap();
        let owned = self.owned(&uid);
        let decision = {
            let refs: Vec<&Pod> = owned.iter().map(|&k| &self.pods[k].pod).collect();
            match manage(replicas(&rs), &refs, &refs, self.now) {
                Manage::Nothing => None,
                Manage::Create(n) => Some(Err(n)),
                Manage::Delete(victims) => Some(Ok(victims
                    .iter()
                    .map(|p| p.metadata.uid.clone().unwrap())
                    .collect::<Vec<_>>())),
            }
        };
        match decision {
            None => {}
            Some(Err(count)) => {
                for _ in 0..count {
                    let mut pod = pod_from_template(&rs);
                    let pod_uid = self.uid();
                    pod.metadata.name = Some(format!(
                        "{}{pod_uid}",
                        pod.metadata.generate_name.clone().unwrap()
                    ));
                    pod.metadata.uid = Some(pod_uid);
                    pod.metadata.creation_timestamp = Some(Time(self.now));
                    pod.spec.get_or_insert_with(Default::default).node_name =
                        Some("harness".into());
                    pod.status = Some(PodStatus {
                        phase: Some("Running".into()),
                        ..Default::default()
                    });
                    let ready_in = self.delays[self.next_delay % self.delays.len()];
                    self.next_delay += 1;
                    self.pods.push(SimPod {
                        pod,
                        ready_in,
                        gone_in: None,
                    });
                }
            }
            Some(Ok(victims)) => {
                for p in self.pods.iter_mut() {
                    if victims.contains(p.pod.metadata.uid.as_ref().unwrap()) {
                        p.pod.metadata.deletion_timestamp = Some(Time(self.now));
                        set_ready(&mut p.pod, false, self.now);
                        p.gone_in = Some(self.termination);
                    }
                }
                self.pods.retain(|p| p.gone_in != Some(0));
            }
        }
        let owned = self.owned(&uid);
        let refs: Vec<&Pod> = owned.iter().map(|&k| &self.pods[k].pod).collect();
        let status = calculate_status(&rs, &refs, None, self.now);
        self.rss[i].status = Some(status);
    }

    fn tick(&mut self) {
        self.now += SignedDuration::from_secs(1);
        let now = self.now;
        for p in self.pods.iter_mut() {
            if let Some(left) = p.gone_in.as_mut() {
                *left = left.saturating_sub(1);
                continue;
            }
            if p.ready_in == 0 {
                if !is_pod_ready(&p.pod) {
                    set_ready(&mut p.pod, true, now);
                }
            } else {
                p.ready_in -= 1;
            }
        }
        self.pods.retain(|p| p.gone_in != Some(0));
    }

    fn active_pods(&self) -> usize {
        self.pods.iter().filter(|p| is_pod_active(&p.pod)).count()
    }

    fn ready_pods(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| is_pod_active(&p.pod) && is_pod_ready(&p.pod))
            .count()
    }

    /// Images of the ReplicaSets owning existing pods (terminating ones included).
    fn images_running(&self) -> Vec<String> {
        let mut images: Vec<String> = self
            .pods
            .iter()
            .filter_map(|p| {
                let owner = owner_of(&p.pod.metadata)?;
                let rs = self
                    .rss
                    .iter()
                    .find(|rs| rs.metadata.uid.as_deref() == Some(&owner.uid))?;
                rs.spec
                    .as_ref()?
                    .template
                    .as_ref()?
                    .spec
                    .as_ref()?
                    .containers[0]
                    .image
                    .clone()
            })
            .collect();
        images.sort();
        images.dedup();
        images
    }

    fn complete(&self) -> bool {
        let d_status = self.d.status.clone().unwrap_or_default();
        let r = rollout::desired_replicas(self.d.spec.as_ref().unwrap());
        status::complete(&self.d, &d_status)
            && self.active_pods() == usize::try_from(r).unwrap()
            && self.pods.iter().all(|p| is_pod_active(&p.pod))
            && self.rss.iter().filter(|rs| replicas(rs) > 0).count() <= 1
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.d.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        *self.d.metadata.generation.as_mut().unwrap() += 1;
    }
}

fn set_ready(pod: &mut Pod, ready: bool, now: Timestamp) {
    let status = pod.status.get_or_insert_with(Default::default);
    status.conditions = Some(vec![PodCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    }]);
}

fn fencepost() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        (0..=5i32).prop_map(IntOrString::Int),
        (0..=100i32).prop_map(|p| IntOrString::String(format!("{p}%"))),
    ]
}

fn is_zero(v: &IntOrString) -> bool {
    matches!(v, IntOrString::Int(0)) || matches!(v, IntOrString::String(s) if s == "0%")
}

/// Runs until the rollout completes, checking invariants after every step.
fn roll(world: &mut World, rolling_from_healthy: bool) -> Result<(), TestCaseError> {
    let spec = world.d.spec.clone().unwrap();
    let r = rollout::desired_replicas(&spec);
    let fence = world.fenceposts();
    let recreate = matches!(rollout::strategy(&spec), rollout::Strategy::Recreate);
    let max_delay = world.delays.iter().copied().max().unwrap_or(0);
    let budget = (r as u32 + 2) * (max_delay + world.termination + 4) + 20;
    for step in 0..budget {
        world.step()?;
        let active = world.active_pods() as i32;
        prop_assert!(
            active <= r + fence.max_surge,
            "step {step}: {active} pods > {r} + surge {}",
            fence.max_surge
        );
        if rolling_from_healthy && !recreate {
            let ready = world.ready_pods() as i32;
            prop_assert!(
                ready >= r - fence.max_unavailable,
                "step {step}: {ready} ready < {r} - unavailable {}",
                fence.max_unavailable
            );
        }
        if recreate {
            prop_assert!(
                world.images_running().len() <= 1,
                "step {step}: old and new pods together"
            );
        }
        if world.complete() {
            return Ok(());
        }
    }
    Err(TestCaseError::fail(format!(
        "rollout did not complete in {budget} steps: status {:?}, rss {:?}",
        world.d.status,
        world
            .rss
            .iter()
            .map(|rs| (rs.metadata.name.clone(), replicas(rs), rs.status.clone()))
            .collect::<Vec<_>>()
    )))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn rolling_updates_keep_their_budgets_and_complete(
        replicas in 0..=12i32,
        surge in fencepost(),
        unavailable in fencepost(),
        delays in proptest::collection::vec(0..=4u32, 1..6),
        termination in 0..=2u32,
    ) {
        prop_assume!(!(is_zero(&surge) && is_zero(&unavailable)));
        let strategy = DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        };
        let mut world = World::new(deployment(replicas, strategy), delays, termination);
        roll(&mut world, false)?;
        world.set_image("v2");
        roll(&mut world, true)?;
        prop_assert_eq!(world.images_running(), if replicas > 0 { vec!["v2".to_owned()] } else { vec![] });
        // And back again: the first ReplicaSet is reused.
        let first = world.rss.iter().find(|rs| {
            rs.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0].image.as_deref() == Some("v1")
        }).map(|rs| rs.metadata.uid.clone());
        world.set_image("v1");
        roll(&mut world, true)?;
        let active: Vec<_> = world.rss.iter().filter(|rs| revision::replicas(rs) > 0).map(|rs| rs.metadata.uid.clone()).collect();
        if replicas > 0 {
            prop_assert_eq!(active, vec![first.unwrap()]);
        }
    }

    #[test]
    fn recreate_never_mixes_versions_and_completes(
        replicas in 0..=10i32,
        delays in proptest::collection::vec(0..=3u32, 1..4),
        termination in 0..=3u32,
    ) {
        let strategy = DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None };
        let mut world = World::new(deployment(replicas, strategy), delays, termination);
        roll(&mut world, false)?;
        world.set_image("v2");
        roll(&mut world, true)?;
    }
}

/// The seeds' two examples, step by step: 3 replicas at 25%/25% never run more than 4 pods nor
/// fewer than 3 ready; 10 replicas never more than 13 pods nor fewer than 8 ready.
#[test]
fn seed_examples_step_by_step() {
    for (replicas, max_pods, min_ready) in [(3, 4, 3), (10, 13, 8)] {
        let strategy = DeploymentStrategy::default();
        let mut world = World::new(deployment(replicas, strategy), vec![2], 1);
        roll(&mut world, false).unwrap();
        world.set_image("v2");
        let mut steps = 0;
        while !world.complete() || steps == 0 {
            world.step().unwrap();
            assert!(world.active_pods() <= max_pods);
            assert!(world.ready_pods() >= min_ready);
            steps += 1;
            assert!(steps < 200, "did not complete");
        }
        assert_eq!(world.images_running(), ["v2"]);
    }
}
