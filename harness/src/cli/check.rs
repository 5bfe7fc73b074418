//! `harness check`: sets up (an embedded cluster, or a real one through a kubeconfig), runs the
//! scenarios, prints the table and writes the reports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use harness::check::embedded_ops::EmbeddedOps;
use harness::check::kube_ops::{self, KubeOps};
use harness::check::ops::ClusterOps;
use harness::check::report::Report;
use harness::check::runner::{self, RunOptions};
use harness::check::scenario::{Scenario, parse_duration, parse_slo};
use harness::cluster::{Cluster, ClusterOptions};
use harness::manifest;
use harness::object::{Kind, Object};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RuntimeArg;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests to apply first (file or directory).
    #[arg(short = 'f', long = "filename", default_value = "manifests")]
    pub manifests: PathBuf,
    /// rolling-update, pod-deletion, configmap-reload, all, or a scenario file (repeatable).
    #[arg(long, default_value = "all")]
    pub scenario: Vec<String>,
    /// Requests per second (open loop: sent on schedule whatever the server does).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// The least time load runs per scenario, e.g. 10s.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Reuse connections instead of a new connection per request.
    #[arg(long)]
    pub keepalive: bool,
    /// The share of requests that must succeed, e.g. 100% or 99.9%.
    #[arg(long, default_value = "100%", value_parser = parse_slo)]
    pub slo: f64,
    /// Per-request timeout.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long the Deployment may take to become ready before the check gives up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Write a JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report with timelines here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Check a real cluster through this kubeconfig instead of starting the embedded one.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the workload.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Container runtime of the embedded cluster.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Process)]
    pub runtime: RuntimeArg,
}

/// What the manifests contain that the built-in scenarios act on.
struct Workload {
    deployment: String,
    service: String,
    service_port: u16,
    configmap: String,
}

pub async fn run(args: CheckArgs) -> ExitCode {
    match check(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let workload = workload(&args.manifests)?;
    let scenarios = scenarios(&args.scenario, &workload)?;
    let options = RunOptions {
        rate: args.rate,
        keepalive: args.keepalive,
        duration: args.duration,
        slo: args.slo,
        request_timeout: args.timeout,
        warmup: Duration::from_millis(500),
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let result = if let Some(kubeconfig) = &args.kubeconfig {
        let ops =
            KubeOps::connect(kubeconfig, args.context.as_deref(), Some(&args.namespace)).await?;
        let cluster = format!("kubeconfig {}", kubeconfig.display());
        let target = async {
            eprintln!("applying {}", args.manifests.display());
            ops.apply(&args.manifests).await?;
            wait_ready(&ops, &workload.deployment, args.ready_timeout).await?;
            kube_ops::forward_service(
                ops.clone(),
                &workload.service,
                workload.service_port,
                0,
                &tracker,
                cancel.clone(),
            )
            .await
        };
        match target.await {
            Ok(target) => {
                run_all(
                    &ops, &workload, target, &scenarios, &options, &args, cluster,
                )
                .await
            }
            Err(err) => Err(err),
        }
    } else {
        // From here on Ctrl-C and SIGTERM stop the cluster instead of the process.
        let mut signals = super::interrupt::Signals::new()?;
        let cluster = Cluster::start(ClusterOptions {
            runtime: args.runtime.into(),
            ..Default::default()
        })
        .await
        .context("cannot start the embedded cluster")?;
        let cluster = Arc::new(cluster);
        let ops = EmbeddedOps::new(cluster.clone(), &args.namespace);
        let work = async {
            eprintln!(
                "embedded cluster started; applying {}",
                args.manifests.display()
            );
            ops.apply(&args.manifests).await?;
            wait_ready(&ops, &workload.deployment, args.ready_timeout).await?;
            let target = format!("svc/{}", workload.service);
            let port = workload.service_port.to_string();
            let forward = cluster
                .port_forward(&args.namespace, &target, &[&format!("0:{port}")])
                .await
                .with_context(|| format!("port-forward {target}"))?;
            let local = forward.local_addrs()[0];
            run_all(
                &ops,
                &workload,
                local,
                &scenarios,
                &options,
                &args,
                "embedded cluster".into(),
            )
            .await
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            signal = signals.next() => {
                eprintln!("{signal}: stopping the cluster (signal again to kill every container)");
                Err(anyhow::anyhow!("interrupted by {signal}"))
            }
        };
        drop(ops);
        match Arc::try_unwrap(cluster) {
            Ok(cluster) => super::interrupt::shutdown(cluster, &mut signals)
                .await
                .context("shutting the cluster down")?,
            Err(_) => bail!("internal error: the cluster is still in use at shutdown"),
        }
        outcome
    };
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    result
}

async fn run_all<O: ClusterOps>(
    ops: &O,
    workload: &Workload,
    target: SocketAddr,
    scenarios: &[Scenario],
    options: &RunOptions,
    args: &CheckArgs,
    cluster: String,
) -> anyhow::Result<bool> {
    eprintln!(
        "load: {} req/s to {target}, {} per request, SLO {:.3}%",
        options.rate,
        if options.keepalive {
            "keep-alive connections"
        } else {
            "a new connection"
        },
        options.slo * 100.0
    );
    let mut results = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        if i > 0 {
            // Each scenario starts from the shipped manifests, whatever the last one left.
            ops.apply(&args.manifests)
                .await
                .context("restoring the manifests")?;
            wait_ready(ops, &workload.deployment, args.ready_timeout).await?;
        }
        let started = Instant::now();
        eprintln!("\n▶ {}: {}", scenario.name, scenario.description);
        let progress =
            |step: &str| eprintln!("  [{:>6.1}s] {step}", started.elapsed().as_secs_f64());
        let result = runner::run(ops, target, scenario, options, &progress).await?;
        eprintln!(
            "  [{:>6.1}s] {} — {}",
            started.elapsed().as_secs_f64(),
            if result.pass { "PASS" } else { "FAIL" },
            result.reason
        );
        results.push(result);
    }
    let report = Report {
        cluster,
        rate: options.rate,
        keepalive: options.keepalive,
        slo: options.slo,
        scenarios: results,
    };
    println!("\n{}", report.table());
    if let Some(path) = &args.report {
        report
            .write_json(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        report
            .write_junit(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        report
            .write_html(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let passed = report.passed();
    println!(
        "{}",
        if passed {
            "availability held: PASS"
        } else {
            "availability broke: FAIL"
        }
    );
    Ok(passed)
}

async fn wait_ready<O: ClusterOps>(
    ops: &O,
    deployment: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let state = ops.rollout(deployment).await?;
        if state.complete {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let pods = ops.pods("").await.unwrap_or_default();
            let listing: Vec<String> = pods
                .iter()
                .map(|p| format!("{} (ready: {})", p.name, p.ready))
                .collect();
            bail!(
                "deployment {deployment:?} did not become ready within {:.0}s: {}; pods: {}",
                limit.as_secs_f64(),
                state.message,
                if listing.is_empty() {
                    "none".into()
                } else {
                    listing.join(", ")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds the Deployment, Service and ConfigMap the built-in scenarios act on.
fn workload(manifests: &Path) -> anyhow::Result<Workload> {
    let loaded = manifest::load_path(manifests).with_context(|| {
        format!(
            "cannot load manifests from {} (use -f to point at your manifests)",
            manifests.display()
        )
    })?;
    let first = |kind: Kind| {
        loaded
            .iter()
            .find(|m| m.object.kind() == kind)
            .map(|m| &m.object)
    };
    let deployment = first(Kind::Deployment)
        .with_context(|| format!("{}: no Deployment to check", manifests.display()))?;
    let service = first(Kind::Service)
        .with_context(|| format!("{}: no Service to send load through", manifests.display()))?;
    let service_port = match service {
        Object::Service(s) => s
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .map(|p| p.port as u16)
            .with_context(|| format!("service {:?} has no port", service.name()))?,
        _ => unreachable!("filtered by kind"),
    };
    let configmap = first(Kind::ConfigMap)
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    Ok(Workload {
        deployment: deployment.name().to_owned(),
        service: service.name().to_owned(),
        service_port,
        configmap,
    })
}

fn scenarios(names: &[String], workload: &Workload) -> anyhow::Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for name in names {
        let builtin = |n: &str| Scenario::builtin(n, &workload.deployment, &workload.configmap);
        if name == "all" {
            out.extend(Scenario::BUILTIN.iter().filter_map(|n| builtin(n)));
        } else if let Some(s) = builtin(name) {
            out.push(s);
        } else if Path::new(name).is_file() {
            out.push(Scenario::load(Path::new(name)).map_err(anyhow::Error::msg)?);
        } else {
            bail!(
                "unknown scenario {name:?}: use {}, all, or a scenario file path",
                Scenario::BUILTIN.join(", ")
            );
        }
    }
    if workload.configmap.is_empty() && out.iter().any(|s| s.name == "configmap-reload") {
        bail!("the configmap-reload scenario needs a ConfigMap in the manifests");
    }
    Ok(out)
}
