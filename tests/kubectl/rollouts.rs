//! Rolling updates (S7, S9) and Recreate (S8), seeds 002 and 004.

use std::collections::BTreeSet;

use crate::support::{
    Load, TIMEOUT, Up, assert_contains, events_section, fixture, is_template_hash, replicaset_of,
};

/// S7: changing the image tag (1.25.3 -> 1.24.0) and applying: a new ReplicaSet scales up while
/// the old one scales down to 0, one pod at a time (25%/25% of 3: surge 1, unavailable 0), and
/// `describe` shows each step; no request through the Service fails.
#[test]
fn s07_an_image_change_rolls_pod_by_pod_without_a_failed_request() {
    let Some(up) = Up::start() else { return };
    let deployment = fixture("nginx-deployment.yaml");
    let service = fixture("nginx-service.yaml");
    let applied = up.ok(&[
        "apply",
        "-f",
        deployment.to_str().unwrap(),
        "-f",
        service.to_str().unwrap(),
    ]);
    assert_eq!(
        applied,
        "deployment.apps/nginx-deployment created\nservice/nginx-service created\n"
    );
    up.rollout_complete("nginx-deployment");
    let old = up.settled_replicaset("app=nginx", 3);
    let cluster_ip = up.ok(&[
        "get",
        "svc",
        "nginx-service",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    up.wait_table(&["endpoints", "nginx-service"], "three endpoints", |t| {
        t.cell("nginx-service", "ENDPOINTS").split(',').count() == 3
    });
    let load = Load::start(&cluster_ip, 80);

    let edited = up.edited("nginx-deployment.yaml", &[("nginx:1.25.3", "nginx:1.24.0")]);
    let edited = edited.to_str().unwrap();
    assert_eq!(
        up.ok(&["apply", "--filename", edited, "--namespace", "default"]),
        "deployment.apps/nginx-deployment configured\n"
    );
    // A second apply of the same file changes nothing.
    assert_eq!(
        up.ok(&["apply", "--filename", edited, "--namespace", "default"]),
        "deployment.apps/nginx-deployment unchanged\n"
    );
    up.rollout_complete("nginx-deployment");
    let pods = up.wait_table(&["pod", "--namespace", "default"], "only new pods", |t| {
        t.rows.len() == 3 && t.rows.iter().all(|r| replicaset_of(&r["NAME"]) != old)
    });
    let new = replicaset_of(&pods.rows[0]["NAME"]).to_owned();
    assert_ne!(new, old);
    assert!(
        is_template_hash(new.strip_prefix("nginx-deployment-").unwrap()),
        "{new}"
    );
    let sets = up.table(&["replicaset", "--namespace", "default"]);
    assert_eq!(
        [
            sets.cell(&old, "DESIRED"),
            sets.cell(&old, "CURRENT"),
            sets.cell(&old, "READY")
        ],
        ["0", "0", "0"]
    );
    assert_eq!(
        [
            sets.cell(&new, "DESIRED"),
            sets.cell(&new, "CURRENT"),
            sets.cell(&new, "READY")
        ],
        ["3", "3", "3"]
    );
    assert_eq!(
        up.ok(&[
            "get",
            "deployment",
            "nginx-deployment",
            "-o=jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.24.0"
    );

    let describe = up.ok(&["describe", "deployment", "nginx-deployment"]);
    assert_contains(
        &describe,
        &[
            "Annotations:            deployment.kubernetes.io/revision: 2",
            "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
            "Image:        nginx:1.24.0",
            &format!("OldReplicaSets:  {old} (0/0 replicas created)"),
            &format!("NewReplicaSet:   {new} (3/3 replicas created)"),
        ],
    );
    let events = events_section(&describe).join("\n");
    for step in [
        format!("Scaled up replica set {old} from 0 to 3"),
        format!("Scaled up replica set {new} from 0 to 1"),
        format!("Scaled down replica set {old} from 3 to 2"),
        format!("Scaled up replica set {new} from 1 to 2"),
        format!("Scaled down replica set {old} from 2 to 1"),
        format!("Scaled up replica set {new} from 2 to 3"),
        format!("Scaled down replica set {old} from 1 to 0"),
    ] {
        assert!(
            events
                .lines()
                .any(|l| l.contains("ScalingReplicaSet") && l.ends_with(&step)),
            "no event {step:?} in:\n{events}"
        );
    }
    let describe = up.ok(&["describe", &format!("replicaset.apps/{new}")]);
    assert_contains(
        &describe,
        &[
            "deployment.kubernetes.io/desired-replicas: 3",
            "deployment.kubernetes.io/max-replicas: 4",
            "deployment.kubernetes.io/revision: 2",
            "Controlled By:  Deployment/nginx-deployment",
            "Image:         nginx:1.24.0",
        ],
    );

    let stats = load.stop();
    assert_eq!(
        stats.failed, 0,
        "failed requests during the rollout: {stats:?}"
    );
    let served: BTreeSet<&str> = stats.hosts.keys().map(|h| replicaset_of(h)).collect();
    assert!(
        served.contains(old.as_str()) && served.contains(new.as_str()),
        "traffic did not move from {old} to {new}: {stats:?}"
    );
    up.stop();
}

/// One line of `kubectl get pods --watch --output-watch-events`.
#[derive(Debug)]
struct WatchLine {
    event: String,
    name: String,
    ready: String,
    status: String,
}

fn watch_lines(lines: &[String]) -> Vec<WatchLine> {
    lines
        .iter()
        .filter(|l| !l.starts_with("EVENT"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let event = *words.first()?;
            if !["ADDED", "MODIFIED", "DELETED"].contains(&event) {
                return None;
            }
            // STATUS may be empty; RESTARTS and AGE are always the last two.
            let status = if words.len() >= 6 { words[3] } else { "" };
            Some(WatchLine {
                event: event.to_owned(),
                name: words.get(1)?.to_string(),
                ready: words.get(2)?.to_string(),
                status: status.to_owned(),
            })
        })
        .collect()
}

/// S8: strategy Recreate with 10 replicas: every old pod is terminated (its container stopped)
/// before the first new pod is created.
#[test]
fn s08_recreate_stops_every_old_pod_before_creating_new_ones() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment-recreate.yaml");
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            file.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/nginx-deployment created\n"
    );
    up.rollout_complete("nginx-deployment");
    let old = up.settled_replicaset("app=nginx", 10);
    let old_pods: BTreeSet<String> = up.pod_names("app=nginx").into_iter().collect();
    assert_eq!(old_pods.len(), 10);

    let watch = up.background(&["get", "pod", "--watch", "--output-watch-events"]);
    watch.wait_lines(TIMEOUT, "the ten pods", |lines| {
        (watch_lines(lines).len() >= 10).then_some(())
    });
    let edited = up.edited(
        "nginx-deployment-recreate.yaml",
        &[("nginx:1.24.0", "nginx:1.25.3")],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            edited.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/nginx-deployment configured\n"
    );
    up.rollout_complete("nginx-deployment");
    let lines = watch.wait_lines(TIMEOUT, "ten new running pods", |lines| {
        let parsed = watch_lines(lines);
        let running: BTreeSet<&str> = parsed
            .iter()
            .filter(|l| !old_pods.contains(&l.name) && l.ready == "1/1" && l.status == "Running")
            .map(|l| l.name.as_str())
            .collect();
        (running.len() == 10).then(|| lines.to_vec())
    });
    let parsed = watch_lines(&lines);
    let first_new = parsed
        .iter()
        .position(|l| !old_pods.contains(&l.name))
        .unwrap();
    // Up to the first new pod, every old pod has shown Terminating with its container stopped
    // (0/1), or is gone.
    for pod in &old_pods {
        let last = parsed[..first_new]
            .iter()
            .rev()
            .find(|l| &l.name == pod)
            .unwrap();
        assert!(
            last.event == "DELETED" || (last.status == "Terminating" && last.ready == "0/1"),
            "{pod} was still running when the first new pod appeared:\n{}",
            lines.join("\n")
        );
    }
    let new = up.settled_replicaset("app=nginx", 10);
    let describe = up.ok(&["describe", "deployment", "nginx-deployment"]);
    assert_contains(
        &describe,
        &[
            "StrategyType:           Recreate",
            &format!("Scaled down replica set {old} from 10 to 0"),
            &format!("Scaled up replica set {new} from 0 to 10"),
        ],
    );
    assert!(!describe.contains("RollingUpdateStrategy"), "{describe}");
    up.stop();
}

/// S9: RollingUpdate with maxSurge 100% on 10 replicas: the new ReplicaSet goes to 10 at once
/// (the old one to 8: maxUnavailable 25% = 2), so the pod count doubles, then returns to 10.
#[test]
fn s09_max_surge_100_percent_doubles_the_pods_then_returns_to_ten() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment-rollingupdate.yaml");
    up.ok(&[
        "apply",
        "--filename",
        file.to_str().unwrap(),
        "--namespace",
        "default",
    ]);
    up.rollout_complete("nginx-deployment");
    let old = up.settled_replicaset("app=nginx", 10);

    let watch = up.background(&[
        "get",
        "pod",
        "--watch",
        "--output-watch-events",
        "--namespace",
        "default",
    ]);
    watch.wait_lines(TIMEOUT, "the ten pods", |lines| {
        (watch_lines(lines).len() >= 10).then_some(())
    });
    let edited = up.edited(
        "nginx-deployment-rollingupdate.yaml",
        &[("nginx:1.24.0", "nginx:1.25.3")],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            edited.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/nginx-deployment configured\n"
    );
    up.rollout_complete("nginx-deployment");
    let pods = up.wait_table(&["pods"], "ten pods of the new ReplicaSet", |t| {
        t.rows.len() == 10 && t.rows.iter().all(|r| replicaset_of(&r["NAME"]) != old)
    });
    assert!(
        pods.rows
            .iter()
            .all(|r| r["STATUS"] == "Running" && r["READY"] == "1/1")
    );
    let new = replicaset_of(&pods.rows[0]["NAME"]).to_owned();

    let lines = watch.lines();
    let mut alive: BTreeSet<String> = BTreeSet::new();
    let mut most = 0;
    for line in watch_lines(&lines) {
        if line.event == "DELETED" {
            alive.remove(&line.name);
        } else {
            alive.insert(line.name);
        }
        most = most.max(alive.len());
    }
    assert_eq!(
        most,
        20,
        "the pod count never doubled:\n{}",
        lines.join("\n")
    );
    let describe = up.ok(&["describe", "deployment", "nginx-deployment"]);
    assert_contains(
        &describe,
        &[
            "RollingUpdateStrategy:  25% max unavailable, 100% max surge",
            &format!("Scaled up replica set {new} from 0 to 10"),
            &format!("Scaled down replica set {old} from 10 to 8"),
        ],
    );
    // How many steps the old set takes to reach 0 depends on how fast new pods become ready;
    // that it ends at 0 does not.
    let prefix = format!("Scaled down replica set {old} from ");
    assert!(
        describe
            .lines()
            .any(|l| l.contains(&prefix) && l.trim_end().ends_with(" to 0")),
        "the old replica set never reached 0:\n{describe}"
    );
    up.stop();
}
