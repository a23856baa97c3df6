//! An account's accesses per hour, for charts and baselines.

use crate::ledger::Ledger;
use crate::Result;
use std::collections::BTreeMap;
use vakt_event::Timestamp;

const HOUR_MS: i64 = 3_600_000;

impl Ledger {
    /// Accesses of `account` per hour in `[since, until]`: each hour that
    /// has any (its start, UTC), oldest first. Hours without accesses are
    /// left out; an unknown account has none. On a shared store, every
    /// node's accesses.
    pub fn activity_per_hour(
        &self,
        account: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(Timestamp, u64)>> {
        let mut per: BTreeMap<i64, u64> = BTreeMap::new();
        self.account_rows(account, since.0, until.0, &mut |_, row| {
            *per.entry(row.t.div_euclid(HOUR_MS) * HOUR_MS).or_default() += 1;
            Ok(())
        })?;
        Ok(per.into_iter().map(|(h, n)| (Timestamp(h), n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::{DataDir, Ledger};
    use vakt_event::{AccessEvent, Origin, Timestamp};

    #[test]
    fn accesses_are_counted_per_hour_of_the_account() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir {
            path: tmp.path().join("d"),
        };
        let mut l = Ledger::open(&dir).unwrap();
        let at = [
            ("alice", "2026-01-01T10:05:00Z"),
            ("alice", "2026-01-01T10:55:00Z"),
            ("alice", "2026-01-01T12:00:00Z"),
            ("bob", "2026-01-01T10:10:00Z"),
        ];
        for (i, (who, t)) in at.iter().enumerate() {
            let a = AccessEvent {
                timestamp: Timestamp::parse(t).unwrap(),
                user: who.to_string(),
                customer_ids: vec!["C1".into()],
                records: 1,
                origin: Origin::new("t.jsonl".into(), i as u64 + 1),
                ..Default::default()
            };
            l.append(&a).unwrap();
        }
        l.close().unwrap();
        let l = Ledger::open_read(&dir).unwrap();
        let h = l
            .activity_per_hour("alice", Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap();
        let base = Timestamp::parse("2026-01-01T10:00:00Z").unwrap().0;
        assert_eq!(
            h,
            vec![(Timestamp(base), 2), (Timestamp(base + 2 * 3_600_000), 1)]
        );
        assert!(l
            .activity_per_hour("nobody", Timestamp(i64::MIN), Timestamp(i64::MAX))
            .unwrap()
            .is_empty());
    }
}
