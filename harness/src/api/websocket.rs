//! The WebSocket side of port-forwarding. kubectl 1.32 first asks for a WebSocket with the
//! subprotocol `SPDY/3.1+portforward.k8s.io` and then speaks SPDY inside binary messages (the
//! apiserver's "tunneling"). [`bridge`] unwraps that: it turns the WebSocket into a plain byte
//! stream for the SPDY session and wraps the session's bytes back into binary messages. It
//! answers pings and closes as RFC 6455 requires; client frames are masked, server frames not.
//!
//! The frame reader and encoder are shared with the `v4.channel.k8s.io` port-forward (the kube
//! crate's protocol), which needs whole messages: [`MessageReader`] joins fragments.

use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::Mutex;

/// The subprotocol kubectl asks for.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

pub(super) const OP_CONTINUATION: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xa;
const MAX_MESSAGE: u64 = 16 << 20;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// One frame header's worth of a message.
pub(super) struct WsFrame {
    pub opcode: u8,
    /// The last frame of its message.
    pub fin: bool,
    pub payload: Vec<u8>,
}

/// Reads one frame (unmasking a client's payload); `None` at a clean end of the stream.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<WsFrame>> {
    let mut head = [0u8; 2];
    match reader.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    reader.read_exact(&mut head[1..]).await?;
    let opcode = head[0] & 0x0f;
    let fin = head[0] & 0x80 != 0;
    let masked = head[1] & 0x80 != 0;
    let mut length = u64::from(head[1] & 0x7f);
    if length == 126 {
        length = u64::from(reader.read_u16().await?);
    } else if length == 127 {
        length = reader.read_u64().await?;
    }
    if length > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "WebSocket frame too large",
        ));
    }
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(length).unwrap_or(0)];
    reader.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(Some(WsFrame {
        opcode,
        fin,
        payload,
    }))
}

/// Reads whole messages: data frames of a fragmented message are joined into one (with the
/// first frame's opcode); control frames, which may come between fragments, are returned as
/// they arrive.
pub(super) struct MessageReader<R> {
    reader: R,
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(reader: R) -> Self {
        MessageReader {
            reader,
            partial: None,
        }
    }

    /// The next complete message or control frame; `None` at the end of the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<WsFrame>> {
        loop {
            let Some(frame) = read_frame(&mut self.reader).await? else {
                return Ok(None);
            };
            if frame.opcode >= OP_CLOSE {
                return Ok(Some(frame));
            }
            let (opcode, mut payload) = match (self.partial.take(), frame.opcode) {
                (None, OP_CONTINUATION) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "WebSocket continuation frame without a message",
                    ));
                }
                (None, opcode) => (opcode, Vec::new()),
                (Some(partial), OP_CONTINUATION) => partial,
                (Some(_), _) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "WebSocket message started inside another",
                    ));
                }
            };
            if payload.len() + frame.payload.len() > MAX_MESSAGE as usize {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "WebSocket message too large",
                ));
            }
            payload.extend_from_slice(&frame.payload);
            if frame.fin {
                return Ok(Some(WsFrame {
                    opcode,
                    fin: true,
                    payload,
                }));
            }
            self.partial = Some((opcode, payload));
        }
    }
}

/// One unmasked (server) frame holding a whole message.
pub(super) fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Carries bytes between the WebSocket `socket` and `inner` (the SPDY session's end of a
/// duplex pipe) until either side closes.
pub async fn bridge<S>(socket: S, inner: DuplexStream)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut socket_read, socket_write) = tokio::io::split(socket);
    let socket_write = Arc::new(Mutex::new(socket_write));
    let (mut inner_read, mut inner_write) = tokio::io::split(inner);

    let incoming = {
        let socket_write = socket_write.clone();
        async move {
            loop {
                let frame = match read_frame(&mut socket_read).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::debug!(%err, "port-forward WebSocket read failed");
                        break;
                    }
                };
                match frame.opcode {
                    OP_BINARY | OP_CONTINUATION | OP_TEXT
                        if inner_write.write_all(&frame.payload).await.is_err() =>
                    {
                        break;
                    }
                    OP_PING => {
                        let pong = encode(OP_PONG, &frame.payload);
                        let _ = socket_write.lock().await.write_all(&pong).await;
                    }
                    OP_CLOSE => {
                        let mut writer = socket_write.lock().await;
                        let _ = writer.write_all(&encode(OP_CLOSE, &frame.payload)).await;
                        let _ = writer.flush().await;
                        break;
                    }
                    _ => {}
                }
            }
            let _ = inner_write.shutdown().await;
        }
    };
    let outgoing = async move {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match inner_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut writer = socket_write.lock().await;
                    if writer
                        .write_all(&encode(OP_BINARY, &buffer[..n]))
                        .await
                        .is_err()
                        || writer.flush().await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        let mut writer = socket_write.lock().await;
        let _ = writer
            .write_all(&encode(OP_CLOSE, &1000u16.to_be_bytes()))
            .await;
        let _ = writer.shutdown().await;
    };
    tokio::join!(incoming, outgoing);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn fragments_join_into_one_message_around_control_frames() {
        // "ab" + ping + "c" as one binary message, then a stray continuation.
        let bytes: &[u8] = &[0x02, 2, b'a', b'b', 0x89, 0, 0x80, 1, b'c', 0x80, 1, b'd'];
        let mut messages = MessageReader::new(bytes);
        let ping = messages.next().await.unwrap().unwrap();
        assert_eq!(ping.opcode, OP_PING);
        let message = messages.next().await.unwrap().unwrap();
        assert_eq!(
            (message.opcode, message.payload.as_slice()),
            (OP_BINARY, &b"abc"[..])
        );
        assert!(messages.next().await.is_err());
    }

    #[tokio::test]
    async fn bridges_masked_binary_messages_both_ways() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (inner, mut session) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(bridge(server, inner));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        // A masked binary frame "hello", then a ping.
        let mask = [1u8, 2, 3, 4];
        let mut message = vec![0x82, 0x80 | 5];
        message.extend_from_slice(&mask);
        message.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        message.extend_from_slice(&[0x89, 0x80, 0, 0, 0, 0]);
        client_write.write_all(&message).await.unwrap();
        let mut got = [0u8; 5];
        session.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        let mut pong = [0u8; 2];
        client_read.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8a, 0]);
        session.write_all(b"world").await.unwrap();
        let reply = read_frame(&mut client_read).await.unwrap().unwrap();
        assert_eq!(
            (reply.opcode, reply.payload.as_slice()),
            (OP_BINARY, &b"world"[..])
        );
        drop(session);
        let close = read_frame(&mut client_read).await.unwrap().unwrap();
        assert_eq!(close.opcode, OP_CLOSE);
        client_write.shutdown().await.unwrap();
        task.await.unwrap();
    }
}
