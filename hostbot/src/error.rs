//! [`Error`]: the ways an instance ends other than a clean shutdown, and the exit code of each.
//!
//! The crash faults are errors on purpose: [`run`](crate::run) never calls
//! `std::process::exit`, so an embedding program hosting many instances decides what a crash
//! means, and the command line turns it into the configured exit code.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why an instance stopped (or could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A crash fault fired ([`Faults`](crate::Faults)); `code` is the configured exit code.
    #[error("crash fault: {reason}")]
    Crash { code: u8, reason: String },

    /// A second signal (or the force token) ended the graceful shutdown early.
    #[error("forced shutdown: connections were cut without draining")]
    Forced,

    /// Connections were still open when the shutdown timeout ran out; they were cut.
    #[error("shutdown timeout: {open} connection(s) still open after {timeout:?}, cut")]
    ShutdownTimeout { open: u64, timeout: Duration },

    /// The listener could not be bound; the message says what to do about it.
    #[error("cannot listen on {addr}: {advice}")]
    Bind {
        addr: String,
        advice: String,
        #[source]
        source: io::Error,
    },

    /// The listener passed to [`run`](crate::run) is not usable.
    #[error("listener: {0}")]
    Listener(#[source] io::Error),

    /// A config file could not be read. Only logged by the reloader (the last good config stays
    /// in use); never returned by [`run`](crate::run).
    #[error("config file {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `hostbot --healthcheck` got no healthy answer.
    #[error("healthcheck {url}: {reason}")]
    Unhealthy { url: String, reason: String },
}

impl Error {
    /// The process exit code for this error: the crash fault's own code, 130 (like a shell
    /// after SIGINT) for a forced shutdown, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Crash { code, .. } => *code,
            Error::Forced => 130,
            _ => 1,
        }
    }

    /// The advice for a failed bind of `addr`, naming the port and what to do.
    pub(crate) fn bind(
        addr: SocketAddr,
        source: io::Error,
        unprivileged_port_start: Option<u16>,
    ) -> Self {
        let port = addr.port();
        let advice = match source.kind() {
            io::ErrorKind::AddrInUse => format!(
                "port {port} is already in use; stop the process holding it or pick another port, e.g. PORT=8080"
            ),
            io::ErrorKind::PermissionDenied => {
                let limit = unprivileged_port_start
                    .map_or_else(String::new, |start| format!(" (it is {start} here)"));
                format!(
                    "port {port} is privileged: ports below net.ipv4.ip_unprivileged_port_start{limit} need \
                     root or CAP_NET_BIND_SERVICE; use an unprivileged port (PORT=8080), grant the \
                     capability (setcap cap_net_bind_service=+ep hostbot), or set the sysctl \
                     net.ipv4.ip_unprivileged_port_start=0 (Docker does this for containers; in \
                     Kubernetes set it in the pod's securityContext.sysctls)"
                )
            }
            io::ErrorKind::AddrNotAvailable => format!(
                "address {} is not assigned to this machine; use HOST=0.0.0.0 to listen on all interfaces",
                addr.ip()
            ),
            _ => format!("{source}"),
        };
        Error::Bind {
            addr: addr.to_string(),
            advice,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], port))
    }

    #[test]
    fn bind_errors_name_the_port_and_the_fix() {
        let taken = Error::bind(addr(80), io::ErrorKind::AddrInUse.into(), None).to_string();
        assert!(
            taken.contains("port 80 is already in use") && taken.contains("PORT=8080"),
            "{taken}"
        );

        let denied =
            Error::bind(addr(80), io::ErrorKind::PermissionDenied.into(), Some(1024)).to_string();
        for needle in [
            "port 80 is privileged",
            "(it is 1024 here)",
            "PORT=8080",
            "cap_net_bind_service",
            "net.ipv4.ip_unprivileged_port_start=0",
        ] {
            assert!(denied.contains(needle), "{needle:?} missing in {denied}");
        }
    }

    #[test]
    fn exit_codes() {
        let crash = Error::Crash {
            code: 42,
            reason: "at start".into(),
        };
        assert_eq!(crash.exit_code(), 42);
        assert_eq!(Error::Forced.exit_code(), 130);
        let timeout = Error::ShutdownTimeout {
            open: 1,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.exit_code(), 1);
    }
}
