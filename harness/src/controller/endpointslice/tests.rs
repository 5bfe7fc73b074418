use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

const SERVICE_UID: &str = "uid-service-web";

/// A running pod on the node, at `ip`, with the container ports given by name.
fn pod(name: &str, ip: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
    let ports = ports
        .iter()
        .map(|(n, p)| ContainerPort {
            name: Some((*n).into()),
            container_port: *p,
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("harness".into()),
            containers: vec![Container {
                name: "web".into(),
                ports: Some(ports),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    pod
}

fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(SERVICE_UID.into()),
            labels: Some(BTreeMap::from([
                ("team".to_owned(), "blue".to_owned()),
                (SERVICE_NAME_LABEL.to_owned(), "spoofed".to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            cluster_ip: Some("127.96.0.10".into()),
            ip_families: Some(vec!["IPv4".into()]),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.to_owned()),
        port,
        target_port: Some(target),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The Service of most cases: port 80 to 8080.
fn web() -> Service {
    service(vec![port("", 80, IntOrString::Int(8080))])
}

/// A slice as the store holds it after `plan`'s creation of `content`, named `name`.
fn stored(name: &str, content: &Action) -> EndpointSlice {
    let (Action::Create(slice) | Action::Update(slice)) = content else {
        panic!("not a write: {content:?}");
    };
    let mut slice = slice.clone();
    slice.metadata.name = Some(name.into());
    slice
}

/// An action in a line: `create|update NAME|delete NAME`, the ports and the endpoints with the
/// conditions that hold (r = ready, s = serving, t = terminating).
fn summary(action: &Action) -> String {
    let (verb, slice) = match action {
        Action::Create(slice) => ("create".to_owned(), slice),
        Action::Update(slice) => (
            format!("update {}", slice.metadata.name.as_deref().unwrap_or("?")),
            slice,
        ),
        Action::Delete(name) => return format!("delete {name}"),
    };
    let ports: Vec<String> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| {
            format!(
                "{}:{}",
                p.name.as_deref().unwrap_or("?"),
                p.port.unwrap_or(0)
            )
        })
        .collect();
    let endpoints: Vec<String> = slice
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            let flag = |b: Option<bool>, f: &'static str| if b == Some(true) { f } else { "" };
            format!(
                "{}/{}{}{}",
                e.addresses.join("+"),
                flag(c.ready, "r"),
                flag(c.serving, "s"),
                flag(c.terminating, "t"),
            )
        })
        .collect();
    let ports = if ports.is_empty() {
        "-".to_owned()
    } else {
        ports.join(",")
    };
    format!("{verb} [{ports}] [{}]", endpoints.join(" "))
}

fn summaries(service: &Service, pods: &[Pod], existing: &[EndpointSlice]) -> Vec<String> {
    let refs: Vec<&Pod> = pods.iter().collect();
    plan(service, &refs, existing).iter().map(summary).collect()
}

/// A case of [`plan`]: its name, the Service, its pods, its slices, the actions expected.
type Case = (
    &'static str,
    Service,
    Vec<Pod>,
    Vec<EndpointSlice>,
    Vec<&'static str>,
);

#[test]
fn plans_from_pods_and_slices() {
    let three = [
        pod("c", "127.1.0.3", true, &[]),
        pod("a", "127.1.0.1", true, &[]),
        pod("b", "127.1.0.2", true, &[]),
    ];
    let first = plan(&web(), &three.iter().collect::<Vec<_>>(), &[]);
    let current = stored("web-x7k2p", &first[0]);
    let placeholder = stored(
        "web-empty",
        &plan(&web(), &[], &[]).pop().expect("a placeholder"),
    );
    let mut foreign = current.clone();
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-old-service".into();
    let mut relabelled = current.clone();
    relabelled.metadata.labels = Some(BTreeMap::from([(
        SERVICE_NAME_LABEL.to_owned(),
        "web".to_owned(),
    )]));

    let no_pods: Vec<Pod> = Vec::new();
    let cases: Vec<Case> = vec![
        (
            "no pods: one empty placeholder",
            web(),
            no_pods.clone(),
            vec![],
            vec!["create [-] []"],
        ),
        (
            "the placeholder stays",
            web(),
            no_pods.clone(),
            vec![placeholder.clone()],
            vec![],
        ),
        (
            "ready pods, sorted by address",
            web(),
            three.to_vec(),
            vec![],
            vec!["create [:8080] [127.1.0.1/rs 127.1.0.2/rs 127.1.0.3/rs]"],
        ),
        (
            "pods arrive: the placeholder is rewritten, keeping its name",
            web(),
            three.to_vec(),
            vec![placeholder.clone()],
            vec!["update web-empty [:8080] [127.1.0.1/rs 127.1.0.2/rs 127.1.0.3/rs]"],
        ),
        (
            "nothing changed: nothing written",
            web(),
            three.to_vec(),
            vec![current.clone()],
            vec![],
        ),
        (
            "the pods go: the slice becomes the placeholder",
            web(),
            no_pods.clone(),
            vec![current.clone()],
            vec!["update web-x7k2p [-] []"],
        ),
        (
            "not ready, terminating, no IP, finished",
            web(),
            vec![
                pod("a", "127.1.0.1", false, &[]),
                terminating(pod("b", "127.1.0.2", true, &[])),
                terminating(pod("c", "127.1.0.3", false, &[])),
                {
                    let mut p = pod("d", "127.1.0.4", true, &[]);
                    p.status.as_mut().unwrap().pod_ip = None;
                    p
                },
                {
                    let mut p = pod("e", "127.1.0.5", false, &[]);
                    p.status.as_mut().unwrap().phase = Some("Succeeded".into());
                    p
                },
            ],
            vec![],
            vec!["create [:8080] [127.1.0.1/ 127.1.0.2/st 127.1.0.3/t]"],
        ),
        (
            "publishNotReadyAddresses: every listed pod is ready",
            {
                let mut s = web();
                s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
                s
            },
            vec![
                pod("a", "127.1.0.1", false, &[]),
                terminating(pod("b", "127.1.0.2", true, &[])),
            ],
            vec![],
            vec!["create [:8080] [127.1.0.1/r 127.1.0.2/rst]"],
        ),
        (
            "named ports resolve per pod; a pod without one gets a slice of its own",
            service(vec![
                port("http", 80, IntOrString::String("http".into())),
                port("metrics", 9090, IntOrString::String("metrics".into())),
            ]),
            vec![
                pod("a", "127.1.0.1", true, &[("http", 8080), ("metrics", 9100)]),
                pod("b", "127.1.0.2", true, &[("http", 8081)]),
                pod("c", "127.1.0.3", true, &[]),
            ],
            vec![],
            vec![
                "create [-] [127.1.0.3/rs]",
                "create [http:8080,metrics:9100] [127.1.0.1/rs]",
                "create [http:8081] [127.1.0.2/rs]",
            ],
        ),
        (
            "a slice of a former Service of the same name is replaced",
            web(),
            three.to_vec(),
            vec![foreign.clone()],
            vec![
                "create [:8080] [127.1.0.1/rs 127.1.0.2/rs 127.1.0.3/rs]",
                "delete web-x7k2p",
            ],
        ),
        (
            "labels follow the Service",
            web(),
            three.to_vec(),
            vec![relabelled],
            vec!["update web-x7k2p [:8080] [127.1.0.1/rs 127.1.0.2/rs 127.1.0.3/rs]"],
        ),
        (
            "a second slice of the same ports goes",
            web(),
            three.to_vec(),
            vec![current.clone(), stored("web-zzzzz", &first[0])],
            vec!["delete web-zzzzz"],
        ),
    ];
    for (name, service, pods, existing, want) in cases {
        assert_eq!(summaries(&service, &pods, &existing), want, "{name}");
    }
}

#[test]
fn a_hundred_endpoints_per_slice() {
    let pods: Vec<Pod> = (0..150)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("127.1.{}.{}", i / 100, i % 100 + 1),
                true,
                &[],
            )
        })
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let actions = plan(&web(), &refs, &[]);
    let sizes: Vec<usize> = actions
        .iter()
        .map(|a| match a {
            Action::Create(s) => s.endpoints.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [100, 50]);
}

#[test]
fn slices_carry_upstream_metadata_and_pod_references() {
    let pods = [pod("a", "127.1.0.1", true, &[])];
    let refs: Vec<&Pod> = pods.iter().collect();
    let Some(Action::Create(slice)) = plan(&web(), &refs, &[]).pop() else {
        panic!("one creation");
    };
    let meta = &slice.metadata;
    assert_eq!(meta.generate_name.as_deref(), Some("web-"));
    assert_eq!(meta.name, None);
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(
        meta.labels.clone().unwrap(),
        BTreeMap::from([
            ("team".to_owned(), "blue".to_owned()),
            (SERVICE_NAME_LABEL.to_owned(), "web".to_owned()),
            (MANAGED_BY_LABEL.to_owned(), CONTROLLER_NAME.to_owned()),
        ])
    );
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        ("v1", "Service", "web")
    );
    assert_eq!(owner.uid, SERVICE_UID);
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(slice.address_type, "IPv4");
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some(""), Some(8080), Some("TCP"))
    );
    let endpoint = &slice.endpoints[0];
    assert_eq!(endpoint.node_name.as_deref(), Some("harness"));
    let target = endpoint.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.namespace.as_deref(),
            target.name.as_deref(),
            target.uid.as_deref()
        ),
        (Some("Pod"), Some("default"), Some("a"), Some("uid-a"))
    );

    // A headless Service's slices say so.
    let mut headless = web();
    headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let labels = slice_labels(&headless);
    assert_eq!(labels.get(HEADLESS_LABEL).map(String::as_str), Some(""));
}
