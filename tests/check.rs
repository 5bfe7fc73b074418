//! `harness check` end to end: the real binary, real hostbot processes, real load.
//!
//! The three named disruptions must pass with no failed request in both connection modes; the
//! tutorials' breakages must be caught (or pass, for those that keep serving); bad input must
//! give a clear message and exit code 2 with nothing left running.

use std::process::{Command, Output};
use std::sync::Mutex;

use e2e::{become_subreaper, harness_binary, orphans_named, workspace_root};
use serde_json::Value;

/// Checks share the machine's two cores; one at a time keeps their timing honest.
static SERIAL: Mutex<()> = Mutex::new(());

fn check(args: &[&str]) -> (Output, Option<Value>) {
    become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = Command::new(harness_binary().unwrap())
        .current_dir(workspace_root())
        .arg("check")
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("harness runs");
    let json = std::fs::read(&report)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("the report is JSON"));
    (output, json)
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {report}"))
}

fn assert_lossless(args: &[&str]) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (output, report) = check(args);
    let report = report.unwrap_or_else(|| panic!("no report:\n{}", text(&output)));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for name in ["rolling-update", "pod-deletion", "configmap-reload"] {
        let s = scenario(&report, name);
        assert_eq!(s["failed"], 0, "{name}: {s}");
        assert_eq!(s["pass"], true, "{name}");
        // Load really ran at the asked rate: at least 200 req/s over the scenario's timeline.
        let seconds = s["timeline"].as_array().unwrap().len() as f64 / 10.0;
        let requests = s["requests"].as_f64().unwrap();
        assert!(
            requests >= 200.0 * (seconds - 0.5),
            "{name}: {requests} requests in {seconds} s"
        );
        assert!(
            s["per_host"].as_object().unwrap().len() >= 3,
            "{name}: traffic reached too few pods"
        );
    }
    // The rolling update really moved traffic from v1 to v2.
    let versions = &scenario(&report, "rolling-update")["per_version"];
    assert!(
        versions["v1"].as_u64().unwrap() > 0 && versions["v2"].as_u64().unwrap() > 0,
        "{versions}"
    );
    // ConfigMap propagation was measured.
    let propagation = &scenario(&report, "configmap-reload")["config_propagation_ms"];
    assert_eq!(propagation.as_array().unwrap().len(), 1, "{propagation}");
    assert_nothing_left();
}

/// Nothing the check started may outlive it: its orphans would be re-parented to us.
fn assert_nothing_left() {
    let left = orphans_named("hostbot");
    assert!(left.is_empty(), "hostbot processes left behind: {left:?}");
}

#[test]
fn three_disruptions_lose_nothing_with_a_new_connection_per_request() {
    assert_lossless(&["--rate", "200"]);
}

#[test]
fn three_disruptions_lose_nothing_with_keepalive_connections() {
    assert_lossless(&["--rate", "200", "--keepalive"]);
}

#[test]
fn tutorial_breakages_that_keep_serving_pass() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for name in ["bad-image", "missing-key-surge1"] {
        let file = format!("examples/scenarios/{name}.yml");
        let (output, report) = check(&["--scenario", &file]);
        let report = report.unwrap_or_else(|| panic!("{name}: no report:\n{}", text(&output)));
        assert_eq!(output.status.code(), Some(0), "{name}: {}", text(&output));
        assert_eq!(scenario(&report, name)["failed"], 0, "{name}");
    }
}

#[test]
fn tutorial_outages_are_caught_and_measured() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for name in ["recreate", "selector-typo", "missing-key-surge0"] {
        let file = format!("examples/scenarios/{name}.yml");
        let (output, report) = check(&["--scenario", &file]);
        let report = report.unwrap_or_else(|| panic!("{name}: no report:\n{}", text(&output)));
        let s = scenario(&report, name);
        // The scenario files expect the outage: the verdict passes only because one was seen.
        assert_eq!(output.status.code(), Some(0), "{name}: {}", text(&output));
        assert!(s["failed"].as_u64().unwrap() > 0, "{name}: {s}");
        let outage = s["longest_outage_ms"].as_f64().unwrap();
        assert!(outage > 500.0, "{name}: outage of only {outage} ms");
        // Without the expectation the same run is a failure.
        assert!(
            s["reason"].as_str().unwrap().contains("expected outage"),
            "{name}"
        );
    }
}

#[test]
fn the_same_breakage_without_expectation_fails_with_exit_1() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let scenarios = workspace_root().join("examples/scenarios");
    let file = dir.path().join("typo.yml");
    std::fs::write(
        &file,
        format!(
            "name: typo\nsteps:\n  - apply: {0}/svc-typo.yml\n  - sleep: 2s\n  - apply: {1}\n",
            scenarios.display(),
            workspace_root().join("manifests/svc-hostbot.yml").display()
        ),
    )
    .unwrap();
    let (output, report) = check(&[
        "--scenario",
        file.to_str().unwrap(),
        "--junit",
        dir.path().join("j.xml").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let s = scenario(report.as_ref().unwrap(), "typo");
    assert_eq!(s["pass"], false);
    assert!(
        s["reason"].as_str().unwrap().contains("below the SLO"),
        "{s}"
    );
    let junit = std::fs::read_to_string(dir.path().join("j.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

fn assert_setup_error(args: &[&str], expect: &str) {
    let (output, _) = check(args);
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(shown.contains(expect), "expected {expect:?} in:\n{shown}");
    assert_nothing_left();
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert_setup_error(&["--rate", "many"], "invalid value 'many'");
    assert_setup_error(&["--slo", "120%"], "between 0% and 100%");
    assert_setup_error(&["-f", "no/such/dir"], "no/such/dir");
    assert_setup_error(&["--scenario", "explode"], "unknown scenario \"explode\"");

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    assert_setup_error(
        &["--kubeconfig", kubeconfig.to_str().unwrap()],
        "unreachable",
    );
}

#[test]
fn a_deployment_that_never_becomes_ready_is_a_setup_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for file in ["cm-hostbot.yml", "svc-hostbot.yml", "deploy-hostbot.yml"] {
        let text = std::fs::read_to_string(workspace_root().join("manifests").join(file)).unwrap();
        let text = text.replace("yourname/hostbot:v1", "yourname/hostbot-missing:v1");
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let manifests = dir.path().to_str().unwrap();
    assert_setup_error(
        &[
            "-f",
            manifests,
            "--ready-timeout",
            "3s",
            "--scenario",
            "pod-deletion",
        ],
        "did not become ready",
    );
}
