//! [`Backoff`]: the kubelet's per-container back-off (client-go's `flowcontrol.Backoff`), used
//! for crash loops and image pulls.
//!
//! Its shape matters for what users see: the first restart after a crash is immediate (no entry
//! yet), the next ones wait 10 s, 20 s, 40 s... up to 5 min, measured from when the container
//! finished; a container that ran for twice the maximum (10 min) since the last restart starts
//! over at 10 s.

use std::time::{Duration, Instant};

/// One back-off entry.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entry: Option<Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            entry: None,
        }
    }

    fn expired(&self, event: Instant, entry: &Entry) -> bool {
        event.saturating_duration_since(entry.last_update) > self.max * 2
    }

    /// If `event` (a container's finish time) is still inside the back-off window at `now`,
    /// the time left to wait (`IsInBackOffSince`).
    pub fn remaining_since(&self, event: Instant, now: Instant) -> Option<Duration> {
        let entry = self.entry.as_ref()?;
        if self.expired(event, entry) {
            return None;
        }
        let elapsed = now.saturating_duration_since(event);
        (elapsed < entry.backoff).then(|| entry.backoff - elapsed)
    }

    /// Whether the last failure's window (from its update) is still open at `now`
    /// (`IsInBackOffSinceUpdate`, for image pulls).
    pub fn active(&self, now: Instant) -> bool {
        self.remaining(now).is_some()
    }

    /// The time left in the last failure's window at `now`, if it is still open.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let entry = self.entry.as_ref()?;
        let elapsed = now.saturating_duration_since(entry.last_update);
        (elapsed < entry.backoff).then(|| entry.backoff - elapsed)
    }

    /// Records a failure at `event`, observed at `now` (`Next`): the first or a long-stable one
    /// starts at the initial back-off, later ones double it up to the maximum.
    pub fn next(&mut self, event: Instant, now: Instant) {
        let backoff = match &self.entry {
            Some(entry) if !self.expired(event, entry) => (entry.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entry = Some(Entry {
            backoff,
            last_update: now,
        });
    }

    /// The current back-off, if any.
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|e| e.backoff)
    }
}

/// Go's `time.Duration` formatting for whole and fractional seconds (`10s`, `1m20s`, `5m0s`,
/// `200ms`), as kubelet messages print back-off values.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total = d.as_secs_f64();
    let hours = (total / 3600.0).floor() as u64;
    let minutes = ((total - hours as f64 * 3600.0) / 60.0).floor() as u64;
    let seconds = total - hours as f64 * 3600.0 - minutes as f64 * 60.0;
    let seconds = if seconds.fract().abs() < 1e-9 {
        format!("{}s", seconds as u64)
    } else {
        format!("{}s", (seconds * 1000.0).round() / 1000.0)
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_sequence_matches_upstream() {
        let s = Duration::from_secs;
        let t0 = Instant::now();
        let mut b = Backoff::new(s(10), s(300));
        // First crash: no entry, restart at once.
        assert_eq!(b.remaining_since(t0, t0), None);
        b.next(t0, t0);
        // Second crash 1 s later: wait 10 s from the finish.
        let t1 = t0 + s(1);
        assert_eq!(b.remaining_since(t1, t1), Some(s(10)));
        assert_eq!(b.remaining_since(t1, t1 + s(4)), Some(s(6)));
        assert_eq!(b.remaining_since(t1, t1 + s(10)), None);
        b.next(t1, t1 + s(10));
        assert_eq!(b.current(), Some(s(20)));
        let mut waits = vec![];
        let mut t = t1 + s(10);
        for _ in 0..6 {
            b.next(t, t);
            waits.push(b.current().unwrap().as_secs());
            t += s(1);
        }
        assert_eq!(waits, [40, 80, 160, 300, 300, 300]);
        // Ran for more than 10 min since the last restart: back to the start.
        let late = t + s(601);
        assert_eq!(b.remaining_since(late, late), None);
        b.next(late, late);
        assert_eq!(b.current(), Some(s(10)));
    }

    #[test]
    fn pull_backoff_is_measured_from_the_update() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        assert!(!b.active(t0));
        b.next(t0, t0);
        assert!(b.active(t0 + Duration::from_secs(9)));
        assert!(!b.active(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_millis(1500), "1.5s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
