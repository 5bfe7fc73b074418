//! Cluster benchmarks for `bench/cluster.sh`: how fast applied pods become Ready, what a
//! thousand in-process pods cost in memory, and what an idle cluster costs in CPU. One
//! measurement per run (so that RSS is this measurement's alone); each prints one Markdown table
//! row, and `--details` a timeline on stderr.
//!
//! ```text
//! cargo run --release --example cluster_bench -- ready --replicas 3
//! cargo run --release --example cluster_bench -- ready --replicas 1000 --runtime inprocess
//! cargo run --release --example cluster_bench -- idle --seconds 10
//! ```
//!
//! `ready` applies the shipped ConfigMap and Deployment (`manifests/`, replicas overridden) and
//! follows the store's watch: for every pod, when it was created, when its container was
//! running and when it became Ready, relative to the apply.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use harness::cluster::{Cluster, ClusterOptions};
use harness::manifest;
use harness::object::Object;
use harness::podutil;
use harness::runtime::RuntimeKind;
use harness::selector::Selector;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::broadcast::error::RecvError;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    case: Case,
    /// The hostbot binary (default: beside this executable, or $HARNESS_HOSTBOT).
    #[arg(long, global = true)]
    hostbot: Option<PathBuf>,
    /// The directory of the shipped manifests.
    #[arg(long, global = true, default_value = "manifests")]
    manifests: PathBuf,
    /// Print per-phase timings and resource use on stderr.
    #[arg(long, global = true)]
    details: bool,
}

#[derive(Subcommand)]
enum Case {
    /// Apply the Deployment with N replicas and wait until every pod is Ready.
    Ready {
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, value_enum, default_value_t = Runtime::Process)]
        runtime: Runtime,
        /// The goal, in seconds, for the table.
        #[arg(long)]
        goal: Option<f64>,
        /// The RSS goal in MB, for the table.
        #[arg(long)]
        rss_goal: Option<f64>,
    },
    /// Run three Ready process pods and measure CPU over a quiet period.
    Idle {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    Process,
    Inprocess,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    match args.case {
        Case::Ready {
            replicas,
            runtime,
            goal,
            rss_goal,
        } => {
            let runtime = match runtime {
                Runtime::Process => RuntimeKind::Process,
                Runtime::Inprocess => RuntimeKind::InProcess,
            };
            ready(
                &args.manifests,
                args.hostbot,
                replicas,
                runtime,
                goal,
                rss_goal,
                args.details,
            )
            .await
        }
        Case::Idle { seconds } => idle(&args.manifests, args.hostbot, seconds, args.details).await,
    }
}

async fn start(hostbot: Option<PathBuf>, runtime: RuntimeKind) -> anyhow::Result<Cluster> {
    // Containers run in their own working directory: the program path must be absolute.
    let hostbot = hostbot
        .map(|p| {
            std::fs::canonicalize(&p).with_context(|| format!("hostbot binary {}", p.display()))
        })
        .transpose()?;
    let options = ClusterOptions {
        runtime,
        hostbot_command: hostbot.map(|p| vec![OsString::from(p)]),
        ..Default::default()
    };
    Ok(Cluster::start(options).await?)
}

/// Applies `cm-hostbot.yml` and `deploy-hostbot.yml` with `replicas`.
fn apply_hostbot(
    cluster: &Cluster,
    manifests: &std::path::Path,
    replicas: usize,
) -> anyhow::Result<()> {
    let mut objects = manifest::load_path(&manifests.join("cm-hostbot.yml"))?;
    objects.extend(manifest::load_path(&manifests.join("deploy-hostbot.yml"))?);
    for m in &mut objects {
        if let Object::Deployment(d) = &mut m.object {
            d.spec.as_mut().context("deployment has a spec")?.replicas = Some(replicas as i32);
        }
    }
    manifest::apply(cluster.store(), objects)?;
    Ok(())
}

/// When each pod reached each phase, relative to the apply.
#[derive(Default)]
struct Timeline {
    created: Option<Duration>,
    running: Option<Duration>,
    ready: Option<Duration>,
}

async fn ready(
    manifests: &std::path::Path,
    hostbot: Option<PathBuf>,
    replicas: usize,
    runtime: RuntimeKind,
    goal: Option<f64>,
    rss_goal: Option<f64>,
    details: bool,
) -> anyhow::Result<()> {
    let cluster = start(hostbot, runtime).await?;
    let mut changes = cluster.store().subscribe();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    apply_hostbot(&cluster, manifests, replicas)?;
    let mut pods: HashMap<String, Timeline> = HashMap::new();
    let mut ready_count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let note = |pods: &mut HashMap<String, Timeline>, ready_count: &mut usize, pod: &Pod| {
        let at = started.elapsed();
        let entry = pods
            .entry(pod.metadata.uid.clone().unwrap_or_default())
            .or_default();
        entry.created.get_or_insert(at);
        let running = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| {
                !c.is_empty()
                    && c.iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
        if running {
            entry.running.get_or_insert(at);
        }
        if podutil::is_pod_ready(pod) && entry.ready.is_none() {
            entry.ready = Some(at);
            *ready_count += 1;
        }
    };
    let mut timed_out = false;
    while ready_count < replicas {
        let event = tokio::select! {
            event = changes.recv() => event,
            () = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break;
            }
        };
        match event {
            Ok(event) => {
                if let Object::Pod(pod) = event.object.as_ref() {
                    note(&mut pods, &mut ready_count, pod);
                }
            }
            Err(RecvError::Lagged(_)) => {
                for pod in cluster
                    .store()
                    .list_as::<Pod>(Some("default"), &Selector::default())
                {
                    note(&mut pods, &mut ready_count, &pod);
                }
            }
            Err(RecvError::Closed) => bail!("the store closed"),
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let (rss, hwm) = memory_mb();
    let writes = cluster.store().resource_version();
    let events = cluster
        .store()
        .list(harness::object::Kind::Event, Some("default"))
        .len();

    let runtime_name = match runtime {
        RuntimeKind::Process => "process",
        RuntimeKind::InProcess => "in-process",
        RuntimeKind::Docker => "docker",
    };
    let mut goals = Vec::new();
    let mut met = true;
    if let Some(goal) = goal {
        goals.push(format!("< {goal} s"));
        met &= elapsed.as_secs_f64() < goal && !timed_out;
    }
    if let Some(rss_goal) = rss_goal {
        goals.push(format!("< {rss_goal} MB RSS"));
        met &= hwm < rss_goal;
    }
    let phase = |pick: fn(&Timeline) -> Option<Duration>| {
        let mut times: Vec<f64> = pods
            .values()
            .filter_map(pick)
            .map(|d| d.as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            times
                .get(((times.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        format!("{:.2}/{:.2}/{:.2}", at(0.0), at(0.5), at(1.0))
    };
    let created = phase(|t| t.created);
    let running = phase(|t| t.running);
    let ready_at = phase(|t| t.ready);
    let shutdown_started = Instant::now();
    cluster.shutdown().await?;
    let shutdown = shutdown_started.elapsed();
    println!(
        "| apply -> {replicas} {runtime_name} pods Ready | {} | {} | {} | created {created}, running {running}, Ready {ready_at} s (min/median/max); harness CPU {cpu:.2} s, RSS {rss:.0} MB (peak {hwm:.0} MB); {writes} store writes, {events} events stored; shutdown {:.1} s |",
        if timed_out {
            format!(
                "only {ready_count} Ready after {:.0} s",
                elapsed.as_secs_f64()
            )
        } else {
            format!("{:.2} s", elapsed.as_secs_f64())
        },
        if goals.is_empty() {
            "-".to_owned()
        } else {
            goals.join(", ")
        },
        if met { "met" } else { "**missed**" },
        shutdown.as_secs_f64(),
    );
    if details {
        let mut rows: Vec<&Timeline> = pods.values().collect();
        rows.sort_by_key(|t| t.created);
        for (i, t) in rows.iter().enumerate() {
            eprintln!(
                "pod {i:4} created {:>8.3} running {:>8.3} ready {:>8.3}",
                t.created.unwrap_or_default().as_secs_f64(),
                t.running.unwrap_or_default().as_secs_f64(),
                t.ready.unwrap_or_default().as_secs_f64()
            );
        }
    }
    if timed_out {
        bail!("only {ready_count} of {replicas} pods Ready after 120 s");
    }
    Ok(())
}

async fn idle(
    manifests: &std::path::Path,
    hostbot: Option<PathBuf>,
    seconds: u64,
    details: bool,
) -> anyhow::Result<()> {
    let cluster = start(hostbot, RuntimeKind::Process).await?;
    apply_hostbot(&cluster, manifests, 3)?;
    cluster
        .wait_until("three Ready pods", Duration::from_secs(60), |store| {
            let pods: Vec<Pod> = store.list_as(Some("default"), &Selector::default());
            pods.len() == 3 && pods.iter().all(podutil::is_pod_ready)
        })
        .await?;
    // Let the start-up settle (first probes, volume sync) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids = cluster.kubelet().container_pids();
    let (cpu_before, switches_before) = (cpu_seconds(), context_switches());
    let pods_before: f64 = pids.iter().map(|p| process_cpu_seconds(*p)).sum();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_seconds() - cpu_before;
    let switches = context_switches() - switches_before;
    let pods_cpu: f64 = pids.iter().map(|p| process_cpu_seconds(*p)).sum::<f64>() - pods_before;
    let (rss, _) = memory_mb();
    cluster.shutdown().await?;
    let percent = cpu / seconds as f64 * 100.0;
    println!(
        "| idle CPU, 3 process pods, {seconds} s | {:.3} s ({percent:.2}% of a core) | ~0 (no busy polling) | {} | harness {:.0} wakeups/s, RSS {rss:.0} MB; the 3 hostbot processes {:.3} s CPU (probes: readiness every 1 s, liveness every 10 s) |",
        cpu,
        if percent < 1.0 { "met" } else { "**missed**" },
        switches as f64 / seconds as f64,
        pods_cpu,
    );
    if details {
        eprintln!(
            "harness threads: {}",
            std::fs::read_dir("/proc/self/task")
                .map(|d| d.count())
                .unwrap_or(0)
        );
    }
    Ok(())
}

/// User + system CPU of this process, in seconds (`/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> f64 {
    stat_cpu("/proc/self/stat")
}

fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

fn stat_cpu(path: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // The command name may contain spaces: fields count from after its closing parenthesis.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// (VmRSS, VmHWM) of this process in MB.
fn memory_mb() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Voluntary + involuntary context switches over all threads of this process.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}
