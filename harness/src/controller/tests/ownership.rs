//! Ownership: a deleted ReplicaSet comes back, an orphan is adopted, a relabelled pod is released
//! and readopted.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_replica_set_is_recreated() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let first = c.replica_sets().remove(0);
    let key = ObjectKey::new(
        Kind::ReplicaSet,
        "default",
        first.metadata.name.as_deref().unwrap(),
    );
    c.store.delete(&key, DeleteOptions::default()).unwrap();
    c.wait_for("a new replica set with three ready pods", |c| {
        let rss = c.replica_sets();
        let rs = rss.first()?;
        let pods = c.pods();
        (rss.len() == 1
            && rs.metadata.uid != first.metadata.uid
            && rs.metadata.name == first.metadata.name
            && owned_by(&pods, rs)
                .iter()
                .filter(|p| is_pod_ready(p))
                .count()
                == 3
            && pods.len() == 3)
            .then_some(())
    })
    .await;
    c.wait_complete("web").await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_replica_set_with_the_template_is_adopted() {
    let c = Cluster::start(true);
    let d = deployment("web", 3, "web:v1");
    let spec = d.spec.clone().unwrap();
    let orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-manual".into()),
            namespace: Some("default".into()),
            labels: Some(labels("web")),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(2),
            selector: spec.selector.clone(),
            template: Some(spec.template.clone()),
            min_ready_seconds: None,
        }),
        status: None,
    };
    c.store.create_as(orphan).unwrap();
    c.store.create_as(d).unwrap();
    let d = c.wait_complete("web").await;
    let rss = c.replica_sets();
    assert_eq!(rss.len(), 1, "no second ReplicaSet");
    let rs = &rss[0];
    assert_eq!(rs.metadata.name.as_deref(), Some("web-manual"));
    assert_eq!(
        owner_of(&rs.metadata).map(|o| &o.uid),
        d.metadata.uid.as_ref()
    );
    assert_eq!(revision::replicas(rs), 3);
    assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabelled_pod_is_released_replaced_and_readopted() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 3, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let rs = c.replica_sets().remove(0);
    let victim = c.pods().remove(0).metadata.name.unwrap();

    let mut original = BTreeMap::new();
    c.store
        .modify::<Pod, _>("default", &victim, |p| {
            let l = p.metadata.labels.as_mut().unwrap();
            original = l.clone();
            l.insert("app".into(), "x".into());
        })
        .unwrap();
    c.wait_for("the pod released and replaced", |c| {
        let pods = c.pods();
        let released = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(victim.as_str()))
            .is_some_and(|p| owner_of(&p.metadata).is_none() && is_pod_active(p));
        (released
            && owned_by(&pods, &rs)
                .iter()
                .filter(|p| is_pod_ready(p))
                .count()
                == 3)
            .then_some(())
    })
    .await;
    assert_eq!(c.pods().len(), 4);

    c.store
        .modify::<Pod, _>("default", &victim, |p| {
            p.metadata.labels = Some(original.clone())
        })
        .unwrap();
    c.wait_for("one pod deleted after readoption", |c| {
        let pods = c.pods();
        let deleted = c.events("SuccessfulDelete").len();
        (pods.len() == 3 && owned_by(&pods, &rs).len() == 3 && deleted == 1).then_some(())
    })
    .await;
    c.stop().await;
}
