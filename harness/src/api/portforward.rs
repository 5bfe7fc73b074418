//! `pods/NAME/portforward`: the upgrade and the session behind it. Three protocols arrive here,
//! chosen by the request: a WebSocket offering `SPDY/3.1+portforward.k8s.io` (kubectl 1.30+
//! tunnels SPDY through it), a WebSocket offering the channel protocol `v4.channel.k8s.io` (the
//! kube crate and other non-Go clients; see [`channels`]), and plain SPDY/3.1 (kubectl's
//! fallback).
//!
//! The SPDY session: Per forwarded connection kubectl opens two
//! streams with the same `requestid`: `error` and `data`, each naming the `port`. Once both are
//! there, the session connects to the pod through
//! [`NodeServices::connect`](super::NodeServices::connect) and copies bytes between the data
//! stream and the connection: the client's FIN half-closes the connection, the pod closing its
//! side ends the data stream, and a failure is written to the error stream (kubectl prints it as
//! `an error occurred forwarding L -> R: ...`). PINGs are echoed.
//!
//! The session ends when its pod is deleted, as upstream's does when the pod dies. Like
//! kubelet's, it keeps no flow-control windows (kubectl's spdystream sends none).

mod channels;

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::body::Body;
use super::query::Query;
use super::spdy::{self, FLAG_FIN, Frame, HeaderCodec};
use super::status::ApiError;
use super::{Context, websocket};
use crate::object::{Kind, ObjectKey};

/// The only port-forward protocol version kubectl speaks today.
const PROTOCOL_VERSION: &str = "portforward.k8s.io";
/// The most bytes sent in one DATA frame.
const CHUNK: usize = 32 * 1024;

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Vec<&'a str> {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// Answers the upgrade request and starts the session once the connection is switched.
pub fn handle(
    context: Arc<Context>,
    namespace: &str,
    pod: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let upgrade = header(&request, "upgrade");
    let websocket = upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket"));
    let spdy = upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1"));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let mut protocol = Protocol::Spdy;
    if websocket {
        let offered = header(&request, "sec-websocket-protocol");
        let answer = if offered.contains(&websocket::PROTOCOL) {
            protocol = Protocol::Tunnel;
            Some(websocket::PROTOCOL)
        } else {
            let (answer, codec) = channels::negotiate(&offered).map_err(ApiError::bad_request)?;
            let ports = channels::ports(&Query::parse(request.uri().query()))
                .map_err(ApiError::bad_request)?;
            protocol = Protocol::Channels(codec, ports);
            answer
        };
        let key = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            "sec-websocket-accept",
            HeaderValue::from_str(&websocket::accept_key(key))
                .map_err(|_| ApiError::bad_request("bad Sec-WebSocket-Key"))?,
        );
        if let Some(answer) = answer {
            headers.insert("sec-websocket-protocol", HeaderValue::from_static(answer));
        }
    } else if spdy {
        if !header(&request, "x-stream-protocol-version").contains(&PROTOCOL_VERSION) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("unable to upgrade: the client must speak {PROTOCOL_VERSION}"),
            ));
        }
        headers.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        headers.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL_VERSION),
        );
    } else {
        return Err(ApiError::bad_request(
            "Upgrade request required: port-forward speaks SPDY/3.1 or WebSocket",
        ));
    }
    let uid = context
        .store
        .get(&ObjectKey::new(Kind::Pod, namespace, pod))
        .map(|p| p.uid().to_owned())
        .unwrap_or_default();
    let target = Target {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        uid,
    };
    let task_context = context.clone();
    context.tracker.spawn(async move {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(err) => {
                tracing::debug!(%err, "port-forward upgrade failed");
                return;
            }
        };
        match protocol {
            Protocol::Tunnel => {
                let (near, far) = tokio::io::duplex(256 * 1024);
                tokio::join!(
                    websocket::bridge(upgraded, far),
                    session(near, task_context, target)
                );
            }
            Protocol::Channels(codec, ports) => {
                channels::session(upgraded, task_context, target, ports, codec).await;
            }
            Protocol::Spdy => session(upgraded, task_context, target).await,
        }
    });
    Ok(response)
}

/// What the upgraded connection speaks.
enum Protocol {
    /// SPDY/3.1 inside WebSocket binary messages (kubectl).
    Tunnel,
    /// The WebSocket channel protocol for these ports (the kube crate).
    Channels(channels::Codec, Vec<u16>),
    /// Plain SPDY/3.1.
    Spdy,
}

/// The pod a session forwards to.
#[derive(Clone)]
struct Target {
    namespace: String,
    pod: String,
    uid: String,
}

/// What arrives on a data stream from the client.
enum Inbound {
    Data(Bytes),
    Fin,
}

/// A forwarded connection waiting for its second stream.
#[derive(Default)]
struct Pending {
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Inbound>)>,
    port: Option<u16>,
}

/// Runs one SPDY connection until the client leaves or the cluster stops.
async fn session<T>(io: T, context: Arc<Context>, target: Target)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let (frames, mut outgoing) = mpsc::channel::<Frame>(256);
    let cancel = context.cancel.child_token();
    context.tracker.spawn(end_with_pod(
        context.clone(),
        target.clone(),
        cancel.clone(),
    ));
    let writer_cancel = cancel.clone();
    context.tracker.spawn(async move {
        let mut codec = match HeaderCodec::new() {
            Ok(codec) => codec,
            Err(err) => {
                tracing::warn!(%err, "port-forward cannot compress headers");
                writer_cancel.cancel();
                return;
            }
        };
        loop {
            let frame = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                frame = outgoing.recv() => frame,
            };
            let Some(frame) = frame else { break };
            let bytes = match spdy::encode(&frame, &mut codec) {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::debug!(%err, "port-forward frame not encoded");
                    continue;
                }
            };
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                writer_cancel.cancel();
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut codec = match HeaderCodec::new() {
        Ok(codec) => codec,
        Err(err) => {
            tracing::warn!(%err, "port-forward cannot decompress headers");
            cancel.cancel();
            return;
        }
    };
    let mut data_streams: HashMap<u32, mpsc::Sender<Inbound>> = HashMap::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = spdy::read_frame(&mut reader, &mut codec) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(%err, "port-forward session read failed");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let get = |name: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Vec::new(),
                };
                if frames.send(reply).await.is_err() {
                    break;
                }
                let request_id = get("requestid").unwrap_or_else(|| stream_id.to_string());
                let entry = pending.entry(request_id.clone()).or_default();
                if let Some(port) = get("port").and_then(|p| p.parse::<u16>().ok()) {
                    entry.port = Some(port);
                }
                match get("streamtype").as_deref() {
                    Some("error") => entry.error = Some(stream_id),
                    Some("data") => {
                        let (tx, rx) = mpsc::channel(64);
                        data_streams.insert(stream_id, tx);
                        entry.data = Some((stream_id, rx));
                    }
                    other => {
                        tracing::debug!(?other, "port-forward stream of unknown type");
                        let _ = frames
                            .send(Frame::RstStream {
                                stream_id,
                                status: spdy::RST_PROTOCOL_ERROR,
                            })
                            .await;
                        continue;
                    }
                }
                if entry.error.is_some() && entry.data.is_some() {
                    let entry = pending.remove(&request_id).expect("entry exists");
                    let (data, inbound) = entry.data.expect("checked above");
                    let streams = Streams {
                        error: entry.error.expect("checked above"),
                        data,
                        frames: frames.clone(),
                    };
                    let forward_context = context.clone();
                    let forward_cancel = cancel.clone();
                    let target = target.clone();
                    context.tracker.spawn(async move {
                        forward(
                            forward_context,
                            target,
                            entry.port,
                            streams,
                            inbound,
                            forward_cancel,
                        )
                        .await;
                    });
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if let Some(tx) = data_streams.get(&stream_id) {
                    let mut alive = true;
                    if !data.is_empty() {
                        alive = tx.send(Inbound::Data(data)).await.is_ok();
                    }
                    if alive && flags & FLAG_FIN != 0 {
                        alive = tx.send(Inbound::Fin).await.is_ok();
                    }
                    if !alive {
                        data_streams.remove(&stream_id);
                    }
                }
            }
            Frame::RstStream { stream_id, .. } => {
                data_streams.remove(&stream_id);
            }
            Frame::Ping { id } => {
                if frames.send(Frame::Ping { id }).await.is_err() {
                    break;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
    }
    // The client is gone: stop the forwards and the writer.
    cancel.cancel();
}

/// Ends the session (`cancel`) once the pod it forwards to is gone, as a real port-forward
/// ends when its pod dies: kubectl then prints `lost connection to pod` and exits.
async fn end_with_pod(context: Arc<Context>, target: Target, cancel: CancellationToken) {
    let key = ObjectKey::new(Kind::Pod, &target.namespace, &target.pod);
    let mut changes = context.store.subscribe();
    let same_pod = |object: &crate::object::Object| object.uid() == target.uid;
    if !context.store.get(&key).is_some_and(|o| same_pod(&o)) {
        cancel.cancel();
        return;
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = changes.recv() => event,
        };
        let gone = match event {
            Ok(event) => {
                event.event_type == crate::store::EventType::Deleted
                    && event.object.key() == key
                    && same_pod(&event.object)
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                !context.store.get(&key).is_some_and(|o| same_pod(&o))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if gone {
            tracing::debug!(pod = %target.pod, "port-forward ends: the pod is gone");
            cancel.cancel();
            return;
        }
    }
}

/// The two streams of one forwarded connection and the way out to the client.
struct Streams {
    error: u32,
    data: u32,
    frames: mpsc::Sender<Frame>,
}

impl Streams {
    async fn data(&self, stream_id: u32, flags: u8, data: Bytes) -> bool {
        self.frames
            .send(Frame::Data {
                stream_id,
                flags,
                data,
            })
            .await
            .is_ok()
    }

    /// Reports a failure on the error stream and ends both streams.
    async fn fail(&self, message: String) {
        self.data(self.error, 0, Bytes::from(message)).await;
        self.data(self.error, FLAG_FIN, Bytes::new()).await;
        self.data(self.data, FLAG_FIN, Bytes::new()).await;
    }
}

/// Copies between the client's data stream and a connection into the pod.
async fn forward(
    context: Arc<Context>,
    target: Target,
    port: Option<u16>,
    streams: Streams,
    mut inbound: mpsc::Receiver<Inbound>,
    cancel: CancellationToken,
) {
    let describe = |port: u16, err: &dyn std::fmt::Display| {
        format!(
            "error forwarding port {port} to pod {}, uid {}: {err}",
            target.pod, target.uid
        )
    };
    let Some(port) = port.filter(|p| *p != 0) else {
        streams
            .fail(format!(
                "error forwarding to pod {}: the request names no valid port",
                target.pod
            ))
            .await;
        return;
    };
    let connection = tokio::select! {
        _ = cancel.cancelled() => return,
        connection = context.node.connect(&target.namespace, &target.pod, port) => connection,
    };
    let connection = match connection {
        Ok(connection) => connection,
        Err(err) => {
            streams.fail(describe(port, &err)).await;
            return;
        }
    };
    let _ = connection.set_nodelay(true);
    let (mut pod_read, mut pod_write) = connection.into_split();
    // Client to pod: ends only when the client resets the stream or leaves.
    let upstream = async {
        let mut writable = true;
        while let Some(item) = inbound.recv().await {
            match item {
                Inbound::Data(bytes) if writable => {
                    writable = pod_write.write_all(&bytes).await.is_ok();
                }
                Inbound::Data(_) => {}
                Inbound::Fin => {
                    let _ = pod_write.shutdown().await;
                    writable = false;
                }
            }
        }
    };
    // Pod to client: ends when the pod closes its side.
    let downstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match pod_read.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => {
                    if !streams
                        .data(streams.data, 0, Bytes::copy_from_slice(&buffer[..n]))
                        .await
                    {
                        return;
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, port, pod = %target.pod, "port-forward read from the pod failed");
                    break;
                }
            }
        }
        streams.data(streams.data, FLAG_FIN, Bytes::new()).await;
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = upstream => {}
        _ = downstream => {}
    }
    streams.data(streams.error, FLAG_FIN, Bytes::new()).await;
}
