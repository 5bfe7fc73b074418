//! End-to-end test support, shared by the test binaries in `tests/`.
//!
//! These tests drive real programs (the hostbot and harness binaries, a Docker engine, a
//! registry), so the helpers here are about the world outside the process: where the workspace
//! is ([`workspace_root`]), a free port ([`free_port`]), waiting for a condition with a deadline
//! instead of sleeping ([`wait_until`]), running commands with useful errors ([`run`]), and
//! deciding what to do when an external dependency is missing ([`require`]: skip loudly on a
//! workstation, fail in CI).
//!
//! # Layout
//!
//! Everything is in this file; it is small and has one purpose.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

/// The workspace root (where the root `Cargo.toml`, `Dockerfile` and `manifests/` are).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A TCP port that was free on 127.0.0.1 a moment ago. Another process may take it before the
/// caller binds it; prefer letting the program bind port 0 and report its address when it can.
///
/// The port comes from 20000-32767, below Linux's ephemeral range (32768-60999): the kernel
/// hands ephemeral ports to every `bind(0)` and outgoing `connect` on the machine, so a port
/// found with `bind(0)` and released is often taken again within milliseconds on a busy CI
/// machine. Ports here are only taken by someone asking for them by number. Each call in this
/// process gets a different port. A process that another thread forks at the moment the port
/// is probed inherits the probe's socket until it execs, so the port may stay taken for a few
/// milliseconds.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = (std::process::id()
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos()))
        % COUNT;
    let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(FIRST + offset).expect("ports below 32768 fit in u16");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1 in {FIRST}-{}", FIRST + COUNT - 1)
}

/// A suffix unique enough for names of throwaway resources (image tags, container names).
pub fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{}-{nanos:08x}", std::process::id())
}

/// Whether this run is in CI (`CI=true`), where a missing dependency is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Decides what a test does when `what` is not available: `Ok` -> run (returns `true`); missing
/// in CI -> panic with the reason; missing elsewhere -> print a loud `SKIPPED` line with `hint`
/// to stderr and return `false`, so the test can return early.
pub fn require(what: &str, probe: Result<(), String>, hint: &str) -> bool {
    match probe {
        Ok(()) => true,
        Err(reason) if in_ci() => panic!("{what} not reachable ({reason}) and CI=true: {hint}"),
        Err(reason) => {
            eprintln!("\n*** SKIPPED: {what} not reachable — {hint} ({reason}) ***\n");
            false
        }
    }
}

/// Probes the Docker engine through the `docker` CLI (`$DOCKER`, default `docker`).
pub fn docker_available() -> Result<(), String> {
    let output = Command::new(docker_cli())
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|err| format!("cannot run {}: {err}", docker_cli()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Probes a Docker registry's API root (`GET http://{addr}/v2/`).
pub async fn registry_available(addr: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|err| err.to_string())?;
    match client.get(format!("http://{addr}/v2/")).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("GET /v2/ answered {}", response.status())),
        Err(err) => Err(err.to_string()),
    }
}

/// The Docker CLI to use: `$DOCKER` or `docker` from `PATH`.
pub fn docker_cli() -> String {
    std::env::var("DOCKER").unwrap_or_else(|_| "docker".to_owned())
}

/// Runs `docker args...` in `dir` and returns its trimmed stdout; a failure carries stderr.
pub fn docker<I, S>(dir: &Path, args: I) -> anyhow::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(docker_cli());
    command.current_dir(dir).args(args);
    run(&mut command)
}

/// Runs `command` to completion and returns its trimmed stdout; a non-zero exit is an error
/// naming the command and carrying its stderr.
pub fn run(command: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Polls `check` every 20 ms until it returns `Ok(Some(_))`, and fails with `what` and the last
/// error after `timeout`. An `Err` from `check` means "not yet" and is kept for the message.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last = format!("{err:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds the static hostbot binary the `prebuilt` Docker target packages, in the workspace's
/// own target directory, and returns its path.
pub fn build_static_hostbot() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo)
        .current_dir(&root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "-p",
            "hostbot",
            "--target",
            "x86_64-unknown-linux-gnu",
        ]))?;
    let binary = root.join("target/x86_64-unknown-linux-gnu/release/hostbot");
    anyhow::ensure!(binary.is_file(), "cargo built no {}", binary.display());
    Ok(binary)
}

/// The debug `harness` binary (with `hostbot` beside it), built once per test process with the
/// same cargo that runs the tests, so end-to-end tests never run a stale build.
pub fn harness_binary() -> anyhow::Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            run(Command::new(cargo)
                .current_dir(&root)
                .args(["build", "-p", "harness", "-p", "hostbot"]))
            .map_err(|e| format!("{e:#}"))?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let binary = target.join("debug/harness");
            if binary.is_file() {
                Ok(binary)
            } else {
                Err(format!("cargo built no {}", binary.display()))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The process ids of running programs whose executable is named `name`.
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .collect()
}

/// Makes this test process the reaper of orphans: a process whose parent dies is re-parented to
/// us instead of PID 1, so [`orphans_named`] can tell exactly what a program under test left
/// behind, even while other programs on the machine start and stop processes of the same name.
pub fn become_subreaper() {
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers and only sets a process flag.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Living (not zombie) processes named `name` whose parent is this process: after
/// [`become_subreaper`] and once the program under test has exited, these are its leftovers.
pub fn orphans_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    pids_named(name)
        .into_iter()
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // The fields after the parenthesised command: state, ppid, ...
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let mut fields = after.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            state != "Z" && ppid == me
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_has_the_dockerfile_and_manifests() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("Dockerfile").is_file());
        assert!(root.join("manifests").is_dir());
    }

    #[test]
    fn free_port_is_bindable_outside_the_ephemeral_range_and_not_repeated() {
        let first = free_port().unwrap();
        let second = free_port().unwrap();
        assert_ne!(first, second);
        for port in [first, second] {
            assert!((20_000..32_768).contains(&port), "{port}");
            // A process forked by another test thread while free_port held the listener keeps
            // a copy of it until that process execs; the port is free once it has.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match TcpListener::bind(("127.0.0.1", port)) {
                    Ok(_) => break,
                    Err(e) if Instant::now() < deadline => {
                        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("port {port} is still taken after 5 s: {e}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn wait_until_returns_the_value_or_names_the_condition() {
        let mut calls = 0;
        let value = wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { Ok(done.then_some(calls)) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);

        let err = wait_until::<(), _, _>("never", Duration::from_millis(50), || async {
            anyhow::bail!("still broken")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("waiting for never") && err.contains("still broken"),
            "{err}"
        );
    }

    #[test]
    fn failed_commands_carry_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("oops") && err.contains("exit status: 3"),
            "{err}"
        );
    }
}
