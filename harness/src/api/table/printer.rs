//! The cells of a Table row per kind but pods (see `pod`), computed as upstream's printers
//! (`pkg/printers/internalversion/printers.go`) do: service ports as `8080:30599/TCP`, endpoints
//! as `10.0.0.1:80,10.0.0.2:80 + 1 more...`, EndpointSlice ports and addresses as `80,443` and
//! `10.0.0.1,10.0.0.2` (`<unset>` when empty), selectors as `app=web,!canary`, `<none>` for
//! empty values.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Event, Namespace, PodTemplateSpec, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::{human_duration, since};
use crate::object::Object;

/// The cells of `object`'s row, one per column of its kind.
pub fn cells(object: &Object, now: Timestamp) -> Vec<Value> {
    let age = json!(since(object.meta().creation_timestamp.as_ref(), now));
    let name = json!(object.name());
    match object {
        Object::Pod(pod) => super::pod::cells(pod, now),
        Object::Deployment(d) => deployment_cells(d, name, age),
        Object::ReplicaSet(rs) => replica_set_cells(rs, name, age),
        Object::Service(svc) => service_cells(svc, name, age),
        Object::Endpoints(ep) => vec![name, json!(format_endpoints(ep)), age],
        Object::EndpointSlice(slice) => endpoint_slice_cells(slice, name, age),
        Object::ConfigMap(cm) => {
            let count = cm.data.as_ref().map_or(0, BTreeMap::len)
                + cm.binary_data.as_ref().map_or(0, BTreeMap::len);
            vec![name, json!(count), age]
        }
        Object::Secret(secret) => secret_cells(secret, name, age),
        Object::Namespace(ns) => namespace_cells(ns, name, age),
        Object::Event(event) => event_cells(event, now),
    }
}

/// Row conditions: upstream marks finished pods `Completed`.
pub fn row_conditions(object: &Object) -> Option<Value> {
    let Object::Pod(pod) = object else {
        return None;
    };
    let (reason, message) = match pod.status.as_ref()?.phase.as_deref()? {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

pub fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".to_owned()
    } else {
        text.to_owned()
    }
}

/// A label selector as upstream prints it: `app=web,tier in (a,b),!canary`, sorted by key.
pub fn format_selector(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "<none>".to_owned();
    };
    let mut terms: Vec<(String, String)> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for expr in selector.match_expressions.iter().flatten() {
        let mut values = expr.values.clone().unwrap_or_default();
        values.sort();
        let term = match expr.operator.as_str() {
            "In" => format!("{} in ({})", expr.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", expr.key, values.join(",")),
            "Exists" => expr.key.clone(),
            "DoesNotExist" => format!("!{}", expr.key),
            other => format!("{} {other} ({})", expr.key, values.join(",")),
        };
        terms.push((expr.key.clone(), term));
    }
    terms.sort();
    terms
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

fn template_cells(
    template: Option<&PodTemplateSpec>,
    selector: Option<&LabelSelector>,
) -> [Value; 3] {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or_default())
        .collect();
    [
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_selector(selector)),
    ]
}

fn deployment_cells(d: &Deployment, name: Value, age: Value) -> Vec<Value> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let mut cells = vec![
        name,
        json!(format!("{}/{desired}", status.ready_replicas.unwrap_or(0))),
        json!(status.updated_replicas.unwrap_or(0)),
        json!(status.available_replicas.unwrap_or(0)),
        age,
    ];
    cells.extend(template_cells(Some(&spec.template), Some(&spec.selector)));
    cells
}

fn replica_set_cells(rs: &ReplicaSet, name: Value, age: Value) -> Vec<Value> {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let mut cells = vec![
        name,
        json!(spec.replicas.unwrap_or(1)),
        json!(status.replicas),
        json!(status.ready_replicas.unwrap_or(0)),
        age,
    ];
    cells.extend(template_cells(spec.template.as_ref(), Some(&spec.selector)));
    cells
}

fn service_cells(svc: &Service, name: Value, age: Value) -> Vec<Value> {
    let spec = svc.spec.clone().unwrap_or_default();
    let type_ = spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_owned());
    let external_ips = spec.external_ips.clone().unwrap_or_default();
    let external = match type_.as_str() {
        "ClusterIP" | "NodePort" => or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .collect();
            ips.extend(external_ips);
            if ips.is_empty() {
                "<pending>".to_owned()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port.filter(|n| *n != 0) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    let selector = spec
        .selector
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        name,
        json!(type_),
        json!(or_none(spec.cluster_ip.as_deref().unwrap_or_default())),
        json!(external),
        json!(or_none(&ports.join(","))),
        age,
        json!(or_none(&selector)),
    ]
}

/// Upstream's `formatEndpoints`: at most three `ip:port`, then `+ N more...`.
pub fn format_endpoints(endpoints: &Endpoints) -> String {
    const MAX: usize = 3;
    let subsets = endpoints.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list = Vec::new();
    let mut count = 0;
    let mut more = false;
    for subset in &subsets {
        let addresses = subset.addresses.clone().unwrap_or_default();
        let ports = subset.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            for address in &addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(address.ip.clone());
            }
            continue;
        }
        for port in &ports {
            count += addresses.len();
            for address in &addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let host = if address.ip.contains(':') {
                    format!("[{}]", address.ip)
                } else {
                    address.ip.clone()
                };
                list.push(format!("{host}:{}", port.port));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn endpoint_slice_cells(slice: &EndpointSlice, name: Value, age: Value) -> Vec<Value> {
    let ports = slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".to_owned(),
        });
    let addresses = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned());
    vec![
        name,
        json!(slice.address_type),
        json!(list_with_more(ports)),
        json!(list_with_more(addresses)),
        age,
    ]
}

/// Upstream's `listWithMoreString`: at most three items, then `+ N more...`; `<unset>` when
/// there are none.
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    for item in items {
        if list.len() < MAX {
            list.push(item);
        }
        count += 1;
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_owned()
    } else {
        joined
    }
}

fn secret_cells(secret: &Secret, name: Value, age: Value) -> Vec<Value> {
    let count = secret.data.as_ref().map_or(0, BTreeMap::len)
        + secret.string_data.as_ref().map_or(0, BTreeMap::len);
    vec![
        name,
        json!(secret.type_.clone().unwrap_or_else(|| "Opaque".to_owned())),
        json!(count),
        age,
    ]
}

fn namespace_cells(ns: &Namespace, name: Value, age: Value) -> Vec<Value> {
    let phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Active".to_owned());
    vec![name, json!(phase), age]
}

fn event_cells(event: &Event, now: Timestamp) -> Vec<Value> {
    let first = match (&event.first_timestamp, &event.event_time) {
        (Some(t), _) => since(Some(t), now),
        (None, Some(micro)) => human_duration(now.duration_since(micro.0).as_secs()),
        (None, None) => "<unknown>".to_owned(),
    };
    let last = match &event.last_timestamp {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let (last, count) = match &event.series {
        Some(series) => (
            series
                .last_observed_time
                .as_ref()
                .map_or(last, |t| human_duration(now.duration_since(t.0).as_secs())),
            series.count.unwrap_or(1),
        ),
        None => (last, event.count.filter(|c| *c != 0).unwrap_or(1)),
    };
    let involved = &event.involved_object;
    let kind = involved.kind.clone().unwrap_or_default().to_lowercase();
    let target = match involved.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let source = event.source.clone().unwrap_or_default();
    let component = source
        .component
        .filter(|c| !c.is_empty())
        .or(event.reporting_component.clone())
        .unwrap_or_default();
    let host = source
        .host
        .filter(|h| !h.is_empty())
        .or(event.reporting_instance.clone())
        .unwrap_or_default();
    let source = match (component.is_empty(), host.is_empty()) {
        (true, _) => String::new(),
        (false, true) => component,
        (false, false) => format!("{component}, {host}"),
    };
    vec![
        json!(last),
        json!(event.type_.clone().unwrap_or_default()),
        json!(event.reason.clone().unwrap_or_default()),
        json!(target),
        json!(involved.field_path.clone().unwrap_or_default()),
        json!(source),
        json!(event.message.clone().unwrap_or_default().trim()),
        json!(first),
        json!(count),
        json!(event.metadata.name.clone().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_endpoints() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
            "ports": [{"port": 8080, "nodePort": 30599}, {"port": 53, "protocol": "UDP"}]}}))
        .unwrap();
        let cells = service_cells(&svc, json!("web"), json!("1s"));
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "8080:30599/TCP,53/UDP");
        assert_eq!(cells[6], "app=web");
        let empty: Endpoints =
            serde_json::from_value(json!({"metadata": {"name": "web"}})).unwrap();
        assert_eq!(format_endpoints(&empty), "<none>");
        let ep: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "127.1.0.2"}, {"ip": "127.1.0.3"}, {"ip": "127.1.0.4"}, {"ip": "127.1.0.5"}],
            "ports": [{"port": 80}]}]})).unwrap();
        assert_eq!(
            format_endpoints(&ep),
            "127.1.0.2:80,127.1.0.3:80,127.1.0.4:80 + 1 more..."
        );
    }

    #[test]
    fn endpoint_slices() {
        let slice = |value: Value| -> EndpointSlice {
            let mut base =
                json!({"metadata": {"name": "web-x2b4c"}, "addressType": "IPv4", "endpoints": []});
            for (k, v) in value.as_object().unwrap() {
                base[k] = v.clone();
            }
            serde_json::from_value(base).unwrap()
        };
        let endpoint = |ip: &str| json!({"addresses": [ip], "conditions": {"ready": false}});
        let cases = [
            (json!({}), "<unset>", "<unset>"),
            (
                json!({"ports": [{"name": "http", "port": 8080}, {"name": "metrics"}, {}],
                       "endpoints": [endpoint("127.1.0.2"), endpoint("127.1.0.3")]}),
                "8080,metrics,*",
                "127.1.0.2,127.1.0.3",
            ),
            (
                json!({"ports": [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}],
                       "endpoints": [endpoint("127.1.0.2"), endpoint("127.1.0.3"),
                                     endpoint("127.1.0.4"), endpoint("127.1.0.5"), endpoint("127.1.0.6")]}),
                "1,2,3 + 1 more...",
                "127.1.0.2,127.1.0.3,127.1.0.4 + 2 more...",
            ),
        ];
        for (value, ports, endpoints) in cases {
            let cells = endpoint_slice_cells(&slice(value), json!("web-x2b4c"), json!("1s"));
            assert_eq!(cells[1], "IPv4");
            assert_eq!(
                (cells[2].as_str(), cells[3].as_str()),
                (Some(ports), Some(endpoints))
            );
        }
    }

    #[test]
    fn selectors_print_sorted() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}))
        .unwrap();
        assert_eq!(
            format_selector(Some(&selector)),
            "app=web,!canary,tier=front"
        );
    }
}
