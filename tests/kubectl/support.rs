//! The world of one test: a `harness up` child process with its own temp dir, kubeconfig and
//! kubectl discovery cache; kubectl run to completion ([`Up::kubectl`]) or in the background
//! ([`Background`], for `--watch` and `port-forward`); plain HTTP through a forwarded port or a
//! Service address ([`http_get`], [`Load`]); and kubectl's tables read by column ([`Table`]).
//!
//! Every wait has a deadline and polls a condition; nothing sleeps in place of waiting. A test
//! ends with [`Up::stop`] (SIGTERM, exit code 0, none of its hostbot processes left); if it
//! panics first, the [`Drop`] of [`Up`] kills the harness (its pods die with it through
//! `PR_SET_PDEATHSIG`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

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
            .filter(|pid| ours.contains(pid))
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

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..." where comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn reader_thread(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Lines a background process has printed, shared with its reader threads.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A kubectl running in the background; its stdout and stderr lines are collected. Dropping it
/// kills it.
pub struct Background {
    shown: String,
    child: Child,
    lines: Arc<Lines>,
}

impl Background {
    fn spawn(shown: String, mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
        let lines = Arc::new(Lines::default());
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lines.lock().unwrap().push(line);
                    lines.changed.notify_all();
                }
            });
        }
        Background {
            shown,
            child,
            lines,
        }
    }

    /// Every line so far (stdout and stderr, in arrival order).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lines.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `check`; returns it.
    pub fn wait_line(&self, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        self.wait_lines(timeout, "a matching line", |lines| {
            lines.iter().find(|l| check(l)).cloned()
        })
    }

    /// Waits until `check` over all lines so far gives `Some`.
    pub fn wait_lines<T>(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lines.lock().unwrap();
        loop {
            if let Some(found) = check(&lines) {
                return found;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{} printed no {what} in {timeout:?}:\n{}",
                self.shown,
                lines.join("\n")
            );
            lines = self
                .lines
                .changed
                .wait_timeout(lines, (deadline - now).min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET on a new connection: the status code and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request("127.0.0.1", port, "GET", path)
}

/// One HTTP/1.1 request with `Connection: close` to `host:port`: the status code and the body.
pub fn http_request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((host, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no complete HTTP response: {text:?}"),
        )
    })?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// `GET /` through `host:port`, which must answer 200 with hostbot's JSON.
pub fn hostbot_json(host: &str, port: u16) -> Value {
    let (code, body) = http_request(host, port, "GET", "/")
        .unwrap_or_else(|err| panic!("GET http://{host}:{port}/ failed: {err}"));
    assert_eq!(code, 200, "GET http://{host}:{port}/: {body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("not JSON ({err}): {body}"))
}

/// Requests in a loop on a new connection each, from a thread, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<LoadStats>>,
}

/// What a [`Load`] saw.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub ok: usize,
    pub failed: usize,
    /// The first few failures, as text.
    pub errors: Vec<String>,
    /// Answers per `host` field.
    pub hosts: BTreeMap<String, usize>,
}

impl Load {
    /// Starts sending `GET /` to `host:port` every 10 ms.
    pub fn start(host: &str, port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let host = host.to_owned();
        let flag = stop.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut stats = LoadStats::default();
            while !flag.load(Ordering::Relaxed) {
                match http_request(&host, port, "GET", "/") {
                    Ok((200, body)) => {
                        stats.ok += 1;
                        let json: Value = serde_json::from_str(&body).unwrap_or_default();
                        let name = json["host"].as_str().unwrap_or("?").to_owned();
                        *stats.hosts.entry(name).or_default() += 1;
                    }
                    other => {
                        stats.failed += 1;
                        if stats.errors.len() < 5 {
                            let at = started.elapsed().as_millis();
                            stats.errors.push(format!("at {at} ms: {other:?}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            stats
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop and returns what it saw.
    pub fn stop(mut self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A table kubectl printed, read by the header's column positions (cells may hold single
/// spaces, as in `1 (5s ago)` or `NOMINATED NODE`).
#[derive(Debug, Clone)]
pub struct Table {
    pub text: String,
    pub headers: Vec<String>,
    pub rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    /// Parses the first table in `text` (up to a blank line).
    pub fn parse(text: &str) -> Table {
        let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
        let Some(header) = lines.next() else {
            return Table {
                text: text.to_owned(),
                headers: Vec::new(),
                rows: Vec::new(),
            };
        };
        let starts = column_starts(header);
        let cut = |line: &str| -> Vec<String> {
            starts
                .iter()
                .enumerate()
                .map(|(i, &start)| {
                    let end = starts.get(i + 1).copied().unwrap_or(usize::MAX);
                    let chars: String = line
                        .chars()
                        .skip(start)
                        .take(end.saturating_sub(start))
                        .collect();
                    chars.trim().to_owned()
                })
                .collect()
        };
        let headers = cut(header);
        let rows = lines
            .take_while(|l| !l.trim().is_empty())
            .map(|line| headers.iter().cloned().zip(cut(line)).collect())
            .collect();
        Table {
            text: text.to_owned(),
            headers,
            rows,
        }
    }

    /// Every table in `text` (kubectl separates the kinds of `get a,b` and `get all` with blank
    /// lines).
    pub fn parse_all(text: &str) -> Vec<Table> {
        text.split("\n\n")
            .filter(|chunk| !chunk.trim().is_empty())
            .map(Table::parse)
            .collect()
    }

    /// The row whose NAME is `name`.
    pub fn row(&self, name: &str) -> &BTreeMap<String, String> {
        self.rows
            .iter()
            .find(|r| r.get("NAME").map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in:\n{}", self.text))
    }

    /// The cell of row `name` in column `column`.
    pub fn cell(&self, name: &str, column: &str) -> &str {
        self.row(name)
            .get(column)
            .unwrap_or_else(|| panic!("no column {column} in:\n{}", self.text))
    }

    /// Every NAME.
    pub fn names(&self) -> Vec<String> {
        self.rows.iter().map(|r| r["NAME"].clone()).collect()
    }
}

/// Where each header label starts: labels are separated by two or more spaces (kubectl pads
/// columns with three), a single space stays inside a label.
fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    let mut starts = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != ' ' && (i == 0 || (i >= 2 && chars[i - 1] == ' ' && chars[i - 2] == ' ')) {
            starts.push(i);
        }
        i += 1;
    }
    starts
}

/// Whether `hash` looks like a pod-template hash (1-10 characters of [`ALPHABET`]).
pub fn is_template_hash(hash: &str) -> bool {
    (1..=10).contains(&hash.len()) && hash.chars().all(|c| ALPHABET.contains(c))
}

/// Whether `name` is `<prefix>-<5 characters of ALPHABET>`.
pub fn is_suffixed(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c)))
}

/// Whether `name` is a pod of Deployment `deployment`: `<deployment>-<hash>-<5>`.
pub fn is_deployment_pod(name: &str, deployment: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(deployment)
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    let Some((hash, suffix)) = rest.rsplit_once('-') else {
        return false;
    };
    is_template_hash(hash) && suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c))
}

/// The ReplicaSet part (`<deployment>-<hash>`) of a Deployment's pod name.
pub fn replicaset_of(pod: &str) -> &str {
    pod.rsplit_once('-').map_or(pod, |(rs, _)| rs)
}

/// kubectl's AGE (`0s`, `45s`, `2m3s`, `3d23h`) in seconds.
pub fn age_seconds(age: &str) -> u64 {
    let mut total = 0;
    let mut number = 0;
    for c in age.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = number * 10 + u64::from(digit);
        } else {
            total += number
                * match c {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86400,
                    'y' => 365 * 86400,
                    _ => panic!("not an AGE: {age}"),
                };
            number = 0;
        }
    }
    total
}

/// The lines of `describe` output under `Events:`.
pub fn events_section(describe: &str) -> Vec<String> {
    describe
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .skip(3)
        .map(str::to_owned)
        .collect()
}

/// Asserts that `text` contains each of `needles`, ignoring how many spaces pad a column
/// (kubectl aligns `describe` to its longest label, which differs with the object).
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    let squeezed = squeeze(text);
    for needle in needles {
        assert!(
            text.contains(needle) || squeezed.contains(&squeeze(needle)),
            "expected {needle:?} in:\n{text}"
        );
    }
}

/// `text` with each run of spaces and tabs inside a line made one space (indentation kept).
fn squeeze(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let body = line.trim_start_matches([' ', '\t']);
            let indent = &line[..line.len() - body.len()];
            let words: Vec<&str> = body.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let trailing = if body.ends_with(' ') && !words.is_empty() {
                " "
            } else {
                ""
            };
            format!("{indent}{}{trailing}", words.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_by_column() {
        let table = Table::parse(
            "NAME      READY   STATUS    RESTARTS     AGE   IP          NOMINATED NODE\n\
             a-1       1/1     Running   1 (3s ago)   5s    127.0.0.2   <none>\n\
             b         0/1               0            0s    <none>      <none>\n",
        );
        assert_eq!(table.cell("a-1", "RESTARTS"), "1 (3s ago)");
        assert_eq!(table.cell("a-1", "NOMINATED NODE"), "<none>");
        assert_eq!(table.cell("b", "STATUS"), "");
        assert_eq!(table.names(), ["a-1", "b"]);
    }

    #[test]
    fn names_have_upstream_shapes() {
        assert!(is_deployment_pod("hostbot-65f447d896-8m5ww", "hostbot"));
        assert!(!is_deployment_pod("hostbot-65f447d896-8m5wwx", "hostbot"));
        assert!(!is_deployment_pod("hostbot-65f447d89a-8m5ww", "hostbot"));
        assert!(is_suffixed("httpserver-9qscc", "httpserver"));
        assert_eq!(
            replicaset_of("hostbot-65f447d896-8m5ww"),
            "hostbot-65f447d896"
        );
        assert_eq!(age_seconds("2m3s"), 123);
        assert_eq!(age_seconds("0s"), 0);
        assert_contains(
            "Selector:          app=x\nType:  ClusterIP\n",
            &["Selector:   app=x\nType: ClusterIP"],
        );
    }
}
