//! The open-loop load generator: requests leave on a fixed schedule whatever the server does,
//! and each latency is measured from the moment the request was *due*, not from when it was
//! sent, so a stalled server cannot hide behind a stalled client (no coordinated omission).
//!
//! By default every request opens a new connection, as curl does; with `keepalive` requests
//! reuse idle connections, which surfaces servers that close keep-alive connections badly at
//! shutdown. Keep-alive load keeps [`KEEPALIVE_CONNECTIONS`] connections open and takes the
//! least recently used idle one, as a client's connection pool spreads its requests: a pool
//! that reused the last connection would send nearly everything down one connection, so to one
//! pod behind a per-connection balancer, and a disruption of the other pods would go unseen.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What to send, where, and how fast.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    /// Requests per second.
    pub rate: u32,
    pub keepalive: bool,
    /// Per-request deadline, connection included.
    pub timeout: Duration,
}

/// How one request went.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the request was due, from the start of the run.
    pub due: Duration,
    /// From due time to the end of the response (or the failure).
    pub latency: Duration,
    pub outcome: Outcome,
}

/// The answer, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 200 with a well-formed hostbot body.
    Ok(Reply),
    Failed(Failure),
}

/// The fields of a hostbot reply that the checker tracks.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reply {
    pub host: String,
    pub version: String,
    pub config: String,
    /// Server time minus local time, in milliseconds.
    pub skew_ms: i64,
}

/// Why a request failed; these are the report's failure kinds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    Refused,
    Reset,
    Timeout,
    Status(u16),
    InvalidBody(String),
    Other(String),
}

impl Failure {
    /// A short label such as `refused` or `http 503`.
    pub fn label(&self) -> String {
        match self {
            Failure::Refused => "refused".into(),
            Failure::Reset => "reset".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Status(code) => format!("http {code}"),
            Failure::InvalidBody(_) => "invalid body".into(),
            Failure::Other(_) => "other".into(),
        }
    }

    fn from_io(err: &std::io::Error) -> Failure {
        use std::io::ErrorKind::*;
        match err.kind() {
            ConnectionRefused => Failure::Refused,
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Failure::Reset,
            TimedOut => Failure::Timeout,
            _ => Failure::Other(err.to_string()),
        }
    }

    fn from_hyper(err: &hyper::Error) -> Failure {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return Failure::from_io(io);
            }
            source = e.source();
        }
        if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
            Failure::Reset
        } else {
            Failure::Other(err.to_string())
        }
    }
}

/// How many connections keep-alive load keeps open (more while requests overlap).
pub const KEEPALIVE_CONNECTIONS: usize = 8;

type Sender = http1::SendRequest<Empty<Bytes>>;

/// Keep-alive connections, shared by the request tasks: the idle ones, least recently used
/// first, and how many are open in all.
#[derive(Default)]
struct Pool {
    idle: Mutex<VecDeque<Sender>>,
    open: AtomicUsize,
}

impl Pool {
    /// The least recently used idle connection, once [`KEEPALIVE_CONNECTIONS`] are open.
    fn take(&self) -> Option<Sender> {
        if self.open.load(Ordering::Relaxed) < KEEPALIVE_CONNECTIONS {
            return None;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop_front() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, sender: Sender) {
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.push_back(sender);
        }
    }
}

/// Sends requests at `config.rate` until `stop` is cancelled; every result goes to the returned
/// channel. In-flight requests finish (or time out) after the stop.
pub fn start(
    config: LoadConfig,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> mpsc::UnboundedReceiver<Sample> {
    let (tx, rx) = mpsc::unbounded_channel();
    let pool: Arc<Pool> = Arc::default();
    let inner = tracker.clone();
    tracker.spawn(async move {
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
        let mut sent: u64 = 0;
        loop {
            let due = start + interval.mul_f64(sent as f64);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
            // Send everything that is due by now, so a late timer never lowers the rate.
            let now = Instant::now();
            while start + interval.mul_f64(sent as f64) <= now {
                let due_at = start + interval.mul_f64(sent as f64);
                sent += 1;
                let (tx, pool, config) = (tx.clone(), pool.clone(), config.clone());
                inner.spawn(async move {
                    let outcome = match timeout(config.timeout, request(&config, &pool)).await {
                        Ok(outcome) => outcome,
                        Err(_) => Outcome::Failed(Failure::Timeout),
                    };
                    let _ = tx.send(Sample {
                        due: due_at - start,
                        latency: due_at.elapsed(),
                        outcome,
                    });
                });
            }
        }
    });
    rx
}

async fn request(config: &LoadConfig, pool: &Arc<Pool>) -> Outcome {
    let reused = if config.keepalive { pool.take() } else { None };
    let mut sender = match reused {
        Some(sender) => sender,
        None => match connect(config.target, config.keepalive.then_some(pool)).await {
            Ok(sender) => sender,
            Err(failure) => return Outcome::Failed(failure),
        },
    };
    let mut builder = hyper::Request::get("/").header(hyper::header::HOST, "hostbot");
    if !config.keepalive {
        builder = builder.header(hyper::header::CONNECTION, "close");
    }
    let request = builder.body(Empty::new()).expect("static request is valid");
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(err) => return Outcome::Failed(Failure::from_hyper(&err)),
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return Outcome::Failed(Failure::from_hyper(&err)),
    };
    if config.keepalive {
        pool.give_back(sender);
    }
    if status != hyper::StatusCode::OK {
        return Outcome::Failed(Failure::Status(status.as_u16()));
    }
    match parse_reply(&body) {
        Ok(reply) => Outcome::Ok(reply),
        Err(reason) => Outcome::Failed(Failure::InvalidBody(reason)),
    }
}

/// A new connection; a keep-alive one is counted in `pool` while it is open.
async fn connect(target: SocketAddr, pool: Option<&Arc<Pool>>) -> Result<Sender, Failure> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| Failure::from_io(&e))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::from_hyper(&e))?;
    let pool = pool.cloned();
    if let Some(pool) = &pool {
        pool.open.fetch_add(1, Ordering::Relaxed);
    }
    // The connection task ends when the request is done (close), the server closes, or the pool
    // drops the sender.
    tokio::spawn(async move {
        let _ = connection.await;
        if let Some(pool) = pool {
            pool.open.fetch_sub(1, Ordering::Relaxed);
        }
    });
    Ok(sender)
}

/// Checks a hostbot body: JSON with `time` (RFC 3339, within ±2 s of the local clock) and `host`.
pub fn parse_reply(body: &[u8]) -> Result<Reply, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let host = text("host").ok_or("no \"host\" string")?;
    let time = text("time").ok_or("no \"time\" string")?;
    let time = chrono::DateTime::parse_from_rfc3339(&time)
        .map_err(|e| format!("\"time\" {time:?} is not RFC 3339: {e}"))?;
    let skew_ms = (time.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    if skew_ms.abs() > 2_000 {
        return Err(format!(
            "\"time\" is {skew_ms} ms away from the local clock"
        ));
    }
    Ok(Reply {
        host,
        version: text("version").unwrap_or_default(),
        config: text("config").unwrap_or_default(),
        skew_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_and_bad_bodies() {
        let now = chrono::Utc::now().to_rfc3339();
        let good = format!(r#"{{"time":"{now}","host":"hostbot-abc","version":"v1"}}"#);
        let reply = parse_reply(good.as_bytes()).unwrap();
        assert_eq!(reply.host, "hostbot-abc");
        assert_eq!(reply.version, "v1");
        assert!(reply.skew_ms.abs() < 1000);

        assert!(parse_reply(b"hello").unwrap_err().contains("not JSON"));
        assert!(
            parse_reply(br#"{"time":"x","host":"h"}"#)
                .unwrap_err()
                .contains("RFC 3339")
        );
        let old = r#"{"time":"2001-01-01T00:00:00Z","host":"h"}"#;
        assert!(parse_reply(old.as_bytes()).unwrap_err().contains("away"));
        assert!(
            parse_reply(br#"{"time":"x"}"#)
                .unwrap_err()
                .contains("host")
        );
    }

    /// Keep-alive load spreads over a pool of connections, each reused: a server that names
    /// the connection in `host` sees every pooled connection answer, and far fewer
    /// connections than requests.
    #[tokio::test]
    async fn keepalive_load_spreads_over_a_reused_pool() {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn({
            let accepted = accepted.clone();
            async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let n = accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let service = service_fn(move |_request| async move {
                            let body = format!(
                                r#"{{"time":"{}","host":"conn-{n}"}}"#,
                                chrono::Utc::now().to_rfc3339()
                            );
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(Bytes::from(body)),
                            ))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        let config = LoadConfig {
            target,
            rate: 500,
            keepalive: true,
            timeout: Duration::from_secs(5),
        };
        let mut samples = start(config, stop.clone(), &tracker);
        let mut hosts = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let sample = samples.recv().await.expect("the load runs");
            match sample.outcome {
                Outcome::Ok(reply) => hosts.insert(reply.host),
                Outcome::Failed(failure) => panic!("a request failed: {failure:?}"),
            };
        }
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        server.abort();
        let connections = accepted.load(Ordering::Relaxed);
        assert!(
            hosts.len() >= KEEPALIVE_CONNECTIONS,
            "only {} connections answered: {hosts:?}",
            hosts.len()
        );
        assert!(
            connections < 100,
            "{connections} connections for 300 requests: not reused"
        );
    }
}
