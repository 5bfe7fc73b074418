//! [`ServiceProxy`]: the cluster's kube-proxy, in IPVS style, as a user-space TCP proxy.
//!
//! It watches Services and Endpoints in the [`Store`] and, level-triggered, makes the machine
//! match them:
//! - a Service without `spec.clusterIP` gets one from the [`Ipam`] (also `clusterIPs`), and a
//!   NodePort or LoadBalancer Service gets its missing `nodePort`s: the API server's allocation,
//!   written back with [`Store::modify`]. They are released when the Service goes.
//! - every TCP service port listens on `clusterIP:port`, and NodePorts also on
//!   `127.0.0.1:nodePort`. A changed port moves its listener; a deleted Service closes them.
//! - each accepted connection goes to a ready endpoint picked round-robin per connection (IPVS
//!   `rr`; iptables mode would pick at random), or per client IP with `sessionAffinity:
//!   ClientIP` (default timeout 10800 s). Endpoint changes apply to the next connection;
//!   established connections are never cut by them, only by the proxy's shutdown.
//! - with no ready endpoint the connection is reset at once (SO_LINGER 0), never left hanging.
//!
//! Where it differs from upstream:
//! - The client's handshake completes with the proxy before a backend is chosen, so a Service
//!   without endpoints (or a refused backend) shows up as a reset after connect, where IPVS gives
//!   a refused connect. Either way the request fails at once.
//! - IPVS does not retry a backend that refuses; neither does this proxy by default.
//!   [`ProxyOptions::retry_refused`] retries once on another backend, which hides the
//!   endpoint-removal race that real clusters show, so it is off unless asked for.
//! - Only TCP is proxied (UDP and SCTP ports are ignored). Terminating endpoints are never used
//!   as a fallback (Endpoints objects cannot tell them from not-ready ones).
//! - A port that cannot be bound (taken by another process, another harness) is logged, recorded
//!   as a Warning event `FailedToListen` on the Service and retried with back-off.
//!
//! [`ServiceProxy::connect`] opens a connection exactly as a new client connection through the
//! Service would; `port-forward svc/...` uses it.

mod balancer;
mod listener;
mod plan;
pub(crate) mod relay;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ipam::Ipam;
use crate::object::{Kind, ObjectKey};
use crate::store::{Store, WatchEvent};
use balancer::Balancer;
pub use listener::FAILED_TO_LISTEN;
use listener::Listener;
pub use plan::DEFAULT_AFFINITY_TIMEOUT;

/// Tunables of the data path.
#[derive(Clone, Copy, Debug)]
pub struct ProxyOptions {
    /// Retry a failed backend connect once on another backend. IPVS does not; default false.
    pub retry_refused: bool,
    /// How long a backend may take to accept before the client connection is reset.
    pub connect_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            retry_refused: false,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

type ServiceKey = (String, String);

/// The Service proxy. Create it with [`ServiceProxy::spawn`].
pub struct ServiceProxy {
    store: Arc<Store>,
    ipam: Arc<Ipam>,
    options: ProxyOptions,
    tracker: TaskTracker,
    cancel: CancellationToken,
    services: Mutex<HashMap<ServiceKey, ServiceState>>,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy").finish_non_exhaustive()
    }
}

/// What the proxy has set up for one Service.
#[derive(Default)]
struct ServiceState {
    /// The cluster IP and NodePorts held in the allocator for this Service.
    held_ip: Option<IpAddr>,
    held_node_ports: Vec<u16>,
    /// The address the ports listen on (none for headless Services).
    cluster_ip: Option<IpAddr>,
    ports: Vec<PortState>,
}

struct PortState {
    port: u16,
    balancer: Arc<Balancer>,
    /// Running accept loops by address, each with its stop token.
    listeners: HashMap<SocketAddr, CancellationToken>,
}

impl PortState {
    fn stop(&self) {
        for stop in self.listeners.values() {
            stop.cancel();
        }
    }
}

impl ServiceProxy {
    /// Starts the proxy with default [`ProxyOptions`]; it runs until `cancel`.
    pub fn spawn(
        store: Arc<Store>,
        ipam: Arc<Ipam>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<ServiceProxy> {
        ServiceProxy::spawn_with(store, ipam, ProxyOptions::default(), tracker, cancel)
    }

    /// Starts the proxy with the given options; it runs until `cancel`.
    pub fn spawn_with(
        store: Arc<Store>,
        ipam: Arc<Ipam>,
        options: ProxyOptions,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<ServiceProxy> {
        let changes = store.subscribe();
        let proxy = Arc::new(ServiceProxy {
            store,
            ipam,
            options,
            tracker: tracker.clone(),
            cancel,
            services: Mutex::new(HashMap::new()),
        });
        tracker.spawn(proxy.clone().run(changes));
        proxy
    }

    /// The cluster IP the Service's ports listen on, once the proxy has set it up.
    pub fn cluster_ip(&self, namespace: &str, name: &str) -> Option<IpAddr> {
        self.lock()
            .get(&key(namespace, name))
            .and_then(|s| s.cluster_ip)
    }

    /// The addresses the proxy listens on (or tries to) for a Service.
    pub fn listen_addrs(&self, namespace: &str, name: &str) -> Vec<SocketAddr> {
        let services = self.lock();
        let mut addrs: Vec<SocketAddr> = services
            .get(&key(namespace, name))
            .into_iter()
            .flat_map(|s| s.ports.iter().flat_map(|p| p.listeners.keys().copied()))
            .collect();
        addrs.sort();
        addrs
    }

    /// The ready backends of the service port `port` (`spec.ports[].port`).
    pub fn backends(&self, namespace: &str, service: &str, port: u16) -> Vec<SocketAddr> {
        self.balancer(namespace, service, port)
            .map(|b| b.backends())
            .unwrap_or_default()
    }

    /// Opens a connection to the service port `port` exactly as a new client connection through
    /// the Service would: the next backend in round-robin order (or the affinity backend of
    /// 127.0.0.1), with the proxy's retry policy. Errors name the Service when it or the port is
    /// unknown or has no ready endpoint.
    pub async fn connect(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> io::Result<TcpStream> {
        let balancer = match self.balancer(namespace, service, port) {
            Some(b) => b,
            None => {
                // Not seen yet (created a moment ago): set it up now rather than fail.
                self.reconcile(namespace, service);
                self.balancer(namespace, service, port)
                    .ok_or_else(|| unknown_port(namespace, service, port))?
            }
        };
        listener::connect_backend(&balancer, Ipv4Addr::LOCALHOST.into(), self.options)
            .await
            .map_err(|err| {
                let key = ObjectKey::new(Kind::Service, namespace, service);
                io::Error::new(err.kind(), format!("{key} port {port}: {err}"))
            })
    }

    fn balancer(&self, namespace: &str, service: &str, port: u16) -> Option<Arc<Balancer>> {
        self.lock()
            .get(&key(namespace, service))?
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.balancer.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ServiceKey, ServiceState>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>, mut changes: broadcast::Receiver<WatchEvent>) {
        self.resync();
        loop {
            let change = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                change = changes.recv() => change,
            };
            match change {
                Ok(event) => {
                    if matches!(event.object.kind(), Kind::Service | Kind::Endpoints) {
                        self.reconcile(event.object.namespace(), event.object.name());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "service proxy fell behind the store; resyncing");
                    self.resync();
                }
                Err(RecvError::Closed) => break,
            }
        }
        for (_, state) in self.lock().drain() {
            for port in &state.ports {
                port.stop();
            }
        }
    }

    /// Reconciles every Service in the store and every one the proxy still serves.
    fn resync(&self) {
        let mut services = self.lock();
        let mut keys: HashSet<ServiceKey> = services.keys().cloned().collect();
        keys.extend(
            self.store
                .list(Kind::Service, None)
                .iter()
                .map(|o| key(o.namespace(), o.name())),
        );
        for (namespace, name) in keys {
            self.reconcile_locked(&mut services, &namespace, &name);
        }
    }

    fn reconcile(&self, namespace: &str, name: &str) {
        let mut services = self.lock();
        self.reconcile_locked(&mut services, namespace, name);
    }

    fn reconcile_locked(
        &self,
        services: &mut HashMap<ServiceKey, ServiceState>,
        namespace: &str,
        name: &str,
    ) {
        let key = key(namespace, name);
        let Some(mut service) = self.store.get_as::<Service>(namespace, name) else {
            if let Some(state) = services.remove(&key) {
                self.teardown(namespace, name, state);
            }
            return;
        };
        if let Some(updated) = self.allocate(namespace, name, &service) {
            service = updated;
        }
        let endpoints = self.store.get_as::<Endpoints>(namespace, name);
        let plan = plan::plan(&service, endpoints.as_ref());
        let state = services.entry(key).or_default();
        self.hold_allocations(state, &service);
        state.cluster_ip = plan.cluster_ip;

        let mut old_ports = std::mem::take(&mut state.ports);
        for wanted in &plan.ports {
            let mut port = match old_ports.iter().position(|p| p.port == wanted.port) {
                Some(i) => old_ports.swap_remove(i),
                None => PortState {
                    port: wanted.port,
                    balancer: Arc::default(),
                    listeners: HashMap::new(),
                },
            };
            if port.balancer.update(wanted.backends.clone(), plan.affinity) {
                tracing::debug!(
                    namespace, service = name, port = wanted.port, backends = ?wanted.backends,
                    "service endpoints changed"
                );
            }
            let addrs = wanted.listen_addrs(plan.cluster_ip);
            port.listeners.retain(|addr, stop| {
                let keep = addrs.contains(addr);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for addr in addrs {
                if port.listeners.contains_key(&addr) {
                    continue;
                }
                let stop = self.cancel.child_token();
                let listener = Listener {
                    store: self.store.clone(),
                    namespace: namespace.to_owned(),
                    service: name.to_owned(),
                    port_name: wanted.name.clone(),
                    balancer: port.balancer.clone(),
                    options: self.options,
                    tracker: self.tracker.clone(),
                    connections: self.cancel.clone(),
                };
                tracing::info!(namespace, service = name, %addr, "service port opened");
                self.tracker.spawn(listener.run(addr, stop.clone()));
                port.listeners.insert(addr, stop);
            }
            state.ports.push(port);
        }
        for gone in old_ports {
            tracing::info!(
                namespace,
                service = name,
                port = gone.port,
                "service port closed"
            );
            gone.stop();
        }
    }

    /// Allocates what the Service lacks and writes it; returns the stored Service when it
    /// changed. Whatever is not used (someone else allocated first, the write failed) goes back.
    fn allocate(&self, namespace: &str, name: &str, service: &Service) -> Option<Service> {
        let needs = plan::needs(service);
        if !needs.any() {
            return None;
        }
        let key = ObjectKey::new(Kind::Service, namespace, name);
        let ip = needs
            .cluster_ip
            .then(|| self.ipam.allocate_service_ip())
            .and_then(|r| {
                r.map_err(|err| tracing::warn!(%err, "{key}: no cluster IP"))
                    .ok()
            });
        let node_ports: Vec<u16> = (0..needs.node_ports)
            .map_while(|_| {
                self.ipam
                    .allocate_node_port()
                    .map_err(|err| tracing::warn!(%err, "{key}: no node port"))
                    .ok()
            })
            .collect();
        let result = self
            .store
            .modify::<Service, _>(namespace, name, |svc| plan::fill(svc, ip, &node_ports));
        let (ip_used, ports_used, stored) = match result {
            Ok((stored, (ip_used, ports_used))) => (ip_used, ports_used, Some(stored)),
            Err(err) => {
                tracing::warn!(%err, "{key}: cannot record its cluster IP and node ports");
                (false, 0, None)
            }
        };
        if let (Some(ip), false) = (ip, ip_used) {
            self.ipam.release_service_ip(ip.into());
        }
        for &port in &node_ports[ports_used..] {
            self.ipam.release_node_port(port);
        }
        if ip_used || ports_used > 0 {
            tracing::info!(
                "{key}: allocated cluster IP {} and node ports {:?}",
                ip.filter(|_| ip_used)
                    .map_or("-".to_owned(), |ip| ip.to_string()),
                &node_ports[..ports_used]
            );
        }
        stored
    }

    /// Keeps the allocator's record in step with what the Service holds (user-chosen values are
    /// reserved; values the Service dropped are released).
    fn hold_allocations(&self, state: &mut ServiceState, service: &Service) {
        let (ip, node_ports) = plan::allocated(service);
        if state.held_ip != ip {
            if let Some(old) = state.held_ip {
                self.ipam.release_service_ip(old);
            }
            if let Some(new) = ip {
                self.ipam.reserve_service_ip(new);
            }
            state.held_ip = ip;
        }
        for &old in &state.held_node_ports {
            if !node_ports.contains(&old) {
                self.ipam.release_node_port(old);
            }
        }
        for &new in &node_ports {
            if !state.held_node_ports.contains(&new) {
                self.ipam.reserve_node_port(new);
            }
        }
        state.held_node_ports = node_ports;
    }

    fn teardown(&self, namespace: &str, name: &str, state: ServiceState) {
        tracing::info!(
            namespace,
            service = name,
            "service removed; closing its ports"
        );
        for port in &state.ports {
            port.stop();
        }
        if let Some(ip) = state.held_ip {
            self.ipam.release_service_ip(ip);
        }
        for &port in &state.held_node_ports {
            self.ipam.release_node_port(port);
        }
    }
}

fn key(namespace: &str, name: &str) -> ServiceKey {
    let namespace = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    (namespace.to_owned(), name.to_owned())
}

fn unknown_port(namespace: &str, service: &str, port: u16) -> io::Error {
    let key = ObjectKey::new(Kind::Service, namespace, service);
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{key} not found or has no TCP port {port}"),
    )
}
