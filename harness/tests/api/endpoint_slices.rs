//! EndpointSlices through the API, as kubectl reads them: discovery in `discovery.k8s.io/v1`,
//! `get endpointslices` with upstream's columns and label selectors, and `describe service`,
//! whose `Endpoints:` line kubectl 1.32 builds from the ready endpoints of the Service's slices.

use harness::controller::Reconciler;
use harness::controller::endpointslice::{EndpointSliceController, SERVICE_NAME_LABEL};
use harness::object::{Kind, Object};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::support::{Cluster, kubectl_available, row};

/// A Service `web` (80 -> 8080) over two ready pods and one that is not, with its slice made by
/// one pass of the EndpointSlice controller; returns the slice's name.
fn service_with_slice(cluster: &Cluster) -> String {
    let service = json!({
        "metadata": {"name": "web", "namespace": "default", "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    });
    let service = Object::from_json(Kind::Service, service).unwrap();
    cluster.store.create(service).unwrap();
    for (name, ip) in [
        ("web-a", "127.1.0.2"),
        ("web-b", "127.1.0.3"),
        ("web-c", "127.1.0.4"),
    ] {
        cluster.running_pod(name, &[("app", "web")], ip);
    }
    cluster
        .store
        .modify::<Pod, _>("default", "web-c", |pod| {
            let status = pod.status.as_mut().unwrap();
            status.conditions.as_mut().unwrap()[0].status = "False".into();
        })
        .unwrap();
    let mut controller = EndpointSliceController::new(cluster.store.clone());
    let key = ("default".to_owned(), "web".to_owned());
    controller.reconcile(&key).unwrap();
    let slices = cluster.store.list(Kind::EndpointSlice, Some("default"));
    assert_eq!(slices.len(), 1, "{slices:?}");
    slices[0].name().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_endpoint_slices_and_describes_services_from_them() {
    if !kubectl_available() {
        return;
    }
    let cluster = Cluster::start().await;
    let name = service_with_slice(&cluster);

    let resources = cluster
        .ok(&["api-resources", "--api-group=discovery.k8s.io"])
        .await;
    assert_eq!(
        row(&resources, "endpointslices"),
        [
            "endpointslices",
            "discovery.k8s.io/v1",
            "true",
            "EndpointSlice"
        ],
        "{resources}"
    );

    let table = cluster.ok(&["get", "endpointslices"]).await;
    let header = row(&table, "NAME");
    assert_eq!(
        header,
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{table}"
    );
    let cells = row(&table, &name);
    assert_eq!(
        cells[..4],
        [
            name.as_str(),
            "IPv4",
            "8080",
            "127.1.0.2,127.1.0.3,127.1.0.4"
        ],
        "{table}"
    );

    let selected = cluster
        .ok(&[
            "get",
            "endpointslices",
            "-l",
            &format!("{SERVICE_NAME_LABEL}=web"),
            "-o",
            "jsonpath={.items[*].metadata.name} {.items[0].metadata.labels.team}",
        ])
        .await;
    assert_eq!(selected, format!("{name} blue"));
    let none = cluster
        .run(&[
            "get",
            "endpointslices",
            "-l",
            &format!("{SERVICE_NAME_LABEL}=other"),
        ])
        .await;
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(stderr.contains("No resources found"), "{stderr}");

    let describe = cluster.ok(&["describe", "service", "web"]).await;
    let endpoints = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line:\n{describe}"));
    assert_eq!(
        endpoints.trim_start_matches("Endpoints:").trim(),
        "127.1.0.2:8080,127.1.0.3:8080",
        "{describe}"
    );
}
