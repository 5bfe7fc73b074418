//! `harness up` as a child process for end-to-end tests that act on it as a user would, through
//! its kubeconfig: [`Up::start`] waits for the `export KUBECONFIG=` line, [`Up::kubectl`] runs
//! kubectl against it, [`Up::stop`] sends SIGTERM and checks that it exits 0 with none of its
//! hostbot processes left (the test must have called [`e2e::become_subreaper`] first). If a
//! test panics, [`Drop`] kills the harness (its pods die with it through `PR_SET_PDEATHSIG`).

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the cluster may take to start or stop, and a rollout to finish.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether kubectl can run here. Missing: a failure under `CI=true`, else a loud skip.
pub fn kubectl_available(why: &str) -> bool {
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
    e2e::require("kubectl", probe, why)
}

/// A running `harness up`.
pub struct Up {
    child: Option<Child>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Up {
    /// Starts `harness up --quiet --api-port 0` with `manifests` (paths relative to the
    /// workspace root) and a kubeconfig in a fresh temp dir.
    pub fn start(manifests: &[&str]) -> Up {
        let harness = e2e::harness_binary().expect("cargo builds the harness");
        let dir = tempfile::Builder::new()
            .prefix("up-e2e-")
            .tempdir()
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("harness.log")).unwrap();
        let mut command = Command::new(harness);
        command
            .current_dir(e2e::workspace_root())
            .args(["up", "--quiet", "--api-port", "0", "--kubeconfig"])
            .arg(&kubeconfig);
        for path in manifests {
            command.args(["-f", path]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("harness up starts");
        let stdout = child.stdout.take().unwrap();
        let up = Up {
            child: Some(child),
            dir,
            kubeconfig: kubeconfig.clone(),
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = receiver
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("harness up printed no KUBECONFIG line\n{}", up.log()));
        assert_eq!(
            line.trim(),
            format!("export KUBECONFIG={}", kubeconfig.display()),
            "{}",
            up.log()
        );
        up
    }

    /// The kubeconfig `harness up` wrote.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A file in the test's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the harness has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("harness.log")).unwrap_or_default()
    }

    /// Runs kubectl against the cluster; its stdout, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        e2e::run(
            Command::new("kubectl")
                .args(args)
                .env("KUBECONFIG", &self.kubeconfig)
                .env("KUBECACHEDIR", self.path("cache"))
                .stdin(Stdio::null()),
        )
    }

    /// Waits until the Deployment's rollout is complete.
    pub fn rollout_status(&self, deployment: &str) {
        let target = format!("deployment/{deployment}");
        let timeout = format!("--timeout={}s", TIMEOUT.as_secs());
        if let Err(err) = self.kubectl(&["rollout", "status", &target, &timeout]) {
            panic!("{err:#}\n--- harness\n{}", self.log());
        }
    }

    /// SIGTERM; the harness must exit 0 and leave no hostbot process behind.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        e2e::run(Command::new("kill").args(["-TERM", &child.id().to_string()]))
            .expect("SIGTERM is sent");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("harness up did not stop in {TIMEOUT:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "harness up exited with {status}\n{}",
            self.log()
        );
        let left = e2e::orphans_named("hostbot");
        assert!(left.is_empty(), "hostbot processes left behind: {left:?}");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
