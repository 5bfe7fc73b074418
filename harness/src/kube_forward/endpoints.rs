//! [`ServiceEndpoints`]: the ready endpoints of one Service, kept current by a watch on its
//! Endpoints through the API, and the round-robin pick of a pod and port for each new
//! connection. A watch (not a lookup per connection) keeps the pick cheap and follows a rollout
//! within milliseconds of the endpoints controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service, ServicePort};
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long to wait before listing again after a failed watch.
const RETRY: Duration = Duration::from_millis(200);
/// Watches end after this long and start again from the last version.
const WATCH_SECONDS: u32 = 290;

/// The Service's ports and its Endpoints' subsets, as last seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub ports: Vec<ServicePort>,
    pub subsets: Vec<EndpointSubset>,
}

/// The endpoints of one Service, kept current in the background.
pub struct ServiceEndpoints {
    service: String,
    current: watch::Receiver<Arc<Snapshot>>,
    next: AtomicUsize,
}

impl ServiceEndpoints {
    /// Reads the Service and its Endpoints and keeps watching them until `cancel` fires. A
    /// missing Service is an error naming it.
    pub async fn watch(
        client: kube::Client,
        namespace: &str,
        service: &str,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<ServiceEndpoints>> {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let endpoints: Api<Endpoints> = Api::namespaced(client, namespace);
        let (snapshot, version) = list(&services, &endpoints, service)
            .await
            .with_context(|| format!("service {service:?} in namespace {namespace:?}"))?;
        let (publish, current) = watch::channel(Arc::new(snapshot));
        tracker.spawn(keep_current(
            services,
            endpoints,
            service.to_owned(),
            version,
            publish,
            cancel,
        ));
        Ok(Arc::new(ServiceEndpoints {
            service: service.to_owned(),
            current,
            next: AtomicUsize::new(0),
        }))
    }

    /// The Service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The next ready pod and pod port behind `service_port`, round-robin.
    pub fn pick(&self, service_port: u16) -> Result<(String, u16), String> {
        let snapshot = self.current.borrow().clone();
        let targets = targets(&self.service, &snapshot, service_port)?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % targets.len();
        Ok(targets[i].clone())
    }

    /// The pod port `service_port` reaches now, if any pod is ready (for kubectl's
    /// `Forwarding from 127.0.0.1:8080 -> 80` line).
    pub fn pod_port(&self, service_port: u16) -> Option<u16> {
        let snapshot = self.current.borrow().clone();
        targets(&self.service, &snapshot, service_port)
            .ok()
            .and_then(|t| t.first().map(|(_, port)| *port))
    }
}

/// Every ready (pod, port) behind `service_port`, sorted: the endpoint port with the service
/// port's name (a one-port Service may leave both unnamed).
pub fn targets(
    service: &str,
    snapshot: &Snapshot,
    service_port: u16,
) -> Result<Vec<(String, u16)>, String> {
    let spec = snapshot
        .ports
        .iter()
        .find(|p| p.port == i32::from(service_port))
        .ok_or_else(|| {
            format!("service {service:?} does not have a service port {service_port}")
        })?;
    let name = spec.name.clone().unwrap_or_default();
    let mut targets = Vec::new();
    for subset in &snapshot.subsets {
        let port = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == name);
        let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Some(pod) = address.target_ref.as_ref().and_then(|r| r.name.clone()) {
                targets.push((pod, port));
            }
        }
    }
    if targets.is_empty() {
        return Err(format!("service {service:?} has no ready endpoints"));
    }
    targets.sort();
    Ok(targets)
}

/// The Service's ports, the Endpoints' subsets and the version to watch from.
async fn list(
    services: &Api<Service>,
    endpoints: &Api<Endpoints>,
    service: &str,
) -> anyhow::Result<(Snapshot, String)> {
    let spec = services.get(service).await?.spec.unwrap_or_default();
    let params = ListParams::default().fields(&format!("metadata.name={service}"));
    let list = endpoints.list(&params).await?;
    let version = list.metadata.resource_version.clone().unwrap_or_default();
    let subsets = list
        .items
        .into_iter()
        .next()
        .and_then(|e| e.subsets)
        .unwrap_or_default();
    Ok((
        Snapshot {
            ports: spec.ports.unwrap_or_default(),
            subsets,
        },
        version,
    ))
}

/// Watches the Endpoints (listing again after a failure) and publishes every change.
async fn keep_current(
    services: Api<Service>,
    endpoints: Api<Endpoints>,
    service: String,
    mut version: String,
    publish: watch::Sender<Arc<Snapshot>>,
    cancel: CancellationToken,
) {
    let fields = format!("metadata.name={service}");
    let update = |subsets: Option<Vec<EndpointSubset>>| {
        publish.send_if_modified(|current| {
            let subsets = subsets.unwrap_or_default();
            if current.subsets == subsets {
                return false;
            }
            *current = Arc::new(Snapshot {
                ports: current.ports.clone(),
                subsets,
            });
            true
        });
    };
    loop {
        if version.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
            match list(&services, &endpoints, &service).await {
                Ok((snapshot, listed)) => {
                    publish.send_if_modified(|current| {
                        let changed = **current != snapshot;
                        *current = Arc::new(snapshot);
                        changed
                    });
                    version = listed;
                }
                Err(err) => {
                    tracing::debug!(%err, service, "listing endpoints failed");
                    continue;
                }
            }
        }
        let params = WatchParams::default()
            .fields(&fields)
            .timeout(WATCH_SECONDS);
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            stream = endpoints.watch(&params, &version) => stream,
        };
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(%err, service, "watching endpoints failed");
                version.clear();
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                Some(Ok(WatchEvent::Added(e) | WatchEvent::Modified(e))) => {
                    version = e.metadata.resource_version.unwrap_or_default();
                    update(e.subsets);
                }
                Some(Ok(WatchEvent::Deleted(e))) => {
                    version = e.metadata.resource_version.unwrap_or_default();
                    update(None);
                }
                Some(Ok(WatchEvent::Bookmark(b))) => version = b.metadata.resource_version,
                Some(Ok(WatchEvent::Error(err))) => {
                    tracing::debug!(?err, service, "endpoints watch error");
                    version.clear();
                    break;
                }
                Some(Err(err)) => {
                    tracing::debug!(%err, service, "endpoints watch failed");
                    version.clear();
                    break;
                }
                // The watch timed out: carry on from the last version.
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn snapshot(ports: serde_json::Value, subsets: serde_json::Value) -> Snapshot {
        Snapshot {
            ports: serde_json::from_value(ports).unwrap(),
            subsets: serde_json::from_value(subsets).unwrap(),
        }
    }

    fn address(pod: &str) -> serde_json::Value {
        json!({"ip": "127.0.0.9", "targetRef": {"kind": "Pod", "name": pod}})
    }

    #[test]
    fn targets_follow_the_service_port_name() {
        let s = snapshot(
            json!([{"name": "http", "port": 80}, {"name": "admin", "port": 81}]),
            json!([{
                "addresses": [address("b"), address("a"), {"ip": "127.0.0.8"}],
                "notReadyAddresses": [address("c")],
                "ports": [{"name": "admin", "port": 9090}, {"name": "http", "port": 8080}]
            }]),
        );
        assert_eq!(
            targets("web", &s, 80),
            Ok(vec![("a".into(), 8080), ("b".into(), 8080)])
        );
        assert_eq!(
            targets("web", &s, 81),
            Ok(vec![("a".into(), 9090), ("b".into(), 9090)])
        );
        let err = targets("web", &s, 82).unwrap_err();
        assert!(err.contains("does not have a service port 82"), "{err}");
    }

    #[test]
    fn unnamed_ports_and_empty_endpoints() {
        let s = snapshot(
            json!([{"port": 80}]),
            json!([{"addresses": [address("a")], "ports": [{"port": 8080}]}]),
        );
        assert_eq!(targets("web", &s, 80), Ok(vec![("a".into(), 8080)]));
        let empty = snapshot(json!([{"port": 80}]), json!([]));
        let err = targets("web", &empty, 80).unwrap_err();
        assert_eq!(err, "service \"web\" has no ready endpoints");
    }
}
