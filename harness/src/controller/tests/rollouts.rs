//! Rollouts end to end: creation, a rolling update step by step, Recreate, pause, rollback and
//! history.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_creates_a_replica_set_and_three_pods() {
    let c = Cluster::start(true);
    c.store
        .create_as(deployment("hostbot", 3, "hostbot:v1"))
        .unwrap();
    let d = c.wait_complete("hostbot").await;

    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let rs_name = rs.metadata.name.clone().unwrap();
    let hash = &rs.metadata.labels.as_ref().unwrap()["pod-template-hash"];
    assert_eq!(rs_name, format!("hostbot-{hash}"));
    let owner = owner_of(&rs.metadata).unwrap();
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.block_owner_deletion
        ),
        ("Deployment", "hostbot", Some(true))
    );
    let pods = c.pods();
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap();
        let suffix = name.strip_prefix(&format!("{rs_name}-")).expect(name);
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(
            pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            *hash
        );
    }
    let status = d.status.unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(d.metadata.annotations.unwrap()[REVISION], "1");
    assert_eq!(
        c.events("ScalingReplicaSet"),
        [format!("Scaled up replica set {rs_name} from 0 to 3")]
    );
    assert_eq!(c.events("SuccessfulCreate").len(), 3);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_change_rolls_within_the_budgets() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let old = c.replica_sets().remove(0);
    c.auto_ready.store(false, Ordering::SeqCst);

    // Every store change is checked: availability never below replicas - maxUnavailable.
    let violations = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (store, cancel, violations) = (c.store.clone(), c.cancel.clone(), violations.clone());
        let mut changes = store.subscribe();
        c.tracker.spawn(async move {
            loop {
                let ready = store
                    .list_as::<Pod>(Some("default"), &Selector::default())
                    .iter()
                    .filter(|p| is_pod_active(p) && is_pod_ready(p))
                    .count();
                if ready < 3 {
                    violations.lock().unwrap().push(ready);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changes.recv() => {}
                }
            }
        });
    }

    set_image(&c, "web", "web:v2");
    let mut steps = 0;
    loop {
        let d = c
            .wait_for("the rollout to settle", |c| {
                let d = c.deployment("web");
                settled(c, &d).then_some(d)
            })
            .await;
        // At rest between steps: within the surge, and fully available.
        let pods = c.pods();
        let active = pods.iter().filter(|p| is_pod_active(p)).count();
        let ready = pods
            .iter()
            .filter(|p| is_pod_active(p) && is_pod_ready(p))
            .count();
        let spec_sum: i32 = c.replica_sets().iter().map(revision::replicas).sum();
        assert!(
            active <= 4 && spec_sum <= 4,
            "step {steps}: {active} pods, {spec_sum} in specs"
        );
        assert!(ready >= 3, "step {steps}: only {ready} ready");
        if is_complete(&d) {
            break;
        }
        // The kubelet step: one new pod becomes ready.
        let next = pods
            .iter()
            .find(|p| is_pod_active(p) && admitted(p) && !is_pod_ready(p))
            .unwrap_or_else(|| panic!("step {steps}: nothing to make ready, yet not complete"));
        set_ready(
            &c.store,
            "default",
            next.metadata.name.as_deref().unwrap(),
            true,
        );
        steps += 1;
        assert!(steps <= 10, "too many steps");
    }
    assert_eq!(steps, 3, "one new pod at a time");
    assert!(
        violations.lock().unwrap().is_empty(),
        "availability dropped: {:?}",
        violations.lock().unwrap()
    );

    let rss = c.replica_sets();
    assert_eq!(rss.len(), 2);
    let new = rss
        .iter()
        .find(|rs| rs.metadata.uid != old.metadata.uid)
        .unwrap();
    let old = rss
        .iter()
        .find(|rs| rs.metadata.uid == old.metadata.uid)
        .unwrap();
    assert_eq!((revision::replicas(old), revision::replicas(new)), (0, 3));
    assert_eq!(image_of(new), "web:v2");
    let (old_name, new_name) = (
        old.metadata.name.clone().unwrap(),
        new.metadata.name.clone().unwrap(),
    );
    assert_eq!(
        c.events("ScalingReplicaSet"),
        [
            format!("Scaled up replica set {old_name} from 0 to 3"),
            format!("Scaled up replica set {new_name} from 0 to 1"),
            format!("Scaled down replica set {old_name} from 3 to 2"),
            format!("Scaled up replica set {new_name} from 1 to 2"),
            format!("Scaled down replica set {old_name} from 2 to 1"),
            format!("Scaled up replica set {new_name} from 2 to 3"),
            format!("Scaled down replica set {old_name} from 1 to 0"),
        ]
    );
    assert_eq!(
        c.deployment("web").metadata.annotations.unwrap()[REVISION],
        "2"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let c = Cluster::start(true);
    let mut d = deployment("batch", 3, "batch:v1");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    c.store.create_as(d).unwrap();
    c.wait_complete("batch").await;
    let old = c.replica_sets().remove(0);

    // Versions never overlap: checked on every change.
    let overlap = Arc::new(AtomicBool::new(false));
    {
        let (store, cancel, overlap) = (c.store.clone(), c.cancel.clone(), overlap.clone());
        let old_uid = old.metadata.uid.clone();
        let mut changes = store.subscribe();
        c.tracker.spawn(async move {
            loop {
                let pods = store.list_as::<Pod>(Some("default"), &Selector::default());
                let owners = |old: bool| {
                    pods.iter().any(|p| {
                        owner_of(&p.metadata)
                            .is_some_and(|o| (Some(&o.uid) == old_uid.as_ref()) == old)
                    })
                };
                if owners(true) && owners(false) {
                    overlap.store(true, Ordering::SeqCst);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = changes.recv() => {}
                }
            }
        });
    }
    set_image(&c, "batch", "batch:v2");
    c.wait_complete("batch").await;
    assert!(
        !overlap.load(Ordering::SeqCst),
        "old and new pods existed together"
    );
    let events = c.events("ScalingReplicaSet");
    let old_name = old.metadata.name.unwrap();
    assert_eq!(
        events[1],
        format!("Scaled down replica set {old_name} from 3 to 0")
    );
    assert!(events[2].ends_with("from 0 to 3"), "{events:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_scales_but_does_not_roll() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    c.wait_complete("web").await;
    c.store
        .modify::<Deployment, _>("default", "web", |d| {
            let spec = d.spec.as_mut().unwrap();
            spec.paused = Some(true);
            spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:v2".into());
            spec.replicas = Some(4);
        })
        .unwrap();
    let d = c
        .wait_for("the paused deployment scaled", |c| {
            let d = c.deployment("web");
            let status = d.status.clone()?;
            (status.observed_generation == d.metadata.generation
                && status.available_replicas == Some(4))
            .then_some(d)
        })
        .await;
    let progressing = get_condition(d.status.as_ref(), PROGRESSING).unwrap();
    assert_eq!(progressing.reason.as_deref(), Some(dstatus::PAUSED));
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(
        (image_of(&rss[0]), revision::replicas(&rss[0])),
        ("web:v1".into(), 4)
    );

    c.store
        .modify::<Deployment, _>("default", "web", |d| d.spec.as_mut().unwrap().paused = None)
        .unwrap();
    c.wait_complete("web").await;
    let active: Vec<String> = c
        .replica_sets()
        .iter()
        .filter(|rs| revision::replicas(rs) > 0)
        .map(image_of)
        .collect();
    assert_eq!(active, ["web:v2"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_reuses_the_old_replica_set() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    set_image(&c, "web", "web:v2");
    c.wait_complete("web").await;
    set_image(&c, "web", "web:v1");
    let d = c.wait_complete("web").await;
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 2);
    let active = rss.iter().find(|rs| revision::replicas(rs) > 0).unwrap();
    assert_eq!(active.metadata.uid, first.metadata.uid);
    assert_eq!(active.metadata.name, first.metadata.name);
    let annotations = active.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[REVISION], "3");
    assert_eq!(annotations[revision::REVISION_HISTORY], "1");
    assert_eq!(d.metadata.annotations.unwrap()[REVISION], "3");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_history_limit_deletes_the_oldest() {
    let c = Cluster::start(true);
    let mut d = deployment("web", 1, "web:v1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    c.store.create_as(d).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    for image in ["web:v2", "web:v3"] {
        set_image(&c, "web", image);
        c.wait_complete("web").await;
    }
    let images = c
        .wait_for("the oldest replica set deleted", |c| {
            let rss = c.replica_sets();
            (rss.len() == 2).then_some(rss)
        })
        .await;
    assert!(
        images
            .iter()
            .all(|rs| rs.metadata.uid != first.metadata.uid)
    );
    let mut images: Vec<String> = images.iter().map(image_of).collect();
    images.sort();
    assert_eq!(images, ["web:v2", "web:v3"]);
    c.stop().await;
}

/// The fence of the test Deployment is what the rollout test assumes (3 at 25%: +1, -0).
#[test]
fn the_rollout_test_budget() {
    let d = deployment("web", 3, "web:v1");
    let fence = rollout::fenceposts(d.spec.as_ref().unwrap()).unwrap();
    assert_eq!((fence.max_surge, fence.max_unavailable), (1, 0));
}
