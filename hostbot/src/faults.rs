//! Fault injection: the knobs that make an instance misbehave in the ways real services do, so
//! that rollouts, probes, Services and shutdown handling can be tested against them.
//!
//! [`Faults`] is the configuration (all off by default); [`FaultState`] is the per-instance
//! runtime part (the request counter behind "crash after N requests"). Delays and the error rate
//! apply to the application routes (`/` and `/config`) only, never to probes, toggles or
//! metrics, so that a flaky instance stays observable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

/// How an instance should misbehave. Every field's zero value means "behave".
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Readiness stays failing for this long after start (a slow warm-up).
    pub slow_start: Duration,
    /// Readiness never succeeds on its own (`POST /readyz/enable` still works).
    pub never_ready: bool,
    /// Exit with [`crash_exit_code`](Self::crash_exit_code) right after start.
    pub crash_at_start: bool,
    /// Serve this many application requests, then crash when the next one arrives (that
    /// request gets no answer, as with a real crash).
    pub crash_after_requests: Option<u64>,
    /// Crash this long after start.
    pub crash_after: Option<Duration>,
    /// The exit code of the crash faults.
    pub crash_exit_code: u8,
    /// Every application response waits this long...
    pub response_delay: Duration,
    /// ...plus a uniformly random extra delay below this.
    pub response_jitter: Duration,
    /// Fraction (0.0 to 1.0) of application requests answered with 500.
    pub error_rate: f64,
    /// A graceful shutdown request (SIGTERM, SIGINT, or the cancellation token) is logged and
    /// ignored, so that the SIGKILL at the end of the grace period can be observed. A second
    /// signal, or the force token, still stops the instance.
    pub ignore_sigterm: bool,
    /// After the connections are closed, shutdown takes this much longer (slow cleanup).
    pub slow_shutdown: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            slow_start: Duration::ZERO,
            never_ready: false,
            crash_at_start: false,
            crash_after_requests: None,
            crash_after: None,
            crash_exit_code: 1,
            response_delay: Duration::ZERO,
            response_jitter: Duration::ZERO,
            error_rate: 0.0,
            ignore_sigterm: false,
            slow_shutdown: Duration::ZERO,
        }
    }
}

impl Faults {
    /// Whether any knob is set; startup logs the active faults so nobody debugs them by accident.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// The delay for one application response: the fixed part plus a random share of the jitter.
    pub(crate) fn response_delay(&self) -> Duration {
        if self.response_jitter.is_zero() {
            return self.response_delay;
        }
        let jitter = rand::rng().random_range(Duration::ZERO..self.response_jitter);
        self.response_delay + jitter
    }

    /// Whether this application request should fail with 500.
    pub(crate) fn inject_error(&self) -> bool {
        self.error_rate > 0.0 && rand::rng().random_bool(self.error_rate.clamp(0.0, 1.0))
    }
}

/// What the fault counters of one running instance have seen.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    app_requests: AtomicU64,
}

impl FaultState {
    /// Counts one application request and tells whether it is the one that must crash.
    pub(crate) fn count_request(&self, faults: &Faults) -> bool {
        let seen = self.app_requests.fetch_add(1, Ordering::Relaxed);
        faults
            .crash_after_requests
            .is_some_and(|limit| seen >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_inject_nothing() {
        let faults = Faults::default();
        assert!(!faults.any());
        assert_eq!(faults.response_delay(), Duration::ZERO);
        assert!((0..1000).all(|_| !faults.inject_error()));
        let state = FaultState::default();
        assert!((0..1000).all(|_| !state.count_request(&faults)));
    }

    #[test]
    fn crash_comes_with_the_request_after_the_limit() {
        let faults = Faults {
            crash_after_requests: Some(3),
            ..Faults::default()
        };
        let state = FaultState::default();
        let crashes: Vec<bool> = (0..5).map(|_| state.count_request(&faults)).collect();
        assert_eq!(crashes, [false, false, false, true, true]);
    }

    #[test]
    fn delay_stays_within_fixed_plus_jitter() {
        let faults = Faults {
            response_delay: Duration::from_millis(100),
            response_jitter: Duration::from_millis(50),
            ..Faults::default()
        };
        for _ in 0..1000 {
            let delay = faults.response_delay();
            assert!(delay >= Duration::from_millis(100) && delay < Duration::from_millis(150));
        }
    }

    #[test]
    fn error_rate_extremes_are_exact() {
        let always = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        assert!((0..1000).all(|_| always.inject_error()));
        let out_of_range = Faults {
            error_rate: 7.0,
            ..Faults::default()
        };
        assert!(out_of_range.inject_error());
    }
}
