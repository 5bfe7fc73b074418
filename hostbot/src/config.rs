//! The settings of one hostbot instance.
//!
//! [`Config`] is deliberately a plain struct with public fields and a [`Default`]: the command
//! line builds it from flags and environment variables (see `cli`), an embedding program builds
//! it directly. Nothing in here reads the environment; the listen address and the log format are
//! not here either, because [`run`](crate::run) receives an already bound listener and logging
//! is process-wide.

use std::path::PathBuf;
use std::time::Duration;

use crate::faults::Faults;

/// Everything [`run`](crate::run) needs to know about one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Reported as `host` in `GET /`. The command line uses `HOSTNAME` when set (Kubernetes
    /// sets it to the pod name, Docker to the container id) and the system hostname otherwise.
    pub hostname: String,
    /// Reported as `version` in `GET /`; defaults to the crate version.
    pub version: String,
    /// Directory holding the mounted ConfigMap (one file per key). `None`, or a directory that
    /// does not exist, means "no config": `GET /config` answers `{}`.
    pub config_dir: Option<PathBuf>,
    /// How often the config directory is re-read even without a file system event: the safety
    /// net for missed events, for a directory that appears later, and for when inotify is not
    /// available (for example, when the per-user instance limit is reached).
    pub config_poll_interval: Duration,
    /// After a shutdown request: how long to keep serving (with readiness failing and
    /// `Connection: close` on every answer) before the listener closes. Endpoint removal in a
    /// cluster races the SIGTERM, so a pod that stops accepting at once drops the requests that
    /// are still routed to it for a second or two. Keep it well below the pod's grace period.
    pub drain_delay: Duration,
    /// After the drain delay: how long in-flight requests may take to finish before the
    /// remaining connections are cut and [`run`](crate::run) reports
    /// [`Error::ShutdownTimeout`](crate::Error::ShutdownTimeout).
    pub shutdown_timeout: Duration,
    /// A client must send a complete request head within this time after connecting or after
    /// sending the first byte of a later request (slowloris protection).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this time.
    pub idle_timeout: Duration,
    /// Largest accepted request head (request line plus headers), in bytes; larger ones get 431.
    pub max_header_size: usize,
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_size: usize,
    /// Log one line per request (method, path, status, duration, peer).
    pub access_log: bool,
    /// Fault injection; all off by default.
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: system_hostname(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_dir: Some(PathBuf::from("/etc/hostbot")),
            config_poll_interval: Duration::from_secs(5),
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(20),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_header_size: 16 * 1024,
            max_body_size: 64 * 1024,
            access_log: false,
            faults: Faults::default(),
        }
    }
}

/// The kernel's hostname (not `HOSTNAME`, which only the command line consults), or
/// `localhost` when it cannot be read or is not UTF-8.
pub(crate) fn system_hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Parses a duration as written in flags, environment variables and manifests: a number with an
/// optional unit, `ms`, `s`, `m` or `h` (`500ms`, `5s`, `1.5s`, `2m`). A bare number means
/// seconds, so `DRAIN_DELAY=5` does what one expects.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected a number like 5s or 500ms"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("invalid duration {text:?}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        let cases = [
            ("5", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("1.5s", Duration::from_millis(1500)),
            ("250ms", Duration::from_millis(250)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 0 ", Duration::ZERO),
            ("0.5", Duration::from_millis(500)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_durations_name_the_input() {
        for text in ["", "s", "5x", "-1s", "1e3s", "five"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(&format!("{:?}", text.trim())), "{err}");
        }
    }

    #[test]
    fn default_drain_fits_the_kubernetes_grace_period() {
        let config = Config::default();
        assert!(config.drain_delay + config.shutdown_timeout < Duration::from_secs(30));
        assert!(!config.hostname.is_empty());
    }
}
