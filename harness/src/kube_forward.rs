//! Port-forwarding through any Kubernetes API with the kube crate's client: what `harness check
//! --kubeconfig` sends its load through and what `harness port-forward` serves.
//!
//! A local listener hands each accepted connection to a [`Destination`]: one pod's port
//! (kubectl's pinned forward), or a Service port, where every new connection goes to the next
//! ready endpoint ([`ServiceEndpoints`], round-robin over a watched Endpoints), so the forward
//! survives rolling updates and pod deletions the way in-cluster clients do.
//!
//! The connections ride on SPDY port-forward [`Session`]s, one per pod, opened on first use
//! and replaced once they end ([`Sessions`]). That design was measured against the kube crate's
//! `Portforwarder` (the WebSocket channel protocol), which carries one connection per port per
//! session: a session per connection cost the client about 2.6 ms of CPU (a TLS handshake, an
//! upgrade, the WebSocket machinery; debug build) on top of 1 ms for looking up the endpoints,
//! so 200 new connections a second needed most of a core on each side and queued for hundreds
//! of milliseconds on a two-core machine. A stream on an open session is a few frames.

mod endpoints;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::{Client, Config};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;

pub use endpoints::{ServiceEndpoints, Snapshot, targets};
pub use session::{BUFFERED_FRAMES, Session, Stream};

/// A kube client whose connections set TCP_NODELAY, as Go's (kubectl's) do. kube's own client
/// leaves Nagle's algorithm on; on a session carrying many small frames it then waits for the
/// server's delayed ACK, up to 40 ms, before sending the next frame. Measured through
/// `check --kubeconfig` at 200 new connections a second: p50 28 ms with Nagle, 3 ms without.
/// A kubeconfig with a proxy gets kube's client (which knows proxies).
pub fn client(config: Config) -> anyhow::Result<Client> {
    if config.proxy_url.is_some() {
        return Client::try_from(config).context("cannot build a Kubernetes client");
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = config
        .rustls_https_connector_with_connector(http)
        .context("cannot set up TLS for the Kubernetes API")?;
    let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .auth_layer()
                .context("unusable kubeconfig credentials")?,
        )
        .layer(
            config
                .extra_headers_layer()
                .context("unusable kubeconfig impersonation headers")?,
        )
        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        .service(inner);
    Ok(Client::new(service, config.default_namespace))
}

/// Reports a failed forwarded connection (the server's message, or why no pod was reached).
pub type OnError = Arc<dyn Fn(String) + Send + Sync>;

/// Port-forward sessions by pod, opened on first use and replaced once they end.
#[derive(Clone)]
pub struct Sessions {
    client: Client,
    namespace: String,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// One pod's session; the lock makes concurrent first connections share one upgrade.
type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

impl Sessions {
    /// Sessions in `namespace`; they end when `cancel` fires.
    pub fn new(
        client: Client,
        namespace: &str,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Sessions {
        Sessions {
            client,
            namespace: namespace.to_owned(),
            slots: Arc::new(Mutex::new(HashMap::new())),
            tracker: tracker.clone(),
            cancel,
        }
    }

    /// The open session to `pod`, opening one if there is none or the last one ended.
    pub async fn get(&self, pod: &str) -> anyhow::Result<Session> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            // Forget pods whose session ended and that nobody is opening.
            slots.retain(|name, slot| {
                name == pod
                    || slot
                        .try_lock()
                        .map_or(true, |s| s.as_ref().is_some_and(|s| !s.is_closed()))
            });
            slots.entry(pod.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        let session = Session::open(
            &self.client,
            &self.namespace,
            pod,
            &self.tracker,
            &self.cancel,
        )
        .await?;
        *slot = Some(session.clone());
        Ok(session)
    }
}

/// Where a listener's connections go.
#[derive(Clone)]
pub enum Destination {
    /// This port of the session's pod, for every connection (kubectl's pinned forward).
    Pod { session: Session, port: u16 },
    /// The next ready endpoint behind this Service port, per connection.
    Service {
        endpoints: Arc<ServiceEndpoints>,
        port: u16,
        sessions: Sessions,
    },
}

/// Accepts connections on `listener` and forwards each to `destination` until `cancel` fires;
/// connections in flight end then too.
pub fn serve(
    listener: TcpListener,
    destination: Destination,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    on_error: OnError,
) {
    let connections = tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let socket = match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    tracing::debug!(%err, "port-forward accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (destination, cancel, on_error) =
                (destination.clone(), cancel.clone(), on_error.clone());
            connections.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = forward(socket, &destination, &on_error) => {}
                }
            });
        }
    });
}

/// Forwards one connection.
async fn forward(socket: TcpStream, destination: &Destination, on_error: &OnError) {
    let stream = match destination {
        Destination::Pod { session, port } => session.open_stream(*port).await,
        Destination::Service {
            endpoints,
            port,
            sessions,
        } => open_to_service(endpoints, *port, sessions).await,
    };
    match stream {
        Ok(stream) => {
            if let Err(message) = stream.run(socket).await {
                on_error(message);
            }
        }
        Err(message) => {
            // As a Service with no endpoints does: the connection is refused (reset).
            let _ = socket.set_zero_linger();
            drop(socket);
            on_error(message);
        }
    }
}

/// Opens streams to the next ready endpoint; a pod whose session cannot be opened (it was just
/// deleted) gives way to the next one once.
async fn open_to_service(
    endpoints: &ServiceEndpoints,
    port: u16,
    sessions: &Sessions,
) -> Result<Stream, String> {
    let mut last = String::new();
    for _ in 0..2 {
        let (pod, pod_port) = endpoints.pick(port)?;
        let session = match sessions.get(&pod).await {
            Ok(session) => session,
            Err(err) => {
                last = format!("{err:#}");
                continue;
            }
        };
        match session.open_stream(pod_port).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}
