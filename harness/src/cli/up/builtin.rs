//! The objects every real cluster has that the API server itself (not a manifest) creates: the
//! `kubernetes` Service in `default` with its hand-written `Endpoints` and `EndpointSlice`
//! (upstream's `EndpointsAdapter`: named `kubernetes`, no managed-by label, so the EndpointSlice
//! controller leaves it alone) pointing at the API, and the `kube-root-ca.crt` ConfigMap (root-ca-cert-publisher) in every namespace, kept there as
//! namespaces come and the ConfigMap is deleted. Tutorials show them in `get all` and `get cm`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use harness::controller::endpointslice::SERVICE_NAME_LABEL;
use harness::error::Error;
use harness::object::{Kind, Object};
use harness::selector::Selector;
use harness::store::{EventType, Store};
use k8s_openapi::api::core::v1::{
    ConfigMap, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Namespace, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{self as discovery, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The ConfigMap upstream's root-ca-cert-publisher puts in every namespace.
pub const ROOT_CA: &str = "kube-root-ca.crt";

fn meta(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
        ..Default::default()
    }
}

/// The `kubernetes` Service (443 named `https`, no selector) and its Endpoints at `api`.
pub fn kubernetes_service(api: SocketAddr) -> (Service, Endpoints) {
    let labels = [("component", "apiserver"), ("provider", "kubernetes")];
    let service = Service {
        metadata: meta("default", "kubernetes", &labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(i32::from(api.port()))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let endpoints = Endpoints {
        metadata: meta(
            "default",
            "kubernetes",
            &[("endpointslice.kubernetes.io/skip-mirror", "true")],
        ),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: api.ip().to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: i32::from(api.port()),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    };
    (service, endpoints)
}

/// The `kubernetes` EndpointSlice at `api`, as the API server derives it from its Endpoints
/// (`endpointSliceFromEndpoints`): ready, with the Endpoints' port.
pub fn kubernetes_slice(api: SocketAddr) -> EndpointSlice {
    let address_type = if api.is_ipv6() { "IPv6" } else { "IPv4" };
    EndpointSlice {
        metadata: meta(
            "default",
            "kubernetes",
            &[(SERVICE_NAME_LABEL, "kubernetes")],
        ),
        address_type: address_type.into(),
        endpoints: vec![discovery::Endpoint {
            addresses: vec![api.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ports: Some(vec![discovery::EndpointPort {
            name: Some("https".into()),
            port: Some(i32::from(api.port())),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

/// The `kube-root-ca.crt` ConfigMap of `namespace`, holding the API's CA.
pub fn root_ca(namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(namespace, ROOT_CA, &[]),
        data: Some(BTreeMap::from([("ca.crt".to_owned(), ca_pem.to_owned())])),
        ..Default::default()
    }
}

/// Creates `object` unless it exists already.
fn ensure(store: &Store, object: Object) -> harness::error::Result<()> {
    match store.create(object) {
        Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Creates the `kubernetes` Service, Endpoints and EndpointSlice, and the root CA in every
/// namespace there is.
pub fn seed(store: &Store, api: SocketAddr, ca_pem: &str) -> harness::error::Result<()> {
    let (service, endpoints) = kubernetes_service(api);
    ensure(store, service.into())?;
    ensure(store, endpoints.into())?;
    ensure(store, kubernetes_slice(api).into())?;
    publish_all(store, ca_pem);
    Ok(())
}

fn publish(store: &Store, namespace: &str, ca_pem: &str) {
    if let Err(err) = ensure(store, root_ca(namespace, ca_pem).into()) {
        // A namespace being deleted refuses new objects; that is fine.
        tracing::debug!(%err, "cannot publish {ROOT_CA} in namespace \"{namespace}\"");
    }
}

fn publish_all(store: &Store, ca_pem: &str) {
    for ns in store.list_as::<Namespace>(None, &Selector::default()) {
        if ns.metadata.deletion_timestamp.is_none() {
            publish(
                store,
                ns.metadata.name.as_deref().unwrap_or_default(),
                ca_pem,
            );
        }
    }
}

/// Keeps `kube-root-ca.crt` in every namespace: new namespaces get it, a deleted one comes back.
/// Runs until `cancel` fires.
pub async fn publish_root_ca(store: Arc<Store>, ca_pem: String, cancel: CancellationToken) {
    let mut changes = store.subscribe();
    // Namespaces created between `seed` and the subscription.
    publish_all(&store, &ca_pem);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = changes.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => {
                publish_all(&store, &ca_pem);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let object = &event.object;
        let namespace = match (object.kind(), event.event_type) {
            (Kind::Namespace, EventType::Added) => object.name(),
            (Kind::ConfigMap, EventType::Deleted) if object.name() == ROOT_CA => object.namespace(),
            _ => continue,
        };
        let alive = store
            .get_as::<Namespace>("", namespace)
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
        if alive {
            publish(&store, namespace, &ca_pem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";

    #[test]
    fn seed_creates_the_service_its_endpoints_and_a_root_ca_per_namespace() {
        let store = Store::new();
        let api: SocketAddr = "127.0.0.1:34567".parse().unwrap();
        seed(&store, api, CA).unwrap();
        seed(&store, api, CA).unwrap();
        let service = store.get_as::<Service>("default", "kubernetes").unwrap();
        let spec = service.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert!(spec.selector.is_none_or(|s| s.is_empty()));
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
        let endpoints = store.get_as::<Endpoints>("default", "kubernetes").unwrap();
        let subset = &endpoints.subsets.unwrap()[0];
        assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
        assert_eq!(subset.ports.as_ref().unwrap()[0].port, 34567);
        let slice = store
            .get_as::<EndpointSlice>("default", "kubernetes")
            .unwrap();
        let labels = slice.metadata.labels.unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "kubernetes");
        assert_eq!(labels.len(), 1);
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.endpoints[0].addresses, ["127.0.0.1"]);
        assert_eq!(slice.ports.unwrap()[0].port, Some(34567));
        for ns in ["default", "kube-system"] {
            let cm = store.get_as::<ConfigMap>(ns, ROOT_CA).unwrap();
            assert_eq!(cm.data.unwrap()["ca.crt"], CA);
        }
    }

    #[tokio::test]
    async fn new_namespaces_get_the_root_ca_and_a_deleted_one_returns() {
        let store = Store::new();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(publish_root_ca(store.clone(), CA.into(), cancel.clone()));
        let wait_for = |ns: &'static str| {
            let store = store.clone();
            async move {
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                while store.get_as::<ConfigMap>(ns, ROOT_CA).is_none() {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no {ROOT_CA} in {ns}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        };
        wait_for("default").await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("shop".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        store.create(ns.into()).unwrap();
        wait_for("shop").await;
        let key = harness::object::ObjectKey::new(Kind::ConfigMap, "shop", ROOT_CA);
        store.delete(&key, Default::default()).unwrap();
        wait_for("shop").await;
        cancel.cancel();
        task.await.unwrap();
    }
}
