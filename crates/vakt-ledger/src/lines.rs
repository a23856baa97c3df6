//! Which input lines the ledger holds, per source, as ranges: how an access
//! replayed after a restart is told from a new one without a unique index
//! over every entry. A source read in order is one range whatever its
//! length; lines arriving out of order (a proxy's spool replayed later)
//! add a range per gap until the gap fills.

use crate::store::varint::{self, Reader};

/// Disjoint, sorted, inclusive ranges of line numbers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Lines {
    ranges: Vec<(u64, u64)>,
}

impl Lines {
    /// Adds `line`; false when it was already there.
    pub(crate) fn insert(&mut self, line: u64) -> bool {
        // The common case: the next line of a source read in order.
        if let Some(last) = self.ranges.last_mut() {
            if last.1.checked_add(1) == Some(line) {
                last.1 = line;
                return true;
            }
            if last.0 <= line && line <= last.1 {
                return false;
            }
        }
        let i = self.ranges.partition_point(|r| r.1 < line);
        if self.ranges.get(i).is_some_and(|r| r.0 <= line) {
            return false;
        }
        let joins_prev = i > 0 && self.ranges[i - 1].1 + 1 == line;
        let joins_next = self.ranges.get(i).is_some_and(|r| r.0 == line + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = line,
            (false, true) => self.ranges[i].0 = line,
            (false, false) => self.ranges.insert(i, (line, line)),
        }
        true
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.ranges.len() * 4);
        let mut prev = 0u64;
        for &(a, b) in &self.ranges {
            varint::put(&mut out, a.wrapping_sub(prev));
            varint::put(&mut out, b - a);
            prev = b;
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Lines> {
        let mut r = Reader::new(bytes);
        let mut ranges = Vec::new();
        let mut prev = 0u64;
        while !r.is_empty() {
            let a = prev.checked_add(r.get()?)?;
            let b = a.checked_add(r.get()?)?;
            ranges.push((a, b));
            prev = b;
        }
        Some(Lines { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_any_order_are_each_taken_once() {
        let mut l = Lines::default();
        for n in 1..=100 {
            assert!(l.insert(n));
        }
        assert_eq!(l.ranges, vec![(1, 100)]);
        // A spool replayed later: gaps, then the gap filled.
        assert!(l.insert(105));
        assert!(l.insert(103));
        assert!(!l.insert(50));
        assert!(!l.insert(105));
        assert_eq!(l.ranges, vec![(1, 100), (103, 103), (105, 105)]);
        assert!(l.insert(104));
        assert!(l.insert(101));
        assert!(l.insert(102));
        assert_eq!(l.ranges, vec![(1, 105)]);
        assert!(l.insert(0));
        assert_eq!(Lines::decode(&l.encode()), Some(l));
    }

    #[test]
    fn a_brute_force_set_agrees() {
        let mut l = Lines::default();
        let mut set = std::collections::BTreeSet::new();
        let mut x = 12345u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let line = (x >> 33) % 700;
            assert_eq!(l.insert(line), set.insert(line), "{line}");
        }
        assert_eq!(Lines::decode(&l.encode()), Some(l));
    }
}
