//! Deployments, ReplicaSets and their pods: S3 (the ownership chain and its names), S4 (a deleted
//! ReplicaSet comes back), S6 (a relabelled pod is orphaned, then adopted back), S9 (maxSurge
//! 100% doubles the pods during an update).

use std::collections::BTreeSet;

use harness::object::Kind;
use harness::podutil;
use harness::runtime::RuntimeKind;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use crate::support::*;

/// Upstream's alphabet for generated names (no vowels, no look-alikes).
const NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

fn generated(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| NAME_ALPHABET.contains(c))
}

fn label(pod: &Pod, key: &str) -> Option<String> {
    pod.metadata.labels.as_ref()?.get(key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_deployment_makes_a_replica_set_that_makes_three_pods() {
    let cluster = start().await;
    apply(
        &cluster,
        &[manifest("cm-hostbot.yml"), manifest("deploy-hostbot.yml")],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    let store = cluster.store();

    // deployment.apps/hostbot   READY 3/3   UP-TO-DATE 3   AVAILABLE 3
    let deploy: Deployment = cluster.get("default", "hostbot").expect("the deployment");
    let status = deploy.status.expect("deployment status");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.updated_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );

    // replicaset.apps/hostbot-<hash>   DESIRED 3   CURRENT 3   READY 3
    let sets = replica_sets(store, "hostbot");
    assert_eq!(sets.len(), 1, "one ReplicaSet: {sets:?}");
    let rs: &ReplicaSet = &sets[0];
    let rs_name = rs.metadata.name.clone().unwrap();
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs_name, format!("hostbot-{hash}"));
    assert!(generated(&hash), "template hash {hash:?}");
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    let rs_status = rs.status.clone().unwrap();
    assert_eq!(
        (
            rs_status.replicas,
            rs_status.fully_labeled_replicas,
            rs_status.ready_replicas,
            rs_status.available_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    let owner = podutil::owner_of(&rs.metadata).expect("the ReplicaSet has a controller");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "hostbot")
    );
    assert_eq!(Some(&owner.uid), deploy.metadata.uid.as_ref());

    // pod/hostbot-<hash>-xxxxx   1/1 Running, each answering with its own name.
    let pods = live_pods(store, "app=hostbot");
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let pod_name = name(pod);
        let suffix = pod_name
            .strip_prefix(&format!("{rs_name}-"))
            .unwrap_or_else(|| panic!("pod {pod_name} is not named after {rs_name}"));
        assert!(
            suffix.len() == 5 && generated(suffix),
            "pod name suffix {suffix:?}"
        );
        assert_eq!(label(pod, "pod-template-hash"), Some(hash.clone()));
        let owner = podutil::owner_of(&pod.metadata).expect("the pod has a controller");
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", rs_name.as_str())
        );
        assert_eq!(podutil::phase(pod), "Running");
        assert!(podutil::is_pod_ready(pod));
        let answer = get_eventually(pod_addr(pod, 80), "/", STEP).await;
        assert_eq!(answer.json()["host"], pod_name.as_str(), "{}", answer.body);
    }

    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_deleted_replica_set_is_recreated_with_its_pods() {
    let cluster = start().await;
    apply(
        &cluster,
        &[manifest("cm-hostbot.yml"), fixture("hostbot-fast.yml")],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    let store = cluster.store();
    let old_rs = replica_sets(store, "hostbot").remove(0);
    let rs_name = old_rs.metadata.name.clone().unwrap();
    let old_uid = old_rs.metadata.uid.clone().unwrap();
    let old_pods: BTreeSet<String> = live_pods(store, "app=hostbot").iter().map(uid).collect();

    // kubectl delete rs hostbot-<hash>
    cluster
        .delete(&key(Kind::ReplicaSet, &rs_name))
        .expect("the ReplicaSet is deleted");

    // The Deployment makes it again (same template, same name, a new object) with new pods,
    // and the old pods go with the old ReplicaSet.
    wait(
        &cluster,
        "a new ReplicaSet with three new ready pods",
        STEP,
        |store| {
            let recreated = store
                .get_as::<ReplicaSet>("default", &rs_name)
                .is_some_and(|rs| rs.metadata.uid.as_deref() != Some(old_uid.as_str()));
            let pods = all_pods(store, "app=hostbot");
            recreated
                && rolled_out(store, "hostbot", 3)
                && pods.iter().all(|p| !old_pods.contains(&uid(p)))
        },
    )
    .await;
    let sets = replica_sets(store, "hostbot");
    assert_eq!(sets.len(), 1, "only the recreated ReplicaSet: {sets:?}");
    for pod in live_pods(store, "app=hostbot") {
        assert!(name(&pod).starts_with(&format!("{rs_name}-")));
        let owner = podutil::owner_of(&pod.metadata).unwrap();
        assert_eq!(Some(&owner.uid), sets[0].metadata.uid.as_ref());
    }

    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_relabelled_pod_is_orphaned_and_replaced_then_adopted_back() {
    let cluster = start().await;
    apply(
        &cluster,
        &[manifest("cm-hostbot.yml"), fixture("hostbot-fast.yml")],
    );
    wait_rolled_out(&cluster, "hostbot", 3).await;
    let store = cluster.store();
    let victim = live_pods(store, "app=hostbot").remove(0);
    let victim_name = name(&victim);

    // kubectl label pod <victim> app=x --overwrite
    let relabel = |value: &str| {
        store
            .modify::<Pod, _>("default", &victim_name, |p| {
                p.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert("app".into(), value.into());
            })
            .expect("the pod is relabelled");
    };
    relabel("x");

    // The ReplicaSet makes a replacement; the relabelled pod is released and keeps running.
    wait(&cluster, "a replacement pod and an orphan", STEP, |store| {
        let pods = ready_pods(store, "app=hostbot");
        let orphan = store.get_as::<Pod>("default", &victim_name);
        pods.len() == 3
            && pods.iter().all(|p| name(p) != victim_name)
            && orphan.is_some_and(|p| podutil::owner_of(&p.metadata).is_none())
            && rolled_out(store, "hostbot", 3)
    })
    .await;
    let orphan: Pod = cluster.get("default", &victim_name).unwrap();
    assert_eq!(uid(&orphan), uid(&victim), "the same pod, not a new one");
    assert!(orphan.metadata.deletion_timestamp.is_none());
    assert_eq!(podutil::phase(&orphan), "Running");
    assert_eq!(restarts(&orphan), 0);
    assert_eq!(label(&orphan, "app").as_deref(), Some("x"));
    let answer = get_eventually(pod_addr(&orphan, 80), "/", STEP).await;
    assert_eq!(answer.json()["host"], victim_name.as_str());
    let replacement: Vec<String> = live_pods(store, "app=hostbot").iter().map(name).collect();

    // kubectl label pod <victim> app=hostbot --overwrite: four pods match, the ReplicaSet
    // adopts the orphan and deletes one.
    relabel("hostbot");
    wait(
        &cluster,
        "three pods again after the adoption",
        STEP,
        |store| {
            let live = live_pods(store, "app=hostbot");
            live.len() == 3
                && live
                    .iter()
                    .all(|p| podutil::owner_of(&p.metadata).is_some_and(|o| o.kind == "ReplicaSet"))
        },
    )
    .await;
    let live: BTreeSet<String> = live_pods(store, "app=hostbot").iter().map(name).collect();
    let deleted: Vec<&String> = replacement
        .iter()
        .chain([&victim_name])
        .filter(|n| !live.contains(*n))
        .collect();
    assert_eq!(
        deleted.len(),
        1,
        "one of the four matching pods was deleted: {deleted:?}"
    );
    // kubectl get events: the ReplicaSet says so (recorded just after the deletion).
    let rs_name = replica_sets(store, "hostbot")[0]
        .metadata
        .name
        .clone()
        .unwrap();
    wait(&cluster, "a SuccessfulDelete event", STEP, |store| {
        events(store, &rs_name)
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete" && m == &format!("Deleted pod: {}", deleted[0]))
    })
    .await;

    shutdown(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_max_surge_100_percent_doubles_the_pods_then_returns_to_ten() {
    // Twenty pods at once: in-process hostbots, as the brief allows for scale.
    let cluster = start_with(RuntimeKind::InProcess).await;
    apply(&cluster, &[fixture("surge100.yml")]);
    wait_rolled_out(&cluster, "nginx-deployment", 10).await;
    let store = cluster.store();
    let old_rs = replica_sets(store, "nginx-deployment")[0]
        .metadata
        .name
        .clone()
        .unwrap();

    // Edit the image and apply: kubectl get pod --watch shows twenty pods at the peak.
    set_image(&cluster, "nginx-deployment", "nginx:1.24.0");
    let mut peak = 0;
    wait(&cluster, "twenty pods during the update", STEP, |store| {
        peak = peak.max(all_pods(store, "app=nginx").len());
        peak >= 20
    })
    .await;
    wait(&cluster, "ten new pods and nothing else", STEP, |store| {
        let count = all_pods(store, "app=nginx").len();
        peak = peak.max(count);
        count == 10 && rolled_out(store, "nginx-deployment", 10)
    })
    .await;
    assert_eq!(peak, 20, "the pod count peaks at twice the replicas");

    let sets = replica_sets(store, "nginx-deployment");
    assert_eq!(sets.len(), 2);
    for rs in &sets {
        let desired = rs.spec.as_ref().unwrap().replicas;
        if rs.metadata.name.as_deref() == Some(old_rs.as_str()) {
            assert_eq!(desired, Some(0), "the old ReplicaSet is scaled to zero");
        } else {
            assert_eq!(desired, Some(10));
        }
    }
    for pod in live_pods(store, "app=nginx") {
        let answer = get_eventually(pod_addr(&pod, 80), "/", STEP).await;
        assert_eq!(answer.json()["version"], "1.24.0", "{}", answer.body);
    }

    shutdown(cluster).await;
}
