//! [`Balancer`]: picks the backend of each new connection to one service port, as IPVS's `rr`
//! scheduler does: round-robin per connection over the ready endpoints, optionally pinned per
//! client IP (`sessionAffinity: ClientIP`).
//!
//! The backend list is swapped whole when Endpoints change; a connection reads it once, when it
//! is accepted, so a change applies to the next connection and never touches established ones.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How many affinity entries are kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// The backends of one service port and the scheduler state.
#[derive(Debug, Default)]
pub struct Balancer {
    current: RwLock<Arc<Snapshot>>,
    next: AtomicUsize,
    sessions: Mutex<HashMap<IpAddr, Session>>,
}

#[derive(Debug, Default, PartialEq)]
struct Snapshot {
    backends: Vec<SocketAddr>,
    /// The ClientIP affinity timeout, when affinity is on.
    affinity: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    backend: SocketAddr,
    last_used: Instant,
}

impl Balancer {
    /// Replaces the backend list and affinity setting. Affinity entries pointing at a backend
    /// that left are dropped. Returns whether anything changed.
    pub fn update(&self, backends: Vec<SocketAddr>, affinity: Option<Duration>) -> bool {
        let snapshot = Snapshot { backends, affinity };
        {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            if **current == snapshot {
                return false;
            }
            *current = Arc::new(snapshot);
        }
        let current = self.snapshot();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if current.affinity.is_none() {
            sessions.clear();
        } else {
            sessions.retain(|_, s| current.backends.contains(&s.backend));
        }
        true
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current ready backends.
    pub fn backends(&self) -> Vec<SocketAddr> {
        self.snapshot().backends.clone()
    }

    /// The backend for a new connection from `client`; `None` when there is no ready endpoint.
    pub fn pick(&self, client: IpAddr) -> Option<SocketAddr> {
        self.pick_at(client, Instant::now(), None)
    }

    /// The backend for a second attempt after `failed` refused the connection: the next one in
    /// round-robin order that is not `failed`, if there is one.
    pub fn pick_other(&self, client: IpAddr, failed: SocketAddr) -> Option<SocketAddr> {
        self.pick_at(client, Instant::now(), Some(failed))
            .filter(|&b| b != failed)
    }

    fn pick_at(
        &self,
        client: IpAddr,
        now: Instant,
        avoid: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let snapshot = self.snapshot();
        let backends = &snapshot.backends;
        if backends.is_empty() {
            return None;
        }
        let Some(timeout) = snapshot.affinity else {
            return Some(self.round_robin(backends, avoid));
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = sessions.get_mut(&client)
            && now.saturating_duration_since(session.last_used) < timeout
            && backends.contains(&session.backend)
            && Some(session.backend) != avoid
        {
            session.last_used = now;
            return Some(session.backend);
        }
        let backend = self.round_robin(backends, avoid);
        if sessions.len() >= SWEEP_AT {
            sessions.retain(|_, s| now.saturating_duration_since(s.last_used) < timeout);
        }
        sessions.insert(
            client,
            Session {
                backend,
                last_used: now,
            },
        );
        Some(backend)
    }

    fn round_robin(&self, backends: &[SocketAddr], avoid: Option<SocketAddr>) -> SocketAddr {
        let pick = backends[self.next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        if Some(pick) == avoid && backends.len() > 1 {
            return backends[self.next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([127, 1, 0, i], 8080)))
            .collect()
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, i])
    }

    #[test]
    fn round_robin_visits_every_backend_in_turn() {
        let b = Balancer::default();
        assert_eq!(b.pick(client(1)), None);
        b.update(addrs(3), None);
        let picks: Vec<_> = (0..6).map(|_| b.pick(client(1)).unwrap()).collect();
        let all = addrs(3);
        assert_eq!(picks, [all.clone(), all].concat());
    }

    #[test]
    fn update_reports_change_and_applies_to_next_pick() {
        let b = Balancer::default();
        assert!(b.update(addrs(2), None));
        assert!(!b.update(addrs(2), None));
        assert!(b.update(addrs(1), None));
        for _ in 0..3 {
            assert_eq!(b.pick(client(1)), Some(addrs(1)[0]));
        }
        assert!(b.update(Vec::new(), None));
        assert_eq!(b.pick(client(1)), None);
    }

    #[test]
    fn affinity_pins_a_client_until_timeout_or_backend_loss() {
        let b = Balancer::default();
        let timeout = Duration::from_secs(10);
        b.update(addrs(3), Some(timeout));
        let t0 = Instant::now();
        let first = b.pick_at(client(1), t0, None).unwrap();
        let other = b.pick_at(client(2), t0, None).unwrap();
        assert_ne!(first, other, "new clients still go round-robin");
        for s in 1..5 {
            let at = t0 + Duration::from_secs(s * 5);
            assert_eq!(
                b.pick_at(client(1), at, None),
                Some(first),
                "refreshed on use"
            );
        }
        // Idle past the timeout: scheduled afresh (round-robin moves on).
        let late = t0 + Duration::from_secs(20 + 11);
        assert_ne!(b.pick_at(client(1), late, None), Some(first));
        // The pinned backend leaves: the client moves to a ready one.
        let pinned = b.pick_at(client(3), late, None).unwrap();
        let remaining: Vec<_> = addrs(3).into_iter().filter(|a| *a != pinned).collect();
        b.update(remaining.clone(), Some(timeout));
        let moved = b.pick_at(client(3), late, None).unwrap();
        assert!(remaining.contains(&moved));
    }

    #[test]
    fn pick_other_avoids_the_failed_backend() {
        let b = Balancer::default();
        b.update(addrs(1), None);
        assert_eq!(b.pick_other(client(1), addrs(1)[0]), None);
        b.update(addrs(2), None);
        for _ in 0..4 {
            assert_eq!(b.pick_other(client(1), addrs(2)[0]), Some(addrs(2)[1]));
        }
    }
}
