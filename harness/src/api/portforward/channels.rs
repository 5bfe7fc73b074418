//! Port-forwarding over a WebSocket with the channel protocol, `v4.channel.k8s.io` (or its text
//! variant `v4.base64.channel.k8s.io`): what the kube crate and other non-Go clients speak, and
//! what upstream's kubelet serves (`portforward/websocket.go` on top of `wsstream`). kubectl
//! tunnels SPDY through its WebSocket instead (see the parent module).
//!
//! The ports are fixed when the session opens (`?ports=80,8080`, or repeated `ports=` / `port=`).
//! Port number i has two channels: data (2i) and error (2i+1). Every message starts with its
//! channel byte (an ASCII digit, then base64 text, for the base64 variant). The server's first
//! message on each channel is the port, two bytes little-endian. Each port gets one connection
//! into the pod, opened at once: bytes from the client's data channel go to it, its bytes come
//! back on the data channel, and a failure is written once on the error channel. When every
//! port's connection has ended, the server closes the WebSocket; when the client closes it, the
//! connections are closed. There is no half-close: upstream's kubelet does not offer
//! `v5.channel.k8s.io` (whose CLOSE signal would carry one) for port-forwarding, and neither
//! does the harness, so a client offering v5 and v4 gets v4.

use std::sync::Arc;

use base64::Engine;
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::Context;
use super::super::query::Query;
use super::super::websocket::{
    self, MessageReader, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};
use super::{CHUNK, Target, end_with_pod};

/// The binary channel protocol.
pub const BINARY: &str = "v4.channel.k8s.io";
/// The same channels as text: a digit, then base64.
pub const BASE64: &str = "v4.base64.channel.k8s.io";
/// Two channels per port, numbered by one byte.
const MAX_PORTS: usize = 127;

/// How channel messages are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Binary,
    Base64,
}

/// Picks the first offered subprotocol this server speaks, as `wsstream` does: the one to answer
/// with (`None` when the client offered none, which means binary) and its codec.
pub fn negotiate(offered: &[&str]) -> Result<(Option<&'static str>, Codec), String> {
    if offered.is_empty() {
        return Ok((None, Codec::Binary));
    }
    for protocol in offered {
        match *protocol {
            BINARY => return Ok((Some(BINARY), Codec::Binary)),
            BASE64 => return Ok((Some(BASE64), Codec::Base64)),
            _ => {}
        }
    }
    Err(format!(
        "requested protocol(s) are not supported: {offered:?}; supports [{BINARY} {BASE64} {}]",
        websocket::PROTOCOL
    ))
}

/// The ports a session forwards: every `ports` (the API's name) and `port` (the kubelet's)
/// parameter, each a comma-separated list.
pub fn ports(query: &Query) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for text in query.all("ports").chain(query.all("port")) {
        if text.is_empty() {
            return Err("query parameter \"ports\" cannot be empty".into());
        }
        for part in text.split(',') {
            let port: u16 = part
                .trim()
                .parse()
                .map_err(|err| format!("unable to parse {part:?} as a port: {err}"))?;
            if port == 0 {
                return Err(format!("port {part:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"ports\" is required".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "{} ports asked for; at most {MAX_PORTS} fit the channel numbers",
            ports.len()
        ));
    }
    Ok(ports)
}

/// What goes out on the WebSocket.
enum Outgoing {
    Channel(u8, Bytes),
    Pong(Vec<u8>),
}

/// Runs one session until every port's connection has ended, the client closes, the pod goes or
/// the cluster stops.
pub async fn session<S>(
    socket: S,
    context: Arc<Context>,
    target: Target,
    ports: Vec<u16>,
    codec: Codec,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(socket);
    let cancel = context.cancel.child_token();
    context.tracker.spawn(end_with_pod(
        context.clone(),
        target.clone(),
        cancel.clone(),
    ));
    let (out, outgoing) = mpsc::channel::<Outgoing>(256);
    let writer = context
        .tracker
        .spawn(write_loop(writer, outgoing, codec, context.cancel.clone()));
    for (i, port) in ports.iter().enumerate() {
        let announce = Bytes::copy_from_slice(&port.to_le_bytes());
        let data = (2 * i) as u8;
        let _ = out.send(Outgoing::Channel(data, announce.clone())).await;
        let _ = out.send(Outgoing::Channel(data + 1, announce)).await;
    }
    // Every port task holds a `done` sender: `recv` returns `None` once they all ended.
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let mut inbound = Vec::with_capacity(ports.len());
    for (i, port) in ports.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        inbound.push(tx);
        let channel = (2 * i) as u8;
        context.tracker.spawn(forward_port(
            context.clone(),
            target.clone(),
            (channel, port),
            rx,
            out.clone(),
            cancel.clone(),
            done.clone(),
        ));
    }
    drop(done);

    let mut messages = MessageReader::new(reader);
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = all_done.recv() => break,
            message = messages.next() => message,
        };
        let frame = match message {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(%err, pod = %target.pod, "port-forward WebSocket read failed");
                break;
            }
        };
        match frame.opcode {
            OP_BINARY | OP_TEXT => {
                let Some((channel, data)) = decode(codec, frame.payload) else {
                    continue;
                };
                // Error channels are the server's to write; unknown channels are ignored.
                if channel % 2 == 0
                    && !data.is_empty()
                    && let Some(port) = inbound.get(channel / 2)
                {
                    let _ = port.send(data).await;
                }
            }
            OP_PING => {
                let _ = out.send(Outgoing::Pong(frame.payload)).await;
            }
            OP_CLOSE => break,
            _ => {}
        }
    }
    // The client left or every port ended: stop the rest, let the writer drain and close.
    cancel.cancel();
    drop(inbound);
    drop(out);
    while all_done.recv().await.is_some() {}
    let _ = writer.await;
}

/// The channel and payload of a client message.
fn decode(codec: Codec, payload: Vec<u8>) -> Option<(usize, Bytes)> {
    let (&channel, rest) = payload.split_first()?;
    match codec {
        Codec::Binary => Some((usize::from(channel), Bytes::copy_from_slice(rest))),
        Codec::Base64 => {
            let channel = channel.checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            Some((usize::from(channel), Bytes::from(data)))
        }
    }
}

/// One server message on `channel`.
fn encode(codec: Codec, channel: u8, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Binary => {
            let mut payload = Vec::with_capacity(data.len() + 1);
            payload.push(channel);
            payload.extend_from_slice(data);
            websocket::encode(OP_BINARY, &payload)
        }
        Codec::Base64 => {
            let mut text = String::from(char::from(b'0' + channel));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
            websocket::encode(OP_TEXT, text.as_bytes())
        }
    }
}

/// Writes what the session and its ports send until they all let go, then closes the
/// WebSocket. `stop` (the cluster's shutdown) ends it at once.
async fn write_loop<W>(
    mut writer: W,
    mut outgoing: mpsc::Receiver<Outgoing>,
    codec: Codec,
    stop: CancellationToken,
) where
    W: AsyncWrite + Unpin,
{
    loop {
        let item = tokio::select! {
            _ = stop.cancelled() => break,
            item = outgoing.recv() => item,
        };
        let bytes = match item {
            Some(Outgoing::Channel(channel, data)) => encode(codec, channel, &data),
            Some(Outgoing::Pong(payload)) => websocket::encode(OP_PONG, &payload),
            None => break,
        };
        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer
        .write_all(&websocket::encode(OP_CLOSE, &1000u16.to_be_bytes()))
        .await;
    let _ = writer.shutdown().await;
}

/// Connects to one port of the pod and copies between it and the port's data channel.
async fn forward_port(
    context: Arc<Context>,
    target: Target,
    (data, port): (u8, u16),
    mut inbound: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Outgoing>,
    cancel: CancellationToken,
    _done: mpsc::Sender<()>,
) {
    let error = data + 1;
    let fail = |err: &dyn std::fmt::Display| {
        let message = format!(
            "error forwarding port {port} to pod {}, uid {}: {err}",
            target.pod, target.uid
        );
        Outgoing::Channel(error, Bytes::from(message))
    };
    let connection = tokio::select! {
        _ = cancel.cancelled() => return,
        connection = context.node.connect(&target.namespace, &target.pod, port) => connection,
    };
    let connection = match connection {
        Ok(connection) => connection,
        Err(err) => {
            let _ = out.send(fail(&err)).await;
            return;
        }
    };
    let _ = connection.set_nodelay(true);
    let (mut pod_read, mut pod_write) = connection.into_split();
    // Client to pod: the protocol has no half-close, so this side never ends the port.
    let upstream = async {
        while let Some(bytes) = inbound.recv().await {
            if pod_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    // Pod to client: the pod closing its side (or failing) ends the port.
    let downstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match pod_read.read(&mut buffer).await {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buffer[..n]);
                    if out.send(Outgoing::Channel(data, chunk)).await.is_err() {
                        break;
                    }
                }
                Err(err) => {
                    let _ = out.send(fail(&err)).await;
                    break;
                }
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = upstream => {}
        _ = downstream => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_order_among_supported() {
        let kube = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
        assert_eq!(negotiate(&kube), Ok((Some(BINARY), Codec::Binary)));
        assert_eq!(
            negotiate(&[BASE64, BINARY]),
            Ok((Some(BASE64), Codec::Base64))
        );
        assert_eq!(negotiate(&[]), Ok((None, Codec::Binary)));
        let err = negotiate(&["v5.channel.k8s.io"]).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
    }

    #[test]
    fn ports_come_from_lists_and_repeats() {
        let parse = |q: &str| ports(&Query::parse(Some(q)));
        assert_eq!(parse("ports=80%2C8080"), Ok(vec![80, 8080]));
        assert_eq!(parse("ports=80&ports=81&port=82"), Ok(vec![80, 81, 82]));
        assert!(parse("").unwrap_err().contains("required"));
        assert!(parse("ports=").unwrap_err().contains("empty"));
        assert!(parse("ports=0").unwrap_err().contains("> 0"));
        assert!(parse("ports=http").unwrap_err().contains("unable to parse"));
        let many = (1..=128).map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(
            parse(&format!("ports={}", many.join(",")))
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn messages_round_trip_in_both_codecs() {
        assert_eq!(
            decode(Codec::Binary, vec![2, b'h', b'i']),
            Some((2, Bytes::from_static(b"hi")))
        );
        assert_eq!(
            decode(Codec::Base64, b"2aGk=".to_vec()),
            Some((2, Bytes::from_static(b"hi")))
        );
        assert_eq!(decode(Codec::Binary, vec![]), None);
        assert_eq!(decode(Codec::Base64, b"0!!".to_vec()), None);
        assert_eq!(encode(Codec::Binary, 1, b"x"), vec![0x82, 2, 1, b'x']);
        assert_eq!(encode(Codec::Base64, 3, b"hi"), {
            let mut v = vec![0x81, 5];
            v.extend_from_slice(b"3aGk=");
            v
        });
    }
}
