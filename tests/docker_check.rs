//! `harness check --runtime docker` end to end: the real binary runs the shipped manifests as
//! Docker containers of the image the Dockerfile builds, and the three named disruptions
//! (rolling update, pod deletion, ConfigMap reload) lose no request. Afterwards no container
//! of that harness process remains.
//!
//! Needs a Docker engine (see the SKIPPED message); without one the test is skipped on a
//! workstation and fails in CI (`CI=true`).

use std::process::{Command, Stdio};

use e2e::{docker, harness_binary, require, workspace_root};
use serde_json::Value;

const IMAGE: &str = "yourname/hostbot:v1";
/// The image the rolling-update scenario sets: the same binary, reporting version v2.
const IMAGE_V2: &str = "yourname/hostbot:v2";

#[test]
fn three_disruptions_lose_nothing_on_the_docker_runtime() {
    if !require(
        "docker engine",
        e2e::docker_available(),
        "install docker.io and start 'tini -s -- dockerd'",
    ) {
        return;
    }
    let root = workspace_root();
    e2e::build_static_hostbot().expect("the static hostbot builds");
    for (image, version) in [(IMAGE, "VERSION=v1"), (IMAGE_V2, "VERSION=v2")] {
        let args = [
            "build",
            "--target",
            "prebuilt",
            "--build-arg",
            version,
            "-t",
            image,
            ".",
        ];
        docker(&root, args).expect("docker build");
    }

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let child = Command::new(harness_binary().unwrap())
        .current_dir(&root)
        .args(["check", "--runtime", "docker", "--rate", "200", "--report"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("harness ends");
    let shown = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{shown}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("a report")).expect("JSON");
    for name in ["rolling-update", "pod-deletion", "configmap-reload"] {
        let s = report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scenario {name} in {report}"));
        assert_eq!(s["failed"], 0, "{name}: {s}");
        assert_eq!(s["pass"], true, "{name}: {s}");
        assert!(s["requests"].as_u64().unwrap() > 200, "{name}: {s}");
        assert!(
            s["per_host"].as_object().unwrap().len() >= 3,
            "{name}: traffic reached too few pods: {s}"
        );
    }

    // The rolling update moved traffic from the v1 containers to the v2 ones.
    let rolling = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "rolling-update")
        .unwrap();
    let versions = &rolling["per_version"];
    assert!(
        versions["v1"].as_u64().unwrap_or(0) > 0 && versions["v2"].as_u64().unwrap_or(0) > 0,
        "traffic by version: {versions}"
    );

    // Every container the check started is gone.
    let left = docker(
        &root,
        [
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=harness.pid={pid}"),
        ],
    )
    .expect("docker ps");
    assert!(left.is_empty(), "containers left behind: {left}\n{shown}");
}
