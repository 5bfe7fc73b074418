//! The world of one test: a `harness up` child process with its own temp dir, kubeconfig and
//! kubectl discovery cache, and kubectl run against it to completion ([`Up::kubectl`]) or in the
//! background ([`Background`], for `--watch` and `port-forward`). The other helpers (HTTP,
//! reading kubectl's output) live beside this file and are re-exported here.
//!
//! Every wait has a deadline and polls a condition; nothing sleeps in place of waiting. A test
//! ends with [`Up::stop`] (SIGTERM, exit code 0, none of its hostbot processes left); if it
//! panics first, the [`Drop`] of [`Up`] kills the harness (its pods die with it through
//! `PR_SET_PDEATHSIG`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::background::Background;
pub use crate::http::{Load, hostbot_json, http_get, http_request};
pub use crate::output::{
    Table, age_seconds, assert_contains, events_section, is_deployment_pod, is_suffixed,
    is_template_hash, replicaset_of,
};

/// How long a condition may take before the test fails (pods start in well under a second;
/// this covers a loaded two-core machine running several clusters at once).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The alphabet of pod-template hashes and pod-name suffixes (upstream `rand.SafeEncodeString`).
pub const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// Whether kubectl can run here. Missing: a failure under `CI=true`, else a loud skip.
pub fn kubectl_available() -> bool {
    let probe = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|err| format!("cannot run kubectl: {err}"))
        .and_then(|status| {
            if status.success() {
                Ok(())
            } else {
                Err(format!("kubectl version --client exited with {status}"))
            }
        });
    e2e::require(
        "kubectl",
        probe,
        "the kubectl tests drive `harness up` with the real kubectl (v1.32) from PATH",
    )
}

/// A fixture file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    let path = e2e::workspace_root().join("tests/fixtures").join(name);
    assert!(path.is_file(), "no fixture {}", path.display());
    path
}

/// A shipped manifest under `manifests/`.
pub fn manifest(name: &str) -> PathBuf {
    let path = e2e::workspace_root().join("manifests").join(name);
    assert!(path.is_file(), "no manifest {}", path.display());
    path
}

/// The output of one kubectl run.
#[derive(Debug)]
pub struct Out {
    pub shown: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {} ({})\n--- stdout\n{}--- stderr\n{}",
            self.shown, self.status, self.stdout, self.stderr
        )
    }
}

/// One `harness up` and everything the test keeps beside it.
pub struct Up {
    child: Option<Child>,
    pid: u32,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// hostbot processes seen as children of this harness.
    hostbots: Mutex<BTreeSet<u32>>,
}

impl Up {
    /// Starts `harness up --quiet --api-port 0` with a kubeconfig in a fresh temp dir and waits
    /// for its `export KUBECONFIG=` line. `None` when kubectl is missing (the test is skipped).
    pub fn start() -> Option<Up> {
        Up::start_with(&[])
    }

    /// [`Up::start`] with manifests applied at start (`-f`).
    pub fn start_with(manifests: &[PathBuf]) -> Option<Up> {
        if !kubectl_available() {
            return None;
        }
        let harness = e2e::harness_binary().expect("cargo builds the harness");
        let dir = tempfile::Builder::new()
            .prefix("kubectl-e2e-")
            .tempdir()
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("harness.log")).unwrap();
        let mut command = Command::new(harness);
        command
            .args(["up", "--quiet", "--api-port", "0", "--kubeconfig"])
            .arg(&kubeconfig);
        for path in manifests {
            command.arg("-f").arg(path);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("harness starts");
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let mut up = Up {
            child: Some(child),
            pid,
            dir,
            kubeconfig: kubeconfig.clone(),
            hostbots: Mutex::new(BTreeSet::new()),
        };
        // The first stdout line says where the kubeconfig is; read it with a deadline.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            // Keep draining so the harness never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = receiver.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "harness up printed no KUBECONFIG line in {TIMEOUT:?}\n{}",
                up.log()
            )
        });
        assert_eq!(
            line.trim(),
            format!("export KUBECONFIG={}", kubeconfig.display()),
            "harness up's first line\n{}",
            up.log()
        );
        if let Some(status) = up.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("harness up exited with {status}\n{}", up.log());
        }
        Some(up)
    }

    /// What the harness has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("harness.log")).unwrap_or_default()
    }

    /// Writes `text` into the temp dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A copy of fixture `name` in the temp dir with each `(from, to)` replaced (each must occur).
    pub fn edited(&self, name: &str, edits: &[(&str, &str)]) -> PathBuf {
        let mut text = std::fs::read_to_string(fixture(name)).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{name} has no {from:?}");
            text = text.replace(from, to);
        }
        self.write(name, &text)
    }

    /// A kubectl command for this cluster: KUBECONFIG and the discovery cache (KUBECACHEDIR)
    /// point into the temp dir, so the command line is exactly the tutorial's.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env_remove("KUBE_EDITOR")
            .env_remove("EDITOR")
            .stdin(Stdio::null());
        command
    }

    /// Runs kubectl to completion.
    pub fn kubectl(&self, args: &[&str]) -> Out {
        self.run(args, self.command(args))
    }

    /// Runs a prepared kubectl command (extra env) to completion, with a deadline.
    pub fn run(&self, args: &[&str], mut command: Command) -> Out {
        let shown = format!("kubectl {}", args.join(" "));
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
        let stdout = reader_thread(child.stdout.take().unwrap());
        let stderr = reader_thread(child.stderr.take().unwrap());
        let deadline = Instant::now() + TIMEOUT * 2;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{shown} did not finish in {:?}\n{}",
                    TIMEOUT * 2,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.note_hostbots();
        Out {
            shown,
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }

    /// Runs kubectl, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.success(), "{out}\n--- harness\n{}", self.log());
        out.stdout
    }

    /// Runs kubectl, which must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.success(), "expected a failure:\n{out}");
        out.stderr
    }

    /// `kubectl get ...` as a [`Table`].
    pub fn table(&self, args: &[&str]) -> Table {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        Table::parse(&self.ok(&all))
    }

    /// `kubectl get ... -o json` as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl printed JSON")
    }

    /// Starts kubectl in the background (watch, port-forward).
    pub fn background(&self, args: &[&str]) -> Background {
        Background::spawn(format!("kubectl {}", args.join(" ")), self.command(args))
    }

    /// `kubectl port-forward TARGET :PORT` in the background, once it listens: the local port.
    pub fn port_forward(&self, target: &str, port: u16) -> (Background, u16) {
        let remote = format!(":{port}");
        let forward = self.background(&["port-forward", target, &remote]);
        let line = forward.wait_line(TIMEOUT, |line| {
            line.starts_with("Forwarding from 127.0.0.1:")
        });
        // "Forwarding from 127.0.0.1:38411 -> 80"
        let rest = line.trim_start_matches("Forwarding from 127.0.0.1:");
        let (local, remote_shown) = rest.split_once(" -> ").expect("kubectl's forwarding line");
        assert_eq!(remote_shown.trim(), port.to_string(), "{line}");
        (forward, local.parse().expect("a local port"))
    }

    /// Polls `check` every 200 ms until it gives `Some`, or fails naming `what`.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {what}\n--- harness\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `kubectl get ARGS` prints a table for which `check` holds; returns it.
    pub fn wait_table(&self, args: &[&str], what: &str, check: impl Fn(&Table) -> bool) -> Table {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let out = self.kubectl(&all);
            if out.success() {
                let table = Table::parse(&out.stdout);
                if check(&table) {
                    return table;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {what}; last:\n{out}\n--- harness\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kubectl rollout status deployment/NAME`, which must end with "successfully rolled out".
    pub fn rollout_complete(&self, deployment: &str) -> String {
        let target = format!("deployment/{deployment}");
        let timeout = format!("--timeout={}s", TIMEOUT.as_secs());
        let out = self.ok(&["rollout", "status", &target, &timeout]);
        assert!(
            out.trim_end().ends_with(&format!(
                "deployment \"{deployment}\" successfully rolled out"
            )),
            "{out}"
        );
        out
    }

    /// The names of the pods `kubectl get pods -l SELECTOR` lists.
    pub fn pod_names(&self, selector: &str) -> Vec<String> {
        let out = self.ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        out.split_whitespace().map(str::to_owned).collect()
    }

    /// Waits until the pods matching `selector` are `count` pods of one ReplicaSet (the old ones
    /// gone, not just terminating); returns its name.
    pub fn settled_replicaset(&self, selector: &str, count: usize) -> String {
        self.wait_for(&format!("{count} pods of one ReplicaSet"), || {
            let pods = self.pod_names(selector);
            let sets: BTreeSet<&str> = pods.iter().map(|p| replicaset_of(p)).collect();
            (pods.len() == count && sets.len() == 1)
                .then(|| sets.into_iter().next().unwrap().to_owned())
        })
    }

    /// Records the hostbot processes that are children of this harness right now.
    fn note_hostbots(&self) {
        let children: Vec<u32> = e2e::pids_named("hostbot")
            .into_iter()
            .filter(|pid| parent_of(*pid) == Some(self.pid))
            .collect();
        self.hostbots.lock().unwrap().extend(children);
    }

    /// Stops the harness as a user does (SIGTERM) and checks that it exits 0 in time with no
    /// hostbot process of its own left behind.
    pub fn stop(mut self) {
        self.note_hostbots();
        let ours = self.hostbots.lock().unwrap().clone();
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
        // Pods get their grace periods: hostbot drains for DRAIN_DELAY (5 s by default).
        let deadline = Instant::now() + Duration::from_secs(45);
        let exit = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "harness up did not stop within 45 s of SIGTERM\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert_eq!(exit.code(), Some(0), "harness up after SIGTERM\n{log}");
        assert!(log.contains("stopped; nothing left running"), "{log}");
        let alive: Vec<u32> = e2e::pids_named("hostbot")
            .into_iter()
            .filter(|pid| ours.contains(pid) && state_of(*pid).is_some_and(|s| s != 'Z'))
            .collect();
        assert!(
            alive.is_empty(),
            "hostbot processes of this harness left behind: {alive:?} (of {ours:?})\n{log}"
        );
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The test failed before `stop`: kill the harness; its pods die with it.
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- harness log\n{}", self.log());
            }
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command: state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..." where comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The state letter of `pid` (`R`, `S`, `Z`...).
fn state_of(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

fn reader_thread(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
