//! The data path: one accept loop per listen address of a service port, and the per-connection
//! relay between the client and the backend its [`Balancer`] picked.
//!
//! A listener that cannot bind (the port is taken, the address unusable) logs the reason, records
//! one Warning event on the Service and retries with back-off until it binds or is stopped: a
//! proxy never panics or gives up on a Service because of the machine.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ProxyOptions;
use super::balancer::Balancer;
use crate::store::Store;

/// The event reason recorded when a Service port cannot be bound.
pub const FAILED_TO_LISTEN: &str = "FailedToListen";

/// Everything an accept loop needs.
pub(super) struct Listener {
    pub store: Arc<Store>,
    pub namespace: String,
    pub service: String,
    pub port_name: String,
    pub balancer: Arc<Balancer>,
    pub options: ProxyOptions,
    pub tracker: TaskTracker,
    /// Cancelled only when the proxy shuts down: established connections outlive their listener.
    pub connections: CancellationToken,
}

impl Listener {
    /// Binds `addr` (retrying while it is unavailable) and accepts until `stop` is cancelled.
    pub async fn run(self, addr: SocketAddr, stop: CancellationToken) {
        let Some(listener) = self.bind(addr, &stop).await else {
            return;
        };
        tracing::debug!(%addr, namespace = %self.namespace, service = %self.service, "service port listening");
        loop {
            let accepted = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((client, peer)) => {
                    let balancer = self.balancer.clone();
                    let cancel = self.connections.clone();
                    let options = self.options;
                    self.tracker.spawn(async move {
                        match connect_backend(&balancer, peer.ip(), options).await {
                            Ok(backend) => relay(client, backend, &cancel).await,
                            Err(err) => {
                                tracing::debug!(%addr, %peer, %err, "connection reset");
                                reset(client);
                            }
                        }
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%addr, %err, "accept failed");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
        tracing::debug!(%addr, namespace = %self.namespace, service = %self.service, "service port closed");
    }

    async fn bind(&self, addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
        let mut delay = Duration::from_millis(500);
        let mut reported = false;
        loop {
            match bind(addr) {
                Ok(listener) => {
                    if reported {
                        tracing::info!(%addr, namespace = %self.namespace, service = %self.service, "service port bound after retrying");
                    }
                    return Some(listener);
                }
                Err(err) => {
                    if !reported {
                        reported = true;
                        self.report(addr, &err);
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    fn report(&self, addr: SocketAddr, err: &io::Error) {
        let port = if self.port_name.is_empty() {
            String::new()
        } else {
            format!(" port \"{}\"", self.port_name)
        };
        let message = format!(
            "cannot listen on {addr} for service \"{}/{}\"{port}: {}; retrying",
            self.namespace,
            self.service,
            describe(err)
        );
        tracing::warn!("{message}");
        if let Some(service) = self.store.get_as::<Service>(&self.namespace, &self.service) {
            self.store.record_event(
                &service.into(),
                "Warning",
                FAILED_TO_LISTEN,
                message,
                "kube-proxy",
            );
        }
    }
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

/// Connects to the backend the balancer picks for `client`. With `retry_refused`, a failed
/// attempt is retried once on another backend.
pub(super) async fn connect_backend(
    balancer: &Balancer,
    client: IpAddr,
    options: ProxyOptions,
) -> io::Result<TcpStream> {
    let Some(first) = balancer.pick(client) else {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "no ready endpoints",
        ));
    };
    match connect(first, options.connect_timeout).await {
        Err(err) if options.retry_refused => match balancer.pick_other(client, first) {
            Some(second) => {
                tracing::debug!(%first, %second, %err, "backend failed, retrying on another");
                connect(second, options.connect_timeout).await
            }
            None => Err(err),
        },
        other => other,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_sides_of_a_relay_have_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) =
            tokio::join!(connect(addr, Duration::from_secs(5)), listener.accept());
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
        let err = connect(addr, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            err.to_string(),
            format!("connecting to {addr}: connection refused")
        );
    }
}
