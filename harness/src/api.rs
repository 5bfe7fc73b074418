//! The Kubernetes API server that the real `kubectl` drives: [`serve`] listens on 127.0.0.1 over
//! HTTPS (a CA and serving certificate made at start-up, see `tls`), requires the bearer token
//! written into the kubeconfig, and answers discovery, OpenAPI, CRUD with subresources, watches,
//! server-side Tables, the three patch flavours, pod logs and port-forwarding, all against the one
//! [`Store`].
//!
//! What the store alone cannot answer (container logs, connections into a pod) comes from
//! [`NodeServices`], which the cluster implements.
//!
//! The wire details follow what kubectl 1.32 sends (see `kubectl-wire.md` in the design notes);
//! where the harness differs from a real API server, the module that does so says why.

mod body;
mod discovery;
mod node;
mod openapi;
mod patch;
mod portforward;
mod protobuf;
mod query;
mod resource;
mod routes;
pub(crate) mod spdy;
mod status;
mod strict;
mod table;
mod tls;
mod watch;
mod websocket;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::store::Store;

pub use body::Body;

/// How long a client may take to finish the TLS handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`serve`] needs to know.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The port on 127.0.0.1; 0 picks a free one (see [`ApiServer::addr`]).
    pub port: u16,
    /// The bearer token every request must carry (it goes into the kubeconfig).
    pub token: String,
    /// Where the server leaves `ca.crt`, the CA that signed its certificate.
    pub state_dir: PathBuf,
}

/// A running API server. It stops when the cancellation token given to [`serve`] fires; its
/// tasks are on the given tracker.
#[derive(Clone, Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    ca_pem: String,
}

impl ApiServer {
    /// The address it listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server URL for a kubeconfig, e.g. `https://127.0.0.1:6443`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of the CA that signed the serving certificate (kubeconfig's
    /// `certificate-authority-data`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// What `kubectl logs` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The container; the API has already checked it exists in the pod.
    pub container: String,
    /// The previous instance of the container (`--previous`).
    pub previous: bool,
    /// Keep the stream open and send new lines as they come (`-f`).
    pub follow: bool,
    /// Only the last N lines (`--tail`).
    pub tail_lines: Option<i64>,
}

/// A log stream: chunks of the log as they become available; the stream ends when the sender
/// is dropped. The API stops reading (drops the receiver) when the client goes away.
pub type LogStream = mpsc::Receiver<Bytes>;

/// A log stream that yields `bytes` and ends.
pub fn log_stream_from(bytes: impl Into<Bytes>) -> LogStream {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(bytes.into());
    rx
}

/// A boxed future, so that [`NodeServices`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the API needs from the node, beyond the store: container logs and connections into pods.
pub trait NodeServices: Send + Sync + 'static {
    /// The log of one container of a pod. Errors are reported to the client as a Status
    /// (e.g. `Error::BadRequest("previous terminated container \"web\" in pod \"x\" not found")`).
    fn logs(&self, namespace: &str, pod: &str, options: &LogOptions) -> Result<LogStream>;

    /// A TCP connection to `port` inside the pod, for `pods/portforward`. The error text is shown
    /// by kubectl (`an error occurred forwarding 8080 -> 80: ...`).
    fn connect<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<TcpStream>>;
}

/// Everything a request handler needs, shared by all connections.
pub(crate) struct Context {
    pub store: Arc<Store>,
    pub node: Arc<dyn NodeServices>,
    pub token: String,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
    pub addr: SocketAddr,
    /// When the server started (the age of its Node).
    pub started: jiff::Timestamp,
}

/// Starts the API server on 127.0.0.1 and returns once it listens. A taken port is an
/// [`Error::Io`] that names it.
pub async fn serve(
    store: Arc<Store>,
    node: Arc<dyn NodeServices>,
    options: ApiOptions,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Result<ApiServer> {
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = TcpListener::bind(bind).await.map_err(|err| {
        let hint = if err.kind() == io::ErrorKind::AddrInUse {
            ": the port is taken by another process; stop it or choose another API port"
        } else {
            ""
        };
        Error::io(format!("cannot listen for the API on {bind}{hint}"), err)
    })?;
    let addr = listener
        .local_addr()
        .map_err(|err| Error::io("cannot read the API listener's address", err))?;
    let identity = tls::Identity::generate()?;
    std::fs::create_dir_all(&options.state_dir).map_err(|err| {
        Error::io(
            format!(
                "cannot create the state directory {}",
                options.state_dir.display()
            ),
            err,
        )
    })?;
    let ca_path = options.state_dir.join("ca.crt");
    std::fs::write(&ca_path, &identity.ca_pem)
        .map_err(|err| Error::io(format!("cannot write {}", ca_path.display()), err))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config()?);
    let context = Arc::new(Context {
        store,
        node,
        token: options.token,
        tracker: tracker.clone(),
        cancel: cancel.clone(),
        addr,
        started: jiff::Timestamp::now(),
    });
    tracing::info!(%addr, "API server listening");
    tracker.spawn(accept_loop(listener, acceptor, context));
    Ok(ApiServer {
        addr,
        ca_pem: identity.ca_pem,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    context: Arc<Context>,
) {
    loop {
        let accepted = tokio::select! {
            _ = context.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                context
                    .tracker
                    .spawn(connection(stream, peer, acceptor.clone(), context.clone()));
            }
            Err(err) => {
                tracing::warn!(%err, "API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    context: Arc<Context>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service_context = context.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let context = service_context.clone();
        async move {
            Ok::<Response<Body>, std::convert::Infallible>(routes::handle(context, request).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "API connection ended with an error");
            }
        }
        _ = context.cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}
