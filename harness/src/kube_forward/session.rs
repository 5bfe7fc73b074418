//! [`Session`]: one SPDY/3.1 port-forward session to a pod through a Kubernetes API, the client
//! side of what kubectl keeps open during `kubectl port-forward`.
//!
//! The upgrade (`POST pods/NAME/portforward` with `Upgrade: SPDY/3.1` and
//! `X-Stream-Protocol-Version: portforward.k8s.io`) costs a TLS connection and a request once.
//! After that each forwarded connection is two streams on it, as kubectl opens them: `error`
//! (written by the server only, so the client's side is finished at once) and `data`, both
//! naming the `port` and sharing a `requestid`. That makes a new connection a handful of frames
//! instead of a TLS handshake and a WebSocket upgrade each (the kube crate's `Portforwarder`
//! carries one connection per port per session, so a connection per request would need a
//! session per request).
//!
//! Like kubectl's spdystream, the session keeps no flow-control windows. Frames for a stream
//! are buffered per connection ([`BUFFERED_FRAMES`]); a local reader that falls that far
//! behind has its connection reset, rather than stalling every other connection of the pod.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kube::Client;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::spdy::{self, FLAG_FIN, Frame, HeaderCodec, RST_CANCEL};

/// The port-forward protocol version kubectl speaks.
const PROTOCOL: &str = "portforward.k8s.io";
/// The most bytes sent in one DATA frame.
const CHUNK: usize = 32 * 1024;
/// Frames from the server waiting for one local connection before it is reset.
pub const BUFFERED_FRAMES: usize = 256;
/// How long the upgrade may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// RST_STREAM status: the client refuses a stream the server tried to open.
const RST_REFUSED: u32 = 3;
/// Client stream ids are odd and must fit 31 bits.
const LAST_STREAM_ID: u32 = 0x7fff_ffff;

/// A port-forward session to one pod; cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

/// What the stream openers use. The reader task holds only [`Shared`], so dropping every
/// `Session` drops the frame sender and lets the writer finish and close the connection.
struct Inner {
    pod: String,
    frames: mpsc::Sender<Frame>,
    /// Next stream id and request id, held while the SYN_STREAMs are queued so that ids
    /// increase on the wire.
    ids: tokio::sync::Mutex<(u32, u64)>,
    shared: Arc<Shared>,
}

/// What the reader task and the streams share.
struct Shared {
    routes: Mutex<HashMap<u32, Route>>,
    /// The connection ended (or failed): no stream works any more.
    closed: CancellationToken,
    /// The server said GOAWAY: running streams go on, new ones need a new session.
    going_away: AtomicBool,
}

/// Where the reader sends one stream's frames.
struct Route {
    tx: mpsc::Sender<Inbound>,
    error: bool,
    /// The other stream of the same connection.
    sibling: u32,
}

/// What arrives for one forwarded connection.
enum Inbound {
    Data(Bytes),
    Error(Bytes),
    DataEnd,
    ErrorEnd,
}

/// A forwarded connection's two streams, opened and waiting for the local socket.
pub struct Stream {
    session: Session,
    error_id: u32,
    data_id: u32,
    inbound: mpsc::Receiver<Inbound>,
}

impl Session {
    /// Upgrades a new API connection to a port-forward session to `pod`. The session ends when
    /// the server closes it (upstream's does when the pod goes), on [`Session::close`], when
    /// `cancel` fires, or once every clone is dropped and its streams have finished.
    pub async fn open(
        client: &Client,
        namespace: &str,
        pod: &str,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Session> {
        let upgraded = tokio::time::timeout(OPEN_TIMEOUT, upgrade(client, namespace, pod))
            .await
            .with_context(|| {
                format!(
                    "port-forward to pod {pod}: no answer from the API within {}s",
                    OPEN_TIMEOUT.as_secs()
                )
            })??;
        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
        let (frames, outgoing) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            closed: cancel.child_token(),
            going_away: AtomicBool::new(false),
        });
        tracker.spawn(write_loop(writer, outgoing, shared.closed.clone()));
        tracker.spawn(read_loop(reader, shared.clone(), frames.downgrade()));
        Ok(Session {
            inner: Arc::new(Inner {
                pod: pod.to_owned(),
                frames,
                ids: tokio::sync::Mutex::new((1, 0)),
                shared,
            }),
        })
    }

    /// The pod this session forwards to.
    pub fn pod(&self) -> &str {
        &self.inner.pod
    }

    /// Whether new streams would fail (the connection ended or the server is going away).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.is_cancelled()
            || self.inner.shared.going_away.load(Ordering::Relaxed)
    }

    /// Resolves once the connection has ended.
    pub async fn closed(&self) {
        self.inner.shared.closed.cancelled().await;
    }

    /// Ends the session and every stream on it.
    pub fn close(&self) {
        self.inner.shared.closed.cancel();
    }

    /// Opens the `error` and `data` streams of one forwarded connection to `port`.
    pub async fn open_stream(&self, port: u16) -> Result<Stream, String> {
        if self.is_closed() {
            return Err(format!(
                "the port-forward session to pod {} has ended",
                self.pod()
            ));
        }
        let (tx, inbound) = mpsc::channel(BUFFERED_FRAMES);
        let mut ids = self.inner.ids.lock().await;
        let (error_id, data_id, request_id) = (ids.0, ids.0 + 2, ids.1);
        if data_id > LAST_STREAM_ID - 4 {
            // Every stream id is used: later connections take a new session.
            self.inner.shared.going_away.store(true, Ordering::Relaxed);
        }
        *ids = (ids.0 + 4, ids.1 + 1);
        {
            let mut routes = lock(&self.inner.shared.routes);
            let route = |error, sibling| Route {
                tx: tx.clone(),
                error,
                sibling,
            };
            routes.insert(error_id, route(true, data_id));
            routes.insert(data_id, route(false, error_id));
        }
        let headers = |kind: &str| {
            vec![
                ("streamtype".to_owned(), kind.to_owned()),
                ("port".to_owned(), port.to_string()),
                ("requestid".to_owned(), request_id.to_string()),
            ]
        };
        // The client never writes on the error stream: its side is finished at once.
        let error = Frame::SynStream {
            stream_id: error_id,
            flags: FLAG_FIN,
            headers: headers("error"),
        };
        let data = Frame::SynStream {
            stream_id: data_id,
            flags: 0,
            headers: headers("data"),
        };
        let sent = self.inner.frames.send(error).await.is_ok()
            && self.inner.frames.send(data).await.is_ok();
        drop(ids);
        if !sent {
            self.forget(error_id, data_id);
            return Err(format!(
                "the port-forward session to pod {} has ended",
                self.pod()
            ));
        }
        Ok(Stream {
            session: self.clone(),
            error_id,
            data_id,
            inbound,
        })
    }

    fn forget(&self, error_id: u32, data_id: u32) {
        let mut routes = lock(&self.inner.shared.routes);
        routes.remove(&error_id);
        routes.remove(&data_id);
    }
}

impl Stream {
    /// Copies between `socket` and the pod until the pod's side ends (kubectl's order: the data
    /// stream, then the error stream), the local side fails, or the session ends. Returns the
    /// server's error message, if it sent one (e.g. `error forwarding port 80 to pod x, uid y:
    /// ... connection refused`).
    pub async fn run(mut self, socket: TcpStream) -> Result<(), String> {
        let _ = socket.set_nodelay(true);
        let (mut local_read, mut local_write) = socket.into_split();
        let frames = self.session.inner.frames.clone();
        let data_id = self.data_id;
        let finished_upstream = AtomicBool::new(false);
        // Local to pod; its end (FIN) is passed on, but the pod's side decides when we stop.
        let upstream = async {
            let mut buffer = vec![0u8; CHUNK];
            loop {
                match local_read.read(&mut buffer).await {
                    Ok(0) => {
                        let fin = Frame::Data {
                            stream_id: data_id,
                            flags: FLAG_FIN,
                            data: Bytes::new(),
                        };
                        if frames.send(fin).await.is_ok() {
                            finished_upstream.store(true, Ordering::Relaxed);
                        }
                        break;
                    }
                    Ok(n) => {
                        let data = Frame::Data {
                            stream_id: data_id,
                            flags: 0,
                            data: Bytes::copy_from_slice(&buffer[..n]),
                        };
                        if frames.send(data).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            std::future::pending::<()>().await;
        };
        // Pod to local, and the error stream.
        let inbound = &mut self.inbound;
        let downstream = async {
            let mut error = Vec::new();
            let (mut data_done, mut error_done) = (false, false);
            while !(data_done && error_done) {
                match inbound.recv().await {
                    Some(Inbound::Data(bytes)) => {
                        if local_write.write_all(&bytes).await.is_err() {
                            return (false, error);
                        }
                    }
                    Some(Inbound::Error(bytes)) => error.extend_from_slice(&bytes),
                    Some(Inbound::DataEnd) => data_done = true,
                    Some(Inbound::ErrorEnd) => error_done = true,
                    // The session ended, or this connection fell too far behind.
                    None => return (false, error),
                }
            }
            (true, error)
        };
        let (clean, error) = tokio::select! {
            outcome = downstream => outcome,
            () = upstream => (false, Vec::new()),
        };
        let _ = local_write.shutdown().await;
        self.session.forget(self.error_id, self.data_id);
        if !(clean && finished_upstream.load(Ordering::Relaxed)) {
            // Tell the server to stop this connection's forward.
            let reset = Frame::RstStream {
                stream_id: self.data_id,
                status: RST_CANCEL,
            };
            let _ = self.session.inner.frames.try_send(reset);
        }
        if error.is_empty() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&error).into_owned())
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The upgrade request and its answer.
async fn upgrade(
    client: &Client,
    namespace: &str,
    pod: &str,
) -> anyhow::Result<hyper::upgrade::Upgraded> {
    let request = Request::post(format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}/portforward"
    ))
    .header(CONNECTION, "Upgrade")
    .header(UPGRADE, "SPDY/3.1")
    .header("X-Stream-Protocol-Version", PROTOCOL)
    .body(kube::client::Body::empty())
    .context("building the port-forward request")?;
    let response = client
        .send(request)
        .await
        .with_context(|| format!("port-forward to pod {pod}: the API is unreachable"))?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
        bail!("port-forward to pod {pod}: {message} ({status})");
    }
    hyper::upgrade::on(response)
        .await
        .with_context(|| format!("port-forward to pod {pod}: the upgrade failed"))
}

/// Sends queued frames, several per write when they pile up, until every sender is gone or the
/// session is closed; then closes the connection.
async fn write_loop<W>(mut writer: W, mut frames: mpsc::Receiver<Frame>, closed: CancellationToken)
where
    W: AsyncWrite + Unpin,
{
    let mut codec = match HeaderCodec::new() {
        Ok(codec) => codec,
        Err(err) => {
            tracing::warn!(%err, "port-forward cannot compress headers");
            closed.cancel();
            return;
        }
    };
    let mut batch = Vec::with_capacity(2 * CHUNK);
    'session: loop {
        let first = tokio::select! {
            _ = closed.cancelled() => break,
            frame = frames.recv() => frame,
        };
        let mut next = first;
        if next.is_none() {
            break;
        }
        batch.clear();
        while let Some(frame) = next {
            match spdy::encode(&frame, &mut codec) {
                Ok(bytes) => batch.extend_from_slice(&bytes),
                Err(err) => {
                    tracing::debug!(%err, "port-forward frame not encoded");
                    break 'session;
                }
            }
            next = if batch.len() < 2 * CHUNK {
                frames.try_recv().ok()
            } else {
                None
            };
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            break;
        }
    }
    closed.cancel();
    let _ = writer.shutdown().await;
}

/// Routes the server's frames to their connections until the connection ends.
async fn read_loop<R>(mut reader: R, shared: Arc<Shared>, frames: mpsc::WeakSender<Frame>)
where
    R: AsyncRead + Unpin,
{
    let mut codec = match HeaderCodec::new() {
        Ok(codec) => codec,
        Err(err) => {
            tracing::warn!(%err, "port-forward cannot decompress headers");
            shared.closed.cancel();
            return;
        }
    };
    let reply = |frame: Frame| {
        if let Some(frames) = frames.upgrade() {
            let _ = frames.try_send(frame);
        }
    };
    loop {
        let frame = tokio::select! {
            _ = shared.closed.cancelled() => break,
            frame = spdy::read_frame(&mut reader, &mut codec) => frame,
        };
        match frame {
            Ok(Some(Frame::Data {
                stream_id,
                flags,
                data,
            })) => shared.deliver(stream_id, data, flags & FLAG_FIN != 0),
            Ok(Some(Frame::SynReply {
                stream_id, flags, ..
            })) if flags & FLAG_FIN != 0 => shared.deliver(stream_id, Bytes::new(), true),
            Ok(Some(Frame::RstStream { stream_id, .. })) => shared.reset(stream_id),
            // Pings the server starts have even ids; ours would be odd.
            Ok(Some(Frame::Ping { id })) if id % 2 == 0 => reply(Frame::Ping { id }),
            Ok(Some(Frame::SynStream { stream_id, .. })) => reply(Frame::RstStream {
                stream_id,
                status: RST_REFUSED,
            }),
            Ok(Some(Frame::GoAway { .. })) => shared.going_away.store(true, Ordering::Relaxed),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(%err, "port-forward session read failed");
                break;
            }
        }
    }
    shared.closed.cancel();
    // Every connection still running sees its end.
    lock(&shared.routes).clear();
}

impl Shared {
    /// Hands a DATA frame to its connection; a full buffer resets that connection.
    fn deliver(&self, stream_id: u32, data: Bytes, fin: bool) {
        let mut routes = lock(&self.routes);
        let Some(route) = routes.get(&stream_id) else {
            return;
        };
        let mut delivered = true;
        if !data.is_empty() {
            let item = if route.error {
                Inbound::Error(data)
            } else {
                Inbound::Data(data)
            };
            delivered = route.tx.try_send(item).is_ok();
        }
        if delivered && fin {
            let end = if route.error {
                Inbound::ErrorEnd
            } else {
                Inbound::DataEnd
            };
            delivered = route.tx.try_send(end).is_ok();
        }
        if !delivered {
            // Dropping both routes closes the channel: the connection ends as reset.
            let sibling = route.sibling;
            routes.remove(&stream_id);
            routes.remove(&sibling);
        } else if fin {
            routes.remove(&stream_id);
        }
    }

    /// The server reset a stream: its connection ends.
    fn reset(&self, stream_id: u32) {
        let mut routes = lock(&self.routes);
        if let Some(route) = routes.remove(&stream_id) {
            routes.remove(&route.sibling);
        }
    }
}
