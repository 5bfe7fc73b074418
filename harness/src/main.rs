//! The `harness` command: `up` (the embedded cluster with a Kubernetes API for kubectl),
//! `check` (availability verdicts under disruption) and `port-forward`. Thin: parsing and
//! printing here, everything else in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The process runtime may run hostbot as `harness hostbot ...` when no hostbot binary is
    // beside this one.
    if args.get(1).is_some_and(|a| a == "hostbot") {
        return hostbot::main_with_args(args.into_iter().skip(1));
    }
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(cli::run(cli))
}
