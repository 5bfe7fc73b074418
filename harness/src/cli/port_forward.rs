//! `harness port-forward`: kubectl's `port-forward` as a client of any cluster's API (a running
//! `harness up` or a real one), through [`harness::kube_forward`].
//!
//! - `pod/NAME` (or `NAME`) pins that pod, which must be Running; the forward ends when the
//!   pod goes, as kubectl's does (`lost connection to pod`, exit 1).
//! - `deploy/NAME` and `rs/NAME` pick one pod as kubectl does (Running, Ready the longest, ...;
//!   waiting up to a minute for one) and pin it.
//! - `svc/NAME` maps the service port to the endpoints' port and, unlike kubectl, sends each
//!   new connection to the next ready endpoint, so the forward survives rolling updates.
//!
//! It prints `Forwarding from 127.0.0.1:8080 -> 80` per listener like kubectl (a local port of
//! 0 shows the port chosen) and runs until Ctrl-C or SIGTERM. Failed connections are reported
//! on stderr as kubectl words them (`an error occurred forwarding 8080 -> 80: ...`); kubectl's
//! `Handling connection for 8080` line per connection is left out (it floods under load).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use harness::check::kube_ops::KubeOps;
use harness::kube_forward::{self, Destination, ServiceEndpoints, Session, Sessions};
use harness::portforward::{PortPair, Target, attachable_pod, pod_phase};
use harness::selector::Selector;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::ListParams;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long `deploy/` and `rs/` wait for a running pod (kubectl's `--pod-running-timeout`).
const POD_RUNNING_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// pod/NAME (or NAME), deploy/NAME, rs/NAME or svc/NAME.
    pub target: String,
    /// [LOCAL:]REMOTE port pairs: 8080:80, 80 (the same port locally), :80 or 0:80 (a free one).
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    pub ports: Vec<String>,
    /// The kubeconfig (default: the files in $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the target (default: the context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Local addresses to listen on, comma-separated; `localhost` is 127.0.0.1 and ::1.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub address: Vec<String>,
}

pub async fn run(args: PortForwardArgs) -> ExitCode {
    match port_forward(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Where the target's connections go, and the pod it is pinned to (if it is).
struct Resolved {
    /// Per port pair: the destination and the pod port to print.
    destinations: Vec<(Destination, u16)>,
    pinned: Option<Session>,
}

async fn port_forward(args: PortForwardArgs) -> anyhow::Result<ExitCode> {
    let target = Target::parse(&args.target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pairs = args
        .ports
        .iter()
        .map(|p| PortPair::parse(p).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addresses = addresses(&args.address)?;
    let ops = KubeOps::connect_with(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        args.namespace.as_deref(),
    )
    .await?;
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let resolved = resolve(&ops, &target, &pairs, &tracker, &cancel).await;
    let outcome = match resolved {
        Ok(resolved) => serve(resolved, &pairs, &addresses, &tracker, &cancel).await,
        Err(err) => Err(err),
    };
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    outcome
}

/// Listens, prints the forwards and waits for a signal or the pinned pod's end.
async fn serve(
    resolved: Resolved,
    pairs: &[PortPair],
    addresses: &[(IpAddr, bool)],
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> anyhow::Result<ExitCode> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    for (pair, (destination, pod_port)) in pairs.iter().zip(resolved.destinations) {
        let mut local_port = pair.local;
        for &(ip, required) in addresses {
            let addr = SocketAddr::new(ip, local_port);
            let listener = match TcpListener::bind(addr).await {
                Ok(listener) => listener,
                Err(_) if !required => continue,
                Err(err) => bail!("unable to listen on port {local_port}: bind {addr}: {err}"),
            };
            let local = listener.local_addr()?;
            local_port = local.port();
            println!("Forwarding from {local} -> {pod_port}");
            let remote = pair.remote;
            let on_error: kube_forward::OnError = Arc::new(move |message| {
                eprintln!("an error occurred forwarding {local_port} -> {remote}: {message}");
            });
            kube_forward::serve(
                listener,
                destination.clone(),
                tracker,
                cancel.clone(),
                on_error,
            );
        }
    }
    let pod_gone = async {
        match &resolved.pinned {
            Some(session) => session.closed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = terminate.recv() => Ok(ExitCode::SUCCESS),
        _ = interrupt.recv() => Ok(ExitCode::SUCCESS),
        () = pod_gone => {
            let pod = resolved.pinned.as_ref().map(Session::pod).unwrap_or_default();
            eprintln!("error: lost connection to pod {pod}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `localhost` means 127.0.0.1 (required) and ::1 (when it binds), as kubectl has it.
fn addresses(names: &[String]) -> anyhow::Result<Vec<(IpAddr, bool)>> {
    let mut out = Vec::new();
    for name in names {
        if name == "localhost" {
            out.push((IpAddr::V4(Ipv4Addr::LOCALHOST), true));
            out.push((IpAddr::V6(Ipv6Addr::LOCALHOST), false));
        } else {
            let ip: IpAddr = name
                .parse()
                .with_context(|| format!("{name} is not a valid IP address or localhost"))?;
            out.push((ip, true));
        }
    }
    Ok(out)
}

async fn resolve(
    ops: &KubeOps,
    target: &Target,
    pairs: &[PortPair],
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> anyhow::Result<Resolved> {
    let client = ops.client().clone();
    let namespace = ops.namespace();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = match target {
        Target::Service(name) => {
            let endpoints =
                ServiceEndpoints::watch(client.clone(), namespace, name, tracker, cancel.clone())
                    .await?;
            let sessions = Sessions::new(client, namespace, tracker, cancel.clone());
            let mut destinations = Vec::new();
            for pair in pairs {
                let pod_port = endpoints.pod_port(pair.remote).unwrap_or(pair.remote);
                destinations.push((
                    Destination::Service {
                        endpoints: endpoints.clone(),
                        port: pair.remote,
                        sessions: sessions.clone(),
                    },
                    pod_port,
                ));
            }
            // A port the Service does not have is an error now, not on every connection.
            for pair in pairs {
                if let Err(err) = endpoints.pick(pair.remote)
                    && err.contains("does not have a service port")
                {
                    bail!("{err}");
                }
            }
            return Ok(Resolved {
                destinations,
                pinned: None,
            });
        }
        Target::Pod(name) => pods
            .get_opt(name)
            .await?
            .with_context(|| format!("pods \"{name}\" not found"))?,
        Target::Deployment(name) => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let deployment = api
                .get_opt(name)
                .await?
                .with_context(|| format!("deployments.apps \"{name}\" not found"))?;
            let selector = deployment.spec.map(|s| s.selector).unwrap_or_default();
            running_pod(&pods, &selector, &format!("deployment/{name}")).await?
        }
        Target::ReplicaSet(name) => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            let replica_set = api
                .get_opt(name)
                .await?
                .with_context(|| format!("replicasets.apps \"{name}\" not found"))?;
            let selector = replica_set.spec.map(|s| s.selector).unwrap_or_default();
            running_pod(&pods, &selector, &format!("replicaset/{name}")).await?
        }
    };
    let phase = pod_phase(&pod).to_owned();
    if phase != "Running" {
        bail!("unable to forward port because pod is not running. Current status={phase}");
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let session = Session::open(&client, namespace, &name, tracker, cancel).await?;
    let destinations = pairs
        .iter()
        .map(|pair| {
            let destination = Destination::Pod {
                session: session.clone(),
                port: pair.remote,
            };
            (destination, pair.remote)
        })
        .collect();
    Ok(Resolved {
        destinations,
        pinned: Some(session),
    })
}

/// The pod kubectl would attach to among those `selector` matches, waiting for a running one.
async fn running_pod(pods: &Api<Pod>, selector: &LabelSelector, what: &str) -> anyhow::Result<Pod> {
    let selector = Selector::from_label_selector(selector)
        .map_err(|err| anyhow::anyhow!("{what} has an invalid selector: {err}"))?;
    let deadline = Instant::now() + POD_RUNNING_TIMEOUT;
    loop {
        let matching: Vec<Pod> = pods
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
            .collect();
        let running = matching
            .iter()
            .filter(|p| pod_phase(p) == "Running")
            .cloned()
            .collect::<Vec<_>>();
        if let Some(pod) = attachable_pod(running) {
            return Ok(pod);
        }
        if Instant::now() >= deadline {
            if matching.is_empty() {
                bail!("no pods found for {what}");
            }
            bail!(
                "timed out waiting for a running pod of {what} ({}s)",
                POD_RUNNING_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
