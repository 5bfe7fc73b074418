//! SPDY/3.1 framing, as much as port-forwarding needs: reading and writing control frames
//! (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and DATA
//! frames ([`Frame`]), and the zlib-compressed header blocks ([`HeaderCodec`]), which use the
//! SPDY/3 dictionary and one compression context per direction for the whole connection.
//!
//! Layout (draft-mbelshe-httpbis-spdy-00): a control frame starts with the control bit, version
//! 3 and a 16-bit type, then 8 bits of flags and a 24-bit length; a data frame starts with a
//! 31-bit stream id, then flags and length. Header blocks are a 32-bit count of name/value
//! pairs, each a 32-bit length and bytes.
//!
//! The framing is the same in both directions, so the client side of port-forwarding
//! (`kube_forward`) uses this module too.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The last frame of a stream in this direction.
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream is no longer needed.
pub const RST_CANCEL: u32 = 5;
/// RST_STREAM status: a protocol error.
pub const RST_PROTOCOL_ERROR: u32 = 1;

const VERSION: u16 = 3;
const MAX_FRAME: usize = (1 << 24) - 1;
/// Header blocks larger than this after decompression are refused.
const MAX_HEADER_BLOCK: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// One SPDY frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings,
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this server ignores.
    Unknown {
        frame_type: u16,
    },
}

fn invalid(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

/// The SPDY/3 header compression dictionary (1,423 bytes): length-prefixed header names and
/// values, then a run of common text.
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICTIONARY.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
            "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
            "authorization", "cache-control", "connection", "content-base", "content-encoding",
            "content-language", "content-length", "content-location", "content-md5",
            "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
            "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
            "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate",
            "proxy-authorization", "range", "referer", "retry-after", "server", "te", "trailer",
            "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
            "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
            "public", "set-cookie", "keep-alive", "origin",
        ];
        const TAIL: &[&str] = &[
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information",
            "204 No Content",
            "301 Moved Permanently",
            "400 Bad Request",
            "401 Unauthorized",
            "403 Forbidden",
            "404 Not Found",
            "500 Internal Server Error",
            "501 Not Implemented",
            "503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,",
            "application/xhtml+xml,text/plain,text/javascript,public",
            "privatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ];
        let mut bytes = Vec::with_capacity(1423);
        for word in WORDS {
            bytes.extend_from_slice(&(word.len() as u32).to_be_bytes());
            bytes.extend_from_slice(word.as_bytes());
        }
        for text in TAIL {
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes
    })
}

/// The two zlib contexts of a connection: one for the header blocks read, one for those
/// written.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl HeaderCodec {
    pub fn new() -> std::io::Result<HeaderCodec> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .map_err(|e| invalid(format!("cannot load the SPDY dictionary: {e}")))?;
        Ok(HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
        })
    }

    /// Decompresses one header block and parses its name/value pairs.
    pub fn decode(&mut self, block: &[u8]) -> std::io::Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut consumed = 0;
        for _ in 0..10_000 {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(invalid("SPDY header block too large"));
            }
            out.reserve(4096);
            let before = self.inflate.total_in();
            let result =
                self.inflate
                    .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += usize::try_from(self.inflate.total_in() - before).unwrap_or(0);
            match result {
                Ok(_) => {}
                Err(err) if err.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| invalid(format!("SPDY header dictionary rejected: {e}")))?;
                    continue;
                }
                Err(err) => return Err(invalid(format!("bad SPDY header block: {err}"))),
            }
            if consumed >= block.len() && out.len() < out.capacity() {
                return parse_headers(&out);
            }
        }
        Err(invalid("SPDY header block did not decompress"))
    }

    /// Serializes and compresses a header block (sync-flushed, as SPDY requires).
    pub fn encode(&mut self, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            raw.extend_from_slice(&(name.len() as u32).to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0;
        for _ in 0..10_000 {
            out.reserve(1024);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("cannot compress SPDY headers: {e}")))?;
            consumed += usize::try_from(self.deflate.total_in() - before).unwrap_or(0);
            if consumed >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
        Err(invalid("SPDY header block did not compress"))
    }
}

fn parse_headers(block: &[u8]) -> std::io::Result<Vec<(String, String)>> {
    let mut at = 0;
    let mut take = |n: usize| -> std::io::Result<&[u8]> {
        let slice = block
            .get(at..at + n)
            .ok_or_else(|| invalid("truncated SPDY header block"))?;
        at += n;
        Ok(slice)
    };
    let word = |bytes: &[u8]| u32::from_be_bytes(bytes.try_into().expect("four bytes")) as usize;
    let count = word(take(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = word(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).to_ascii_lowercase();
        let len = word(take(4)?);
        let value = String::from_utf8_lossy(take(len)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

fn u32_at(bytes: &[u8], at: usize) -> std::io::Result<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")))
        .ok_or_else(|| invalid("truncated SPDY frame"))
}

/// Reads one frame; `None` at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    codec: &mut HeaderCodec,
) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    reader.read_exact(&mut head[1..]).await?;
    let flags = head[4];
    let length = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
    if length > MAX_FRAME {
        return Err(invalid("SPDY frame too large"));
    }
    let mut payload = vec![0u8; length];
    reader.read_exact(&mut payload).await?;
    if head[0] & 0x80 == 0 {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        return Ok(Some(Frame::Data {
            stream_id,
            flags,
            data: Bytes::from(payload),
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(invalid(format!("unsupported SPDY version {version}")));
    }
    let frame_type = u16::from_be_bytes([head[2], head[3]]);
    let stream = |at| u32_at(&payload, at).map(|id| id & 0x7fff_ffff);
    let frame = match frame_type {
        TYPE_SYN_STREAM => Frame::SynStream {
            stream_id: stream(0)?,
            flags,
            headers: codec.decode(
                payload
                    .get(10..)
                    .ok_or_else(|| invalid("short SYN_STREAM"))?,
            )?,
        },
        TYPE_SYN_REPLY => Frame::SynReply {
            stream_id: stream(0)?,
            flags,
            headers: codec.decode(&payload[4.min(payload.len())..])?,
        },
        TYPE_HEADERS => Frame::Headers {
            stream_id: stream(0)?,
            flags,
            headers: codec.decode(&payload[4.min(payload.len())..])?,
        },
        TYPE_RST_STREAM => Frame::RstStream {
            stream_id: stream(0)?,
            status: u32_at(&payload, 4)?,
        },
        TYPE_SETTINGS => Frame::Settings,
        TYPE_PING => Frame::Ping {
            id: u32_at(&payload, 0)?,
        },
        TYPE_GOAWAY => Frame::GoAway {
            last_good_stream_id: stream(0)?,
            status: u32_at(&payload, 4).unwrap_or(0),
        },
        TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: stream(0)?,
            delta: u32_at(&payload, 4)? & 0x7fff_ffff,
        },
        other => Frame::Unknown { frame_type: other },
    };
    Ok(Some(frame))
}

fn control(frame_type: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// Serializes a frame; header blocks go through the connection's compressor, so frames must
/// be encoded in the order they are written.
pub fn encode(frame: &Frame, codec: &mut HeaderCodec) -> std::io::Result<Vec<u8>> {
    let with_block = |stream_id: u32, prefix: &[u8], block: Vec<u8>| {
        let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
        payload.extend_from_slice(prefix);
        payload.extend_from_slice(&block);
        payload
    };
    Ok(match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
        } => control(
            TYPE_SYN_STREAM,
            *flags,
            &with_block(*stream_id, &[0, 0, 0, 0, 0, 0], codec.encode(headers)?),
        ),
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => control(
            TYPE_SYN_REPLY,
            *flags,
            &with_block(*stream_id, &[], codec.encode(headers)?),
        ),
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => control(
            TYPE_HEADERS,
            *flags,
            &with_block(*stream_id, &[], codec.encode(headers)?),
        ),
        Frame::RstStream { stream_id, status } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&status.to_be_bytes());
            control(TYPE_RST_STREAM, 0, &payload)
        }
        Frame::Settings => control(TYPE_SETTINGS, 0, &0u32.to_be_bytes()),
        Frame::Ping { id } => control(TYPE_PING, 0, &id.to_be_bytes()),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            let mut payload = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&status.to_be_bytes());
            control(TYPE_GOAWAY, 0, &payload)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut payload = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
            payload.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            control(TYPE_WINDOW_UPDATE, 0, &payload)
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() > MAX_FRAME {
                return Err(invalid("SPDY data frame too large"));
            }
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
            out.push(*flags);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(data);
            out
        }
        Frame::Unknown { frame_type } => {
            return Err(invalid(format!(
                "cannot encode SPDY frame type {frame_type}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_the_spec_length() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        assert_eq!(&dict[..11], b"\0\0\0\x07options");
        assert!(dict.ends_with(b",enq=0."));
    }

    #[tokio::test]
    async fn frames_round_trip_through_two_codecs() {
        let mut client = HeaderCodec::new().unwrap();
        let mut server = HeaderCodec::new().unwrap();
        let headers = |t: &str| {
            vec![
                ("streamtype".to_owned(), t.to_owned()),
                ("port".to_owned(), "80".to_owned()),
                ("requestid".to_owned(), "0".to_owned()),
            ]
        };
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                flags: 0,
                headers: headers("error"),
            },
            Frame::SynStream {
                stream_id: 3,
                flags: 0,
                headers: headers("data"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::Ping { id: 1 },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 65536,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Vec::new(),
            },
        ];
        let mut wire = Vec::new();
        for frame in &frames {
            wire.extend(encode(frame, &mut client).unwrap());
        }
        let mut reader = wire.as_slice();
        for frame in &frames {
            assert_eq!(
                read_frame(&mut reader, &mut server).await.unwrap().as_ref(),
                Some(frame)
            );
        }
        assert_eq!(read_frame(&mut reader, &mut server).await.unwrap(), None);
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let mut codec = HeaderCodec::new().unwrap();
        let wire = [
            0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xde,
            0xad,
        ];
        assert!(read_frame(&mut &wire[..], &mut codec).await.is_err());
        let wire = [0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00];
        assert!(read_frame(&mut &wire[..], &mut codec).await.is_err());
    }
}
