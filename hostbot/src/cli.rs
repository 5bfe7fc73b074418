//! The command line: flags and environment variables ([`Args`]), logging, the runtimes (a
//! current-thread one on the main thread and the thread-per-core `workers`), binding, signals
//! and exit codes, all in [`main_with_args`].
//!
//! This is the only place that reads the environment, installs a global tracing subscriber or
//! touches signals; everything below it takes a [`Config`]. `main_with_args` takes its arguments
//! explicitly so that another binary can re-exec itself as hostbot.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, parse_duration, system_hostname};
use crate::error::Error;
use crate::faults::Faults;
use crate::healthcheck;
use crate::server::{self, Listeners};
use crate::shutdown::Signals;
use crate::workers::Workers;

const ABOUT: &str = "Answers every GET / with the server's time and hostname as JSON";

const LONG_ABOUT: &str = "\
Answers every GET / with the server's time and hostname as JSON, the tutorial's hostbot built
to be deployed, probed, drained, reconfigured and broken on purpose.

Endpoints:
  GET  /                      {\"time\", \"host\", \"version\", \"config\"}
  GET  /config                the config directory as {file: content}
  GET  /healthz               liveness  (POST /healthz/disable, /healthz/enable)
  GET  /readyz                readiness (POST /readyz/disable,  /readyz/enable)
  GET  /metrics               Prometheus text

Shutdown: SIGTERM or SIGINT turns readiness off at once, keeps serving for the drain delay,
closes the listener, lets in-flight requests finish (closing idle keep-alive connections) and
exits 0. A second signal exits at once with 130. The config directory is re-read whenever it
changes, including kubelet's atomic ConfigMap swap.

Every option can also be set by the environment variable shown; durations take ms, s, m or h
(a bare number is seconds).";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command line of hostbot. [`Args::config`] turns it into a [`Config`].
#[derive(Debug, Clone, Parser)]
#[command(name = "hostbot", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the startup line shows which).
    #[arg(long, env = "PORT", default_value_t = 80)]
    pub port: u16,

    /// Name reported as "host" [default: the system hostname].
    #[arg(long, env = "HOSTNAME")]
    pub hostname: Option<String>,

    /// Version reported as "version".
    #[arg(long = "app-version", env = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub app_version: String,

    /// Directory of the mounted ConfigMap; re-read on change. Empty disables it.
    #[arg(long, env = "CONFIG_DIR", default_value = "/etc/hostbot", value_parser = parse_path)]
    pub config_dir: PathBuf,

    /// Re-read the config directory this often even without a change event.
    #[arg(long, env = "CONFIG_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub config_poll_interval: Duration,

    /// After SIGTERM, keep serving (readiness off) this long before closing the listener.
    /// Endpoint removal races the signal; keep it above the readiness probe's detection time
    /// (period x failureThreshold) and well below the grace period.
    #[arg(long, env = "DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// After the drain delay, wait this long for in-flight requests, then cut them and exit 1.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// A request head must arrive within this time (slowloris protection).
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Close keep-alive connections idle for this long.
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Largest request head in bytes; larger ones get 431.
    #[arg(long, env = "MAX_HEADER_SIZE", default_value_t = 16 * 1024)]
    pub max_header_size: usize,

    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "MAX_BODY_SIZE", default_value_t = 64 * 1024)]
    pub max_body_size: usize,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log every request (method, path, status, duration, peer). RUST_LOG sets the log filter.
    #[arg(long, env = "ACCESS_LOG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub access_log: bool,

    /// Serving threads, each with its own event loop; 0 means one per available CPU (respecting
    /// cgroup limits).
    #[arg(long, env = "WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Probe a running hostbot's /healthz (at URL, or at HOST:PORT) and exit 0 if healthy, 1 if
    /// not. For HEALTHCHECK in images without curl.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub healthcheck: Option<String>,

    /// Stay unready this long after start.
    #[arg(long, env = "SLOW_START", default_value = "0s", value_parser = parse_duration, help_heading = "Fault injection")]
    pub slow_start: Duration,

    /// Never become ready.
    #[arg(long, env = "NEVER_READY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), help_heading = "Fault injection")]
    pub never_ready: bool,

    /// Exit with the crash exit code right after start.
    #[arg(long, env = "CRASH_AT_START", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), help_heading = "Fault injection")]
    pub crash_at_start: bool,

    /// Serve N requests to / and /config, then crash on the next one.
    #[arg(
        long,
        env = "CRASH_AFTER_REQUESTS",
        value_name = "N",
        help_heading = "Fault injection"
    )]
    pub crash_after_requests: Option<u64>,

    /// Crash this long after start.
    #[arg(long, env = "CRASH_AFTER", value_parser = parse_duration, value_name = "DURATION", help_heading = "Fault injection")]
    pub crash_after: Option<Duration>,

    /// Exit code of the crash faults.
    #[arg(
        long,
        env = "CRASH_EXIT_CODE",
        default_value_t = 1,
        help_heading = "Fault injection"
    )]
    pub crash_exit_code: u8,

    /// Delay every answer of / and /config by this much...
    #[arg(long, env = "RESPONSE_DELAY", default_value = "0s", value_parser = parse_duration, help_heading = "Fault injection")]
    pub response_delay: Duration,

    /// ...plus a random extra delay below this.
    #[arg(long, env = "RESPONSE_JITTER", default_value = "0s", value_parser = parse_duration, help_heading = "Fault injection")]
    pub response_jitter: Duration,

    /// Answer this fraction (0 to 1) of requests to / and /config with 500.
    #[arg(long, env = "ERROR_RATE", default_value_t = 0.0, value_parser = parse_rate, help_heading = "Fault injection")]
    pub error_rate: f64,

    /// Ignore SIGTERM/SIGINT (a second signal still forces the exit), to test the SIGKILL at the
    /// end of the grace period.
    #[arg(long, env = "IGNORE_SIGTERM", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), help_heading = "Fault injection")]
    pub ignore_sigterm: bool,

    /// After closing the connections, take this much longer to exit.
    #[arg(long, env = "SLOW_SHUTDOWN", default_value = "0s", value_parser = parse_duration, help_heading = "Fault injection")]
    pub slow_shutdown: Duration,
}

/// Like clap's path parser, but an empty value is allowed (it disables the config directory).
fn parse_path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "invalid rate {text:?}: expected a number from 0 to 1"
        )),
    }
}

impl Args {
    /// The settings of the instance these arguments describe. The hostname falls back to the
    /// system hostname when `HOSTNAME` is unset or empty.
    pub fn config(&self) -> Config {
        Config {
            hostname: self
                .hostname
                .clone()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(system_hostname),
            version: self.app_version.clone(),
            config_dir: (!self.config_dir.as_os_str().is_empty()).then(|| self.config_dir.clone()),
            config_poll_interval: self.config_poll_interval,
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_header_size: self.max_header_size,
            max_body_size: self.max_body_size,
            access_log: self.access_log,
            faults: Faults {
                slow_start: self.slow_start,
                never_ready: self.never_ready,
                crash_at_start: self.crash_at_start,
                crash_after_requests: self.crash_after_requests,
                crash_after: self.crash_after,
                crash_exit_code: self.crash_exit_code,
                response_delay: self.response_delay,
                response_jitter: self.response_jitter,
                error_rate: self.error_rate,
                ignore_sigterm: self.ignore_sigterm,
                slow_shutdown: self.slow_shutdown,
            },
        }
    }
}

impl From<&Args> for Config {
    fn from(args: &Args) -> Self {
        args.config()
    }
}

/// Everything `main` does: parse `args` (the first item is the program name, as in
/// [`std::env::args_os`]; the environment is read too), set up logging and the runtime, bind,
/// install signal handlers and [`run`](crate::run). Returns the process exit code: 0 after a
/// clean shutdown, 1 on errors, 2 on usage errors, 130 after a forced shutdown, the configured
/// code after a crash fault.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    if let Some(url) = &args.healthcheck {
        return healthcheck_main(&args, url);
    }
    init_tracing(args.log_format);
    let result = start_runtimes(args.worker_threads)
        .and_then(|(control, workers)| control.block_on(serve(&args, &workers)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A crash fault is logged where it fires; everything else gets one line on stderr.
            if !matches!(err, Error::Crash { .. }) {
                eprintln!("hostbot: {}", error_chain(&err));
            }
            ExitCode::from(err.exit_code())
        }
    }
}

/// The main thread's runtime (signals, the shutdown sequence, the reloader) and the serving
/// threads: `threads` of them, or one per available CPU (cgroup limits included) if 0.
fn start_runtimes(threads: usize) -> Result<(tokio::runtime::Runtime, Workers), Error> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Listener)?;
    let workers = Workers::start(threads).map_err(Error::Listener)?;
    Ok((control, workers))
}

async fn serve(args: &Args, workers: &Workers) -> Result<(), Error> {
    let listeners = bind(&args.host, args.port, workers).await?;
    let signals = Signals::install().map_err(Error::Listener)?;
    let (graceful, force) = (CancellationToken::new(), CancellationToken::new());
    let forwarding = signals.forward(graceful.clone(), force.clone());
    let mut run = pin!(server::run_on(
        Listeners::PerRuntime(listeners),
        args.config(),
        graceful,
        force
    ));
    tokio::select! {
        result = &mut run => result,
        // Forwarding ends after the second signal cancelled `force`: `run` returns at once.
        () = forwarding => run.await,
    }
}

/// Binds `host:port`, one listener per worker, turning the usual failures into advice that
/// names the port.
async fn bind(
    host: &str,
    port: u16,
    workers: &Workers,
) -> Result<Vec<(Handle, TcpListener)>, Error> {
    let addr: SocketAddr = match tokio::net::lookup_host((host, port)).await {
        Ok(mut addrs) => addrs.next(),
        Err(_) => None,
    }
    .ok_or_else(|| Error::Bind {
        addr: format!("{host}:{port}"),
        advice: format!("cannot resolve {host:?}; set HOST to an address such as 0.0.0.0"),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    workers.bind(addr).map_err(|err| {
        let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|text| text.trim().parse().ok());
        Error::bind(addr, err, start)
    })
}

fn healthcheck_main(args: &Args, url: &str) -> ExitCode {
    let url = if url.is_empty() {
        healthcheck::default_url(&args.host, args.port)
    } else {
        url.to_owned()
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Listener)
        .and_then(|runtime| runtime.block_on(healthcheck::probe(&url, Duration::from_secs(3))));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hostbot: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // Another subscriber may already be installed when embedded; keep it then.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `error: cause: cause`, like anyhow's `{:#}`, skipping causes the message already contains.
fn error_chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("hostbot").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory as _;
        Args::command().debug_assert();
    }

    #[test]
    fn flags_become_config() {
        let args = parse(&[
            "--hostname=pod-1",
            "--app-version=v2",
            "--config-dir=",
            "--drain-delay=250ms",
            "--error-rate=0.25",
            "--crash-after-requests=7",
            "--crash-exit-code=3",
            "--never-ready",
        ]);
        let config = args.config();
        assert_eq!(config.hostname, "pod-1");
        assert_eq!(config.version, "v2");
        assert_eq!(config.config_dir, None);
        assert_eq!(config.drain_delay, Duration::from_millis(250));
        assert_eq!(config.faults.error_rate, 0.25);
        assert_eq!(config.faults.crash_after_requests, Some(7));
        assert_eq!(config.faults.crash_exit_code, 3);
        assert!(config.faults.never_ready);
    }

    #[test]
    fn defaults_match_config_defaults_except_hostname() {
        let args = parse(&["--hostname="]);
        let config = args.config();
        let default = Config::default();
        assert_eq!(config.hostname, system_hostname());
        assert_eq!(
            Config {
                hostname: default.hostname.clone(),
                ..config
            },
            default
        );
        assert_eq!((args.host.as_str(), args.port), ("0.0.0.0", 80));
    }

    #[test]
    fn rejects_out_of_range_rates_and_bad_durations() {
        for args in [["--error-rate=1.5"], ["--drain-delay=soon"]] {
            let err = Args::try_parse_from(std::iter::once("hostbot").chain(args)).unwrap_err();
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn healthcheck_flag_with_and_without_url() {
        assert_eq!(parse(&["--healthcheck"]).healthcheck.as_deref(), Some(""));
        assert_eq!(
            parse(&["--healthcheck", "http://127.0.0.1:9/healthz"])
                .healthcheck
                .as_deref(),
            Some("http://127.0.0.1:9/healthz")
        );
        assert_eq!(parse(&[]).healthcheck, None);
    }
}
