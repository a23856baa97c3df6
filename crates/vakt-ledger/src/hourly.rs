//! Accesses per hour for an account between two times: the activity
//! timeline the console draws beside an alert.

use crate::ledger::Ledger;
use crate::Result;
use vakt_event::Timestamp;

const HOUR: i64 = 3_600_000;

impl Ledger {
    /// Accesses `account` made in each hour of `[since, until]`: one
    /// `(start of the hour, count)` per hour, zeros included, oldest first.
    pub fn hourly(
        &self,
        account: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(Timestamp, u64)>> {
        let first = since.0.div_euclid(HOUR) * HOUR;
        let last = until.0.div_euclid(HOUR) * HOUR;
        if last < first {
            return Ok(Vec::new());
        }
        let hours = ((last - first) / HOUR + 1).min(24 * 366) as usize;
        let mut out: Vec<(Timestamp, u64)> = (0..hours)
            .map(|i| (Timestamp(first + i as i64 * HOUR), 0))
            .collect();
        for (hour, n) in self.activity_per_hour(account, Timestamp(first), until)? {
            if let Some(slot) = out.get_mut(((hour.0 - first) / HOUR) as usize) {
                slot.1 = n;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    #[test]
    fn accesses_are_counted_per_hour_with_empty_hours() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().to_owned(),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let line = |i: u64, at: &str, user: &str| {
            let ev = vakt_ingest_free_event(user, at);
            (ev, i)
        };
        for (i, (user, at)) in [
            ("a", "2026-11-02T08:05:00Z"),
            ("a", "2026-11-02T08:55:00Z"),
            ("b", "2026-11-02T09:10:00Z"),
            ("a", "2026-11-02T10:00:00Z"),
        ]
        .into_iter()
        .enumerate()
        {
            let (mut ev, k) = line(i as u64, at, user);
            ev.origin.line = k + 1;
            l.append(&ev).unwrap();
        }
        l.close().unwrap();
        let l = Ledger::open_read(&dir).unwrap();
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let h = l
            .hourly("a", t("2026-11-02T07:30:00Z"), t("2026-11-02T10:30:00Z"))
            .unwrap();
        let counts: Vec<u64> = h.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [0, 2, 0, 1]);
        assert_eq!(h[1].0, t("2026-11-02T08:00:00Z"));
        assert_eq!(
            l.hourly(
                "nobody",
                t("2026-11-02T07:30:00Z"),
                t("2026-11-02T08:30:00Z")
            )
            .unwrap()
            .len(),
            2
        );
    }

    fn vakt_ingest_free_event(user: &str, at: &str) -> vakt_event::AccessEvent {
        vakt_event::AccessEvent {
            timestamp: Timestamp::parse(at).unwrap(),
            user: user.to_owned(),
            customer_ids: vec!["C-1".into()],
            records: 1,
            origin: vakt_event::Origin::new(std::sync::Arc::from("t"), 0),
            ..Default::default()
        }
    }
}
