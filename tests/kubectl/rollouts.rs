//! Rolling updates (S7, S9, S10), Recreate (S8) and the rollout verbs, seeds 002 and 004.

use std::collections::BTreeSet;

use crate::support::{
    Load, TIMEOUT, Table, Up, assert_contains, events_section, fixture, hostbot_json, is_suffixed,
    is_template_hash, replicaset_of,
};

/// Waits until the pods matching `selector` are `count` pods of one ReplicaSet (the old ones
/// gone, not just terminating); returns its name.
fn settled_replicaset(up: &Up, selector: &str, count: usize) -> String {
    up.wait_for(&format!("{count} pods of one ReplicaSet"), || {
        let pods = up.pod_names(selector);
        let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
        (pods.len() == count && sets.len() == 1)
            .then(|| sets.into_iter().next().unwrap().to_owned())
    })
}

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
    let old = settled_replicaset(&up, "app=nginx", 3);
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
    let old = settled_replicaset(&up, "app=nginx", 10);
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
    let new = settled_replicaset(&up, "app=nginx", 10);
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
    let old = settled_replicaset(&up, "app=nginx", 10);

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
            &format!("Scaled down replica set {old} from 8 to 0"),
        ],
    );
    up.stop();
}

/// S10: a rolling update to `blux2/hello-server:1.3`, which does not exist: the new pod sits in
/// ErrImagePull / ImagePullBackOff, UP-TO-DATE is 1, the old pods keep serving (3 replicas at
/// 25%: maxUnavailable 0, maxSurge 1); `kubectl edit` to 1.2 completes the rollout.
#[test]
fn s10_a_missing_image_stalls_the_rollout_while_old_pods_serve() {
    let Some(up) = Up::start() else { return };
    let deployment = fixture("deployment-hello-server.yaml");
    let service = fixture("service.yaml");
    up.ok(&[
        "apply",
        "--filename",
        deployment.to_str().unwrap(),
        "--namespace",
        "default",
    ]);
    up.ok(&[
        "apply",
        "--filename",
        service.to_str().unwrap(),
        "--namespace",
        "default",
    ]);
    up.rollout_complete("hello-server");
    let old = settled_replicaset(&up, "app=hello-server", 3);
    let (_forward, port) = up.port_forward("deployments/hello-server", 8080);
    assert!(
        hostbot_json("127.0.0.1", port)["host"]
            .as_str()
            .unwrap()
            .starts_with(&old)
    );
    let cluster_ip = up.ok(&[
        "get",
        "service",
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
    let watch = up.background(&["get", "pod", "--watch", "--namespace", "default"]);
    watch.wait_lines(TIMEOUT, "the three pods", |lines| {
        (lines.len() >= 4).then_some(())
    });

    let broken = up.edited(
        "deployment-hello-server.yaml",
        &[("blux2/hello-server:1.0", "blux2/hello-server:1.3")],
    );
    assert_eq!(
        up.ok(&[
            "apply",
            "--filename",
            broken.to_str().unwrap(),
            "--namespace",
            "default"
        ]),
        "deployment.apps/hello-server configured\n"
    );
    // The watch shows the pull failing, then backing off.
    let bad = watch.wait_line(TIMEOUT, |l| {
        l.contains("ErrImagePull") && !l.starts_with(&old)
    });
    let bad_pod = bad.split_whitespace().next().unwrap().to_owned();
    let bad_rs = replicaset_of(&bad_pod).to_owned();
    assert_ne!(bad_rs, old);
    assert!(bad.contains("0/1"), "{bad}");
    watch.wait_line(TIMEOUT, |l| {
        l.starts_with(&bad_pod) && l.contains("ImagePullBackOff")
    });

    let deploy = up.table(&["deployment", "--namespace", "default"]);
    assert_eq!(deploy.cell("hello-server", "READY"), "3/3");
    assert_eq!(deploy.cell("hello-server", "UP-TO-DATE"), "1");
    assert_eq!(deploy.cell("hello-server", "AVAILABLE"), "3");
    let sets = up.table(&["replicaset", "--namespace", "default"]);
    assert_eq!(
        [
            sets.cell(&old, "DESIRED"),
            sets.cell(&old, "CURRENT"),
            sets.cell(&old, "READY")
        ],
        ["3", "3", "3"]
    );
    assert_eq!(
        [
            sets.cell(&bad_rs, "DESIRED"),
            sets.cell(&bad_rs, "CURRENT"),
            sets.cell(&bad_rs, "READY")
        ],
        ["1", "1", "0"]
    );
    let pods = up.table(&["pod", "--namespace", "default"]);
    assert_eq!(pods.rows.len(), 4, "{}", pods.text);
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&pods.cell(&bad_pod, "STATUS")),
        "{}",
        pods.text
    );
    assert_eq!(pods.cell(&bad_pod, "READY"), "0/1");

    let describe = up.ok(&["describe", "pod", &bad_pod, "--namespace", "default"]);
    assert_contains(
        &describe,
        &[
            "Image:          blux2/hello-server:1.3",
            "State:          Waiting",
            &format!("Controlled By:  ReplicaSet/{bad_rs}"),
            "Ready:          False",
            "Restart Count:  0",
            "Failed to pull image \"blux2/hello-server:1.3\": rpc error: code = NotFound desc = \
             failed to pull and unpack image \"docker.io/blux2/hello-server:1.3\": failed to \
             resolve reference \"docker.io/blux2/hello-server:1.3\": \
             docker.io/blux2/hello-server:1.3: not found",
            "Error: ErrImagePull",
            "Error: ImagePullBackOff",
            "Back-off pulling image \"blux2/hello-server:1.3\"",
            "Pulling image \"blux2/hello-server:1.3\"",
        ],
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Status:") && l.trim_end().ends_with("Pending")),
        "{describe}"
    );
    let reason = describe
        .lines()
        .find(|l| l.trim_start().starts_with("Reason:"))
        .unwrap();
    assert!(
        reason.ends_with("ImagePullBackOff") || reason.ends_with("ErrImagePull"),
        "{reason}"
    );
    // A pod that is not running cannot be forwarded to.
    let target = format!("pod/{bad_pod}");
    let refused = up.fails(&["port-forward", &target, ":8080"]);
    assert_eq!(
        refused,
        "error: unable to forward port because pod is not running. Current status=Pending\n"
    );
    // The rollout does not finish; the old pods answer.
    let stalled = up.kubectl(&[
        "rollout",
        "status",
        "deployment/hello-server",
        "--timeout=1s",
    ]);
    assert!(!stalled.success(), "{stalled}");
    assert_contains(
        &stalled.stdout,
        &[
            "Waiting for deployment \"hello-server\" rollout to finish: 1 out of 3 new replicas have been updated...",
        ],
    );
    assert_eq!(
        stalled.stderr,
        "error: timed out waiting for the condition\n"
    );
    assert!(
        hostbot_json("127.0.0.1", port)["host"]
            .as_str()
            .unwrap()
            .starts_with(&old)
    );
    // While the rollout is stuck, the old pods served every request. (After the fix the new
    // pods, which have no readiness probe, may be sent a connection before they listen, as
    // upstream: that phase is not part of the claim.)
    let stats = load.stop();
    assert_eq!(
        stats.failed, 0,
        "failed requests while the rollout was stuck: {stats:?}"
    );
    assert!(stats.ok > 20, "{stats:?}");
    assert!(
        stats.hosts.keys().all(|host| replicaset_of(host) == old),
        "a pod of the broken ReplicaSet answered: {stats:?}"
    );

    // Fix the tag with `kubectl edit` (the editor is a sed script).
    let editor = up.write(
        "editor.sh",
        "#!/bin/sh\nexec sed -i 's#blux2/hello-server:1.3#blux2/hello-server:1.2#' \"$1\"\n",
    );
    let mut command = up.command(&[
        "edit",
        "deployment",
        "hello-server",
        "--namespace",
        "default",
    ]);
    command.env("EDITOR", format!("sh {}", editor.display()));
    let edited = up.run(
        &[
            "edit",
            "deployment",
            "hello-server",
            "--namespace",
            "default",
        ],
        command,
    );
    assert!(edited.success(), "{edited}");
    assert_eq!(edited.stdout, "deployment.apps/hello-server edited\n");
    up.rollout_complete("hello-server");
    // Seed 004 looks at both at once.
    let (fixed, sets) = up.wait_for("three pods of the fixed ReplicaSet", || {
        let out = up.kubectl(&["get", "pod,replicaset", "--namespace", "default"]);
        let tables = Table::parse_all(&out.stdout);
        let [pods, sets] = &tables[..] else {
            return None;
        };
        let fixed = sets.rows.iter().find(|r| r["READY"] == "3")?["NAME"]
            .strip_prefix("replicaset.apps/")?
            .to_owned();
        let done = sets.rows.len() == 3
            && pods.rows.len() == 3
            && pods.rows.iter().all(|r| {
                r["STATUS"] == "Running"
                    && r["NAME"]
                        .strip_prefix("pod/")
                        .is_some_and(|name| is_suffixed(name, &fixed))
            });
        done.then(|| (fixed, sets.clone()))
    });
    assert!(fixed != old && fixed != bad_rs, "{}", sets.text);
    for rs in [&old, &bad_rs] {
        let row = sets.row(&format!("replicaset.apps/{rs}"));
        assert_eq!(
            [&row["DESIRED"][..], &row["CURRENT"][..], &row["READY"][..]],
            ["0", "0", "0"],
            "{}",
            sets.text
        );
    }
    assert_eq!(
        up.ok(&[
            "get",
            "deployment",
            "hello-server",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "blux2/hello-server:1.2"
    );
    up.stop();
}

/// The rollout verbs on one Deployment: `set image`, `rollout history` (and `--revision`),
/// `rollout undo` (reusing the old ReplicaSet), `rollout pause` (nothing rolls, restart refused),
/// `rollout resume`, `rollout restart` (a new template, so new pods).
#[test]
fn rollout_history_undo_pause_resume_and_restart() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let first = settled_replicaset(&up, "app=nginx", 3);
    let deploy = "deployment/nginx-deployment";

    assert_eq!(
        up.ok(&["set", "image", deploy, "nginx=nginx:1.24.0"]),
        "deployment.apps/nginx-deployment image updated\n"
    );
    up.rollout_complete("nginx-deployment");
    let second = up.wait_for("one ReplicaSet of pods", || {
        let pods = up.pod_names("app=nginx");
        let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
        (pods.len() == 3 && sets.len() == 1).then(|| sets.into_iter().next().unwrap().to_owned())
    });
    assert_ne!(first, second);
    assert_eq!(
        up.ok(&["rollout", "history", deploy]),
        "deployment.apps/nginx-deployment \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let revision = up.ok(&["rollout", "history", deploy, "--revision=1"]);
    assert_contains(
        &revision,
        &[
            "deployment.apps/nginx-deployment with revision #1",
            "nginx:1.25.3",
        ],
    );

    assert_eq!(
        up.ok(&["rollout", "undo", deploy]),
        "deployment.apps/nginx-deployment rolled back\n"
    );
    up.rollout_complete("nginx-deployment");
    let image = "jsonpath={.spec.template.spec.containers[0].image}";
    assert_eq!(up.ok(&["get", deploy, "-o", image]), "nginx:1.25.3");
    let back = up.wait_for("the first ReplicaSet's pods only", || {
        let pods = up.pod_names("app=nginx");
        let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
        (pods.len() == 3 && sets.len() == 1).then(|| sets.into_iter().next().unwrap().to_owned())
    });
    assert_eq!(back, first, "undo must reuse the old ReplicaSet");
    assert_eq!(
        up.ok(&[
            "get",
            "rs",
            &first,
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ]),
        "3"
    );
    assert_eq!(
        up.ok(&["rollout", "history", deploy]),
        "deployment.apps/nginx-deployment \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );

    // Paused: a template change makes no ReplicaSet; restart is refused.
    assert_eq!(
        up.ok(&["rollout", "pause", deploy]),
        "deployment.apps/nginx-deployment paused\n"
    );
    assert_eq!(
        up.ok(&["get", deploy, "-o", "jsonpath={.spec.paused}"]),
        "true"
    );
    up.ok(&["set", "image", deploy, "nginx=nginx:1.23.0"]);
    let stalled = up.kubectl(&["rollout", "status", deploy, "--timeout=1s"]);
    assert!(!stalled.success(), "{stalled}");
    assert_contains(
        &stalled.stdout,
        &[
            "Waiting for deployment \"nginx-deployment\" rollout to finish: 0 out of 3 new replicas have been updated...",
        ],
    );
    let sets = up.table(&["rs"]);
    assert_eq!(
        sets.rows.len(),
        2,
        "a paused Deployment rolled:\n{}",
        sets.text
    );
    assert_eq!(
        up.fails(&["rollout", "restart", deploy]),
        "error: deployments.apps \"nginx-deployment\" can't restart paused deployment (run rollout resume first)\n"
    );
    assert_eq!(
        up.ok(&["rollout", "resume", deploy]),
        "deployment.apps/nginx-deployment resumed\n"
    );
    up.rollout_complete("nginx-deployment");
    let third = settled_replicaset(&up, "app=nginx", 3);
    assert!(third != first && third != second, "{third}");
    assert_eq!(up.table(&["rs"]).cell(&third, "READY"), "3");

    // Restart: a new template annotation, hence a new ReplicaSet and all-new pods.
    let before: BTreeSet<String> = up.pod_names("app=nginx").into_iter().collect();
    assert_eq!(
        up.ok(&["rollout", "restart", deploy]),
        "deployment.apps/nginx-deployment restarted\n"
    );
    up.rollout_complete("nginx-deployment");
    let restarted = up.wait_for("pods of one new ReplicaSet", || {
        let pods = up.pod_names("app=nginx");
        let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
        (pods.len() == 3 && sets.len() == 1 && !sets.contains(third.as_str())).then(|| pods.clone())
    });
    assert!(restarted.iter().all(|p| !before.contains(p)));
    let annotations =
        up.json(&["deploy", "nginx-deployment"])["spec"]["template"]["metadata"]["annotations"]
            .clone();
    let restarted_at = annotations["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no restartedAt annotation: {annotations}"));
    assert!(restarted_at.len() >= 20, "{restarted_at}");
    up.stop();
}
