//! Endpoints and EndpointSlices, the Reloader convention, and shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_ready_pods_and_selectors() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels("web")),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    c.store.create_as(service).unwrap();
    let addresses = |c: &Cluster| {
        let ep = c.store.get_as::<Endpoints>("default", "web")?;
        let subsets = ep.subsets.unwrap_or_default();
        let count = |f: fn(&k8s_openapi::api::core::v1::EndpointSubset) -> usize| {
            subsets.iter().map(f).sum::<usize>()
        };
        Some((
            count(|s| s.addresses.as_ref().map_or(0, Vec::len)),
            count(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)),
        ))
    };
    c.wait_for("two ready addresses", |c| {
        (addresses(c)? == (2, 0)).then_some(())
    })
    .await;

    c.auto_ready.store(false, Ordering::SeqCst);
    let pod = c.pods().remove(0).metadata.name.unwrap();
    set_ready(&c.store, "default", &pod, false);
    c.wait_for("one address not ready", |c| {
        (addresses(c)? == (1, 1)).then_some(())
    })
    .await;

    // A selector typo: no endpoints at all.
    c.store
        .modify::<Service, _>("default", "web", |s| {
            s.spec.as_mut().unwrap().selector = Some(labels("wbe"));
        })
        .unwrap();
    c.wait_for("no subsets", |c| {
        let ep = c.store.get_as::<Endpoints>("default", "web")?;
        ep.subsets.is_none().then_some(())
    })
    .await;

    c.store
        .delete(
            &ObjectKey::new(Kind::Service, "default", "web"),
            DeleteOptions::default(),
        )
        .unwrap();
    c.wait_for("the endpoints deleted with the service", |c| {
        c.store
            .get_as::<Endpoints>("default", "web")
            .is_none()
            .then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_follow_the_pods_and_go_with_the_service() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    use crate::controller::endpointslice::SERVICE_NAME_LABEL;

    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 2, "web:v1")).unwrap();
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels("web")),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    c.store.create_as(service).unwrap();
    let slices = |c: &Cluster| {
        let by_service = BTreeMap::from([(SERVICE_NAME_LABEL.to_owned(), "web".to_owned())]);
        c.store
            .list_as::<EndpointSlice>(Some("default"), &Selector::from_map(&by_service))
    };
    // (name, ready endpoints, not-ready endpoints) of the one slice.
    let counts = |c: &Cluster| {
        let [slice] = slices(c).try_into().ok()?;
        let ready = |want: bool| {
            let ready = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
                e.conditions.as_ref().and_then(|c| c.ready) == Some(want)
            };
            slice.endpoints.iter().filter(ready).count()
        };
        Some((slice.metadata.name.clone()?, ready(true), ready(false)))
    };
    let (name, ..) = c
        .wait_for("a slice with two ready endpoints", |c| {
            counts(c).filter(|(_, r, n)| (*r, *n) == (2, 0))
        })
        .await;
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "{name}"
    );

    c.auto_ready.store(false, Ordering::SeqCst);
    let pod = c.pods().remove(0).metadata.name.unwrap();
    set_ready(&c.store, "default", &pod, false);
    c.wait_for("the same slice with one endpoint not ready", |c| {
        counts(c).filter(|(n, r, nr)| (n, *r, *nr) == (&name, 1, 1))
    })
    .await;

    // A slice deleted by hand comes back, under a new name.
    let key = ObjectKey::new(Kind::EndpointSlice, "default", &name);
    c.store.delete(&key, DeleteOptions::default()).unwrap();
    c.wait_for("a new slice", |c| {
        counts(c).filter(|(n, r, nr)| n != &name && (*r, *nr) == (1, 1))
    })
    .await;

    c.store
        .delete(
            &ObjectKey::new(Kind::Service, "default", "web"),
            DeleteOptions::default(),
        )
        .unwrap();
    c.wait_for("the slices deleted with the service", |c| {
        slices(c).is_empty().then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_change_restarts_annotated_deployments() {
    let c = Cluster::start(true);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("hello-config".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("PORT".to_owned(), "8080".to_owned())])),
        ..Default::default()
    };
    c.store.create_as(cm).unwrap();
    let with_config = |name: &str, annotated: bool| {
        let mut d = deployment(name, 1, "web:v1");
        if annotated {
            d.metadata.annotations = Some(BTreeMap::from([(
                "reloader.stakater.com/auto".to_owned(),
                "true".to_owned(),
            )]));
        }
        d.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .env_from = Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "hello-config".into(),
                optional: None,
            }),
            ..Default::default()
        }]);
        d
    };
    c.store.create_as(with_config("reloaded", true)).unwrap();
    c.store.create_as(with_config("plain", false)).unwrap();
    c.wait_complete("reloaded").await;
    c.wait_complete("plain").await;

    c.store
        .modify::<ConfigMap, _>("default", "hello-config", |cm| {
            cm.data
                .as_mut()
                .unwrap()
                .insert("PORT".into(), "9090".into());
        })
        .unwrap();
    let d = c
        .wait_for("a rollout of the annotated deployment", |c| {
            let d = c.deployment("reloaded");
            (d.metadata.annotations.as_ref()?.get(REVISION)? == "2").then_some(d)
        })
        .await;
    let env = d.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert_eq!(env[0].name, "STAKATER_HELLO_CONFIG_CONFIGMAP");
    c.wait_complete("reloaded").await;
    assert_eq!(
        c.events("Reloaded"),
        [
            "Changes detected in 'hello-config' of type 'CONFIGMAP' in namespace 'default', Updated 'reloaded' of type 'Deployment' in namespace 'default'"
        ]
    );
    let plain = c.deployment("plain");
    assert_eq!(
        plain.metadata.annotations.unwrap()[REVISION],
        "1",
        "not annotated, not restarted"
    );
    assert_eq!(plain.metadata.generation, Some(1));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_stop_when_cancelled() {
    let c = Cluster::start(true);
    c.store.create_as(deployment("web", 1, "web:v1")).unwrap();
    c.wait_complete("web").await;
    let tracker = c.tracker.clone();
    c.stop().await;
    assert!(tracker.is_closed() && tracker.is_empty());
}
