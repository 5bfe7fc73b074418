//! An independent availability prober for end-to-end tests: a new TCP connection and `GET /` on a
//! fixed schedule (open loop, each request on its own task), recording for each request when it
//! was due, whether a well-formed hostbot reply came back, and which pod sent it. It shares no
//! code with the checker, so the two can be compared.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long one request may take, connection included (the checker's default too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One request's fate.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was due, from the prober's start.
    pub due: Duration,
    /// The replying pod (`host` in hostbot's JSON), or why there was no good reply.
    pub result: Result<String, String>,
}

/// A running prober.
pub struct Prober {
    stop: Arc<AtomicBool>,
    /// How many requests have ended, well or not.
    done: Arc<AtomicUsize>,
    samples: mpsc::UnboundedReceiver<Sample>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Prober {
    /// Sends `GET /` to `target` every `interval` until [`Prober::stop`].
    pub fn start(target: SocketAddr, interval: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (sender, samples) = mpsc::unbounded_channel();
        let scheduler = tokio::spawn({
            let stop = stop.clone();
            let done = done.clone();
            async move {
                let start = Instant::now();
                let mut requests = Vec::new();
                for i in 0u32.. {
                    let due = interval * i;
                    tokio::time::sleep_until(start + due).await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sender = sender.clone();
                    let done = done.clone();
                    requests.push(tokio::spawn(async move {
                        let result = tokio::time::timeout(REQUEST_TIMEOUT, get(target))
                            .await
                            .unwrap_or_else(|_| Err("timeout".into()));
                        let _ = sender.send(Sample { due, result });
                        done.fetch_add(1, Ordering::Relaxed);
                    }));
                }
                for request in requests {
                    let _ = request.await;
                }
            }
        });
        Prober {
            stop,
            done,
            samples,
            scheduler,
        }
    }

    /// Waits until `more` requests beyond those ended so far have ended (well or not): an
    /// observation window counted in requests, not in time.
    pub async fn observe(&self, more: usize) {
        let target = self.done.load(Ordering::Relaxed) + more;
        e2e::wait_until(
            &format!("{more} more probe requests"),
            Duration::from_secs(30),
            || {
                let ended = self.done.load(Ordering::Relaxed);
                async move { Ok((ended >= target).then_some(())) }
            },
        )
        .await
        .unwrap();
    }

    /// Stops sending, waits for the requests in flight, and returns every sample in due order.
    pub async fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.scheduler.await.expect("the prober's scheduler ends");
        let mut samples = Vec::new();
        while let Ok(sample) = self.samples.try_recv() {
            samples.push(sample);
        }
        samples.sort_by_key(|s| s.due);
        samples
    }
}

/// One request on a new connection: the replying pod, or why it failed.
async fn get(target: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") {
        let first = text.lines().next().unwrap_or("no response");
        return Err(format!("status: {first:?}"));
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("body {body:?}: {e}"))?;
    json["host"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no host in {body:?}"))
}

/// The longest run of failures: from the first failed request's due time to the due time of the
/// next good one (or of the last failed one, if none followed), as the checker defines it.
pub fn longest_outage(samples: &[Sample]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut start: Option<Duration> = None;
    let mut last = Duration::ZERO;
    for sample in samples {
        match (&sample.result, start) {
            (Err(_), None) => (start, last) = (Some(sample.due), sample.due),
            (Err(_), Some(_)) => last = sample.due,
            (Ok(_), Some(began)) => {
                longest = longest.max(sample.due - began);
                start = None;
            }
            (Ok(_), None) => {}
        }
    }
    if let Some(began) = start {
        longest = longest.max(last - began);
    }
    longest
}
