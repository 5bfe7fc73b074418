//! `harness up`: the embedded cluster in the foreground with a Kubernetes API on loopback, so
//! the real kubectl drives it. Ctrl-C or SIGTERM stops everything cleanly (pods get their grace
//! periods); a second signal forces.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use harness::api::{self, ApiOptions};
use harness::cluster::{Cluster, ClusterOptions};
use harness::manifest;
use harness::node::ClusterNode;
use harness::selector::Selector;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use tokio::signal::unix::{SignalKind, signal};

use super::RuntimeArg;

mod builtin;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Manifests to apply at start (files or directories; repeatable).
    #[arg(short = 'f', long = "filename")]
    pub manifests: Vec<PathBuf>,
    /// Container runtime.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Process)]
    pub runtime: RuntimeArg,
    /// Port of the API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub api_port: u16,
    /// Where to write the kubeconfig (default: in the cluster's state directory, removed at exit).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// An image catalog file (YAML) mapping more images to commands.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// No live view of deployments and pods.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(args: UpArgs) -> ExitCode {
    match up(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    // Load everything first: a bad manifest stops us before anything runs.
    let mut manifests = Vec::new();
    for path in &args.manifests {
        manifests.extend(manifest::load_path(path)?);
    }
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let cluster = Cluster::start(ClusterOptions {
        runtime: args.runtime.into(),
        catalog: args.catalog.clone(),
        ..Default::default()
    })
    .await
    .context("cannot start the embedded cluster")?;
    let served = serve_api(&cluster, &args, manifests).await;
    let result = match served {
        Ok(()) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
                _ = live_view(&cluster, args.quiet) => {}
            }
            eprintln!("stopping: pods get their grace periods (signal again to force)");
            Ok(())
        }
        Err(err) => Err(err),
    };
    let kubelet = cluster.kubelet().clone();
    let shutdown = cluster.shutdown();
    tokio::pin!(shutdown);
    tokio::select! {
        done = &mut shutdown => done?,
        _ = terminate.recv() => { kubelet.force(); shutdown.await?; }
        _ = interrupt.recv() => { kubelet.force(); shutdown.await?; }
    }
    eprintln!("stopped; nothing left running");
    result
}

async fn serve_api(
    cluster: &Cluster,
    args: &UpArgs,
    manifests: Vec<manifest::Manifest>,
) -> anyhow::Result<()> {
    let state_dir = cluster.state_dir().join("api");
    let token = format!("{:032x}", rand::random::<u128>());
    let node = Arc::new(ClusterNode {
        store: cluster.store().clone(),
        kubelet: cluster.kubelet().clone(),
        tracker: cluster.tracker().clone(),
    });
    let server = api::serve(
        cluster.store().clone(),
        node,
        ApiOptions {
            port: args.api_port,
            token: token.clone(),
            state_dir: state_dir.clone(),
        },
        cluster.tracker(),
        cluster.cancel_token().child_token(),
    )
    .await?;
    builtin::seed(cluster.store(), server.addr(), server.ca_pem())
        .context("cannot create the kubernetes Service and kube-root-ca.crt")?;
    cluster.tracker().spawn(builtin::publish_root_ca(
        cluster.store().clone(),
        server.ca_pem().to_owned(),
        cluster.cancel_token().child_token(),
    ));
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| cluster.state_dir().join("kubeconfig"));
    harness::kubeconfig::write(
        &kubeconfig,
        &server.url(),
        server.ca_pem(),
        &token,
        "harness",
    )?;
    println!("export KUBECONFIG={}", kubeconfig.display());
    eprintln!("API at {} (context \"harness\")", server.url());
    for (key, outcome) in manifest::apply(cluster.store(), manifests)? {
        eprintln!("{}", manifest::kubectl_line(&key, outcome));
    }
    Ok(())
}

/// Prints deployments and pods whenever they change (at most twice a second); never returns.
async fn live_view(cluster: &Cluster, quiet: bool) {
    if quiet {
        std::future::pending::<()>().await;
    }
    let mut changes = cluster.store().subscribe();
    let mut last = String::new();
    loop {
        let view = render(cluster);
        if view != last {
            eprintln!("{view}");
            last = view;
        }
        let _ = changes.recv().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        changes = changes.resubscribe();
    }
}

fn render(cluster: &Cluster) -> String {
    let all = Selector::default();
    let store = cluster.store();
    let mut out = format!("── {}", chrono::Local::now().format("%H:%M:%S"));
    for d in store.list_as::<Deployment>(None, &all) {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.unwrap_or_default();
        out.push_str(&format!(
            "\n  deploy/{:<24} ready {}/{}  up-to-date {}  available {}",
            d.metadata.name.unwrap_or_default(),
            status.ready_replicas.unwrap_or(0),
            want,
            status.updated_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0)
        ));
    }
    let mut phases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in store.list_as::<Pod>(None, &all) {
        let name = p.metadata.name.clone().unwrap_or_default();
        phases.entry(pod_status(&p)).or_default().push(name);
    }
    for (status, pods) in phases {
        out.push_str(&format!("\n  {status:<26} {}", pods.join(" ")));
    }
    out
}

/// The STATUS word kubectl would show, roughly: Terminating, a waiting reason, or the phase.
fn pod_status(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let status = pod.status.clone().unwrap_or_default();
    for c in status.container_statuses.iter().flatten() {
        if let Some(reason) = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
        {
            return reason;
        }
    }
    status.phase.unwrap_or_else(|| "Pending".into())
}
