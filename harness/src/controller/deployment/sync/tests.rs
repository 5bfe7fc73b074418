//! Table-style tests of the planner: one situation each, the writes and events it must produce.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controller::deployment::revision::{
    DESIRED_REPLICAS, MAX_REPLICAS, REVISION, REVISION_HISTORY,
};
use crate::controller::deployment::status::{
    AVAILABLE, MIN_UNAVAILABLE, NEW_RS_AVAILABLE, NEW_RS_CREATED, RS_UPDATED, TIMED_OUT,
};
use crate::podutil::controller_ref;

fn deployment(replicas: i32, image: &str) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some(image.into()),
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

fn with_fenceposts(mut d: Deployment, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    });
    d
}

fn recreate(mut d: Deployment) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

fn pct(text: &str) -> IntOrString {
    IntOrString::String(text.into())
}

/// The name the ReplicaSet of `image` gets.
fn rs_name(image: &str) -> String {
    new_replica_set(&deployment(1, image))
        .metadata
        .name
        .unwrap()
}

/// A ReplicaSet of `image` owned by the test Deployment: spec, status.replicas, available,
/// revision, created `age` seconds ago, annotated for `desired` replicas (+ surge 1).
fn rs(image: &str, spec: i32, pods: i32, available: i32, revision: i64, age: i64) -> ReplicaSet {
    let d = deployment(3, image);
    let mut rs = new_replica_set(&d);
    rs.metadata.uid = Some(format!("uid-{image}"));
    rs.metadata.generation = Some(1);
    rs.metadata.creation_timestamp = Some(Time(Timestamp::now() - SignedDuration::from_secs(age)));
    rs.metadata.annotations = Some(BTreeMap::from([
        (REVISION.to_owned(), revision.to_string()),
        (DESIRED_REPLICAS.to_owned(), "3".to_owned()),
        (MAX_REPLICAS.to_owned(), "4".to_owned()),
    ]));
    rs.spec.as_mut().unwrap().replicas = Some(spec);
    rs.status = Some(ReplicaSetStatus {
        replicas: pods,
        ready_replicas: Some(available),
        available_replicas: Some(available),
        observed_generation: Some(1),
        ..Default::default()
    });
    rs
}

fn annotate(mut rs: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
    let a = rs.metadata.annotations.as_mut().unwrap();
    a.insert(DESIRED_REPLICAS.to_owned(), desired.to_string());
    a.insert(MAX_REPLICAS.to_owned(), max.to_string());
    rs
}

fn with_revision(mut d: Deployment, revision: &str) -> Deployment {
    d.metadata.annotations = Some(BTreeMap::from([(REVISION.to_owned(), revision.to_owned())]));
    d
}

fn run(d: &Deployment, rss: Vec<ReplicaSet>) -> Plan {
    run_with_pods(d, rss, &[])
}

fn run_with_pods(d: &Deployment, rss: Vec<ReplicaSet>, pods: &[Pod]) -> Plan {
    plan(Input {
        deployment: d,
        replica_sets: rss,
        pods,
        now: Timestamp::now(),
    })
}

fn events(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// (name, replicas) of every created or updated ReplicaSet, in order.
fn writes(plan: &Plan) -> Vec<(String, i32)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet(rs) | Action::UpdateReplicaSet(rs) => {
                Some((rs_name_of(rs), replicas(rs)))
            }
            _ => None,
        })
        .collect()
}

fn rs_name_of(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap()
}

fn written_status(plan: &Plan) -> (Option<String>, DeploymentStatus) {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateDeployment { revision, status } => {
                Some((revision.clone(), status.clone()))
            }
            _ => None,
        })
        .expect("a status write")
}

fn condition_of(status: &DeploymentStatus, type_: &str) -> (String, String, String) {
    let c = get_condition(Some(status), type_).expect(type_);
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[test]
fn a_new_deployment_creates_its_replica_set() {
    let d = deployment(3, "v1");
    let plan = run(&d, vec![]);
    let name = rs_name("v1");
    assert_eq!(writes(&plan), [(name.clone(), 3)]);
    assert_eq!(
        events(&plan),
        [format!("Scaled up replica set {name} from 0 to 3")]
    );
    let Action::CreateReplicaSet(created) = &plan.actions[0] else {
        panic!("first action should create: {:?}", plan.actions[0]);
    };
    let a = created.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (
            a[REVISION].as_str(),
            a[DESIRED_REPLICAS].as_str(),
            a[MAX_REPLICAS].as_str()
        ),
        ("1", "3", "4")
    );
    assert_eq!(
        created.metadata.owner_references,
        Some(vec![controller_ref(&d)])
    );
    let (revision, status) = written_status(&plan);
    assert_eq!(revision.as_deref(), Some("1"));
    assert_eq!(
        condition_of(&status, PROGRESSING),
        (
            "True".into(),
            NEW_RS_CREATED.into(),
            format!("Created new replica set \"{name}\"")
        )
    );
    assert_eq!(condition_of(&status, AVAILABLE).1, MIN_UNAVAILABLE);
    assert_eq!(status.observed_generation, Some(1));
    assert!(plan.error.is_none());
    assert!(
        plan.requeue_after.is_some(),
        "the progress deadline is watched"
    );
}

#[test]
fn a_template_change_surges_one_pod() {
    let d = with_revision(deployment(3, "v2"), "1");
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    let new = rs_name("v2");
    assert_eq!(writes(&plan), [(new.clone(), 1)]);
    assert_eq!(
        events(&plan),
        [format!("Scaled up replica set {new} from 0 to 1")]
    );
    assert_eq!(written_status(&plan).0.as_deref(), Some("2"));
}

#[test]
fn old_pods_go_once_new_ones_are_available() {
    let d = with_revision(deployment(3, "v2"), "2");
    let old = rs_name("v1");
    // The new pod is not available yet: nothing may go.
    let plan = run(
        &d,
        vec![rs("v1", 3, 3, 3, 1, 100), rs("v2", 1, 1, 0, 2, 10)],
    );
    assert_eq!(writes(&plan), []);
    // It is: one old pod goes.
    let plan = run(
        &d,
        vec![rs("v1", 3, 3, 3, 1, 100), rs("v2", 1, 1, 1, 2, 10)],
    );
    assert_eq!(writes(&plan), [(old.clone(), 2)]);
    assert_eq!(
        events(&plan),
        [format!("Scaled down replica set {old} from 3 to 2")]
    );
    // Room again for a new pod.
    let plan = run(
        &d,
        vec![rs("v1", 2, 2, 2, 1, 100), rs("v2", 1, 1, 1, 2, 10)],
    );
    assert_eq!(writes(&plan), [(rs_name("v2"), 2)]);
}

#[test]
fn ten_replicas_surge_three_and_lose_two() {
    let d = with_revision(deployment(10, "v2"), "1");
    // As upstream, one sync creates the new ReplicaSet at 3 and, with 2 pods allowed to be
    // unavailable, also scales the old one down by 2.
    let plan = run(&d, vec![annotate(rs("v1", 10, 10, 10, 1, 100), 10, 13)]);
    assert_eq!(writes(&plan), [(rs_name("v2"), 3), (rs_name("v1"), 8)]);
    let d = with_revision(d, "2");
    let plan = run(
        &d,
        vec![
            annotate(rs("v1", 10, 10, 10, 1, 100), 10, 13),
            annotate(rs("v2", 3, 3, 0, 2, 10), 10, 13),
        ],
    );
    assert_eq!(writes(&plan), [(rs_name("v1"), 8)]);
}

#[test]
fn unhealthy_old_pods_are_cleaned_up_first() {
    let d = with_revision(deployment(10, "v2"), "2");
    // Four old pods are unavailable; the budget (13 - 8 - 3 = 2) goes to them.
    let plan = run(
        &d,
        vec![
            annotate(rs("v1", 10, 10, 6, 1, 100), 10, 13),
            annotate(rs("v2", 3, 3, 0, 2, 10), 10, 13),
        ],
    );
    assert_eq!(writes(&plan), [(rs_name("v1"), 8)]);
    assert_eq!(
        events(&plan),
        [format!(
            "Scaled down replica set {} from 10 to 8",
            rs_name("v1")
        )]
    );
}

#[test]
fn max_surge_100_percent_starts_every_new_pod() {
    let d = with_revision(
        with_fenceposts(deployment(10, "v2"), pct("100%"), pct("0%")),
        "1",
    );
    let plan = run(&d, vec![annotate(rs("v1", 10, 10, 10, 1, 100), 10, 20)]);
    assert_eq!(writes(&plan), [(rs_name("v2"), 10)]);
}

#[test]
fn no_surge_scales_down_first() {
    let d = with_revision(
        with_fenceposts(
            deployment(3, "v2"),
            IntOrString::Int(0),
            IntOrString::Int(1),
        ),
        "1",
    );
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    // The new ReplicaSet is created empty, then one old pod goes.
    assert_eq!(writes(&plan), [(rs_name("v2"), 0), (rs_name("v1"), 2)]);
    assert_eq!(
        events(&plan),
        [format!(
            "Scaled down replica set {} from 3 to 2",
            rs_name("v1")
        )]
    );
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_their_pods() {
    let d = with_revision(recreate(deployment(3, "v2")), "1");
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    assert_eq!(writes(&plan), [(rs_name("v1"), 0)]);

    // Scaled to zero, but a pod of it still runs: wait.
    let old = rs("v1", 0, 0, 0, 1, 100);
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some("old-pod".into()),
            owner_references: Some(vec![controller_ref(&old)]),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    };
    let plan = run_with_pods(&d, vec![old.clone()], std::slice::from_ref(&pod));
    assert_eq!(writes(&plan), []);

    // Once it has finished, the new ReplicaSet starts at full size.
    pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let plan = run_with_pods(&d, vec![old], &[pod]);
    let new = rs_name("v2");
    assert_eq!(writes(&plan), [(new.clone(), 3)]);
    assert_eq!(
        events(&plan),
        [format!("Scaled up replica set {new} from 0 to 3")]
    );
}

#[test]
fn a_paused_deployment_does_not_roll_but_scales() {
    let mut d = with_revision(deployment(3, "v2"), "1");
    d.spec.as_mut().unwrap().paused = Some(true);
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    assert_eq!(writes(&plan), []);
    let (_, status) = written_status(&plan);
    assert_eq!(
        condition_of(&status, PROGRESSING),
        (
            "Unknown".into(),
            status::PAUSED.into(),
            "Deployment is paused".into()
        )
    );

    d.spec.as_mut().unwrap().replicas = Some(5);
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    assert_eq!(writes(&plan), [(rs_name("v1"), 5)]);

    // Resuming records it, and the rollout starts.
    d.spec.as_mut().unwrap().paused = None;
    d.spec.as_mut().unwrap().replicas = Some(3);
    d.status = Some(status);
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    assert_eq!(writes(&plan), [(rs_name("v2"), 1)]);
}

#[test]
fn a_rollback_reuses_the_old_replica_set_with_the_next_revision() {
    let d = with_revision(deployment(3, "v1"), "2");
    let plan = run(
        &d,
        vec![rs("v1", 0, 0, 0, 1, 100), rs("v2", 3, 3, 3, 2, 50)],
    );
    let v1 = rs_name("v1");
    let Action::UpdateReplicaSet(reused) = &plan.actions[0] else {
        panic!(
            "expected the old ReplicaSet to be updated first: {:?}",
            plan.actions
        );
    };
    let a = reused.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (rs_name_of(reused), a[REVISION].as_str()),
        (v1.clone(), "3")
    );
    assert_eq!(a[REVISION_HISTORY], "1");
    assert!(writes(&plan).contains(&(v1.clone(), 1)));
    assert_eq!(
        events(&plan),
        [format!("Scaled up replica set {v1} from 0 to 1")]
    );

    // The Deployment takes the reused ReplicaSet's revision.
    assert_eq!(written_status(&plan).0.as_deref(), Some("3"));
}

#[test]
fn history_beyond_the_limit_is_deleted_oldest_first() {
    let mut d = with_revision(deployment(3, "v3"), "3");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(3),
        available_replicas: Some(3),
        ready_replicas: Some(3),
        ..Default::default()
    });
    let mut busy = rs("v0", 0, 0, 0, 0, 400);
    busy.metadata.generation = Some(2); // Scaled to 0 but not yet observed: kept.
    let plan = run(
        &d,
        vec![
            busy,
            rs("v1", 0, 0, 0, 1, 300),
            rs("v2", 0, 0, 0, 2, 200),
            rs("v3", 3, 3, 3, 3, 100),
        ],
    );
    let deleted: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [rs_name("v1")]);
}

#[test]
fn a_stalled_rollout_exceeds_its_deadline_and_nothing_else() {
    let mut d = with_revision(deployment(3, "v2"), "2");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    let stale = Timestamp::now() - SignedDuration::from_secs(20);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(4),
        updated_replicas: Some(1),
        ready_replicas: Some(3),
        available_replicas: Some(3),
        unavailable_replicas: Some(1),
        conditions: Some(vec![status::condition(
            PROGRESSING,
            "True",
            RS_UPDATED,
            "x".into(),
            stale,
        )]),
        ..Default::default()
    });
    let plan = run(
        &d,
        vec![rs("v1", 3, 3, 3, 1, 100), rs("v2", 1, 1, 0, 2, 10)],
    );
    assert_eq!(writes(&plan), []);
    let (_, status) = written_status(&plan);
    assert_eq!(
        condition_of(&status, PROGRESSING),
        (
            "False".into(),
            TIMED_OUT.into(),
            format!(
                "ReplicaSet \"{}\" has timed out progressing.",
                rs_name("v2")
            )
        )
    );
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn a_complete_rollout_says_so() {
    let mut d = with_revision(deployment(3, "v1"), "1");
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(3),
        ready_replicas: Some(2),
        available_replicas: Some(2),
        ..Default::default()
    });
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    let (_, status) = written_status(&plan);
    assert_eq!(condition_of(&status, PROGRESSING).1, NEW_RS_AVAILABLE);
    assert_eq!(condition_of(&status, AVAILABLE).0, "True");
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(plan.requeue_after, None);
    // Nothing changes on the next sync.
    let mut settled = d.clone();
    settled.status = Some(status);
    assert_eq!(run(&settled, vec![rs("v1", 3, 3, 3, 1, 100)]).actions, []);
}

#[test]
fn resizing_mid_rollout_is_proportional() {
    let d = with_revision(deployment(20, "v2"), "2");
    let old = annotate(rs("v1", 8, 8, 8, 1, 100), 10, 13);
    let new = annotate(rs("v2", 5, 5, 0, 2, 10), 10, 13);
    let plan = run(&d, vec![old, new]);
    assert_eq!(
        events(&plan),
        [
            format!("Scaled up replica set {} from 8 to 15", rs_name("v1")),
            format!("Scaled up replica set {} from 5 to 10", rs_name("v2")),
        ]
    );
}

#[test]
fn scaling_a_settled_deployment_resizes_its_replica_set() {
    let d = with_revision(deployment(1, "v1"), "1");
    let plan = run(&d, vec![rs("v1", 3, 3, 3, 1, 100)]);
    assert_eq!(writes(&plan), [(rs_name("v1"), 1)]);
    assert_eq!(
        events(&plan),
        [format!(
            "Scaled down replica set {} from 3 to 1",
            rs_name("v1")
        )]
    );
}

#[test]
fn an_empty_selector_only_warns() {
    let mut d = deployment(3, "v1");
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let plan = run(&d, vec![]);
    assert_eq!(writes(&plan), []);
    assert!(matches!(
        &plan.actions[0],
        Action::Event {
            reason: "SelectingAll",
            ..
        }
    ));
}

#[test]
fn bad_fenceposts_are_an_error() {
    let d = with_fenceposts(deployment(3, "v1"), pct("lots"), pct("25%"));
    let plan = run(&d, vec![]);
    assert!(plan.actions.is_empty());
    assert!(plan.error.unwrap().contains("maxSurge"));
}
