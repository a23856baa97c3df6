//! Bounded per-key limits for tables keyed by attacker input.
//!
//! A proxy or server that remembers something per client address, origin,
//! account or user name hands the sender the size of its table. Every table
//! here has a hard capacity and evicts its least recently used key in O(1)
//! (an [`lru::LruCache`]), so a flood of fresh keys costs memory bounded by
//! the capacity and never a scan of the table.
//!
//! - [`Buckets`]: a token bucket per key (throttle decisions, report intake).
//! - [`Attempts`]: failed attempts per key with a lockout (sign-in, step-up
//!   codes), counted *before* the attempt is checked so parallel guesses
//!   cannot all slip in between the check and the count.
//!
//! What eviction costs: a key pushed out by a flood forgets its history. A key
//! in use is touched on every request and so stays the most recently used;
//! to make a table forget an active attacker, the flood must bring more new
//! keys than the capacity between two of the attacker's own requests.
//!
//! ```
//! use std::num::NonZeroUsize;
//! use std::time::{Duration, Instant};
//! use vakt_limit::{AttemptPolicy, Attempts};
//!
//! let policy = AttemptPolicy { allowed: 3, window: Duration::from_secs(60), lockout: Duration::from_secs(300) };
//! let mut attempts = Attempts::new(policy, NonZeroUsize::new(1000).unwrap());
//! let now = Instant::now();
//! for _ in 0..3 {
//!     attempts.begin(&["ip:192.0.2.7"], now).unwrap(); // then the code was wrong
//! }
//! let wait = attempts.begin(&["ip:192.0.2.7"], now).unwrap_err();
//! assert_eq!(wait, Duration::from_secs(300));
//! ```

use std::collections::VecDeque;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;

/// A token bucket per key: `per_minute` refill, `burst` at most.
pub struct Buckets<K: Hash + Eq> {
    table: LruCache<K, Bucket>,
    rate_per_sec: f64,
    burst: f64,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq> Buckets<K> {
    /// `per_minute` tokens a minute (at least one), bursts of `burst` (at
    /// least one), for at most `capacity` keys.
    pub fn new(per_minute: u32, burst: u32, capacity: NonZeroUsize) -> Self {
        Buckets {
            table: LruCache::new(capacity),
            rate_per_sec: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes one token from `key`'s bucket; `Err(wait)` says how long until
    /// one is there. A key not seen (or evicted) starts with a full bucket.
    pub fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.rate_per_sec, self.burst);
        let b = self.table.get_or_insert_mut(key, || Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Keys remembered now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// How many attempts a key may make, and what happens after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Attempts allowed in `window`; the one that reaches it starts a lockout.
    pub allowed: u32,
    pub window: Duration,
    /// How long a key is refused once it has used up its attempts.
    pub lockout: Duration,
}

/// Failed attempts per key, with a lockout. See the crate doc.
pub struct Attempts<K: Hash + Eq> {
    table: LruCache<K, Record>,
    policy: AttemptPolicy,
}

#[derive(Default)]
struct Record {
    /// Times of the attempts still in the window, at most `allowed`.
    times: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// An attempt that was let through and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The most attempts any of the keys has in the window, this one included.
    pub count: u32,
    /// This attempt used up a key's allowance: the key is locked out from now
    /// on (worth an alert), unless the attempt succeeds.
    pub locks: bool,
}

impl<K: Hash + Eq + Clone> Attempts<K> {
    pub fn new(policy: AttemptPolicy, capacity: NonZeroUsize) -> Self {
        Attempts {
            table: LruCache::new(capacity),
            policy,
        }
    }

    /// Counts an attempt against every key, or refuses it with how long the
    /// longest lockout among the keys still lasts. A refused attempt is not
    /// counted. Call [`Attempts::succeeded`] when the attempt turns out right.
    pub fn begin(&mut self, keys: &[K], now: Instant) -> Result<Attempt, Duration> {
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(r) = self.table.get_mut(key) {
                r.expire(now, self.policy.window);
                if let Some(until) = r.locked_until {
                    wait = wait.max(until.saturating_duration_since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        let mut attempt = Attempt {
            count: 0,
            locks: false,
        };
        let allowed = self.policy.allowed.max(1) as usize;
        for key in keys {
            let r = self.table.get_or_insert_mut(key.clone(), Record::default);
            r.times.push_back(now);
            while r.times.len() > allowed {
                r.times.pop_front();
            }
            attempt.count = attempt.count.max(r.times.len() as u32);
            if r.times.len() >= allowed {
                r.locked_until = Some(now + self.policy.lockout);
                attempt.locks = true;
            }
        }
        Ok(attempt)
    }

    /// The attempt begun for `keys` was right: it is taken back, and a lockout
    /// it started is lifted. Earlier failures stay counted.
    pub fn succeeded(&mut self, keys: &[K]) {
        let allowed = self.policy.allowed.max(1) as usize;
        for key in keys {
            if let Some(r) = self.table.get_mut(key) {
                r.times.pop_back();
                if r.times.len() < allowed {
                    r.locked_until = None;
                }
            }
        }
    }

    /// Attempts `key` has in the window now.
    pub fn count(&mut self, key: &K, now: Instant) -> u32 {
        let window = self.policy.window;
        self.table.get_mut(key).map_or(0, |r| {
            r.expire(now, window);
            r.times.len() as u32
        })
    }

    /// Keys remembered now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl Record {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.times.pop_front();
        }
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
            self.times.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    const POLICY: AttemptPolicy = AttemptPolicy {
        allowed: 5,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(600),
    };

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills_at_its_rate() {
        let mut b = Buckets::new(60, 3, cap(10));
        let t = Instant::now();
        for _ in 0..3 {
            assert!(b.take("a", t).is_ok());
        }
        let wait = b.take("a", t).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 0.01, "{wait:?}");
        assert!(b.take("b", t).is_ok(), "keys have their own buckets");
        assert!(b.take("a", t + Duration::from_secs(1)).is_ok());
        assert!(b.take("a", t + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_flood_of_new_keys_stays_within_capacity_and_keeps_the_active_key() {
        let mut b = Buckets::new(60, 1, cap(1000));
        let t = Instant::now();
        assert!(b.take("attacker".to_string(), t).is_ok());
        for i in 0..100_000 {
            let _ = b.take(format!("flood-{i}"), t);
            if i % 500 == 0 {
                // The throttled key keeps asking, and stays throttled.
                assert!(b.take("attacker".to_string(), t).is_err(), "at {i}");
            }
        }
        assert_eq!(b.len(), 1000);
    }

    #[test]
    fn attempts_lock_out_at_the_allowance_and_refuse_without_counting() {
        let mut a = Attempts::new(POLICY, cap(10));
        let t = Instant::now();
        for n in 1..=4 {
            let got = a.begin(&["ip:x", "user:y"], t).unwrap();
            assert_eq!((got.count, got.locks), (n, false));
        }
        let fifth = a.begin(&["ip:x", "user:y"], t).unwrap();
        assert!(fifth.locks);
        assert_eq!(
            a.begin(&["user:y"], t).unwrap_err(),
            Duration::from_secs(600)
        );
        assert_eq!(
            a.begin(&["ip:other", "user:y"], t + Duration::from_secs(100))
                .unwrap_err(),
            Duration::from_secs(500),
            "a locked name is refused from any address"
        );
        assert_eq!(
            a.count(&"ip:other", t),
            0,
            "refused attempts are not counted"
        );
        assert!(a.begin(&["user:y"], t + Duration::from_secs(600)).is_ok());
    }

    #[test]
    fn attempts_begun_in_parallel_are_all_counted_before_any_is_checked() {
        // 100 guesses arrive together: only `allowed` get to be checked.
        let mut a = Attempts::new(POLICY, cap(10));
        let t = Instant::now();
        let let_through = (0..100).filter(|_| a.begin(&["user:y"], t).is_ok()).count();
        assert_eq!(let_through, 5);
    }

    #[test]
    fn a_right_attempt_is_taken_back_and_lifts_the_lock_it_started() {
        let mut a = Attempts::new(POLICY, cap(10));
        let t = Instant::now();
        for _ in 0..4 {
            a.begin(&["user:y"], t).unwrap();
        }
        assert!(a.begin(&["user:y"], t).unwrap().locks);
        a.succeeded(&["user:y"]);
        assert_eq!(a.count(&"user:y", t), 4);
        assert!(
            a.begin(&["user:y"], t).is_ok(),
            "not locked after the right code"
        );
    }

    #[test]
    fn old_attempts_leave_the_window() {
        let mut a = Attempts::new(POLICY, cap(10));
        let t = Instant::now();
        for _ in 0..4 {
            a.begin(&["k"], t).unwrap();
        }
        let later = t + Duration::from_secs(61);
        assert_eq!(a.count(&"k", later), 0);
        assert!(!a.begin(&["k"], later).unwrap().locks);
    }

    #[test]
    fn attempts_stay_within_capacity_under_a_flood_of_names() {
        let mut a = Attempts::new(POLICY, cap(100));
        let t = Instant::now();
        for i in 0..10_000 {
            let _ = a.begin(&[format!("user:{i}")], t);
        }
        assert_eq!(a.len(), 100);
    }
}
