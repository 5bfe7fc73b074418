//! Turns a stream of [`Sample`]s into the numbers a verdict rests on: counts by failure kind,
//! latency percentiles (HdrHistogram), outages (the longest run of failed requests, measured
//! from the first failed request's due time to the next good one's), per-pod and per-version
//! traffic, and a 100 ms timeline for charts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::{Failure, Outcome, Sample};

/// Width of one timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Everything measured about one scenario's traffic.
#[derive(Debug)]
pub struct Stats {
    requests: u64,
    ok: u64,
    failures: BTreeMap<String, u64>,
    first_failure: Option<String>,
    latency_us: Histogram<u64>,
    /// (due, ok) of every request, to find outages once all are in.
    marks: Vec<(Duration, bool)>,
    per_host: BTreeMap<String, u64>,
    per_version: BTreeMap<String, u64>,
    per_config: BTreeMap<String, u64>,
    timeline: Vec<Bucket>,
}

/// One [`BUCKET`] of the timeline.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Bucket {
    pub ok: u32,
    pub failed: u32,
    pub max_latency_ms: f64,
    /// Requests per version in this bucket.
    pub versions: BTreeMap<String, u32>,
}

/// A finished summary, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// The first failure's detail, for the verdict's reason.
    pub first_failure: Option<String>,
    pub success_ratio: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub longest_outage_ms: f64,
    pub total_outage_ms: f64,
    pub outages: Vec<Outage>,
    pub per_host: BTreeMap<String, u64>,
    pub per_version: BTreeMap<String, u64>,
    pub per_config: BTreeMap<String, u64>,
    pub timeline: Vec<Bucket>,
}

/// A run of consecutive failed requests.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Outage {
    pub start_ms: f64,
    pub duration_ms: f64,
    pub requests: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: 0,
            ok: 0,
            failures: BTreeMap::new(),
            first_failure: None,
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            marks: Vec::new(),
            per_host: BTreeMap::new(),
            per_version: BTreeMap::new(),
            per_config: BTreeMap::new(),
            timeline: Vec::new(),
        }
    }
}

impl Stats {
    /// Counts one request.
    pub fn record(&mut self, sample: &Sample) {
        self.requests += 1;
        let micros = sample.latency.as_micros().clamp(1, 3_600_000_000) as u64;
        let _ = self.latency_us.record(micros);
        let index = (sample.due.as_millis() / BUCKET.as_millis()) as usize;
        if self.timeline.len() <= index {
            self.timeline.resize_with(index + 1, Bucket::default);
        }
        let bucket = &mut self.timeline[index];
        bucket.max_latency_ms = bucket
            .max_latency_ms
            .max(sample.latency.as_secs_f64() * 1e3);
        match &sample.outcome {
            Outcome::Ok(reply) => {
                self.ok += 1;
                bucket.ok += 1;
                *bucket.versions.entry(reply.version.clone()).or_default() += 1;
                *self.per_host.entry(reply.host.clone()).or_default() += 1;
                *self.per_version.entry(reply.version.clone()).or_default() += 1;
                *self.per_config.entry(reply.config.clone()).or_default() += 1;
            }
            Outcome::Failed(failure) => {
                bucket.failed += 1;
                *self.failures.entry(failure.label()).or_default() += 1;
                if self.first_failure.is_none() {
                    self.first_failure = Some(describe(failure));
                }
            }
        }
        self.marks
            .push((sample.due, matches!(sample.outcome, Outcome::Ok(_))));
    }

    /// Marks a request as failed after the fact (e.g. its `host` was never a pod).
    pub fn reclassify_host_as_invalid(&mut self, host: &str) {
        if let Some(count) = self.per_host.remove(host) {
            self.ok -= count;
            *self.failures.entry("invalid body".into()).or_default() += count;
            self.first_failure
                .get_or_insert_with(|| format!("answer from unknown host {host:?}"));
        }
    }

    /// The hosts that answered.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.per_host.keys()
    }

    /// The summary of everything recorded.
    pub fn summary(&self) -> Summary {
        let mut marks = self.marks.clone();
        marks.sort_by_key(|(due, _)| *due);
        let outages = outages(&marks);
        let ms = |q: f64| {
            if self.requests == 0 {
                0.0
            } else {
                self.latency_us.value_at_quantile(q) as f64 / 1e3
            }
        };
        let failed = self.requests - self.ok;
        Summary {
            requests: self.requests,
            ok: self.ok,
            failed,
            failures: self.failures.clone(),
            first_failure: self.first_failure.clone(),
            success_ratio: if self.requests == 0 {
                0.0
            } else {
                self.ok as f64 / self.requests as f64
            },
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: if self.requests == 0 {
                0.0
            } else {
                self.latency_us.max() as f64 / 1e3
            },
            longest_outage_ms: outages.iter().map(|o| o.duration_ms).fold(0.0, f64::max),
            total_outage_ms: outages.iter().map(|o| o.duration_ms).sum(),
            outages,
            per_host: self.per_host.clone(),
            per_version: self.per_version.clone(),
            per_config: self.per_config.clone(),
            timeline: self.timeline.clone(),
        }
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Refused => "connection refused".into(),
        Failure::Reset => "connection reset or closed before a response".into(),
        Failure::Timeout => "no response before the timeout".into(),
        Failure::Status(code) => format!("HTTP status {code}"),
        Failure::InvalidBody(why) => format!("invalid body: {why}"),
        Failure::Other(why) => why.clone(),
    }
}

/// Runs of failures in due-time order. An outage lasts from its first failed request's due time
/// to the due time of the next good request (or the last failed one, if none followed).
pub fn outages(marks: &[(Duration, bool)]) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut current: Option<(Duration, Duration, u64)> = None;
    for &(due, ok) in marks {
        match (ok, &mut current) {
            (false, None) => current = Some((due, due, 1)),
            (false, Some((_, last, count))) => {
                *last = due;
                *count += 1;
            }
            (true, Some((start, _, count))) => {
                out.push(Outage {
                    start_ms: start.as_secs_f64() * 1e3,
                    duration_ms: (due - *start).as_secs_f64() * 1e3,
                    requests: *count,
                });
                current = None;
            }
            (true, None) => {}
        }
    }
    if let Some((start, last, count)) = current {
        out.push(Outage {
            start_ms: start.as_secs_f64() * 1e3,
            duration_ms: (last - start).as_secs_f64() * 1e3,
            requests: count,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::load::Reply;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// (due ms, ok) marks, and the outages they must give as (start ms, duration ms, requests).
    type OutageCase = (&'static [(u64, bool)], &'static [(f64, f64, u64)]);

    #[test]
    fn outage_table() {
        let cases: &[OutageCase] = &[
            (&[], &[]),
            (&[(0, true), (10, true)], &[]),
            (
                &[(0, true), (10, false), (20, false), (30, true)],
                &[(10.0, 20.0, 2)],
            ),
            (
                &[(0, false), (10, true), (20, false)],
                &[(0.0, 10.0, 1), (20.0, 0.0, 1)],
            ),
            (&[(0, true), (5, false), (100, false)], &[(5.0, 95.0, 2)]),
        ];
        for (marks, want) in cases {
            let marks: Vec<_> = marks.iter().map(|&(t, ok)| (ms(t), ok)).collect();
            let got: Vec<_> = outages(&marks)
                .into_iter()
                .map(|o| (o.start_ms, o.duration_ms, o.requests))
                .collect();
            assert_eq!(&got, want, "marks {marks:?}");
        }
    }

    #[test]
    fn summary_counts_and_percentiles() {
        let mut stats = Stats::default();
        for i in 0..100u64 {
            let outcome = if (40..50).contains(&i) {
                Outcome::Failed(Failure::Refused)
            } else {
                Outcome::Ok(Reply {
                    host: format!("pod-{}", i % 2),
                    version: "v1".into(),
                    ..Default::default()
                })
            };
            stats.record(&Sample {
                due: ms(i * 10),
                latency: ms(i + 1),
                outcome,
            });
        }
        let s = stats.summary();
        assert_eq!((s.requests, s.ok, s.failed), (100, 90, 10));
        assert_eq!(s.failures["refused"], 10);
        assert_eq!(s.per_host.len(), 2);
        assert!((s.longest_outage_ms - 100.0).abs() < 1e-6);
        assert!((s.p50_ms - 50.0).abs() < 1.0, "{}", s.p50_ms);
        assert!((s.max_ms - 100.0).abs() < 1.0);
        assert_eq!(s.timeline.len(), 10);
        stats.reclassify_host_as_invalid("pod-1");
        assert_eq!(stats.summary().ok, 45);
    }
}
