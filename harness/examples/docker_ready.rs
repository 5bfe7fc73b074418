//! How long from `kubectl apply` of the shipped Deployment (3 replicas) to 3 Ready pods, on the
//! docker runtime and, for comparison, on the process runtime; a fresh cluster per round.
//!
//! ```console
//! $ cargo run --release --example docker_ready -- 5      # rounds (default 5)
//! ```
//!
//! Needs a Docker engine and the image `yourname/hostbot:v1` (see README, "docker runtime").

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use harness::cluster::{Cluster, ClusterOptions};
use harness::podutil;
use harness::runtime::RuntimeKind;
use harness::selector::Selector;
use k8s_openapi::api::core::v1::Pod;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("rounds must be a number")?,
        None => 5,
    };
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
    println!("| runtime | rounds | median s | min s | max s |");
    println!("|---|---:|---:|---:|---:|");
    for (runtime, name) in [
        (RuntimeKind::Docker, "docker"),
        (RuntimeKind::Process, "process"),
    ] {
        let mut times = Vec::new();
        for _ in 0..rounds {
            times.push(ready_time(runtime, &manifests).await?);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {rounds} | {:.2} | {:.2} | {:.2} |",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// Seconds from applying the ConfigMap, Deployment and Service to 3 ready pods.
async fn ready_time(runtime: RuntimeKind, manifests: &Path) -> anyhow::Result<f64> {
    let cluster = Cluster::start(ClusterOptions {
        runtime,
        ..Default::default()
    })
    .await?;
    let started = Instant::now();
    for file in ["cm-hostbot.yml", "deploy-hostbot.yml", "svc-hostbot.yml"] {
        cluster.apply_path(manifests.join(file))?;
    }
    let selector = Selector::parse("app=hostbot")?;
    cluster
        .wait_until("3 ready pods", Duration::from_secs(120), |store| {
            let pods: Vec<Pod> = store.list_as(Some("default"), &selector);
            pods.len() == 3 && pods.iter().all(podutil::is_pod_ready)
        })
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    cluster.shutdown().await?;
    Ok(elapsed)
}
