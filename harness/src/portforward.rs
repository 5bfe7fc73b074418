//! `port-forward` as a library: [`start`] listens on local ports and relays each connection to a
//! pod, or through the Service proxy; [`PortForward`] is the running session.
//!
//! Targets ([`Target`]) behave as with kubectl, except for Services:
//! - `pod/NAME` (or `NAME`) pins that pod (`podIP:remote`). The pod must be Running. When the pod
//!   goes away (deleted, replaced by a pod with a new uid, or finished) the session ends as
//!   kubectl's does ("lost connection to pod"): listeners and connections close, and
//!   [`PortForward::wait`] returns the reason.
//! - `deploy/NAME` and `rs/NAME` pick ONE pod by the workload's selector, as kubectl's
//!   `AttachablePodForObject` does (Running, Ready, ready the longest, fewest restarts, oldest),
//!   and pin it. This is kubectl's well-known pain point (kubernetes/kubectl#686): a rolling
//!   update or a pod deletion ends the session, and it must be started again.
//! - `svc/NAME` maps the service port `remote` to the pod's port (targetPort). **Unlike kubectl**,
//!   each new connection goes through the Service proxy ([`ServiceProxy::connect`]): round-robin
//!   over the ready endpoints at that moment, so the forward keeps working through rolling
//!   updates and pod deletions and spreads load like in-cluster clients see it. Set
//!   [`Request::pinned`] for kubectl's behaviour (one pod, chosen and pinned as for
//!   `deploy/`).
//!
//! Local addresses default to kubectl's `localhost`: 127.0.0.1 and ::1. 127.0.0.1 must bind; ::1
//! is skipped when it cannot (kubectl accepts either one binding; requiring 127.0.0.1 makes a
//! taken port an error instead of a silent IPv6-only forward). Explicit addresses must all
//! bind. A local port of 0 picks a free port, shared by all addresses.
//!
//! Printing `Forwarding from 127.0.0.1:8080 -> 80` is the CLI's job: [`PortForward::forwards`]
//! gives the data.

mod choice;
mod target;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::object::{Kind, ObjectKey};
use crate::proxy::ServiceProxy;
use crate::proxy::relay::{bind, connect, describe, relay, reset};
use crate::selector::Selector;
use crate::store::{Store, WatchEvent};
pub use choice::{attachable_pod, pod_phase};
pub use target::{PortPair, Target};

/// How long a pod may take to accept a forwarded connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to forward, where from.
#[derive(Clone, Debug)]
pub struct Request {
    pub namespace: String,
    pub target: Target,
    pub ports: Vec<PortPair>,
    /// Local addresses to listen on; empty means 127.0.0.1 and (if it binds) ::1.
    pub addresses: Vec<IpAddr>,
    /// For `svc/`: pin one pod as kubectl does instead of balancing each connection.
    pub pinned: bool,
}

impl Request {
    /// A request with the default addresses, unpinned.
    pub fn new(namespace: impl Into<String>, target: Target, ports: Vec<PortPair>) -> Request {
        Request {
            namespace: namespace.into(),
            target,
            ports,
            addresses: Vec::new(),
            pinned: false,
        }
    }
}

/// One local listener and where its connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The bound local address (the port is resolved when 0 was asked for).
    pub local: SocketAddr,
    /// The port asked for on the remote side (the service port for `svc/`).
    pub remote: u16,
    /// The pod port connections reach, when known (the targetPort for `svc/`), as kubectl
    /// prints it in `Forwarding from 127.0.0.1:8080 -> 80`.
    pub pod_port: u16,
}

/// A running port-forward. Dropping it does not stop it; call [`PortForward::stop`].
#[derive(Debug)]
pub struct PortForward {
    forwards: Vec<Forwarded>,
    pod: Option<String>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    ended: Arc<Mutex<Option<String>>>,
}

impl PortForward {
    /// Every bound local address.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.forwards.iter().map(|f| f.local).collect()
    }

    /// Every listener with its remote port.
    pub fn forwards(&self) -> &[Forwarded] {
        &self.forwards
    }

    /// The pinned pod, if any (none for an unpinned `svc/`).
    pub fn pod(&self) -> Option<&str> {
        self.pod.as_deref()
    }

    /// Closes the listeners and the forwarded connections.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Whether the session has ended (stopped, cluster shut down, or the pod went away).
    pub fn is_ended(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits until the session has ended and every listener and connection is closed. Returns
    /// why it ended on its own (the pinned pod went away), or `None` when it was stopped.
    pub async fn wait(&self) -> Option<String> {
        self.cancel.cancelled().await;
        self.tasks.close();
        self.tasks.wait().await;
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Where connections go.
enum Destination {
    Pod {
        ip: IpAddr,
    },
    Service {
        proxy: Arc<ServiceProxy>,
        name: String,
    },
}

/// The resolved target: the destination and, when pinned, the pod.
struct Resolved {
    destination: Destination,
    pod: Option<Pod>,
    /// `(remote, pod port)` for each requested pair.
    ports: Vec<(u16, u16)>,
}

/// Starts a port-forward: resolves the target, binds every local port (all or nothing), then
/// relays connections until `cancel`, [`PortForward::stop`] or, when pinned, the pod's end.
pub async fn start(
    store: Arc<Store>,
    proxy: Arc<ServiceProxy>,
    request: Request,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Result<PortForward> {
    let namespace = if request.namespace.is_empty() {
        "default"
    } else {
        &request.namespace
    };
    // Subscribe before reading the pod, so that a deletion in between is not missed.
    let changes = store.subscribe();
    let resolved = resolve(&store, proxy, namespace, &request)?;
    let listeners = listen(&request, &resolved.ports).await?;

    let cancel = cancel.child_token();
    let tasks = TaskTracker::new();
    let ended = Arc::new(Mutex::new(None));
    let destination = Arc::new(resolved.destination);
    let mut forwards = Vec::new();
    for (listener, forwarded) in listeners {
        forwards.push(forwarded);
        let serve = serve(
            listener,
            forwarded,
            destination.clone(),
            namespace.to_owned(),
            cancel.clone(),
            tasks.clone(),
            tracker.clone(),
        );
        tracker.spawn(tasks.track_future(serve));
    }
    let pod_name = resolved.pod.as_ref().and_then(|p| p.metadata.name.clone());
    if let Some(pod) = resolved.pod {
        let watch = watch_pod(store, pod, changes, cancel.clone(), ended.clone());
        tracker.spawn(tasks.track_future(watch));
    }
    Ok(PortForward {
        forwards,
        pod: pod_name,
        cancel,
        tasks,
        ended,
    })
}

fn resolve(
    store: &Store,
    proxy: Arc<ServiceProxy>,
    namespace: &str,
    request: &Request,
) -> Result<Resolved> {
    let name = request.target.name();
    let not_found = || Error::NotFound(ObjectKey::new(request.target.kind(), namespace, name));
    let pod = match &request.target {
        Target::Pod(_) => store.get_as::<Pod>(namespace, name).ok_or_else(not_found)?,
        Target::Deployment(_) => {
            let deployment = store
                .get_as::<Deployment>(namespace, name)
                .ok_or_else(not_found)?;
            let selector = deployment.spec.as_ref().map(|s| &s.selector);
            pick(
                store,
                namespace,
                &request.target,
                selector.map(Selector::from_label_selector),
            )?
        }
        Target::ReplicaSet(_) => {
            let rs = store
                .get_as::<ReplicaSet>(namespace, name)
                .ok_or_else(not_found)?;
            let selector = rs.spec.as_ref().map(|s| &s.selector);
            pick(
                store,
                namespace,
                &request.target,
                selector.map(Selector::from_label_selector),
            )?
        }
        Target::Service(_) => {
            let service = store
                .get_as::<Service>(namespace, name)
                .ok_or_else(not_found)?;
            if !request.pinned {
                return resolve_service(&service, proxy, namespace, request);
            }
            let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
            let Some(selector) = selector.filter(|s| !s.is_empty()) else {
                return Err(Error::BadRequest(format!(
                    "cannot attach to service \"{name}\": it is defined without a selector"
                )));
            };
            let pod = pick(
                store,
                namespace,
                &request.target,
                Some(Ok(Selector::from_map(selector))),
            )?;
            let ports = request
                .ports
                .iter()
                .map(|p| Ok((p.remote, choice::target_port(&service, &pod, p.remote)?)))
                .collect::<Result<_>>()?;
            return pinned(pod, ports);
        }
    };
    let ports = request.ports.iter().map(|p| (p.remote, p.remote)).collect();
    pinned(pod, ports)
}

/// An unpinned `svc/`: every requested port must be a TCP service port.
fn resolve_service(
    service: &Service,
    proxy: Arc<ServiceProxy>,
    namespace: &str,
    request: &Request,
) -> Result<Resolved> {
    let name = request.target.name();
    let spec_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut ports = Vec::new();
    for pair in &request.ports {
        let Some(port) = spec_ports.iter().find(|p| p.port == i32::from(pair.remote)) else {
            return Err(Error::BadRequest(format!(
                "service \"{name}\" does not have a service port {}",
                pair.remote
            )));
        };
        let pod_port = match &port.target_port {
            Some(IntOrString::Int(n)) if *n > 0 => u16::try_from(*n).unwrap_or(pair.remote),
            // A named targetPort differs per pod: show the port of a current backend.
            Some(IntOrString::String(_)) => proxy
                .backends(namespace, name, pair.remote)
                .first()
                .map_or(pair.remote, SocketAddr::port),
            _ => pair.remote,
        };
        ports.push((pair.remote, pod_port));
    }
    Ok(Resolved {
        destination: Destination::Service {
            proxy,
            name: name.to_owned(),
        },
        pod: None,
        ports,
    })
}

/// The pod kubectl would attach to among those `selector` matches.
fn pick(
    store: &Store,
    namespace: &str,
    target: &Target,
    selector: Option<Result<Selector, crate::selector::SelectorError>>,
) -> Result<Pod> {
    let selector = match selector {
        Some(Ok(s)) if !s.is_empty() => s,
        Some(Err(err)) => return Err(Error::BadRequest(format!("{target}: {err}"))),
        _ => return Err(Error::BadRequest(format!("{target} has no selector"))),
    };
    let pods = store.list_as::<Pod>(Some(namespace), &selector);
    choice::attachable_pod(pods)
        .ok_or_else(|| Error::BadRequest(format!("no pods found for {target}")))
}

fn pinned(pod: Pod, ports: Vec<(u16, u16)>) -> Result<Resolved> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let phase = choice::pod_phase(&pod);
    if phase != "Running" {
        return Err(Error::BadRequest(format!(
            "unable to forward port because pod \"{name}\" is not running (phase {phase})"
        )));
    }
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .ok_or_else(|| Error::BadRequest(format!("pod \"{name}\" has no IP address yet")))?;
    Ok(Resolved {
        destination: Destination::Pod { ip },
        pod: Some(pod),
        ports,
    })
}

/// Binds every pair on every address; the first failure fails the whole forward.
async fn listen(request: &Request, ports: &[(u16, u16)]) -> Result<Vec<(TcpListener, Forwarded)>> {
    let defaults = request.addresses.is_empty();
    let addresses = if defaults {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    } else {
        request.addresses.clone()
    };
    let mut bound = Vec::new();
    for (pair, &(remote, pod_port)) in request.ports.iter().zip(ports) {
        let mut local_port = pair.local;
        for (i, &ip) in addresses.iter().enumerate() {
            let addr = SocketAddr::new(ip, local_port);
            match bind(addr) {
                Ok(listener) => {
                    let local = listener
                        .local_addr()
                        .map_err(|e| Error::io(format!("unable to listen on {addr}"), e))?;
                    local_port = local.port();
                    bound.push((
                        listener,
                        Forwarded {
                            local,
                            remote,
                            pod_port,
                        },
                    ));
                }
                Err(err) if defaults && i > 0 => {
                    tracing::debug!(%addr, %err, "skipping the IPv6 loopback listener");
                }
                Err(err) => {
                    let port = if local_port == 0 {
                        "0".to_owned()
                    } else {
                        local_port.to_string()
                    };
                    return Err(Error::io(
                        format!(
                            "unable to listen on port {port}: bind {addr}: {}",
                            describe(&err)
                        ),
                        err,
                    ));
                }
            }
        }
    }
    Ok(bound)
}

async fn serve(
    listener: TcpListener,
    forwarded: Forwarded,
    destination: Arc<Destination>,
    namespace: String,
    cancel: CancellationToken,
    tasks: TaskTracker,
    tracker: TaskTracker,
) {
    let namespace: Arc<str> = namespace.into();
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(err) => {
                tracing::warn!(local = %forwarded.local, %err, "port-forward accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tracing::debug!("Handling connection for {}", forwarded.local.port());
        // A token of its own: polling the shared one locks a mutex on every wake-up.
        let (destination, namespace, cancel) =
            (destination.clone(), namespace.clone(), cancel.child_token());
        tracker.spawn(tasks.track_future(async move {
            match open(&destination, &namespace, forwarded).await {
                Ok(backend) => relay(client, backend, &cancel).await,
                Err(err) => {
                    tracing::warn!(
                        "an error occurred forwarding {} -> {}: {err}",
                        forwarded.local.port(),
                        forwarded.remote
                    );
                    reset(client);
                }
            }
        }));
    }
}

async fn open(
    destination: &Destination,
    namespace: &str,
    forwarded: Forwarded,
) -> std::io::Result<TcpStream> {
    match destination {
        Destination::Pod { ip } => {
            let addr = SocketAddr::new(*ip, forwarded.pod_port);
            connect(addr, CONNECT_TIMEOUT).await
        }
        Destination::Service { proxy, name } => {
            proxy.connect(namespace, name, forwarded.remote).await
        }
    }
}

/// Ends the session when the pinned pod is gone: removed, replaced (new uid) or finished.
async fn watch_pod(
    store: Arc<Store>,
    pod: Pod,
    mut changes: broadcast::Receiver<WatchEvent>,
    cancel: CancellationToken,
    ended: Arc<Mutex<Option<String>>>,
) {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    loop {
        if let Some(reason) = gone(store.get_as::<Pod>(&namespace, &name).as_ref(), &uid) {
            tracing::error!("lost connection to pod {name}: {reason}");
            *ended.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("lost connection to pod \"{name}\": {reason}"));
            cancel.cancel();
            return;
        }
        loop {
            let change = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                change = changes.recv() => change,
            };
            match change {
                Ok(event)
                    if event.object.kind() == Kind::Pod
                        && event.object.name() == name
                        && event.object.namespace() == namespace =>
                {
                    break;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

fn gone(pod: Option<&Pod>, uid: &str) -> Option<String> {
    let Some(pod) = pod else {
        return Some("the pod was deleted".into());
    };
    if pod.metadata.uid.as_deref().unwrap_or_default() != uid {
        return Some("the pod was replaced".into());
    }
    match choice::pod_phase(pod) {
        phase @ ("Succeeded" | "Failed") => Some(format!("the pod has stopped (phase {phase})")),
        _ => None,
    }
}
