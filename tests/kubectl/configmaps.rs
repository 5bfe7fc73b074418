//! ConfigMaps as environment (S13) and as a volume (S14); a missing key with maxSurge 0 (S15)
//! and 1 (S16). Seed 004.

use crate::support::{
    Load, Table, Up, assert_contains, events_section, fixture, hostbot_json, http_get, http_request,
};

/// Applies `hello-server-env.yaml` (PORT 8081 from the ConfigMap) and waits for its pod.
fn env_deployment(up: &Up) -> String {
    let file = fixture("hello-server-env.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server created\nconfigmap/hello-server-configmap created\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.pod_names("app=hello-server");
    assert_eq!(pods.len(), 1, "{pods:?}");
    pods[0].clone()
}

/// S13: PORT comes from a ConfigMap key; changing the key changes nothing until `kubectl
/// rollout restart`, after which the new pod listens on the new port.
#[test]
fn s13_a_configmap_env_var_takes_effect_after_rollout_restart() {
    let Some(up) = Up::start() else { return };
    let first = env_deployment(&up);
    let tables =
        Table::parse_all(&up.ok(&["get", "deployment,configmap", "--namespace", "default"]));
    assert_eq!(tables.len(), 2, "{tables:#?}");
    assert_eq!(
        tables[0].cell("deployment.apps/hello-server", "READY"),
        "1/1"
    );
    assert_eq!(tables[1].headers, ["NAME", "DATA", "AGE"]);
    assert_eq!(
        tables[1].cell("configmap/hello-server-configmap", "DATA"),
        "1"
    );

    let (_forward, port) = up.port_forward("deployments/hello-server", 8081);
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], first.as_str());

    let changed = up.edited(
        "hello-server-env.yaml",
        &[("PORT: \"8081\"", "PORT: \"5555\"")],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            changed.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server unchanged\nconfigmap/hello-server-configmap configured\n"
    );
    // The running pod still has the old value: same pod, no restart, still on 8081.
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], first.as_str());
    let pods = up.table(&["pod"]);
    assert_eq!(pods.names(), std::slice::from_ref(&first));
    assert_eq!(pods.cell(&first, "RESTARTS"), "0");

    assert_eq!(
        up.ok(&[
            "rollout",
            "restart",
            "deployment/hello-server",
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server restarted\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.wait_table(&["pod"], "only the restarted pod", |t| t.rows.len() == 1);
    let second = pods.rows[0]["NAME"].clone();
    assert_ne!(second, first);
    let (_forward, port) = up.port_forward("deployments/hello-server", 5555);
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], second.as_str());
    let ip = up.ok(&["get", "pod", &second, "-o", "jsonpath={.status.podIP}"]);
    assert!(
        http_request(&ip, 8081, "GET", "/").is_err(),
        "the restarted pod still listens on 8081"
    );
    // The tutorial's clean-up: both objects of the file.
    let file = fixture("hello-server-env.yaml");
    assert_eq!(
        up.ok(&[
            "delete",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps \"hello-server\" deleted\nconfigmap \"hello-server-configmap\" deleted\n"
    );
    up.stop();
}

/// S14: a ConfigMap mounted as a volume: its file is served; an update reaches the running pods
/// without a restart and without a failed request.
#[test]
fn s14_a_configmap_volume_updates_in_place() {
    let Some(up) = Up::start() else { return };
    let file = fixture("hello-server-volume.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server created\nconfigmap/hello-server-configmap created\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.table(&["pod", "--namespace", "default"]);
    assert_eq!(pods.rows.len(), 3, "{}", pods.text);
    let describe = up.ok(&[
        "describe",
        "configmap",
        "hello-server-configmap",
        "--namespace",
        "default",
    ]);
    assert_contains(
        &describe,
        &[
            "Name:         hello-server-configmap",
            "Data\n====\nmyconfig.txt:\n----\nI am hungry.\n",
            "BinaryData\n====\n",
        ],
    );

    let (_forward, port) = up.port_forward("deployment/hello-server", 8080);
    let (code, body) = http_get(port, "/config").unwrap();
    assert_eq!(code, 200, "{body}");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["myconfig.txt"], "I am hungry.", "{body}");

    let ips = up.table(&[
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,IP:.status.podIP",
    ]);
    let loads: Vec<Load> = ips
        .rows
        .iter()
        .map(|r| Load::start(&r["IP"], 8080))
        .collect();
    let changed = up.edited(
        "hello-server-volume.yaml",
        &[("I am hungry.", "I am full.")],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            changed.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server unchanged\nconfigmap/hello-server-configmap configured\n"
    );
    for row in &ips.rows {
        up.wait_for(&format!("{} to serve the new file", row["NAME"]), || {
            let (code, body) = http_request(&row["IP"], 8080, "GET", "/config").ok()?;
            let config: serde_json::Value = serde_json::from_str(&body).ok()?;
            (code == 200 && config["myconfig.txt"] == "I am full.").then_some(())
        });
    }
    for load in loads {
        let stats = load.stop();
        assert_eq!(
            stats.failed, 0,
            "failed requests during the update: {stats:?}"
        );
        assert!(stats.ok > 0);
    }
    let after = up.table(&["pod", "--namespace", "default"]);
    assert_eq!(after.names(), pods.names(), "the pods were replaced");
    assert!(
        after.rows.iter().all(|r| r["RESTARTS"] == "0"),
        "{}",
        after.text
    );
    up.stop();
}

/// S15: the Deployment now also reads HOST, which the ConfigMap lacks, and rolls with maxSurge
/// 0: the only old pod goes first and the new one sits in CreateContainerConfigError (an
/// outage); adding the key starts it.
#[test]
fn s15_a_missing_key_with_max_surge_0_is_an_outage() {
    let Some(up) = Up::start() else { return };
    let old = env_deployment(&up);
    let (_forward, port) = up.port_forward("deployment/hello-server", 8081);
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], old.as_str());

    let broken = fixture("hello-server-destruction.yaml");
    let broken = broken.to_str().unwrap();
    assert_eq!(
        up.ok(&["apply", "--filename", broken, "--namespace", "default"]),
        "deployment.apps/hello-server configured\nconfigmap/hello-server-configmap unchanged\n"
    );
    let pods = up.wait_table(
        &["pod", "--namespace", "default"],
        "the new pod alone, stuck",
        |t| t.rows.len() == 1 && t.rows[0]["STATUS"] == "CreateContainerConfigError",
    );
    let new = pods.rows[0]["NAME"].clone();
    assert_ne!(new, old);
    assert_eq!(pods.cell(&new, "READY"), "0/1");
    assert_eq!(pods.cell(&new, "RESTARTS"), "0");
    // The tutorial's curl fails: nothing serves any more.
    assert!(
        !matches!(http_get(port, "/"), Ok((200, _))),
        "the old pod still answers"
    );

    // `kubectl describe pod` without a name, as in the tutorial.
    let describe = up.ok(&["describe", "pod", "--namespace", "default"]);
    assert_contains(
        &describe,
        &[
            &format!("Name:             {new}"),
            "State:          Waiting",
            "Reason:       CreateContainerConfigError",
            "PORT:  <set to the key 'PORT' of config map 'hello-server-configmap'>  Optional: false",
            "HOST:  <set to the key 'HOST' of config map 'hello-server-configmap'>  Optional: false",
        ],
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Status:") && l.trim_end().ends_with("Pending")),
        "{describe}"
    );
    let events = events_section(&describe).join("\n");
    assert_contains(
        &events,
        &[
            "kubelet            Error: couldn't find key HOST in ConfigMap default/hello-server-configmap",
        ],
    );
    let yaml = up.ok(&[
        "get",
        "deployment",
        "hello-server",
        "--output",
        "yaml",
        "--namespace",
        "default",
    ]);
    assert_contains(
        &yaml,
        &[
            "deployment.kubernetes.io/revision: \"2\"",
            "      maxSurge: 0\n",
            "      maxUnavailable: 25%\n",
            "  unavailableReplicas: 1\n",
            "  updatedReplicas: 1\n",
        ],
    );
    let yaml = up.ok(&[
        "get",
        "configmap",
        "hello-server-configmap",
        "--output",
        "yaml",
        "--namespace",
        "default",
    ]);
    assert_contains(&yaml, &["data:\n  PORT: \"8081\"\n"]);
    assert!(!yaml.contains("HOST"), "{yaml}");

    let fixed = up.edited(
        "hello-server-destruction.yaml",
        &[(
            "  PORT: \"8081\"\n",
            "  PORT: \"8081\"\n  HOST: \"localhost\"\n",
        )],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            fixed.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server unchanged\nconfigmap/hello-server-configmap configured\n"
    );
    // The same pod starts (the kubelet retries the container), no restart counted.
    let pods = up.wait_table(&["pod", "--namespace", "default"], "the pod running", |t| {
        t.rows.len() == 1 && t.rows[0]["STATUS"] == "Running" && t.rows[0]["READY"] == "1/1"
    });
    assert_eq!(pods.names(), std::slice::from_ref(&new));
    assert_eq!(pods.cell(&new, "RESTARTS"), "0");
    up.rollout_complete("hello-server");
    let (_forward, port) = up.port_forward("deployment/hello-server", 8081);
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], new.as_str());
    // HOST=localhost is each pod's own loopback: a second replica listens on it too.
    assert_eq!(
        up.ok(&["scale", "deployment", "hello-server", "--replicas=2"]),
        "deployment.apps/hello-server scaled\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.table(&["pod"]);
    assert_eq!(pods.rows.len(), 2, "{}", pods.text);
    assert!(
        pods.rows
            .iter()
            .all(|r| r["READY"] == "1/1" && r["STATUS"] == "Running" && r["RESTARTS"] == "0"),
        "{}",
        pods.text
    );
    up.stop();
}

/// S16: the same broken change with maxSurge 1: the new pod is stuck but the old one keeps
/// serving; adding the key completes the rollout.
#[test]
fn s16_a_missing_key_with_max_surge_1_keeps_the_old_pod_serving() {
    let Some(up) = Up::start() else { return };
    let old = env_deployment(&up);
    let ip = up.ok(&["get", "pod", &old, "-o", "jsonpath={.status.podIP}"]);
    let load = Load::start(&ip, 8081);

    let broken = fixture("hello-server-destruction-surge1.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            broken.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server configured\nconfigmap/hello-server-configmap unchanged\n"
    );
    let pods = up.wait_table(&["pod"], "the new pod stuck beside the old", |t| {
        t.rows.len() == 2
            && t.rows
                .iter()
                .any(|r| r["STATUS"] == "CreateContainerConfigError")
    });
    assert_eq!(pods.cell(&old, "STATUS"), "Running");
    assert_eq!(pods.cell(&old, "READY"), "1/1");
    let deploy = up.table(&["deployment"]);
    assert_eq!(deploy.cell("hello-server", "READY"), "1/1");
    assert_eq!(deploy.cell("hello-server", "UP-TO-DATE"), "1");
    assert_eq!(deploy.cell("hello-server", "AVAILABLE"), "1");
    // kubectl forwards to the running pod.
    let (forward, port) = up.port_forward("deployment/hello-server", 8081);
    assert_eq!(hostbot_json("127.0.0.1", port)["host"], old.as_str());
    drop(forward);
    // Stop before the fix: once the rollout completes the old pod drains and goes.
    let stats = load.stop();
    assert_eq!(
        stats.failed, 0,
        "the old pod failed requests while it served: {stats:?}"
    );
    assert!(stats.ok > 0);

    let fixed = up.edited(
        "hello-server-destruction-surge1.yaml",
        &[(
            "  PORT: \"8081\"\n",
            "  PORT: \"8081\"\n  HOST: \"localhost\"\n",
        )],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            fixed.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server unchanged\nconfigmap/hello-server-configmap configured\n"
    );
    up.rollout_complete("hello-server");
    let pods = up.wait_table(&["pod"], "only the new pod", |t| t.rows.len() == 1);
    assert_ne!(pods.rows[0]["NAME"], old);
    assert_eq!(pods.rows[0]["STATUS"], "Running");
    let (_forward, port) = up.port_forward("deployment/hello-server", 8081);
    assert_eq!(
        hostbot_json("127.0.0.1", port)["host"],
        pods.rows[0]["NAME"].as_str()
    );
    up.stop();
}
