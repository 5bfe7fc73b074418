//! Details of upstream's output that a reader of the tutorials sees, each in a test of its own
//! so that one difference does not hide another: the objects every cluster has, the order of
//! `get all`, `Pending` pods, events in time order and counted, admission defaults, endpoints in
//! `describe service`, and `kubectl create deployment` (a protobuf request body, like the other
//! typed `create` commands in `create.rs`).

use std::collections::BTreeSet;

use crate::support::{
    TIMEOUT, Table, Up, assert_contains, events_section, fixture, is_deployment_pod, replicaset_of,
};

/// `kubectl get all` lists pods, services (with the API's own `kubernetes` Service), then
/// `deployment.apps` before `replicaset.apps` (the order of upstream's discovery), as in seeds
/// 001 and 002.
#[test]
fn get_all_lists_the_kubernetes_service_and_deployments_before_replicasets() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let out = up.ok(&["get", "all"]);
    let tables = Table::parse_all(&out);
    let kinds: Vec<&str> = tables
        .iter()
        .map(|t| t.rows[0]["NAME"].split('/').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["pod", "service", "deployment.apps", "replicaset.apps"],
        "{out}"
    );
    let services = &tables[1];
    assert_eq!(
        services.cell("service/kubernetes", "TYPE"),
        "ClusterIP",
        "{out}"
    );
    assert_eq!(
        services.cell("service/kubernetes", "PORT(S)"),
        "443/TCP",
        "{out}"
    );
    up.stop();
}

/// Every cluster has the `kube-root-ca.crt` ConfigMap in each namespace (seed 004's `get
/// deployment,configmap` shows it) and the `kube-system` namespace.
#[test]
fn a_fresh_cluster_has_kube_root_ca_and_kube_system() {
    let Some(up) = Up::start() else { return };
    let configmaps = up.table(&["configmap"]);
    assert_eq!(configmaps.cell("kube-root-ca.crt", "DATA"), "1");
    let namespaces = up.table(&["namespaces"]);
    for name in ["default", "kube-system"] {
        assert_eq!(namespaces.cell(name, "STATUS"), "Active");
    }
    up.stop();
}

/// A pod the ReplicaSet has just created shows `0/1 Pending` (the API server sets the phase on
/// create), then ContainerCreating, then Running, as in seed 004's watch.
#[test]
fn a_new_pod_shows_pending_then_container_creating_then_running() {
    let Some(up) = Up::start() else { return };
    // A pod to see in the watch first, so the watch is known to be running before the apply.
    up.ok(&["run", "marker", "--image=yourname/hostbot:v1"]);
    let watch = up.background(&["get", "pod", "--watch"]);
    watch.wait_line(TIMEOUT, |l| l.starts_with("marker "));
    let file = fixture("deploy-hostbot.yml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    let lines = watch.wait_lines(TIMEOUT, "the pod running", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("hostbot-") && l.contains("1/1") && l.contains("Running"))
            .then(|| lines.to_vec())
    });
    let pod: Vec<&String> = lines.iter().filter(|l| l.starts_with("hostbot-")).collect();
    let statuses: Vec<&str> = pod
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            if words.len() == 5 { words[2] } else { "" }
        })
        .collect();
    assert_eq!(statuses.first(), Some(&"Pending"), "{}", lines.join("\n"));
    assert!(
        statuses.contains(&"ContainerCreating"),
        "{}",
        lines.join("\n")
    );
    assert!(
        !statuses.contains(&""),
        "a line without STATUS:\n{}",
        lines.join("\n")
    );
    up.stop();
}

/// `describe` lists events oldest first (upstream names events `<object>.<unix nanos>`, so the
/// list comes in time order): the rolling update's steps in order, a pod's
/// Scheduled/Pulled/Created/Started in order.
#[test]
fn describe_lists_events_in_the_order_they_happened() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let old = replicaset_of(&up.pod_names("app=nginx")[0]).to_owned();
    up.ok(&[
        "set",
        "image",
        "deployment/nginx-deployment",
        "nginx=nginx:1.24.0",
    ]);
    up.rollout_complete("nginx-deployment");
    let pods = up.wait_for("one ReplicaSet of pods", || {
        let pods = up.pod_names("app=nginx");
        let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
        (pods.len() == 3 && sets.len() == 1 && !sets.contains(old.as_str())).then_some(pods)
    });
    let new = replicaset_of(&pods[0]).to_owned();
    let describe = up.ok(&["describe", "deployment", "nginx-deployment"]);
    let steps: Vec<String> = events_section(&describe)
        .iter()
        .filter_map(|l| l.split("deployment-controller  ").nth(1).map(str::to_owned))
        .collect();
    assert_eq!(
        steps,
        [
            format!("Scaled up replica set {old} from 0 to 3"),
            format!("Scaled up replica set {new} from 0 to 1"),
            format!("Scaled down replica set {old} from 3 to 2"),
            format!("Scaled up replica set {new} from 1 to 2"),
            format!("Scaled down replica set {old} from 2 to 1"),
            format!("Scaled up replica set {new} from 2 to 3"),
            format!("Scaled down replica set {old} from 1 to 0"),
        ],
        "{describe}"
    );
    let describe = up.ok(&["describe", "pod", &pods[0]]);
    let reasons: Vec<String> = events_section(&describe)
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulled", "Created", "Started"],
        "{describe}"
    );
    up.stop();
}

/// The kubelet's repeated events are one event with a count, shown as `(x2 over 12s)`, as in
/// seed 004's ImagePullBackOff describe.
#[test]
fn repeated_events_are_counted_not_repeated() {
    let Some(up) = Up::start() else { return };
    let file = up.edited(
        "deploy-hostbot.yml",
        &[("yourname/hostbot:v1", "blux2/hello-server:1.3")],
    );
    let watch = up.background(&["get", "pod", "--watch"]);
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    // The second pull attempt comes after the first back-off (10 s upstream).
    watch.wait_lines(TIMEOUT, "a second ErrImagePull", |lines| {
        (lines.iter().filter(|l| l.contains("ErrImagePull")).count() >= 2).then_some(())
    });
    let pod = up.pod_names("name=hostbot").remove(0);
    assert!(is_deployment_pod(&pod, "hostbot"));
    let describe = up.ok(&["describe", "pod", &pod]);
    let pulling: Vec<String> = events_section(&describe)
        .into_iter()
        .filter(|l| l.contains("Pulling image \"blux2/hello-server:1.3\""))
        .collect();
    assert_eq!(pulling.len(), 1, "{describe}");
    assert!(pulling[0].contains("(x2 over "), "{describe}");
    up.stop();
}

/// What the API server's admission adds shows in `describe`: `Priority: 0` and `Service
/// Account: default` on a pod (seed 004), `IP Family Policy: SingleStack` and `IP Families:
/// IPv4` on a Service.
#[test]
fn describe_shows_what_admission_defaults() {
    let Some(up) = Up::start() else { return };
    let deployment = fixture("deployment-hello-server.yaml");
    let service = fixture("service.yaml");
    up.ok(&[
        "apply",
        "-f",
        deployment.to_str().unwrap(),
        "-f",
        service.to_str().unwrap(),
    ]);
    up.rollout_complete("hello-server");
    let pod = up.pod_names("app=hello-server").remove(0);
    let describe = up.ok(&["describe", "pod", &pod]);
    assert_contains(
        &describe,
        &["Priority:         0\n", "Service Account:  default\n"],
    );
    let describe = up.ok(&["describe", "service", "hello-server-service"]);
    assert_contains(
        &describe,
        &[
            "IP Family Policy:  SingleStack\n",
            "IP Families:       IPv4\n",
        ],
    );
    up.stop();
}

/// `kubectl describe service` (1.32 reads EndpointSlices) lists the ready pods' addresses, as
/// in seed 002: `Endpoints: 10.1.0.17:80,10.1.0.18:80,10.1.0.19:80`.
#[test]
fn describe_service_lists_the_endpoints() {
    let Some(up) = Up::start() else { return };
    let deployment = fixture("deployment-hello-server.yaml");
    let service = fixture("service.yaml");
    up.ok(&[
        "apply",
        "-f",
        deployment.to_str().unwrap(),
        "-f",
        service.to_str().unwrap(),
    ]);
    up.rollout_complete("hello-server");
    up.wait_table(
        &["endpoints", "hello-server-service"],
        "three endpoints",
        |t| {
            t.cell("hello-server-service", "ENDPOINTS")
                .split(',')
                .count()
                == 3
        },
    );
    let ips = up.ok(&["get", "pods", "-o", "jsonpath={.items[*].status.podIP}"]);
    let describe = up.ok(&["describe", "service", "hello-server-service"]);
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line:\n{describe}"));
    let shown: BTreeSet<&str> = line
        .trim_start_matches("Endpoints:")
        .trim()
        .split(',')
        .collect();
    let expected: BTreeSet<String> = ips
        .split_whitespace()
        .map(|ip| format!("{ip}:8080"))
        .collect();
    assert_eq!(
        shown,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{describe}"
    );
    up.stop();
}

/// Seed 003's imperative commands: `kubectl run` and `kubectl create deployment` (which sends
/// its object as protobuf, as typed clients do), then the relabelling exercise's first steps.
#[test]
fn kubectl_run_and_create_deployment_as_in_the_kiamol_tutorial() {
    let Some(up) = Up::start() else { return };
    assert_eq!(
        up.ok(&["run", "hello-kiamol", "--image=kiamol/ch02-hello-kiamol"]),
        "pod/hello-kiamol created\n"
    );
    assert_eq!(
        up.ok(&[
            "create",
            "deployment",
            "hello-kiamol-2",
            "--image=kiamol/ch02-hello-kiamol"
        ]),
        "deployment.apps/hello-kiamol-2 created\n"
    );
    up.rollout_complete("hello-kiamol-2");
    let pods = up.table(&["pods"]);
    let created: Vec<String> = pods
        .names()
        .into_iter()
        .filter(|n| n.starts_with("hello-kiamol-2-"))
        .collect();
    assert_eq!(created.len(), 1, "{}", pods.text);
    assert!(
        is_deployment_pod(&created[0], "hello-kiamol-2"),
        "{}",
        created[0]
    );
    assert_eq!(
        up.ok(&[
            "get",
            "deploy",
            "hello-kiamol-2",
            "-o",
            "jsonpath={.spec.template.metadata.labels}"
        ]),
        "{\"app\":\"hello-kiamol-2\"}"
    );
    up.stop();
}
