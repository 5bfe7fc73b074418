use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn pod(name: &str, ip: Option<&str>, ready: bool, ports: &[(&str, i32)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("harness".into()),
            containers: vec![Container {
                name: "app".into(),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ContainerPort {
                            name: Some((*n).into()),
                            container_port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ip.map(Into::into),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([("team".to_owned(), "blue".to_owned())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.to_owned()),
        port,
        target_port: target,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    list.iter().flatten().map(|a| a.ip.as_str()).collect()
}

fn port_numbers(subset: &EndpointSubset) -> Vec<i32> {
    subset.ports.iter().flatten().map(|p| p.port).collect()
}

#[test]
fn port_resolution_table() {
    let p = pod(
        "a",
        Some("10.0.0.1"),
        true,
        &[("http", 8080), ("metrics", 9090)],
    );
    let cases = [
        (port("", 80, Some(IntOrString::Int(8081))), Some(8081)),
        (port("", 80, None), Some(80)),
        (
            port("", 80, Some(IntOrString::String("http".into()))),
            Some(8080),
        ),
        (
            port("", 80, Some(IntOrString::String("metrics".into()))),
            Some(9090),
        ),
        (port("", 80, Some(IntOrString::String("grpc".into()))), None),
        (
            ServicePort {
                protocol: Some("UDP".into()),
                ..port("", 80, Some(IntOrString::String("http".into())))
            },
            None,
        ),
    ];
    for (i, (service_port, want)) in cases.iter().enumerate() {
        assert_eq!(find_port(&p, service_port), *want, "case {i}");
    }
    let mut sidecar = pod("s", Some("10.0.0.2"), true, &[]);
    sidecar.spec.as_mut().unwrap().init_containers = Some(vec![Container {
        name: "proxy".into(),
        restart_policy: Some("Always".into()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 15001,
            ..Default::default()
        }]),
        ..Default::default()
    }]);
    let named = port("", 80, Some(IntOrString::String("http".into())));
    assert_eq!(find_port(&sidecar, &named), Some(15001));
}

#[test]
fn ready_and_not_ready_addresses() {
    let svc = service(vec![port("http", 80, Some(IntOrString::Int(8080)))]);
    let mut terminating = pod("t", Some("10.0.0.9"), true, &[]);
    terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let mut failed = pod("f", Some("10.0.0.8"), false, &[]);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let pods = [
        pod("b", Some("10.0.0.2"), true, &[]),
        pod("a", Some("10.0.0.1"), true, &[]),
        pod("c", Some("10.0.0.3"), false, &[]),
        pod("no-ip", None, true, &[]),
        terminating,
        failed,
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let subsets = desired_subsets(&svc, &refs);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
    assert_eq!(port_numbers(&subsets[0]), [8080]);
    let a = &subsets[0].addresses.as_ref().unwrap()[0];
    let target = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("a"))
    );
    assert_eq!(a.node_name.as_deref(), Some("harness"));

    // publishNotReadyAddresses lists everyone as ready, terminating pods included.
    let mut tolerant = svc.clone();
    tolerant.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let subsets = desired_subsets(&tolerant, &refs);
    assert_eq!(ips(&subsets[0].addresses).len(), 4);
    assert_eq!(subsets[0].not_ready_addresses, None);
}

#[test]
fn named_ports_group_into_subsets() {
    // Pod a serves "http" on 8080, pod b on 9000; only a has "metrics".
    let svc = service(vec![
        port("web", 80, Some(IntOrString::String("http".into()))),
        port("metrics", 9100, Some(IntOrString::String("metrics".into()))),
    ]);
    let pods = [
        pod(
            "a",
            Some("10.0.0.1"),
            true,
            &[("http", 8080), ("metrics", 9090)],
        ),
        pod("b", Some("10.0.0.2"), true, &[("http", 9000)]),
        pod(
            "c",
            Some("10.0.0.3"),
            true,
            &[("http", 8080), ("metrics", 9090)],
        ),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let subsets = desired_subsets(&svc, &refs);
    let mut shape: Vec<(Vec<&str>, Vec<i32>)> = subsets
        .iter()
        .map(|s| (ips(&s.addresses), port_numbers(s)))
        .collect();
    shape.sort();
    assert_eq!(
        shape,
        [
            (vec!["10.0.0.1", "10.0.0.3"], vec![8080, 9090]),
            (vec!["10.0.0.2"], vec![9000]),
        ]
    );
}

#[test]
fn no_pods_no_subsets_and_headless() {
    let svc = service(vec![port("", 80, None)]);
    assert!(desired_subsets(&svc, &[]).is_empty());
    let mut headless = service(vec![]);
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let p = pod("a", Some("10.0.0.1"), true, &[]);
    let subsets = desired_subsets(&headless, &[&p]);
    assert_eq!(subsets.len(), 1);
    assert_eq!(subsets[0].ports, None);
    assert_eq!(endpoint_labels(&headless).unwrap()[HEADLESS_LABEL], "");
    assert_eq!(endpoint_labels(&svc).unwrap().get(HEADLESS_LABEL), None);
    // Without ports and not headless: nothing.
    assert!(desired_subsets(&service(vec![]), &[&p]).is_empty());
}
