//! What the Service proxy should be doing for one Service, decided from the Service and its
//! Endpoints alone: pure functions, so the rules are table-tested without sockets.
//!
//! - [`needs`] / [`fill`]: the cluster IP and NodePorts the API server would have allocated.
//! - [`plan`]: per TCP service port, where to listen and which ready endpoints to balance over.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Service, ServicePort};

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// The proxy's view of one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePlan {
    /// Where the Service's ports listen; `None` for headless and ExternalName Services and while
    /// the cluster IP is not allocated yet.
    pub cluster_ip: Option<IpAddr>,
    /// The ClientIP session-affinity timeout, when affinity is on.
    pub affinity: Option<Duration>,
    /// The TCP ports, in spec order. Other protocols are not proxied.
    pub ports: Vec<PortPlan>,
}

/// One TCP service port.
#[derive(Clone, Debug, PartialEq)]
pub struct PortPlan {
    /// The port's name (empty when unnamed).
    pub name: String,
    /// `spec.ports[].port`.
    pub port: u16,
    /// `spec.ports[].nodePort` for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// The ready endpoints (address and endpoint port), in Endpoints order, without duplicates.
    pub backends: Vec<SocketAddr>,
}

impl PortPlan {
    /// The addresses to listen on: `clusterIP:port` and `127.0.0.1:nodePort`.
    pub fn listen_addrs(&self, cluster_ip: Option<IpAddr>) -> Vec<SocketAddr> {
        let mut addrs = Vec::with_capacity(2);
        if let Some(ip) = cluster_ip {
            addrs.push(SocketAddr::new(ip, self.port));
        }
        if let Some(node_port) = self.node_port {
            addrs.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), node_port));
        }
        addrs
    }
}

/// What is still to be allocated for a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub cluster_ip: bool,
    pub node_ports: usize,
}

impl Needs {
    pub fn any(self) -> bool {
        self.cluster_ip || self.node_ports > 0
    }
}

fn service_type(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

fn has_node_ports(service: &Service) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

fn ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

fn unset_cluster_ip(service: &Service) -> bool {
    let ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    ip.is_none_or(str::is_empty) && service_type(service) != "ExternalName"
}

/// The allocations a Service still lacks: a cluster IP when `spec.clusterIP` is unset or empty
/// (not for ExternalName, nor `None`), and a NodePort for each port of a NodePort or
/// LoadBalancer Service that has none.
pub fn needs(service: &Service) -> Needs {
    let node_ports = if has_node_ports(service) {
        ports(service)
            .iter()
            .filter(|p| p.node_port.unwrap_or(0) == 0)
            .count()
    } else {
        0
    };
    Needs {
        cluster_ip: unset_cluster_ip(service),
        node_ports,
    }
}

/// Writes the allocated values into the fields that are still empty (it runs inside the store's
/// read-modify-write, so it checks again). Returns whether `ip` was used and how many of
/// `node_ports` were, in order.
pub fn fill(service: &mut Service, ip: Option<Ipv4Addr>, node_ports: &[u16]) -> (bool, usize) {
    let needs = needs(service);
    let spec = service.spec.get_or_insert_with(Default::default);
    let mut ip_used = false;
    if let (true, Some(ip)) = (needs.cluster_ip, ip) {
        spec.cluster_ip = Some(ip.to_string());
        spec.cluster_ips = Some(vec![ip.to_string()]);
        ip_used = true;
    }
    let mut used = 0;
    if needs.node_ports > 0 {
        for port in spec.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) == 0 && used < node_ports.len() {
                port.node_port = Some(i32::from(node_ports[used]));
                used += 1;
            }
        }
    }
    (ip_used, used)
}

/// The cluster IP, NodePorts and (by service port) the ports the API server allocated, for
/// reserving them in the allocator.
pub fn allocated(service: &Service) -> (Option<IpAddr>, Vec<u16>) {
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let node_ports = if has_node_ports(service) {
        ports(service)
            .iter()
            .filter_map(|p| p.node_port.and_then(|n| u16::try_from(n).ok()))
            .filter(|&n| n != 0)
            .collect()
    } else {
        Vec::new()
    };
    (ip, node_ports)
}

/// Decides what to serve for `service`, given its Endpoints (same name) if any.
pub fn plan(service: &Service, endpoints: Option<&Endpoints>) -> ServicePlan {
    let (cluster_ip, _) = allocated(service);
    let cluster_ip = cluster_ip.filter(|_| service_type(service) != "ExternalName");
    let spec = service.spec.as_ref();
    let affinity =
        (spec.and_then(|s| s.session_affinity.as_deref()) == Some("ClientIP")).then(|| {
            spec.and_then(|s| s.session_affinity_config.as_ref())
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u64::try_from(t).ok())
                .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
        });
    let subsets = endpoints
        .and_then(|e| e.subsets.as_deref())
        .unwrap_or_default();
    let all = ports(service);
    let node_ports = has_node_ports(service);
    let ports = all
        .iter()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let name = p.name.clone().unwrap_or_default();
            Some(PortPlan {
                backends: backends(&name, all.len() == 1, subsets),
                port: u16::try_from(p.port).ok().filter(|&n| n != 0)?,
                node_port: p
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n != 0 && node_ports),
                name,
            })
        })
        .collect();
    ServicePlan {
        cluster_ip,
        affinity,
        ports,
    }
}

/// The ready addresses of every subset, paired with the subset's port for `port_name` (the
/// endpoints controller names endpoint ports after service ports). When the Service has a single
/// port, a subset with a single port serves it whatever its name.
fn backends(port_name: &str, single: bool, subsets: &[EndpointSubset]) -> Vec<SocketAddr> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for subset in subsets {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let tcp = |p: &&k8s_openapi::api::core::v1::EndpointPort| {
            p.protocol.as_deref().unwrap_or("TCP") == "TCP"
        };
        let port = ports
            .iter()
            .filter(tcp)
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
            .or_else(|| (single && ports.len() == 1).then(|| &ports[0]).filter(tcp));
        let Some(port) = port
            .and_then(|p| u16::try_from(p.port).ok())
            .filter(|&p| p != 0)
        else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<IpAddr>() {
                let addr = SocketAddr::new(ip, port);
                if seen.insert(addr) {
                    out.push(addr);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    fn endpoints(subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": subsets})).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn needs_follow_the_api_servers_allocation_rules() {
        let cases = [
            (
                json!({"ports": [{"port": 80}]}),
                Needs {
                    cluster_ip: true,
                    node_ports: 0,
                },
            ),
            (
                json!({"clusterIP": "", "ports": [{"port": 80}]}),
                Needs {
                    cluster_ip: true,
                    node_ports: 0,
                },
            ),
            (
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
                Needs::default(),
            ),
            (
                json!({"type": "ExternalName", "externalName": "x.example"}),
                Needs::default(),
            ),
            (
                json!({"type": "NodePort", "clusterIP": "127.96.0.9", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}]}),
                Needs {
                    cluster_ip: false,
                    node_ports: 1,
                },
            ),
            (
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
                Needs {
                    cluster_ip: true,
                    node_ports: 1,
                },
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(needs(&service(spec.clone())), want, "{spec}");
        }
    }

    #[test]
    fn fill_writes_only_empty_fields() {
        let mut svc = service(
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30081}, {"port": 82}]}),
        );
        let (ip_used, ports_used) = fill(
            &mut svc,
            Some(Ipv4Addr::new(127, 96, 0, 7)),
            &[30100, 30101],
        );
        assert!(ip_used);
        assert_eq!(ports_used, 2);
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("127.96.0.7"));
        assert_eq!(spec.cluster_ips, Some(vec!["127.96.0.7".to_owned()]));
        let node_ports: Vec<_> = spec.ports.iter().flatten().map(|p| p.node_port).collect();
        assert_eq!(node_ports, [Some(30100), Some(30081), Some(30101)]);
        assert_eq!(needs(&svc), Needs::default());
        // A second fill (someone else allocated first) uses nothing.
        assert_eq!(
            fill(&mut svc, Some(Ipv4Addr::new(127, 96, 0, 8)), &[30200]),
            (false, 0)
        );
    }

    #[test]
    fn plan_pairs_ports_with_ready_endpoints() {
        let svc = service(json!({
            "clusterIP": "127.96.0.1", "type": "NodePort",
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "metrics", "port": 9090},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ]
        }));
        let eps = endpoints(json!([
            {
                "addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}],
                "notReadyAddresses": [{"ip": "127.1.0.3"}],
                "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}]
            },
            {
                "addresses": [{"ip": "127.1.0.4"}, {"ip": "127.1.0.1"}],
                "ports": [{"name": "http", "port": 8081}]
            }
        ]));
        let plan = plan(&svc, Some(&eps));
        assert_eq!(plan.cluster_ip, Some("127.96.0.1".parse().unwrap()));
        assert_eq!(plan.affinity, None);
        assert_eq!(plan.ports.len(), 2, "UDP is not proxied");
        let http = &plan.ports[0];
        assert_eq!(
            http.backends,
            [
                addr("127.1.0.1:8080"),
                addr("127.1.0.2:8080"),
                addr("127.1.0.4:8081"),
                addr("127.1.0.1:8081")
            ]
        );
        assert_eq!(
            http.listen_addrs(plan.cluster_ip),
            [addr("127.96.0.1:80"), addr("127.0.0.1:30080")]
        );
        let metrics = &plan.ports[1];
        assert_eq!(
            metrics.backends,
            [addr("127.1.0.1:9100"), addr("127.1.0.2:9100")]
        );
        assert_eq!(metrics.node_port, None);
    }

    #[test]
    fn single_port_matches_whatever_its_name() {
        let svc = service(json!({"clusterIP": "127.96.0.1", "ports": [{"port": 80}]}));
        let eps = endpoints(
            json!([{"addresses": [{"ip": "127.1.0.1"}], "ports": [{"name": "web", "port": 8080}]}]),
        );
        assert_eq!(
            plan(&svc, Some(&eps)).ports[0].backends,
            [addr("127.1.0.1:8080")]
        );
        // No Endpoints, or an empty one: no backends.
        assert!(plan(&svc, None).ports[0].backends.is_empty());
        assert!(
            plan(&svc, Some(&endpoints(json!([])))).ports[0]
                .backends
                .is_empty()
        );
    }

    #[test]
    fn session_affinity_timeout() {
        let cases = [
            (json!({"sessionAffinity": "None"}), None),
            (
                json!({"sessionAffinity": "ClientIP"}),
                Some(DEFAULT_AFFINITY_TIMEOUT),
            ),
            (
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}),
                Some(Duration::from_secs(30)),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(plan(&service(spec.clone()), None).affinity, want, "{spec}");
        }
    }

    #[test]
    fn node_ports_only_listen_for_node_port_types() {
        let svc =
            service(json!({"clusterIP": "127.96.0.1", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(plan(&svc, None).ports[0].node_port, None);
        assert_eq!(
            allocated(&svc),
            (Some("127.96.0.1".parse().unwrap()), vec![])
        );
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert_eq!(plan(&headless, None).cluster_ip, None);
    }
}
