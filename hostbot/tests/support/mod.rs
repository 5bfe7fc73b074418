//! Helpers shared by hostbot's integration tests: a real hostbot process, an in-process
//! instance, raw sockets with deadlines, and waiting for conditions.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostbot::{Config, Error};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous upper bound for things that normally take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// GET `url`: status and body, or `None` when no answer came (refused, reset).
pub async fn get(url: &str) -> Option<(u16, String)> {
    let response = client().get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

pub async fn post(url: &str) -> u16 {
    client().post(url).send().await.unwrap().status().as_u16()
}

/// A hostbot binary running as a child process, bound to a free loopback port.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `hostbot` with `HOST=127.0.0.1 PORT=0 CONFIG_DIR=` plus `env`, and waits for the
    /// startup line to learn the port.
    pub fn start(env: &[(&str, &str)]) -> Process {
        Self::try_start(env).unwrap_or_else(|(status, output)| {
            panic!(
                "hostbot exited before listening ({status}):\n{}",
                output.join("\n")
            )
        })
    }

    /// Like [`start`](Self::start), but an exit before the startup line is returned.
    pub fn try_start(env: &[(&str, &str)]) -> Result<Process, (ExitStatus, Vec<String>)> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hostbot"));
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("CONFIG_DIR", "")
            .env_remove("HOSTNAME")
            .env_remove("VERSION")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn hostbot");
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers: Vec<_> = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|stream| {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            })
        })
        .collect();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let addr = output
                .lock()
                .unwrap()
                .iter()
                .find_map(|line| listening_addr(line));
            if let Some(addr) = addr {
                return Ok(Process {
                    child,
                    addr,
                    output,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                // The pipes reach EOF with the exit: the readers end with the last lines.
                for reader in readers {
                    let _ = reader.join();
                }
                return Err((status, output.lock().unwrap().clone()));
            }
            assert!(
                Instant::now() < deadline,
                "hostbot did not print its address"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with the `kill` command (no unsafe code needed).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, failing after `timeout`.
    pub async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hostbot still running after {timeout:?}:\n{}",
                self.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    pub async fn wait_for_output(&self, needle: &str) {
        wait_for(
            &format!("log line containing {needle:?}"),
            PATIENCE,
            || async {
                self.output()
                    .iter()
                    .any(|line| line.contains(needle))
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a startup line, text or JSON: `... listening on http://127.0.0.1:41711 ...`.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// An instance served by `hostbot::run` inside the test process.
pub struct Instance {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub force: CancellationToken,
    pub task: JoinHandle<Result<(), Error>>,
}

impl Instance {
    pub async fn start(config: Config) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(hostbot::run_with_force(
            listener,
            config,
            shutdown.clone(),
            force.clone(),
        ));
        Instance {
            addr,
            shutdown,
            force,
            task,
        }
    }

    /// Starts an instance and waits until its readiness endpoint answers 200.
    pub async fn ready(config: Config) -> Instance {
        let instance = Self::start(config).await;
        instance.wait_ready().await;
        instance
    }

    pub async fn wait_ready(&self) {
        let url = self.url("/readyz");
        wait_for("readiness", PATIENCE, || async {
            (get(&url).await?.0 == 200).then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits for `run` to return.
    pub async fn finished(self, timeout: Duration) -> Result<(), Error> {
        tokio::time::timeout(timeout, self.task)
            .await
            .expect("run did not return in time")
            .expect("run panicked")
    }
}

/// The config tests use unless they say otherwise: no config directory, quick drain.
pub fn config() -> Config {
    Config {
        hostname: "test-host".into(),
        version: "test".into(),
        config_dir: None,
        drain_delay: Duration::from_millis(100),
        ..Config::default()
    }
}

/// A raw client connection, for what HTTP clients hide: keep-alive, partial requests, closes.
pub struct Raw(pub TcpStream);

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw(TcpStream::connect(addr).await.unwrap())
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes).await
    }

    /// Reads one response (head and a `content-length` body) and returns it as text.
    pub async fn response(&mut self) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(head_end) = find(&data, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if data.len() >= head_end + 4 + length {
                    return String::from_utf8_lossy(&data).into_owned();
                }
            }
            let read = tokio::time::timeout(PATIENCE, self.0.read(&mut buf))
                .await
                .expect("response in time")
                .expect("read response");
            assert!(
                read > 0,
                "connection closed mid-response: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buf[..read]);
        }
    }

    /// Waits until the server closes the connection (EOF or reset); returns how long it took.
    pub async fn closed_within(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(
                timeout.saturating_sub(start.elapsed()),
                self.0.read(&mut buf),
            )
            .await
            {
                Err(_) => panic!("connection still open after {timeout:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
                Ok(Ok(_)) => continue, // e.g. a 408 before the close
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
