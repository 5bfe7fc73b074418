//! The per-connection data path shared by the Service proxy and port-forward: listening and
//! connecting sockets with the right options, and the byte relay between two connections.
//!

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

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

/// Connects with a deadline, with TCP_NODELAY.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let attempt = async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_nodelay(true)?;
        socket.connect(addr).await
    };
    tokio::time::timeout(timeout, attempt)
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
        let (connected, accepted) = tokio::join!(connect(addr, T), listener.accept());
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
        let err = connect(addr, T).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            err.to_string(),
            format!("connecting to {addr}: connection refused")
        );
    }

    #[tokio::test]
    async fn half_closes_pass_through_in_order() {
        let backend = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let front = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (backend_addr, front_addr) =
            (backend.local_addr().unwrap(), front.local_addr().unwrap());
        let mut client = TcpStream::connect(front_addr).await.unwrap();
        let (accepted, _) = front.accept().await.unwrap();
        let (connected, server) = tokio::join!(connect(backend_addr, T), backend.accept());
        let (connected, mut server) = (connected.unwrap(), server.unwrap().0);
        let cancel = CancellationToken::new();
        let relaying = tokio::spawn(async move { relay(accepted, connected, &cancel).await });
        client.write_all(b"hello ").await.unwrap();
        client.write_all(b"world").await.unwrap();
        client.shutdown().await.unwrap();
        // The backend sees the request and then EOF, and can still answer.
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
