//! Runs the harness's data path over real backends for `bench/proxy.sh`: a Store, the Service
//! proxy with a Service `bench` (port 80) whose Endpoints are the given backends, a pod `bench-0`
//! on the first backend, and two port-forwards (`pod/bench-0` and `svc/bench`). Prints one
//! `NAME ADDRESS` line per entry point, then serves until Ctrl-C.
//!
//! ```text
//! cargo run --release --example proxy_bench -- --backend 127.0.0.11:8080 --backend 127.0.0.12:8080
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use harness::ipam::Ipam;
use harness::object::{Kind, Object};
use harness::portforward::{self, PortPair, Request, Target};
use harness::proxy::{ProxyOptions, ServiceProxy};
use harness::store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Parser)]
struct Args {
    /// A backend `IP:PORT`; repeat for several (all must share the port).
    #[arg(long = "backend", required = true)]
    backends: Vec<SocketAddr>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Retry a refused backend once on another (off, like IPVS).
    #[arg(long)]
    retry_refused: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(run(args))
}

fn object(value: serde_json::Value) -> anyhow::Result<Object> {
    let kind = Kind::from_type_meta(
        value["apiVersion"].as_str().unwrap_or_default(),
        value["kind"].as_str().unwrap_or_default(),
    )
    .context("unknown kind")?;
    Ok(Object::from_json(kind, value)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let port = args.backends[0].port();
    if args.backends.iter().any(|b| b.port() != port) {
        bail!("all backends must listen on the same port");
    }
    let store = Store::new();
    let ipam = Arc::new(Ipam::new(rand::random()));
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let options = ProxyOptions {
        retry_refused: args.retry_refused,
        ..ProxyOptions::default()
    };
    let proxy = ServiceProxy::spawn_with(store.clone(), ipam, options, &tracker, cancel.clone());

    let ips: Vec<serde_json::Value> = args
        .backends
        .iter()
        .map(|b| json!({"ip": b.ip().to_string()}))
        .collect();
    store.create(object(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench"},
        "spec": {"selector": {"app": "bench"}, "ports": [{"name": "http", "port": 80, "targetPort": port}]}
    }))?)?;
    store.create(object(json!({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "bench"},
        "subsets": [{"addresses": ips, "ports": [{"name": "http", "port": port}]}]
    }))?)?;
    store.create(object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench-0", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
    }))?)?;
    let status = json!({"phase": "Running", "podIP": args.backends[0].ip().to_string(),
                        "conditions": [{"type": "Ready", "status": "True"}]});
    store.modify::<k8s_openapi::api::core::v1::Pod, _>("default", "bench-0", |p| {
        p.status = serde_json::from_value(status).ok();
    })?;

    let started = Instant::now();
    let cluster_ip: IpAddr = loop {
        if let Some(ip) = proxy.cluster_ip("default", "bench") {
            break ip;
        }
        if started.elapsed() > Duration::from_secs(5) {
            bail!("the proxy did not set up service bench");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let forward = |target: &str, remote: u16| {
        let request = Request {
            addresses: vec![[127, 0, 0, 1].into()],
            ..Request::new(
                "default",
                Target::parse(target).expect("valid target"),
                vec![PortPair { local: 0, remote }],
            )
        };
        portforward::start(
            store.clone(),
            proxy.clone(),
            request,
            cancel.clone(),
            &tracker,
        )
    };
    let pod = forward("pod/bench-0", port).await?;
    let svc = forward("svc/bench", 80).await?;
    println!("service {}", SocketAddr::new(cluster_ip, 80));
    println!("forward-pod {}", pod.local_addrs()[0]);
    println!("forward-svc {}", svc.local_addrs()[0]);
    println!("ready");

    tokio::signal::ctrl_c().await?;
    cancel.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    Ok(())
}
