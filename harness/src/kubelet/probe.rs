//! Probes and lifecycle handlers: what to check ([`Action`]), how often ([`Timing`], with
//! upstream's defaults), when a result counts ([`Counter`], the thresholds), and the checks
//! themselves with the kubelet's failure messages (`HTTP probe failed with statuscode: 503`).
//!
//! The probing loop itself lives with the container (`container.rs`), which knows when the
//! container started and what a result changes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use crate::runtime::Exec;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Readiness,
    Liveness,
    Startup,
}

impl ProbeKind {
    /// `Readiness`, as events say it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The probe of this kind in a container spec.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// A probe's schedule and thresholds, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    /// Upstream's defaults: delay 0, period 10 s, timeout 1 s, success 1, failure 3.
    pub fn of(probe: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive results, as the kubelet's probe worker counts them: a result only takes effect
/// after `threshold` identical ones in a row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter {
    last: Option<bool>,
    run: u32,
}

impl Counter {
    /// Records a result; returns it when it reached its threshold.
    pub fn observe(&mut self, success: bool, timing: &Timing) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        (self.run >= threshold).then_some(success)
    }

    /// Starts counting afresh (after a restart, or once a liveness failure acted).
    pub fn reset(&mut self) {
        *self = Counter::default();
    }
}

/// What a probe or a lifecycle handler does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Http {
        addr: SocketAddr,
        /// The Host header (a `Host` in httpHeaders wins).
        host: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp(SocketAddr),
    Exec(Vec<String>),
    Sleep(Duration),
    /// Cannot be run here; the message says why (every run fails with it).
    Unsupported(String),
}

/// The action of a probe, against the pod at `pod_ip`.
pub fn probe_action(probe: &Probe, container: &Container, pod_ip: IpAddr) -> Action {
    if let Some(http) = &probe.http_get {
        http_action(http, container, pod_ip)
    } else if let Some(tcp) = &probe.tcp_socket {
        tcp_action(tcp, container, pod_ip)
    } else if let Some(exec) = &probe.exec {
        Action::Exec(exec.command.clone().unwrap_or_default())
    } else if probe.grpc.is_some() {
        Action::Unsupported("gRPC probes are not supported by the harness".to_owned())
    } else {
        Action::Unsupported("probe has no action".to_owned())
    }
}

/// The action of a lifecycle handler (preStop, postStart).
pub fn handler_action(handler: &LifecycleHandler, container: &Container, pod_ip: IpAddr) -> Action {
    if let Some(http) = &handler.http_get {
        http_action(http, container, pod_ip)
    } else if let Some(tcp) = &handler.tcp_socket {
        tcp_action(tcp, container, pod_ip)
    } else if let Some(exec) = &handler.exec {
        Action::Exec(exec.command.clone().unwrap_or_default())
    } else if let Some(sleep) = &handler.sleep {
        Action::Sleep(Duration::from_secs(sleep.seconds.max(0) as u64))
    } else {
        Action::Unsupported("lifecycle handler has no action".to_owned())
    }
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!("couldn't find port: {name} in container {}", container.name)
                })
        }
    }
}

fn target_ip(host: Option<&str>, pod_ip: IpAddr) -> Result<IpAddr, String> {
    match host.filter(|h| !h.is_empty()) {
        None => Ok(pod_ip),
        Some("localhost") => Ok(pod_ip),
        Some(h) => h
            .parse()
            .map_err(|_| format!("probe host {h:?} is not an IP address")),
    }
}

fn http_action(http: &HTTPGetAction, container: &Container, pod_ip: IpAddr) -> Action {
    if http
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
    {
        return Action::Unsupported("HTTPS probes are not supported by the harness".to_owned());
    }
    let port = match resolve_port(&http.port, container) {
        Ok(p) => p,
        Err(e) => return Action::Unsupported(e),
    };
    let ip = match target_ip(http.host.as_deref(), pod_ip) {
        Ok(ip) => ip,
        Err(e) => return Action::Unsupported(e),
    };
    let addr = SocketAddr::new(ip, port);
    let mut path = http.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Action::Http {
        addr,
        host: addr.to_string(),
        path,
        headers: http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    }
}

fn tcp_action(tcp: &TCPSocketAction, container: &Container, pod_ip: IpAddr) -> Action {
    match (
        resolve_port(&tcp.port, container),
        target_ip(tcp.host.as_deref(), pod_ip),
    ) {
        (Ok(port), Ok(ip)) => Action::Tcp(SocketAddr::new(ip, port)),
        (Err(e), _) | (_, Err(e)) => Action::Unsupported(e),
    }
}

/// Runs an action once. `Ok` is success; `Err` holds the failure message as events show it.
pub async fn run(action: &Action, exec: &Exec, timeout: Duration) -> Result<(), Failure> {
    match action {
        Action::Http {
            addr,
            host,
            path,
            headers,
        } => http_get(*addr, host, path, headers, timeout).await,
        Action::Tcp(addr) => match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::unanswered(format!(
                "dial tcp {addr}: {}",
                dial_error(&e)
            ))),
            Err(_) => Err(Failure::unanswered(format!("dial tcp {addr}: i/o timeout"))),
        },
        Action::Exec(argv) => match exec.run(argv, timeout).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            // Upstream reports the command's output, even when there is none.
            Ok(out) => Err(Failure::answered(out.output)),
            Err(e) => Err(Failure::answered(e)),
        },
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Action::Unsupported(why) => Err(Failure::answered(why.clone())),
    }
}

/// Why a probe or hook failed: upstream's message, and whether the target answered at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// No answer (a closed port, a reset, no reply in time), as a program that is still
    /// starting gives; `false` for a bad answer (an HTTP status, an exec probe's exit code).
    pub unanswered: bool,
}

impl Failure {
    fn unanswered(message: String) -> Failure {
        Failure {
            message,
            unanswered: true,
        }
    }

    fn answered(message: String) -> Failure {
        Failure {
            message,
            unanswered: false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Go's wording for connection errors, which probe messages carry.
fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "read: connection reset by peer".to_owned(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            format!("connect: {}", text.to_ascii_lowercase())
        }
    }
}

async fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), Failure> {
    let url = format!("http://{host}{path}");
    let unanswered = |e: &dyn std::fmt::Display| Failure::unanswered(format!("Get {url:?}: {e}"));
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unanswered(&format!("dial tcp {addr}: {}", dial_error(&e))))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unanswered(&e))?;
        let mut request = hyper::Request::get(path)
            .header("User-Agent", "kube-probe/1.33")
            .header("Accept", "*/*")
            .header("Connection", "close");
        let mut host_set = false;
        for (name, value) in headers {
            host_set |= name.eq_ignore_ascii_case("host");
            request = request.header(name.as_str(), value.as_str());
        }
        if !host_set {
            request = request.header("Host", host);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::answered(format!("Get {url:?}: {e}")))?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unanswered(&e))?;
            let status = response.status().as_u16();
            // Read the (small) body so the server sees a complete exchange.
            let _ = response.into_body().collect().await;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(Failure::answered(format!(
                    "HTTP probe failed with statuscode: {status}"
                )))
            }
        };
        // The connection is driven right here, beside the exchange: no extra task.
        let mut exchange = std::pin::pin!(exchange);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = &mut exchange => result,
            closed = &mut connection => match closed {
                Err(e) => Err(unanswered(&e)),
                Ok(()) => exchange.await,
            },
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(unanswered(
            &"context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::*;

    #[test]
    fn defaults_are_upstreams() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
    }

    #[test]
    fn thresholds_need_runs_of_identical_results() {
        let timing = Timing {
            success_threshold: 2,
            failure_threshold: 3,
            ..Timing::of(&Probe::default())
        };
        let mut c = Counter::default();
        let seq = [true, true, false, false, true, false, false, false, false];
        let got: Vec<Option<bool>> = seq.iter().map(|r| c.observe(*r, &timing)).collect();
        assert_eq!(
            got,
            [
                None,
                Some(true),
                None,
                None,
                None,
                None,
                None,
                Some(false),
                Some(false)
            ]
        );
    }

    #[test]
    fn named_ports_and_hosts_resolve() {
        let container = Container {
            name: "hostbot".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let ip: IpAddr = "127.1.0.4".parse().unwrap();
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("healthz".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        match probe_action(&probe, &container, ip) {
            Action::Http { addr, path, .. } => {
                assert_eq!(addr.to_string(), "127.1.0.4:8080");
                assert_eq!(path, "/healthz");
            }
            other => panic!("{other:?}"),
        }
        let probe = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("grpc".into()),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            probe_action(&probe, &container, ip),
            Action::Unsupported("couldn't find port: grpc in container hostbot".into())
        );
    }

    #[tokio::test]
    async fn failures_carry_upstream_messages() {
        // A port nobody listens on: bind one, learn it, close it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let exec = Exec::Unsupported;
        let err = run(&Action::Tcp(addr), &exec, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            err.message,
            format!("dial tcp {addr}: connect: connection refused")
        );
        assert!(err.unanswered);
        let http = Action::Http {
            addr,
            host: addr.to_string(),
            path: "/healthz".into(),
            headers: vec![],
        };
        let err = run(&http, &exec, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(
            err.message,
            format!("Get \"http://{addr}/healthz\": dial tcp {addr}: connect: connection refused")
        );
        assert!(err.unanswered);

        // A server answering 503.
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = server.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let http = Action::Http {
            addr,
            host: addr.to_string(),
            path: "/".into(),
            headers: vec![],
        };
        let err = run(&http, &exec, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(err.message, "HTTP probe failed with statuscode: 503");
        assert!(!err.unanswered, "a bad answer is an answer");
        let err = run(
            &Action::Exec(vec!["true".into()]),
            &exec,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(err.message.contains("not supported"), "{err}");
        assert!(!err.unanswered);
    }
}
