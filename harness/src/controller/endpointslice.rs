//! The EndpointSlice controller: for each Service with a selector, the `discovery.k8s.io/v1`
//! EndpointSlices listing the pods behind it (upstream `pkg/controller/endpointslice` and the
//! reconciler of `k8s.io/endpointslice`). kubectl 1.32's `describe service` prints its
//! `Endpoints:` line from these slices, found by the `kubernetes.io/service-name` label, and
//! clients that follow upstream's advice read them instead of the deprecated Endpoints.
//!
//! The slices are derived from the same inputs as the Endpoints and with the same pod rules
//! (`listed`, `address` and `find_port` of [`super::endpoints`]), plus upstream's differences:
//! terminating pods stay listed (`ready: false`, `terminating: true`, `serving` still telling
//! their readiness); every endpoint carries its conditions instead of being sorted into ready
//! and not-ready lists; pods are grouped by the exact ports they resolve, one group per slice,
//! at most 100 endpoints each. A Service without endpoints keeps one empty placeholder slice.
//!
//! Each slice is named by `generateName: <service>-`, carries the Service's labels plus
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, and has the
//! Service as its controller owner, so the store's cascade deletes it with the Service. Only
//! slices managed by this controller are touched: hand-written ones and the API server's
//! `kubernetes` slice are left alone, as upstream leaves them. [`plan`] is the pure decision;
//! the reconciler only lists its inputs and applies its [`Action`]s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::endpoints::{HEADLESS_LABEL, address, find_port, listed, service_selector};
use crate::controller::Reconciler;
use crate::error::{Error, Result};
use crate::object::{Kind, ObjectKey};
use crate::podutil::{controller_ref, is_pod_ready};
use crate::selector::Selector;
use crate::store::{DeleteOptions, Store, WatchEvent};

/// The label naming the Service a slice belongs to (`discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice (`discovery.LabelManagedBy`).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`], upstream's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// One change to the slices of a Service.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this slice (named by its `generateName`).
    Create(EndpointSlice),
    /// Give the slice of this name the labels, ports and endpoints of the given one.
    Update(EndpointSlice),
    /// Delete the slice of this name.
    Delete(String),
}

/// A port as a sortable key: name, number, protocol, appProtocol (upstream's port map key).
type PortKey = (String, Option<i32>, String, Option<String>);

fn port_key(ports: Option<&[EndpointPort]>) -> Vec<PortKey> {
    let mut key: Vec<PortKey> = ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The address type of the Service's slices: its primary IP family.
pub fn address_type(service: &Service) -> &'static str {
    let families = service.spec.as_ref().and_then(|s| s.ip_families.as_ref());
    match families.and_then(|f| f.first()).map(String::as_str) {
        Some("IPv6") => "IPv6",
        _ => "IPv4",
    }
}

/// The ports `pod` serves for `service`, in the Service's order; a port whose target the pod
/// lacks is left out (`getEndpointPorts`).
fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
    ports
        .unwrap_or_default()
        .iter()
        .filter_map(|port| {
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(find_port(pod, port)?),
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of `pod` (`podToEndpoint`), or `None` when it has no address of the
/// Service's family.
fn endpoint(service: &Service, pod: &Pod) -> Option<Endpoint> {
    let address = address(service, pod)?;
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Some(Endpoint {
        addresses: vec![address.ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: address.hostname,
        node_name: address.node_name,
        target_ref: address.target_ref,
        ..Default::default()
    })
}

/// The endpoints of `service` over its candidate `pods` (those matching its selector), grouped
/// by the ports they serve, each group sorted by address and pod name.
pub fn desired_endpoints(
    service: &Service,
    pods: &[&Pod],
) -> BTreeMap<Vec<PortKey>, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| listed(p, true)) {
        let Some(endpoint) = endpoint(service, pod) else {
            continue;
        };
        let ports = endpoint_ports(service, pod);
        let key = port_key(Some(&ports));
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    for (_, endpoints) in groups.values_mut() {
        endpoints.sort_by(|a, b| {
            let name = |e: &Endpoint| e.target_ref.as_ref().and_then(|r| r.name.clone());
            (&a.addresses, name(a)).cmp(&(&b.addresses, name(b)))
        });
    }
    groups
}

/// The labels of the Service's slices (`setEndpointSliceLabels`): the Service's own but the
/// reserved ones, the headless marker, the Service's name and this controller's.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            ![SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    }
    let name = service.metadata.name.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), name);
    labels.insert(MANAGED_BY_LABEL.to_owned(), CONTROLLER_NAME.to_owned());
    labels
}

/// Whether `slice` is owned by this very Service (same uid), as upstream's `ownedBy` asks.
fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.kind == "Service" && r.api_version == "v1")
}

/// What the Service's slices should be, given its candidate `pods` and the slices this
/// controller manages for it now (`existing`): creations first, then updates, then deletions,
/// so that an endpoint moving between slices is never missing from all of them.
///
/// Slices not owned by this Service (one of the same name deleted and recreated), of another
/// address type, or whose port set is no longer wanted are deleted; a port set's slices are
/// reused in name order and only rewritten when their content or labels differ.
pub fn plan(service: &Service, pods: &[&Pod], existing: &[EndpointSlice]) -> Vec<Action> {
    let labels = slice_labels(service);
    let address_type = address_type(service);
    let new_slice = |ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>| EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_ref(service)]),
            ..Default::default()
        },
        address_type: address_type.to_owned(),
        endpoints,
        ports: (!ports.is_empty()).then_some(ports),
    };
    let mut wanted: BTreeMap<Vec<PortKey>, Vec<EndpointSlice>> = desired_endpoints(service, pods)
        .into_iter()
        .map(|(key, (ports, endpoints))| {
            let slices = endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(|chunk| new_slice(ports.clone(), chunk.to_vec()))
                .collect();
            (key, slices)
        })
        .collect();
    if wanted.is_empty() {
        wanted.insert(Vec::new(), vec![new_slice(Vec::new(), Vec::new())]);
    }

    let name_of = |slice: &EndpointSlice| slice.metadata.name.clone().unwrap_or_default();
    let (mut creates, mut updates) = (Vec::new(), Vec::new());
    // Slices to delete, and whether one could be rewritten instead (owned, same type).
    let mut deletes: Vec<(String, bool)> = Vec::new();
    let mut current: BTreeMap<Vec<PortKey>, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut sorted: Vec<&EndpointSlice> = existing.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for slice in sorted {
        if owned_by(slice, service) && slice.address_type == address_type {
            let key = port_key(slice.ports.as_deref());
            current.entry(key).or_default().push(slice);
        } else {
            deletes.push((name_of(slice), false));
        }
    }
    for (key, slices) in wanted {
        let mut reusable = current.remove(&key).unwrap_or_default().into_iter();
        for mut slice in slices {
            match reusable.next() {
                None => creates.push(slice),
                Some(old) => {
                    let same = old.metadata.labels.as_ref() == Some(&labels)
                        && old.ports == slice.ports
                        && old.endpoints == slice.endpoints;
                    if !same {
                        slice.metadata.name = old.metadata.name.clone();
                        updates.push(Action::Update(slice));
                    }
                }
            }
        }
        deletes.extend(reusable.map(|s| (name_of(s), true)));
    }
    deletes.extend(current.into_values().flatten().map(|s| (name_of(s), true)));
    // A slice about to go is rewritten with the content of one about to come instead, so that
    // a Service whose ports change keeps its slice's name (upstream's `finalize`).
    let mut deletions = Vec::new();
    for (name, reusable) in deletes {
        match creates.pop() {
            Some(mut slice) if reusable => {
                slice.metadata.name = Some(name);
                updates.push(Action::Update(slice));
            }
            popped => {
                creates.extend(popped);
                deletions.push(Action::Delete(name));
            }
        }
    }
    let creates = creates.into_iter().map(Action::Create);
    creates.chain(updates).chain(deletions).collect()
}

/// Reconciles the EndpointSlices of Services, keyed by the Service's (namespace, name).
#[derive(Debug)]
pub struct EndpointSliceController {
    store: Arc<Store>,
}

impl EndpointSliceController {
    pub fn new(store: Arc<Store>) -> EndpointSliceController {
        EndpointSliceController { store }
    }

    /// The slices this controller manages for the Service `name`.
    fn managed(&self, namespace: &str, name: &str) -> Vec<EndpointSlice> {
        let labels = BTreeMap::from([
            (SERVICE_NAME_LABEL.to_owned(), name.to_owned()),
            (MANAGED_BY_LABEL.to_owned(), CONTROLLER_NAME.to_owned()),
        ]);
        self.store
            .list_as::<EndpointSlice>(Some(namespace), &Selector::from_map(&labels))
    }

    fn apply(&self, namespace: &str, action: Action) -> Result<()> {
        match action {
            Action::Create(slice) => {
                self.store.create_as(slice)?;
            }
            Action::Update(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                let updated = self
                    .store
                    .modify::<EndpointSlice, _>(namespace, &name, |current| {
                        current.metadata.labels = slice.metadata.labels;
                        current.ports = slice.ports;
                        current.endpoints = slice.endpoints;
                    });
                match updated {
                    // Deleted meanwhile: its deletion brings the Service back to the queue.
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
            Action::Delete(name) => {
                let key = ObjectKey::new(Kind::EndpointSlice, namespace, &name);
                match self.store.delete(&key, DeleteOptions::default()) {
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(())
    }
}

impl Reconciler for EndpointSliceController {
    type Key = (String, String);
    const NAME: &'static str = "endpointslice";

    fn keys_for(&mut self, event: &WatchEvent) -> Vec<Self::Key> {
        let object = &event.object;
        let namespace = object.namespace().to_owned();
        match object.kind() {
            Kind::Service => vec![(namespace, object.name().to_owned())],
            Kind::EndpointSlice => {
                let labels = object.labels();
                match labels.get(SERVICE_NAME_LABEL) {
                    Some(service)
                        if labels.get(MANAGED_BY_LABEL).map(String::as_str)
                            == Some(CONTROLLER_NAME) =>
                    {
                        vec![(namespace, service.clone())]
                    }
                    _ => Vec::new(),
                }
            }
            Kind::Pod => {
                let mut services =
                    super::endpoints::services_selecting(&self.store, &namespace, object.labels());
                // Services that listed the pod before its labels changed.
                let everything = Selector::default();
                for slice in self
                    .store
                    .list_as::<EndpointSlice>(Some(&namespace), &everything)
                {
                    let lists_pod = slice.endpoints.iter().any(|e| {
                        e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(object.name())
                    });
                    let labels = slice.metadata.labels.unwrap_or_default();
                    if lists_pod
                        && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
                        && let Some(service) = labels.get(SERVICE_NAME_LABEL)
                    {
                        services.push(service.clone());
                    }
                }
                services.sort();
                services.dedup();
                services
                    .into_iter()
                    .map(|s| (namespace.clone(), s))
                    .collect()
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
        // A deleted Service's slices go with it: the store cascades along their owner
        // reference, as upstream's garbage collector does.
        let Some(service) = self.store.get_as::<Service>(namespace, name) else {
            return Ok(None);
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
        let existing = self.managed(namespace, name);
        for action in plan(&service, &refs, &existing) {
            self.apply(namespace, action)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
