//! [`Ipam`]: the cluster's address book. It hands out pod IPs and Service cluster IPs from two
//! loopback ranges, and NodePorts from 30000-32767.
//!
//! Every pod is a real process with its own 127.x.y.z address (`status.podIP`), and every Service
//! gets a cluster IP that the Service proxy listens on; on Linux any 127.0.0.0/8 address binds
//! without configuration, so no network setup is needed.
//!
//! Two rules shape the allocator:
//! - **Cool-down.** A released value is not handed out again until `cooldown` has passed, so a
//!   new pod never inherits the address of one that just died while clients may still hold
//!   connections (or TIME_WAIT entries) to it. Allocation is next-fit from a moving cursor, so in
//!   the large IP ranges reuse only happens after a full lap anyway; the cool-down matters for
//!   small ranges (NodePorts) and tests. When everything else is taken, the value that has cooled
//!   longest is reused rather than failing.
//! - **Seed.** Two harnesses on one machine share 127.0.0.0/8 and the NodePort range. Each cluster
//!   passes a random `seed` that moves the starting cursor, so they rarely collide. Nothing
//!   probes the machine: a collision shows up later as a bind failure, which the Service proxy
//!   and the kubelet report.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Ranges and timing of an [`Ipam`].
#[derive(Clone, Debug)]
pub struct IpamConfig {
    /// Pod IPs, inclusive. Addresses ending in `.0` or `.255` are skipped.
    pub pod_ips: RangeInclusive<Ipv4Addr>,
    /// Service cluster IPs, inclusive; `.0`/`.255` endings are skipped.
    pub service_ips: RangeInclusive<Ipv4Addr>,
    /// NodePorts, inclusive (upstream's default `--service-node-port-range`).
    pub node_ports: RangeInclusive<u16>,
    /// How long a released value rests before it is handed out again.
    pub cooldown: Duration,
    /// Moves the starting point of every range, so that two clusters rarely collide.
    pub seed: u64,
}

impl Default for IpamConfig {
    fn default() -> IpamConfig {
        IpamConfig {
            pod_ips: Ipv4Addr::new(127, 1, 0, 1)..=Ipv4Addr::new(127, 63, 255, 254),
            service_ips: Ipv4Addr::new(127, 96, 0, 1)..=Ipv4Addr::new(127, 127, 255, 254),
            node_ports: 30000..=32767,
            cooldown: Duration::from_secs(60),
            seed: 0,
        }
    }
}

/// Allocates pod IPs, Service cluster IPs and NodePorts. Thread-safe; share it in an `Arc`.
#[derive(Debug)]
pub struct Ipam {
    pods: Mutex<Pool>,
    services: Mutex<Pool>,
    node_ports: Mutex<Pool>,
}

impl Default for Ipam {
    fn default() -> Ipam {
        Ipam::with_config(IpamConfig::default())
    }
}

impl Ipam {
    /// The default ranges, starting at a point derived from `seed` (pass a random one per
    /// cluster; 0 starts at the beginning of each range).
    pub fn new(seed: u64) -> Ipam {
        Ipam::with_config(IpamConfig {
            seed,
            ..IpamConfig::default()
        })
    }

    /// Custom ranges and cool-down.
    pub fn with_config(config: IpamConfig) -> Ipam {
        let ip_range = |r: &RangeInclusive<Ipv4Addr>| u32::from(*r.start())..=u32::from(*r.end());
        // Different multipliers keep the three cursors from lining up with one another.
        let seed = config.seed;
        Ipam {
            pods: Mutex::new(Pool::new(
                "pod IP",
                ip_range(&config.pod_ips),
                true,
                seed,
                config.cooldown,
            )),
            services: Mutex::new(Pool::new(
                "service IP",
                ip_range(&config.service_ips),
                true,
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                config.cooldown,
            )),
            node_ports: Mutex::new(Pool::new(
                "node port",
                u32::from(*config.node_ports.start())..=u32::from(*config.node_ports.end()),
                false,
                seed.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
                config.cooldown,
            )),
        }
    }

    /// A fresh pod IP.
    pub fn allocate_pod_ip(&self) -> Result<Ipv4Addr> {
        lock(&self.pods)
            .allocate(Instant::now())
            .map(Ipv4Addr::from)
    }

    /// Gives a pod IP back; it rests for the cool-down first. Unknown addresses are ignored.
    pub fn release_pod_ip(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            lock(&self.pods).release(u32::from(v4), Instant::now());
        }
    }

    /// A fresh Service cluster IP.
    pub fn allocate_service_ip(&self) -> Result<Ipv4Addr> {
        lock(&self.services)
            .allocate(Instant::now())
            .map(Ipv4Addr::from)
    }

    /// Marks a cluster IP chosen by the user (`spec.clusterIP`) as taken. Returns false when it
    /// was already taken; addresses outside the range are not tracked and return true.
    pub fn reserve_service_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => lock(&self.services).reserve(u32::from(v4)),
            IpAddr::V6(_) => true,
        }
    }

    /// Gives a cluster IP back, after the cool-down.
    pub fn release_service_ip(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            lock(&self.services).release(u32::from(v4), Instant::now());
        }
    }

    /// A fresh NodePort.
    pub fn allocate_node_port(&self) -> Result<u16> {
        // The pool's range is built from u16 bounds, so every value fits.
        lock(&self.node_ports)
            .allocate(Instant::now())
            .map(|p| p as u16)
    }

    /// Marks a NodePort chosen by the user as taken; false when it was already taken. Ports
    /// outside the range are not tracked and return true.
    pub fn reserve_node_port(&self, port: u16) -> bool {
        lock(&self.node_ports).reserve(u32::from(port))
    }

    /// Gives a NodePort back, after the cool-down.
    pub fn release_node_port(&self, port: u16) {
        lock(&self.node_ports).release(u32::from(port), Instant::now());
    }
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One range of values (IPv4 addresses as u32, or ports) with a next-fit cursor.
#[derive(Debug)]
struct Pool {
    what: &'static str,
    range: RangeInclusive<u32>,
    /// Skip values whose last octet is 0 or 255 (network and broadcast lookalikes).
    skip_edges: bool,
    cursor: u32,
    used: HashSet<u32>,
    /// Released values and when they were released.
    cooling: HashMap<u32, Instant>,
    cooldown: Duration,
}

impl Pool {
    fn new(
        what: &'static str,
        range: RangeInclusive<u32>,
        skip_edges: bool,
        seed: u64,
        cooldown: Duration,
    ) -> Pool {
        let size = u64::from(range.end() - range.start()) + 1;
        let cursor = range.start() + (seed % size) as u32;
        Pool {
            what,
            range,
            skip_edges,
            cursor,
            used: HashSet::new(),
            cooling: HashMap::new(),
            cooldown,
        }
    }

    fn valid(&self, value: u32) -> bool {
        self.range.contains(&value) && !(self.skip_edges && matches!(value & 0xff, 0 | 255))
    }

    fn next(&self, value: u32) -> u32 {
        if value >= *self.range.end() {
            *self.range.start()
        } else {
            value + 1
        }
    }

    fn allocate(&mut self, now: Instant) -> Result<u32> {
        let size = u64::from(self.range.end() - self.range.start()) + 1;
        let mut candidate = self.cursor;
        let mut oldest_cooling: Option<(u32, Instant)> = None;
        for _ in 0..size {
            let here = candidate;
            candidate = self.next(candidate);
            if !self.valid(here) || self.used.contains(&here) {
                continue;
            }
            match self.cooling.get(&here) {
                Some(&since) if now.saturating_duration_since(since) < self.cooldown => {
                    if oldest_cooling.is_none_or(|(_, t)| since < t) {
                        oldest_cooling = Some((here, since));
                    }
                }
                _ => return Ok(self.take(here, candidate)),
            }
        }
        match oldest_cooling {
            Some((value, _)) => Ok(self.take(value, self.next(value))),
            None => Err(Error::io(
                format!(
                    "failed to allocate a {}: range {}-{} is full",
                    self.what,
                    self.show(*self.range.start()),
                    self.show(*self.range.end())
                ),
                io::Error::from(io::ErrorKind::AddrNotAvailable),
            )),
        }
    }

    fn take(&mut self, value: u32, cursor: u32) -> u32 {
        self.cooling.remove(&value);
        self.used.insert(value);
        self.cursor = cursor;
        value
    }

    fn reserve(&mut self, value: u32) -> bool {
        if !self.range.contains(&value) {
            return true;
        }
        self.cooling.remove(&value);
        self.used.insert(value)
    }

    fn release(&mut self, value: u32, now: Instant) {
        if self.used.remove(&value) {
            self.cooling.insert(value, now);
        }
        if self.cooling.len() > 4096 {
            let cooldown = self.cooldown;
            self.cooling
                .retain(|_, since| now.saturating_duration_since(*since) < cooldown);
        }
    }

    fn show(&self, value: u32) -> String {
        if self.skip_edges {
            Ipv4Addr::from(value).to_string()
        } else {
            value.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64, cooldown: Duration) -> Ipam {
        Ipam::with_config(IpamConfig {
            pod_ips: Ipv4Addr::new(127, 1, 0, 254)..=Ipv4Addr::new(127, 1, 1, 2),
            service_ips: Ipv4Addr::new(127, 96, 0, 1)..=Ipv4Addr::new(127, 96, 0, 3),
            node_ports: 30000..=30002,
            cooldown,
            seed,
        })
    }

    #[test]
    fn skips_zero_and_broadcast_endings() {
        let ipam = small(0, Duration::ZERO);
        let got: Vec<Ipv4Addr> = (0..3).map(|_| ipam.allocate_pod_ip().unwrap()).collect();
        assert_eq!(
            got,
            [
                Ipv4Addr::new(127, 1, 0, 254),
                Ipv4Addr::new(127, 1, 1, 1),
                Ipv4Addr::new(127, 1, 1, 2)
            ]
        );
        let err = ipam.allocate_pod_ip().unwrap_err().to_string();
        assert_eq!(
            err,
            "failed to allocate a pod IP: range 127.1.0.254-127.1.1.2 is full"
        );
    }

    #[test]
    fn released_values_cool_down_before_reuse() {
        let mut pool = Pool::new("node port", 1..=3, false, 0, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(pool.allocate(t0).unwrap(), 1);
        pool.release(1, t0);
        // 1 is cooling: the next two free values come first.
        assert_eq!(pool.allocate(t0).unwrap(), 2);
        assert_eq!(pool.allocate(t0).unwrap(), 3);
        pool.release(2, t0 + Duration::from_secs(1));
        // Only cooling values are left: the one released earliest is reused.
        assert_eq!(pool.allocate(t0 + Duration::from_secs(2)).unwrap(), 1);
        // Once the cool-down has passed, 2 is an ordinary free value.
        assert_eq!(pool.allocate(t0 + Duration::from_secs(62)).unwrap(), 2);
        assert!(pool.allocate(t0 + Duration::from_secs(62)).is_err());
    }

    #[test]
    fn seed_moves_the_starting_point() {
        let a = small(0, Duration::ZERO);
        let b = small(1, Duration::ZERO);
        assert_eq!(a.allocate_node_port().unwrap(), 30000);
        assert_ne!(b.allocate_node_port().unwrap(), 30000);
        let default = Ipam::new(0);
        assert_eq!(
            default.allocate_service_ip().unwrap(),
            Ipv4Addr::new(127, 96, 0, 1)
        );
        assert_eq!(
            default.allocate_pod_ip().unwrap(),
            Ipv4Addr::new(127, 1, 0, 1)
        );
        let seeded = Ipam::new(123_456_789);
        let ip = seeded.allocate_pod_ip().unwrap();
        assert_ne!(ip, Ipv4Addr::new(127, 1, 0, 1));
        assert!(!matches!(ip.octets()[3], 0 | 255));
    }

    #[test]
    fn reserved_values_are_skipped_and_reported() {
        let ipam = small(0, Duration::ZERO);
        assert!(ipam.reserve_node_port(30000));
        assert!(!ipam.reserve_node_port(30000));
        assert!(ipam.reserve_node_port(80), "outside the range: not tracked");
        assert_eq!(ipam.allocate_node_port().unwrap(), 30001);
        let user_ip = IpAddr::V4(Ipv4Addr::new(127, 96, 0, 1));
        assert!(ipam.reserve_service_ip(user_ip));
        assert_eq!(
            ipam.allocate_service_ip().unwrap(),
            Ipv4Addr::new(127, 96, 0, 2)
        );
        ipam.release_service_ip(user_ip);
        assert_eq!(
            ipam.allocate_service_ip().unwrap(),
            Ipv4Addr::new(127, 96, 0, 3)
        );
        assert_eq!(
            ipam.allocate_service_ip().unwrap(),
            Ipv4Addr::new(127, 96, 0, 1)
        );
    }

    #[test]
    fn is_shared_across_threads() {
        let ipam = std::sync::Arc::new(Ipam::new(7));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ipam = ipam.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .map(|_| ipam.allocate_pod_ip().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for ip in h.join().unwrap() {
                assert!(all.insert(ip), "{ip} handed out twice");
            }
        }
        assert_eq!(all.len(), 2000);
    }
}
