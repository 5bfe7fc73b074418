//! The endpoints controller: for each Service with a selector, an `Endpoints` object of the same
//! name listing the pods behind it (upstream `pkg/controller/endpoint`).
//!
//! A pod is listed when it matches the selector, has an IP, has not finished and is not being
//! deleted (unless `publishNotReadyAddresses`): under `addresses` when Ready, under
//! `notReadyAddresses` otherwise. Each Service port resolves per pod (a number, or a container
//! port name looked up in that pod; a pod without the name is skipped for that port), and
//! addresses are grouped into subsets by the set of ports they serve (`RepackSubsets`). With no
//! address the object has no subsets, which kubectl shows as `<none>`. Services without a
//! selector are left alone: their Endpoints are written by hand. Writes happen only on change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controller::Reconciler;
use crate::error::{Error, Result};
use crate::object::{Kind, ObjectKey};
use crate::podutil::{is_pod_ready, is_pod_terminal};
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store, WatchEvent};

/// The label upstream puts on the Endpoints (and EndpointSlices) of a headless Service.
pub(crate) const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The port a Service port reaches on `pod`: `targetPort` as a number, or the container port of
/// that name and protocol (regular containers, then restartable init containers); `None` when the
/// pod has no such port (`podutil.FindPort`).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Whether `pod` belongs in the Endpoints at all (`ShouldPodBeInEndpoints`). The Endpoints
/// include terminating pods only with `publishNotReadyAddresses`; EndpointSlices always do.
pub(crate) fn listed(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    !is_pod_terminal(pod)
        && has_ip
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's address for the Service's IP family (`podToEndpointAddressForService`).
pub(crate) fn address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = service.spec.as_ref();
    let want_v6 = spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .is_some_and(|f| f == "IPv6");
    let status = pod.status.as_ref()?;
    let candidates = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(status.pod_ip.as_deref());
    let ip = candidates
        .filter(|ip| !ip.is_empty())
        .find(|ip| ip.contains(':') == want_v6)?;
    let pod_spec = pod.spec.as_ref();
    let node_name = pod_spec
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let service_name = service.metadata.name.as_deref();
    let hostname = pod_spec
        .filter(|s| {
            s.hostname.as_deref().is_some_and(|h| !h.is_empty())
                && s.subdomain.as_deref() == service_name
                && pod.metadata.namespace == service.metadata.namespace
        })
        .and_then(|s| s.hostname.clone());
    Some(EndpointAddress {
        ip: ip.to_owned(),
        hostname,
        node_name,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    })
}

/// An `EndpointPort` as a sortable key (name, port, protocol, appProtocol).
type PortKey = (Option<String>, i32, Option<String>, Option<String>);
/// An address identity as upstream keys it: IP and pod uid.
type AddressKey = (String, String);

/// The subsets for `service` over the candidate `pods` (those matching its selector).
pub fn desired_subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.unwrap_or_default();
    // port -> address -> ready, as `mapAddressByPort` accumulates it.
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut add = |port: PortKey, address: &EndpointAddress, ready: bool| {
        let uid = address
            .target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default();
        let key = (address.ip.clone(), uid);
        addresses
            .entry(key.clone())
            .or_insert_with(|| address.clone());
        let entry = by_port.entry(port).or_default().entry(key).or_insert(ready);
        *entry |= ready;
    };
    for pod in pods.iter().filter(|p| listed(p, tolerate_unready)) {
        let Some(address) = address(service, pod) else {
            continue;
        };
        let ready = tolerate_unready || is_pod_ready(pod);
        if ports.is_empty() {
            if headless {
                add((None, -1, None, None), &address, ready);
            }
            continue;
        }
        for port in &ports {
            let Some(number) = find_port(pod, port) else {
                continue;
            };
            let key = (
                port.name.clone(),
                number,
                Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                port.app_protocol.clone(),
            );
            add(key, &address, ready);
        }
    }
    // Group ports by the exact set of (address, readiness) that serves them.
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, set) in by_port {
        let ports = groups.entry(set.into_iter().collect()).or_default();
        if port.1 > 0 {
            ports.push(port);
        }
    }
    groups
        .into_iter()
        .map(|(set, mut ports)| {
            ports.sort_by(|a, b| (a.1, &a.0, &a.2).cmp(&(b.1, &b.0, &b.2)));
            let (ready, not_ready): (Vec<_>, Vec<_>) = set.into_iter().partition(|(_, r)| *r);
            let list = |v: Vec<(AddressKey, bool)>| {
                let out: Vec<EndpointAddress> =
                    v.into_iter().map(|(k, _)| addresses[&k].clone()).collect();
                (!out.is_empty()).then_some(out)
            };
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .map(|(name, port, protocol, app_protocol)| EndpointPort {
                    name,
                    port,
                    protocol,
                    app_protocol,
                })
                .collect();
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// The labels of a Service's Endpoints: the Service's, plus the headless marker.
fn endpoint_labels(service: &Service) -> Option<BTreeMap<String, String>> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    let headless = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    (!labels.is_empty()).then_some(labels)
}

/// Reconciles the Endpoints of Services, keyed by the Service's (namespace, name).
#[derive(Debug)]
pub struct EndpointsController {
    store: Arc<Store>,
}

impl EndpointsController {
    pub fn new(store: Arc<Store>) -> EndpointsController {
        EndpointsController { store }
    }
}

/// The selector of a Service, if it has a non-empty one.
pub(crate) fn service_selector(service: &Service) -> Option<Selector> {
    let selector = service.spec.as_ref()?.selector.as_ref()?;
    (!selector.is_empty()).then(|| Selector::from_map(selector))
}

/// The names of the Services in `namespace` whose selector matches `labels`: those a pod with
/// these labels is behind.
pub(crate) fn services_selecting(
    store: &Store,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<String> {
    store
        .list_as::<Service>(Some(namespace), &Selector::default())
        .into_iter()
        .filter(|s| service_selector(s).is_some_and(|sel| sel.matches(labels)))
        .filter_map(|s| s.metadata.name)
        .collect()
}

impl Reconciler for EndpointsController {
    type Key = (String, String);
    const NAME: &'static str = "endpoints";

    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key> {
        let object = &event.object;
        let namespace = object.namespace().to_owned();
        match object.kind() {
            Kind::Service | Kind::Endpoints => vec![(namespace, object.name().to_owned())],
            Kind::Pod => {
                let mut keys: Vec<Self::Key> =
                    services_selecting(&self.store, &namespace, object.labels())
                        .into_iter()
                        .map(|name| (namespace.clone(), name))
                        .collect();
                // Services that listed the pod before its labels changed.
                for ep in self
                    .store
                    .list_as::<Endpoints>(Some(&namespace), &Selector::default())
                {
                    let lists_pod = ep.subsets.iter().flatten().any(|s| {
                        s.addresses
                            .iter()
                            .flatten()
                            .chain(s.not_ready_addresses.iter().flatten())
                            .any(|a| {
                                a.target_ref.as_ref().and_then(|r| r.name.as_deref())
                                    == Some(object.name())
                            })
                    });
                    if lists_pod {
                        keys.push((
                            namespace.clone(),
                            ep.metadata.name.clone().unwrap_or_default(),
                        ));
                    }
                }
                keys
            }
            _ => Vec::new(),
        }
    }

    fn all_keys(&mut self) -> Vec<Self::Key> {
        self.store
            .list(Kind::Service, None)
            .iter()
            .map(|s| (s.namespace().to_owned(), s.name().to_owned()))
            .collect()
    }

    fn reconcile(&mut self, (namespace, name): &Self::Key) -> Result<Option<Duration>> {
        let Some(service) = self.store.get_as::<Service>(namespace, name) else {
            // The Service is gone: so are its Endpoints.
            let key = ObjectKey::new(Kind::Endpoints, namespace, name);
            return match self.store.delete(&key, DeleteOptions::default()) {
                Ok(_) | Err(Error::NotFound(_)) => Ok(None),
                Err(err) => Err(err),
            };
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Ok(None);
        }
        let Some(selector) = service_selector(&service) else {
            return Ok(None);
        };
        let pods = self.store.list_as::<Pod>(Some(namespace), &selector);
        let refs: Vec<&Pod> = pods.iter().collect();
        let subsets = desired_subsets(&service, &refs);
        let subsets = (!subsets.is_empty()).then_some(subsets);
        let labels = endpoint_labels(&service);
        match self.store.get_as::<Endpoints>(namespace, name) {
            Some(current) => {
                if current.subsets == subsets && current.metadata.labels == labels {
                    return Ok(None);
                }
                self.store.modify::<Endpoints, _>(namespace, name, |ep| {
                    ep.subsets = subsets;
                    ep.metadata.labels = labels;
                })?;
            }
            None => {
                let endpoints = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.clone()),
                        labels,
                        ..Default::default()
                    },
                    subsets,
                };
                match self.store.create_as(endpoints) {
                    // Created by someone meanwhile: the next event brings us back.
                    Ok(_) | Err(Error::AlreadyExists(_)) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
