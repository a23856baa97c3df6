//! Bounded per-key state shared by the detectors.
//!
//! Everything here is sized by keys (accounts, hosts, peer groups), never
//! by events, and forgets in event time so a replay behaves like live.

use cardinality_estimator::CardinalityEstimator;
use rustc_hash::FxHashMap;
use vakt_event::stats::quantile;
use vakt_event::time::DAY;
use vakt_event::Timestamp;

/// Per-key state with the event time it was last touched; idle keys are
/// dropped by [`Keyed::evict`].
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Keyed<V> {
    map: FxHashMap<u32, (Timestamp, V)>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            map: FxHashMap::default(),
        }
    }
}

impl<V> Keyed<V> {
    /// The state for `key`, created with `init` on first sight; marks it touched at `now`.
    pub fn touch(&mut self, key: u32, now: Timestamp, init: impl FnOnce() -> V) -> &mut V {
        let slot = self.map.entry(key).or_insert_with(|| (now, init()));
        if now > slot.0 {
            slot.0 = now;
        }
        &mut slot.1
    }

    pub fn get(&self, key: u32) -> Option<&V> {
        self.map.get(&key).map(|(_, v)| v)
    }

    pub fn evict(&mut self, horizon: Timestamp) {
        self.map.retain(|_, (seen, _)| *seen >= horizon);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|(_, v)| v)
    }
}

/// Distinct items (customer ids) in a few bytes while small and a few
/// hundred at most: a HyperLogLog that starts sparse.
pub type Distinct = CardinalityEstimator<str>;

/// Counts per UTC day over the last [`DailyCounts::DAYS`] days: the
/// baseline "how much does this key do on a normal day".
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DailyCounts {
    /// Day number (days since epoch) of `today`.
    day: i32,
    today: u32,
    /// Completed days, oldest first from `head`; saturating at 65,535,
    /// which is far above any person's day and keeps the state small.
    past: [u16; Self::DAYS],
    filled: u8,
    head: u8,
}

impl DailyCounts {
    pub const DAYS: usize = 14;

    /// Adds `n` at `at`. Days the key was idle between two active days are
    /// recorded as zeros, except weekends and long gaps are kept out by the
    /// caller's choice of `count_idle_days`.
    pub fn add(&mut self, at: Timestamp, n: u32, count_idle_days: bool) {
        let day = at.0.div_euclid(DAY) as i32;
        if self.filled == 0 && self.today == 0 && self.day == 0 {
            self.day = day;
        }
        if day > self.day {
            self.push(self.today);
            if count_idle_days {
                for _ in 0..(day - self.day - 1).min(Self::DAYS as i32) {
                    self.push(0);
                }
            }
            self.day = day;
            self.today = 0;
        }
        // Late events of an already closed day count toward today: close enough.
        self.today = self.today.saturating_add(n);
    }

    fn push(&mut self, v: u32) {
        self.past[self.head as usize] = v.min(u16::MAX as u32) as u16;
        self.head = ((self.head as usize + 1) % Self::DAYS) as u8;
        self.filled = (self.filled + 1).min(Self::DAYS as u8);
    }

    pub fn today(&self) -> u32 {
        self.today
    }

    /// Completed days recorded.
    pub fn days(&self) -> usize {
        self.filled as usize
    }

    pub fn history(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.filled as usize;
        (0..n)
            .map(move |i| self.past[(self.head as usize + Self::DAYS - n + i) % Self::DAYS] as u32)
    }

    pub fn mean(&self) -> f64 {
        if self.filled == 0 {
            return 0.0;
        }
        self.history().map(f64::from).sum::<f64>() / self.filled as f64
    }

    pub fn max(&self) -> u32 {
        self.history().max().unwrap_or(0)
    }

    pub fn quantile(&self, q: f64) -> f64 {
        let mut v: Vec<u32> = self.history().collect();
        v.sort_unstable();
        f64::from(quantile(&v, q))
    }
}

/// A bounded sample of recent values of a peer group (e.g. accounts'
/// daily lookups): the "what do others in the same role do" baseline.
///
/// Quantiles are read on hot paths, so the sorted copy is kept and only
/// refreshed after [`PeerSample::REFRESH`] new values: a baseline a few
/// values behind is as good as a fresh one, and a sort per event is not.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PeerSample {
    values: Vec<u32>,
    next: usize,
    pushes: u64,
    sorted: std::cell::RefCell<(u64, Vec<u32>)>,
}

impl Default for PeerSample {
    fn default() -> Self {
        PeerSample {
            values: Vec::with_capacity(16),
            next: 0,
            pushes: 0,
            sorted: Default::default(),
        }
    }
}

impl PeerSample {
    pub const CAPACITY: usize = 512;
    pub const REFRESH: u64 = 16;

    pub fn push(&mut self, v: u32) {
        self.pushes += 1;
        if self.values.len() < Self::CAPACITY {
            self.values.push(v);
        } else {
            self.values[self.next] = v;
            self.next = (self.next + 1) % Self::CAPACITY;
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn quantile(&self, q: f64) -> f64 {
        let mut cache = self.sorted.borrow_mut();
        let (at, sorted) = &mut *cache;
        let small = self.values.len() < Self::REFRESH as usize * 4;
        if sorted.len() != self.values.len() && small
            || self.pushes - *at >= Self::REFRESH
            || sorted.is_empty()
        {
            sorted.clear();
            sorted.extend_from_slice(&self.values);
            sorted.sort_unstable();
            *at = self.pushes;
        }
        f64::from(quantile(sorted, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vakt_event::time::HOUR;

    #[test]
    fn daily_counts_roll_over_days_and_record_idle_days() {
        let mut d = DailyCounts::default();
        let t0 = Timestamp(20_000 * DAY + 8 * HOUR);
        d.add(t0, 10, true);
        d.add(Timestamp(t0.0 + HOUR), 5, true);
        d.add(Timestamp(t0.0 + DAY), 7, true);
        d.add(Timestamp(t0.0 + 3 * DAY), 1, true);
        assert_eq!(d.history().collect::<Vec<_>>(), vec![15, 7, 0]);
        assert_eq!(d.today(), 1);
        for i in 4..40 {
            d.add(Timestamp(t0.0 + i * DAY), 2, true);
        }
        assert_eq!(d.days(), DailyCounts::DAYS);
        assert_eq!(d.max(), 2);
    }

    #[test]
    fn keyed_state_forgets_idle_keys() {
        let mut k: Keyed<u32> = Keyed::default();
        *k.touch(1, Timestamp(10), || 0) += 1;
        *k.touch(2, Timestamp(100), || 0) += 1;
        k.evict(Timestamp(50));
        assert!(k.get(1).is_none());
        assert_eq!(k.get(2), Some(&1));
    }

    #[test]
    fn distinct_counts_are_close() {
        let mut d = Distinct::new();
        for i in 0..5000 {
            d.insert(format!("C-{i}").as_str());
            d.insert(format!("C-{i}").as_str());
        }
        let e = d.estimate() as f64;
        assert!((e - 5000.0).abs() / 5000.0 < 0.05, "{e}");
    }

    #[test]
    fn peer_sample_is_bounded() {
        let mut p = PeerSample::default();
        for i in 0..10_000 {
            p.push(i % 100);
        }
        assert_eq!(p.len(), PeerSample::CAPACITY);
        assert!((p.quantile(0.5) - 50.0).abs() <= 2.0);
    }
}

/// Events in a sliding window, estimated from two fixed buckets: the
/// previous bucket counts in proportion to how much of it is still inside
/// the window. Eight bytes of state, no per-event storage.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SlidingCount {
    bucket: i32,
    current: u32,
    previous: u32,
}

impl SlidingCount {
    /// Adds `n` at `at` and returns the estimated count over the last `window` ms.
    pub fn add(&mut self, at: Timestamp, n: u32, window: i64) -> f64 {
        let b = at.0.div_euclid(window) as i32;
        if b != self.bucket {
            self.previous = if b == self.bucket + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.bucket = b;
        }
        self.current = self.current.saturating_add(n);
        let into = at.0.rem_euclid(window) as f64 / window as f64;
        self.current as f64 + self.previous as f64 * (1.0 - into)
    }
}

/// The numeric tail of a customer id (`C-0012345` -> 12345), for spotting
/// sequential enumeration.
pub fn id_number(id: &str) -> Option<u64> {
    let digits = id.len() - id.bytes().rev().take_while(u8::is_ascii_digit).count();
    id.get(digits..)
        .filter(|d| !d.is_empty() && d.len() <= 18)?
        .parse()
        .ok()
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use vakt_event::time::MINUTE;

    #[test]
    fn sliding_count_forgets_the_old_window_gradually() {
        let mut s = SlidingCount::default();
        let w = 10 * MINUTE;
        for i in 0..100 {
            s.add(Timestamp(i * 6_000), 1, w);
        }
        // Half into the next window, half of the previous one still counts.
        let v = s.add(Timestamp(w + w / 2), 1, w);
        assert!((v - 51.0).abs() < 1.0, "{v}");
        assert_eq!(s.add(Timestamp(10 * w), 1, w), 1.0);
    }

    #[test]
    fn id_numbers_come_from_the_digit_tail() {
        assert_eq!(id_number("C-0012345"), Some(12345));
        assert_eq!(id_number("42"), Some(42));
        assert_eq!(id_number("abc"), None);
        assert_eq!(id_number("x99999999999999999999999"), None);
    }
}

/// A least-recently-used table with a hard capacity, hashed with FxHash
/// (keys are vakt's own hashes and ids, not attacker-chosen strings).
pub type Lru<K, V> = lru::LruCache<K, V, rustc_hash::FxBuildHasher>;

/// An [`Lru`] holding at most `capacity` keys (at least one).
pub fn lru<K: std::hash::Hash + Eq, V>(capacity: usize) -> Lru<K, V> {
    let cap = std::num::NonZeroUsize::new(capacity.max(1)).expect("at least one");
    lru::LruCache::with_hasher(cap, rustc_hash::FxBuildHasher)
}
