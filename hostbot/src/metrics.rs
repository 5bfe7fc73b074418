//! Request metrics for `GET /metrics`, in the Prometheus text exposition format.
//!
//! [`Metrics`] belongs to one running instance (no process-wide registry), is updated with
//! relaxed atomics on the request path and rendered by hand: the format is simple and a metrics
//! crate would bring a global registry this crate must not have.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Status codes are counted in a flat table indexed by `code - 100`.
const CODES: usize = 500;

/// The counters of one instance.
#[derive(Debug)]
pub(crate) struct Metrics {
    started: Instant,
    by_status: Box<[AtomicU64]>,
    in_flight: AtomicU64,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            started: Instant::now(),
            by_status: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            in_flight: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// Marks a request as in flight until the returned guard is dropped.
    pub(crate) fn request_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn request_finished(&self, status: u16) {
        if let Some(counter) = usize::from(status)
            .checked_sub(100)
            .and_then(|index| self.by_status.get(index))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> Connection<'_> {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        Connection(&self.connections_open)
    }

    pub(crate) fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    pub(crate) fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text. `ready` is passed in because readiness is not a counter.
    pub(crate) fn render(&self, ready: bool) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str(
            "# HELP hostbot_http_requests_total HTTP requests answered, by status code.\n\
             # TYPE hostbot_http_requests_total counter\n",
        );
        for (index, counter) in self.by_status.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                let code = index + 100;
                let _ = writeln!(
                    out,
                    "hostbot_http_requests_total{{code=\"{code}\"}} {count}"
                );
            }
        }
        let gauges = [
            (
                "hostbot_http_requests_in_flight",
                "gauge",
                "HTTP requests being handled.",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "hostbot_connections_open",
                "gauge",
                "Open client connections.",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "hostbot_connections_total",
                "counter",
                "Client connections accepted.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "hostbot_ready",
                "gauge",
                "1 when the readiness endpoint answers 200.",
                u64::from(ready),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        let _ = write!(
            out,
            "# HELP hostbot_config_reloads_total Config directory reads that changed the config or failed.\n\
             # TYPE hostbot_config_reloads_total counter\n\
             hostbot_config_reloads_total{{result=\"ok\"}} {}\n\
             hostbot_config_reloads_total{{result=\"error\"}} {}\n",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP hostbot_uptime_seconds Seconds since the instance started.\n\
             # TYPE hostbot_uptime_seconds gauge\n\
             hostbot_uptime_seconds {:.3}\n",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}

/// Decrements the in-flight gauge on drop, so cancelled requests are not counted forever.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the open-connections gauge on drop.
pub(crate) struct Connection<'a>(&'a AtomicU64);

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_code_and_gauges() {
        let metrics = Metrics::new();
        metrics.request_finished(200);
        metrics.request_finished(200);
        metrics.request_finished(503);
        metrics.request_finished(42); // out of range: ignored, not a panic
        let in_flight = metrics.request_started();
        let _conn = metrics.connection_opened();
        metrics.reload(true);
        let text = metrics.render(true);
        assert!(
            text.contains("hostbot_http_requests_total{code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("hostbot_http_requests_total{code=\"503\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("code=\"404\""), "{text}");
        assert!(
            text.contains("hostbot_http_requests_in_flight 1\n"),
            "{text}"
        );
        assert!(text.contains("hostbot_connections_open 1\n"), "{text}");
        assert!(text.contains("hostbot_ready 1\n"), "{text}");
        assert!(
            text.contains("hostbot_config_reloads_total{result=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("hostbot_uptime_seconds "), "{text}");
        drop(in_flight);
        assert!(
            metrics
                .render(false)
                .contains("hostbot_http_requests_in_flight 0\n")
        );
    }

    #[test]
    fn every_sample_line_has_help_and_type() {
        let text = Metrics::new().render(false);
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
    }
}
