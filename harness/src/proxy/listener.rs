//! One accept loop per listen address of a service port: each accepted connection goes to the
//! backend its [`Balancer`] picks, through the relay.
//!
//! A listener that cannot bind (the port is taken, the address unusable) logs the reason, records
//! one Warning event on the Service and retries with back-off until it binds or is stopped: a
//! proxy never panics or gives up on a Service because of the machine.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ProxyOptions;
use super::balancer::Balancer;
use super::relay::{bind, connect, describe, relay, reset};
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
        self.accept(addr, &listener, &stop).await;
        tracing::debug!(%addr, namespace = %self.namespace, service = %self.service, "service port closed");
    }

    /// Accepts until `stop`. (One loop per listener: a loop per runtime worker measured slower
    /// with a new connection per request, from the extra wake-ups.)
    async fn accept(&self, addr: SocketAddr, listener: &TcpListener, stop: &CancellationToken) {
        loop {
            let accepted = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((client, peer)) => {
                    let balancer = self.balancer.clone();
                    // A token of its own: polling a shared token locks a mutex shared by every
                    // connection, on every wake-up.
                    let cancel = self.connections.child_token();
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
