//! Which TCP ports of a container must answer at the pod's IP.
//!
//! Process and in-process containers bind the pod's IP themselves, so every port they open is
//! reachable. A Docker container lives in its own network namespace and is reachable only
//! through the ports published for it, one by one; this module decides which: the declared
//! `containerPort`s, the ports probes and lifecycle hooks dial, and `PORT` (the port hostbot
//! listens on). Upstream needs no list (a pod's network namespace is reachable on every port),
//! so a port the container opens without declaring it stays unreachable with the docker
//! runtime.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::Container;

use crate::kubelet::probe::{self, Action, ProbeKind};

/// The TCP ports of `container` that must be reachable, sorted and without duplicates. `env` is
/// the container's resolved environment (for `PORT`).
pub fn reachable(container: &Container, env: &BTreeMap<String, String>) -> Vec<u16> {
    let mut ports: Vec<u16> = container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    let anywhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut actions = Vec::new();
    for kind in [
        ProbeKind::Startup,
        ProbeKind::Readiness,
        ProbeKind::Liveness,
    ] {
        if let Some(p) = kind.of(container) {
            actions.push(probe::probe_action(p, container, anywhere));
        }
    }
    if let Some(lifecycle) = &container.lifecycle {
        for handler in [&lifecycle.post_start, &lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            actions.push(probe::handler_action(handler, container, anywhere));
        }
    }
    for action in actions {
        match action {
            Action::Http { addr, .. } | Action::Tcp(addr) => ports.push(addr.port()),
            _ => {}
        }
    }
    if let Some(port) = env.get("PORT").and_then(|p| p.trim().parse::<u16>().ok()) {
        ports.push(port);
    }
    ports.retain(|p| *p != 0);
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, HTTPGetAction, Lifecycle, LifecycleHandler, Probe, TCPSocketAction,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn port(name: &str, number: i32, protocol: Option<&str>) -> ContainerPort {
        ContainerPort {
            name: Some(name.to_owned()),
            container_port: number,
            protocol: protocol.map(str::to_owned),
            ..Default::default()
        }
    }

    fn http_probe(port: IntOrString) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some("/readyz".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn declared_probed_and_hook_ports_are_published() {
        let container = Container {
            name: "web".into(),
            ports: Some(vec![
                port("http", 80, None),
                port("metrics", 9090, Some("TCP")),
                port("dns", 53, Some("UDP")),
            ]),
            readiness_probe: Some(http_probe(IntOrString::String("http".into()))),
            liveness_probe: Some(http_probe(IntOrString::Int(8081))),
            startup_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(7000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    http_get: Some(HTTPGetAction {
                        port: IntOrString::Int(8082),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env = BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]);
        assert_eq!(
            reachable(&container, &env),
            vec![80, 7000, 8080, 8081, 8082, 9090]
        );
    }

    #[test]
    fn bad_or_missing_ports_are_skipped() {
        let container = Container {
            name: "web".into(),
            readiness_probe: Some(http_probe(IntOrString::String("nope".into()))),
            ..Default::default()
        };
        let env = BTreeMap::from([("PORT".to_owned(), "eighty".to_owned())]);
        assert!(reachable(&container, &env).is_empty());
        let env = BTreeMap::from([("PORT".to_owned(), " 80 ".to_owned())]);
        assert_eq!(reachable(&container, &env), vec![80]);
    }
}
