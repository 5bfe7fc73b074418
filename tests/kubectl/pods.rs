//! A bare Pod (S1, seed 000) and probes (S18, seed 001).

use crate::support::{
    Up, assert_contains, events_section, fixture, hostbot_json, http_request, manifest,
};

/// S1: `kubectl apply -f pod-hostbot.yml`, wait for READY 1/1, `port-forward pod/hostbot
/// 8080:80`, `curl localhost:8080` -> `{"time": ..., "host": "hostbot"}`; then the ways a reader
/// looks at a pod (get with each output format, describe, logs) and `delete pod/hostbot`.
#[test]
fn s01_a_pod_answers_through_port_forward() {
    let Some(up) = Up::start() else { return };
    let file = manifest("pod-hostbot.yml");
    let file = file.to_str().unwrap();
    assert_eq!(up.ok(&["apply", "-f", file]), "pod/hostbot created\n");
    assert_eq!(up.ok(&["apply", "-f", file]), "pod/hostbot unchanged\n");
    assert_eq!(
        up.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/hostbot",
            "--timeout=60s"
        ]),
        "pod/hostbot condition met\n"
    );

    let table = up.table(&["pod/hostbot"]);
    assert_eq!(
        table.headers,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(table.cell("hostbot", "READY"), "1/1");
    assert_eq!(table.cell("hostbot", "STATUS"), "Running");
    assert_eq!(table.cell("hostbot", "RESTARTS"), "0");

    let wide = up.table(&["pod", "hostbot", "-o", "wide"]);
    assert_eq!(
        wide.headers,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let ip = wide.cell("hostbot", "IP").to_owned();
    assert!(ip.starts_with("127."), "pod IP {ip}");
    assert_eq!(wide.cell("hostbot", "NODE"), "harness");
    assert_eq!(wide.cell("hostbot", "NOMINATED NODE"), "<none>");

    // Seed 003's ways of picking fields.
    let columns = up.table(&[
        "pod",
        "hostbot",
        "--output",
        "custom-columns=NAME:metadata.name,NODE_IP:status.hostIP,POD_IP:status.podIP",
    ]);
    assert_eq!(columns.headers, ["NAME", "NODE_IP", "POD_IP"]);
    assert_eq!(columns.cell("hostbot", "POD_IP"), ip);
    assert_eq!(
        up.ok(&["get", "pod", "hostbot", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
    let container_id = up.ok(&[
        "get",
        "pod",
        "hostbot",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    assert!(
        container_id.contains("://") && container_id.len() > 20,
        "container ID {container_id}"
    );
    let yaml = up.ok(&["get", "pod", "hostbot", "-o", "yaml"]);
    assert_contains(
        &yaml,
        &[
            "apiVersion: v1\n",
            "kind: Pod\n",
            "  name: hostbot\n",
            "  phase: Running\n",
        ],
    );
    let json = up.json(&["pod", "hostbot"]);
    assert_eq!(json["status"]["podIP"], ip.as_str());
    assert_eq!(json["spec"]["nodeName"], "harness");

    // The tutorial's curl through the forwarded port.
    let (forward, port) = up.port_forward("pod/hostbot", 80);
    let answer = hostbot_json("127.0.0.1", port);
    assert_eq!(answer["host"], "hostbot", "{answer}");
    assert!(
        answer["time"].as_str().is_some_and(|t| t.len() >= 19),
        "{answer}"
    );
    drop(forward);

    let logs = up.ok(&["logs", "hostbot"]);
    assert!(!logs.trim().is_empty(), "kubectl logs printed nothing");

    let describe = up.ok(&["describe", "pod", "hostbot"]);
    assert_contains(
        &describe,
        &[
            "Name:",
            "Node:",
            "harness/",
            "Labels:",
            "run=hostbot",
            "Ready:          True",
            "Restart Count:  0",
        ],
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Status:") && l.trim_end().ends_with("Running")),
        "{describe}"
    );
    let events = events_section(&describe).join("\n");
    assert_contains(
        &events,
        &[
            "Successfully assigned default/hostbot to harness",
            "Container image \"yourname/hostbot:v1\" already present on machine",
            "Created container: hostbot",
            "Started container hostbot",
        ],
    );

    assert_eq!(
        up.ok(&["delete", "pod/hostbot"]),
        "pod \"hostbot\" deleted\n"
    );
    let out = up.kubectl(&["get", "pods"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No resources found in default namespace.\n");
    // kubectl waited for the deletion: the pod's process is gone, nothing listens on its IP.
    assert!(
        http_request(&ip, 80, "GET", "/").is_err(),
        "hostbot still answers on {ip}"
    );
    up.stop();
}

/// S18: a readiness probe on /readyz keeps a not-ready pod out of the Service's endpoints (and
/// its traffic); a failing liveness probe on /healthz restarts the container, which keeps its
/// pod name and counts a restart.
#[test]
fn s18_probes_gate_traffic_and_restart_a_failing_container() {
    let Some(up) = Up::start() else { return };
    let file = fixture("hostbot-probes.yml");
    let out = up.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        out,
        "deployment.apps/hostbot created\nservice/hostbot created\n"
    );
    up.rollout_complete("hostbot");
    let pods = up.pod_names("app=hostbot");
    assert_eq!(pods.len(), 2, "{pods:?}");
    let (sick, healthy) = (pods[0].clone(), pods[1].clone());
    let ip_of = |pod: &str| up.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
    let (sick_ip, healthy_ip) = (ip_of(&sick), ip_of(&healthy));
    let endpoints = up.wait_table(&["endpoints", "hostbot"], "two endpoints", |t| {
        t.cell("hostbot", "ENDPOINTS").split(',').count() == 2
    });
    assert_contains(
        endpoints.cell("hostbot", "ENDPOINTS"),
        &[&format!("{sick_ip}:80"), &format!("{healthy_ip}:80")],
    );
    let cluster_ip = up.ok(&["get", "svc", "hostbot", "-o", "jsonpath={.spec.clusterIP}"]);

    // Readiness off: 0/1 Running, out of the endpoints, no traffic through the Service.
    let (_forward, port) = up.port_forward(&format!("pod/{sick}"), 80);
    let (code, _) = http_request("127.0.0.1", port, "POST", "/readyz/disable").unwrap();
    assert_eq!(code, 200);
    let pods = up.wait_table(&["pods"], "the pod to turn 0/1", |t| {
        t.cell(&sick, "READY") == "0/1"
    });
    assert_eq!(pods.cell(&sick, "STATUS"), "Running");
    assert_eq!(pods.cell(&healthy, "READY"), "1/1");
    up.wait_table(&["endpoints", "hostbot"], "one endpoint", |t| {
        t.cell("hostbot", "ENDPOINTS") == format!("{healthy_ip}:80")
    });
    for _ in 0..20 {
        let answer = hostbot_json(&cluster_ip, 80);
        assert_eq!(
            answer["host"],
            healthy.as_str(),
            "a not-ready pod got traffic"
        );
    }
    let describe = up.ok(&["describe", "pod", &sick]);
    assert_contains(
        &describe,
        &["Readiness probe failed: HTTP probe failed with statuscode: 503"],
    );
    let (code, _) = http_request("127.0.0.1", port, "POST", "/readyz/enable").unwrap();
    assert_eq!(code, 200);
    up.wait_table(&["endpoints", "hostbot"], "two endpoints again", |t| {
        t.cell("hostbot", "ENDPOINTS").split(',').count() == 2
    });

    // Liveness off: the kubelet restarts the container; same pod, RESTARTS 1, ready again.
    let (code, _) = http_request("127.0.0.1", port, "POST", "/healthz/disable").unwrap();
    assert_eq!(code, 200);
    let pods = up.wait_table(&["pods"], "a restart", |t| {
        t.cell(&sick, "RESTARTS").starts_with("1 (") && t.cell(&sick, "READY") == "1/1"
    });
    assert!(
        pods.cell(&sick, "RESTARTS").ends_with(" ago)"),
        "{}",
        pods.text
    );
    assert_eq!(pods.cell(&sick, "STATUS"), "Running");
    assert_eq!(pods.cell(&healthy, "RESTARTS"), "0");
    assert_eq!(pods.rows.len(), 2, "{}", pods.text);
    let describe = up.ok(&["describe", "pod", &sick]);
    assert_contains(
        &describe,
        &[
            "Restart Count:  1",
            "Last State:     Terminated",
            "Liveness probe failed: HTTP probe failed with statuscode: 503",
            "Container hostbot failed liveness probe, will be restarted",
        ],
    );
    // The new process is healthy: its liveness toggle starts enabled.
    let answer = up.wait_for("the restarted pod to answer through the Service", || {
        (0..10)
            .map(|_| hostbot_json(&cluster_ip, 80))
            .find(|a| a["host"] == sick.as_str())
    });
    assert_eq!(answer["host"], sick.as_str());
    up.stop();
}
