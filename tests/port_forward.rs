//! `harness port-forward` as a client of a running `harness up`, through its kubeconfig:
//! `svc/` sends each new connection to a ready pod, so requests keep succeeding through a
//! `kubectl rollout restart`; `deploy/` pins one pod and ends with it, as kubectl does.
//!
//! Without kubectl on PATH the test is skipped loudly, except under `CI=true`.

#[path = "support/prober.rs"]
mod prober;
#[path = "support/up.rs"]
mod up;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prober::Prober;
use up::{TIMEOUT, Up, kubectl_available};

/// A running `harness port-forward` and the local port it printed.
struct Forward {
    child: Child,
    port: u16,
    stderr: std::thread::JoinHandle<String>,
}

impl Forward {
    fn start(up: &Up, args: &[&str]) -> Forward {
        let mut child = Command::new(e2e::harness_binary().unwrap())
            .arg("port-forward")
            .args(args)
            .arg("--kubeconfig")
            .arg(up.kubeconfig())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("harness port-forward starts");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = receiver.recv_timeout(TIMEOUT).unwrap_or_default();
        // "Forwarding from 127.0.0.1:43210 -> 80", as kubectl prints it.
        let port = line
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "port-forward printed {line:?}\n--- stderr\n{}",
                stderr.join().unwrap()
            );
        };
        assert!(line.trim_end().ends_with(" -> 80"), "{line:?}");
        Forward {
            child,
            port,
            stderr,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits for the process to exit by itself; its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("port-forward did not exit in {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code(), self.stderr.join().unwrap())
    }

    /// SIGTERM, as Ctrl-C would stop it: exit 0.
    fn stop(self) {
        let pid = self.child.id().to_string();
        e2e::run(Command::new("kill").args(["-TERM", &pid])).unwrap();
        let (code, stderr) = self.wait();
        assert_eq!(code, Some(0), "{stderr}");
    }
}

fn hosts(samples: &[prober::Sample]) -> BTreeSet<String> {
    samples
        .iter()
        .filter_map(|s| s.result.clone().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_forward_survives_a_rollout_and_a_pinned_forward_ends_with_its_pod() {
    e2e::become_subreaper();
    if !kubectl_available("this test restarts the Deployment with the real kubectl from PATH") {
        return;
    }
    let up = Up::start(&["manifests"]);
    up.rollout_status("hostbot");

    // svc/: load on new connections every 5 ms through a rollout restart; nothing may fail.
    let forward = Forward::start(&up, &["svc/hostbot", "0:80", "--address", "127.0.0.1"]);
    let prober = Prober::start(forward.addr(), Duration::from_millis(5));
    prober.observe(100).await;
    up.kubectl(&["rollout", "restart", "deployment/hostbot"])
        .unwrap();
    up.rollout_status("hostbot");
    prober.observe(100).await;
    let samples = prober.stop().await;
    let failed: Vec<_> = samples.iter().filter(|s| s.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}\n--- harness\n{}",
        failed.len(),
        samples.len(),
        failed.first(),
        up.log()
    );
    assert!(samples.len() > 200, "only {} requests", samples.len());
    // The old pods answered before the restart and the new ones after.
    let (first, last) = samples.split_at(samples.len() / 10);
    let before = hosts(first);
    let after = hosts(&last[last.len() * 8 / 9..]);
    assert!(
        before.is_disjoint(&after),
        "the same pods answered before and after the restart: {before:?} / {after:?}"
    );
    assert!(after.len() >= 2, "one pod took every connection: {after:?}");
    forward.stop();

    // deploy/: one pod, pinned; deleting it ends the forward as kubectl's ends.
    let pinned = Forward::start(&up, &["deploy/hostbot", "0:80", "--address", "127.0.0.1"]);
    let prober = Prober::start(pinned.addr(), Duration::from_millis(50));
    prober.observe(6).await;
    let samples = prober.stop().await;
    let pods = hosts(&samples);
    assert_eq!(pods.len(), 1, "a pinned forward reached {pods:?}");
    let pod = pods.into_iter().next().unwrap();
    up.kubectl(&["delete", "pod", &pod, "--wait=false"])
        .unwrap();
    let (code, stderr) = pinned.wait();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("lost connection to pod {pod}")),
        "{stderr}"
    );

    up.stop();
}
