//! The tutorial's image workflow against a real Docker engine and registry: build the image,
//! push it, remove it, pull it back, run it, curl it, stop it.
//!
//! Needs a Docker engine and a registry on 127.0.0.1:5000 (see the SKIPPED message). Without
//! them the test is skipped on a workstation and fails in CI (`CI=true`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use e2e::{docker, require, unique_suffix, wait_until, workspace_root};

const REGISTRY: &str = "127.0.0.1:5000";
/// The image must stay small: a static binary and a passwd line.
const MAX_IMAGE_BYTES: u64 = 5_000_000;
/// What the test passes as DRAIN_DELAY, and how long the stop may take beyond it.
const DRAIN_DELAY: Duration = Duration::from_secs(1);
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// Removes what the test created, also when it fails half-way.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let root = workspace_root();
        for container in &self.containers {
            let _ = docker(&root, ["rm", "-f", container]);
        }
        for image in &self.images {
            let _ = docker(&root, ["rmi", "-f", image]);
        }
    }
}

#[tokio::test]
async fn image_round_trips_through_a_registry_and_serves_json() -> anyhow::Result<()> {
    if !require(
        "docker engine",
        e2e::docker_available(),
        "install docker.io and start 'tini -s -- dockerd'",
    ) {
        return Ok(());
    }
    if !require(
        &format!("registry {REGISTRY}"),
        e2e::registry_available(REGISTRY).await,
        "install docker-registry and run 'docker-registry serve <config>' with http.addr 127.0.0.1:5000",
    ) {
        return Ok(());
    }
    let root = workspace_root();
    let mut cleanup = Cleanup::default();

    // Build: the static binary on the host, then the `prebuilt` target around it.
    e2e::build_static_hostbot()?;
    let image = format!("{REGISTRY}/hostbot:e2e-{}", unique_suffix());
    cleanup.images.push(image.clone());
    docker(&root, ["build", "--target", "prebuilt", "-t", &image, "."])?;

    let size: u64 =
        docker(&root, ["image", "inspect", "--format", "{{.Size}}", &image])?.parse()?;
    ensure!(
        size <= MAX_IMAGE_BYTES,
        "image is {size} bytes, more than {MAX_IMAGE_BYTES}"
    );
    let user = docker(
        &root,
        ["image", "inspect", "--format", "{{.Config.User}}", &image],
    )?;
    ensure!(
        user == "65532:65532",
        "image runs as {user:?}, not the non-root 65532"
    );

    // Push, forget, pull back: the image survives the round trip through the registry.
    docker(&root, ["push", &image])?;
    docker(&root, ["rmi", &image])?;
    ensure!(
        docker(&root, ["image", "inspect", &image]).is_err(),
        "image still present after rmi"
    );
    docker(&root, ["pull", &image])?;

    // Run it like `kubectl port-forward ... 8080:80`, on a free loopback port.
    let port = e2e::free_port()?;
    let container = docker(
        &root,
        [
            "run",
            "-d",
            "--name",
            &format!("hostbot-e2e-{}", unique_suffix()),
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-e",
            &format!("DRAIN_DELAY={}ms", DRAIN_DELAY.as_millis()),
            "--health-interval=1s",
            &image,
        ],
    )?;
    cleanup.containers.push(container.clone());

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/");
    let body: serde_json::Value =
        wait_until("hostbot to answer", Duration::from_secs(20), || async {
            let response = client.get(&url).send().await?;
            ensure!(
                response.status().is_success(),
                "status {}",
                response.status()
            );
            Ok(Some(response.json().await?))
        })
        .await
        .with_context(|| logs(&container))?;

    // `host` is the container's hostname, which Docker sets to the short container id.
    ensure!(
        body["host"] == container[..12],
        "host is {}, container is {container}",
        body["host"]
    );
    let time = chrono::DateTime::parse_from_rfc3339(body["time"].as_str().context("no time")?)?;
    let skew = chrono::Utc::now()
        .signed_duration_since(time)
        .num_milliseconds()
        .abs();
    ensure!(skew < 1000, "time {time} is {skew} ms off");

    // The HEALTHCHECK (the binary probing itself, no curl in the image) reports healthy.
    wait_until(
        "the container to be healthy",
        Duration::from_secs(20),
        || async {
            let health = docker(
                &root,
                [
                    "inspect",
                    "--format",
                    "{{.State.Health.Status}}",
                    &container,
                ],
            )?;
            Ok((health == "healthy").then_some(()))
        },
    )
    .await
    .with_context(|| logs(&container))?;

    // `docker stop` sends SIGTERM: hostbot drains and exits 0, well before the 30 s SIGKILL.
    let start = Instant::now();
    docker(&root, ["stop", "-t", "30", &container])?;
    let took = start.elapsed();
    let exit = docker(
        &root,
        ["inspect", "--format", "{{.State.ExitCode}}", &container],
    )?;
    ensure!(
        exit == "0",
        "exit code {exit} after docker stop\n{}",
        logs(&container)
    );
    ensure!(
        took >= DRAIN_DELAY && took < DRAIN_DELAY + STOP_MARGIN,
        "stop took {took:?}, expected the {DRAIN_DELAY:?} drain and little more"
    );
    let logs = logs(&container);
    ensure!(
        logs.contains("shutdown complete"),
        "no clean shutdown in the logs:\n{logs}"
    );
    Ok(())
}

fn logs(container: &str) -> String {
    let output = std::process::Command::new(e2e::docker_cli())
        .args(["logs", container])
        .output();
    match output {
        Ok(output) => format!(
            "container logs:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => format!("no container logs: {err}"),
    }
}
