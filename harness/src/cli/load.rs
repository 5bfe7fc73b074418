//! `harness load`: the checker's load generator alone against any hostbot-compatible address,
//! with no cluster and no scenario: to measure the checker itself (BENCHMARKS.md) or to watch a
//! service under steady load.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use harness::check::load::{self, LoadConfig};
use harness::check::scenario::parse_duration;
use harness::check::stats::Stats;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Where to send `GET /` (an address on this machine, e.g. 127.0.0.1:8080).
    pub target: SocketAddr,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long to send for.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Reuse connections instead of a new connection per request.
    #[arg(long)]
    pub keepalive: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: LoadArgs) -> ExitCode {
    if !args.target.ip().is_loopback() {
        eprintln!(
            "error: {} is not a loopback address: load is only sent to this machine",
            args.target
        );
        return ExitCode::from(2);
    }
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut samples = load::start(
        LoadConfig {
            target: args.target,
            rate: args.rate,
            keepalive: args.keepalive,
            timeout: args.timeout,
        },
        stop.clone(),
        &tracker,
    );
    let collect = tokio::spawn(async move {
        let mut stats = Stats::default();
        while let Some(sample) = samples.recv().await {
            stats.record(&sample);
        }
        stats
    });
    tokio::time::sleep(args.duration).await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    let Ok(stats) = collect.await else {
        eprintln!("error: the sample collector crashed");
        return ExitCode::from(2);
    };
    let s = stats.summary();
    let seconds = args.duration.as_secs_f64();
    println!(
        "sent {} requests in {seconds:.1} s ({:.0} req/s, asked {}): ok {}, failed {} {:?}",
        s.requests,
        s.requests as f64 / seconds,
        args.rate,
        s.ok,
        s.failed,
        s.failures
    );
    println!(
        "latency from due time: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
    );
    if s.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
