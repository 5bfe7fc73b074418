//! The checker's outage measurement against an independent prober: `harness up` runs the shipped
//! manifests; for each tutorial breakage, `harness check --kubeconfig` runs the scenario file
//! (its load goes through the API's port-forward) while this test probes the Service's cluster IP
//! directly (through the cluster's Service proxy), a new connection and `GET /` every 5 ms.
//! Where an outage is expected (S8 Recreate, S12 selector typo, S15 missing key with maxSurge
//! 0), the report's longest outage must be within ±10% of the prober's; where none is (S10 bad
//! image, S16 missing key with maxSurge 1), neither may see a failure. Stopping `harness up` with
//! SIGTERM must leave no hostbot process.
//!
//! Without kubectl on PATH the test is skipped loudly, except under `CI=true`.

#[path = "support/prober.rs"]
mod prober;
#[path = "support/up.rs"]
mod up;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use prober::{Prober, longest_outage};
use up::{Up, kubectl_available};

/// Scenario files under `examples/scenarios/`, and whether each is an expected outage.
const SCENARIOS: &[(&str, bool)] = &[
    ("recreate", true),
    ("selector-typo", true),
    ("missing-key-surge0", true),
    ("bad-image", false),
    ("missing-key-surge1", false),
];

/// How far the checker's longest outage may be from the prober's.
const TOLERANCE: f64 = 0.10;

/// Puts the cluster back to the shipped manifests: what a scenario changed is applied over, and
/// the ConfigMap key the missing-key scenarios add is removed again.
fn reset(up: &Up) {
    up.kubectl(&["apply", "-f", "manifests"]).unwrap();
    up.kubectl(&[
        "patch",
        "configmap",
        "hostbot-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"HOST":null}}"#,
    ])
    .unwrap();
    up.rollout_status("hostbot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_outages_match_an_independent_prober() {
    e2e::become_subreaper();
    if !kubectl_available("this test reads the Service and resets the cluster with kubectl") {
        return;
    }
    let up = Up::start(&["manifests"]);
    up.rollout_status("hostbot");
    let ip: IpAddr = up
        .kubectl(&["get", "svc", "hostbot", "-o", "jsonpath={.spec.clusterIP}"])
        .unwrap()
        .parse()
        .expect("a cluster IP");
    assert!(ip.is_loopback(), "cluster IPs are on 127/8, got {ip}");
    let target = SocketAddr::new(ip, 80);
    let harness = e2e::harness_binary().unwrap();

    let mut problems = Vec::new();
    for &(name, outage) in SCENARIOS {
        reset(&up);
        let report = up.path(&format!("{name}.json"));
        let prober = Prober::start(target, Duration::from_millis(5));
        let output = tokio::process::Command::new(&harness)
            .current_dir(e2e::workspace_root())
            .arg("check")
            .arg("--kubeconfig")
            .arg(up.kubeconfig())
            .args(["--scenario", &format!("examples/scenarios/{name}.yml")])
            .arg("--report")
            .arg(&report)
            .output()
            .await
            .expect("harness check runs");
        let samples = prober.stop().await;
        let shown = format!(
            "{name}: exit {:?}\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(0), "{shown}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let scenario = &report["scenarios"][0];
        let checked = scenario["longest_outage_ms"].as_f64().unwrap();
        let checked_failed = scenario["failed"].as_u64().unwrap();
        let probed = longest_outage(&samples).as_secs_f64() * 1e3;
        let probed_failed = samples.iter().filter(|s| s.result.is_err()).count();
        eprintln!(
            "{name}: check {checked:.0} ms longest outage ({checked_failed} of {} failed), \
             prober {probed:.0} ms ({probed_failed} of {} failed)",
            scenario["requests"],
            samples.len()
        );
        if outage {
            if probed < 100.0 {
                problems.push(format!(
                    "{name}: the prober saw no real outage ({probed:.0} ms)"
                ));
            } else if (checked - probed).abs() > TOLERANCE * probed {
                problems.push(format!(
                    "{name}: check measured {checked:.0} ms, the prober {probed:.0} ms (more than \
                     {:.0}% apart)",
                    TOLERANCE * 100.0
                ));
            }
        } else if checked_failed > 0 || probed_failed > 0 {
            let first = samples.iter().find(|s| s.result.is_err());
            problems.push(format!(
                "{name}: no request may fail: check saw {checked_failed}, the prober \
                 {probed_failed} (first: {first:?})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n--- harness\n{}",
        problems.join("\n"),
        up.log()
    );
    up.stop();
}
