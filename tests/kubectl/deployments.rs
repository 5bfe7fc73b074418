//! Deployment -> ReplicaSet -> Pods (S2-S6, seeds 000-004), scale and delete.

use std::collections::BTreeSet;

use crate::support::{
    Load, Table, Up, age_seconds, assert_contains, events_section, fixture, hostbot_json,
    is_deployment_pod, is_suffixed, is_template_hash, replicaset_of,
};

/// S2: `kubectl apply -f deploy-hostbot.yml`, wait for READY 1/1, `port-forward deploy/hostbot
/// 8080:80`: the same JSON as the bare pod's, with the pod's name `hostbot-<hash>-<5>` as host.
#[test]
fn s02_a_deployment_answers_through_port_forward_deploy() {
    let Some(up) = Up::start() else { return };
    let file = fixture("deploy-hostbot.yml");
    let file = file.to_str().unwrap();
    assert_eq!(
        up.ok(&["apply", "-f", file]),
        "deployment.apps/hostbot created\n"
    );
    let table = up.wait_table(&["deploy/hostbot"], "READY 1/1", |t| {
        t.cell("hostbot", "READY") == "1/1"
    });
    assert_eq!(
        table.headers,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(table.cell("hostbot", "UP-TO-DATE"), "1");
    assert_eq!(table.cell("hostbot", "AVAILABLE"), "1");
    let pods = up.pod_names("name=hostbot");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert!(
        is_deployment_pod(&pods[0], "hostbot"),
        "pod name {}",
        pods[0]
    );

    let (_forward, port) = up.port_forward("deploy/hostbot", 80);
    let answer = hostbot_json("127.0.0.1", port);
    assert_eq!(answer["host"], pods[0].as_str(), "{answer}");
    assert!(answer["time"].is_string(), "{answer}");

    assert_eq!(
        up.ok(&["delete", "-f", file]),
        "deployment.apps \"hostbot\" deleted\n"
    );
    // The ReplicaSet and the pod go with it (background cascade).
    up.wait_for("the ReplicaSet and pod to go", || {
        let out = up.kubectl(&["get", "rs,pods"]);
        (out.success() && out.stdout.is_empty()).then_some(())
    });
    up.stop();
}

/// S3: a Deployment makes a ReplicaSet `<deployment>-<hash>` which makes pods `<rs>-<5>`:
/// `kubectl get deploy,rs,pods` shows READY 3/3 and DESIRED/CURRENT/READY 3; the other ways of
/// looking at them (wide, labels, selectors, jsonpath, yaml, describe) agree.
#[test]
fn s03_a_deployment_makes_a_replicaset_which_makes_pods() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    let file = file.to_str().unwrap();
    assert_eq!(
        up.ok(&["apply", "--filename", file, "--namespace", "default"]),
        "deployment.apps/nginx-deployment created\n"
    );
    up.rollout_complete("nginx-deployment");

    let tables = Table::parse_all(&up.ok(&["get", "deploy,rs,pods"]));
    assert_eq!(tables.len(), 3, "{tables:#?}");
    let (deploy, rs, pods) = (&tables[0], &tables[1], &tables[2]);
    assert_eq!(
        deploy.headers,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    let row = deploy.row("deployment.apps/nginx-deployment");
    assert_eq!(
        (
            &row["READY"][..],
            &row["UP-TO-DATE"][..],
            &row["AVAILABLE"][..]
        ),
        ("3/3", "3", "3")
    );
    assert_eq!(rs.headers, ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(rs.rows.len(), 1, "{}", rs.text);
    let rs_name = rs.rows[0]["NAME"]
        .strip_prefix("replicaset.apps/")
        .unwrap()
        .to_owned();
    let hash = rs_name.strip_prefix("nginx-deployment-").unwrap();
    assert!(is_template_hash(hash), "ReplicaSet name {rs_name}");
    for column in ["DESIRED", "CURRENT", "READY"] {
        assert_eq!(rs.rows[0][column], "3", "{}", rs.text);
    }
    assert_eq!(pods.headers, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(pods.rows.len(), 3, "{}", pods.text);
    for pod in &pods.rows {
        let name = pod["NAME"].strip_prefix("pod/").unwrap();
        assert!(is_suffixed(name, &rs_name), "pod {name} of {rs_name}");
        assert_eq!(
            (&pod["READY"][..], &pod["STATUS"][..], &pod["RESTARTS"][..]),
            ("1/1", "Running", "0")
        );
    }

    // One kind at a time, as seed 001 types them.
    let deployments = up.table(&["deployment"]);
    assert_eq!(deployments.cell("nginx-deployment", "READY"), "3/3");
    assert_eq!(up.table(&["replicaset"]).cell(&rs_name, "DESIRED"), "3");
    let pod_names: BTreeSet<String> = up.table(&["pod"]).names().into_iter().collect();
    assert_eq!(pod_names.len(), 3);

    let wide = up.table(&["deploy", "-o", "wide"]);
    assert_eq!(wide.cell("nginx-deployment", "CONTAINERS"), "nginx");
    assert_eq!(wide.cell("nginx-deployment", "IMAGES"), "nginx:1.25.3");
    assert_eq!(wide.cell("nginx-deployment", "SELECTOR"), "app=nginx");
    let wide = up.table(&["rs", "-o", "wide"]);
    assert_eq!(
        wide.cell(&rs_name, "SELECTOR"),
        format!("app=nginx,pod-template-hash={hash}")
    );
    let labels = up.table(&["pods", "--show-labels"]);
    for row in &labels.rows {
        assert_eq!(row["LABELS"], format!("app=nginx,pod-template-hash={hash}"));
    }
    assert_eq!(up.table(&["pods", "-l", "app=nginx"]).rows.len(), 3);
    let none = up.kubectl(&["get", "pods", "-l", "app=other"]);
    assert_eq!(none.stderr, "No resources found in default namespace.\n");
    assert_eq!(
        up.ok(&[
            "get",
            "deployment",
            "nginx-deployment",
            "-o=jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.25.3"
    );
    let owner = up.json(&["rs", &rs_name]);
    let reference = &owner["metadata"]["ownerReferences"][0];
    assert_eq!(reference["kind"], "Deployment");
    assert_eq!(reference["name"], "nginx-deployment");
    assert_eq!(reference["controller"], true);
    let yaml = up.ok(&["get", "deploy", "nginx-deployment", "-o", "yaml"]);
    assert_contains(
        &yaml,
        &[
            "deployment.kubernetes.io/revision: \"1\"",
            "kubectl.kubernetes.io/last-applied-configuration:",
            "  progressDeadlineSeconds: 600\n",
            "  revisionHistoryLimit: 10\n",
            "      maxSurge: 25%\n",
            "      maxUnavailable: 25%\n",
            "    type: RollingUpdate\n",
            "  readyReplicas: 3\n",
        ],
    );

    let describe = up.ok(&["describe", "replicaset", &rs_name]);
    assert_contains(
        &describe,
        &[
            &format!("Selector:       app=nginx,pod-template-hash={hash}"),
            "deployment.kubernetes.io/revision: 1",
            "Controlled By:  Deployment/nginx-deployment",
            "Replicas:       3 current / 3 desired",
            "Pods Status:    3 Running / 0 Waiting / 0 Succeeded / 0 Failed",
            "Image:         nginx:1.25.3",
        ],
    );
    let events = events_section(&describe).join("\n");
    for pod in &pod_names {
        assert_contains(
            &events,
            &[&format!("replicaset-controller  Created pod: {pod}")],
        );
    }
    let describe = up.ok(&["describe", "deployment", "nginx-deployment"]);
    assert_contains(
        &describe,
        &[
            "Selector:               app=nginx",
            "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
            "StrategyType:           RollingUpdate",
            "MinReadySeconds:        0",
            "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
            "OldReplicaSets:  <none>",
            &format!("NewReplicaSet:   {rs_name} (3/3 replicas created)"),
            &format!("deployment-controller  Scaled up replica set {rs_name} from 0 to 3"),
        ],
    );
    let conditions: Vec<&str> = describe
        .lines()
        .skip_while(|l| !l.starts_with("Conditions:"))
        .skip(3)
        .take(2)
        .collect();
    let words: Vec<Vec<&str>> = conditions
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        words,
        [
            ["Available", "True", "MinimumReplicasAvailable"],
            ["Progressing", "True", "NewReplicaSetAvailable"]
        ],
        "{describe}"
    );
    up.stop();
}

/// S4: deleting the ReplicaSet deletes its pods; the Deployment creates it again (same
/// template, same name) and it creates new pods.
#[test]
fn s04_a_deleted_replicaset_comes_back_with_new_pods() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let rs = up.table(&["rs"]);
    let rs_name = rs.rows[0]["NAME"].clone();
    let uid = up.ok(&["get", "rs", &rs_name, "-o", "jsonpath={.metadata.uid}"]);
    let old: BTreeSet<String> = up.pod_names("app=nginx").into_iter().collect();
    assert_eq!(old.len(), 3);

    assert_eq!(
        up.ok(&["delete", "replicaset", &rs_name]),
        format!("replicaset.apps \"{rs_name}\" deleted\n")
    );
    let pods = up.wait_table(&["pods"], "three new running pods and no old one", |t| {
        let names: BTreeSet<String> = t.names().into_iter().collect();
        names.len() == 3
            && names.is_disjoint(&old)
            && t.rows
                .iter()
                .all(|r| r["STATUS"] == "Running" && r["READY"] == "1/1")
    });
    for name in pods.names() {
        assert!(is_suffixed(&name, &rs_name), "pod {name} of {rs_name}");
    }
    let again = up.table(&["rs"]);
    assert_eq!(
        again.names(),
        std::slice::from_ref(&rs_name),
        "{}",
        again.text
    );
    assert_eq!(again.cell(&rs_name, "READY"), "3");
    let new_uid = up.ok(&["get", "rs", &rs_name, "-o", "jsonpath={.metadata.uid}"]);
    assert_ne!(
        uid, new_uid,
        "the ReplicaSet was not deleted and created again"
    );
    up.stop();
}

/// S5: deleting one pod of a 3-replica Deployment: a replacement appears (the youngest AGE),
/// the count is back to 3, and no request through the Service fails meanwhile.
#[test]
fn s05_a_deleted_pod_is_replaced_without_a_failed_request() {
    let Some(up) = Up::start() else { return };
    let deployment = fixture("deployment-hello-server.yaml");
    let service = fixture("service.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            deployment.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server created\n"
    );
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
    up.rollout_complete("hello-server");
    let before = up.table(&["pod", "--namespace", "default"]);
    assert_eq!(before.rows.len(), 3, "{}", before.text);
    let victim = before.rows[2]["NAME"].clone();
    let cluster_ip = up.ok(&[
        "get",
        "svc",
        "hello-server-service",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
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
    let load = Load::start(&cluster_ip, 8080);

    assert_eq!(
        up.ok(&["delete", "pod", &victim, "--namespace", "default"]),
        format!("pod \"{victim}\" deleted\n")
    );
    let after = up.wait_table(
        &["pod", "--namespace", "default"],
        "three running pods",
        |t| {
            t.rows.len() == 3
                && t.rows
                    .iter()
                    .all(|r| r["STATUS"] == "Running" && r["READY"] == "1/1")
        },
    );
    let old = before.names();
    let replacement: Vec<String> = after
        .names()
        .into_iter()
        .filter(|name| !old.contains(name))
        .collect();
    assert_eq!(replacement.len(), 1, "{}", after.text);
    let replacement = replacement[0].clone();
    assert!(!after.names().contains(&victim));
    assert!(is_deployment_pod(&replacement, "hello-server"));
    assert_eq!(replicaset_of(&replacement), replicaset_of(&victim));
    let youngest = after
        .rows
        .iter()
        .min_by_key(|r| age_seconds(&r["AGE"]))
        .unwrap();
    assert_eq!(
        age_seconds(&youngest["AGE"]),
        age_seconds(after.cell(&replacement, "AGE")),
        "{}",
        after.text
    );
    // Let the replacement take traffic too, then look at what the load saw.
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
    let stats = load.stop();
    assert_eq!(stats.failed, 0, "failed requests: {stats:?}");
    assert!(stats.ok > 20, "{stats:?}");
    assert!(stats.hosts.contains_key(&victim), "{stats:?}");
    up.stop();
}

/// S6: relabelling a pod so that it no longer matches orphans it (it keeps running) and the
/// ReplicaSet creates another; restoring the label makes the ReplicaSet delete one of the two.
#[test]
fn s06_a_relabelled_pod_is_orphaned_and_replaced() {
    let Some(up) = Up::start() else { return };
    assert_eq!(
        up.ok(&["run", "hello-kiamol", "--image=kiamol/ch02-hello-kiamol"]),
        "pod/hello-kiamol created\n"
    );
    assert_eq!(
        up.ok(&["wait", "--for=condition=Ready", "pod", "hello-kiamol"]),
        "pod/hello-kiamol condition met\n"
    );
    let file = fixture("kiamol-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("hello-kiamol-2");
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
    let original = up.table(&["pods", "-l", "app=hello-kiamol-2"]);
    assert_eq!(original.rows.len(), 1, "{}", original.text);
    let relabelled = original.rows[0]["NAME"].clone();
    let hash = replicaset_of(&relabelled)
        .strip_prefix("hello-kiamol-2-")
        .unwrap()
        .to_owned();

    assert_eq!(
        up.ok(&[
            "label",
            "pods",
            "-l",
            "app=hello-kiamol-2",
            "--overwrite",
            "app=hello-kiamol-x"
        ]),
        format!("pod/{relabelled} labeled\n")
    );
    let replaced = up.wait_table(
        &["pods", "-l", "app=hello-kiamol-2"],
        "a replacement",
        |t| {
            t.rows.len() == 1 && t.rows[0]["NAME"] != relabelled && t.rows[0]["STATUS"] == "Running"
        },
    );
    let replacement = replaced.rows[0]["NAME"].clone();
    let columns = up.table(&[
        "pods",
        "-o",
        "custom-columns=NAME:metadata.name,LABELS:metadata.labels",
    ]);
    assert_eq!(
        columns.cell("hello-kiamol", "LABELS"),
        "map[run:hello-kiamol]"
    );
    assert_eq!(
        columns.cell(&relabelled, "LABELS"),
        format!("map[app:hello-kiamol-x pod-template-hash:{hash}]")
    );
    assert_eq!(
        columns.cell(&replacement, "LABELS"),
        format!("map[app:hello-kiamol-2 pod-template-hash:{hash}]")
    );
    // The orphan keeps running, without an owner.
    let pods = up.table(&["pods"]);
    assert_eq!(pods.cell(&relabelled, "STATUS"), "Running");
    assert_eq!(pods.cell(&relabelled, "READY"), "1/1");
    assert_eq!(
        up.ok(&[
            "get",
            "pod",
            &relabelled,
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        ""
    );

    // Restored: the ReplicaSet adopts it and, one too many, deletes one of the two.
    assert_eq!(
        up.ok(&[
            "label",
            "pods",
            "-l",
            "app=hello-kiamol-x",
            "--overwrite",
            "app=hello-kiamol-2"
        ]),
        format!("pod/{relabelled} labeled\n")
    );
    let left = up.wait_table(&["pods", "-l", "app=hello-kiamol-2"], "one pod left", |t| {
        t.rows.len() == 1 && t.rows[0]["STATUS"] == "Running"
    });
    let survivor = &left.rows[0]["NAME"];
    assert!(
        *survivor == relabelled || *survivor == replacement,
        "{}",
        left.text
    );
    let owner = up.json(&["pod", survivor]);
    assert_eq!(
        owner["metadata"]["ownerReferences"][0]["kind"],
        "ReplicaSet"
    );
    assert_eq!(up.table(&["rs"]).rows[0]["CURRENT"], "1");
    assert_eq!(
        up.table(&["pods"]).cell("hello-kiamol", "STATUS"),
        "Running"
    );
    up.stop();
}

/// Seed 004's first exercise: a bare ReplicaSet names its pods `<rs>-<5>`; deleting it takes
/// them along.
#[test]
fn a_bare_replicaset_names_its_pods_and_takes_them_along() {
    let Some(up) = Up::start() else { return };
    let file = fixture("replicaset.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "replicaset.apps/httpserver created\n"
    );
    let rs = up.wait_table(&["replicaset", "--namespace", "default"], "READY 3", |t| {
        t.cell("httpserver", "READY") == "3"
    });
    assert_eq!(rs.cell("httpserver", "DESIRED"), "3");
    assert_eq!(rs.cell("httpserver", "CURRENT"), "3");
    let pods = up.wait_table(
        &["pod", "--namespace", "default"],
        "three running pods",
        |t| t.rows.len() == 3 && t.rows.iter().all(|r| r["STATUS"] == "Running"),
    );
    for name in pods.names() {
        assert!(is_suffixed(&name, "httpserver"), "pod name {name}");
    }
    assert_eq!(
        up.ok(&[
            "delete",
            "replicaset",
            "httpserver",
            "--namespace",
            "default"
        ]),
        "replicaset.apps \"httpserver\" deleted\n"
    );
    up.wait_for("the pods to go", || {
        let out = up.kubectl(&["get", "pods"]);
        (out.stdout.is_empty() && out.stderr.starts_with("No resources found")).then_some(())
    });
    up.stop();
}

/// `kubectl scale` up and down (events say so), then `kubectl delete deploy` takes the
/// ReplicaSet and pods along; a missing deployment is a NotFound error.
#[test]
fn scale_then_delete_a_deployment() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let rs_name = up.table(&["rs"]).rows[0]["NAME"].clone();

    assert_eq!(
        up.ok(&["scale", "deployment", "nginx-deployment", "--replicas", "5"]),
        "deployment.apps/nginx-deployment scaled\n"
    );
    up.wait_table(&["deploy"], "READY 5/5", |t| {
        t.cell("nginx-deployment", "READY") == "5/5"
    });
    assert_eq!(up.table(&["rs"]).cell(&rs_name, "DESIRED"), "5");
    assert_eq!(
        up.ok(&["scale", "--replicas=2", "deployment/nginx-deployment"]),
        "deployment.apps/nginx-deployment scaled\n"
    );
    up.wait_table(&["pods"], "two pods", |t| {
        t.rows.len() == 2 && t.rows.iter().all(|r| r["STATUS"] == "Running")
    });
    let deploy = up.table(&["deploy"]);
    assert_eq!(deploy.cell("nginx-deployment", "READY"), "2/2");
    let describe = up.ok(&["describe", "deploy", "nginx-deployment"]);
    assert_contains(
        &describe,
        &[
            &format!("Scaled up replica set {rs_name} from 3 to 5"),
            &format!("Scaled down replica set {rs_name} from 5 to 2"),
            "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable",
        ],
    );

    assert_eq!(
        up.ok(&["delete", "deploy", "nginx-deployment"]),
        "deployment.apps \"nginx-deployment\" deleted\n"
    );
    up.wait_for("the ReplicaSet and pods to go", || {
        let out = up.kubectl(&["get", "deploy,rs,pods"]);
        (out.success() && out.stdout.is_empty()).then_some(())
    });
    assert_eq!(
        up.fails(&["get", "deploy", "nginx-deployment"]),
        "Error from server (NotFound): deployments.apps \"nginx-deployment\" not found\n"
    );
    up.stop();
}
