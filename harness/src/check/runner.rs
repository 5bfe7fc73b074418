//! Runs one [`Scenario`] under load: starts the [`load`](super::load) generator against the
//! forwarded port, carries out the steps through [`ClusterOps`], tracks which pods existed (every
//! `host` in a reply must be one of them), and hands back a [`ScenarioResult`] with a verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::load::{self, LoadConfig, Outcome};
use super::ops::{ClusterOps, merge, restart_patch};
use super::scenario::{Scenario, Step, WaitStep, parse_duration, parse_slo};
use super::stats::{Stats, Summary};

/// How hard and how long to push.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub rate: u32,
    pub keepalive: bool,
    /// The least time load runs for each scenario.
    pub duration: Duration,
    /// Success ratio a scenario must reach to pass.
    pub slo: f64,
    pub request_timeout: Duration,
    /// Load before the first step, to see the steady state (and the old config).
    pub warmup: Duration,
}

/// A moment worth marking on the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Marker {
    pub at_ms: f64,
    pub label: String,
}

/// Everything measured for one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub description: String,
    pub pass: bool,
    /// Why it passed or failed, in one sentence.
    pub reason: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// From the first step's start to the last step's end.
    pub disruption_ms: f64,
    /// For mounted ConfigMap updates: from the update until no reply carried the old config.
    pub config_propagation_ms: Vec<f64>,
    /// Steps this cluster cannot carry out (a kill through an API), with why.
    pub skipped: Vec<String>,
    pub markers: Vec<Marker>,
    pub pods_seen: BTreeSet<String>,
    pub rate: u32,
    pub keepalive: bool,
}

/// Which config hash replies carry, over time.
#[derive(Default)]
struct ConfigSeen {
    /// config -> (first due, last due) of OK replies.
    spans: BTreeMap<String, (Duration, Duration)>,
    latest_due: Duration,
}

/// Runs `scenario` with load on `target` and returns its result. Step failures are part of the
/// result (a failed verdict), not an error; `Err` is only for set-up trouble.
pub async fn run<O: ClusterOps>(
    ops: &O,
    target: SocketAddr,
    scenario: &Scenario,
    options: &RunOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<ScenarioResult> {
    for path in &scenario.setup {
        let path = scenario.dir.join(path);
        ops.apply(&path)
            .await
            .with_context(|| format!("scenario {:?}: setup", scenario.name))?;
        for manifest in crate::manifest::load_path(&path)? {
            if manifest.object.kind() == crate::object::Kind::Deployment {
                let step = WaitStep {
                    rollout: Some(manifest.object.name().to_owned()),
                    ready: None,
                    selector: None,
                    timeout: None,
                    allow_timeout: false,
                };
                wait_for(ops, &step)
                    .await
                    .with_context(|| format!("scenario {:?}: setup", scenario.name))?;
            }
        }
    }
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut samples = load::start(
        LoadConfig {
            target,
            rate: options.rate,
            keepalive: options.keepalive,
            timeout: options.request_timeout,
        },
        stop.clone(),
        &tracker,
    );
    let started = Instant::now();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let configs = Arc::new(Mutex::new(ConfigSeen::default()));
    let collector = {
        let (stats, configs) = (stats.clone(), configs.clone());
        tokio::spawn(async move {
            while let Some(sample) = samples.recv().await {
                if let Outcome::Ok(reply) = &sample.outcome {
                    let mut seen = configs.lock().unwrap_or_else(|p| p.into_inner());
                    let span = seen
                        .spans
                        .entry(reply.config.clone())
                        .or_insert((sample.due, sample.due));
                    span.0 = span.0.min(sample.due);
                    span.1 = span.1.max(sample.due);
                    seen.latest_due = seen.latest_due.max(sample.due);
                }
                stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(&sample);
            }
        })
    };
    let markers = Arc::new(Mutex::new(Vec::new()));
    let pods_seen = Arc::new(Mutex::new(BTreeSet::new()));
    let watcher_stop = CancellationToken::new();
    let at_ms = move || started.elapsed().as_secs_f64() * 1e3;
    let mark = {
        let markers = markers.clone();
        move |label: String| {
            markers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Marker {
                    at_ms: at_ms(),
                    label,
                });
        }
    };

    // Pod tracking runs beside the steps, so replies from short-lived pods are recognised.
    let pod_watch = async {
        let mut known: BTreeSet<String> = BTreeSet::new();
        loop {
            if let Ok(pods) = ops.pods("").await {
                let now: BTreeSet<String> = pods.into_iter().map(|p| p.name).collect();
                for added in now.difference(&known) {
                    mark(format!("pod {added} created"));
                }
                for gone in known.difference(&now) {
                    mark(format!("pod {gone} deleted"));
                }
                pods_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(now.iter().cloned());
                known = now;
            }
            tokio::select! {
                _ = watcher_stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    };
    let steps = async {
        tokio::time::sleep(options.warmup).await;
        let first = Instant::now();
        let mut propagation = Vec::new();
        let mut failure = None;
        let mut skipped = Vec::new();
        for step in &scenario.steps {
            let label = describe(step);
            if matches!(step, Step::Kill(_)) && !ops.can_kill() {
                let note = format!(
                    "skipped `{label}`: only the embedded cluster can kill a container process, \
                     no Kubernetes API offers it"
                );
                progress(&note);
                mark(note.clone());
                skipped.push(note);
                continue;
            }
            progress(&label);
            mark(label.clone());
            match run_step(ops, scenario, step, &configs, &started).await {
                Ok(Some(ms)) => propagation.push(ms),
                Ok(None) => {}
                Err(err) => {
                    failure = Some(format!("step `{label}` failed: {err:#}"));
                    break;
                }
            }
        }
        let disruption = first.elapsed();
        let remaining = options.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(remaining.max(Duration::from_millis(500))).await;
        watcher_stop.cancel();
        (disruption, propagation, failure, skipped)
    };
    let ((disruption, propagation, step_failure, skipped), ()) = tokio::join!(steps, pod_watch);
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    collector.await.context("the sample collector crashed")?;

    let pods_seen = pods_seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut stats = std::mem::take(&mut *stats.lock().unwrap_or_else(|p| p.into_inner()));
    let strangers: Vec<String> = stats
        .hosts()
        .filter(|h| !pods_seen.contains(*h))
        .cloned()
        .collect();
    for host in &strangers {
        stats.reclassify_host_as_invalid(host);
    }
    let summary = stats.summary();
    let slo = match &scenario.expect.slo {
        Some(text) => parse_slo(text).map_err(anyhow::Error::msg)?,
        None => options.slo,
    };
    let (pass, reason) = verdict(&summary, slo, scenario.expect.outage, step_failure);
    let markers = markers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(ScenarioResult {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        pass,
        reason,
        summary,
        disruption_ms: disruption.as_secs_f64() * 1e3,
        config_propagation_ms: propagation,
        skipped,
        markers,
        pods_seen,
        rate: options.rate,
        keepalive: options.keepalive,
    })
}

/// Pass or fail, and why.
pub fn verdict(
    summary: &Summary,
    slo: f64,
    expect_outage: bool,
    step_failure: Option<String>,
) -> (bool, String) {
    if let Some(failure) = step_failure {
        return (false, failure);
    }
    if summary.requests == 0 {
        return (false, "no request was sent".into());
    }
    let percent = summary.success_ratio * 100.0;
    let outage = summary.longest_outage_ms;
    let cause = summary.first_failure.clone().unwrap_or_default();
    match (expect_outage, summary.success_ratio >= slo) {
        (false, true) => (
            true,
            format!(
                "{percent:.3}% of {} requests succeeded (SLO {:.3}%)",
                summary.requests,
                slo * 100.0
            ),
        ),
        (false, false) => (
            false,
            format!(
                "{percent:.3}% succeeded, below the SLO of {:.3}%: {} failed, longest outage {outage:.0} ms (first failure: {cause})",
                slo * 100.0,
                summary.failed
            ),
        ),
        (true, false) => (
            true,
            format!(
                "the expected outage happened: {outage:.0} ms longest, {} requests failed ({cause})",
                summary.failed
            ),
        ),
        (true, true) => (
            false,
            "an outage was expected (a known breakage) but availability held".into(),
        ),
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::Apply(path) => format!("apply {}", path.display()),
        Step::Patch(p) => format!("patch {}/{}", p.kind.to_lowercase(), p.name),
        Step::SetImage(s) => format!("set image deployment/{} {}", s.deployment, s.image),
        Step::Restart(d) => format!("rollout restart deployment/{d}"),
        Step::UpdateConfigMap(c) => format!("update configmap/{}", c.name),
        Step::DeletePods(d) => format!("delete {} pod(s) -l {}", d.count, d.selector),
        Step::Delete(o) => format!("delete {}/{}", o.kind.to_lowercase(), o.name),
        Step::Kill(k) => format!("kill -{} a container process -l {}", k.signal, k.selector),
        Step::WaitFor(w) => match (&w.rollout, &w.selector) {
            (Some(d), _) => format!("wait for rollout of deployment/{d}"),
            (None, Some(s)) => format!("wait for {} ready pod(s) -l {s}", w.ready.unwrap_or(1)),
            (None, None) => "wait".into(),
        },
        Step::Sleep(d) => format!("sleep {d}"),
    }
}

/// Carries out one step; `Some(ms)` is a measured config propagation time.
async fn run_step<O: ClusterOps>(
    ops: &O,
    scenario: &Scenario,
    step: &Step,
    configs: &Mutex<ConfigSeen>,
    started: &Instant,
) -> anyhow::Result<Option<f64>> {
    match step {
        Step::Apply(path) => ops.apply(&scenario.dir.join(path)).await?,
        Step::Patch(p) => ops.merge_patch(&p.kind, &p.name, p.patch.clone()).await?,
        Step::SetImage(s) => {
            ops.set_image(&s.deployment, s.container.as_deref(), &s.image)
                .await?
        }
        Step::Restart(deployment) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            ops.merge_patch("Deployment", deployment, restart_patch(&now))
                .await?;
        }
        Step::UpdateConfigMap(c) => {
            let old = current_config(configs);
            let mut patch = serde_json::json!({});
            merge(&mut patch, &serde_json::json!({"data": c.data}));
            let revision = match &c.restarts {
                Some(deployment) => Some(ops.rollout(deployment).await?.revision),
                None => None,
            };
            let t0 = started.elapsed();
            ops.merge_patch("ConfigMap", &c.name, patch).await?;
            if let (Some(deployment), Some(before)) = (&c.restarts, revision) {
                wait_until(Duration::from_secs(60), || async {
                    Ok(ops.rollout(deployment).await?.revision != before)
                })
                .await
                .with_context(|| {
                    format!("deployment/{deployment} was not restarted by the ConfigMap change")
                })?;
            }
            if c.wait_propagated {
                let old = old.context("no reply carried a config hash before the update")?;
                return wait_propagated(configs, &old, t0).await.map(Some);
            }
        }
        Step::DeletePods(d) => {
            for round in 0..d.count {
                let pods = ops.pods(&d.selector).await?;
                let total = pods.iter().filter(|p| !p.terminating).count();
                let victim = pods
                    .iter()
                    .find(|p| p.ready && !p.terminating)
                    .with_context(|| {
                        format!("round {}: no ready pod matches {}", round + 1, d.selector)
                    })?;
                ops.delete("Pod", &victim.name).await?;
                let victim = victim.name.clone();
                wait_until(Duration::from_secs(120), || async {
                    let pods = ops.pods(&d.selector).await?;
                    let ready = pods
                        .iter()
                        .filter(|p| p.ready && !p.terminating && p.name != victim)
                        .count();
                    Ok(ready >= total)
                })
                .await
                .with_context(|| format!("waiting for a replacement of pod {victim}"))?;
            }
        }
        Step::Delete(o) => ops.delete(&o.kind, &o.name).await?,
        Step::Kill(k) => {
            let pods = ops.pods(&k.selector).await?;
            let victim = pods
                .iter()
                .find(|p| p.ready && !p.terminating)
                .with_context(|| format!("no ready pod matches {}", k.selector))?;
            let hard = match k.signal.to_ascii_uppercase().trim_start_matches("SIG") {
                "TERM" => false,
                "KILL" => true,
                other => bail!("unsupported signal {other:?}: use TERM or KILL"),
            };
            ops.kill_container(&victim.name, hard).await?;
            // The pod keeps its name and restarts its container; wait until it is ready again.
            let (name, before) = (victim.name.clone(), victim.restarts);
            wait_until(Duration::from_secs(120), || async {
                let pods = ops.pods(&k.selector).await?;
                Ok(pods
                    .iter()
                    .any(|p| p.name == name && p.ready && p.restarts > before))
            })
            .await
            .with_context(|| format!("pod {name} did not become ready again after the kill"))?;
        }
        Step::WaitFor(w) => wait_for(ops, w).await?,
        Step::Sleep(d) => tokio::time::sleep(parse_duration(d).map_err(anyhow::Error::msg)?).await,
    }
    Ok(None)
}

async fn wait_for<O: ClusterOps>(ops: &O, w: &WaitStep) -> anyhow::Result<()> {
    let limit = match &w.timeout {
        Some(t) => parse_duration(t).map_err(anyhow::Error::msg)?,
        None => Duration::from_secs(120),
    };
    let result = match (&w.rollout, &w.selector) {
        (Some(deployment), _) => {
            let last = Mutex::new(String::new());
            wait_until(limit, || async {
                let state = ops.rollout(deployment).await?;
                *last.lock().unwrap_or_else(|p| p.into_inner()) = state.message;
                Ok(state.complete)
            })
            .await
            .with_context(|| {
                format!(
                    "rollout of deployment/{deployment} did not complete: {}",
                    last.lock().unwrap_or_else(|p| p.into_inner())
                )
            })
        }
        (None, Some(selector)) => {
            let want = w.ready.unwrap_or(1) as usize;
            wait_until(limit, || async {
                let pods = ops.pods(selector).await?;
                Ok(pods.iter().filter(|p| p.ready && !p.terminating).count() >= want)
            })
            .await
            .with_context(|| format!("fewer than {want} ready pods match {selector}"))
        }
        (None, None) => bail!("wait-for needs `rollout` or `selector`"),
    };
    match result {
        Err(_) if w.allow_timeout => Ok(()),
        other => other,
    }
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
async fn wait_until<F, Fut>(limit: Duration, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if condition().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {:.0} s", limit.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn current_config(configs: &Mutex<ConfigSeen>) -> Option<String> {
    let seen = configs.lock().unwrap_or_else(|p| p.into_inner());
    seen.spans
        .iter()
        .max_by_key(|(_, (_, last))| *last)
        .map(|(config, _)| config.clone())
}

/// Waits until replies with a new config have been seen and none with `old` for a second, and
/// returns the time from the update to the last reply that still carried `old`.
async fn wait_propagated(
    configs: &Mutex<ConfigSeen>,
    old: &str,
    t0: Duration,
) -> anyhow::Result<f64> {
    let quiet = Duration::from_secs(1);
    let result = wait_until(Duration::from_secs(120), || async {
        let seen = configs.lock().unwrap_or_else(|p| p.into_inner());
        let old_last = seen.spans.get(old).map_or(Duration::ZERO, |s| s.1);
        let fresh = seen
            .spans
            .iter()
            .any(|(c, (_, last))| c != old && *last > t0);
        Ok(fresh && seen.latest_due > old_last.max(t0) + quiet)
    })
    .await;
    result.with_context(|| format!("replies still carry the old config {old:?}"))?;
    let seen = configs.lock().unwrap_or_else(|p| p.into_inner());
    let old_last = seen.spans.get(old).map_or(t0, |s| s.1.max(t0));
    Ok((old_last - t0).as_secs_f64() * 1e3)
}
