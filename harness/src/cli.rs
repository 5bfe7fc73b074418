//! Command-line parsing and the commands.

mod check;
mod interrupt;
mod load;
mod port_forward;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// An embedded single-machine cluster that speaks Kubernetes, and an availability checker.
#[derive(Debug, Parser)]
#[command(name = "harness", version, about, long_about = None)]
pub struct Cli {
    /// More logs (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run load through a forwarded port while the cluster is disrupted, and say whether
    /// availability held (exit 0: all scenarios passed, 1: a scenario failed, 2: usage or set-up
    /// error).
    Check(check::CheckArgs),
    /// Start the embedded cluster in the foreground and serve a Kubernetes API on 127.0.0.1 for
    /// kubectl (prints `export KUBECONFIG=...`).
    Up(up::UpArgs),
    /// Send the checker's open-loop load to one address and print what came back (no cluster).
    Load(load::LoadArgs),
    /// Forward local ports to a pod, or per connection to a Service's ready pods, through a
    /// cluster's API (like kubectl port-forward; svc/ survives rolling updates).
    PortForward(port_forward::PortForwardArgs),
}

/// Which container runtime runs pods.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum RuntimeArg {
    /// Every container is a real OS process (default).
    Process,
    /// The hostbot library served from tasks inside the harness (for scale).
    Inprocess,
    /// Every container is a Docker container from a local image (needs a running dockerd).
    Docker,
}

impl From<RuntimeArg> for harness::runtime::RuntimeKind {
    fn from(arg: RuntimeArg) -> Self {
        match arg {
            RuntimeArg::Process => harness::runtime::RuntimeKind::Process,
            RuntimeArg::Inprocess => harness::runtime::RuntimeKind::InProcess,
            RuntimeArg::Docker => harness::runtime::RuntimeKind::Docker,
        }
    }
}

/// Logs go to stderr; `-v` shows the harness's own info lines, `-vv` debug.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,harness::portforward=error",
        1 => "info,harness=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => check::run(args).await,
        Command::Up(args) => up::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::PortForward(args) => port_forward::run(args).await,
    }
}
