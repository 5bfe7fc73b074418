//! hostbot: a tiny HTTP service that answers every `GET /` with the server's time and
//! hostname as JSON, built to be deployed, probed, drained, reconfigured and broken on purpose.
//!
//! The entry points are [`run`] (serve on a bound listener until a [`CancellationToken`] asks for
//! a graceful drain), [`Config`] (every setting, a plain struct with [`Default`]) and
//! [`main_with_args`] (the whole command line program, so another binary can re-exec itself as
//! hostbot). Each call to [`run`] owns all of its state: readiness, metrics, the config snapshot
//! and the fault counters live in that call, so one process can host many independent hostbots.
//!
//! # Layout
//!
//! - `config`: [`Config`], the settings of one instance, and the duration syntax they use.
//! - `faults`: [`Faults`], the knobs that make an instance slow, flaky, crashing or deaf.
//! - `server`: accept loops, per-connection timeouts and the shutdown sequence behind [`run`].
//! - `routes`: what each path answers; the part that knows HTTP semantics, not sockets.
//! - `reload`: reading the config directory and following kubelet's atomic `..data` swaps.
//! - `metrics`: request counters rendered in the Prometheus text format.
//! - `shutdown`: turning SIGTERM/SIGINT into the graceful and forced cancellation tokens.
//! - `healthcheck`: `hostbot --healthcheck`, the probe for images without curl.
//! - `workers`: the binary's thread-per-core serving threads, one current-thread runtime each.
//! - `cli`: flags and environment variables, logging setup, runtimes, binding, exit codes.
//! - `error`: [`Error`], and the exit code each failure maps to.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken
#![forbid(unsafe_code)]

mod cli;
mod config;
mod error;
mod faults;
mod healthcheck;
mod metrics;
mod reload;
mod routes;
mod server;
mod shutdown;
mod workers;

pub use cli::{Args, LogFormat, main_with_args};
pub use config::{Config, parse_duration};
pub use error::Error;
pub use faults::Faults;
pub use server::{run, run_with_force};
pub use shutdown::{Signals, forward_signals};
