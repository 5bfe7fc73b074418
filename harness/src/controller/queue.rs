//! The work queue every controller loop drains (a small `client-go` workqueue): keys are
//! deduplicated, served first in first out, can wait for a deadline (`add_after`) and back off
//! exponentially while their reconcile keeps failing (`add_rate_limited`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The first retry delay after a failure; it doubles per consecutive failure.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// The longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Keys waiting to be reconciled.
#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    /// Keys due later, by deadline (a key appears once, at its earliest deadline).
    waiting: BTreeMap<(Instant, u64), K>,
    deadlines: HashMap<K, (Instant, u64)>,
    failures: HashMap<K, u32>,
    sequence: u64,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            waiting: BTreeMap::new(),
            deadlines: HashMap::new(),
            failures: HashMap::new(),
            sequence: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// Queues `key` now, unless it is queued already.
    pub fn add(&mut self, key: K) {
        if let Some(at) = self.deadlines.remove(&key) {
            self.waiting.remove(&at);
        }
        if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Queues `key` once `delay` has passed (sooner if it is added or due earlier).
    pub fn add_after(&mut self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        if self.queued.contains(&key) {
            return;
        }
        let at = Instant::now() + delay;
        if let Some(&(current, _)) = self.deadlines.get(&key) {
            if current <= at {
                return;
            }
            let old = self.deadlines.remove(&key).expect("just read");
            self.waiting.remove(&old);
        }
        self.sequence += 1;
        let slot = (at, self.sequence);
        self.waiting.insert(slot, key.clone());
        self.deadlines.insert(key, slot);
    }

    /// Queues `key` after its backoff: 5 ms, doubling per consecutive failure, at most 30 s.
    pub fn add_rate_limited(&mut self, key: K) {
        let failures = self.failures.entry(key.clone()).or_default();
        let delay = BASE_DELAY
            .saturating_mul(2u32.saturating_pow(*failures))
            .min(MAX_DELAY);
        *failures = failures.saturating_add(1);
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key` after a successful reconcile.
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// The next key to work on, moving due keys to the ready list first.
    pub fn pop(&mut self, now: Instant) -> Option<K> {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.deadlines.remove(&key);
            if self.queued.insert(key.clone()) {
                self.ready.push_back(key);
            }
        }
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }

    /// When the earliest waiting key falls due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.first_key_value().map(|((at, _), _)| *at)
    }

    /// Whether a key is ready now.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue is handed the current time, so a test can look into the future without sleeping.
    #[test]
    fn dedup_fifo_and_deadlines() {
        let mut q = WorkQueue::default();
        let start = Instant::now();
        q.add("b");
        q.add("a");
        q.add("b");
        q.add_after("c", Duration::from_secs(5));
        q.add_after("c", Duration::from_secs(2));
        q.add_after("c", Duration::from_secs(9));
        assert_eq!(q.pop(start), Some("b"));
        assert_eq!(q.pop(start), Some("a"));
        assert_eq!(q.pop(start), None);
        let due = q.next_deadline().unwrap();
        assert!(due >= start + Duration::from_secs(2) && due < start + Duration::from_secs(3));
        assert_eq!(q.pop(start + Duration::from_secs(1)), None);
        assert_eq!(q.pop(start + Duration::from_secs(3)), Some("c"));
        assert_eq!(q.next_deadline(), None);
        // Adding a waiting key now makes it ready at once, and only once.
        q.add_after("d", Duration::from_secs(60));
        q.add("d");
        assert_eq!(q.pop(start), Some("d"));
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop(start + Duration::from_secs(120)), None);
        // A queued key ignores a later deadline.
        q.add("e");
        q.add_after("e", Duration::from_secs(1));
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut q = WorkQueue::default();
        for expected_ms in [5u64, 10, 20, 40, 80] {
            let before = Instant::now();
            q.add_rate_limited("k");
            let due = q.next_deadline().unwrap();
            let delay = due - before;
            assert!(
                delay >= Duration::from_millis(expected_ms)
                    && delay < Duration::from_millis(expected_ms + 50),
                "{delay:?} for {expected_ms} ms"
            );
            assert_eq!(q.pop(due), Some("k"));
        }
        q.forget(&"k");
        let before = Instant::now();
        q.add_rate_limited("k");
        assert!(q.next_deadline().unwrap() - before < Duration::from_millis(55));
        for _ in 0..40 {
            q.add_rate_limited("k");
            let due = q.next_deadline().unwrap();
            assert!(due - Instant::now() <= MAX_DELAY);
            q.pop(due);
        }
    }
}
