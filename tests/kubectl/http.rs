//! Plain HTTP/1.1 through a forwarded port, a Service address or a pod IP: one request
//! ([`http_request`], [`hostbot_json`]) or a steady stream of them ([`Load`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

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
