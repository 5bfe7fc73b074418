//! `harness check --kubeconfig` against a running `harness up`, as it runs against any cluster:
//! every operation and all load go through the Kubernetes API (the load through pod
//! port-forwards). The three built-in disruptions must lose no request at 200 req/s with a new
//! connection per request and with keep-alive connections; the kill step of pod-deletion, which
//! no API offers, is skipped with a note.
//!
//! Without kubectl on PATH the test is skipped loudly, except under `CI=true`.

#[path = "support/up.rs"]
mod up;

use std::process::Command;

use up::{Up, kubectl_available};

fn scenario<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {report}"))
}

#[test]
fn three_disruptions_lose_nothing_through_the_api() {
    e2e::become_subreaper();
    if !kubectl_available("this test waits for the rollout with the real kubectl from PATH") {
        return;
    }
    let up = Up::start(&["manifests"]);
    up.rollout_status("hostbot");
    for mode in [&["--rate", "200"][..], &["--rate", "200", "--keepalive"]] {
        let report = up.path("report.json");
        let output = Command::new(e2e::harness_binary().unwrap())
            .current_dir(e2e::workspace_root())
            .arg("check")
            .arg("--kubeconfig")
            .arg(up.kubeconfig())
            .args(mode)
            .arg("--report")
            .arg(&report)
            .output()
            .expect("harness check runs");
        let shown = format!(
            "{mode:?}: exit {:?}\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(0), "{shown}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        for name in ["rolling-update", "pod-deletion", "configmap-reload"] {
            let s = scenario(&report, name);
            assert_eq!(s["failed"], 0, "{mode:?} {name}: {s}");
            assert_eq!(s["pass"], true, "{mode:?} {name}");
            let seconds = s["timeline"].as_array().unwrap().len() as f64 / 10.0;
            let requests = s["requests"].as_f64().unwrap();
            assert!(
                requests >= 200.0 * (seconds - 0.5),
                "{mode:?} {name}: {requests} requests in {seconds} s"
            );
            assert!(
                s["per_host"].as_object().unwrap().len() >= 3,
                "{mode:?} {name}: traffic reached too few pods: {}",
                s["per_host"]
            );
        }
        let skipped = scenario(&report, "pod-deletion")["skipped"].clone();
        assert!(
            skipped.as_array().unwrap().len() == 1 && skipped[0].as_str().unwrap().contains("kill"),
            "{skipped}"
        );
        let versions = &scenario(&report, "rolling-update")["per_version"];
        assert!(
            versions["v1"].as_u64().unwrap_or(0) > 0 && versions["v2"].as_u64().unwrap_or(0) > 0,
            "{versions}"
        );
    }
    up.stop();
}
