//! The rollout verbs: `set image`, `rollout history|undo|pause|resume|restart`.

use std::collections::BTreeSet;

use crate::support::{Up, assert_contains, fixture, replicaset_of};

/// The rollout verbs on one Deployment: `set image`, `rollout history` (and `--revision`),
/// `rollout undo` (reusing the old ReplicaSet), `rollout pause` (nothing rolls, restart refused),
/// `rollout resume`, `rollout restart` (a new template, so new pods).
#[test]
fn rollout_history_undo_pause_resume_and_restart() {
    let Some(up) = Up::start() else { return };
    let file = fixture("nginx-deployment.yaml");
    up.ok(&["apply", "-f", file.to_str().unwrap()]);
    up.rollout_complete("nginx-deployment");
    let first = up.settled_replicaset("app=nginx", 3);
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
    let third = up.settled_replicaset("app=nginx", 3);
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
