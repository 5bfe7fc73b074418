//! The per-connection data path shared by the Service proxy and port-forward: listening and
//! connecting sockets with the right options, and the byte relay between two connections.
//!
//! One trick keeps a new connection as cheap as haproxy's: **early data**. A client (HTTP, the
//! checker, wrk) writes its request right after connecting, so by the time the proxy accepts,
//! the bytes are usually queued. [`read_early`] takes them without waiting for the event loop,
//! and [`connect`] sends them on the backend socket as soon as the handshake has completed (on
//! loopback it completes inside `connect(2)`). That saves one event-loop round trip per
//! connection, which is what the latency of a new-connection-per-request client is made of.
//! When the bytes are not there yet, or the handshake is still pending, everything falls back
//! to the ordinary asynchronous path; no byte is lost or reordered either way.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// How many early bytes are taken from a new client connection.
pub(crate) const EARLY_BYTES: usize = 4096;

/// A listening socket for proxied traffic: SO_REUSEADDR (rebinding while old connections sit in
/// TIME_WAIT), a deep backlog for connection bursts, and TCP_NODELAY, which accepted sockets
/// inherit on Linux (one setsockopt per listener instead of one per connection).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Takes what the client has already sent, without waiting: 0 when nothing is queued yet (or
/// the client already closed or failed; the relay then sees that for itself).
pub(crate) fn read_early(client: &TcpStream, buf: &mut [u8]) -> usize {
    let socket = SockRef::from(client);
    (&*socket).read(buf).unwrap_or(0)
}

/// Connects to `addr` with TCP_NODELAY and a deadline, and writes `early` to it. The bytes go
/// out straight after `connect(2)` when the handshake is already complete; otherwise the
/// connection waits for the event loop like any other.
pub(crate) async fn connect(
    addr: SocketAddr,
    early: &[u8],
    timeout: Duration,
) -> io::Result<TcpStream> {
    tokio::time::timeout(timeout, connect_sending(addr, early))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out after {timeout:?}"),
            )
        })?
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("connecting to {addr}: {}", describe(&err)),
            )
        })
}

async fn connect_sending(addr: SocketAddr, early: &[u8]) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => return Err(err),
    }
    let mut sent = 0;
    if !early.is_empty() {
        match socket.send_with_flags(early, libc::MSG_NOSIGNAL) {
            Ok(n) => sent = n,
            // Still handshaking.
            Err(err)
                if err.kind() == io::ErrorKind::WouldBlock
                    || err.raw_os_error() == Some(libc::ENOTCONN) => {}
            Err(err) => return Err(err),
        }
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    if sent == 0 {
        // The handshake's outcome is only known once the socket turns writable.
        stream.writable().await?;
        if let Some(err) = stream.take_error()? {
            return Err(err);
        }
    }
    let mut stream = stream;
    stream.write_all(&early[sent..]).await?;
    Ok(stream)
}

/// Copies bytes both ways until both sides are done, or until `cancel`. A half-close (EOF on one
/// side) is passed on as a shutdown of the other side's write half, except for the direction
/// that ends last: both sockets are closed right after, which sends the FIN anyway and saves a
/// syscall per connection. An error on either side resets both, so a reset is passed on.
///
/// Both sockets already have TCP_NODELAY: accepted ones inherit it from [`bind`]'s listener,
/// [`connect`] sets it.
pub(crate) async fn relay(
    mut client: TcpStream,
    mut backend: TcpStream,
    cancel: &CancellationToken,
) {
    let failed = {
        let (mut client_read, mut client_write) = client.split();
        let (mut backend_read, mut backend_write) = backend.split();
        let ended = AtomicBool::new(false);
        let up = pipe(&mut client_read, &mut backend_write, &ended);
        let down = pipe(&mut backend_read, &mut client_write, &ended);
        tokio::select! {
            () = cancel.cancelled() => false,
            result = async { tokio::try_join!(up, down) } => result.is_err(),
        }
    };
    if failed {
        reset(client);
        reset(backend);
    }
}

/// One direction of a relay: copies until EOF, then shuts `to` down unless the other direction
/// has already ended.
async fn pipe<R, W>(from: &mut R, to: &mut W, ended: &AtomicBool) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy(from, to).await?;
    if !ended.swap(true, Ordering::AcqRel) {
        to.shutdown().await?;
    }
    Ok(())
}

/// Closes a connection with a TCP reset (SO_LINGER 0) so the peer fails at once instead of
/// waiting, as a connection to a Service without endpoints does upstream.
pub(crate) fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// An I/O error as a short lowercase phrase, as Go's net package words them.
pub fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn both_sides_of_a_relay_have_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(connect(addr, b"", T), listener.accept());
        assert!(connected.unwrap().nodelay().unwrap(), "connect sets it");
        assert!(
            accepted.unwrap().0.nodelay().unwrap(),
            "accepted sockets inherit it"
        );
    }

    #[tokio::test]
    async fn refused_connects_name_the_address() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        for early in [&b""[..], b"GET / HTTP/1.1\r\n\r\n"] {
            let err = connect(addr, early, T).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            assert_eq!(
                err.to_string(),
                format!("connecting to {addr}: connection refused")
            );
        }
    }

    #[tokio::test]
    async fn early_bytes_arrive_first_and_in_order() {
        let backend = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let front = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (backend_addr, front_addr) =
            (backend.local_addr().unwrap(), front.local_addr().unwrap());
        let mut client = TcpStream::connect(front_addr).await.unwrap();
        client.write_all(b"hello ").await.unwrap();
        let (accepted, _) = front.accept().await.unwrap();
        // Wait until the bytes are queued on the accepted socket, then take them early.
        accepted.readable().await.unwrap();
        let mut buf = [0u8; EARLY_BYTES];
        let n = read_early(&accepted, &mut buf);
        assert_eq!(&buf[..n], b"hello ");
        assert_eq!(read_early(&accepted, &mut buf), 0, "nothing more queued");
        let (connected, server) =
            tokio::join!(connect(backend_addr, &buf[..n], T), backend.accept());
        let (connected, mut server) = (connected.unwrap(), server.unwrap().0);
        let cancel = CancellationToken::new();
        let relaying = tokio::spawn(async move { relay(accepted, connected, &cancel).await });
        client.write_all(b"world").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
        server.write_all(b"bye").await.unwrap();
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"bye");
        tokio::time::timeout(T, relaying).await.unwrap().unwrap();
    }
}
