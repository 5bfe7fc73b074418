//! Services: ClusterIP and NodePort in front of a Deployment (S11), a selector typo (S12),
//! seed 004 (and seed 002's ClusterIP sample).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;

use crate::support::{Up, assert_contains, fixture, hostbot_json, http_get, http_request};

/// A NodePort (30000-32767) that is free on 127.0.0.1 right now, different across the tests
/// running side by side.
fn free_node_port() -> u16 {
    let seed = std::process::id() as usize
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    (0..2768)
        .map(|i| 30000 + ((seed + i * 7) % 2768) as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port in the NodePort range")
}

/// The fixture `name` with its `NODE_PORT` placeholder set.
fn with_node_port(up: &Up, name: &str, node_port: u16) -> PathBuf {
    up.edited(name, &[("NODE_PORT", &node_port.to_string())])
}

/// Starts the three hello-server replicas and waits for them.
fn hello_server(up: &Up) -> Vec<String> {
    let file = fixture("deployment-hello-server.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server created\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.pod_names("app=hello-server");
    assert_eq!(pods.len(), 3, "{pods:?}");
    pods
}

/// S11: a ClusterIP Service and a NodePort Service in front of the Deployment: `get service`
/// shows their type, address and ports; requests through each reach the pods, and a new
/// connection per request spreads round-robin over all ready pods; `port-forward svc/...`
/// reaches a pod.
#[test]
fn s11_services_reach_the_pods_round_robin() {
    let Some(up) = Up::start() else { return };
    let pods = hello_server(&up);
    let service = fixture("service.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            service.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "service/hello-server-service created\n"
    );
    let node_port = free_node_port();
    let external = with_node_port(&up, "service-nodeport.yaml", node_port);
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            external.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "service/hello-server-external created\n"
    );

    let table = up.table(&["service", "hello-server-service", "--namespace", "default"]);
    assert_eq!(
        table.headers,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(table.cell("hello-server-service", "TYPE"), "ClusterIP");
    assert_eq!(table.cell("hello-server-service", "EXTERNAL-IP"), "<none>");
    assert_eq!(table.cell("hello-server-service", "PORT(S)"), "8080/TCP");
    let cluster_ip = table.cell("hello-server-service", "CLUSTER-IP").to_owned();
    assert!(cluster_ip.starts_with("127."), "{cluster_ip}");
    let table = up.table(&["service", "hello-server-external", "--namespace", "default"]);
    assert_eq!(table.cell("hello-server-external", "TYPE"), "NodePort");
    assert_eq!(
        table.cell("hello-server-external", "PORT(S)"),
        format!("8080:{node_port}/TCP")
    );
    let wide = up.table(&["svc", "-o", "wide"]);
    assert_eq!(
        wide.cell("hello-server-service", "SELECTOR"),
        "app=hello-server"
    );
    let columns = up.table(&[
        "svc",
        "-o",
        "custom-columns=NAME:.metadata.name,IP:.spec.clusterIP",
    ]);
    assert_eq!(columns.cell("hello-server-service", "IP"), cluster_ip);

    // The endpoints are the pods' IPs (seed 004 reads them with custom columns).
    let ips = up.table(&[
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,IP:.status.podIP",
    ]);
    let endpoints = up.wait_table(
        &["endpoints", "hello-server-service"],
        "three endpoints",
        |t| {
            t.cell("hello-server-service", "ENDPOINTS")
                .split(',')
                .count()
                == 3
        },
    );
    for pod in &pods {
        assert_contains(
            endpoints.cell("hello-server-service", "ENDPOINTS"),
            &[&format!("{}:8080", ips.cell(pod, "IP"))],
        );
    }
    let describe = up.ok(&["describe", "service/hello-server-service"]);
    assert_contains(
        &describe,
        &[
            "Selector:          app=hello-server",
            "Type:              ClusterIP",
            &format!("IP:                {cluster_ip}"),
            "Port:              <unset>  8080/TCP",
            "TargetPort:        8080/TCP",
            "Session Affinity:  None",
        ],
    );

    // A new connection per request: round-robin over the three pods.
    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let answer = hostbot_json(&cluster_ip, 8080);
        *hits
            .entry(answer["host"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        hits.keys().cloned().collect::<Vec<_>>(),
        {
            let mut sorted = pods.clone();
            sorted.sort();
            sorted
        },
        "{hits:?}"
    );
    let (least, most) = (hits.values().min().unwrap(), hits.values().max().unwrap());
    assert!(most - least <= 1, "not round-robin: {hits:?}");
    // The NodePort on the node's address (127.0.0.1 here).
    let answer = hostbot_json("127.0.0.1", node_port);
    assert!(
        pods.contains(&answer["host"].as_str().unwrap().to_owned()),
        "{answer}"
    );
    // port-forward svc/ picks a pod behind the Service.
    let (_forward, port) = up.port_forward("svc/hello-server-service", 8080);
    let answer = hostbot_json("127.0.0.1", port);
    assert!(
        pods.contains(&answer["host"].as_str().unwrap().to_owned()),
        "{answer}"
    );

    assert_eq!(
        up.ok(&[
            "delete",
            "--filename",
            service.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "service \"hello-server-service\" deleted\n"
    );
    up.wait_for("the cluster IP to stop answering", || {
        http_request(&cluster_ip, 8080, "GET", "/")
            .is_err()
            .then_some(())
    });
    up.stop();
}

/// S12: a Service whose selector has a typo (`app: hello-serve`) has no endpoints: `get
/// endpoints` shows `<none>`, connections through it fail, `kubectl diff` shows the typo, and
/// applying the right manifest again heals it.
#[test]
fn s12_a_selector_typo_leaves_the_service_without_endpoints() {
    let Some(up) = Up::start() else { return };
    let node_port = free_node_port();
    let good = with_node_port(&up, "service-nodeport.yaml", node_port);
    let good = good.to_str().unwrap();
    assert_eq!(
        up.ok(&["apply", "--filename", good, "--namespace", "default"]),
        "service/hello-server-external created\n"
    );
    let pods = hello_server(&up);
    up.wait_table(
        &["endpoints", "hello-server-external"],
        "three endpoints",
        |t| {
            t.cell("hello-server-external", "ENDPOINTS")
                .split(',')
                .count()
                == 3
        },
    );
    let answer = hostbot_json("127.0.0.1", node_port);
    assert!(pods.contains(&answer["host"].as_str().unwrap().to_owned()));

    let typo = with_node_port(&up, "service-destruction.yaml", node_port);
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            typo.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "service/hello-server-external configured\n"
    );
    let endpoints = up.wait_table(
        &["endpoints", "hello-server-external"],
        "no endpoints",
        |t| t.cell("hello-server-external", "ENDPOINTS") == "<none>",
    );
    assert_eq!(endpoints.headers, ["NAME", "ENDPOINTS", "AGE"]);
    // Like the tutorial's `curl localhost:30599`: no answer through the Service.
    let failed = http_get(node_port, "/");
    assert!(
        !matches!(failed, Ok((200, _))),
        "the NodePort answered with no endpoints: {failed:?}"
    );
    let cluster_ip = up.ok(&[
        "get",
        "svc",
        "hello-server-external",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let failed = http_request(&cluster_ip, 8080, "GET", "/");
    assert!(
        !matches!(failed, Ok((200, _))),
        "the cluster IP answered with no endpoints: {failed:?}"
    );
    // Everything else looks healthy, as in the tutorial.
    let all = up.table(&["pod", "--namespace", "default"]);
    assert!(
        all.rows.iter().all(|r| r["STATUS"] == "Running"),
        "{}",
        all.text
    );
    assert_eq!(
        up.table(&["deployment"]).cell("hello-server", "READY"),
        "3/3"
    );
    let service = up.table(&["service", "--namespace", "default"]);
    assert_eq!(service.cell("hello-server-external", "TYPE"), "NodePort");
    assert_eq!(
        service.cell("hello-server-external", "PORT(S)"),
        format!("8080:{node_port}/TCP")
    );
    let describe = up.ok(&[
        "describe",
        "service",
        "hello-server-external",
        "--namespace",
        "default",
    ]);
    // kubectl 1.32 reads the Service's EndpointSlices: the controller's empty placeholder slice
    // prints as an empty value (older kubectl read the Endpoints and printed `<none>`).
    assert_contains(
        &describe,
        &[
            "Selector:                 app=hello-serve\n",
            "Type:                     NodePort",
            &format!("NodePort:                 <unset>  {node_port}/TCP"),
            "Endpoints:                \n",
            "External Traffic Policy:  Cluster",
        ],
    );

    // kubectl diff shows the typo and changes nothing.
    let diff = up.kubectl(&["diff", "--filename", good]);
    assert_eq!(diff.status.code(), Some(1), "{diff}");
    assert_contains(
        &diff.stdout,
        &["-    app: hello-serve\n", "+    app: hello-server\n"],
    );
    assert_eq!(
        up.ok(&[
            "get",
            "svc",
            "hello-server-external",
            "-o",
            "jsonpath={.spec.selector.app}"
        ]),
        "hello-serve"
    );

    assert_eq!(
        up.ok(&["apply", "--filename", good, "--namespace", "default"]),
        "service/hello-server-external configured\n"
    );
    up.wait_table(
        &["endpoints", "hello-server-external"],
        "three endpoints",
        |t| {
            t.cell("hello-server-external", "ENDPOINTS")
                .split(',')
                .count()
                == 3
        },
    );
    let answer = hostbot_json("127.0.0.1", node_port);
    assert!(pods.contains(&answer["host"].as_str().unwrap().to_owned()));
    let answer = hostbot_json(&cluster_ip, 8080);
    assert!(pods.contains(&answer["host"].as_str().unwrap().to_owned()));
    up.stop();
}
